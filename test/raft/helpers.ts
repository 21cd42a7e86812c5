// A tiny in-process network of RawNodes for unit tests: persist, send, apply, deliver until quiet.
import {
  MemoryStorage,
  RawNode,
  decodeConfChange,
  defaultRaftConfig,
  seededRng,
  type ConfState,
  type Entry,
  type Message,
  type NodeId,
  type RaftConfig,
  type ReadState,
  type Snapshot,
} from '../../src/raft/index.ts';

export const enc = (text: string): Uint8Array => new TextEncoder().encode(text);
export const dec = (data: Uint8Array): string => new TextDecoder().decode(data);

export function confState(voters: NodeId[], learners: NodeId[] = []): ConfState {
  return { voters, votersOutgoing: [], learners, learnersNext: [], autoLeave: false };
}

export interface TestNode {
  id: NodeId;
  raw: RawNode;
  storage: MemoryStorage;
  /** Data of applied normal entries (the test state machine), in order. */
  applied: string[];
  appliedIndex: number;
  readStates: ReadState[];
  confState: ConfState | null;
  config: RaftConfig;
}

export interface NetworkOptions {
  /** Config overrides for every node (electionTicks etc.). */
  config?: Partial<RaftConfig>;
  seed?: number;
  /** Initial voters/learners (default: all ids are voters). */
  initial?: ConfState;
  /** Prepared storage per node (default: a fresh MemoryStorage(initial)). */
  storage?: (id: NodeId) => MemoryStorage | undefined;
}

/** A deterministic network. Messages queue up and are delivered in FIFO order by `deliver()`. */
export class Network {
  readonly nodes = new Map<NodeId, TestNode>();
  queue: Message[] = [];
  /** Return true to drop a message (partitions, lossy links). */
  drop: (m: Message) => boolean = () => false;
  /** Messages seen by deliver(), for assertions. */
  trace: Message[] = [];
  private readonly options: NetworkOptions;

  constructor(ids: NodeId[], options: NetworkOptions = {}) {
    this.options = options;
    const initial = options.initial ?? confState(ids);
    for (const id of ids) this.addNode(id, options.storage?.(id) ?? new MemoryStorage(initial));
  }

  addNode(id: NodeId, storage: MemoryStorage, overrides: Partial<RaftConfig> = {}): TestNode {
    const seed = (this.options.seed ?? 1) * 1000 + id;
    const config = defaultRaftConfig(id, seededRng(seed), { ...this.options.config, ...overrides });
    const node: TestNode = { id, raw: new RawNode(config, storage), storage, applied: [], appliedIndex: 0, readStates: [], confState: null, config };
    this.nodes.set(id, node);
    return node;
  }

  node(id: NodeId): TestNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  /** Handles one Ready of `id` like a driver; returns whether there was one. */
  processReady(id: NodeId): boolean {
    const node = this.node(id);
    if (!node.raw.hasReady()) return false;
    const rd = node.raw.ready();
    if (rd.snapshot !== null) {
      node.storage.applySnapshot(rd.snapshot);
      applySnapshotToStateMachine(node, rd.snapshot);
    }
    node.storage.append(rd.entries);
    if (rd.hardState !== null) node.storage.setHardState(rd.hardState);
    this.queue.push(...rd.messages);
    for (const entry of rd.committedEntries) applyEntry(node, entry);
    node.readStates.push(...rd.readStates);
    node.raw.advance();
    return true;
  }

  /** Processes Readies and delivers messages until nothing moves (bounded). */
  deliver(maxRounds = 1000): void {
    for (let round = 0; round < maxRounds; round++) {
      let moved = false;
      for (const id of [...this.nodes.keys()].sort((a, b) => a - b)) {
        while (this.processReady(id)) moved = true;
      }
      const batch = this.queue;
      this.queue = [];
      for (const m of batch) {
        moved = true;
        this.trace.push(m);
        if (this.drop(m)) continue;
        this.nodes.get(m.to)?.raw.step(m);
      }
      if (!moved) return;
    }
    throw new Error('network did not settle');
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) this.node(id).raw.tick();
  }

  tickAll(times = 1): void {
    for (let i = 0; i < times; i++) for (const node of this.nodes.values()) node.raw.tick();
  }

  /** Ticks every node one at a time, delivering after each round, until `done` or the bound. */
  tickUntil(done: () => boolean, maxTicks = 200): void {
    for (let i = 0; i < maxTicks && !done(); i++) {
      this.tickAll();
      this.deliver();
    }
    if (!done()) throw new Error('condition not reached');
  }

  campaign(id: NodeId): void {
    this.node(id).raw.campaign();
    this.deliver();
  }

  leaderId(): NodeId | null {
    let leader: NodeId | null = null;
    let term = -1;
    for (const node of this.nodes.values()) {
      const s = node.raw.status();
      if (s.softState.role === 'leader' && s.hardState.term > term) {
        leader = node.id;
        term = s.hardState.term;
      }
    }
    return leader;
  }

  /** Drops every message to or from any of `ids`. */
  isolate(...ids: NodeId[]): void {
    const set = new Set(ids);
    this.drop = (m) => set.has(m.from) !== set.has(m.to);
  }

  /** Splits into groups; messages across groups are dropped. */
  partition(...groups: NodeId[][]): void {
    const groupOf = new Map<NodeId, number>();
    groups.forEach((group, i) => group.forEach((id) => groupOf.set(id, i)));
    this.drop = (m) => groupOf.get(m.from) !== groupOf.get(m.to);
  }

  heal(): void {
    this.drop = () => false;
  }

  role(id: NodeId): string {
    return this.node(id).raw.status().softState.role;
  }

  term(id: NodeId): number {
    return this.node(id).raw.status().hardState.term;
  }
}

function applyEntry(node: TestNode, entry: Entry): void {
  if (entry.index <= node.appliedIndex) throw new Error(`entry ${entry.index} applied twice on ${node.id}`);
  if (entry.index !== node.appliedIndex + 1) throw new Error(`gap: applying ${entry.index} after ${node.appliedIndex} on ${node.id}`);
  node.appliedIndex = entry.index;
  if (entry.type === 'conf') {
    node.confState = node.raw.applyConfChange(decodeConfChange(entry.data));
    node.storage.setConfState(node.confState);
  } else if (entry.data.length > 0) {
    node.applied.push(dec(entry.data));
  }
}

/** Test state machine image: JSON of the applied list. */
export function stateMachineImage(node: TestNode): Uint8Array {
  return enc(JSON.stringify(node.applied));
}

function applySnapshotToStateMachine(node: TestNode, snap: Snapshot): void {
  node.applied = JSON.parse(dec(snap.data)) as string[];
  node.appliedIndex = snap.metadata.index;
  node.confState = snap.metadata.confState;
}

/** Snapshot the node's state machine at its applied index and compact the log up to it. */
export function snapshotAndCompact(node: TestNode): Snapshot {
  const cs = node.raw.status().confState;
  const snap = node.storage.createSnapshot(node.appliedIndex, cs, stateMachineImage(node));
  node.storage.compact(node.appliedIndex);
  return snap;
}

/** Elects `id` by ticking nothing: campaign and deliver. */
export function electLeader(net: Network, id: NodeId): void {
  net.campaign(id);
  if (net.role(id) !== 'leader') throw new Error(`${id} did not become leader (role ${net.role(id)})`);
}

export function proposeAndDeliver(net: Network, id: NodeId, text: string): void {
  net.node(id).raw.propose(enc(text));
  net.deliver();
}
