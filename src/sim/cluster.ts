// The simulated cluster: every member is a RawNode driven the way a real driver drives it —
// persist (snapshot, entries, hard state), send, apply, advance — over a MemoryStorage that holds
// exactly what was persisted and survives crashes. Everything else (the RawNode, unsent and
// in-flight messages, the state machine) is lost in a crash.
import {
  MemoryStorage,
  NONE,
  ProposalDroppedError,
  RawNode,
  decodeConfChange,
  defaultRaftConfig,
} from '../raft/index.ts';
import type {
  ConfChange,
  ConfState,
  Entry,
  HardState,
  Message,
  NodeId,
  RaftConfig,
  Ready,
  Role,
  SnapshotMsg,
} from '../raft/index.ts';
import { assert } from '../util/index.ts';
import { InvariantViolation } from './checker.ts';
import type { Checker } from './checker.ts';
import { copyConfState } from '../raft/index.ts';
import type { Envelope, SimNetwork } from './network.ts';
import { nodeRng } from './random.ts';
import type { SimRandom } from './random.ts';
import type { Trace } from './trace.ts';
import {
  decodeReadContext,
  decodeStateMachine,
  decodeWrite,
  encodeReadContext,
  encodeStateMachine,
  encodeWrite,
} from './codec.ts';

/** Readies handled for one node in one go; a core that keeps producing them is looping. */
export const MAX_READY_PER_DRAIN = 64;
/** Delivery rounds within one tick: a message sent with no delay arrives in the next round. */
export const MAX_DELIVERY_ROUNDS = 12;
/** Reads one node keeps waiting for (no leader, lost messages); past it a new read is refused. */
export const MAX_PENDING_READS_PER_NODE = 256;
/** Chance (permille) that a node handles its Ready right after each delivered message, not at round end. */
const READY_EAGER_PERMILLE = 600;
/** Chance (permille) that a send blocked by a partition is reported to the sender as unreachable. */
const REPORT_UNREACHABLE_PERMILLE = 300;

export type TestingFault = NonNullable<RaftConfig['testingFault']>;
/** Driver bugs the tests inject to prove the checks see them. */
export type DriverFault = 'serveReadsBeforeApplied';

export class SimNode {
  readonly id: NodeId;
  readonly storage: MemoryStorage;
  raw: RawNode | null = null;
  incarnation = 0;
  role: Role = 'follower';
  leader: NodeId = NONE;
  /** Term in which this incarnation was last seen leading (0 = not leading). */
  leaderTerm = 0;
  /** What storage holds (the driver's copy, compared against every new hard state). */
  hardState: HardState = { term: 0, vote: NONE, commit: 0 };
  /** The state machine: its applied index, membership and writes. Lost in a crash. */
  applied = 0;
  confState: ConfState;
  writes: number[] = [];
  /** Reads asked of this incarnation, not yet served: read id → read index (-1 until the ReadState arrives). */
  readonly reads = new Map<number, number>();
  removed = false;
  restartAt = -1;
  shutdownAt = -1;
  /** Peer reports held until the current Ready is advanced. */
  readonly unreachable: NodeId[] = [];
  readonly snapshotFailures: NodeId[] = [];

  constructor(id: NodeId, storage: MemoryStorage, confState: ConfState) {
    this.id = id;
    this.storage = storage;
    this.confState = confState;
  }

  get up(): boolean {
    return this.raw !== null;
  }
}

export interface ClusterOptions {
  seed: number;
  size: number;
  rnd: SimRandom;
  checker: Checker;
  trace: Trace;
  network: SimNetwork;
  raftOverrides: Partial<RaftConfig>;
  testingFault: TestingFault | null;
  driverFault: DriverFault | null;
}

export function isJoint(conf: ConfState): boolean {
  return conf.votersOutgoing.length > 0;
}

/** Every id the configuration still needs to reach (incoming and outgoing voters, learners). */
export function membersOf(conf: ConfState): NodeId[] {
  const ids = new Set<NodeId>([
    ...conf.voters,
    ...conf.votersOutgoing,
    ...conf.learners,
    ...conf.learnersNext,
  ]);
  return [...ids].sort((a, b) => a - b);
}

export function describeConf(conf: ConfState): string {
  const voters = conf.voters.join(',');
  const outgoing = isJoint(conf) ? `&&(${conf.votersOutgoing.join(',')})` : '';
  const learners = conf.learners.length > 0 ? ` learners=${conf.learners.join(',')}` : '';
  const next = conf.learnersNext.length > 0 ? ` learnersNext=${conf.learnersNext.join(',')}` : '';
  return `voters=(${voters})${outgoing}${learners}${next}${conf.autoLeave ? ' autoleave' : ''}`;
}

export function describeConfChange(cc: ConfChange): string {
  if (cc.changes.length === 0) return 'leave-joint';
  const parts = cc.changes.map((change) => `${change.type}(${change.nodeId})`);
  return `${cc.transition}[${parts.join(' ')}]`;
}

function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const frames = (error.stack ?? '').split('\n').slice(1, 6).join('\n');
  return `${error.name}: ${error.message}\n${frames}`;
}

export class Cluster {
  readonly nodes = new Map<NodeId, SimNode>();
  readonly genesis: ConfState;
  now = 0;
  nextWriteId = 1;
  nextReadId = 1;
  nextNodeId: NodeId;
  /** Highest conf-change index whose effects (new members started, removed ones shut down) were carried out. */
  private lastConfIndex = 0;
  readonly stats = {
    crashes: 0,
    partitions: 0,
    proposals: 0,
    dropped: 0,
    reads: 0,
    confChanges: 0,
    confChangesApplied: 0,
    snapshots: 0,
    snapshotsInstalled: 0,
    transfers: 0,
  };
  private readonly rnd: SimRandom;
  private readonly checker: Checker;
  private readonly trace: Trace;
  readonly network: SimNetwork;

  constructor(private readonly options: ClusterOptions) {
    assert(options.size >= 1 && options.size <= 9, () => `cluster size ${options.size}`);
    this.rnd = options.rnd;
    this.checker = options.checker;
    this.trace = options.trace;
    this.network = options.network;
    const voters = Array.from({ length: options.size }, (_, i) => i + 1);
    this.genesis = { voters, votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false };
    this.nextNodeId = options.size + 1;
    for (const id of voters) this.createNode(id);
  }

  get electionTicks(): number {
    return this.options.raftOverrides.electionTicks ?? 10;
  }

  upNodes(): SimNode[] {
    return [...this.nodes.values()].filter((node) => node.up);
  }

  /** The up node that leads the highest term, if any. */
  leader(): SimNode | null {
    let best: SimNode | null = null;
    for (const node of this.nodes.values()) {
      if (node.up && node.role === 'leader' && (best === null || node.leaderTerm > best.leaderTerm))
        best = node;
    }
    return best;
  }

  // ---- lifecycle: start, crash, restart, shutdown ----

  /** Every member starts from the same genesis configuration, as if bootstrapped together. */
  private createNode(id: NodeId): SimNode {
    assert(!this.nodes.has(id), () => `node n${id} created twice`);
    const node = new SimNode(id, new MemoryStorage(this.genesis), copyConfState(this.genesis));
    this.nodes.set(id, node);
    this.start(node);
    return node;
  }

  /**
   * (Re)start from what storage holds: the state machine is rebuilt from the latest storage
   * snapshot and the core replays committed entries after it (so `applied` = the snapshot index).
   */
  private start(node: SimNode): void {
    assert(node.raw === null && !node.removed, () => `n${node.id} started while up or removed`);
    const snapshot = node.storage.snapshot();
    node.writes = decodeStateMachine(snapshot.data);
    this.checker.stateRestored(node.id, node.writes);
    node.applied = snapshot.metadata.index;
    node.confState = copyConfState(snapshot.metadata.confState);
    node.hardState = node.storage.initialState().hardState;
    node.role = 'follower';
    node.leader = NONE;
    node.leaderTerm = 0;
    const config = defaultRaftConfig(node.id, nodeRng(this.options.seed, node.id, node.incarnation), {
      ...this.options.raftOverrides,
      applied: node.applied,
      ...(this.options.testingFault === null ? {} : { testingFault: this.options.testingFault }),
    });
    node.raw = this.core(node, 'new RawNode', () => new RawNode(config, node.storage));
  }

  crash(node: SimNode, downTicks: number): void {
    assert(node.up, () => `crash of n${node.id}, which is down`);
    this.down(node);
    node.restartAt = this.now + downTicks;
    this.stats.crashes++;
    this.trace.record('crash', node.id, node.incarnation, downTicks);
  }

  restart(node: SimNode): void {
    node.restartAt = -1;
    this.start(node);
    this.trace.record(
      'restart',
      node.id,
      node.incarnation,
      node.applied,
      `applied=${node.applied} ${describeConf(node.confState)}`,
    );
  }

  /** A removed member stops for good (as etcd members do once they see their removal). */
  shutdown(node: SimNode): void {
    if (node.up) this.down(node);
    node.removed = true;
    node.restartAt = -1;
    node.shutdownAt = -1;
    this.trace.record('shutdown', node.id, node.incarnation, 0);
  }

  private down(node: SimNode): void {
    if (node.role === 'leader') this.checker.leaderLost(node.id);
    for (const readId of node.reads.keys()) this.checker.readAbandoned(readId);
    node.reads.clear();
    node.unreachable.length = 0;
    node.snapshotFailures.length = 0;
    node.raw = null;
    node.incarnation++;
    node.role = 'follower';
    node.leaderTerm = 0;
    node.writes = [];
    node.applied = 0;
    this.network.dropFrom(node.id);
  }

  /** Restarts and shutdowns that are due. */
  runTimers(): void {
    for (const node of this.nodes.values()) {
      if (node.shutdownAt >= 0 && node.shutdownAt <= this.now) this.shutdown(node);
      else if (node.restartAt >= 0 && node.restartAt <= this.now && !node.removed) this.restart(node);
    }
  }

  // ---- time and delivery ----

  /** One tick of the global clock; a skewed node sometimes misses a tick or ticks twice. */
  tick(skewPermille: number): void {
    this.now++;
    this.trace.step = this.now;
    for (const node of this.nodes.values()) {
      const raw = node.raw;
      if (raw === null) continue;
      const ticks = this.rnd.chance(skewPermille) ? this.rnd.pick([0, 2]) : 1;
      for (let i = 0; i < ticks; i++) this.core(node, 'tick', () => raw.tick());
    }
  }

  /** Delivers everything due this tick, round by round, handling Readies as a driver would. */
  deliver(): void {
    this.readyAll();
    for (let round = 0; round < MAX_DELIVERY_ROUNDS; round++) {
      const batch = this.network.takeDue(this.now);
      if (batch.length === 0) break;
      for (const envelope of batch) {
        const target = this.deliverOne(envelope);
        if (target !== null && this.rnd.chance(READY_EAGER_PERMILLE)) this.drain(target);
      }
      this.readyAll();
    }
    this.network.postpone(this.now);
  }

  private deliverOne(envelope: Envelope): SimNode | null {
    const msg = envelope.msg;
    const target = this.nodes.get(msg.to);
    if (target === undefined || target.raw === null || this.network.intercepts(msg)) {
      this.trace.record('drop', msg.to, 0, 0, 'undeliverable', msg);
      if (msg.type === 'snap') this.reportSnapshot(msg.from, envelope.senderIncarnation, msg.to, 'failure');
      return null;
    }
    this.trace.record('deliver', msg.to, 0, 0, '', msg);
    const raw = target.raw;
    this.core(target, `step(${msg.type} from n${msg.from})`, () => raw.step(msg));
    if (msg.type === 'snap') this.reportSnapshot(msg.from, envelope.senderIncarnation, msg.to, 'finish');
    return target;
  }

  private reportSnapshot(from: NodeId, incarnation: number, to: NodeId, status: 'finish' | 'failure'): void {
    const sender = this.nodes.get(from);
    const raw = sender?.raw ?? null;
    if (sender === undefined || raw === null || sender.incarnation !== incarnation) return;
    this.core(sender, 'reportSnapshot', () => raw.reportSnapshot(to, status));
  }

  /**
   * Delivers until no message is left, advancing the clock without ticking any node (so no
   * timeout fires): targeted schedules use it to run one protocol exchange to completion.
   */
  settle(maxTicks: number): void {
    for (let i = 0; i < maxTicks; i++) {
      this.deliver();
      if (this.network.inFlightCount === 0) return;
      this.now++;
      this.trace.step = this.now;
    }
    throw new InvariantViolation(
      'sim error',
      `messages still in flight after settling for ${maxTicks} ticks`,
    );
  }

  /** Handles Ready on every node that has one, in random order. */
  readyAll(): void {
    const nodes = this.rnd.shuffle([...this.nodes.values()]);
    for (const node of nodes) this.drain(node);
  }

  drain(node: SimNode): void {
    for (let i = 0; i < MAX_READY_PER_DRAIN; i++) {
      const raw = node.raw;
      if (raw === null || !this.core(node, 'hasReady', () => raw.hasReady())) return;
      this.handleReady(node, raw);
    }
  }

  // ---- the driver: persist, send, apply, advance ----

  private handleReady(node: SimNode, raw: RawNode): void {
    const ready = this.core(node, 'ready', () => raw.ready());
    this.persist(node, ready);
    this.observeRole(node, raw, ready);
    this.send(node, ready.messages);
    this.apply(node, raw, ready);
    this.core(node, 'advance', () => raw.advance());
    this.flushReports(node, raw);
  }

  private persist(node: SimNode, ready: Ready): void {
    const storage = node.storage;
    if (ready.snapshot !== null) {
      const snapshot = ready.snapshot;
      this.core(node, 'persist snapshot', () => storage.applySnapshot(snapshot));
      this.checker.snapshotPersisted(node.id, snapshot.metadata);
    }
    if (ready.entries.length > 0) {
      this.core(node, 'persist entries', () => storage.append(ready.entries));
      this.checker.entriesPersisted(node.id, storage, ready.entries);
    }
    if (ready.hardState !== null) {
      const next: HardState = {
        term: ready.hardState.term,
        vote: ready.hardState.vote,
        commit: ready.hardState.commit,
      };
      const previous = node.hardState;
      this.checker.hardStatePersisted(node.id, previous, next);
      storage.setHardState(next);
      node.hardState = next;
      if (next.commit > previous.commit) {
        this.checker.commitAdvanced(node.id, next.term, storage, previous.commit, next.commit);
      }
    }
  }

  private observeRole(node: SimNode, raw: RawNode, ready: Ready): void {
    if (ready.softState !== null) {
      node.role = ready.softState.role;
      node.leader = ready.softState.leader;
    }
    if (node.role !== 'leader') {
      if (node.leaderTerm !== 0) this.checker.leaderLost(node.id);
      node.leaderTerm = 0;
      return;
    }
    // A leader acts in the term it persisted; the core's own view is consulted on transitions only.
    const term = node.hardState.term;
    if (term === node.leaderTerm) return;
    const coreTerm = this.core(node, 'status', () => raw.status()).hardState.term;
    if (coreTerm !== term) {
      throw new InvariantViolation(
        'ready contract',
        `n${node.id} leads term ${coreTerm} but storage has term ${term}`,
      );
    }
    node.leaderTerm = term;
    this.trace.record(
      'leader',
      node.id,
      term,
      node.storage.lastIndex(),
      `term ${term} last=${node.storage.lastIndex()}`,
    );
    this.checker.leaderElected(node.id, term, node.storage);
  }

  /**
   * etcd's server does not ship the storage snapshot the core picked: it sends a snapshot of the
   * state machine as of now (createMergedSnapshotMessage). The driver does the same when the picked
   * snapshot predates the target's membership (the target would refuse it forever), and at random
   * otherwise, so both paths run.
   */
  private mergeSnapshot(node: SimNode, msg: SnapshotMsg): SnapshotMsg {
    const metadata = msg.snapshot.metadata;
    if (node.applied <= metadata.index) return msg;
    if (membersOf(metadata.confState).includes(msg.to) && this.rnd.chance(500)) return msg;
    const term = node.storage.term(node.applied);
    const snapshot = {
      metadata: { index: node.applied, term, confState: copyConfState(node.confState) },
      data: encodeStateMachine(node.writes),
    };
    return { ...msg, snapshot };
  }

  private send(node: SimNode, messages: readonly Message[]): void {
    for (const original of messages) {
      const msg = original.type === 'snap' ? this.mergeSnapshot(node, original) : original;
      if (msg.from !== node.id || msg.to === node.id || msg.to === NONE) {
        throw new InvariantViolation(
          'ready contract',
          `n${node.id} emitted ${msg.type} from n${msg.from} to n${msg.to}`,
        );
      }
      const { outcome, copies } = this.network.send(msg, node.incarnation, this.now);
      if (outcome === 'queued') {
        if (copies > 1) this.trace.record('duplicate', node.id, 0, 0, '', msg);
        continue;
      }
      this.trace.record('drop', node.id, 0, 0, outcome, msg);
      if (msg.type === 'snap') node.snapshotFailures.push(msg.to);
      if (outcome === 'blocked' && this.rnd.chance(REPORT_UNREACHABLE_PERMILLE))
        node.unreachable.push(msg.to);
    }
  }

  private apply(node: SimNode, raw: RawNode, ready: Ready): void {
    if (ready.snapshot !== null) this.restoreSnapshot(node, ready);
    for (const entry of ready.committedEntries) this.applyEntry(node, raw, entry);
    for (const readState of ready.readStates) {
      const readId = decodeReadContext(readState.context);
      if (readId !== null && node.reads.get(readId) === -1) node.reads.set(readId, readState.index);
    }
    this.serveReads(node);
  }

  private restoreSnapshot(node: SimNode, ready: Ready): void {
    const snapshot = ready.snapshot;
    assert(snapshot !== null);
    const { index, term, confState } = snapshot.metadata;
    if (index <= node.applied) {
      throw new InvariantViolation(
        'ready contract',
        `n${node.id} got snapshot ${index} to apply, but it has applied ${node.applied}`,
      );
    }
    node.writes = decodeStateMachine(snapshot.data);
    this.checker.stateRestored(node.id, node.writes);
    this.stats.snapshotsInstalled++;
    node.applied = index;
    node.confState = copyConfState(confState);
    this.trace.record(
      'snapshotApplied',
      node.id,
      index,
      term,
      `${index}@t${term} writes=${node.writes.length} ${describeConf(confState)}`,
    );
  }

  private applyEntry(node: SimNode, raw: RawNode, entry: Entry): void {
    if (entry.index !== node.applied + 1) {
      throw new InvariantViolation(
        'ready contract',
        `n${node.id} got entry ${entry.index} to apply after applying ${node.applied}`,
      );
    }
    if (entry.index > node.hardState.commit) {
      throw new InvariantViolation(
        'ready contract',
        `n${node.id} got entry ${entry.index} to apply beyond its persisted commit ${node.hardState.commit}`,
      );
    }
    this.checker.entryApplied(node.id, entry);
    if (entry.type === 'normal') {
      const writeId = decodeWrite(entry.data);
      if (writeId !== null) {
        this.checker.writeApplied(node.id, node.writes.length, writeId);
        node.writes.push(writeId);
      }
    } else {
      const change = decodeConfChange(entry.data);
      node.confState = this.core(node, 'applyConfChange', () => raw.applyConfChange(change));
      this.membershipApplied(node, entry.index, change);
    }
    node.applied = entry.index;
  }

  /** The first time any node applies a conf change, the cluster starts new members and retires removed ones. */
  private membershipApplied(node: SimNode, index: number, change: ConfChange): void {
    if (index <= this.lastConfIndex) return;
    this.lastConfIndex = index;
    this.stats.confChangesApplied++;
    const conf = node.confState;
    this.trace.record(
      'confApplied',
      node.id,
      index,
      0,
      `${describeConfChange(change)} at ${index} -> ${describeConf(conf)}`,
    );
    for (const single of change.changes) {
      if (single.type !== 'removeNode' && !this.nodes.has(single.nodeId)) {
        this.createNode(single.nodeId);
        this.trace.record('join', single.nodeId, index, 0);
      }
    }
    const members = new Set(membersOf(conf));
    for (const other of this.nodes.values()) {
      if (!members.has(other.id) && !other.removed && other.shutdownAt < 0)
        other.shutdownAt = this.now + this.rnd.range(0, 30);
    }
  }

  private serveReads(node: SimNode): void {
    for (const [readId, readIndex] of node.reads) {
      const early = this.options.driverFault === 'serveReadsBeforeApplied';
      if (readIndex < 0 || (node.applied < readIndex && !early)) continue;
      node.reads.delete(readId);
      this.checker.readServed(readId, node.id, readIndex, node.writes.length);
      this.trace.record('readServed', node.id, readId, readIndex);
    }
  }

  private flushReports(node: SimNode, raw: RawNode): void {
    for (const to of node.snapshotFailures)
      this.core(node, 'reportSnapshot', () => raw.reportSnapshot(to, 'failure'));
    for (const to of node.unreachable) this.core(node, 'reportUnreachable', () => raw.reportUnreachable(to));
    node.snapshotFailures.length = 0;
    node.unreachable.length = 0;
  }

  // ---- client actions ----

  propose(node: SimNode, count: number, maxPaddingBytes: number): number[] {
    const raw = node.raw;
    assert(raw !== null, () => `propose at n${node.id}, which is down`);
    const accepted: number[] = [];
    for (let i = 0; i < count; i++) {
      const writeId = this.nextWriteId++;
      const data = encodeWrite(writeId, maxPaddingBytes > 0 ? this.rnd.int(maxPaddingBytes + 1) : 0);
      this.stats.proposals++;
      if (this.client(node, 'propose', () => raw.propose(data))) {
        this.trace.record('propose', node.id, writeId, 0);
        accepted.push(writeId);
      } else {
        this.stats.dropped++;
        this.trace.record('proposeDropped', node.id, writeId, 0);
      }
    }
    return accepted;
  }

  read(node: SimNode): void {
    const raw = node.raw;
    assert(raw !== null, () => `read at n${node.id}, which is down`);
    if (node.reads.size >= MAX_PENDING_READS_PER_NODE) return;
    const readId = this.nextReadId++;
    this.checker.readStarted(readId, node.id, this.now);
    node.reads.set(readId, -1);
    this.stats.reads++;
    this.trace.record('read', node.id, readId, 0);
    if (!this.client(node, 'readIndex', () => raw.readIndex(encodeReadContext(readId)))) {
      node.reads.delete(readId);
      this.checker.readAbandoned(readId);
    }
  }

  transferLeader(node: SimNode, target: NodeId): void {
    const raw = node.raw;
    assert(raw !== null);
    this.stats.transfers++;
    this.trace.record('transfer', node.id, target, 0);
    this.client(node, 'transferLeader', () => raw.transferLeader(target));
  }

  campaign(node: SimNode): void {
    const raw = node.raw;
    assert(raw !== null);
    this.trace.record('campaign', node.id, 0, 0);
    this.client(node, 'campaign', () => raw.campaign());
  }

  proposeConfChange(node: SimNode, change: ConfChange): boolean {
    const raw = node.raw;
    assert(raw !== null);
    this.stats.confChanges++;
    const ok = this.client(node, 'proposeConfChange', () => raw.proposeConfChange(change));
    this.trace.record(
      'confChange',
      node.id,
      ok ? 1 : 0,
      0,
      `${describeConfChange(change)}${ok ? '' : ' (dropped)'} on ${describeConf(node.confState)}`,
    );
    return ok;
  }

  /** Snapshot the state machine at its applied index and compact the log up to `lag` entries behind it. */
  compact(node: SimNode, lag: number): void {
    const storage = node.storage;
    const snapshotIndex = storage.snapshot().metadata.index;
    if (node.applied <= snapshotIndex) return;
    const applied = node.applied;
    const data = encodeStateMachine(node.writes);
    const conf = copyConfState(node.confState);
    this.core(node, 'createSnapshot', () => storage.createSnapshot(applied, conf, data));
    // initialState() must report the membership as of the snapshot, since a restart replays only
    // entries after it. (MemoryStorage.createSnapshot does not record it, unlike etcd's.)
    storage.setConfState(conf);
    const compactTo = applied - lag;
    if (compactTo >= storage.firstIndex()) this.core(node, 'compact', () => storage.compact(compactTo));
    this.stats.snapshots++;
    this.trace.record('snapshot', node.id, applied, compactTo, `at ${applied} compact to ${compactTo}`);
  }

  /** Cross-checks log matching on every pair of persisted logs (the incremental checks run always). */
  crossCheckLogs(): void {
    const logs = new Map<NodeId, MemoryStorage>();
    for (const node of this.nodes.values()) logs.set(node.id, node.storage);
    this.checker.crossCheckLogs(logs);
  }

  /** A cluster-wide event (partition, heal, phase change) for the trace. */
  recordEvent(kind: 'heal' | 'partition' | 'phase', note: string): void {
    this.trace.record(kind, 0, 0, 0, note);
  }

  // ---- error classification ----

  /** Runs a call into the core (or its storage); anything it throws is a core failure. */
  core<T>(node: SimNode, what: string, call: () => T): T {
    try {
      return call();
    } catch (error) {
      if (error instanceof InvariantViolation) throw error;
      throw new InvariantViolation('core error', `n${node.id} ${what} threw ${describeError(error)}`);
    }
  }

  /** A client request: refusal (ProposalDroppedError) is an answer, anything else a core failure. Returns accepted. */
  private client(node: SimNode, what: string, call: () => void): boolean {
    try {
      call();
      return true;
    } catch (error) {
      if (error instanceof ProposalDroppedError) return false;
      if (error instanceof InvariantViolation) throw error;
      throw new InvariantViolation('core error', `n${node.id} ${what} threw ${describeError(error)}`);
    }
  }
}
