// In-memory LogStorage for tests and the simulator, with etcd MemoryStorage semantics.
import { assert } from '../util/index.ts';
import { assertContiguous, copyConfState, copyHardState, copySnapshot, emptyConfState, limitSize } from './entries.ts';
import { CompactedError, SnapshotOutOfDateError, UnavailableError } from './errors.ts';
import type { ConfState, Entry, HardState, LogStorage, Snapshot } from './types.ts';

/**
 * Holds the log after the latest snapshot. `entries[0]` is a dummy carrying the snapshot's index
 * and term, so `term(firstIndex() - 1)` works, as in etcd.
 */
export class MemoryStorage implements LogStorage {
  private hardState: HardState = { term: 0, vote: 0, commit: 0 };
  private snap: Snapshot;
  /** Conf state reported by initialState(); the snapshot's unless setConfState() moved it on. */
  private confState: ConfState;
  private entriesWithDummy: Entry[];

  /**
   * `confState` gives a fresh group its initial voters (etcd bootstraps with ApplySnapshot(ConfState)),
   * as an implicit snapshot at index 0. A member added later starts from the same bootstrap
   * conf state (it is not in it, so it never campaigns) and replays the log's conf changes; if the
   * leader has compacted, it gets a snapshot instead.
   */
  constructor(confState: ConfState = emptyConfState()) {
    this.snap = { metadata: { index: 0, term: 0, confState: copyConfState(confState) }, data: new Uint8Array(0) };
    this.confState = copyConfState(confState);
    this.entriesWithDummy = [{ term: 0, index: 0, type: 'normal', data: new Uint8Array(0) }];
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: copyHardState(this.hardState), confState: copyConfState(this.confState) };
  }

  setHardState(hs: HardState): void {
    this.hardState = copyHardState(hs);
  }

  /**
   * Records the membership as of the last applied entry, for restarts with `applied` beyond the
   * snapshot (the core does not replay conf changes below `applied`). Optional otherwise.
   */
  setConfState(cs: ConfState): void {
    this.confState = copyConfState(cs);
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const offset = this.entriesWithDummy[0].index;
    if (lo <= offset) throw new CompactedError();
    if (hi > this.lastIndex() + 1) throw new UnavailableError();
    assert(lo <= hi, () => `entries: lo ${lo} > hi ${hi}`);
    if (this.entriesWithDummy.length === 1) throw new UnavailableError();
    const slice = this.entriesWithDummy.slice(lo - offset, hi - offset);
    return limitSize(slice, maxBytes);
  }

  term(index: number): number {
    const offset = this.entriesWithDummy[0].index;
    if (index < offset) throw new CompactedError();
    if (index - offset >= this.entriesWithDummy.length) throw new UnavailableError();
    return this.entriesWithDummy[index - offset].term;
  }

  firstIndex(): number {
    return this.entriesWithDummy[0].index + 1;
  }

  lastIndex(): number {
    return this.entriesWithDummy[0].index + this.entriesWithDummy.length - 1;
  }

  snapshot(): Snapshot {
    return copySnapshot(this.snap);
  }

  /** Replaces the whole log with `snap`. Throws SnapshotOutOfDateError if it is not newer. */
  applySnapshot(snap: Snapshot): void {
    if (snap.metadata.index <= this.snap.metadata.index) throw new SnapshotOutOfDateError();
    this.snap = copySnapshot(snap);
    this.confState = copyConfState(snap.metadata.confState);
    const { index, term } = snap.metadata;
    this.entriesWithDummy = [{ term, index, type: 'normal', data: new Uint8Array(0) }];
  }

  /** Makes a snapshot at `index` (which must be held) with the application's image `data`. */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snap.metadata.index) throw new SnapshotOutOfDateError();
    assert(index <= this.lastIndex(), () => `snapshot ${index} is out of bound lastindex(${this.lastIndex()})`);
    const term = this.term(index);
    this.snap = { metadata: { index, term, confState: copyConfState(confState) }, data };
    // As etcd's MemoryStorage: a restart resumes from the snapshot, so it reports the snapshot's
    // membership and the log after it replays the rest.
    this.confState = copyConfState(confState);
    return copySnapshot(this.snap);
  }

  /** Discards entries before `index`; `index` becomes the dummy. The app must have snapshotted up to it. */
  compact(index: number): void {
    const offset = this.entriesWithDummy[0].index;
    if (index <= offset) throw new CompactedError();
    assert(index <= this.lastIndex(), () => `compact ${index} is out of bound lastindex(${this.lastIndex()})`);
    const kept = this.entriesWithDummy.slice(index - offset);
    kept[0] = { term: kept[0].term, index: kept[0].index, type: 'normal', data: new Uint8Array(0) };
    this.entriesWithDummy = kept;
  }

  /** Appends `entries`, first truncating any suffix they conflict with; skips entries already compacted. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    assertContiguous(entries);
    const first = this.firstIndex();
    const last = entries[0].index + entries.length - 1;
    if (last < first) return;
    const fresh = first > entries[0].index ? entries.slice(first - entries[0].index) : entries;
    const offset = fresh[0].index - this.entriesWithDummy[0].index;
    assert(offset <= this.entriesWithDummy.length, () => `missing log entry [last: ${this.lastIndex()}, append at: ${fresh[0].index}]`);
    // In place: the array is private, and clone() copies it.
    this.entriesWithDummy.length = offset;
    for (const entry of fresh) this.entriesWithDummy.push(copyEntry(entry));
    assert(this.lastIndex() === last, 'append did not end at the last new entry');
  }

  /** Deep enough copy to model a crash: later appends/compactions on either side do not leak. */
  clone(): MemoryStorage {
    const copy = new MemoryStorage(this.confState);
    copy.hardState = copyHardState(this.hardState);
    copy.snap = copySnapshot(this.snap);
    copy.entriesWithDummy = this.entriesWithDummy.map(copyEntry);
    return copy;
  }
}

function copyEntry(entry: Entry): Entry {
  return { term: entry.term, index: entry.index, type: entry.type, data: entry.data };
}
