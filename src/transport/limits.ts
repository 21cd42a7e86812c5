// Every bound the transport enforces, with its default, in one place (docs/transport.md mirrors it).

const KIB = 1024;
const MIB = 1024 * KIB;

export interface TransportLimits {
  /** Max payload bytes of one frame (kind byte + body, excluding the 4-byte length). Past it: connection closed. */
  maxFrameBytes: number;
  /** Messages waiting for one peer (queued this turn, or while disconnected/congested). Past it: dropped and counted. */
  maxPeerQueueMessages: number;
  /** Estimated bytes waiting for one peer (entries, contexts, ~64 B per message). Past it: dropped and counted. */
  maxPeerQueueBytes: number;
  /** Bytes of snapshot data per chunk frame on a snapshot stream. */
  snapshotChunkBytes: number;
  /** Max `snapshot.data` bytes accepted by a receiver (it buffers the whole image). Past it: stream refused. */
  maxSnapshotBytes: number;
  /** Snapshots being sent at once (all peers). Past it: `failure` reported at once; Raft retries later. */
  maxOutboundSnapshots: number;
  /** Snapshots being received at once (all peers). Past it: stream refused (sender sees `failure`). */
  maxInboundSnapshots: number;
  /** Accepted connections open at once (message and snapshot streams). Past it: new ones are refused. */
  maxInboundConnections: number;
  /** First reconnect delay; doubles per failed attempt (equal jitter: uniform in [d/2, d]). */
  backoffMinMs: number;
  /** Cap on the reconnect delay. */
  backoffMaxMs: number;
  /** Time allowed for TCP (and TLS) connect to a peer. */
  dialTimeoutMs: number;
  /** Time allowed for the peer's hello after a connection opens (both sides). */
  handshakeTimeoutMs: number;
  /** A snapshot stream with no progress for this long is failed (both sides). */
  snapshotIdleTimeoutMs: number;
  /** Peer calls (call()) awaiting a reply, all peers. Past it: the call fails at once (PeerCallError). */
  maxPendingCalls: number;
  /** Bytes of one call's or reply's body. Past it: the call fails (sender) or the connection closes (receiver). */
  maxCallBytes: number;
}

export const DEFAULT_TRANSPORT_LIMITS: Readonly<TransportLimits> = Object.freeze({
  maxFrameBytes: 16 * MIB,
  maxPeerQueueMessages: 16_384,
  maxPeerQueueBytes: 64 * MIB,
  snapshotChunkBytes: 1 * MIB,
  maxSnapshotBytes: 512 * MIB,
  maxOutboundSnapshots: 8,
  maxInboundSnapshots: 4,
  maxInboundConnections: 1024,
  backoffMinMs: 50,
  backoffMaxMs: 2000,
  dialTimeoutMs: 2000,
  handshakeTimeoutMs: 5000,
  snapshotIdleTimeoutMs: 10_000,
  maxPendingCalls: 10_000,
  maxCallBytes: 4 * MIB,
});

/** Merges overrides onto the defaults and rejects combinations that cannot work. */
export function resolveLimits(overrides: Partial<TransportLimits> = {}): TransportLimits {
  const limits: TransportLimits = { ...DEFAULT_TRANSPORT_LIMITS, ...overrides };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new RangeError(`transport limit ${name} must be a positive safe integer, got ${String(value)}`);
    }
  }
  if (limits.maxFrameBytes > 0xffffffff)
    throw new RangeError('transport limit maxFrameBytes must fit in u32');
  if (limits.snapshotChunkBytes + 1 > limits.maxFrameBytes) {
    throw new RangeError('transport limit snapshotChunkBytes must be below maxFrameBytes');
  }
  if (limits.backoffMinMs > limits.backoffMaxMs)
    throw new RangeError('transport limit backoffMinMs > backoffMaxMs');
  return limits;
}

/** Reconnect delay for the given failed-attempt count (0 = first retry): exponential, capped, jittered. */
export function backoffDelayMs(
  attempt: number,
  limits: TransportLimits,
  random: () => number = Math.random,
): number {
  const exponent = Math.min(attempt, 30);
  const ceiling = Math.min(limits.backoffMaxMs, limits.backoffMinMs * 2 ** exponent);
  const delay = ceiling / 2 + random() * (ceiling / 2);
  return Math.max(limits.backoffMinMs, Math.round(delay));
}
