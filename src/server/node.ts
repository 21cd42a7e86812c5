// A Tessera node: the multi-Raft loop (host.ts) wired to LMDB, TCP peers, the etcd API, timers
// and membership; one turn of the loop per event-loop turn that has work.
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import { ApiServer } from '../api/index.ts';
import { RangeTable } from '../cluster/index.ts';
import { defaultRaftConfig, seededRng } from '../raft/index.ts';
import type { RaftConfig } from '../raft/index.ts';
import { NodeStorage, StorageFailedError } from '../storage/index.ts';
import { Transport } from '../transport/index.ts';
import { Errors } from '../util/index.ts';
import { parseHostPort } from './config.ts';
import type { NodeConfig } from './config.ts';
import { NodeClock } from './clock.ts';
import { HttpEndpoint, serveOpsRoute } from './http.ts';
import { ackBeforeFsync, plantedBugFromEnv, plantStaleReads, PLANTED_BUG_ENV } from './planted.ts';
import type { PlantedBug } from './planted.ts';
import { NodeSecurity } from './security.ts';
import { AuthService } from './auth.ts';
import { KvService } from './kv.ts';
import { NodeMetrics } from './metrics.ts';
import { clusterIdOf, initialMembers } from './members.ts';
import type { Member } from './members.ts';
import { ReplicaHost } from './host.ts';
import { bootstrapEntries } from './replica.ts';
import type { Replica } from './replica.ts';
import { ClusterService, LeaseService, MaintenanceService, WatchService } from './services.ts';
import { ElectionService, LockService } from './concurrency.ts';

/**
 * A node stopping on its own (a fatal error, its removal) waits this long for a clean stop, then
 * exits anyway: a graceful API shutdown waits for in-flight calls (Lock waiters, watches) for
 * seconds, and a fail-stop must not leave a process that holds its ports but serves nothing.
 */
const selfStopGraceMs = 1_000;

interface ClusterMeta {
  clusterId: number;
  selfId: number;
  members: Member[];
}

export class TesseraNode {
  readonly config: NodeConfig;
  readonly logger: Logger;
  readonly meta: ClusterMeta;
  readonly rangeTable = new RangeTable();
  private readonly host: ReplicaHost;
  private readonly storage: NodeStorage;
  private readonly transport: Transport;
  /** The node's clock: Raft ticks, lease clocks and request deadlines (skewable by fault injection). */
  private readonly clock = new NodeClock();
  /** TEST-ONLY: the bug TESSERA_PLANTED_BUG planted in this node (src/server/planted.ts), or null. */
  private readonly plantedBug: PlantedBug | null;
  private api: ApiServer | null = null;
  private http: HttpEndpoint | null = null;
  readonly metrics = new NodeMetrics();
  private readonly security: NodeSecurity;
  private readonly watchService = new WatchService(this);
  private turnScheduled = false;
  private turnRunning: Promise<void> | null = null;
  private stopped = false;
  private tickTimer: NodeJS.Timeout | null = null;
  private clientPort = 0;
  private quotaAlarmProposedAtMs = -Infinity;
  private publishedAtMs = -Infinity;
  /** Called after the node stopped itself on an unrecoverable error (the CLI exits non-zero). */
  onFatal: (error: unknown) => void = () => {};

  private constructor(
    config: NodeConfig,
    logger: Logger,
    storage: NodeStorage,
    meta: ClusterMeta,
    security: NodeSecurity,
    plantedBug: PlantedBug | null,
  ) {
    this.config = config;
    this.plantedBug = plantedBug;
    this.security = security;
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
      tls: security.transportTls(),
    });
    this.metrics.trackTransport(() => this.transport.stats());
    this.metrics.trackStorage(() => storage.stats());
    storage.onLmdbCommit((seconds) => this.metrics.backendCommitSeconds.observe(seconds));
    this.host = new ReplicaHost({
      nodeId: meta.selfId,
      storage: plantedBug === 'ack-before-fsync' ? ackBeforeFsync(storage) : storage,
      transport: this.transport,
      limits: config.limits,
      logger,
      metrics: this.metrics,
      now: () => this.clock.now(),
      raftConfig: () => this.raftConfig(),
      onStoreReplaced: (r) => this.watchService.storeReplaced(r),
      onMembershipChanged: (r) => this.membershipChanged(r),
      onTick: (r) => this.onTick(r),
      onRemoved: (how) => this.removedFromCluster(how),
      incarnation: randomInt(2 ** 47),
    });
  }

  get replicas(): ReadonlyMap<number, Replica> {
    return this.host.replicas;
  }

  /** Opens (or recovers) the data directory, starts peer and client listeners and the Raft loop. */
  static async start(config: NodeConfig, logger: Logger): Promise<TesseraNode> {
    const plantedBug = plantedBugFromEnv();
    if (plantedBug !== null) {
      logger.error(
        { plantedBug, env: PLANTED_BUG_ENV },
        `PLANTED BUG "${plantedBug}" IS ON: this node is deliberately incorrect (test-only; unset ${PLANTED_BUG_ENV})`,
      );
    }
    mkdirSync(config.dataDir, { recursive: true });
    const security = new NodeSecurity(config, logger.child({ component: 'security' }));
    const storage = await NodeStorage.open({ dataDir: config.dataDir, sync: !config.unsafeNoFsync, encryption: security.keyring });
    const { replayedCommits, tornBytes } = storage.recovery;
    if (replayedCommits > 0 || tornBytes > 0) {
      // After a crash: the commits only the write-ahead log held went into LMDB; a write the crash
      // cut short was never acknowledged.
      logger.info({ replayedCommits, tornBytes }, 'storage: replayed the write-ahead log');
    }
    const meta = TesseraNode.loadOrCreateMeta(config, storage);
    const node = new TesseraNode(config, logger, storage, meta, security, plantedBug);
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

  /** Loads the TLS certificate files and the JWT key files again (SIGHUP); new connections and tokens use them. */
  reloadCertificates(): void {
    this.security.reload();
  }

  private readonly stopController = new AbortController();

  /** Aborted when the node starts stopping: long waits (Lock, Campaign, Observe) end at once. */
  get stopSignal(): AbortSignal {
    return this.stopController.signal;
  }

  /** Asks a peer over the transport, beside Raft (lease keepalives and TTLs forwarded to the leader). */
  peerCall(peerId: number, method: string, body: unknown, timeoutMs: number): Promise<unknown> {
    return this.transport.call(peerId, method, body, timeoutMs);
  }

  get id(): number {
    return this.meta.selfId;
  }

  get clientAddress(): string {
    return `${parseHostPort(this.config.listenClientUrls[0]).host}:${this.clientPort}`;
  }

  private async startServing(): Promise<void> {
    for (const range of this.rangeTable.all()) {
      const replica = this.host.openReplica(range.groupId);
      if (this.plantedBug === 'stale-reads') plantStaleReads(replica);
    }
    this.transport.onMessage((groupId, msg) => {
      this.host.receive(groupId, msg);
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
    const leaseService = new LeaseService(this);
    this.transport.onCall((from, method, body) => leaseService.answerPeerCall(from, method, body));
    this.api = new ApiServer({
      backend: new KvService(this),
      maintenance: new MaintenanceService(this),
      cluster: new ClusterService(this),
      watch: this.watchService,
      lease: leaseService,
      lock: new LockService(this, this.watchService),
      election: new ElectionService(this, this.watchService),
      auth: new AuthService(this, {
        tokenTtlMs: this.config.authTokenTtl * 1000,
        jwt: this.security.jwt,
        logger: this.logger,
      }),
      host: client.host,
      port: client.port,
      maxRequestBytes: this.config.limits.maxRequestBytes,
      maxTxnOps: this.config.limits.maxTxnOps,
      logger: this.logger.child({ component: 'api' }),
      tls: this.security.apiTls(),
      grpcServer: this.config.experimentalGrpcServer,
      opsRoutes: (req, res) => serveOpsRoute(req, res, { metrics: this.metrics, health: () => this.health() }),
    });
    this.clientPort = await this.api.start();
    await this.startHttp();
    this.security.attach({ api: this.api, transport: this.transport, metrics: this.http, storage: this.storage });
    this.startTicking();
    this.clock.onRateChange(() => this.startTicking());
    this.logger.info(
      { name: this.config.name, id: this.id.toString(16), client: this.clientAddress, peer: this.config.listenPeerUrls[0] },
      'tessera node serving',
    );
  }

  /** One Raft tick per heartbeat interval of the node's clock (a skewed clock ticks faster or slower). */
  private startTicking(): void {
    if (this.stopped) return;
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.tickTimer = setInterval(
      () => {
        this.host.tick();
        this.schedule();
      },
      Math.max(1, Math.round(this.config.heartbeatInterval / this.clock.rate)),
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
      faults: this.config.experimentalFaultInjection ? { transport: this.transport.faults, storage: this.storage.faults, clock: this.clock } : null,
      logger: this.logger.child({ component: 'http' }),
      tls: this.security.metricsTls(),
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

  private raftConfig(): RaftConfig {
    const electionTicks = Math.max(2, Math.round(this.config.electionTimeout / this.config.heartbeatInterval));
    return defaultRaftConfig(this.id, seededRng(randomInt(2 ** 31)), {
      electionTicks,
      heartbeatTicks: 1,
      checkQuorum: true,
      preVote: true,
      readOnlyOption: this.config.readMode === 'lease' ? 'leaseBased' : 'safe',
      leaderDurableNotices: true,
    });
  }

  /** Node-level duties of the first range's replica, once per ticking turn. */
  private onTick(replica: Replica): void {
    if (replica.groupId !== this.rangeTable.all()[0].groupId) return;
    this.checkQuota(replica);
    this.publishSelf(replica);
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
      while (!this.stopped && (await this.host.turn())) {
        // Keep turning while a turn produced work for the next, but let I/O in between the steps
        // of a snapshot build (they need no await, so this loop alone would starve the sockets).
        if (this.host.snapshotting) break;
      }
    } catch (error) {
      if (error instanceof StorageFailedError) {
        // etcd panics when its WAL fsync fails: nothing after it may be acknowledged, and memory
        // may now be ahead of the disk. Stop and let a restart recover from what is durable.
        this.logger.fatal({ err: error, fatal: 'storage' }, 'storage commit (fsync) failed; stopping the node (fail-stop)');
      } else {
        this.logger.fatal({ err: error }, 'raft loop failed; stopping the node to protect the data');
      }
      this.stopThenExit(error);
    } finally {
      this.turnRunning = null;
    }
    if (this.host.hasPendingInput() || this.host.snapshotting) this.schedule();
  }

  private removedFromCluster(how: string): void {
    if (this.stopped) return;
    this.logger.warn({ id: this.id.toString(16), how }, 'this member was removed from the cluster; stopping');
    this.stopThenExit(new Error('member removed'));
  }

  /** Stops (at most selfStopGraceMs of it), then onFatal: the CLI exits non-zero. */
  private stopThenExit(error: unknown): void {
    const grace = new Promise<void>((resolve) => setTimeout(resolve, selfStopGraceMs).unref());
    void Promise.race([this.stop().catch(() => undefined), grace]).then(() => this.onFatal(error));
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
    this.stopController.abort(Errors.stopped());
    if (this.tickTimer) clearInterval(this.tickTimer);
    await this.turnRunning; // let the turn in flight finish its commit before storage closes
    for (const replica of this.replicas.values()) replica.failAll(Errors.stopped());
    await this.api?.stop();
    await this.http?.stop();
    await this.transport.close();
    this.security.close();
    await this.storage.close();
    this.logger.info({ name: this.config.name }, 'tessera node stopped');
  }
}
