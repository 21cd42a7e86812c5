// A Tessera node: hosts Raft group replicas in one loop (TiKV's batch system), persists every
// group's Ready in one storage commit (one fsync), then sends all messages in one flush per peer.
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import { ApiServer } from '../api/index.ts';
import { RangeTable } from '../cluster/index.ts';
import { defaultRaftConfig, seededRng } from '../raft/index.ts';
import type { Message, Ready } from '../raft/index.ts';
import { NodeStorage } from '../storage/index.ts';
import { Transport } from '../transport/index.ts';
import { Errors } from '../util/index.ts';
import { parseHostPort } from './config.ts';
import type { NodeConfig } from './config.ts';
import { HttpEndpoint } from './http.ts';
import { KvService } from './kv.ts';
import { NodeMetrics } from './metrics.ts';
import { clusterIdOf, initialMembers } from './members.ts';
import type { Member } from './members.ts';
import { bootstrapEntries, Replica } from './replica.ts';
import { ClusterService, LeaseService, MaintenanceService, WatchService } from './services.ts';
import { ElectionService, LockService } from './concurrency.ts';

interface ClusterMeta {
  clusterId: number;
  selfId: number;
  members: Member[];
}

/** The context of a heartbeat response that tells a removed member it was removed. */
const removedNotice = Buffer.from('tessera:member-removed');

/** Ticks handled in one turn at most; a loop that fell behind catches up gradually instead of stalling. */
const maxTicksPerTurn = 5;
/** Inbound peer messages stepped in one turn at most; the rest wait for the next turn. */
const maxInboxPerTurn = 10_000;

export class TesseraNode {
  readonly config: NodeConfig;
  readonly logger: Logger;
  readonly meta: ClusterMeta;
  readonly rangeTable = new RangeTable();
  readonly replicas = new Map<number, Replica>();
  private readonly storage: NodeStorage;
  private readonly transport: Transport;
  private api: ApiServer | null = null;
  private http: HttpEndpoint | null = null;
  readonly metrics = new NodeMetrics();
  private readonly watchService = new WatchService(this);
  private inbox: { groupId: number; msg: Message }[] = [];
  private pendingTicks = 0;
  private turnScheduled = false;
  private turnRunning: Promise<void> | null = null;
  private stopped = false;
  private tickTimer: NodeJS.Timeout | null = null;
  private clientPort = 0;
  private quotaAlarmProposedAtMs = -Infinity;
  private publishedAtMs = -Infinity;
  private readonly noticeSentAtMs = new Map<number, number>();
  /** Called after the node stopped itself on an unrecoverable error (the CLI exits non-zero). */
  onFatal: (error: unknown) => void = () => {};

  private constructor(config: NodeConfig, logger: Logger, storage: NodeStorage, meta: ClusterMeta) {
    this.config = config;
    this.logger = logger;
    this.storage = storage;
    this.meta = meta;
    const peer = parseHostPort(config.listenPeerUrls[0]);
    this.transport = new Transport({
      nodeId: meta.selfId,
      clusterId: String(meta.clusterId),
      listenHost: peer.host,
      listenPort: peer.port,
      logger: logger.child({ component: 'transport' }),
    });
  }

  /** Opens (or recovers) the data directory, starts peer and client listeners and the Raft loop. */
  static async start(config: NodeConfig, logger: Logger): Promise<TesseraNode> {
    mkdirSync(config.dataDir, { recursive: true });
    const storage = await NodeStorage.open({ dataDir: config.dataDir, sync: !config.unsafeNoFsync });
    const meta = TesseraNode.loadOrCreateMeta(config, storage);
    const node = new TesseraNode(config, logger, storage, meta);
    await node.startServing();
    return node;
  }

  private static loadOrCreateMeta(config: NodeConfig, storage: NodeStorage): ClusterMeta {
    const stored = storage.getMeta<ClusterMeta>('cluster');
    if (stored) return stored;
    const { self, members } = initialMembers(config);
    const meta = { clusterId: clusterIdOf(config.initialClusterToken), selfId: self.id, members };
    storage.putMeta('cluster', meta);
    if (config.initialClusterState === 'new') {
      const entries = bootstrapEntries(members);
      const group = storage.group(1);
      group.append(entries);
      group.setHardState({ term: 1, vote: 0, commit: entries.length });
    }
    return meta;
  }

  get id(): number {
    return this.meta.selfId;
  }

  get clientAddress(): string {
    return `${parseHostPort(this.config.listenClientUrls[0]).host}:${this.clientPort}`;
  }

  private async startServing(): Promise<void> {
    for (const range of this.rangeTable.all()) this.openReplica(range.groupId);
    this.transport.onMessage((groupId, msg) => {
      this.inbox.push({ groupId, msg });
      this.schedule();
    });
    this.transport.onUnreachable((peerId) => {
      for (const replica of this.replicas.values()) replica.enqueueRaftOp(() => replica.raft.reportUnreachable(peerId));
    });
    this.transport.onSnapshotStatus((groupId, peerId, status) => {
      const replica = this.replicas.get(groupId);
      replica?.enqueueRaftOp(() => replica.raft.reportSnapshot(peerId, status));
      this.schedule();
    });
    await this.storage.commit();
    await this.transport.start();
    this.updatePeers(this.firstReplica());
    const client = parseHostPort(this.config.listenClientUrls[0]);
    this.api = new ApiServer({
      backend: new KvService(this),
      maintenance: new MaintenanceService(this),
      cluster: new ClusterService(this),
      watch: this.watchService,
      lease: new LeaseService(this),
      lock: new LockService(this, this.watchService),
      election: new ElectionService(this, this.watchService),
      host: client.host,
      port: client.port,
      maxRequestBytes: this.config.limits.maxRequestBytes,
      maxTxnOps: this.config.limits.maxTxnOps,
      logger: this.logger.child({ component: 'api' }),
    });
    this.clientPort = await this.api.start();
    await this.startHttp();
    this.tickTimer = setInterval(() => {
      this.pendingTicks++;
      this.schedule();
    }, this.config.heartbeatInterval);
    this.logger.info(
      { name: this.config.name, id: this.id.toString(16), client: this.clientAddress, peer: this.config.listenPeerUrls[0] },
      'tessera node serving',
    );
  }

  private async startHttp(): Promise<void> {
    const url = this.config.listenMetricsUrls?.[0];
    if (!url) return;
    const { host, port } = parseHostPort(url);
    this.http = new HttpEndpoint({
      host,
      port,
      metrics: this.metrics,
      health: () => this.health(),
      faults: this.config.experimentalFaultInjection ? this.transport.faults : null,
      logger: this.logger.child({ component: 'http' }),
    });
    await this.http.start();
  }

  /** Bytes of the node's LMDB file (etcd's dbSize). */
  dbSizeBytes(): number {
    try {
      return statSync(join(this.config.dataDir, 'db', 'data.mdb')).size;
    } catch {
      return 0;
    }
  }

  /** etcd's /health: healthy when every replica on this node knows a leader. */
  health(): { health: boolean; reason: string } {
    for (const replica of this.replicas.values()) {
      if (replica.leaderId === 0) return { health: false, reason: `RAFT NO LEADER (range ${replica.groupId})` };
    }
    return { health: true, reason: '' };
  }

  private openReplica(groupId: number): Replica {
    const electionTicks = Math.max(2, Math.round(this.config.electionTimeout / this.config.heartbeatInterval));
    const raftConfig = defaultRaftConfig(this.id, seededRng(randomInt(2 ** 31)), {
      electionTicks,
      heartbeatTicks: 1,
      checkQuorum: true,
      preVote: true,
      readOnlyOption: this.config.readMode === 'lease' ? 'leaseBased' : 'safe',
    });
    const replica = new Replica({
      groupId,
      nodeId: this.id,
      raftConfig,
      storage: this.storage.group(groupId),
      limits: this.config.limits,
      logger: this.logger.child({ group: groupId }),
      metrics: this.metrics,
      now: () => performance.now(),
      onStoreReplaced: (r) => this.watchService.storeReplaced(r),
      onMembershipChanged: (r) => this.membershipChanged(r),
    });
    this.replicas.set(groupId, replica);
    return replica;
  }

  firstReplica(): Replica {
    return this.replicaFor(this.rangeTable.all()[0].groupId);
  }

  /**
   * Peers are the first range's members; addresses from --initial-cluster fill in for members the
   * replica has not learned yet (a joining member must answer the leader before it replays the log).
   * A removed member keeps its replicated address only until a restart; that is enough to tell it.
   */
  private updatePeers(replica: Replica): void {
    const known = new Map(this.meta.members.map((m) => [m.id, m]));
    // Removed members stay addressable: they may still need to hear that they were removed.
    for (const m of replica.members.values()) known.set(m.id, m);
    this.transport.setPeers(
      [...known.values()]
        .filter((m) => m.id !== this.id && m.peerUrls.length > 0)
        .map((m) => ({ id: m.id, ...parseHostPort(m.peerUrls[0]) })),
    );
  }

  private membershipChanged(replica: Replica): void {
    if (this.stopped || replica !== this.replicas.get(this.rangeTable.all()[0].groupId)) return;
    this.updatePeers(replica);
    if (replica.removed.has(this.id)) this.removedFromCluster('its removal applied here');
  }

  /** Like etcd's publish: a member announces its name and client URLs through the log once it serves. */
  private publishSelf(replica: Replica): void {
    const self = replica.members.get(this.id);
    const clientUrls = this.config.advertiseClientUrls ?? this.config.listenClientUrls;
    if (!self || replica.leaderId === 0) return;
    if (self.name === this.config.name && self.clientUrls.join(',') === clientUrls.join(',')) return;
    const now = performance.now();
    if (now - this.publishedAtMs < 5_000) return;
    this.publishedAtMs = now;
    this.logger.info({ self }, "publishing member attributes");
    replica.proposeInternal({ op: 'memberAttrs', id: this.id, attrs: { name: this.config.name, clientUrls } });
  }

  replicaFor(groupId: number): Replica {
    const replica = this.replicas.get(groupId);
    if (!replica || this.stopped) throw Errors.stopped();
    return replica;
  }

  /** Asks for a turn of the loop; everything that arrives before it runs is handled in that one turn. */
  schedule(): void {
    if (this.turnScheduled || this.turnRunning || this.stopped) return;
    this.turnScheduled = true;
    setImmediate(() => {
      this.turnScheduled = false;
      this.turnRunning = this.runTurns();
    });
  }

  private async runTurns(): Promise<void> {
    try {
      while (!this.stopped && (await this.turn())) {
        // keep turning while a turn produced work for the next
      }
    } catch (error) {
      this.logger.fatal({ err: error }, 'raft loop failed; stopping the node to protect the data');
      void this.stop().finally(() => this.onFatal(error));
    } finally {
      this.turnRunning = null;
    }
    if (this.inbox.length > 0 || this.pendingTicks > 0) this.schedule();
  }

  /** One turn: feed input, collect every Ready, persist once, send, apply, advance. Returns true if more work is waiting. */
  private async turn(): Promise<boolean> {
    this.feedInput();
    const readies: [Replica, Ready][] = [];
    for (const replica of this.replicas.values()) {
      if (replica.raft.hasReady()) readies.push([replica, replica.raft.ready()]);
    }
    if (readies.length === 0) return false;
    let mustSync = false;
    for (const [replica, rd] of readies) {
      if (rd.snapshot) replica.storage.applySnapshot(rd.snapshot);
      if (rd.entries.length > 0) replica.storage.append(rd.entries);
      if (rd.hardState) replica.storage.setHardState(rd.hardState);
      mustSync ||= rd.mustSync || rd.snapshot !== null;
    }
    // While this turn's fsync runs: a leader whose term and vote are already durable sends its
    // appends (it counts its own log only after advance), and committed entries, durable on a
    // quorum since an earlier turn, are applied and answered (etcd's raftNode does the same).
    const early = readies.filter(([replica, rd]) => replica.maySendBeforeSync(rd));
    for (const [replica, rd] of early) this.send(replica, rd);
    for (const [replica, rd] of readies) replica.applyReady(rd);
    if (mustSync) {
      const started = performance.now();
      await this.storage.commit();
      this.metrics.fsyncSeconds.observe((performance.now() - started) / 1000);
    }
    this.metrics.turns.inc();
    this.metrics.entriesPerTurn.observe(readies.reduce((n, [, rd]) => n + rd.entries.length, 0));
    let snapshotted = false;
    for (const [replica, rd] of readies) {
      if (!early.some(([r]) => r === replica)) this.send(replica, rd);
      replica.synced(rd);
      replica.raft.advance();
      if (replica.wantsSnapshot()) {
        replica.takeSnapshot();
        snapshotted = true;
      }
    }
    if (snapshotted) await this.storage.commit();
    return this.inbox.length > 0 || this.pendingTicks > 0 || readies.some(([r]) => r.raft.hasReady() || r.hasQueuedInput());
  }

  private send(replica: Replica, rd: Ready): void {
    for (const msg of rd.messages) this.transport.send(replica.groupId, msg);
  }

  private feedInput(): void {
    const ticks = Math.min(this.pendingTicks, maxTicksPerTurn);
    this.pendingTicks = 0;
    const messages = this.inbox.length <= maxInboxPerTurn ? this.inbox : this.inbox.slice(0, maxInboxPerTurn);
    this.inbox = this.inbox.length <= maxInboxPerTurn ? [] : this.inbox.slice(maxInboxPerTurn);
    for (const { groupId, msg } of messages) this.deliver(groupId, msg);
    for (const replica of this.replicas.values()) {
      for (let i = 0; i < ticks; i++) replica.raft.tick();
      if (ticks > 0) {
        replica.expireRequests();
        replica.expireLeases();
      }
      replica.runRaftOps();
      if (ticks > 0 && replica.groupId === this.rangeTable.all()[0].groupId) {
        this.checkQuota(replica);
        this.publishSelf(replica);
      }
      replica.flushProposals();
      replica.flushReads();
    }
  }

  /**
   * Steps one peer message. A removed member that never saw its removal commit keeps talking to
   * its old peers; they answer with a removal notice (etcd does this in its peer HTTP layer) and
   * never step its messages, so it cannot disturb the group.
   */
  private deliver(groupId: number, msg: Message): void {
    const replica = this.replicas.get(groupId);
    if (!replica) return;
    if (msg.type === 'heartbeatResp' && Buffer.from(msg.context).equals(removedNotice)) {
      if (!replica.removed.has(this.id)) this.removedFromCluster(`member ${msg.from.toString(16)} reports it`);
      return;
    }
    if (replica.removed.has(msg.from)) {
      const now = performance.now();
      if (now - (this.noticeSentAtMs.get(msg.from) ?? -Infinity) > 1_000) {
        this.noticeSentAtMs.set(msg.from, now);
        this.transport.send(groupId, { type: 'heartbeatResp', from: this.id, to: msg.from, term: 0, context: removedNotice });
      }
      return;
    }
    replica.raft.step(msg);
  }

  private removedFromCluster(how: string): void {
    if (this.stopped) return;
    this.logger.warn({ id: this.id.toString(16), how }, 'this member was removed from the cluster; stopping');
    void this.stop().finally(() => this.onFatal(new Error('member removed')));
  }

  /** etcd's quota: a member whose data outgrows --quota-backend-bytes raises NOSPACE for itself. */
  private checkQuota(replica: Replica): void {
    if (replica.alarms.has(`${this.id}:nospace`) || this.dbSizeBytes() <= this.config.quotaBackendBytes) return;
    const now = performance.now();
    if (now - this.quotaAlarmProposedAtMs < 5_000) return;
    this.quotaAlarmProposedAtMs = now;
    this.logger.warn({ quotaBytes: this.config.quotaBackendBytes }, 'data exceeds the quota; raising the NOSPACE alarm');
    replica.proposeInternal({ op: 'alarm', action: 'activate', memberId: String(this.id), alarm: 'nospace' });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    await this.turnRunning; // let the turn in flight finish its commit before storage closes
    for (const replica of this.replicas.values()) replica.failAll(Errors.stopped());
    await this.api?.stop();
    await this.http?.stop();
    await this.transport.close();
    await this.storage.close();
    this.logger.info({ name: this.config.name }, 'tessera node stopped');
  }
}
