// Leases: grant rules, attach/detach through puts and deletes, revoke deleting keys in one revision,
// time-to-live queries, checkpoints and the lease limit.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MvccStore } from '../../src/mvcc/index.ts';
import { delReq, evStr, opPut, putReq, rangeReq, s, throwsMessage, txnReq } from './helpers.ts';

const attached = (store: MvccStore, id: number) => store.leaseTimeToLive(id, true).keys.map(s);

describe('lease grant', () => {
  it('grants with the requested TTL, raised to the minimum, without a new revision', () => {
    const store = new MvccStore({ minLeaseTtlSeconds: 5 });
    const r = store.leaseGrant(100, 60);
    assert.deepEqual(r.response, { header: { revision: 1 }, id: 100, ttl: 60 });
    assert.equal(store.leaseGrant(101, 1).response.ttl, 5);
    assert.equal(store.currentRevision, 1);
    assert.deepEqual(store.leases().leases, [
      { id: 100, ttl: 60, remainingTtl: 0 },
      { id: 101, ttl: 5, remainingTtl: 0 },
    ]);
  });

  it('rejects id 0, duplicates, too large TTLs and more than maxLeases', () => {
    const store = new MvccStore({ maxLeases: 2 });
    throwsMessage(() => store.leaseGrant(0, 10), 'etcdserver: requested lease not found');
    throwsMessage(() => store.leaseGrant(1, 9_000_000_001), 'etcdserver: too large lease TTL');
    store.leaseGrant(1, 10);
    throwsMessage(() => store.leaseGrant(1, 10), 'etcdserver: lease already exists');
    store.leaseGrant(2, 10);
    throwsMessage(() => store.leaseGrant(3, 10), 'etcdserver: too many leases');
    store.leaseRevoke(2);
    assert.doesNotThrow(() => store.leaseGrant(3, 10));
  });
});

describe('lease attachment', () => {
  it('a put with an unknown lease fails and writes nothing', () => {
    const store = new MvccStore();
    throwsMessage(() => store.put(putReq('k', 'v', { lease: 42 })), 'etcdserver: requested lease not found');
    assert.equal(store.currentRevision, 1);
  });

  it('puts attach, re-puts move, lease 0 detaches, deletes detach', () => {
    const store = new MvccStore();
    store.leaseGrant(1, 10);
    store.leaseGrant(2, 10);
    store.put(putReq('a', 'v', { lease: 1 }));
    store.put(putReq('b', 'v', { lease: 1 }));
    assert.deepEqual(attached(store, 1), ['a', 'b']);
    store.put(putReq('a', 'v', { lease: 2 }));
    assert.deepEqual([attached(store, 1), attached(store, 2)], [['b'], ['a']]);
    store.put(putReq('b', 'v'));
    assert.deepEqual(attached(store, 1), []);
    store.deleteRange(delReq('a'));
    assert.deepEqual(attached(store, 2), []);
    store.checkInvariants();
  });

  it('ignoreLease keeps the attachment', () => {
    const store = new MvccStore();
    store.leaseGrant(1, 10);
    store.put(putReq('a', 'v1', { lease: 1 }));
    store.put(putReq('a', 'v2', { ignoreLease: true }));
    assert.deepEqual(attached(store, 1), ['a']);
    assert.equal(store.range(rangeReq('a')).kvs[0].lease, 1);
  });

  it('attaches inside a txn', () => {
    const store = new MvccStore();
    store.leaseGrant(5, 10);
    store.txn(txnReq([], [opPut('x', '1', { lease: 5 }), opPut('y', '1', { lease: 5 })]));
    assert.deepEqual(attached(store, 5), ['x', 'y']);
  });
});

describe('lease revoke', () => {
  it('deletes every attached key in one revision, in key order, and forgets the lease', () => {
    const store = new MvccStore();
    store.leaseGrant(1, 10);
    store.put(putReq('z', '1', { lease: 1 }));
    store.put(putReq('m', '1', { lease: 1 }));
    store.put(putReq('keep', '1'));
    const r = store.leaseRevoke(1);
    assert.equal(r.response.header.revision, 5);
    assert.deepEqual(r.events.map(evStr), ['DELETE m@5 prev=1@3', 'DELETE z@5 prev=1@2']);
    assert.equal(store.range(rangeReq('a', { rangeEnd: new Uint8Array([0]) })).count, 1);
    throwsMessage(() => store.leaseTimeToLive(1, false), 'etcdserver: requested lease not found');
    throwsMessage(() => store.leaseRevoke(1), 'etcdserver: requested lease not found');
    store.checkInvariants();
  });

  it('revoking a lease with no keys writes no revision', () => {
    const store = new MvccStore();
    store.leaseGrant(1, 10);
    const r = store.leaseRevoke(1);
    assert.deepEqual([r.response.header.revision, r.events.length, store.leaseCount], [1, 0, 0]);
  });

  it('keys detached before the revoke survive it', () => {
    const store = new MvccStore();
    store.leaseGrant(1, 10);
    store.put(putReq('a', '1', { lease: 1 }));
    store.put(putReq('a', '2'));
    store.leaseRevoke(1);
    assert.equal(store.range(rangeReq('a')).count, 1);
  });
});

describe('lease time to live', () => {
  it('reports granted TTL, checkpointed remaining TTL and keys only when asked', () => {
    const store = new MvccStore();
    store.leaseGrant(7, 30);
    store.put(putReq('k', 'v', { lease: 7 }));
    assert.deepEqual(store.leaseTimeToLive(7, false), { header: { revision: 2 }, id: 7, ttl: 30, grantedTtl: 30, keys: [] });
    store.leaseCheckpoint(7, 12);
    const r = store.leaseTimeToLive(7, true);
    assert.deepEqual([r.ttl, r.grantedTtl, r.keys.map(s)], [12, 30, ['k']]);
    store.leaseCheckpoint(8, 12); // unknown lease: ignored, like etcd
    assert.equal(store.leaseCount, 1);
  });
});
