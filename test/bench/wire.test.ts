// The bench client's hand-rolled protobuf must match etcd's protos: requests it writes decode with
// proto-loader to what was meant, and responses proto-loader writes decode to the right fields.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as protoLoader from '@grpc/proto-loader';
import { ETCD_PROTO_FILES, PROTO_INCLUDE_DIR } from '../../src/api/index.ts';
import {
  decodeCasTxn,
  decodeLeaseGrant,
  decodeLeaseKeepAliveTtl,
  decodeStatus,
  scanWatch,
  encodeCasTxn,
  encodeLeaseGrant,
  encodeLeaseKeepAlive,
  encodePut,
  encodePutTxn,
  encodeRange,
  encodeWatchCreate,
  prefixRangeEnd,
} from '../../src/bench/wire.ts';
import type { WatchFlags } from '../../src/bench/wire.ts';

const definition = protoLoader.loadSync([...ETCD_PROTO_FILES], {
  longs: String,
  enums: String,
  bytes: Buffer,
  defaults: false,
  oneofs: true,
  includeDirs: [PROTO_INCLUDE_DIR],
});

function method(service: string, name: string) {
  const s = definition[service];
  assert.ok(s !== undefined && !('format' in s));
  return s[name];
}

const put = method('etcdserverpb.KV', 'Put');
const range = method('etcdserverpb.KV', 'Range');
const txn = method('etcdserverpb.KV', 'Txn');
const watch = method('etcdserverpb.Watch', 'Watch');
const grant = method('etcdserverpb.Lease', 'LeaseGrant');
const keepAlive = method('etcdserverpb.Lease', 'LeaseKeepAlive');

test('requests decode with etcd protos', () => {
  const key = Buffer.from('bench/0000000042');
  const value = Buffer.alloc(300, 7);
  assert.deepEqual(put.requestDeserialize(encodePut(key, value)), { key, value });
  assert.deepEqual(range.requestDeserialize(encodeRange(key, false)), { key });
  assert.deepEqual(range.requestDeserialize(encodeRange(key, true)), { key, serializable: true });

  const cas = txn.requestDeserialize(encodeCasTxn(key, 123_456_789, value));
  assert.deepEqual(cas, {
    compare: [{ target: 'MOD', key, modRevision: '123456789', targetUnion: 'modRevision' }],
    success: [{ requestPut: { key, value }, request: 'requestPut' }],
    failure: [{ requestRange: { key }, request: 'requestRange' }],
  });
  // Expected revision 0 ("the key does not exist") is the proto default and is left out.
  const create = txn.requestDeserialize(encodeCasTxn(key, 0, value)) as { compare: object[] };
  assert.deepEqual(create.compare, [{ target: 'MOD', key }]);

  const prefix = Buffer.from('watch/');
  assert.deepEqual(watch.requestDeserialize(encodeWatchCreate(prefix, prefixRangeEnd(prefix))), {
    createRequest: { key: prefix, rangeEnd: Buffer.from('watch0') },
    requestUnion: 'createRequest',
  });
  assert.deepEqual(grant.requestDeserialize(encodeLeaseGrant(60)), { TTL: '60' });
});

test('a load Txn decodes with etcd protos as puts only, no compares', () => {
  const keys = [Buffer.from('bench/0000000000'), Buffer.from('bench/0000000001'), Buffer.from('bench/0000000002')];
  const values = keys.map((_, i) => Buffer.alloc(256, i));
  assert.deepEqual(txn.requestDeserialize(encodePutTxn(keys, values)), {
    success: keys.map((key, i) => ({ requestPut: { key, value: values[i] }, request: 'requestPut' })),
  });
});

test('prefix range end increments the last byte below 0xff', () => {
  assert.deepEqual(prefixRangeEnd(Buffer.from([0x61, 0xff])), Buffer.from([0x62]));
  assert.deepEqual(prefixRangeEnd(Buffer.from([0xff])), Buffer.from([0]));
});

test('responses decode: txn outcome, watch events, lease IDs beyond 2^53', () => {
  const header = { clusterId: '1', memberId: '2', revision: '987654321', raftTerm: '3' };
  const succeeded = txn.responseSerialize({ header, succeeded: true, responses: [{ responsePut: { header } }] });
  assert.deepEqual(decodeCasTxn(succeeded), { succeeded: true, modRevision: 987_654_321 });
  const conflict = txn.responseSerialize({
    header,
    succeeded: false,
    responses: [{ responseRange: { header, kvs: [{ key: Buffer.from('k'), modRevision: '77', value: Buffer.from('v') }], count: '1' } }],
  });
  assert.deepEqual(decodeCasTxn(conflict), { succeeded: false, modRevision: 77 });

  const events = watch.responseSerialize({
    header,
    watchId: '5',
    events: [
      { type: 'PUT', kv: { key: Buffer.from('a'), value: Buffer.from('first'), modRevision: '9' } },
      { type: 'PUT', kv: { key: Buffer.from('b'), value: Buffer.from('second') } },
    ],
  });
  const flags: WatchFlags = { created: true, canceled: true, cancelReason: 'stale' };
  const scan = (bytes: Buffer): string[] => {
    const values: string[] = [];
    scanWatch(bytes, flags, (buffer, start, end) => values.push(buffer.toString('utf8', start, end)));
    return values;
  };
  assert.deepEqual(scan(events), ['first', 'second']);
  assert.deepEqual(flags, { created: false, canceled: false, cancelReason: '' });
  const deleted = watch.responseSerialize({ header, watchId: '5', events: [{ type: 'DELETE', kv: { key: Buffer.from('a'), modRevision: '10' } }] });
  assert.deepEqual(scan(deleted), ['']);
  assert.deepEqual(scan(watch.responseSerialize({ header, watchId: '0', created: true })), []);
  assert.equal(flags.created, true);
  scan(watch.responseSerialize({ header, canceled: true, cancelReason: 'compacted' }));
  assert.deepEqual(flags, { created: false, canceled: true, cancelReason: 'compacted' });

  const bigId = '7587870044578402415'; // an etcd-style lease ID, above 2^53
  const lease = decodeLeaseGrant(grant.responseSerialize({ header, ID: bigId, TTL: '60' }));
  assert.equal(lease.ttlSeconds, 60);
  assert.equal(lease.error, '');
  assert.deepEqual(keepAlive.requestDeserialize(encodeLeaseKeepAlive(lease.rawId)), { ID: bigId });
  assert.equal(decodeLeaseKeepAliveTtl(keepAlive.responseSerialize({ header, ID: bigId, TTL: '42' })), 42);
  assert.equal(decodeLeaseKeepAliveTtl(keepAlive.responseSerialize({ header, ID: bigId, TTL: '0' })), 0);
});

test('decodeStatus tells the leader by member ID, IDs above 2^53 included', () => {
  const status = method('etcdserverpb.Maintenance', 'Status');
  const big = '18446744073709551557'; // near 2^64: a Number would round it
  const bigNeighbour = '18446744073709551556';
  const asLeader = decodeStatus(status.responseSerialize({ header: { memberId: big, revision: '5' }, version: '3.4.23', leader: big }));
  assert.equal(asLeader.memberId, asLeader.leader);
  assert.notEqual(asLeader.memberId, '');
  const asFollower = decodeStatus(status.responseSerialize({ header: { memberId: bigNeighbour }, leader: big }));
  assert.notEqual(asFollower.memberId, asFollower.leader);
  assert.equal(asFollower.leader, asLeader.memberId);
  assert.deepEqual(decodeStatus(status.responseSerialize({ header: { memberId: big } })), { memberId: asLeader.memberId, leader: '' });
});
