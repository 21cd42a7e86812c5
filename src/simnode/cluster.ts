// N real ReplicaHosts (src/server: the multi-Raft loop, Replica, MvccStore) in one process, driven
// in simulated time: the simulator injects ticks, delivers messages from the seeded network, and
// runs each host's turns in a seeded order, awaiting only promises it controls (simulated fsyncs).
import { pino } from 'pino';
import type { Logger } from 'pino';
import { defaultRaftConfig, MemoryStorage, ProposalDroppedError } from '../raft/index.ts';
import type { Message, RaftConfig } from '../raft/index.ts';
import { bootstrapEntries, encodeConfContext, LimitsSchema, NodeMetrics, ReplicaHost } from '../server/index.ts';
import type { Limits, Member, Replica } from '../server/index.ts';
import type { MvccStore, WatchEvent } from '../mvcc/index.ts';
import { nodeRng, SimNetwork } from '../sim/index.ts';
import type { Checker, Envelope, NetworkFaults, SimRandom } from '../sim/index.ts';
import { assert } from '../util/index.ts';
import { SimDisk } from './storage.ts';
import type { SimHostStorage } from './storage.ts';
import type { Trace } from './trace.ts';

/** The one Raft group (range) every node hosts; the server has a single range today. */
export const GROUP_ID = 1;
/** Simulated time advances in steps of this many ms; everything inside a step happens "at once". */
export const QUANTUM_MS = 10;
/** The server's default --heartbeat-interval: one Raft tick. */
export const TICK_MS = 100;
/** The server's default --election-timeout / --heartbeat-interval. */
export const ELECTION_TICKS = 10;
/** Bound on recorded lease clock events (revokes proposed, renewals applied by leaders) per run. */
const MAX_LEASE_CLOCK_EVENTS = 1_000_000;
/** Delivery/turn rounds within one step; messages still due after them wait for the next step. */
const MAX_ROUNDS_PER_STEP = 8;
/** Turns one host runs back to back within one round (production loops while a turn has more work). */
const MAX_TURNS_PER_ROUND = 4;

/** Swarm knobs of the cluster itself (the nemesis and the clients have their own). */
export interface ClusterProfile {
  /** Delays are counted in steps of QUANTUM_MS. */
  network: NetworkFaults;
  /** Base fsync latency in ms (0 = durable within the turn). */
  commitLatencyMs: number;
  /** Chance (‰) that one fsync stalls for 100–800 ms. */
  slowCommitPermille: number;
  /** Chance (‰) that a node's tick comes late (a busy event loop), by up to 60 ms. */
  lateTickPermille: number;
  limits: Partial<Limits>;
  raft: Partial<RaftConfig>;
  /** Let the network duplicate forwarded proposals too (TCP never does; see sendOnNetwork). */
  duplicateProposals: boolean;
}

/**
 * Server bugs this simulator found and that are not fixed yet (see docs/TESTING.md). A run may
 * work around them so that a sweep can look for other bugs; by default nothing is worked around.
 * - `keepalive-after-expiry`: a keepalive is answered ok when it applies, whatever the leader
 *   decided meanwhile: a leader proposes the revoke of a lease whose deadline passed by its clock
 *   even while a keepalive for it sits in its log uncommitted or is queued in the same turn; the
 *   keepalive applies first, answers ok, and the lease is gone right after (etcd's leader renews at
 *   once and answers "lease not found" for an expired lease). Worked around by not failing the
 *   lease-expiry check when exactly this happened.
 * - `stale-revoke`: a revoke decided by a replica that is no longer the real leader still commits:
 *   Replica.expireLeases trusts `isLeader`, refreshed only from the Ready after the turn, so a
 *   leader deposed earlier in the same turn (CheckQuorum on this tick, a higher term stepped in)
 *   still proposes revokes; and a revoke Raft refuses (no leader, a leadership transfer in
 *   progress) stays queued with no deadline. Either way it is forwarded to a later leader, which
 *   commits it although it kept the lease alive: the lease ends before its TTL. Worked around by
 *   not failing the lease-expiry check when exactly this happened.
 */
export type KnownBug = 'keepalive-after-expiry' | 'stale-revoke';
export const KNOWN_BUGS: readonly KnownBug[] = ['keepalive-after-expiry', 'stale-revoke'];

/** What the leaders' lease clocks did, observed without changing it (for the lease-expiry check). */
export interface LeaseClockEvent {
  kind: 'revokeProposed' | 'renewedOnLeader';
  id: number;
  node: number;
  /** The replica's term then (what it believes it leads or follows in). */
  term: number;
  /** Whether the Raft core itself was leader of that term then (the replica may lag behind it). */
  raftLeader: boolean;
  ms: number;
}

/** A planted bug, to prove the checks catch it (never on in a normal run). */
export type PlantedFault = 'stale-reads' | 'no-fsync' | 'renew-after-expiry';
export const PLANTED_FAULTS: readonly PlantedFault[] = ['stale-reads', 'no-fsync', 'renew-after-expiry'];

/** What the checks and the report need to know about a failure. */
export class SimFailure extends Error {
  override name = 'SimFailure';
  constructor(
    readonly check: string,
    message: string,
    /** Simulated ms where the evidence is (e.g. the op that was answered wrongly), for the report's trace. */
    readonly focusMs: number | null = null,
  ) {
    super(`${check}: ${message}`);
  }
}

export interface SimNode {
  readonly id: number;
  readonly disk: SimDisk;
  incarnation: number;
  host: ReplicaHost | null;
  storage: SimHostStorage | null;
  /** Crashed nodes are down; paused nodes (SIGSTOP) keep their state but neither tick nor turn. */
  up: boolean;
  paused: boolean;
  /** Removed from the group and shut down for good. */
  removed: boolean;
  /** Why the node must shut down at the end of this step (told it was removed, or never admitted). */
  stopRequested: string | null;
  nextTickMs: number;
  /** The turn in progress (waiting for its fsync), if any. */
  turn: TurnState | null;
  /** The term in which the checker last saw this node lead (0 = not leading). */
  leaderTerm: number;
}

interface TurnState {
  promise: Promise<void>;
  settled: boolean;
  more: boolean;
  failure: unknown;
}

export interface ClusterOptions {
  seed: number;
  size: number;
  rnd: SimRandom;
  trace: Trace;
  checker: Checker;
  profile: ClusterProfile;
  fault: PlantedFault | null;
  workarounds: ReadonlySet<KnownBug>;
}

/**
 * What the replicas applied, revision by revision, seen through a watch on each replica's store
 * (as a client would watch): two replicas that apply different changes at one revision have
 * diverged (state machine safety), and the revision each value was put at is known even after a
 * compaction, which settles writes whose outcome the client never learned.
 */
export class AppliedRevisions {
  private readonly byRevision = new Map<number, { changes: string; node: number }>();
  readonly putAt = new Map<string, number>();
  /** The first divergence seen (a watch sink must not throw; the run checks this after each step). */
  failure: SimFailure | null = null;

  follow(nodeId: number, store: MvccStore): void {
    const all = new Uint8Array([0]);
    store.watch({ key: all, rangeEnd: all, startRevision: 0, noPut: false, noDelete: false, prevKv: false }, (events) => {
      this.record(nodeId, events);
    });
  }

  private record(nodeId: number, events: readonly WatchEvent[]): void {
    const changes = new Map<number, string[]>();
    for (const event of events) {
      const key = Buffer.from(event.kv.key).toString();
      const value = Buffer.from(event.kv.value).toString();
      const list = changes.get(event.kv.modRevision) ?? [];
      list.push(`${event.type} ${key}=${value} lease ${event.kv.lease}`);
      changes.set(event.kv.modRevision, list);
      if (event.type === 'put' && !this.putAt.has(value)) this.putAt.set(value, event.kv.modRevision);
    }
    for (const [revision, list] of changes) {
      const text = list.join(', ');
      const seen = this.byRevision.get(revision);
      if (seen === undefined) this.byRevision.set(revision, { changes: text, node: nodeId });
      else if (seen.changes !== text) {
        this.failure ??= new SimFailure('state machine safety', `revision ${revision} is [${seen.changes}] on n${seen.node} but [${text}] on n${nodeId}`);
      }
    }
  }
}

/** pino at level silent never formats or writes anything (and reads no clock). */
const silentLogger: Logger = pino({ level: 'silent' });
/** Metrics are write-only for the server code; one registry serves every simulated node. */
let sharedMetrics: NodeMetrics | null = null;
function metrics(): NodeMetrics {
  sharedMetrics ??= new NodeMetrics();
  return sharedMetrics;
}

export function memberOf(id: number): Member {
  return { id, name: `n${id}`, peerUrls: [`http://n${id}.sim:2380`], clientUrls: [] };
}

export class SimCluster {
  readonly nodes = new Map<number, SimNode>();
  readonly network: SimNetwork;
  /** Simulated ms since the start. */
  now = 0;
  /** Steps taken (the network's clock). */
  step = 0;
  readonly stats = { crashes: 0, restarts: 0, pauses: 0, partitions: 0, snapshotsInstalled: 0, transfers: 0, leaderTerms: 0, memberChanges: 0 };
  /** Called after a node crashed or was shut down: its clients' pending ops become unknown. */
  onNodeDown: (id: number) => void = () => {};
  readonly leaseClockEvents: LeaseClockEvent[] = [];
  /** Every revision any replica applied, as its watch events: divergence shows at once. */
  readonly applied = new AppliedRevisions();
  private readonly limits: Limits;
  private nextNodeId: number;

  constructor(private readonly options: ClusterOptions) {
    this.network = new SimNetwork(options.rnd, options.profile.network);
    this.limits = LimitsSchema.parse(options.profile.limits);
    const members = Array.from({ length: options.size }, (_, i) => memberOf(i + 1));
    this.nextNodeId = options.size + 1;
    for (const member of members) {
      const disk = new SimDisk();
      const memory = new MemoryStorage();
      const entries = bootstrapEntries(members);
      memory.append(entries);
      memory.setHardState({ term: 1, vote: 0, commit: entries.length });
      disk.seed(GROUP_ID, memory);
      this.addNode(member.id, disk);
    }
  }

  get rnd(): SimRandom {
    return this.options.rnd;
  }

  get trace(): Trace {
    return this.options.trace;
  }

  get checker(): Checker {
    return this.options.checker;
  }

  get workarounds(): ReadonlySet<KnownBug> {
    return this.options.workarounds;
  }

  private addNode(id: number, disk: SimDisk): SimNode {
    const node: SimNode = {
      id,
      disk,
      incarnation: 0,
      host: null,
      storage: null,
      up: false,
      paused: false,
      removed: false,
      stopRequested: null,
      nextTickMs: 0,
      turn: null,
      leaderTerm: 0,
    };
    this.nodes.set(id, node);
    this.start(node);
    return node;
  }

  /** Starts an incarnation over the node's durable image (the Replica recovers snapshot + log). */
  private start(node: SimNode): void {
    node.incarnation++;
    const storage = node.disk.open({
      commitLatencyMs: () => this.commitLatency(),
      now: () => this.now,
      observer: { checker: this.checker, nodeId: node.id },
      skipSync: this.options.fault === 'no-fsync',
    });
    const incarnation = node.incarnation;
    const host = new ReplicaHost({
      nodeId: node.id,
      // Differs on every start (the host's contract): replayed entries never answer new requests.
      incarnation: node.incarnation,
      storage,
      transport: { send: (groupId, msg) => this.send(node, incarnation, groupId, msg) },
      limits: this.limits,
      logger: silentLogger,
      metrics: metrics(),
      now: () => this.now,
      raftConfig: () => this.raftConfig(node),
      onStoreReplaced: (replaced) => {
        this.stats.snapshotsInstalled++;
        this.trace.record('snapshot', node.id, 'installed from leader');
        this.applied.follow(node.id, replaced.store);
      },
      onMembershipChanged: () => {},
      onTick: () => {},
      onRemoved: (how) => {
        node.stopRequested ??= `told it was removed (${how})`;
      },
    });
    const replica = host.openReplica(GROUP_ID);
    if (this.options.fault === 'stale-reads') plantStaleReads(replica);
    if (this.options.fault === 'renew-after-expiry') plantRenewAfterExpiry(replica);
    this.observeLeaseClock(node, replica);
    this.applied.follow(node.id, replica.store);
    node.host = host;
    node.storage = storage;
    node.up = true;
    node.paused = false;
    node.turn = null;
    node.leaderTerm = 0;
    node.nextTickMs = this.now + this.rnd.range(1, TICK_MS);
  }

  /** Records the leader's revoke proposals and the renewals it applies (observation only). */
  private observeLeaseClock(node: SimNode, replica: Replica): void {
    const clock = replica.leaseClock;
    const takeExpired = clock.takeExpired.bind(clock);
    const renewed = clock.renewed.bind(clock);
    clock.takeExpired = (limit: number): number[] => {
      const ids = takeExpired(limit);
      assert(this.leaseClockEvents.length < MAX_LEASE_CLOCK_EVENTS, () => `more than ${MAX_LEASE_CLOCK_EVENTS} lease clock events`);
      for (const id of ids) {
        const raft = replica.raft.status();
        const raftLeader = raft.softState.role === 'leader' && raft.hardState.term === replica.term;
        this.leaseClockEvents.push({ kind: 'revokeProposed', id, node: node.id, term: replica.term, raftLeader, ms: this.now });
        this.trace.record('lease', node.id, `proposes revoking expired lease ${id} (replica thinks it leads term ${replica.term}; raft: ${raft.softState.role} of term ${raft.hardState.term})`);
      }
      return ids;
    };
    clock.renewed = (id: number, ttlSeconds: number): void => {
      renewed(id, ttlSeconds);
      if (replica.isLeader) {
        this.leaseClockEvents.push({ kind: 'renewedOnLeader', id, node: node.id, term: replica.term, raftLeader: true, ms: this.now });
      }
    };
  }

  private raftConfig(node: SimNode): RaftConfig {
    // The server's settings (node.ts): 100 ms ticks, 1 s election timeout, PreVote, CheckQuorum, safe
    // reads, the leader's durable notices.
    return defaultRaftConfig(node.id, nodeRng(this.options.seed, node.id, node.incarnation), {
      electionTicks: ELECTION_TICKS,
      heartbeatTicks: 1,
      checkQuorum: true,
      preVote: true,
      readOnlyOption: 'safe',
      leaderDurableNotices: true,
      ...this.options.profile.raft,
    });
  }

  private commitLatency(): number {
    const profile = this.options.profile;
    if (this.rnd.chance(profile.slowCommitPermille)) return this.rnd.range(100, 800);
    return profile.commitLatencyMs === 0 ? 0 : this.rnd.range(1, profile.commitLatencyMs);
  }

  private send(node: SimNode, incarnation: number, groupId: number, msg: Message): void {
    assert(groupId === GROUP_ID, () => `message for unknown group ${groupId}`);
    if (!node.up || node.incarnation !== incarnation) return;
    const { outcome } = this.sendOnNetwork(msg, incarnation);
    if (outcome !== 'queued') {
      this.trace.record('drop', node.id, outcome, msg);
      if (msg.type === 'snap') this.reportSnapshot(msg.from, incarnation, msg.to, 'failure');
    }
  }

  /**
   * The peer transport is TCP: it never duplicates a message. Raft's own messages are idempotent,
   * so the network duplicates them freely; a forwarded proposal (MsgProp) is not (a duplicate is
   * applied twice), so it is duplicated only when the profile asks (`duplicateProposals`).
   */
  private sendOnNetwork(msg: Message, incarnation: number): ReturnType<SimNetwork['send']> {
    const faults = this.network.faults;
    if (msg.type !== 'prop' || this.options.profile.duplicateProposals || faults.duplicatePermille === 0) {
      return this.network.send(msg, incarnation, this.step);
    }
    this.network.faults = { ...faults, duplicatePermille: 0 };
    try {
      return this.network.send(msg, incarnation, this.step);
    } finally {
      this.network.faults = faults;
    }
  }

  replica(id: number): Replica | null {
    const node = this.nodes.get(id);
    if (node === undefined || !node.up || node.host === null) return null;
    return node.host.replicas.get(GROUP_ID) ?? null;
  }

  /** Nodes that accept client requests (up, even if paused: a paused server still has open sockets). */
  serving(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.up && !n.removed);
  }

  /** The leader with the highest term among running nodes, if any. */
  leader(): SimNode | null {
    let best: SimNode | null = null;
    for (const node of this.nodes.values()) {
      const replica = this.replica(node.id);
      if (replica === null || node.paused || !replica.isLeader) continue;
      if (best === null || replica.term > (this.replica(best.id)?.term ?? 0)) best = node;
    }
    return best;
  }

  // ---- faults ----

  crash(id: number): void {
    const node = this.nodes.get(id);
    assert(node !== undefined && node.up, () => `crash of n${id}, which is not up`);
    const landed = this.rnd.chance(500);
    node.storage?.crash(landed);
    node.host = null;
    node.storage = null;
    node.up = false;
    node.paused = false;
    node.turn = null;
    this.leadershipLost(node);
    const lost = this.network.dropFrom(id);
    this.stats.crashes++;
    this.trace.record('crash', id, `in-flight fsync ${landed ? 'landed' : 'lost'}, ${lost} sent messages lost`);
    this.onNodeDown(id);
  }

  restart(id: number): void {
    const node = this.nodes.get(id);
    assert(node !== undefined && !node.up && !node.removed, () => `restart of n${id}, which is up or removed`);
    this.start(node);
    this.stats.restarts++;
    this.trace.record('restart', id, `incarnation ${node.incarnation}`);
  }

  pause(id: number): void {
    const node = this.nodes.get(id);
    assert(node !== undefined && node.up && !node.paused, () => `pause of n${id}, which is not running`);
    node.paused = true;
    this.stats.pauses++;
    this.trace.record('pause', id);
  }

  resume(id: number): void {
    const node = this.nodes.get(id);
    assert(node !== undefined && node.paused, () => `resume of n${id}, which is not paused`);
    node.paused = false;
    // A stopped process's interval timer fires once when it continues, not once per missed tick.
    node.nextTickMs = this.now;
    this.trace.record('resume', id);
  }

  /** Asks the leader to hand leadership to `to` (etcd's MoveLeader), at its next turn. */
  transferLeader(from: number, to: number): void {
    const replica = this.replica(from);
    if (replica === null) return;
    replica.enqueueRaftOp(() => replica.raft.transferLeader(to));
    this.stats.transfers++;
    this.trace.record('transfer', from, `to n${to}`);
  }

  /** Adds a new member through the leader (etcd's MemberAdd) and starts it with an empty disk. */
  addMember(leaderId: number): number | null {
    const replica = this.replica(leaderId);
    if (replica === null || !replica.isLeader) return null;
    const id = this.nextNodeId++;
    const node = this.addNode(id, new SimDisk());
    replica.enqueueRaftOp(() => {
      try {
        replica.raft.proposeConfChange({ transition: 'auto', changes: [{ type: 'addNode', nodeId: id }], context: encodeConfContext(memberOf(id)) });
      } catch (error) {
        if (!(error instanceof ProposalDroppedError)) throw error;
        node.stopRequested ??= `its addition was refused (${error.reason})`;
      }
    });
    this.stats.memberChanges++;
    this.trace.record('member', leaderId, `proposes adding n${id}`);
    return id;
  }

  /** Removes a member through the leader (etcd's MemberRemove); it shuts down once its removal applies. */
  removeMember(leaderId: number, id: number): void {
    const replica = this.replica(leaderId);
    if (replica === null || !replica.isLeader) return;
    replica.enqueueRaftOp(() => {
      try {
        replica.raft.proposeConfChange({ transition: 'auto', changes: [{ type: 'removeNode', nodeId: id }], context: encodeConfContext(null) });
      } catch (error) {
        if (!(error instanceof ProposalDroppedError)) throw error;
        this.trace.record('member', leaderId, `removal of n${id} refused (${error.reason})`);
      }
    });
    this.stats.memberChanges++;
    this.trace.record('member', leaderId, `proposes removing n${id}`);
  }

  // ---- one step ----

  /** Advances the clock one quantum: finished fsyncs resume their turns, due ticks are injected. */
  async beginStep(): Promise<void> {
    this.step++;
    this.now += QUANTUM_MS;
    this.trace.ms = this.now;
    if (this.options.fault === 'no-fsync' && this.now % 1_000 === 0) for (const node of this.nodes.values()) node.disk.flush();
    for (const node of this.order()) {
      const storage = node.storage;
      if (!node.up || node.paused || storage === null || storage.pending === null || storage.pending.dueMs > this.now) continue;
      storage.completePending();
      await this.settle(node);
    }
    for (const node of this.nodes.values()) {
      if (!node.up || node.paused || node.removed || node.nextTickMs > this.now) continue;
      node.host?.tick();
      const late = this.rnd.chance(this.options.profile.lateTickPermille) ? this.rnd.range(1, 60) : 0;
      node.nextTickMs = Math.max(node.nextTickMs + TICK_MS, this.now + QUANTUM_MS) + late;
    }
  }

  /** Delivers due messages and runs every host's turns, round by round, until quiet (bounded). */
  async runRounds(): Promise<void> {
    for (let round = 0; round < MAX_ROUNDS_PER_STEP; round++) {
      const delivered = this.deliverDue();
      let busy = false;
      for (const node of this.order()) busy = (await this.runTurns(node)) || busy;
      if (delivered === 0 && !busy) break;
    }
    this.network.postpone(this.step);
    this.observeLeaders();
    this.shutDownRemoved();
  }

  /** Hosts in a seeded order: which node acts first within a step is part of the schedule. */
  private order(): SimNode[] {
    return this.rnd.shuffle([...this.nodes.values()]);
  }

  private deliverDue(): number {
    const batch = this.network.takeDue(this.step);
    for (const envelope of batch) this.deliverOne(envelope);
    return batch.length;
  }

  private deliverOne(envelope: Envelope): void {
    const msg = envelope.msg;
    const target = this.nodes.get(msg.to);
    if (target === undefined || !target.up || target.removed || target.host === null || this.network.intercepts(msg)) {
      this.trace.record('drop', msg.to, target?.up === false ? 'target down' : 'partitioned', msg);
      if (msg.type === 'snap') this.reportSnapshot(msg.from, envelope.senderIncarnation, msg.to, 'failure');
      if (target !== undefined && !target.up) this.reportUnreachable(msg.from, envelope.senderIncarnation, msg.to);
      return;
    }
    this.trace.record('deliver', msg.to, '', msg);
    target.host.receive(GROUP_ID, msg);
    if (msg.type === 'snap') this.reportSnapshot(msg.from, envelope.senderIncarnation, msg.to, 'finish');
  }

  /** What the transport tells the sender about a snapshot stream (production: after the stream ends). */
  private reportSnapshot(from: number, incarnation: number, to: number, status: 'finish' | 'failure'): void {
    const sender = this.nodes.get(from);
    const replica = this.replica(from);
    if (sender === undefined || replica === null || sender.incarnation !== incarnation) return;
    replica.enqueueRaftOp(() => replica.raft.reportSnapshot(to, status));
  }

  /** A connection to a crashed peer fails: the transport reports it unreachable. */
  private reportUnreachable(from: number, incarnation: number, to: number): void {
    const sender = this.nodes.get(from);
    const replica = this.replica(from);
    if (sender === undefined || replica === null || sender.incarnation !== incarnation) return;
    replica.enqueueRaftOp(() => replica.raft.reportUnreachable(to));
  }

  /** Runs the node's turns while they have more work (bounded). Returns true if any turn did work. */
  private async runTurns(node: SimNode): Promise<boolean> {
    let busy = false;
    for (let i = 0; i < MAX_TURNS_PER_ROUND; i++) {
      if (!node.up || node.paused || node.removed || node.host === null || node.turn !== null) return busy;
      const host = node.host;
      const state: TurnState = { promise: Promise.resolve(), settled: false, more: false, failure: null };
      state.promise = host.turn().then(
        (more) => {
          state.settled = true;
          state.more = more;
        },
        (error: unknown) => {
          state.settled = true;
          state.failure = error;
        },
      );
      node.turn = state;
      await this.settle(node);
      if (node.turn !== null) return true; // waiting for its fsync
      busy ||= state.more;
      if (!state.more) return busy;
    }
    return busy;
  }

  /**
   * Awaits the node's turn until it finishes or blocks on a simulated fsync. Both are promises the
   * simulator controls, so what runs in between (and in which order) is fixed by the seed.
   */
  private async settle(node: SimNode): Promise<void> {
    const state = node.turn;
    const storage = node.storage;
    assert(state !== null && storage !== null, 'settle without a turn');
    const blocked = new Promise<void>((resolve) => {
      storage.onBlocked = resolve;
      if (storage.pending !== null) resolve();
    });
    await Promise.race([state.promise, blocked]);
    storage.onBlocked = null;
    if (!state.settled) return;
    if (node.turn === state) node.turn = null;
    if (state.failure !== null) {
      const error = state.failure;
      const detail = error instanceof Error ? `${error.name}: ${error.message}\n${(error.stack ?? '').split('\n').slice(1, 8).join('\n')}` : String(error);
      throw new SimFailure('server error', `n${node.id}'s turn threw ${detail}`);
    }
  }

  private observeLeaders(): void {
    for (const node of this.nodes.values()) {
      const replica = this.replica(node.id);
      if (replica === null) continue;
      if (replica.isLeader && node.leaderTerm !== replica.term) {
        const log = node.storage?.memory(GROUP_ID);
        assert(log !== undefined, 'a running node has no log');
        node.leaderTerm = replica.term;
        this.stats.leaderTerms++;
        this.trace.record('leader', node.id, `term ${replica.term}`);
        this.checker.leaderElected(node.id, replica.term, log);
      } else if (!replica.isLeader && node.leaderTerm !== 0) {
        this.leadershipLost(node);
      }
    }
  }

  private leadershipLost(node: SimNode): void {
    if (node.leaderTerm === 0) return;
    node.leaderTerm = 0;
    this.checker.leaderLost(node.id);
  }

  /** A member whose removal applied on it, or that a peer told so, stops for good (production: the node exits). */
  private shutDownRemoved(): void {
    for (const node of this.nodes.values()) {
      const replica = this.replica(node.id);
      if (replica === null || node.turn !== null) continue;
      const why = replica.removed.has(node.id) ? 'its removal applied here' : node.stopRequested;
      if (why === null) continue;
      node.removed = true;
      node.up = false;
      node.paused = false;
      node.host = null;
      node.storage = null;
      this.leadershipLost(node);
      this.trace.record('member', node.id, `shut down: ${why}`);
      this.onNodeDown(node.id);
    }
  }

  /** Nodes in the group's configuration as the leader (or else any running node) sees it. */
  members(): number[] {
    const source = this.leader() ?? this.serving()[0];
    const replica = source === undefined || source === null ? null : this.replica(source.id);
    if (replica === null) return [];
    const conf = replica.confState;
    return [...new Set([...conf.voters, ...conf.votersOutgoing, ...conf.learners, ...conf.learnersNext])].sort((a, b) => a - b);
  }

  /** Cross-checks every pair of running nodes' logs (log matching). */
  crossCheckLogs(): void {
    const logs = new Map<number, MemoryStorage>();
    for (const node of this.nodes.values()) {
      const log = node.up ? node.storage?.memory(GROUP_ID) : undefined;
      if (log !== undefined) logs.set(node.id, log);
    }
    this.checker.crossCheckLogs(logs);
  }
}

/**
 * The planted bug of `--fault renew-after-expiry`: the leader's in-memory keepalive renews a lease
 * even after its deadline passed and its revoke was proposed, so a client is told "alive" about a
 * lease that is about to be revoked.
 */
function plantRenewAfterExpiry(replica: Replica): void {
  const clock = replica.leaseClock;
  clock.renewIfLive = (id: number, ttlSeconds: number): boolean => {
    if (clock.remainingSeconds(id) < 0) return false;
    clock.renewed(id, ttlSeconds);
    return true;
  };
}

/**
 * The planted bug of `--fault stale-reads`: linearizable reads are served from the local state
 * machine at once, without a ReadIndex round (a follower or a deposed leader answers stale data).
 */
function plantStaleReads(replica: Replica): void {
  replica.linearizableRead = <T>(run: () => T): Promise<T> => {
    try {
      return Promise.resolve(run());
    } catch (error) {
      return Promise.reject(error as Error);
    }
  };
}

