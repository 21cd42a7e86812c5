// The simulator's single source of randomness: every decision draws from one seeded stream, so a
// seed replays exactly. Node rngs are separate streams derived from (seed, node, incarnation).
import { seededRng } from '../raft/index.ts';
import type { Rng } from '../raft/index.ts';
import { assert } from '../util/index.ts';

export class SimRandom {
  private readonly rng: Rng;

  constructor(seed: number) {
    this.rng = seededRng(seed);
  }

  /** Uniform integer in [0, maxExclusive). */
  int(maxExclusive: number): number {
    return this.rng.nextInt(maxExclusive);
  }

  /** Uniform integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    assert(lo <= hi, () => `empty range [${lo}, ${hi}]`);
    return lo + this.rng.nextInt(hi - lo + 1);
  }

  /** True with probability permille / 1000. */
  chance(permille: number): boolean {
    if (permille <= 0) return false;
    return this.rng.nextInt(1000) < permille;
  }

  pick<T>(items: readonly T[]): T {
    assert(items.length > 0, 'pick from an empty list');
    return items[this.rng.nextInt(items.length)];
  }

  /** Fisher–Yates, in place. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.rng.nextInt(i + 1);
      const held = items[i];
      items[i] = items[j];
      items[j] = held;
    }
    return items;
  }
}

/** A node's own rng stream: a pure function of (seed, node id, incarnation), independent of the sim's draws. */
export function nodeRng(seed: number, nodeId: number, incarnation: number): Rng {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (nodeId + 0x27d4eb2f), 0xc2b2ae35) >>> 0;
  h = Math.imul(h ^ (incarnation + 0x165667b1), 0x85ebca6b) >>> 0;
  return seededRng((h ^ (h >>> 16)) >>> 0);
}
