// Hand-rolled protobuf for the few etcd messages the load generator sends and reads. A request is
// written straight into one Buffer, and a response is scanned only for the fields a workload needs,
// so the client spends little CPU per call (measured against proto-loader in docs/BENCHMARKS.md).
// Lease IDs stay as their raw varint bytes: etcd hands out IDs above 2^53, and the benchmark only
// echoes them back.
import { assert } from '../util/index.ts';

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

function tag(field: number, wireType: number): number {
  return (field << 3) | wireType;
}

function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    size++;
  }
  return size;
}

/** Appends to a preallocated buffer; `offset` is where the next byte goes. */
class Writer {
  offset = 0;
  constructor(readonly buffer: Buffer) {}

  varint(value: number): this {
    assert(Number.isSafeInteger(value) && value >= 0, 'varints are non-negative safe integers');
    while (value >= 0x80) {
      this.buffer[this.offset++] = (value % 128) | 0x80;
      value = Math.floor(value / 128);
    }
    this.buffer[this.offset++] = value;
    return this;
  }

  bytesField(field: number, bytes: Uint8Array): this {
    this.varint(tag(field, WIRE_LEN)).varint(bytes.length);
    this.buffer.set(bytes, this.offset);
    this.offset += bytes.length;
    return this;
  }

  /** A length-delimited field whose body the caller writes next (`bodyBytes` long). */
  openField(field: number, bodyBytes: number): this {
    return this.varint(tag(field, WIRE_LEN)).varint(bodyBytes);
  }

  varintField(field: number, value: number): this {
    return this.varint(tag(field, WIRE_VARINT)).varint(value);
  }

  rawVarintField(field: number, rawVarint: Uint8Array): this {
    this.varint(tag(field, WIRE_VARINT));
    this.buffer.set(rawVarint, this.offset);
    this.offset += rawVarint.length;
    return this;
  }

  done(): Buffer {
    assert(this.offset === this.buffer.length, () => `encoded ${this.offset} bytes, sized ${this.buffer.length}`);
    return this.buffer;
  }
}

function bytesFieldSize(field: number, length: number): number {
  return varintSize(tag(field, WIRE_LEN)) + varintSize(length) + length;
}

// ---- requests ----

function putBodySize(key: Uint8Array, value: Uint8Array): number {
  return bytesFieldSize(1, key.length) + bytesFieldSize(2, value.length);
}

/** PutRequest{key, value}. */
export function encodePut(key: Uint8Array, value: Uint8Array): Buffer {
  const writer = new Writer(Buffer.allocUnsafe(putBodySize(key, value)));
  return writer.bytesField(1, key).bytesField(2, value).done();
}

/** RangeRequest{key, serializable}. */
export function encodeRange(key: Uint8Array, serializable: boolean): Buffer {
  const size = bytesFieldSize(1, key.length) + (serializable ? 2 : 0);
  const writer = new Writer(Buffer.allocUnsafe(size)).bytesField(1, key);
  if (serializable) writer.varintField(7, 1);
  return writer.done();
}

/**
 * Compare-and-swap: TxnRequest{compare: [mod_revision(key) == expected], success: [put key value],
 * failure: [range key]}. A key that does not exist has mod_revision 0, so 0 means "create".
 */
export function encodeCasTxn(key: Uint8Array, expectedModRevision: number, value: Uint8Array): Buffer {
  const compareBody =
    2 + // target = MOD (field 2, varint 2); result EQUAL is the default and omitted
    bytesFieldSize(3, key.length) +
    (expectedModRevision > 0 ? 1 + varintSize(expectedModRevision) : 0);
  const putBody = putBodySize(key, value);
  const successBody = bytesFieldSize(2, putBody);
  const rangeBody = bytesFieldSize(1, key.length);
  const failureBody = bytesFieldSize(1, rangeBody);
  const size = bytesFieldSize(1, compareBody) + bytesFieldSize(2, successBody) + bytesFieldSize(3, failureBody);
  const writer = new Writer(Buffer.allocUnsafe(size));
  writer.openField(1, compareBody).varintField(2, 2).bytesField(3, key);
  if (expectedModRevision > 0) writer.varintField(6, expectedModRevision);
  writer.openField(2, successBody).openField(2, putBody).bytesField(1, key).bytesField(2, value);
  writer.openField(3, failureBody).openField(1, rangeBody).bytesField(1, key);
  return writer.done();
}

/** TxnRequest{success: [put keys[i] values[i], ...]}: no compares, so the success branch runs (the load workload). */
export function encodePutTxn(keys: readonly Uint8Array[], values: readonly Uint8Array[]): Buffer {
  assert(keys.length > 0 && keys.length === values.length, 'a load txn puts one value per key, at least one');
  let size = 0;
  for (let i = 0; i < keys.length; i++) size += bytesFieldSize(2, bytesFieldSize(2, putBodySize(keys[i], values[i])));
  const writer = new Writer(Buffer.allocUnsafe(size));
  for (let i = 0; i < keys.length; i++) {
    const putBody = putBodySize(keys[i], values[i]);
    writer.openField(2, bytesFieldSize(2, putBody)).openField(2, putBody).bytesField(1, keys[i]).bytesField(2, values[i]);
  }
  return writer.done();
}

/** WatchRequest{create_request: {key, range_end}}: a prefix watch from the current revision. */
export function encodeWatchCreate(key: Uint8Array, rangeEnd: Uint8Array): Buffer {
  const createBody = bytesFieldSize(1, key.length) + bytesFieldSize(2, rangeEnd.length);
  const writer = new Writer(Buffer.allocUnsafe(bytesFieldSize(1, createBody)));
  return writer.openField(1, createBody).bytesField(1, key).bytesField(2, rangeEnd).done();
}

/** LeaseGrantRequest{TTL}. */
export function encodeLeaseGrant(ttlSeconds: number): Buffer {
  return new Writer(Buffer.allocUnsafe(1 + varintSize(ttlSeconds))).varintField(1, ttlSeconds).done();
}

/** LeaseKeepAliveRequest{ID}, with the ID as the raw varint bytes the server sent. */
export function encodeLeaseKeepAlive(rawId: Uint8Array): Buffer {
  return new Writer(Buffer.allocUnsafe(1 + rawId.length)).rawVarintField(1, rawId).done();
}

/** The prefix's range end: the key with its last byte incremented (etcd's `--prefix`). */
export function prefixRangeEnd(prefix: Uint8Array): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

// ---- responses ----
// One reader for every response: scanMessage walks a message's fields in place, with a module
// cursor instead of a reader object, so the watch workload's 100,000 events a second allocate
// nothing per field.

/** Where the last varintFrom ended. */
let cursor = 0;

function varintFrom(buffer: Buffer, at: number, end: number): number {
  let result = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    assert(at < end, 'varint runs past the message');
    const byte = buffer[at++];
    result += (byte & 0x7f) * scale;
    if (byte < 0x80) {
      cursor = at;
      return result;
    }
    scale *= 128;
  }
  throw new Error('varint longer than 10 bytes');
}

/** Receives a length-delimited field's value span. */
type LenVisitor = (field: number, start: number, end: number) => void;
/** Receives a varint field: its value (exact below 2^53) and the span of its bytes. */
type VarintVisitor = (field: number, value: number, start: number, end: number) => void;

const ignoreLen: LenVisitor = () => {};

/** Calls `len` for each length-delimited field of the message in buffer[start, end), `varint` for each varint. */
function scanMessage(buffer: Buffer, start: number, end: number, len: LenVisitor, varint?: VarintVisitor): void {
  let at = start;
  while (at < end) {
    const key = varintFrom(buffer, at, end);
    at = cursor;
    const field = key >>> 3;
    const wireType = key & 7;
    if (wireType === WIRE_LEN) {
      const length = varintFrom(buffer, at, end);
      const valueStart = cursor;
      at = valueStart + length;
      assert(at <= end, 'field runs past the message');
      len(field, valueStart, at);
    } else if (wireType === WIRE_VARINT) {
      const value = varintFrom(buffer, at, end);
      const valueStart = at;
      at = cursor;
      varint?.(field, value, valueStart, at);
    } else if (wireType === WIRE_I64) {
      at += 8;
    } else if (wireType === WIRE_I32) {
      at += 4;
    } else {
      throw new Error(`unsupported wire type ${wireType}`);
    }
  }
}

/** ResponseHeader.revision inside the header field span. */
function headerRevision(buffer: Buffer, start: number, end: number): number {
  let revision = 0;
  scanMessage(buffer, start, end, ignoreLen, (field, value) => {
    if (field === 3) revision = value;
  });
  return revision;
}

export interface CasResult {
  succeeded: boolean;
  /** On success: the revision of the write. On failure: the key's current mod_revision (0 if absent). */
  modRevision: number;
}

/** TxnResponse of encodeCasTxn: succeeded, and the revision to compare against next time. */
export function decodeCasTxn(buffer: Buffer): CasResult {
  let succeeded = false;
  let revision = 0;
  let currentModRevision = 0;
  scanMessage(
    buffer,
    0,
    buffer.length,
    (field, start, end) => {
      if (field === 1) revision = headerRevision(buffer, start, end);
      else if (field === 3) currentModRevision = responseOpModRevision(buffer, start, end);
    },
    (field, value) => {
      if (field === 2) succeeded = value !== 0;
    },
  );
  return { succeeded, modRevision: succeeded ? revision : currentModRevision };
}

/** ResponseOp{response_range: RangeResponse{kvs: [KeyValue{mod_revision}]}}: the first kv's mod_revision. */
function responseOpModRevision(buffer: Buffer, start: number, end: number): number {
  let modRevision = 0;
  scanMessage(buffer, start, end, (field, s, e) => {
    if (field !== 1) return;
    scanMessage(buffer, s, e, (rangeField, ks, ke) => {
      if (rangeField !== 2 || modRevision !== 0) return;
      scanMessage(buffer, ks, ke, ignoreLen, (kvField, value) => {
        if (kvField === 3) modRevision = value;
      });
    });
  });
  return modRevision;
}

/** What a WatchResponse says besides its events (one object, reused across messages). */
export interface WatchFlags {
  created: boolean;
  canceled: boolean;
  cancelReason: string;
}

/**
 * Scans a WatchResponse without building objects: its flags into `flags`, and each event's
 * kv.value as `onValue(buffer, start, end)` (a view's bounds; empty for a delete). The watch
 * workload reads 100,000 events a second with this, so the client is not what it measures.
 */
export function scanWatch(buffer: Buffer, flags: WatchFlags, onValue: (buffer: Buffer, start: number, end: number) => void): void {
  flags.created = false;
  flags.canceled = false;
  flags.cancelReason = '';
  scanMessage(
    buffer,
    0,
    buffer.length,
    (field, start, end) => {
      if (field === 6) flags.cancelReason = buffer.toString('utf8', start, end);
      else if (field === 11) scanEvent(buffer, start, end, onValue);
    },
    (field, value) => {
      if (field === 3) flags.created = value !== 0;
      else if (field === 4) flags.canceled = value !== 0;
    },
  );
}

/** Event{kv: KeyValue{value}}. */
function scanEvent(buffer: Buffer, start: number, end: number, onValue: (buffer: Buffer, start: number, end: number) => void): void {
  let valueStart = end;
  let valueEnd = end;
  scanMessage(buffer, start, end, (field, kvStart, kvEnd) => {
    if (field !== 2) return;
    scanMessage(buffer, kvStart, kvEnd, (kvField, s, e) => {
      if (kvField !== 5) return;
      valueStart = s;
      valueEnd = e;
    });
  });
  onValue(buffer, valueStart, valueEnd);
}

export interface MemberStatus {
  /** header.member_id, as its varint bytes in hex (IDs are uint64: compared as bytes, not numbers). */
  memberId: string;
  /** The leader's member ID, the same way ('' when there is none). */
  leader: string;
}

/** Maintenance.Status's StatusResponse: who answered, and who it says leads. */
export function decodeStatus(buffer: Buffer): MemberStatus {
  const status: MemberStatus = { memberId: '', leader: '' };
  scanMessage(
    buffer,
    0,
    buffer.length,
    (field, start, end) => {
      if (field !== 1) return;
      scanMessage(buffer, start, end, ignoreLen, (headerField, _value, s, e) => {
        if (headerField === 2) status.memberId = buffer.toString('hex', s, e);
      });
    },
    (field, _value, start, end) => {
      if (field === 4) status.leader = buffer.toString('hex', start, end);
    },
  );
  return status;
}

export interface LeaseGrant {
  /** The lease ID as the varint bytes on the wire. */
  rawId: Buffer;
  ttlSeconds: number;
  error: string;
}

/** LeaseGrantResponse: ID (raw), TTL, error. */
export function decodeLeaseGrant(buffer: Buffer): LeaseGrant {
  const grant: LeaseGrant = { rawId: Buffer.alloc(0), ttlSeconds: 0, error: '' };
  scanMessage(
    buffer,
    0,
    buffer.length,
    (field, start, end) => {
      if (field === 4) grant.error = buffer.toString('utf8', start, end);
    },
    (field, value, start, end) => {
      if (field === 2) grant.rawId = Buffer.from(buffer.subarray(start, end));
      else if (field === 3) grant.ttlSeconds = value;
    },
  );
  return grant;
}

/** LeaseKeepAliveResponse.TTL: 0 means the lease is gone. */
export function decodeLeaseKeepAliveTtl(buffer: Buffer): number {
  let ttl = 0;
  scanMessage(buffer, 0, buffer.length, ignoreLen, (field, value) => {
    if (field === 3) ttl = value;
  });
  return ttl;
}
