// A small deterministic PRNG (mulberry32) for the injected `Rng`: same seed, same timeouts.
import { assert } from '../util/index.ts';
import type { Rng } from './types.ts';

/** mulberry32: 32-bit state, good enough spread for election jitter, trivially reproducible. */
export function seededRng(seed: number): Rng {
  assert(Number.isSafeInteger(seed), 'seed must be a safe integer');
  let state = seed >>> 0;
  const nextUint32 = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  return {
    nextInt(maxExclusive: number): number {
      assert(Number.isSafeInteger(maxExclusive) && maxExclusive > 0, 'nextInt bound must be a positive integer');
      const value = Math.floor((nextUint32() / 0x1_0000_0000) * maxExclusive);
      assert(value >= 0 && value < maxExclusive);
      return value;
    },
  };
}
