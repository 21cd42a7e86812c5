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
import { NodeStorage } from '../storage/index.ts';
import { Transport } from '../transport/index.ts';
import { Errors } from '../util/index.ts';
import { parseHostPort } from './config.ts';
import type { NodeConfig } from './config.ts';
import { HttpEndpoint } from './http.ts';
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

  private constructor(config: NodeConfig, logger: Logger, storage: NodeStorage, meta: ClusterMeta, security: NodeSecurity) {
    this.config = config;
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
    this.host = new ReplicaHost({
      nodeId: meta.selfId,
      storage,
      transport: this.transport,
      limits: config.limits,
      logger,
      metrics: this.metrics,
      now: () => performance.now(),
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
    mkdirSync(config.dataDir, { recursive: true });
    const security = new NodeSecurity(config, logger.child({ component: 'security' }));
    const storage = await NodeStorage.open({ dataDir: config.dataDir, sync: !config.unsafeNoFsync, encryption: security.keyring });
    const meta = TesseraNode.loadOrCreateMeta(config, storage);
    const node = new TesseraNode(config, logger, storage, meta, security);
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

  /** Loads the TLS certificate files again (SIGHUP); new connections use them. */
  reloadCertificates(): void {
    this.security.reload();
  }

  get id(): number {
    return this.meta.selfId;
  }

  get clientAddress(): string {
    return `${parseHostPort(this.config.listenClientUrls[0]).host}:${this.clientPort}`;
  }

  private async startServing(): Promise<void> {
    for (const range of this.rangeTable.all()) this.host.openReplica(range.groupId);
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
    this.api = new ApiServer({
      backend: new KvService(this),
      maintenance: new MaintenanceService(this),
      cluster: new ClusterService(this),
      watch: this.watchService,
      lease: new LeaseService(this),
      lock: new LockService(this, this.watchService),
      election: new ElectionService(this, this.watchService),
      auth: new AuthService(this, {
        tokenTtlMs: this.config.authTokenTtl * 1000,
        logger: this.logger,
      }),
      host: client.host,
      port: client.port,
      maxRequestBytes: this.config.limits.maxRequestBytes,
      maxTxnOps: this.config.limits.maxTxnOps,
      logger: this.logger.child({ component: 'api' }),
      tls: this.security.apiTls(),
      grpcServer: this.config.experimentalGrpcServer,
    });
    this.clientPort = await this.api.start();
    this.security.attach({ api: this.api, transport: this.transport });
    await this.startHttp();
    this.tickTimer = setInterval(() => {
      this.host.tick();
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

  private raftConfig(): RaftConfig {
    const electionTicks = Math.max(2, Math.round(this.config.electionTimeout / this.config.heartbeatInterval));
    return defaultRaftConfig(this.id, seededRng(randomInt(2 ** 31)), {
      electionTicks,
      heartbeatTicks: 1,
      checkQuorum: true,
      preVote: true,
      readOnlyOption: this.config.readMode === 'lease' ? 'leaseBased' : 'safe',
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
        // keep turning while a turn produced work for the next
      }
    } catch (error) {
      this.logger.fatal({ err: error }, 'raft loop failed; stopping the node to protect the data');
      void this.stop().finally(() => this.onFatal(error));
    } finally {
      this.turnRunning = null;
    }
    if (this.host.hasPendingInput()) this.schedule();
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
    this.security.close();
    await this.storage.close();
    this.logger.info({ name: this.config.name }, 'tessera node stopped');
  }
}
