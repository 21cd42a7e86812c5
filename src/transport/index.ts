// Peer links between Tessera nodes: framed, batched per event-loop turn, reconnecting, with
// snapshot streaming, TLS and fault injection. See docs/transport.md for the wire format and limits.
export { Transport } from './transport.ts';
export { PeerCallError } from './calls.ts';
export type { CallHandler } from './calls.ts';
export type {
  MessageHandler,
  SnapshotStatus,
  SnapshotStatusHandler,
  TransportOptions,
  TransportStats,
  TransportTlsOptions,
  UnreachableHandler,
} from './transport.ts';
export type { PeerAddress } from './peer.ts';
export { TransportFaults, MAX_FAULT_DELAY_MS } from './faults.ts';
export type { PartitionDirection } from './faults.ts';
export { DEFAULT_TRANSPORT_LIMITS } from './limits.ts';
export type { TransportLimits } from './limits.ts';
export { PROTOCOL_VERSION } from './wire.ts';
