// The watch service's byte counts (src/api/proto-size.ts) against protobufjs encoding the same
// messages with defaults omitted, as etcd encodes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eventFieldSize, watchResponseBaseSize } from '../../src/api/proto-size.ts';
import type { WatchEvent } from '../../src/mvcc/index.ts';
import { canonical, EtcdClient } from './client.ts';

const serialize = new EtcdClient('127.0.0.1:1').service('Watch').watch.responseSerialize as (
  m: object,
) => Buffer;
const decode = new EtcdClient('127.0.0.1:1').service('Watch').watch.responseDeserialize as (b: Buffer) => any;

function kv(keyBytes: number, valueBytes: number, rev: number, lease = 0) {
  return {
    key: Buffer.alloc(keyBytes, 1),
    createRevision: rev,
    modRevision: rev,
    version: rev === 0 ? 0 : 3,
    value: Buffer.alloc(valueBytes, 2),
    lease,
  };
}

test('event and response sizes equal the canonical protobuf encoding', () => {
  const events: WatchEvent[] = [
    { type: 'put', kv: kv(1, 0, 1), prevKv: null },
    { type: 'delete', kv: kv(3, 0, 2 ** 40), prevKv: kv(3, 200, 5) },
    { type: 'put', kv: kv(300, 70_000, Number.MAX_SAFE_INTEGER, 2 ** 53 - 1), prevKv: null },
    { type: 'put', kv: kv(0, 0, 0), prevKv: kv(0, 0, 0) },
  ];
  const headers = [
    { clusterId: '14841639068965178418', memberId: '10276657743932975437', revision: 12345, raftTerm: 2 },
    { clusterId: '0', memberId: '1', revision: 0, raftTerm: 0 },
  ];
  for (const header of headers) {
    for (const fields of [
      { watchId: 0, created: false, canceled: false, compactRevision: 0, cancelReason: '', fragment: false },
      {
        watchId: -1,
        created: true,
        canceled: true,
        compactRevision: 0,
        cancelReason: 'mvcc: watcher range is empty',
        fragment: false,
      },
      {
        watchId: 70_000,
        created: false,
        canceled: true,
        compactRevision: 2 ** 35,
        cancelReason: 'é',
        fragment: true,
      },
    ]) {
      const base = { header, ...fields };
      const wire = {
        ...base,
        events: events.map((e) => ({ type: e.type === 'delete' ? 1 : 0, kv: e.kv, prevKv: e.prevKv })),
      };
      const decoded = decode(serialize(wire));
      const expected = serialize(canonical(decoded)).length;
      const computed = events.reduce((sum, e) => sum + eventFieldSize(e), watchResponseBaseSize(base));
      assert.equal(computed, expected, JSON.stringify(fields));
    }
  }
});
