// The state machine's bounds and lease policy, in one place. Every replica of a range must use the
// same values: they change what a request returns, so they are part of the replicated behaviour.

import { assert } from '../util/index.ts';

export interface MvccLimits {
  /** Most ops in one Txn level: max(len(compare), len(success), len(failure)) (etcd --max-txn-ops). */
  maxTxnOps: number;
  /** Most live watchers on one store; past it `watch()` throws RESOURCE_EXHAUSTED. */
  maxWatchersPerStore: number;
  /** Most events handed to a sink in one replay batch. A single revision is never split, so one
   *  batch can exceed this only when one revision alone holds more events (a large DeleteRange). */
  maxEventsPerWatchBatch: number;
  /** Most leases granted at once; past it `leaseGrant` throws RESOURCE_EXHAUSTED. */
  maxLeases: number;
  /** A grant below this is raised to it. etcd derives it from the election timeout:
   *  ceil(1.5 * electionTicks * tickMs / 1000) = 2 s with etcd's defaults. */
  minLeaseTtlSeconds: number;
  /** A grant above this fails with `etcdserver: too large lease TTL` (etcd's MaxLeaseTTL). */
  maxLeaseTtlSeconds: number;
}

export const DEFAULT_MVCC_LIMITS: Readonly<MvccLimits> = Object.freeze({
  maxTxnOps: 128,
  maxWatchersPerStore: 100_000,
  maxEventsPerWatchBatch: 1000,
  maxLeases: 1_000_000,
  minLeaseTtlSeconds: 2,
  maxLeaseTtlSeconds: 9_000_000_000,
});

/** Fills defaults and checks every limit is a positive safe integer. */
export function resolveLimits(partial: Partial<MvccLimits> = {}): Readonly<MvccLimits> {
  const limits: MvccLimits = { ...DEFAULT_MVCC_LIMITS, ...partial };
  for (const [name, value] of Object.entries(limits)) {
    assert(Number.isSafeInteger(value) && value > 0, () => `mvcc limit ${name} must be a positive integer, got ${value}`);
  }
  assert(limits.minLeaseTtlSeconds <= limits.maxLeaseTtlSeconds, 'minLeaseTtlSeconds exceeds maxLeaseTtlSeconds');
  return Object.freeze(limits);
}
