// Hand-written protobuf codecs for the hot etcd messages, used by the lean gRPC server (lean-server.ts)
// in place of protobufjs: KV requests decode straight into the wire.ts shapes with int64s as numbers
// (no Long, no decimal strings; unsafe values arrive as decimal strings that codec.ts refuses), and
// responses are sized once and written into one Buffer that already holds the 5-byte gRPC prefix.
// Encoding follows gogoproto (etcd): proto3, default values omitted, so sizes match proto-size.ts.
import { assert } from '../util/index.ts';
import {
  bytesFieldSize,
  int64FieldSize,
  key,
  lenFieldSize,
  ProtoDecodeError,
  ProtoReader,
  uint64DecimalVarint,
  WIRE_LEN,
  writeBoolField,
  writeBytes,
  writeBytesField,
  writeInt64Field,
  writeLenPrefix,
  writeUvarint,
} from './proto-wire.ts';
import type {
  WireCompactionRequest,
  WireCompactionResponse,
  WireCompare,
  WireDeleteRangeRequest,
  WireDeleteRangeResponse,
  WireEvent,
  WireKeyValue,
  WireLeaseIdRequest,
  WireLeaseKeepAliveResponse,
  WirePutRequest,
  WirePutResponse,
  WireRangeRequest,
  WireRangeResponse,
  WireRequestOp,
  WireResponseHeader,
  WireResponseOp,
  WireTxnRequest,
  WireTxnResponse,
  WireWatchResponse,
} from './wire.ts';

/** Bytes before a gRPC message: compressed flag (0) and the big-endian uint32 length. */
export const GRPC_PREFIX_BYTES = 5;

const EMPTY = Buffer.alloc(0);

// ---- requests ----

/** Reads fields until the end of the current message; `field` returns false for an unknown key. */
function readFields(reader: ProtoReader, maxKnownField: number, field: (key: number) => boolean): void {
  while (reader.pos < reader.end) {
    const tag = reader.tag();
    if (field(tag)) continue;
    // A known field with the wrong wire type is malformed (Go refuses it); unknown fields are skipped.
    if (tag >>> 3 <= maxKnownField) throw new ProtoDecodeError(`field ${tag >>> 3} has wire type ${tag & 7}`);
    reader.skip(tag);
  }
}

function readRangeRequest(reader: ProtoReader): WireRangeRequest {
  const m: WireRangeRequest = {
    key: EMPTY,
    rangeEnd: EMPTY,
    limit: 0,
    revision: 0,
    sortOrder: 0,
    sortTarget: 0,
    serializable: false,
    keysOnly: false,
    countOnly: false,
    minModRevision: 0,
    maxModRevision: 0,
    minCreateRevision: 0,
    maxCreateRevision: 0,
  };
  readFields(reader, 13, (tag) => {
    switch (tag) {
      case 0x0a: m.key = reader.bytes(); return true;
      case 0x12: m.rangeEnd = reader.bytes(); return true;
      case 0x18: m.limit = reader.int64(); return true;
      case 0x20: m.revision = reader.int64(); return true;
      case 0x28: m.sortOrder = reader.int32(); return true;
      case 0x30: m.sortTarget = reader.int32(); return true;
      case 0x38: m.serializable = reader.bool(); return true;
      case 0x40: m.keysOnly = reader.bool(); return true;
      case 0x48: m.countOnly = reader.bool(); return true;
      case 0x50: m.minModRevision = reader.int64(); return true;
      case 0x58: m.maxModRevision = reader.int64(); return true;
      case 0x60: m.minCreateRevision = reader.int64(); return true;
      case 0x68: m.maxCreateRevision = reader.int64(); return true;
      default: return false;
    }
  });
  return m;
}

function readPutRequest(reader: ProtoReader): WirePutRequest {
  const m: WirePutRequest = { key: EMPTY, value: EMPTY, lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false };
  readFields(reader, 6, (tag) => {
    switch (tag) {
      case 0x0a: m.key = reader.bytes(); return true;
      case 0x12: m.value = reader.bytes(); return true;
      case 0x18: m.lease = reader.int64(); return true;
      case 0x20: m.prevKv = reader.bool(); return true;
      case 0x28: m.ignoreValue = reader.bool(); return true;
      case 0x30: m.ignoreLease = reader.bool(); return true;
      default: return false;
    }
  });
  return m;
}

function readDeleteRangeRequest(reader: ProtoReader): WireDeleteRangeRequest {
  const m: WireDeleteRangeRequest = { key: EMPTY, rangeEnd: EMPTY, prevKv: false };
  readFields(reader, 3, (tag) => {
    switch (tag) {
      case 0x0a: m.key = reader.bytes(); return true;
      case 0x12: m.rangeEnd = reader.bytes(); return true;
      case 0x18: m.prevKv = reader.bool(); return true;
      default: return false;
    }
  });
  return m;
}

/** Compare: the oneof target_union keeps the member seen last, as protobuf does. */
function readCompare(reader: ProtoReader): WireCompare {
  const m: WireCompare = { result: 0, target: 0, key: EMPTY, rangeEnd: EMPTY };
  let member: WireCompare['targetUnion'];
  let int64: number | string = 0;
  let value: Buffer = EMPTY;
  readFields(reader, 8, (tag) => {
    switch (tag) {
      case 0x08: m.result = reader.int32(); return true;
      case 0x10: m.target = reader.int32(); return true;
      case 0x1a: m.key = reader.bytes(); return true;
      case 0x20: member = 'version'; int64 = reader.int64(); return true;
      case 0x28: member = 'createRevision'; int64 = reader.int64(); return true;
      case 0x30: member = 'modRevision'; int64 = reader.int64(); return true;
      case 0x3a: member = 'value'; value = reader.bytes(); return true;
      case 0x40: member = 'lease'; int64 = reader.int64(); return true;
      case 0x202: m.rangeEnd = reader.bytes(); return true; // field 64, bytes
      default:
        if (tag >>> 3 === 64) throw new ProtoDecodeError('field 64 has the wrong wire type');
        return false;
    }
  });
  if (member === undefined) return m;
  m.targetUnion = member;
  if (member === 'value') m.value = value;
  else m[member] = int64;
  return m;
}

function nested<T>(reader: ProtoReader, read: (reader: ProtoReader) => T): T {
  const outer = reader.enter();
  const message = read(reader);
  reader.leave(outer);
  return message;
}

/** RequestOp: the oneof request keeps the member seen last; none set is left for codec.ts to refuse. */
function readRequestOp(reader: ProtoReader): WireRequestOp {
  let m: WireRequestOp = {};
  readFields(reader, 4, (tag) => {
    switch (tag) {
      case 0x0a: m = { request: 'requestRange', requestRange: nested(reader, readRangeRequest) }; return true;
      case 0x12: m = { request: 'requestPut', requestPut: nested(reader, readPutRequest) }; return true;
      case 0x1a: m = { request: 'requestDeleteRange', requestDeleteRange: nested(reader, readDeleteRangeRequest) }; return true;
      case 0x22: m = { request: 'requestTxn', requestTxn: nested(reader, readTxnRequest) }; return true;
      default: return false;
    }
  });
  return m;
}

function readTxnRequest(reader: ProtoReader): WireTxnRequest {
  const m: WireTxnRequest = { compare: [], success: [], failure: [] };
  readFields(reader, 3, (tag) => {
    switch (tag) {
      case 0x0a: m.compare.push(nested(reader, readCompare)); return true;
      case 0x12: m.success.push(nested(reader, readRequestOp)); return true;
      case 0x1a: m.failure.push(nested(reader, readRequestOp)); return true;
      default: return false;
    }
  });
  return m;
}

function readCompactionRequest(reader: ProtoReader): WireCompactionRequest {
  const m: WireCompactionRequest = { revision: 0, physical: false };
  readFields(reader, 2, (tag) => {
    switch (tag) {
      case 0x08: m.revision = reader.int64(); return true;
      case 0x10: m.physical = reader.bool(); return true;
      default: return false;
    }
  });
  return m;
}

function readLeaseIdRequest(reader: ProtoReader): WireLeaseIdRequest {
  const m: WireLeaseIdRequest = { ID: 0 };
  readFields(reader, 1, (tag) => {
    if (tag !== 0x08) return false;
    m.ID = reader.int64();
    return true;
  });
  return m;
}

const topLevel =
  <T>(read: (reader: ProtoReader) => T) =>
  (bytes: Buffer): T =>
    read(new ProtoReader(bytes));

export const decodeRangeRequestBytes = topLevel(readRangeRequest);
export const decodePutRequestBytes = topLevel(readPutRequest);
export const decodeDeleteRangeRequestBytes = topLevel(readDeleteRangeRequest);
export const decodeTxnRequestBytes = topLevel(readTxnRequest);
export const decodeCompactionRequestBytes = topLevel(readCompactionRequest);
export const decodeLeaseIdRequestBytes = topLevel(readLeaseIdRequest);

// ---- responses ----

/**
 * Body sizes of the nested messages of one response, in the order the writer meets them (pre-order):
 * sized once, read back while writing. One encode runs at a time (encoders are synchronous).
 */
class Sizes {
  private readonly list: number[] = [];
  private next = 0;

  reset(): void {
    this.list.length = 0;
    this.next = 0;
  }

  /** Reserves a slot for a message whose size is known only after its children. */
  reserve(): number {
    this.list.push(0);
    return this.list.length - 1;
  }

  set(slot: number, size: number): number {
    this.list[slot] = size;
    return size;
  }

  push(size: number): number {
    this.list.push(size);
    return size;
  }

  /** The size of the next message to write (its length prefix), without consuming it. */
  peek(): number {
    return this.list[this.next];
  }

  take(): number {
    return this.list[this.next++];
  }

  get consumed(): boolean {
    return this.next === this.list.length;
  }
}

const sizes = new Sizes();

/** Cluster and member ID bytes (fields 1 and 2) of the node's headers: they rarely change. */
let idCache = { clusterId: '0', memberId: '0', bytes: EMPTY };

function headerIdBytes(header: WireResponseHeader): Buffer {
  const { clusterId, memberId } = header;
  if (clusterId === '0' && memberId === '0') return EMPTY; // txn-nested headers
  if (idCache.clusterId === clusterId && idCache.memberId === memberId) return idCache.bytes;
  const parts: Buffer[] = [];
  if (clusterId !== '0') parts.push(Buffer.from([0x08]), uint64DecimalVarint(clusterId));
  if (memberId !== '0') parts.push(Buffer.from([0x10]), uint64DecimalVarint(memberId));
  idCache = { clusterId, memberId, bytes: Buffer.concat(parts) };
  return idCache.bytes;
}

function headerSize(header: WireResponseHeader): number {
  return headerIdBytes(header).length + int64FieldSize(header.revision) + int64FieldSize(header.raftTerm);
}

/** Field 1 of every response: the header, always present (etcd's is never nil in these). */
function writeHeaderField(buffer: Buffer, pos: number, header: WireResponseHeader): number {
  const ids = headerIdBytes(header);
  const size = ids.length + int64FieldSize(header.revision) + int64FieldSize(header.raftTerm);
  pos = writeLenPrefix(buffer, pos, 0x0a, size);
  pos = writeBytes(buffer, pos, ids);
  pos = writeInt64Field(buffer, pos, 0x18, header.revision);
  return writeInt64Field(buffer, pos, 0x20, header.raftTerm);
}

function keyValueSize(kv: WireKeyValue): number {
  return (
    bytesFieldSize(kv.key.length) +
    int64FieldSize(kv.createRevision) +
    int64FieldSize(kv.modRevision) +
    int64FieldSize(kv.version) +
    bytesFieldSize(kv.value.length) +
    int64FieldSize(kv.lease)
  );
}

function writeKeyValue(buffer: Buffer, pos: number, kv: WireKeyValue): number {
  pos = writeBytesField(buffer, pos, 0x0a, kv.key);
  pos = writeInt64Field(buffer, pos, 0x10, kv.createRevision);
  pos = writeInt64Field(buffer, pos, 0x18, kv.modRevision);
  pos = writeInt64Field(buffer, pos, 0x20, kv.version);
  pos = writeBytesField(buffer, pos, 0x2a, kv.value);
  return writeInt64Field(buffer, pos, 0x30, kv.lease);
}

/** A KeyValue as a nested field `tag`; its size comes from `sizes`. */
function writeKeyValueField(buffer: Buffer, pos: number, tag: number, kv: WireKeyValue): number {
  pos = writeLenPrefix(buffer, pos, tag, sizes.take());
  return writeKeyValue(buffer, pos, kv);
}

function sizeKeyValueField(kv: WireKeyValue): number {
  return lenFieldSize(sizes.push(keyValueSize(kv)));
}

function sizeRangeResponse(m: WireRangeResponse): number {
  const slot = sizes.reserve();
  let size = lenFieldSize(headerSize(m.header));
  for (const kv of m.kvs) size += sizeKeyValueField(kv);
  size += (m.more ? 2 : 0) + int64FieldSize(m.count);
  return sizes.set(slot, size);
}

function writeRangeResponse(buffer: Buffer, pos: number, m: WireRangeResponse): number {
  sizes.take();
  pos = writeHeaderField(buffer, pos, m.header);
  for (const kv of m.kvs) pos = writeKeyValueField(buffer, pos, 0x12, kv);
  pos = writeBoolField(buffer, pos, 0x18, m.more);
  return writeInt64Field(buffer, pos, 0x20, m.count);
}

function sizePutResponse(m: WirePutResponse): number {
  const slot = sizes.reserve();
  let size = lenFieldSize(headerSize(m.header));
  if (m.prevKv !== null && m.prevKv !== undefined) size += sizeKeyValueField(m.prevKv);
  return sizes.set(slot, size);
}

function writePutResponse(buffer: Buffer, pos: number, m: WirePutResponse): number {
  sizes.take();
  pos = writeHeaderField(buffer, pos, m.header);
  if (m.prevKv !== null && m.prevKv !== undefined) pos = writeKeyValueField(buffer, pos, 0x12, m.prevKv);
  return pos;
}

function sizeDeleteRangeResponse(m: WireDeleteRangeResponse): number {
  const slot = sizes.reserve();
  let size = lenFieldSize(headerSize(m.header)) + int64FieldSize(m.deleted);
  for (const kv of m.prevKvs) size += sizeKeyValueField(kv);
  return sizes.set(slot, size);
}

function writeDeleteRangeResponse(buffer: Buffer, pos: number, m: WireDeleteRangeResponse): number {
  sizes.take();
  pos = writeHeaderField(buffer, pos, m.header);
  pos = writeInt64Field(buffer, pos, 0x10, m.deleted);
  for (const kv of m.prevKvs) pos = writeKeyValueField(buffer, pos, 0x1a, kv);
  return pos;
}

function sizeResponseOp(op: WireResponseOp): number {
  const slot = sizes.reserve();
  let inner: number;
  if ('responseRange' in op) inner = sizeRangeResponse(op.responseRange);
  else if ('responsePut' in op) inner = sizePutResponse(op.responsePut);
  else if ('responseDeleteRange' in op) inner = sizeDeleteRangeResponse(op.responseDeleteRange);
  else inner = sizeTxnResponse(op.responseTxn);
  return sizes.set(slot, lenFieldSize(inner));
}

function writeResponseOp(buffer: Buffer, pos: number, op: WireResponseOp): number {
  sizes.take();
  if ('responseRange' in op) {
    pos = writeLenPrefix(buffer, pos, 0x0a, sizes.peek());
    return writeRangeResponse(buffer, pos, op.responseRange);
  }
  if ('responsePut' in op) {
    pos = writeLenPrefix(buffer, pos, 0x12, sizes.peek());
    return writePutResponse(buffer, pos, op.responsePut);
  }
  if ('responseDeleteRange' in op) {
    pos = writeLenPrefix(buffer, pos, 0x1a, sizes.peek());
    return writeDeleteRangeResponse(buffer, pos, op.responseDeleteRange);
  }
  pos = writeLenPrefix(buffer, pos, 0x22, sizes.peek());
  return writeTxnResponse(buffer, pos, op.responseTxn);
}

function sizeTxnResponse(m: WireTxnResponse): number {
  const slot = sizes.reserve();
  let size = lenFieldSize(headerSize(m.header)) + (m.succeeded ? 2 : 0);
  for (const op of m.responses) size += lenFieldSize(sizeResponseOp(op));
  return sizes.set(slot, size);
}

function writeTxnResponse(buffer: Buffer, pos: number, m: WireTxnResponse): number {
  sizes.take();
  pos = writeHeaderField(buffer, pos, m.header);
  pos = writeBoolField(buffer, pos, 0x10, m.succeeded);
  for (const op of m.responses) {
    pos = writeLenPrefix(buffer, pos, 0x1a, sizes.peek());
    pos = writeResponseOp(buffer, pos, op);
  }
  return pos;
}

function sizeCompactionResponse(m: WireCompactionResponse): number {
  return sizes.push(lenFieldSize(headerSize(m.header)));
}

function writeCompactionResponse(buffer: Buffer, pos: number, m: WireCompactionResponse): number {
  sizes.take();
  return writeHeaderField(buffer, pos, m.header);
}

function sizeEvent(event: WireEvent): number {
  const slot = sizes.reserve();
  let size = (event.type === 0 ? 0 : 2) + sizeKeyValueField(event.kv);
  if (event.prevKv !== null && event.prevKv !== undefined) size += sizeKeyValueField(event.prevKv);
  return sizes.set(slot, size);
}

function writeEvent(buffer: Buffer, pos: number, event: WireEvent): number {
  sizes.take();
  if (event.type !== 0) {
    buffer[pos++] = 0x08;
    pos = writeUvarint(buffer, pos, event.type);
  }
  pos = writeKeyValueField(buffer, pos, 0x12, event.kv);
  if (event.prevKv !== null && event.prevKv !== undefined) pos = writeKeyValueField(buffer, pos, 0x1a, event.prevKv);
  return pos;
}

function sizeWatchResponse(m: WireWatchResponse): number {
  const slot = sizes.reserve();
  let size =
    lenFieldSize(headerSize(m.header)) +
    int64FieldSize(m.watchId) +
    (m.created ? 2 : 0) +
    (m.canceled ? 2 : 0) +
    int64FieldSize(m.compactRevision) +
    bytesFieldSize(Buffer.byteLength(m.cancelReason)) +
    (m.fragment ? 2 : 0);
  for (const event of m.events) size += lenFieldSize(sizeEvent(event));
  return sizes.set(slot, size);
}

function writeWatchResponse(buffer: Buffer, pos: number, m: WireWatchResponse): number {
  sizes.take();
  pos = writeHeaderField(buffer, pos, m.header);
  pos = writeInt64Field(buffer, pos, 0x10, m.watchId);
  pos = writeBoolField(buffer, pos, 0x18, m.created);
  pos = writeBoolField(buffer, pos, 0x20, m.canceled);
  pos = writeInt64Field(buffer, pos, 0x28, m.compactRevision);
  if (m.cancelReason.length > 0) {
    buffer[pos++] = key(6, WIRE_LEN);
    pos = writeUvarint(buffer, pos, Buffer.byteLength(m.cancelReason));
    pos += buffer.write(m.cancelReason, pos, 'utf8');
  }
  pos = writeBoolField(buffer, pos, 0x38, m.fragment);
  for (const event of m.events) {
    pos = writeLenPrefix(buffer, pos, 0x5a, sizes.peek()); // field 11
    pos = writeEvent(buffer, pos, event);
  }
  return pos;
}

/**
 * One event as a repeated `events` entry of WatchResponse (field 11: tag, length, Event body), the
 * bytes the watch service splices into every response that carries it (watch-frames.ts).
 */
export function encodeWatchEventField(type: number, kv: WireKeyValue, prevKv: WireKeyValue | null): Buffer {
  assert(type === 0 || type === 1, 'an event is a PUT or a DELETE');
  const kvBytes = keyValueSize(kv);
  const prevBytes = prevKv === null ? -1 : keyValueSize(prevKv);
  const bodyBytes = (type === 0 ? 0 : 2) + lenFieldSize(kvBytes) + (prevKv === null ? 0 : lenFieldSize(prevBytes));
  const buffer = Buffer.allocUnsafe(lenFieldSize(bodyBytes));
  let pos = writeLenPrefix(buffer, 0, 0x5a, bodyBytes);
  if (type !== 0) {
    buffer[pos++] = 0x08;
    buffer[pos++] = type;
  }
  pos = writeLenPrefix(buffer, pos, 0x12, kvBytes);
  pos = writeKeyValue(buffer, pos, kv);
  if (prevKv !== null) {
    pos = writeLenPrefix(buffer, pos, 0x1a, prevBytes);
    pos = writeKeyValue(buffer, pos, prevKv);
  }
  assert(pos === buffer.length, () => `event encoded ${pos} bytes, sized ${buffer.length}`);
  return buffer;
}

/** A response's `header` field (field 1: tag, length, ResponseHeader body). */
export function encodeResponseHeaderField(header: WireResponseHeader): Buffer {
  const buffer = Buffer.allocUnsafe(lenFieldSize(headerSize(header)));
  const end = writeHeaderField(buffer, 0, header);
  assert(end === buffer.length, 'header field sized exactly');
  return buffer;
}

function sizeLeaseKeepAliveResponse(m: WireLeaseKeepAliveResponse): number {
  return sizes.push(lenFieldSize(headerSize(m.header)) + int64FieldSize(m.ID) + int64FieldSize(m.TTL));
}

function writeLeaseKeepAliveResponse(buffer: Buffer, pos: number, m: WireLeaseKeepAliveResponse): number {
  sizes.take();
  pos = writeHeaderField(buffer, pos, m.header);
  pos = writeInt64Field(buffer, pos, 0x10, m.ID);
  return writeInt64Field(buffer, pos, 0x18, m.TTL);
}

/** A response encoder producing the whole gRPC message: prefix and body in one Buffer. */
function framed<T>(size: (m: T) => number, write: (buffer: Buffer, pos: number, m: T) => number) {
  return (message: T): Buffer => {
    sizes.reset();
    const bodyBytes = size(message);
    const buffer = Buffer.allocUnsafe(GRPC_PREFIX_BYTES + bodyBytes);
    buffer[0] = 0;
    buffer.writeUInt32BE(bodyBytes, 1);
    const end = write(buffer, GRPC_PREFIX_BYTES, message);
    assert(end === buffer.length && sizes.consumed, () => `encoded ${end - GRPC_PREFIX_BYTES} bytes, sized ${bodyBytes}`);
    return buffer;
  };
}

export const encodeRangeResponseFrame = framed(sizeRangeResponse, writeRangeResponse);
export const encodePutResponseFrame = framed(sizePutResponse, writePutResponse);
export const encodeDeleteRangeResponseFrame = framed(sizeDeleteRangeResponse, writeDeleteRangeResponse);
export const encodeTxnResponseFrame = framed(sizeTxnResponse, writeTxnResponse);
export const encodeCompactionResponseFrame = framed(sizeCompactionResponse, writeCompactionResponse);
export const encodeWatchResponseFrame = framed(sizeWatchResponse, writeWatchResponse);
export const encodeLeaseKeepAliveResponseFrame = framed(sizeLeaseKeepAliveResponse, writeLeaseKeepAliveResponse);

// ---- the registry the lean server consults ----

/** One direction or both of a method's codec; what is absent falls back to protobufjs. */
export interface FastCodec {
  decode?: (bytes: Buffer) => unknown;
  /** The whole gRPC message (5-byte prefix included). */
  encodeFrame?: (message: unknown) => Buffer;
}

function fast<Request, Response>(
  decode: ((bytes: Buffer) => Request) | undefined,
  encodeFrame: ((message: Response) => Buffer) | undefined,
): FastCodec {
  // The server hands each method's encoder exactly what that method's handler returns.
  return { decode, encodeFrame: encodeFrame as ((message: unknown) => Buffer) | undefined };
}

/** Hand-written codecs by gRPC path. */
export const FAST_CODECS: ReadonlyMap<string, FastCodec> = new Map([
  ['/etcdserverpb.KV/Range', fast(decodeRangeRequestBytes, encodeRangeResponseFrame)],
  ['/etcdserverpb.KV/Put', fast(decodePutRequestBytes, encodePutResponseFrame)],
  ['/etcdserverpb.KV/DeleteRange', fast(decodeDeleteRangeRequestBytes, encodeDeleteRangeResponseFrame)],
  ['/etcdserverpb.KV/Txn', fast(decodeTxnRequestBytes, encodeTxnResponseFrame)],
  ['/etcdserverpb.KV/Compact', fast(decodeCompactionRequestBytes, encodeCompactionResponseFrame)],
  ['/etcdserverpb.Watch/Watch', fast(undefined, encodeWatchResponseFrame)],
  ['/etcdserverpb.Lease/LeaseKeepAlive', fast(decodeLeaseIdRequestBytes, encodeLeaseKeepAliveResponseFrame)],
]);
