// Lease time, which the deterministic MVCC store does not own: when each lease expires on this
// replica. Grants and keepalives are Raft entries, so every replica tracks deadlines; only the
// leader acts on them, by proposing a revoke. A new leader restarts every countdown (as etcd's
// lessor does on promotion), so a leader change never expires a lease early.
import type { MvccStore } from '../mvcc/index.ts';

/** A revoke that has not applied after this long is proposed again. */
const revokeRetryMs = 2_000;

export class LeaseClock {
  private readonly deadlines = new Map<number, number>();
  private readonly revoking = new Map<number, number>();

  constructor(private readonly now: () => number) {}

  /** A grant or keepalive applied: the countdown starts again from the full TTL. */
  renewed(id: number, ttlSeconds: number): void {
    this.deadlines.set(id, this.now() + ttlSeconds * 1000);
    this.revoking.delete(id);
  }

  revoked(id: number): void {
    this.deadlines.delete(id);
    this.revoking.delete(id);
  }

  /** This replica became leader, or its store was replaced: every lease gets its full TTL again. */
  restartAll(store: MvccStore): void {
    this.deadlines.clear();
    this.revoking.clear();
    for (const lease of store.leases().leases) {
      this.renewed(lease.id, lease.remainingTtl > 0 ? lease.remainingTtl : lease.ttl);
    }
  }

  /** Seconds until `id` expires here (at least 0), or -1 if this replica tracks no such lease. */
  remainingSeconds(id: number): number {
    const deadline = this.deadlines.get(id);
    if (deadline === undefined) return -1;
    // Truncated, as etcd reports it (599 right after a 600 s grant).
    return Math.max(0, Math.floor((deadline - this.now()) / 1000));
  }

  /** Leases past their deadline that need a revoke proposal now (each at most once per retry interval). */
  takeExpired(limit: number): number[] {
    const now = this.now();
    const expired: number[] = [];
    for (const [id, deadline] of this.deadlines) {
      if (expired.length >= limit) break;
      if (deadline > now) continue;
      const proposedAt = this.revoking.get(id);
      if (proposedAt !== undefined && now - proposedAt < revokeRetryMs) continue;
      this.revoking.set(id, now);
      expired.push(id);
    }
    return expired;
  }
}
