// The chaos tool's seeded randomness (mulberry32): the same seed picks the same faults, targets,
// keys and values, so a run's schedule can be replayed (timing, of course, cannot).
import { assert } from '../util/index.ts';

export class Random {
  private state: number;

  constructor(seed: number) {
    assert(Number.isSafeInteger(seed), 'seed must be a safe integer');
    this.state = seed >>> 0;
  }

  /** Uniform 32-bit unsigned integer. */
  uint32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform integer in [0, maxExclusive). */
  int(maxExclusive: number): number {
    assert(Number.isSafeInteger(maxExclusive) && maxExclusive > 0, 'int bound must be a positive integer');
    return Math.floor((this.uint32() / 0x1_0000_0000) * maxExclusive);
  }

  /** Uniform integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    assert(lo <= hi, () => `empty range [${lo}, ${hi}]`);
    return lo + this.int(hi - lo + 1);
  }

  /** True with probability `p` (0..1). */
  chance(p: number): boolean {
    return this.uint32() / 0x1_0000_0000 < p;
  }

  pick<T>(items: readonly T[]): T {
    assert(items.length > 0, 'pick from an empty list');
    return items[this.int(items.length)];
  }

  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }

  /** A new independent stream (for a worker), derived from this one. */
  fork(): Random {
    return new Random(this.uint32());
  }
}
