// The Raft log as the core sees it: stable storage plus the unstable tail, with commit/apply cursors.
import { assert } from '../util/index.ts';
import { assertContiguous, limitSize } from './entries.ts';
import { CompactedError, UnavailableError } from './errors.ts';
import { UnstableLog } from './log-unstable.ts';
import type { Entry, LogStorage, Snapshot } from './types.ts';

/** "No byte limit" for slices; still a finite number so arithmetic stays exact. */
export const NO_LIMIT = Number.MAX_SAFE_INTEGER;

/** An (index, term) position in the log. */
export interface EntryId {
  index: number;
  term: number;
}

export class RaftLog {
  readonly storage: LogStorage;
  readonly unstable: UnstableLog;
  /** Highest index known to be committed by a quorum. */
  committed: number;
  /** Highest index the driver has applied (acknowledged with advance()). */
  applied: number;
  /** Highest index handed out for applying in the outstanding Ready; >= applied. */
  applying: number;
  /** Bytes of committed entries per Ready (NO_LIMIT for unlimited). */
  readonly maxApplyingBytes: number;

  constructor(storage: LogStorage, maxApplyingBytes: number) {
    const firstIndex = storage.firstIndex();
    const lastIndex = storage.lastIndex();
    assert(firstIndex >= 1 && lastIndex >= firstIndex - 1, 'storage indexes out of order');
    this.storage = storage;
    this.unstable = new UnstableLog(lastIndex + 1);
    this.committed = firstIndex - 1;
    this.applied = firstIndex - 1;
    this.applying = firstIndex - 1;
    this.maxApplyingBytes = maxApplyingBytes;
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  lastEntryId(): EntryId {
    const index = this.lastIndex();
    return { index, term: this.term(index) };
  }

  /** Term of `index`; valid for firstIndex()-1 ..= lastIndex(). Throws CompactedError / UnavailableError. */
  term(index: number): number {
    const unstableTerm = this.unstable.maybeTerm(index);
    if (unstableTerm !== null) return unstableTerm;
    if (index < this.firstIndex() - 1) throw new CompactedError();
    if (index > this.lastIndex()) throw new UnavailableError();
    return this.storage.term(index);
  }

  /** Term of `index`, or null when it is compacted or beyond the log. */
  termOrNull(index: number): number | null {
    // Checked up front: a follower asks this for every new entry it receives, and building an
    // exception per entry cost a quarter of the core's CPU.
    const unstableTerm = this.unstable.maybeTerm(index);
    if (unstableTerm !== null) return unstableTerm;
    if (index < this.firstIndex() - 1 || index > this.lastIndex()) return null;
    try {
      return this.storage.term(index);
    } catch (error) {
      if (error instanceof CompactedError || error instanceof UnavailableError) return null;
      throw error;
    }
  }

  matchTerm(index: number, term: number): boolean {
    return this.termOrNull(index) === term;
  }

  /** Whether a candidate whose log ends at (index, term) is at least as up to date as ours (§5.4.1). */
  isUpToDate(candidate: EntryId): boolean {
    const last = this.lastEntryId();
    return candidate.term > last.term || (candidate.term === last.term && candidate.index >= last.index);
  }

  /** Index of the first entry that conflicts with (or extends) the log, 0 if all are already present. */
  findConflict(entries: readonly Entry[]): number {
    for (const entry of entries) {
      if (!this.matchTerm(entry.index, entry.term)) return entry.index;
    }
    return 0;
  }

  /**
   * The largest (index', term') with index' <= index and term' <= term in our log (etcd's
   * findConflictByTerm); term' is 0 when the entry is compacted (a possible match).
   */
  findConflictByTerm(index: number, term: number): EntryId {
    assert(index <= this.lastIndex(), () => `findConflictByTerm index ${index} beyond last ${this.lastIndex()}`);
    for (let at = index; at > 0; at--) {
      const ourTerm = this.termOrNull(at);
      if (ourTerm === null) return { index: at, term: 0 };
      if (ourTerm <= term) return { index: at, term: ourTerm };
    }
    return { index: 0, term: 0 };
  }

  /**
   * Follower side of an append: if the log holds `prev`, appends `entries` (truncating a conflicting
   * suffix), commits up to min(commit, last new index) and returns that last new index; else null.
   * `skipConsistencyCheck` is the `skipAppendConsistencyCheck` testing fault.
   */
  maybeAppend(prev: EntryId, commit: number, entries: Entry[], skipConsistencyCheck: boolean): number | null {
    const prevMatches = this.matchTerm(prev.index, prev.term);
    const canSkip = skipConsistencyCheck && prev.index <= this.lastIndex() && prev.index >= this.committed;
    if (!prevMatches && !canSkip) return null;
    assertContiguous(entries);
    assert(entries.length === 0 || entries[0].index === prev.index + 1, 'append entries do not follow prev');
    const lastNewIndex = prev.index + entries.length;
    const conflictIndex = this.findConflict(entries);
    if (conflictIndex !== 0) {
      assert(conflictIndex > this.committed, () => `entry ${conflictIndex} conflicts with committed entry (committed ${this.committed})`);
      this.append(entries.slice(conflictIndex - (prev.index + 1)));
    }
    this.commitTo(Math.min(commit, lastNewIndex));
    return lastNewIndex;
  }

  /** Appends after truncating from entries[0].index; returns the new last index. */
  append(entries: Entry[]): number {
    if (entries.length === 0) return this.lastIndex();
    const after = entries[0].index - 1;
    assert(after >= this.committed, () => `after(${after}) is out of range [committed(${this.committed})]`);
    assert(after <= this.lastIndex(), () => `append leaves a gap after ${this.lastIndex()}`);
    this.unstable.truncateAndAppend(entries);
    return this.lastIndex();
  }

  /** Entries from `lo` to the end, at most `maxBytes` (at least one). Throws CompactedError. */
  entries(lo: number, maxBytes: number): Entry[] {
    if (lo > this.lastIndex()) return [];
    return this.slice(lo, this.lastIndex() + 1, maxBytes);
  }

  /** Entries in [lo, hi), at most `maxBytes` (at least one). Throws CompactedError. */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    assert(lo <= hi && hi <= this.lastIndex() + 1, () => `slice [${lo},${hi}) out of bound, last ${this.lastIndex()}`);
    if (lo < this.firstIndex()) throw new CompactedError();
    if (lo === hi) return [];
    const unstableOffset = this.unstable.offset;
    let result: Entry[] = [];
    if (lo < unstableOffset) {
      const storedHi = Math.min(hi, unstableOffset);
      result = this.storage.entries(lo, storedHi, maxBytes);
      assert(result.length > 0 && result[0].index === lo, 'storage returned no entries for a held range');
      if (result.length < storedHi - lo) return result;
    }
    if (hi > unstableOffset) {
      const fresh = this.unstable.slice(Math.max(lo, unstableOffset), hi);
      result = result.length === 0 ? fresh : limitSize(result.concat(fresh), maxBytes);
    }
    return limitSize(result, maxBytes);
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    assert(index <= this.lastIndex(), () => `tocommit(${index}) is out of range [lastIndex(${this.lastIndex()})]. Was the raft log corrupted, truncated, or lost?`);
    this.committed = index;
  }

  /** Commits `index` if it is beyond the commit index and (unless `anyTerm`) was written in `term`. */
  maybeCommit(index: number, term: number, anyTerm: boolean): boolean {
    if (index <= this.committed) return false;
    if (!anyTerm && this.termOrNull(index) !== term) return false;
    this.commitTo(index);
    return true;
  }

  appliedTo(index: number): void {
    assert(index <= this.committed && index >= this.applied, () => `applied(${index}) is out of range [prevApplied(${this.applied}), committed(${this.committed})]`);
    this.applied = index;
    this.applying = Math.max(this.applying, index);
  }

  /** Replaces the log by a snapshot received from the leader. */
  restore(snapshot: Snapshot): void {
    assert(snapshot.metadata.index > this.committed, 'restoring a snapshot that is not newer than the commit index');
    this.committed = snapshot.metadata.index;
    this.unstable.restore(snapshot);
  }

  /** The snapshot to send to a follower: the unstable one if any, else storage's. */
  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  hasNextOrInProgressSnapshot(): boolean {
    return this.unstable.snapshot !== null;
  }

  /** Highest index known to be persisted by the driver (0 while a snapshot is not yet persisted). */
  persistedLastIndex(): number {
    if (this.unstable.snapshot !== null) return 0;
    return this.unstable.offset - 1;
  }

  /** Committed, persisted, not-yet-applied entries for the next Ready (bounded by maxApplyingBytes). */
  nextCommittedEntries(): Entry[] {
    if (this.hasNextOrInProgressSnapshot()) return [];
    const lo = this.applying + 1;
    const hi = Math.min(this.committed, this.persistedLastIndex()) + 1;
    if (lo >= hi) return [];
    assert(lo >= this.firstIndex(), () => `applying ${lo} below first index ${this.firstIndex()}: snapshot not applied?`);
    return this.slice(lo, hi, this.maxApplyingBytes);
  }

  hasNextCommittedEntries(): boolean {
    if (this.hasNextOrInProgressSnapshot()) return false;
    return this.applying < Math.min(this.committed, this.persistedLastIndex());
  }

  acceptApplying(index: number): void {
    assert(index <= this.committed && index >= this.applying, 'acceptApplying out of range');
    this.applying = index;
  }
}
