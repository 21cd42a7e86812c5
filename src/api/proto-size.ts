// Exact protobuf sizes of the watch messages as etcd (gogoproto) encodes them: proto3, default
// values omitted. The watch service splits large responses at etcd's byte limit with these.
import type { KeyValue, WatchEvent } from '../mvcc/index.ts';
import { assert } from '../util/index.ts';
import type { WireResponseHeader } from './wire.ts';

/** Bytes of a varint holding a non-negative safe integer; negative int64s always take 10. */
export function varintSize(value: number): number {
  if (value < 0) return 10;
  assert(Number.isSafeInteger(value), 'varint of a safe integer');
  let bytes = 1;
  for (let rest = Math.floor(value / 128); rest > 0; rest = Math.floor(rest / 128)) bytes += 1;
  return bytes;
}

/** A uint64 given as a decimal string (cluster and member IDs). */
function uint64Size(decimal: string): number {
  let value = BigInt(decimal);
  let bytes = 1;
  while (value >= 128n) {
    value >>= 7n;
    bytes += 1;
  }
  return bytes;
}

/** Field numbers here are all below 16, so every tag is one byte (events, field 11, too). */
const intField = (value: number) => (value === 0 ? 0 : 1 + varintSize(value));
const bytesField = (length: number) => (length === 0 ? 0 : 1 + varintSize(length) + length);
const messageField = (size: number) => 1 + varintSize(size) + size;

export function keyValueSize(kv: KeyValue): number {
  return (
    bytesField(kv.key.length) +
    intField(kv.createRevision) +
    intField(kv.modRevision) +
    intField(kv.version) +
    bytesField(kv.value.length) +
    intField(kv.lease)
  );
}

export function eventSize(event: WatchEvent): number {
  return (
    (event.type === 'delete' ? 2 : 0) +
    messageField(keyValueSize(event.kv)) +
    (event.prevKv === null ? 0 : messageField(keyValueSize(event.prevKv)))
  );
}

/** An event as a repeated field entry of WatchResponse. */
export function eventFieldSize(event: WatchEvent): number {
  return messageField(eventSize(event));
}

export function headerSize(header: WireResponseHeader): number {
  return (
    (header.clusterId === '0' ? 0 : 1 + uint64Size(header.clusterId)) +
    (header.memberId === '0' ? 0 : 1 + uint64Size(header.memberId)) +
    intField(header.revision) +
    intField(header.raftTerm)
  );
}

/** A WatchResponse without its events: header, watch_id, the flags, compact_revision, cancel_reason. */
export function watchResponseBaseSize(fields: {
  header: WireResponseHeader;
  watchId: number;
  created: boolean;
  canceled: boolean;
  compactRevision: number;
  cancelReason: string;
  fragment: boolean;
}): number {
  return (
    messageField(headerSize(fields.header)) +
    intField(fields.watchId) +
    (fields.created ? 2 : 0) +
    (fields.canceled ? 2 : 0) +
    intField(fields.compactRevision) +
    bytesField(Buffer.byteLength(fields.cancelReason)) +
    (fields.fragment ? 2 : 0)
  );
}
