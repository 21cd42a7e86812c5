// The multi-Raft loop (TiKV's batch system), with its I/O passed in so that production (LMDB,
// TCP) and a simulator (memory, a simulated network) drive the same code. One turn: feed input,
// collect every replica's Ready, persist them in one commit (one fsync), send, apply, advance.
import type { Logger } from 'pino';
import type { Message, RaftConfig, Ready } from '../raft/index.ts';
import type { Limits } from './config.ts';
import type { NodeMetrics } from './metrics.ts';
import { Replica } from './replica.ts';
import type { ReplicaStorage } from './replica.ts';
import { trace } from '../util/index.ts';

export interface HostStorage {
  group(groupId: number): ReplicaStorage;
  /** Makes everything staged so far durable (one fsync for every group). */
  commit(): Promise<void>;
  /** Resolves when the snapshot pieces written beside the commits are within their bound (NodeStorage). */
  snapshotPiecesWithinBound?(): Promise<void>;
}

export interface HostTransport {
  send(groupId: number, msg: Message): void;
  /** Writes what send() queued now instead of later in the loop iteration (the turn's messages go out at once). */
  flush?(): void;
}

export interface HostOptions {
  nodeId: number;
  storage: HostStorage;
  transport: HostTransport;
  limits: Limits;
  logger: Logger;
  metrics: NodeMetrics;
  /** Milliseconds on a monotonic clock (simulated time under simulation). */
  now: () => number;
  raftConfig: (groupId: number) => RaftConfig;
  onStoreReplaced: (replica: Replica) => void;
  onMembershipChanged: (replica: Replica) => void;
  /** Called once per turn that ticked, per replica: node-level duties (quota, publishing itself). */
  onTick: (replica: Replica) => void;
  /** A peer says this member was removed. */
  onRemoved: (how: string) => void;
  /**
   * Must differ on every start of this node (a random number in production; a counter under
   * simulation): it keeps replayed log entries from answering new requests (CommandBatch).
   */
  incarnation?: number;
}

/** The context of a heartbeat response that tells a removed member it was removed. */
const removedNotice = Buffer.from('tessera:member-removed');
/** Ticks handled in one turn at most; a loop that fell behind catches up gradually instead of stalling. */
const maxTicksPerTurn = 5;
/** Inbound peer messages stepped in one turn at most; the rest wait for the next turn. */
const maxInboxPerTurn = 10_000;
/** Bound on queued inbound messages; past it new ones are dropped (Raft tolerates loss). */
const maxInbox = 100_000;

export class ReplicaHost {
  readonly replicas = new Map<number, Replica>();
  private inbox: { groupId: number; msg: Message }[] = [];
  private pendingTicks = 0;
  private readonly noticeSentAtMs = new Map<number, number>();

  constructor(private readonly options: HostOptions) {}

  get nodeId(): number {
    return this.options.nodeId;
  }

  openReplica(groupId: number): Replica {
    const o = this.options;
    const replica = new Replica({
      groupId,
      nodeId: o.nodeId,
      raftConfig: o.raftConfig(groupId),
      storage: o.storage.group(groupId),
      limits: o.limits,
      logger: o.logger.child({ group: groupId }),
      metrics: o.metrics,
      now: o.now,
      onStoreReplaced: o.onStoreReplaced,
      onMembershipChanged: o.onMembershipChanged,
      incarnation: o.incarnation ?? 0,
    });
    this.replicas.set(groupId, replica);
    return replica;
  }

  /** A peer message for the next turn. */
  receive(groupId: number, msg: Message): void {
    if (this.inbox.length >= maxInbox) return;
    this.inbox.push({ groupId, msg });
  }

  /** One Raft tick for the next turn. */
  tick(): void {
    this.pendingTicks++;
  }

  hasPendingInput(): boolean {
    return this.inbox.length > 0 || this.pendingTicks > 0;
  }

  /** One turn. Returns true if more work is waiting. */
  async turn(): Promise<boolean> {
    trace('turn');
    this.feedInput();
    const readies: [Replica, Ready][] = [];
    for (const replica of this.replicas.values()) {
      if (replica.raft.hasReady()) readies.push([replica, replica.raft.ready()]);
    }
    if (readies.length === 0) {
      if (this.snapshotSteps()) await this.commitSnapshotStep();
      return this.snapshotting;
    }
    let mustSync = false;
    for (const [replica, rd] of readies) {
      if (rd.snapshot) replica.storage.applySnapshot(rd.snapshot);
      if (rd.entries.length > 0) replica.storage.append(rd.entries);
      if (rd.hardState) replica.storage.setHardState(rd.hardState);
      mustSync ||= rd.mustSync || rd.snapshot !== null;
    }
    // Order of a turn:
    // 1. A leader whose term and vote are already durable sends at once (it counts its own log only
    //    after advance). Appends are flushed before the fsync is issued, since a follower's fsync
    //    is what a commit waits for. A commit index alone waits for the transport's own flush
    //    later in the loop iteration, so that this turn's answers go out first, unless this node
    //    has nothing to answer: then a follower's client waits for that commit index.
    // 2. The fsync is issued, and while it runs, committed entries (durable on a quorum since an
    //    earlier turn) are applied and answered, as etcd's raftNode does. Issuing it after the
    //    apply kept the disk idle for as long as the apply took, every turn.
    // 3. Once it is durable, everything else is sent (follower acks, votes, heartbeat answers) and
    //    flushed, except a follower's acks of a commit index alone: no commit waits for them, so
    //    they go out after this turn's answers, as in 1.
    const early = new Set(readies.filter(([replica, rd]) => replica.maySendBeforeSync(rd)).map(([r]) => r));
    for (const [replica, rd] of readies) if (early.has(replica)) this.send(replica, rd);
    if (readies.some(([replica, rd]) => early.has(replica) && (rd.entries.length > 0 || !replica.hasLocalWaiters))) this.options.transport.flush?.();
    const durable = mustSync ? this.commit() : null;
    durable?.catch(() => undefined); // awaited below; if applying throws first, the loop stops anyway
    if (durable !== null) trace('commit');
    for (const [replica, rd] of readies) replica.applyReady(rd);
    if (durable !== null) {
      await durable;
      trace('durable');
      // Anything applying staged (membership metadata) is made durable before the turn ends, as before.
      await this.options.storage.commit();
    }
    this.options.metrics.turns.inc();
    this.options.metrics.entriesPerTurn.observe(readies.reduce((n, [, rd]) => n + rd.entries.length, 0));
    for (const [replica, rd] of readies) {
      if (!early.has(replica)) this.send(replica, rd);
      replica.synced(rd);
      replica.raft.advance();
    }
    if (readies.some(([replica, rd]) => !early.has(replica) && !onlyCommitAcks(rd))) this.options.transport.flush?.();
    if (this.snapshotSteps()) await this.commitSnapshotStep();
    return this.hasPendingInput() || this.snapshotting || readies.some(([r]) => r.raft.hasReady() || r.hasQueuedInput());
  }

  /** Commits what a snapshot step stored and waits while too many of its pieces are unwritten. */
  private async commitSnapshotStep(): Promise<void> {
    await this.options.storage.commit();
    await this.options.storage.snapshotPiecesWithinBound?.();
  }

  /** A step of every snapshot due or being built; true if one stored a piece or a snapshot. */
  private snapshotSteps(): boolean {
    let stored = false;
    for (const replica of this.replicas.values()) if (replica.wantsSnapshot() && replica.snapshotStep()) stored = true;
    return stored;
  }

  /** True while some replica is building a snapshot over several turns: the loop must keep turning. */
  get snapshotting(): boolean {
    for (const replica of this.replicas.values()) if (replica.wantsSnapshot()) return true;
    return false;
  }

  private async commit(): Promise<void> {
    const started = this.options.now();
    await this.options.storage.commit();
    this.options.metrics.fsyncSeconds.observe((this.options.now() - started) / 1000);
  }

  private send(replica: Replica, rd: Ready): void {
    for (const msg of rd.messages) this.options.transport.send(replica.groupId, msg);
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
      if (ticks > 0) this.options.onTick(replica);
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
      if (!replica.removed.has(this.nodeId)) this.options.onRemoved(`member ${msg.from.toString(16)} reports it`);
      return;
    }
    if (replica.removed.has(msg.from)) {
      const now = this.options.now();
      if (now - (this.noticeSentAtMs.get(msg.from) ?? -Infinity) > 1_000) {
        this.noticeSentAtMs.set(msg.from, now);
        this.options.transport.send(groupId, { type: 'heartbeatResp', from: this.nodeId, to: msg.from, term: 0, context: removedNotice });
      }
      return;
    }
    trace('step', msg.type);
    replica.raft.step(msg);
  }
}

/** A Ready that persists nothing and only acknowledges appends: a follower learning a commit index. */
function onlyCommitAcks(rd: Ready): boolean {
  return !rd.mustSync && rd.entries.length === 0 && rd.snapshot === null && rd.messages.every((msg) => msg.type === 'appResp');
}
