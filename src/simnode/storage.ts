// Simulated node storage: what the host stages lives in a MemoryStorage per group; commit() makes
// it durable after a simulated fsync delay. A crash keeps only the durable image, which is kept
// current by replaying each committed batch of staged writes onto it (no full copy per commit).
import type { Checker } from '../sim/index.ts';
import { MemoryStorage } from '../raft/index.ts';
import type { ConfState, Entry, HardState, Snapshot } from '../raft/index.ts';
import type { HostStorage, ReplicaStorage } from '../server/index.ts';
import { assert } from '../util/index.ts';

/** One staged write, replayed onto the durable image when its commit completes. */
type StagedWrite =
  | { op: 'append'; entries: Entry[] }
  | { op: 'hardState'; hardState: HardState }
  | { op: 'applySnapshot'; snapshot: Snapshot }
  | { op: 'createSnapshot'; index: number; confState: ConfState; data: Uint8Array }
  | { op: 'compact'; index: number };

/** Bound on staged writes between two commits: the host commits every turn, so more is a bug. */
const MAX_STAGED_WRITES = 100_000;

function replay(storage: MemoryStorage, write: StagedWrite): void {
  switch (write.op) {
    case 'append':
      return storage.append(write.entries);
    case 'hardState':
      return storage.setHardState(write.hardState);
    case 'applySnapshot':
      return storage.applySnapshot(write.snapshot);
    case 'createSnapshot':
      storage.createSnapshot(write.index, write.confState, write.data);
      return;
    case 'compact':
      return storage.compact(write.index);
  }
}

/** Reports what a node persists to the Raft checker (src/sim), as the Raft-core simulator does. */
export interface PersistObserver {
  checker: Checker;
  nodeId: number;
}

/**
 * One group's staged log: a MemoryStorage the host reads and writes, recording each write for the
 * durable image and telling the Raft checker what was persisted.
 */
class StagedGroup implements ReplicaStorage {
  constructor(
    readonly memory: MemoryStorage,
    private readonly record: (groupId: number, write: StagedWrite) => void,
    private readonly groupId: number,
    private readonly observer: PersistObserver | null,
  ) {}

  initialState(): { hardState: HardState; confState: ConfState } {
    return this.memory.initialState();
  }
  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    return this.memory.entries(lo, hi, maxBytes);
  }
  term(index: number): number {
    return this.memory.term(index);
  }
  firstIndex(): number {
    return this.memory.firstIndex();
  }
  lastIndex(): number {
    return this.memory.lastIndex();
  }
  snapshot(): Snapshot {
    return this.memory.snapshot();
  }

  append(entries: Entry[]): void {
    this.memory.append(entries);
    this.record(this.groupId, { op: 'append', entries: entries.map((entry) => ({ ...entry })) });
    this.observer?.checker.entriesPersisted(this.observer.nodeId, this.memory, entries);
  }

  setHardState(hardState: HardState): void {
    const previous = this.memory.initialState().hardState;
    this.observer?.checker.hardStatePersisted(this.observer.nodeId, previous, hardState);
    this.memory.setHardState(hardState);
    this.record(this.groupId, { op: 'hardState', hardState: { ...hardState } });
    if (this.observer !== null && hardState.commit > previous.commit) {
      this.observer.checker.commitAdvanced(this.observer.nodeId, hardState.term, this.memory, previous.commit, hardState.commit);
    }
  }

  applySnapshot(snapshot: Snapshot): void {
    this.memory.applySnapshot(snapshot);
    this.record(this.groupId, { op: 'applySnapshot', snapshot });
    this.observer?.checker.snapshotPersisted(this.observer.nodeId, snapshot.metadata);
  }

  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    const snapshot = this.memory.createSnapshot(index, confState, data);
    this.record(this.groupId, { op: 'createSnapshot', index, confState, data });
    return snapshot;
  }

  compact(index: number): void {
    this.memory.compact(index);
    this.record(this.groupId, { op: 'compact', index });
  }
}

/** A commit whose simulated fsync has not finished: it completes at `dueMs`, or a crash decides. */
interface PendingCommit {
  writes: [number, StagedWrite][];
  dueMs: number;
  resolve: () => void;
}

export interface SimStorageOptions {
  /** Simulated fsync latency in ms for the next commit (0 = durable at once). */
  commitLatencyMs: () => number;
  now: () => number;
  observer: PersistObserver | null;
  /**
   * Planted bug (fault tests): commit() acknowledges at once but the writes reach the disk only at
   * the next `SimDisk.flush()` (a periodic OS writeback), as with fsync turned off.
   */
  skipSync: boolean;
}

/**
 * The durable side of one node, which outlives its incarnations. `open()` starts an incarnation
 * from the durable image; what it stages becomes durable only through its commits.
 */
export class SimDisk {
  /** The durable image per group. */
  private readonly durable = new Map<number, MemoryStorage>();
  /** Committed without fsync (the skipSync fault): durable at the next flush, lost by a crash. */
  private unsynced: [number, StagedWrite][] = [];

  /** Groups created before the first start (bootstrap) are durable as given. */
  seed(groupId: number, storage: MemoryStorage): void {
    assert(!this.durable.has(groupId), () => `group ${groupId} seeded twice`);
    this.durable.set(groupId, storage);
  }

  durableGroup(groupId: number): MemoryStorage | undefined {
    return this.durable.get(groupId);
  }

  /** Applies a committed batch of staged writes to the durable image. */
  persist(writes: readonly [number, StagedWrite][]): void {
    for (const [groupId, write] of writes) {
      let storage = this.durable.get(groupId);
      if (storage === undefined) this.durable.set(groupId, (storage = new MemoryStorage()));
      replay(storage, write);
    }
  }

  /** Writes acknowledged without fsync, held in the page cache until the next flush. */
  buffer(writes: readonly [number, StagedWrite][]): void {
    this.unsynced.push(...writes);
  }

  /** The OS writes its page cache back. */
  flush(): void {
    const writes = this.unsynced;
    this.unsynced = [];
    this.persist(writes);
  }

  /** A crash: the page cache is gone. */
  dropUnsynced(): void {
    this.unsynced = [];
  }

  /** A new incarnation's storage: a copy of the durable image. */
  open(options: SimStorageOptions): SimHostStorage {
    return new SimHostStorage(this, options);
  }
}

export class SimHostStorage implements HostStorage {
  private readonly groups = new Map<number, StagedGroup>();
  private staged: [number, StagedWrite][] = [];
  pending: PendingCommit | null = null;
  /** Called when a commit starts waiting for its simulated fsync (the driver stops awaiting the turn). */
  onBlocked: (() => void) | null = null;

  constructor(
    private readonly disk: SimDisk,
    private readonly options: SimStorageOptions,
  ) {}

  group(groupId: number): ReplicaStorage {
    let group = this.groups.get(groupId);
    if (group === undefined) {
      const memory = this.disk.durableGroup(groupId)?.clone() ?? new MemoryStorage();
      group = new StagedGroup(memory, (id, write) => this.stage(id, write), groupId, this.options.observer);
      this.groups.set(groupId, group);
    }
    return group;
  }

  /** The staged log of a group (what the running incarnation sees). */
  memory(groupId: number): MemoryStorage | undefined {
    return this.groups.get(groupId)?.memory;
  }

  private stage(groupId: number, write: StagedWrite): void {
    assert(this.staged.length < MAX_STAGED_WRITES, () => `more than ${MAX_STAGED_WRITES} writes staged without a commit`);
    this.staged.push([groupId, write]);
  }

  commit(): Promise<void> {
    assert(this.pending === null, 'commit() while another commit is in flight: the host overlapped two turns');
    const writes = this.staged;
    this.staged = [];
    if (this.options.skipSync) {
      this.disk.buffer(writes);
      return Promise.resolve();
    }
    const latency = this.options.commitLatencyMs();
    if (latency <= 0) {
      this.disk.persist(writes);
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.pending = { writes, dueMs: this.options.now() + latency, resolve };
      this.onBlocked?.();
    });
  }

  /** The simulated fsync finished: the batch is durable and the waiting turn may continue. */
  completePending(): void {
    const pending = this.pending;
    assert(pending !== null, 'no commit in flight');
    this.pending = null;
    this.disk.persist(pending.writes);
    pending.resolve();
  }

  /**
   * The node crashed. A commit in flight may or may not have reached the disk (`landed`); what was
   * staged after it is lost. The turn awaiting it never resumes.
   */
  crash(landed: boolean): void {
    if (this.pending !== null && landed) this.disk.persist(this.pending.writes);
    this.disk.dropUnsynced();
    this.pending = null;
    this.staged = [];
    this.onBlocked = null;
  }
}
