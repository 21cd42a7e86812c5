// The not-yet-persisted tail of the Raft log (and a not-yet-persisted snapshot), as in etcd's unstable.
import { assert } from '../util/index.ts';
import { assertContiguous } from './entries.ts';
import type { Entry, Snapshot } from './types.ts';

/**
 * `entries[i]` has index `offset + i`. Entries from `offsetInProgress` on have not yet been handed
 * to the driver in a Ready; those before it are being persisted by an outstanding Ready.
 */
export class UnstableLog {
  snapshot: Snapshot | null = null;
  entries: Entry[] = [];
  offset: number;
  offsetInProgress: number;
  snapshotInProgress = false;

  constructor(offset: number) {
    assert(offset >= 1, 'unstable offset must be >= 1');
    this.offset = offset;
    this.offsetInProgress = offset;
  }

  /** First index if the unstable part starts the log (a pending snapshot), else null. */
  maybeFirstIndex(): number | null {
    return this.snapshot === null ? null : this.snapshot.metadata.index + 1;
  }

  maybeLastIndex(): number | null {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    if (this.snapshot !== null) return this.snapshot.metadata.index;
    return null;
  }

  maybeTerm(index: number): number | null {
    if (index < this.offset) {
      if (this.snapshot !== null && this.snapshot.metadata.index === index) return this.snapshot.metadata.term;
      return null;
    }
    const last = this.maybeLastIndex();
    if (last === null || index > last) return null;
    return this.entries[index - this.offset].term;
  }

  /** Entries not yet handed out in a Ready. */
  nextEntries(): Entry[] {
    const inProgress = this.offsetInProgress - this.offset;
    assert(inProgress >= 0 && inProgress <= this.entries.length);
    return inProgress === this.entries.length ? [] : this.entries.slice(inProgress);
  }

  nextSnapshot(): Snapshot | null {
    return this.snapshot === null || this.snapshotInProgress ? null : this.snapshot;
  }

  /** Everything handed out so far is now being persisted by the driver. */
  acceptInProgress(): void {
    if (this.entries.length > 0) this.offsetInProgress = this.offset + this.entries.length;
    if (this.snapshot !== null) this.snapshotInProgress = true;
  }

  /** Entries up to (index, term) are persisted; ignored if that entry was replaced meanwhile. */
  stableTo(index: number, term: number): void {
    const found = this.maybeTerm(index);
    if (found === null || index < this.offset || found !== term) return;
    const count = index + 1 - this.offset;
    this.entries = this.entries.slice(count);
    this.offset = index + 1;
    this.offsetInProgress = Math.max(this.offsetInProgress, this.offset);
    assert(this.offsetInProgress <= this.offset + this.entries.length);
  }

  stableSnapTo(index: number): void {
    if (this.snapshot !== null && this.snapshot.metadata.index === index) {
      this.snapshot = null;
      this.snapshotInProgress = false;
    }
  }

  restore(snapshot: Snapshot): void {
    this.offset = snapshot.metadata.index + 1;
    this.offsetInProgress = this.offset;
    this.entries = [];
    this.snapshot = snapshot;
    this.snapshotInProgress = false;
  }

  /** Appends, truncating any unstable suffix from `entries[0].index` on (the caller checked conflicts). */
  truncateAndAppend(entries: Entry[]): void {
    assert(entries.length > 0, 'truncateAndAppend needs entries');
    assertContiguous(entries);
    const from = entries[0].index;
    if (from === this.offset + this.entries.length) {
      this.entries = this.entries.concat(entries);
    } else if (from <= this.offset) {
      // Replaces the whole unstable part; everything before `from` is in stable storage.
      this.offset = from;
      this.entries = [...entries];
    } else {
      this.entries = this.entries.slice(0, from - this.offset).concat(entries);
    }
    this.offsetInProgress = Math.max(this.offset, Math.min(this.offsetInProgress, from));
    assert(this.offsetInProgress <= this.offset + this.entries.length);
  }

  /** Entries in [lo, hi), which must lie inside the unstable part. */
  slice(lo: number, hi: number): Entry[] {
    assert(lo <= hi, () => `invalid unstable slice ${lo} > ${hi}`);
    assert(lo >= this.offset && hi <= this.offset + this.entries.length, () => `unstable slice [${lo},${hi}) out of bound [${this.offset},${this.offset + this.entries.length}]`);
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}
