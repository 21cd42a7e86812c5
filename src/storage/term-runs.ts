// The terms of a contiguous log range, kept as runs (start index, term): Raft log terms never
// decrease and change rarely, so a whole log's terms fit in a few numbers and term(i) never reads disk.
import { assert } from '../util/index.ts';

export class TermRuns {
  /** `starts[k]` is the first index of run k; the run ends where run k+1 starts (or at `last`). */
  private starts: number[] = [];
  private terms: number[] = [];
  private firstIndex: number;
  private lastIndex: number;

  /** An empty range that the next append extends from `first`. */
  constructor(first: number) {
    assert(Number.isSafeInteger(first) && first >= 1, () => `term runs from ${first}`);
    this.firstIndex = first;
    this.lastIndex = first - 1;
  }

  get first(): number {
    return this.firstIndex;
  }

  get last(): number {
    return this.lastIndex;
  }

  get runCount(): number {
    return this.starts.length;
  }

  /** Drops everything and restarts empty at `first`. */
  reset(first: number): void {
    assert(Number.isSafeInteger(first) && first >= 1, () => `term runs from ${first}`);
    this.starts = [];
    this.terms = [];
    this.firstIndex = first;
    this.lastIndex = first - 1;
  }

  /** Appends `count` entries of `term` at `last + 1`. Terms must not decrease. */
  append(index: number, term: number, count = 1): void {
    assert(index === this.lastIndex + 1, () => `term runs: append at ${index}, last ${this.lastIndex}`);
    assert(count >= 1, 'term runs: empty append');
    const runs = this.starts.length;
    const lastTerm = runs > 0 ? this.terms[runs - 1] : -1;
    assert(term >= lastTerm, () => `term runs: term ${term} at ${index} after term ${lastTerm}`);
    if (term !== lastTerm) {
      this.starts.push(index);
      this.terms.push(term);
    }
    this.lastIndex += count;
  }

  /** Term of entry `index`, which must lie in [first, last]. */
  termAt(index: number): number {
    assert(index >= this.firstIndex && index <= this.lastIndex, () => `term runs: ${index} outside [${this.firstIndex}, ${this.lastIndex}]`);
    return this.terms[this.runAt(index)];
  }

  /** Term of the last entry, or undefined if the range is empty. */
  lastTerm(): number | undefined {
    return this.starts.length > 0 ? this.terms[this.terms.length - 1] : undefined;
  }

  /** Forgets entries from `index` on (a conflicting suffix is about to be replaced). */
  truncateFrom(index: number): void {
    assert(index >= this.firstIndex && index <= this.lastIndex + 1, () => `term runs: truncate at ${index}`);
    if (index === this.lastIndex + 1) return;
    const keep = this.runAt(index) + (this.starts[this.runAt(index)] < index ? 1 : 0);
    this.starts.length = keep;
    this.terms.length = keep;
    this.lastIndex = index - 1;
  }

  /** Forgets entries before `index` (compaction); `index` may be `last + 1` (everything goes). */
  dropBefore(index: number): void {
    assert(index >= this.firstIndex && index <= this.lastIndex + 1, () => `term runs: drop before ${index}`);
    if (index === this.lastIndex + 1) {
      this.reset(index);
      return;
    }
    const run = this.runAt(index);
    this.starts = this.starts.slice(run);
    this.terms = this.terms.slice(run);
    this.starts[0] = index;
    this.firstIndex = index;
  }

  /** Largest run whose start is <= index (binary search). */
  private runAt(index: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    assert(hi >= 0 && this.starts[0] <= index, () => `term runs: no run holds ${index}`);
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= index) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}
