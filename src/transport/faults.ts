// Fault injection for chaos tests, driven by the owning process (e.g. over a test-only control
// endpoint): partitions (symmetric or one-way) and added latency, per peer. Off by default.

export type PartitionDirection = 'both' | 'outbound' | 'inbound';

/** Upper bound on an injected delay, so a typo cannot park messages for hours. */
export const MAX_FAULT_DELAY_MS = 60_000;

export class TransportFaults {
  private readonly blockedOutbound = new Set<number>();
  private readonly blockedInbound = new Set<number>();
  private readonly delays = new Map<number, number>();

  /**
   * Drops traffic with `peerId`: `outbound` = what this node sends to it (messages and snapshots),
   * `inbound` = what it sends to this node, `both` = a full partition from this node's side.
   * Connections stay up, so healing takes effect at once.
   */
  partition(peerId: number, direction: PartitionDirection = 'both'): void {
    if (direction !== 'inbound') this.blockedOutbound.add(peerId);
    if (direction !== 'outbound') this.blockedInbound.add(peerId);
  }

  /** Removes partitions and delays for `peerId`, or for every peer when omitted. */
  heal(peerId?: number): void {
    if (peerId === undefined) {
      this.blockedOutbound.clear();
      this.blockedInbound.clear();
      this.delays.clear();
      return;
    }
    this.blockedOutbound.delete(peerId);
    this.blockedInbound.delete(peerId);
    this.delays.delete(peerId);
  }

  /** Holds messages to `peerId` for `delayMs` before queueing them (0 clears). Snapshots are not delayed. */
  setDelay(peerId: number, delayMs: number): void {
    if (!Number.isSafeInteger(delayMs) || delayMs < 0 || delayMs > MAX_FAULT_DELAY_MS) {
      throw new RangeError(`fault delay must be an integer in [0, ${MAX_FAULT_DELAY_MS}] ms`);
    }
    if (delayMs === 0) this.delays.delete(peerId);
    else this.delays.set(peerId, delayMs);
  }

  isOutboundBlocked(peerId: number): boolean {
    return this.blockedOutbound.has(peerId);
  }

  isInboundBlocked(peerId: number): boolean {
    return this.blockedInbound.has(peerId);
  }

  delayMs(peerId: number): number {
    return this.delays.get(peerId) ?? 0;
  }
}
