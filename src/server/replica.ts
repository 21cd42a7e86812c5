// One replica of one Raft group on this node: the Raft core, its durable log, its MVCC state
// machine, and the client requests waiting on it. The node's loop drives every replica in turns.
import { Packr } from 'msgpackr';
import type { Logger } from 'pino';
import { SnapshotInvalidatedError } from '../mvcc/index.ts';
import type { MvccStore } from '../mvcc/index.ts';
import type { RequestOp, ResponseHeader, TxnRequest } from '../mvcc/index.ts';
import { copyConfState, decodeConfChange, encodeConfChange, ProposalDroppedError, RawNode } from '../raft/index.ts';
import type { ConfChange, ConfState, Entry, HardState, LogStorage, RaftConfig, Ready, Snapshot } from '../raft/index.ts';
import { assert, ChurnMap, EtcdError, Errors, trace, unreachable } from '../util/index.ts';
import type { AuthStore } from './auth-store.ts';
import { commandNeeds, recheckAuth } from './auth-apply.ts';
import { decodeBatch, encodeBatch, estimateBytes, isReadOnlyTxn, stampOf } from './commands.ts';
import type { Command, ProposedCommand } from './commands.ts';
import type { Limits } from './config.ts';
import { LeaseClock } from './leases.ts';
import type { Member } from './members.ts';
import type { NodeMetrics } from './metrics.ts';
import { decodeSnapshotData, SnapshotBuilder } from './snapshots.ts';

interface Waiter {
  resolve(value: unknown): void;
  reject(error: Error): void;
  deadlineMs: number;
}

interface ReadWaiter extends Waiter {
  run(): unknown;
}

interface ReadBatch {
  waiters: ReadWaiter[];
  /** Raft index the batch may run at, once the ReadIndex comes back; -1 until then. */
  index: number;
  requestedAtMs: number;
}

/** A ReadIndex request unanswered this long is asked again (lost message, leader change), as etcd does. */
const readIndexRetryMs = 500;
/** A snapshot build restarted this often in a row steps at 4^this × the normal pace (then all at once, in effect). */
const maxSnapshotEscalation = 6;

const contextPackr = new Packr({ useRecords: false });

/**
 * A new group's first entries, identical on every founding member (etcd's bootstrap): one
 * committed conf change per member, so a member that joins later replays the whole history.
 */
export function bootstrapEntries(members: Member[]): Entry[] {
  return [...members]
    .sort((a, b) => a.id - b.id)
    .map((member, i) => ({
      term: 1,
      index: i + 1,
      type: 'conf' as const,
      data: encodeConfChange({
        transition: 'auto',
        changes: [{ type: 'addNode', nodeId: member.id }],
        context: encodeConfContext({ ...member, clientUrls: [] }),
      }),
    }));
}

/** What a conf change entry carries besides the Raft change: the member it adds, for addresses. */
export function encodeConfContext(member: Member | null): Uint8Array {
  return contextPackr.pack({ member });
}

function decodeConfContext(context: Uint8Array): Member | null {
  if (context.length === 0) return null;
  return (contextPackr.unpack(context) as { member: Member | null }).member;
}

/** Commands refused while NOSPACE is raised (etcd's capped applier): those that can grow the store. */
function writesSpace(cmd: Command): boolean {
  return cmd.op === 'put' || cmd.op === 'leaseGrant' || (cmd.op === 'txn' && !isReadOnlyTxn(cmd.req) && txnPuts(cmd.req));
}

function txnPuts(txn: TxnRequest): boolean {
  const puts = (op: RequestOp): boolean => op.type === 'put' || (op.type === 'txn' && txnPuts(op.txn));
  return txn.success.some(puts) || txn.failure.some(puts);
}

/**
 * The durable Raft state a replica needs: LMDB's GroupStorage in production, raft's MemoryStorage
 * (with commits modelled by the simulator) under simulation. Writes are staged; the host commits.
 */
export interface ReplicaStorage extends LogStorage {
  append(entries: Entry[]): void;
  setHardState(hardState: HardState): void;
  applySnapshot(snapshot: Snapshot): void;
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot;
  /** Writes a snapshot image a piece at a time (GroupStorage); without these the image is joined in memory. */
  writeSnapshotPiece?(index: number, piece: number, bytes: Uint8Array): void;
  createSnapshotFromPieces?(index: number, confState: ConfState, pieces: number, byteLength: number): void;
  /** The snapshot with all its data at once (GroupStorage's snapshot() may read a large one over several calls). */
  fullSnapshot?(): Snapshot;
  compact(index: number): void;
}

export interface ReplicaOptions {
  groupId: number;
  nodeId: number;
  raftConfig: RaftConfig;
  storage: ReplicaStorage;
  limits: Limits;
  logger: Logger;
  metrics: NodeMetrics;
  now: () => number;
  /** Called after a snapshot install replaced `store` (watches move to the new one). */
  onStoreReplaced: (replica: Replica) => void;
  /** Called after the members or their addresses changed (the transport follows). */
  onMembershipChanged: (replica: Replica) => void;
  /** Differs on every start of this node's process (see CommandBatch.incarnation). */
  incarnation: number;
}

export class Replica {
  readonly groupId: number;
  readonly nodeId: number;
  readonly raft: RawNode;
  readonly storage: ReplicaStorage;
  store: MvccStore;
  alarms: Set<string>;
  members: Map<number, Member>;
  removed: Set<number>;
  leaseRenewedAt: Map<number, number>;
  /** Index of the entry being applied (lease renewals are stamped with it). */
  private applyingIndex = 0;
  auth: AuthStore;
  applied: number;
  confState: ConfState;
  leaderId = 0;
  term = 0;
  private syncedTerm: number;
  private syncedVote: number;
  isLeader = false;
  readonly leaseClock: LeaseClock;

  private readonly limits: Limits;
  private readonly logger: Logger;
  private readonly metrics: NodeMetrics;
  private readonly now: () => number;
  private readonly onStoreReplaced: (replica: Replica) => void;
  private readonly onMembershipChanged: (replica: Replica) => void;
  /** Raft calls from outside the loop (client requests, transport callbacks), run at the next turn. */
  private raftOps: (() => void)[] = [];
  private snapshotRequested = false;
  /** Builds started again in a row because a compaction invalidated them (each then steps 4× faster). */
  private snapshotRestarts = 0;
  /** Index of the last snapshot stored or installed: a new one must be after it. */
  private snapshotIndex = 0;
  /** The snapshot being built over several turns (snapshotStep), or null. */
  private snapshotBuild: { builder: SnapshotBuilder; index: number; dataBytes: number; confState: ConfState; startedAtMs: number; pieces: Uint8Array[]; pieceCount: number } | null = null;
  private nextCommandId = 1;
  private readonly incarnation: number;
  private queuedCommands: ProposedCommand[] = [];
  /** ChurnMap, as readBatches: thousands of requests a second pass through (src/util/churn-map.ts). */
  private readonly proposals = new ChurnMap<number, Waiter>();
  private queuedReads: ReadWaiter[] = [];
  private readonly readBatches = new ChurnMap<string, ReadBatch>();
  private nextReadContext = 1;
  private appliedSinceSnapshot = 0;
  /** Bytes of log entries applied since the last snapshot's index. */
  private appliedBytesSinceSnapshot = 0;
  /** Keys and values the last snapshot (loaded at start, installed, or built) encoded: MvccStore.dataBytes then. */
  private lastSnapshotBytes = 0;

  constructor(options: ReplicaOptions) {
    this.groupId = options.groupId;
    this.nodeId = options.nodeId;
    this.storage = options.storage;
    this.limits = options.limits;
    this.logger = options.logger;
    this.metrics = options.metrics;
    this.now = options.now;
    this.onStoreReplaced = options.onStoreReplaced;
    this.onMembershipChanged = options.onMembershipChanged;
    this.incarnation = options.incarnation;
    this.leaseClock = new LeaseClock(options.now);
    const snapshot = this.storage.fullSnapshot?.() ?? this.storage.snapshot();
    ({ store: this.store, alarms: this.alarms, members: this.members, removed: this.removed, auth: this.auth, leaseRenewedAt: this.leaseRenewedAt } =
      decodeSnapshotData(snapshot.data));
    this.applied = snapshot.metadata.index;
    this.snapshotIndex = snapshot.metadata.index;
    this.lastSnapshotBytes = this.store.dataBytes;
    const initial = this.storage.initialState();
    this.confState = initial.confState;
    this.syncedTerm = initial.hardState.term;
    this.syncedVote = initial.hardState.vote;
    this.raft = new RawNode({ ...options.raftConfig, applied: this.applied }, this.storage);
    this.leaseClock.restartAll(this.store);
  }

  /** Queues a command for the next turn; resolves with its result once applied on this node. */
  propose(cmd: Command): Promise<unknown> {
    if (this.proposals.size + this.queuedCommands.length >= this.limits.maxPendingProposals) {
      return Promise.reject(Errors.tooManyRequests());
    }
    const id = this.nextCommandId++;
    return new Promise((resolve, reject) => {
      this.proposals.set(id, { resolve, reject, deadlineMs: this.now() + this.limits.requestTimeoutMs });
      this.queuedCommands.push({ id, cmd });
    });
  }

  /** Runs `run` against the state machine once it is at least as new as the leader's commit index now. */
  linearizableRead<T>(run: () => T): Promise<T> {
    if (this.queuedReads.length + this.readBatches.size >= this.limits.maxPendingReads) {
      return Promise.reject(Errors.tooManyRequests());
    }
    return new Promise<T>((resolve, reject) => {
      const waiter: ReadWaiter = {
        resolve: resolve as (value: unknown) => void,
        reject,
        deadlineMs: this.now() + this.limits.requestTimeoutMs,
        run,
      };
      this.queuedReads.push(waiter);
    });
  }

  /**
   * A LeaseKeepAlive on the leader: renewed in memory, without a log entry, once a quorum has
   * confirmed this replica still leads (a ReadIndex round, as etcd's LeaseRenew ensures its
   * leadership first). The read also makes every entry of earlier terms applied before the renewal,
   * so a revoke decided by a previous leader can never apply after this answer. Resolves to the
   * granted TTL, or null when this replica does not lead (the caller forwards the keepalive or
   * proposes it); rejects with leaseNotFound for a lease that is gone or whose expiry was decided.
   */
  renewLeaseOnLeader(id: number): Promise<{ header: ResponseHeader; id: number; ttl: number } | null> {
    if (!this.isLeader) return Promise.resolve(null);
    return this.linearizableRead(() => {
      if (this.raft.softState().role !== 'leader') return null;
      const lease = this.store.leaseTimeToLive(id, false);
      if (!this.leaseClock.renewIfLive(id, lease.grantedTtl)) throw Errors.leaseNotFound();
      return { header: lease.header, id, ttl: lease.grantedTtl };
    });
  }

  /** Queues a command nobody waits for (lease revokes decided by this leader). */
  proposeInternal(cmd: Command): void {
    if (this.queuedCommands.length >= this.limits.maxPendingProposals) return; // retried on a later tick
    this.queuedCommands.push({ id: 0, cmd });
  }

  /** Leader only: proposes a revoke for every lease whose deadline passed. */
  expireLeases(): void {
    // The core's role, not `isLeader`: a message stepped earlier this turn may have deposed us.
    if (this.raft.softState().role !== 'leader') return;
    for (const id of this.leaseClock.takeExpired(this.limits.maxCommandsPerEntry)) {
      this.logger.info({ group: this.groupId, lease: id }, 'lease expired; revoking');
      this.proposeInternal({ op: 'leaseRevoke', id, decidedAt: this.applied });
    }
  }

  hasQueuedInput(): boolean {
    return this.queuedCommands.length > 0 || this.queuedReads.length > 0;
  }

  /** Turns this turn's queued commands into as few Raft entries as the limits allow. */
  flushProposals(): void {
    if (this.leaderId === 0) return; // Raft would drop them; keep them until a leader is known.
    let start = 0;
    while (start < this.queuedCommands.length) {
      let end = start;
      let bytes = 0;
      while (end < this.queuedCommands.length && end - start < this.limits.maxCommandsPerEntry) {
        const size = estimateBytes(this.queuedCommands[end].cmd);
        if (end > start && bytes + size > this.limits.maxEntryBytes) break;
        bytes += size;
        end++;
      }
      const commands = this.queuedCommands.slice(start, end);
      try {
        trace('propose');
        this.raft.propose(encodeBatch({ origin: this.nodeId, incarnation: this.incarnation, commands }));
      } catch (error) {
        if (!(error instanceof ProposalDroppedError)) throw error;
        this.logger.debug({ group: this.groupId, reason: error.reason }, 'proposal dropped by raft; retrying');
        // No leader (or a transfer in progress): keep the rest queued and retry next tick.
        this.queuedCommands = this.queuedCommands.slice(start);
        return;
      }
      start = end;
    }
    this.queuedCommands = [];
  }

  /** One ReadIndex request for every read queued this turn. */
  flushReads(): void {
    if (this.queuedReads.length === 0 || this.leaderId === 0) return;
    const context = String(this.nextReadContext++);
    this.readBatches.set(context, { waiters: this.queuedReads, index: -1, requestedAtMs: this.now() });
    this.queuedReads = [];
    this.raft.readIndex(Buffer.from(context));
  }

  /** True while a local request waits for an apply to answer it (a write, or a linearizable read). */
  get hasLocalWaiters(): boolean {
    return this.proposals.size > 0 || this.readBatches.size > 0;
  }

  /**
   * A leader may send a Ready's messages before the Ready is durable when its term and vote are
   * already on disk (Raft thesis 10.2.1): they are appends and heartbeats, and the core counts
   * the leader's own entries only once they are persisted. Anything else waits for the fsync.
   */
  maySendBeforeSync(rd: Ready): boolean {
    const leader = rd.softState ? rd.softState.role === 'leader' : this.isLeader;
    if (!leader || rd.snapshot !== null) return false;
    return rd.hardState === null || (rd.hardState.term === this.syncedTerm && rd.hardState.vote === this.syncedVote);
  }

  /** The Ready's state is durable now. */
  synced(rd: Ready): void {
    if (rd.hardState) {
      this.syncedTerm = rd.hardState.term;
      this.syncedVote = rd.hardState.vote;
    }
  }

  /** Applies what a Ready hands over: committed entries (durable on a quorum already), a snapshot, read states. */
  applyReady(rd: Ready): void {
    if (rd.softState) this.observeSoftState(rd.softState.leader, rd.softState.role === 'leader');
    if (rd.hardState) this.term = rd.hardState.term;
    if (rd.snapshot && rd.snapshot.metadata.index > this.applied) this.installSnapshot(rd.snapshot);
    for (const entry of rd.committedEntries) this.applyEntry(entry);
    for (const rs of rd.readStates) {
      const batch = this.readBatches.get(Buffer.from(rs.context).toString());
      if (batch) batch.index = rs.index;
    }
    this.serveReads();
  }

  private observeSoftState(leaderId: number, isLeader: boolean): void {
    if (leaderId !== this.leaderId) {
      this.metrics.leaderChanges.inc();
      this.logger.info({ group: this.groupId, leader: leaderId.toString(16), term: this.raft.status().hardState.term }, 'leader changed');
    }
    if (isLeader && !this.isLeader) this.leaseClock.restartAll(this.store);
    if (!isLeader && this.isLeader) {
      // Expiries this node decided as leader are no longer its call.
      this.queuedCommands = this.queuedCommands.filter((c) => !(c.id === 0 && c.cmd.op === 'leaseRevoke'));
    }
    this.isLeader = isLeader;
    this.leaderId = leaderId;
    this.metrics.hasLeader.set(leaderId === 0 ? 0 : 1);
    this.metrics.isLeader.set(isLeader ? 1 : 0);
  }

  private installSnapshot(snapshot: Snapshot): void {
    ({ store: this.store, alarms: this.alarms, members: this.members, removed: this.removed, auth: this.auth, leaseRenewedAt: this.leaseRenewedAt } =
      decodeSnapshotData(snapshot.data));
    this.applied = snapshot.metadata.index;
    this.confState = snapshot.metadata.confState;
    this.snapshotBuild = null; // an image of the replaced state is of no use
    this.snapshotIndex = snapshot.metadata.index;
    this.onMembershipChanged(this);
    this.restartSnapshotCounts();
    this.lastSnapshotBytes = this.store.dataBytes;
    this.leaseClock.restartAll(this.store);
    this.onStoreReplaced(this);
    this.logger.info({ group: this.groupId, index: this.applied }, 'installed snapshot');
  }

  private applyEntry(entry: Entry): void {
    if (entry.index <= this.applied) return;
    assert(entry.index === this.applied + 1, () => `apply gap: applied ${this.applied}, next ${entry.index}`);
    if (entry.type === 'conf') {
      // Not persisted here: after a restart the log after the last snapshot is applied again,
      // so the durable conf state is the one as of the snapshot (see snapshotStep).
      const change = decodeConfChange(entry.data);
      this.confState = this.raft.applyConfChange(change);
      this.applyMembership(change);
    } else if (entry.data.length > 0) {
      trace('apply');
      this.applyingIndex = entry.index;
      const batch = decodeBatch(entry.data);
      const mine = batch.origin === this.nodeId && batch.incarnation === this.incarnation;
      this.metrics.proposalsApplied.inc(batch.commands.length);
      for (const { id, cmd } of batch.commands) this.applyCommand(cmd, mine ? this.proposals.get(id) : undefined, id);
      // Count client commands, not entries: one entry may carry hundreds of them.
      this.appliedSinceSnapshot += batch.commands.length - 1;
    }
    this.applied = entry.index;
    this.appliedSinceSnapshot++;
    this.appliedBytesSinceSnapshot += entry.data.byteLength;
  }

  private applyMembership(change: ConfChange): void {
    const member = decodeConfContext(change.context);
    for (const single of change.changes) {
      if (single.type === 'removeNode') {
        this.members.delete(single.nodeId);
        this.removed.add(single.nodeId);
      } else if (member && member.id === single.nodeId && !this.members.has(member.id)) {
        this.members.set(member.id, member);
        // A new member may need a snapshot that already names it (it refuses older ones).
        this.snapshotRequested = true;
      }
    }
    this.logger.info({ group: this.groupId, confState: this.confState }, 'membership changed');
    this.onMembershipChanged(this);
  }

  /** Runs `op` on the Raft core at the start of the next turn (never while a Ready is outstanding). */
  enqueueRaftOp(op: () => void): void {
    this.raftOps.push(op);
  }

  runRaftOps(): void {
    const ops = this.raftOps;
    this.raftOps = [];
    for (const op of ops) op();
  }

  private applyCommand(cmd: Command, waiter: Waiter | undefined, id: number): void {
    let result: unknown;
    try {
      result = this.execute(cmd);
    } catch (error) {
      if (!(error instanceof EtcdError)) throw error;
      if (waiter) {
        this.proposals.delete(id);
        waiter.reject(error);
      }
      return;
    }
    if (waiter) {
      this.proposals.delete(id);
      waiter.resolve(result);
    }
  }

  private execute(cmd: Command): unknown {
    // As etcd's appliers: authorization first (its outcome depends only on replicated state), then the quota.
    const stamp = stampOf(cmd);
    if (stamp !== undefined) recheckAuth(this.auth, stamp, () => commandNeeds(cmd, this.store));
    if (this.noSpace && writesSpace(cmd)) throw Errors.noSpace();
    switch (cmd.op) {
      case 'put':
        return this.store.put(cmd.req).response;
      case 'deleteRange':
        return this.store.deleteRange(cmd.req).response;
      case 'txn':
        return this.store.txn(cmd.req).response;
      case 'compact':
        return this.store.compact(cmd.req).response;
      case 'leaseGrant': {
        const { response } = this.store.leaseGrant(cmd.id, cmd.ttlSeconds);
        this.leaseClock.renewed(response.id, response.ttl);
        this.leaseRenewedAt.set(response.id, this.applyingIndex);
        return response;
      }
      case 'leaseRevoke': {
        // An expiry decided before the lease's last keepalive applied is void: that keepalive was
        // answered "alive", so the lease lives on (etcd's leader never expires a renewed lease).
        const renewedAt = this.leaseRenewedAt.get(cmd.id) ?? 0;
        if (cmd.decidedAt !== undefined && renewedAt > cmd.decidedAt) return { header: { revision: this.store.currentRevision } };
        this.leaseClock.revoked(cmd.id);
        this.leaseRenewedAt.delete(cmd.id);
        return this.store.leaseRevoke(cmd.id).response;
      }
      case 'alarm':
        return this.applyAlarm(cmd.action, cmd.memberId, cmd.alarm);
      case 'memberAttrs':
        return this.applyMemberAttrs(cmd.id, cmd.attrs);
      case 'auth':
        return this.auth.apply(cmd.req);
      case 'leaseKeepAlive': {
        const lease = this.store.leaseTimeToLive(cmd.id, false);
        this.leaseClock.renewed(cmd.id, lease.grantedTtl);
        this.leaseRenewedAt.set(cmd.id, this.applyingIndex);
        return { header: lease.header, id: cmd.id, ttl: lease.grantedTtl };
      }
      default:
        return unreachable(cmd, 'command');
    }
  }

  /** A member's name and client URLs (published by the member itself) or peer URLs (MemberUpdate). */
  private applyMemberAttrs(id: number, attrs: Partial<Omit<Member, 'id'>>): boolean {
    const member = this.members.get(id);
    if (!member) throw Errors.memberNotFound();
    this.members.set(id, { ...member, ...attrs });
    this.onMembershipChanged(this);
    return true;
  }

  /** etcd's alarm store: activate/deactivate return the alarms they changed; get lists matches. */
  private applyAlarm(action: 'get' | 'activate' | 'deactivate', memberId: string, alarm: string): { memberId: string; alarm: string }[] {
    const parse = (entry: string) => {
      const [member, type] = entry.split(':');
      return { memberId: member, alarm: type };
    };
    const key = `${memberId}:${alarm}`;
    if (action === 'activate') {
      if (alarm === 'none') return [];
      this.alarms.add(key);
      return [parse(key)];
    }
    if (action === 'deactivate') return this.alarms.delete(key) ? [parse(key)] : [];
    return [...this.alarms].map(parse).filter((a) => alarm === 'none' || a.alarm === alarm);
  }

  /** True while a NOSPACE alarm is active: only reads, deletes and compaction are served. */
  get noSpace(): boolean {
    for (const entry of this.alarms) if (entry.endsWith(':nospace')) return true;
    return false;
  }

  private serveReads(): void {
    for (const [context, batch] of this.readBatches) {
      if (batch.index < 0 || batch.index > this.applied) continue;
      this.readBatches.delete(context);
      for (const waiter of batch.waiters) {
        try {
          waiter.resolve(waiter.run());
        } catch (error) {
          waiter.reject(error as Error);
        }
      }
    }
  }

  /**
   * True when a snapshot is due or being built: the host then calls snapshotStep each turn. One is
   * due after --snapshot-count applied requests (as etcd), and, once the last one encoded at least
   * snapshotAmortizeFromBytes of keys and values, only when the log applied since holds as many
   * bytes. A snapshot encodes the whole state, history included, so without that a large state
   * would be rewritten every --snapshot-count writes however small they are: this bounds what
   * snapshots encode to what the log took, and a restart then replays no more log than it loads as
   * a snapshot. A snapshot is measured by the keys and values it encodes (MvccStore.dataBytes), not
   * by its compressed image: the encoding costs by those, and repetitive values compress to a
   * small image. Small states (tests, the simulator) snapshot by count alone.
   */
  wantsSnapshot(): boolean {
    if (this.snapshotBuild !== null || this.snapshotRequested) return true;
    if (this.appliedSinceSnapshot < this.limits.snapshotCount) return false;
    return this.lastSnapshotBytes < this.limits.snapshotAmortizeFromBytes || this.appliedBytesSinceSnapshot >= this.lastSnapshotBytes;
  }

  /** The requests and log bytes that make the next snapshot due are counted from here. */
  private restartSnapshotCounts(): void {
    this.appliedSinceSnapshot = 0;
    this.appliedBytesSinceSnapshot = 0;
  }

  /**
   * One step of snapshotting: starts an image of the state at `applied` if none is being built,
   * encodes `snapshotChunksPerTurn` more chunks of it, and once every chunk is done stores it and
   * truncates the log behind it. A large state is encoded over many turns while the replica keeps
   * applying and serving (the image stays the one of its starting index: snapshots.ts); a
   * compaction in between makes it start over. Returns true when the step stored something: a piece
   * of the image (the host then waits while too many pieces are unwritten) or the finished snapshot
   * (the host commits its record).
   */
  snapshotStep(): boolean {
    if (this.snapshotBuild === null) {
      if (this.applied <= this.snapshotIndex) {
        // Nothing applied since the last one (a snapshot was just installed): it already is the image.
        this.snapshotRequested = false;
        this.restartSnapshotCounts();
        return false;
      }
      this.snapshotBuild = {
        builder: new SnapshotBuilder(this),
        index: this.applied,
        dataBytes: this.store.dataBytes,
        confState: copyConfState(this.confState),
        startedAtMs: this.now(),
        pieces: [],
        pieceCount: 0,
      };
      this.restartSnapshotCounts(); // counted from the snapshot's index
      this.snapshotRequested = false;
    }
    const build = this.snapshotBuild;
    let done: boolean;
    try {
      // Each restart (a compaction invalidated the build) takes 4× bigger steps, so a build
      // finishes even while compactions come faster than it would at the normal pace.
      const escalation = 4 ** Math.min(this.snapshotRestarts, maxSnapshotEscalation);
      done = build.builder.step(this.limits.snapshotChunksPerTurn * escalation);
    } catch (error) {
      if (!(error instanceof SnapshotInvalidatedError)) throw error;
      this.snapshotBuild = null;
      this.snapshotRequested = true; // start again at the next turn
      this.snapshotRestarts += 1;
      this.logger.info({ index: build.index, reason: error.message, restarts: this.snapshotRestarts }, 'snapshot started again');
      return false;
    }
    // Each step's bytes go to storage now (a piece per turn, so the final write is small), or are
    // kept for one createSnapshot when the storage cannot take pieces.
    const piece = build.builder.take();
    const written = piece.length > 0 && this.storage.writeSnapshotPiece !== undefined;
    if (written) this.storage.writeSnapshotPiece?.(build.index, build.pieceCount, piece);
    else if (piece.length > 0) build.pieces.push(piece);
    if (piece.length > 0) build.pieceCount += 1;
    if (!done) return written;
    this.snapshotBuild = null;
    this.snapshotRestarts = 0;
    if (this.storage.createSnapshotFromPieces) {
      this.storage.createSnapshotFromPieces(build.index, build.confState, build.pieceCount, build.builder.byteLength);
    } else {
      this.storage.createSnapshot(build.index, build.confState, Buffer.concat(build.pieces));
    }
    this.snapshotIndex = build.index;
    this.lastSnapshotBytes = build.dataBytes;
    const compactTo = build.index - this.limits.snapshotCatchupEntries;
    if (compactTo > this.storage.firstIndex()) this.storage.compact(compactTo);
    this.metrics.snapshotsTaken.inc();
    this.logger.info(
      { index: build.index, bytes: build.builder.byteLength, chunks: build.builder.chunkCount, ms: Math.round(this.now() - build.startedAtMs) },
      'took snapshot',
    );
    return true;
  }

  /** Fails requests whose deadline passed: the outcome of a timed-out write is unknown, as in etcd. */
  expireRequests(): void {
    const now = this.now();
    const error = () => (this.leaderId === 0 ? Errors.noLeader() : Errors.timeout());
    for (const [id, waiter] of this.proposals) {
      if (waiter.deadlineMs > now) break;
      this.proposals.delete(id);
      this.metrics.proposalsFailed.inc();
      waiter.reject(error());
    }
    this.metrics.proposalsPending.set(this.proposals.size);
    this.queuedCommands = this.queuedCommands.filter((c) => c.id === 0 || this.proposals.has(c.id));
    for (const [context, batch] of this.readBatches) {
      if (batch.waiters[0].deadlineMs > now) break;
      this.readBatches.delete(context);
      for (const waiter of batch.waiters) waiter.reject(error());
    }
    for (const [context, batch] of this.readBatches) {
      if (batch.index >= 0 || now - batch.requestedAtMs < readIndexRetryMs || this.leaderId === 0) continue;
      batch.requestedAtMs = now;
      this.raft.readIndex(Buffer.from(context));
    }
    this.queuedReads = this.queuedReads.filter((w) => w.deadlineMs > now || (w.reject(error()), false));
  }

  /** Rejects everything waiting (the node is stopping). */
  failAll(error: EtcdError): void {
    for (const waiter of this.proposals.values()) waiter.reject(error);
    for (const batch of this.readBatches.values()) for (const waiter of batch.waiters) waiter.reject(error);
    for (const waiter of this.queuedReads) waiter.reject(error);
    this.proposals.clear();
    this.readBatches.clear();
    this.queuedReads = [];
    this.queuedCommands = [];
  }
}
