// The lean server's hand-written codecs (src/api/fast-codec.ts) against protobufjs on the same
// messages: requests protobufjs encodes decode to what the server's protobufjs decoder gives (int64s
// compared as decimals), responses decode with protobufjs to what was encoded, with etcd's (gogoproto)
// sizes; int64 boundaries; and random corruptions of valid bytes never throw anything but a decode error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeCompactionRequestBytes,
  decodeDeleteRangeRequestBytes,
  decodeLeaseIdRequestBytes,
  decodePutRequestBytes,
  decodeRangeRequestBytes,
  decodeTxnRequestBytes,
  encodeDeleteRangeResponseFrame,
  encodeLeaseKeepAliveResponseFrame,
  encodePutResponseFrame,
  encodeRangeResponseFrame,
  encodeTxnResponseFrame,
  encodeWatchResponseFrame,
  GRPC_PREFIX_BYTES,
} from '../../src/api/fast-codec.ts';
import { eventFieldSize, watchResponseBaseSize } from '../../src/api/proto-size.ts';
import { ProtoDecodeError, ProtoReader, writeInt64 } from '../../src/api/proto-wire.ts';
import { etcdPackageDefinition, serverServiceDefinition } from '../../src/api/protos.ts';
import { parseInt64 } from '../../src/api/codec.ts';
import { canonical, EtcdClient } from './client.ts';

/** A tiny deterministic generator (tests must replay exactly). */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

const kvMethods = etcdPackageDefinition()['etcdserverpb.KV'] as Record<string, { requestSerialize: (m: object) => Buffer }>;
const serverKv = serverServiceDefinition('etcdserverpb.KV');
const serverLease = serverServiceDefinition('etcdserverpb.Lease');
const leaseMethods = etcdPackageDefinition()['etcdserverpb.Lease'] as Record<string, { requestSerialize: (m: object) => Buffer }>;
const client = new EtcdClient('127.0.0.1:1');
const responseDecoder = (service: 'KV' | 'Watch' | 'Lease', method: string) =>
  client.service(service)[method].responseDeserialize as (bytes: Buffer) => any;

/** Both decoders' output in one comparable form: int64s as decimal strings, bytes as hex, absent = absent. */
function normalize(value: unknown): unknown {
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `hex:${Buffer.from(value).toString('hex')}`;
  if (typeof value === 'number') return String(value);
  if (Array.isArray(value)) return value.map(normalize);
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) out[k] = normalize(v);
    return out;
  }
  return value;
}

const INT64S = ['0', '1', '127', '128', '300', '2147483648', '4294967296', '9007199254740991', '9007199254740992',
  '9223372036854775807', '-1', '-9007199254740991', '-9007199254740992', '-9223372036854775808'];

function int64(random: () => number): string | number {
  const r = random();
  if (r < 0.3) return 0;
  if (r < 0.6) return Math.floor(random() * 1_000_000);
  return INT64S[Math.floor(random() * INT64S.length)];
}

function bytes(random: () => number, max = 20): Buffer {
  return Buffer.from(Array.from({ length: Math.floor(random() * max) }, () => Math.floor(random() * 256)));
}

const bool = (random: () => number) => random() < 0.5;

function rangeRequest(random: () => number) {
  return {
    key: bytes(random), rangeEnd: bytes(random), limit: int64(random), revision: int64(random),
    sortOrder: Math.floor(random() * 4), sortTarget: Math.floor(random() * 6), serializable: bool(random),
    keysOnly: bool(random), countOnly: bool(random), minModRevision: int64(random), maxModRevision: int64(random),
    minCreateRevision: int64(random), maxCreateRevision: int64(random),
  };
}

function putRequest(random: () => number) {
  return { key: bytes(random), value: bytes(random, 300), lease: int64(random), prevKv: bool(random), ignoreValue: bool(random), ignoreLease: bool(random) };
}

function deleteRangeRequest(random: () => number) {
  return { key: bytes(random), rangeEnd: bytes(random), prevKv: bool(random) };
}

function compare(random: () => number) {
  const members = ['version', 'createRevision', 'modRevision', 'value', 'lease', null];
  const member = members[Math.floor(random() * members.length)];
  const base: Record<string, unknown> = { result: Math.floor(random() * 4), target: Math.floor(random() * 5), key: bytes(random), rangeEnd: bytes(random) };
  if (member === 'value') base.value = bytes(random);
  else if (member !== null) base[member] = int64(random);
  return base;
}

function requestOp(random: () => number, depth: number): object {
  const r = random();
  if (r < 0.25) return { requestRange: rangeRequest(random) };
  if (r < 0.5) return { requestPut: putRequest(random) };
  if (r < 0.7) return { requestDeleteRange: deleteRangeRequest(random) };
  if (r < 0.8 && depth < 3) return { requestTxn: txnRequest(random, depth + 1) };
  return {};
}

function txnRequest(random: () => number, depth = 0): object {
  const list = <T>(make: () => T) => Array.from({ length: Math.floor(random() * 4) }, make);
  return { compare: list(() => compare(random)), success: list(() => requestOp(random, depth)), failure: list(() => requestOp(random, depth)) };
}

const REQUESTS: { method: string; make: (random: () => number) => object; fast: (bytes: Buffer) => unknown; service?: 'Lease' }[] = [
  { method: 'Range', make: rangeRequest, fast: decodeRangeRequestBytes },
  { method: 'Put', make: putRequest, fast: decodePutRequestBytes },
  { method: 'DeleteRange', make: deleteRangeRequest, fast: decodeDeleteRangeRequestBytes },
  { method: 'Txn', make: (random) => txnRequest(random), fast: decodeTxnRequestBytes },
  { method: 'Compact', make: (random) => ({ revision: int64(random), physical: bool(random) }), fast: decodeCompactionRequestBytes },
  { method: 'LeaseKeepAlive', make: (random) => ({ ID: int64(random) }), fast: decodeLeaseIdRequestBytes, service: 'Lease' },
];

test('requests decode as protobufjs decodes them (300 random messages per method)', () => {
  const random = lcg(7);
  for (const { method, make, fast, service } of REQUESTS) {
    const serialize = (service === 'Lease' ? leaseMethods : kvMethods)[method].requestSerialize;
    const deserialize = (service === 'Lease' ? serverLease : serverKv)[method].requestDeserialize;
    for (let i = 0; i < 300; i++) {
      const bytes = serialize(make(random));
      const expected = (deserialize(bytes) as { message: unknown }).message;
      assert.deepEqual(normalize(fast(bytes)), normalize(expected), `${method} ${bytes.toString('hex')}`);
    }
  }
});

test('int64s: safe values become numbers, others exact decimal strings that parseInt64 refuses', () => {
  const serialize = kvMethods.Range.requestSerialize;
  for (const value of INT64S) {
    const decoded = decodeRangeRequestBytes(serialize({ key: Buffer.from('k'), revision: value })).revision;
    const safe = Number.isSafeInteger(Number(value));
    assert.equal(typeof decoded, safe ? 'number' : 'string', value);
    assert.equal(String(decoded), value);
    if (safe) assert.equal(parseInt64(decoded, 'revision'), Number(value));
    else assert.throws(() => parseInt64(decoded, 'revision'), /out of range/);
  }
});

test('negative int64s are written as 10-byte two\'s complement and read back', () => {
  for (const value of [-1, -2, -128, -(2 ** 31), -(2 ** 32), -(2 ** 53 - 1), 2 ** 53 - 1, 2 ** 32, 2 ** 31, 0]) {
    const buffer = Buffer.alloc(10);
    const end = writeInt64(buffer, 0, value);
    assert.equal(end, value < 0 ? 10 : end);
    assert.equal(new ProtoReader(buffer, 0, end).int64(), value);
  }
});

test('nesting past 100 messages is a decode error (protobufjs\'s limit); 40 txn levels decode', () => {
  const serialize = kvMethods.Txn.requestSerialize;
  const nest = (levels: number) => {
    let txn: object = { success: [{ requestPut: { key: Buffer.from('k') } }] };
    for (let i = 0; i < levels; i++) txn = { success: [{ requestTxn: txn }] };
    return txn;
  };
  assert.doesNotThrow(() => decodeTxnRequestBytes(serialize(nest(40))));
  // protobufjs's encoder has the same limit, so deep messages are built by hand: RequestOp{request_txn: TxnRequest{success: [...]}}.
  let body = Buffer.alloc(0);
  for (let i = 0; i < 60; i++) {
    const op = Buffer.concat([Buffer.from([0x22]), varint(body.length), body]);
    body = Buffer.concat([Buffer.from([0x12]), varint(op.length), op]);
  }
  assert.throws(() => decodeTxnRequestBytes(body), ProtoDecodeError);
});

function varint(value: number): Buffer {
  const out: number[] = [];
  while (value >= 0x80) {
    out.push((value & 0x7f) | 0x80);
    value >>>= 7;
  }
  out.push(value);
  return Buffer.from(out);
}

test('corrupted requests either decode or fail with a decode error, never anything else', () => {
  const random = lcg(11);
  for (const { method, make, fast, service } of REQUESTS) {
    const serialize = (service === 'Lease' ? leaseMethods : kvMethods)[method].requestSerialize;
    for (let i = 0; i < 500; i++) {
      const bytes = Buffer.from(serialize(make(random)));
      const cut = random() < 0.3 ? bytes.subarray(0, Math.floor(random() * bytes.length)) : bytes;
      for (let flips = 1 + Math.floor(random() * 3); flips > 0 && cut.length > 0; flips--) {
        cut[Math.floor(random() * cut.length)] = Math.floor(random() * 256);
      }
      try {
        fast(cut);
      } catch (error) {
        assert.ok(error instanceof ProtoDecodeError, `${method} ${cut.toString('hex')}: ${String(error)}`);
      }
    }
  }
  // Known fields with the wrong wire type are malformed, as in Go (key as a varint here).
  assert.throws(() => decodePutRequestBytes(Buffer.from([0x08, 0x01])), ProtoDecodeError);
  // Unknown fields of every wire type are skipped.
  const unknown = Buffer.from([0xa0, 0x01, 0x05, 0xa9, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0xaa, 0x01, 0x01, 0x00, 0xad, 0x01, 1, 2, 3, 4, 0x0a, 0x01, 0x6b]);
  assert.equal(Buffer.from(decodePutRequestBytes(unknown).key).toString(), 'k');
});

// ---- responses ----

const HEADER = { clusterId: '14841639068965178418', memberId: '10276657743932975437', revision: 42, raftTerm: 3 };
const NESTED_HEADER = { clusterId: '0', memberId: '0', revision: 42, raftTerm: 0 };

function kv(random: () => number) {
  const rev = Math.floor(random() * 2 ** 40);
  return { key: bytes(random), createRevision: rev, modRevision: rev + 1, version: Math.floor(random() * 5), value: bytes(random, 300), lease: random() < 0.5 ? 0 : 2 ** 53 - 1 };
}

/** Numbers as decimal strings (protobufjs's int64s), bytes as Buffers, the rest as it is. */
function decimals(value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value);
  if (typeof value === 'number') return String(value);
  if (Array.isArray(value)) return value.map(decimals);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, decimals(v)]));
  }
  return value;
}

/** What protobufjs decodes, with etcd's defaults dropped (proto3: a default and an absent field are one). */
const decoded = (service: 'KV' | 'Watch' | 'Lease', method: string, frame: Buffer) => {
  assert.equal(frame[0], 0);
  assert.equal(frame.readUInt32BE(1), frame.length - GRPC_PREFIX_BYTES);
  return canonical(responseDecoder(service, method)(frame.subarray(GRPC_PREFIX_BYTES)));
};
const expected = (message: object) => canonical(decimals(message));

test('KV responses decode with protobufjs to what was encoded', () => {
  const random = lcg(3);
  for (let i = 0; i < 100; i++) {
    const range = { header: HEADER, kvs: Array.from({ length: Math.floor(random() * 5) }, () => kv(random)), more: bool(random), count: Math.floor(random() * 1000) };
    assert.deepEqual(decoded('KV', 'range', encodeRangeResponseFrame(range)), expected(range));
    const put = { header: HEADER, prevKv: random() < 0.5 ? null : kv(random) };
    assert.deepEqual(decoded('KV', 'put', encodePutResponseFrame(put)), expected(put));
    const del = { header: HEADER, deleted: Math.floor(random() * 3), prevKvs: [kv(random)] };
    assert.deepEqual(decoded('KV', 'deleteRange', encodeDeleteRangeResponseFrame(del)), expected(del));
    const txn = {
      header: HEADER,
      succeeded: bool(random),
      responses: [
        { responseRange: { ...range, header: NESTED_HEADER } },
        { responsePut: { ...put, header: NESTED_HEADER } },
        { responseDeleteRange: { ...del, header: NESTED_HEADER } },
        { responseTxn: { header: { ...NESTED_HEADER, revision: 0 }, succeeded: true, responses: [{ responsePut: { header: NESTED_HEADER, prevKv: null } }] } },
      ],
    };
    const got = decoded('KV', 'txn', encodeTxnResponseFrame(txn));
    // protobufjs names the oneof member it decoded; the encoder's input does not carry that name.
    for (const op of got.responses) delete op.response;
    for (const op of got.responses[3].responseTxn.responses) delete op.response;
    assert.deepEqual(got, expected(txn));
  }
});

test('Watch and LeaseKeepAlive responses: protobufjs reads them back; watch sizes are proto-size.ts\'s', () => {
  const random = lcg(5);
  for (let i = 0; i < 100; i++) {
    const events = Array.from({ length: Math.floor(random() * 4) }, () => ({ type: random() < 0.5 ? 0 : 1, kv: kv(random), prevKv: random() < 0.5 ? null : kv(random) }));
    const watch = {
      header: HEADER, watchId: random() < 0.2 ? -1 : Math.floor(random() * 100), created: bool(random), canceled: bool(random),
      compactRevision: random() < 0.2 ? -1 : Math.floor(random() * 100), cancelReason: random() < 0.5 ? '' : 'mvcc: réason ✓', fragment: bool(random), events,
    };
    const frame = encodeWatchResponseFrame(watch);
    const got = decoded('Watch', 'watch', frame);
    const want = expected({ ...watch, events: events.map((e) => ({ ...e, type: e.type === 1 ? 'DELETE' : 'PUT' })) });
    assert.deepEqual(got, want);
    const size = watchResponseBaseSize(watch) + events.reduce((sum, e) => sum + eventFieldSize({ type: e.type === 1 ? 'delete' : 'put', kv: e.kv, prevKv: e.prevKv }), 0);
    assert.equal(frame.length - GRPC_PREFIX_BYTES, size);
    const keepAlive = { header: HEADER, ID: Math.floor(random() * 2 ** 53), TTL: Math.floor(random() * 100) };
    assert.deepEqual(decoded('Lease', 'leaseKeepAlive', encodeLeaseKeepAliveResponseFrame(keepAlive)), expected(keepAlive));
  }
});
