// Lease time, which the deterministic MVCC store does not own: when each lease expires on this
// replica. Grants are Raft entries, so every replica tracks deadlines; keepalives renew on the
// leader only, in memory (Replica.renewLeaseOnLeader), as etcd's lessor does; only the leader acts
// on deadlines, by proposing a revoke. A new leader restarts every countdown (as etcd's lessor does
// on promotion), so a leader change never expires a lease early. (Keepalives that arrive through
// the log — a node without a reachable leader, or entries written by older versions — renew on
// every replica.)
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

  /**
   * The leader's in-memory renewal (a keepalive that is not a log entry): restarts the countdown of
   * a lease still counting down. False once the deadline passed or the expiry was decided (a
   * revoke proposed): from then on the lease is dying and a keepalive answers "not found", so a
   * revoke decided here is never contradicted by an answer given here.
   */
  renewIfLive(id: number, ttlSeconds: number): boolean {
    const deadline = this.deadlines.get(id);
    if (deadline === undefined || this.revoking.has(id) || deadline <= this.now()) return false;
    this.deadlines.set(id, this.now() + ttlSeconds * 1000);
    return true;
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
