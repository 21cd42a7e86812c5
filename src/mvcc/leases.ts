// The replicated part of etcd's lessor: which leases exist, their TTLs, and which keys each holds.
// Expiry is not here: time is the server's business; it proposes a revoke when a lease runs out.

import { Errors, EtcdError, GrpcCode, assert } from '../util/index.ts';
import type { MvccLimits } from './limits.ts';

export interface Lease {
  readonly id: number;
  /** The granted TTL in seconds, after raising it to the minimum. */
  readonly ttl: number;
  /** Last checkpointed remaining TTL in seconds; 0 = none (etcd's LeaseCheckpoint). */
  remainingTtl: number;
  /** Binary-string ids of the live keys attached to this lease. */
  readonly keys: Set<string>;
}

export function tooManyLeases(): EtcdError {
  return new EtcdError(GrpcCode.RESOURCE_EXHAUSTED, 'etcdserver: too many leases');
}

export class LeaseTable {
  private readonly leases = new Map<number, Lease>();

  constructor(private readonly limits: Readonly<MvccLimits>) {}

  get size(): number {
    return this.leases.size;
  }

  get(id: number): Lease | undefined {
    return this.leases.get(id);
  }

  /** etcd's lessor.Grant checks, in its order; returns the new lease. */
  grant(id: number, ttl: number): Lease {
    if (id === 0) throw Errors.leaseNotFound();
    if (ttl > this.limits.maxLeaseTtlSeconds) throw Errors.leaseTTLTooLarge();
    if (this.leases.has(id)) throw Errors.leaseExist();
    if (this.leases.size >= this.limits.maxLeases) throw tooManyLeases();
    const lease: Lease = { id, ttl: Math.max(ttl, this.limits.minLeaseTtlSeconds), remainingTtl: 0, keys: new Set() };
    this.leases.set(id, lease);
    return lease;
  }

  /** Re-creates a snapshotted lease exactly (no minimum raise, no limit: the state was valid). */
  restore(id: number, ttl: number, remainingTtl: number): void {
    assert(id !== 0 && !this.leases.has(id), () => `bad or duplicate lease ${id} in snapshot`);
    this.leases.set(id, { id, ttl, remainingTtl, keys: new Set() });
  }

  /** Removes the lease; the caller deletes its keys in the same revision. */
  remove(id: number): Lease {
    const lease = this.leases.get(id);
    if (lease === undefined) throw Errors.leaseNotFound();
    this.leases.delete(id);
    return lease;
  }

  attach(id: number, keyId: string): void {
    const lease = this.leases.get(id);
    assert(lease !== undefined, () => `attach to missing lease ${id}`);
    lease.keys.add(keyId);
  }

  detach(id: number, keyId: string): void {
    const lease = this.leases.get(id);
    assert(lease !== undefined && lease.keys.delete(keyId), () => `detach of a key not attached to lease ${id}`);
  }

  /** Every lease, ascending by id (a deterministic order for listings and snapshots). */
  sorted(): Lease[] {
    return [...this.leases.values()].sort((a, b) => a.id - b.id);
  }
}
