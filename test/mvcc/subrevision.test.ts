// A key written more than once in one revision: etcd's duplicate-key check lets some txns through
// that do (a delete with range_end "\0" beside a put, [txn{put k}, txn{delete k}]), and etcd
// writes them with sub-revisions. Reads at the revision see the last write, watchers get every
// write in op order with prevKv read at revision - 1 (none for a create, as etcd's watch server
// skips creates), compaction keeps the last write only.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MvccStore } from '../../src/mvcc/index.ts';
import type { MvccStore as Store, TxnResponse, WatchEvent } from '../../src/mvcc/index.ts';
import { evStr, kvStr, opDel, opPut, opRange, opTxn, putReq, rangeReq, throwsMessage, txnReq, watchOpts } from './helpers.ts';

const TO_END = new Uint8Array([0]);

/** a=1@2, k=old@3 (lease 9 exists). */
function seeded(): Store {
  const store = new MvccStore();
  store.leaseGrant(9, 100);
  store.put(putReq('a', '1'));
  store.put(putReq('k', 'old'));
  return store;
}

function replay(store: Store, startRevision: number): string[] {
  const events: string[] = [];
  const handle = store.watch(watchOpts('', { rangeEnd: TO_END, startRevision, prevKv: true }), (batch: WatchEvent[]) => {
    events.push(...batch.map(evStr));
  });
  handle.cancel();
  return events;
}

const read = (store: Store, key: string, revision = 0) => kvStr(store.range(rangeReq(key, { revision })).kvs[0] ?? null);

function roundTrip(store: Store): Store {
  return MvccStore.restore(Array.from(store.snapshotChunks(1 << 16)));
}

function nested(response: TxnResponse, i: number): TxnResponse {
  const op = response.responses[i];
  assert.equal(op.type, 'txn');
  return (op as Extract<typeof op, { type: 'txn' }>).txn;
}

describe('a key written more than once in one revision', () => {
  it('[txn{put k}, txn{delete k}]: the put and the delete share the revision; k is gone at it', () => {
    const store = seeded();
    const live: string[] = [];
    store.watch(watchOpts('k', { prevKv: true }), (batch) => void live.push(...batch.map(evStr)));
    const result = store.txn(txnReq([], [opTxn(txnReq([], [opPut('k', 'new', { prevKv: true })])), opTxn(txnReq([], [opDel('k', { prevKv: true })]))]));
    assert.equal(store.currentRevision, 4);
    assert.equal(result.response.header.revision, 4);
    const put = nested(result.response, 0).responses[0];
    const del = nested(result.response, 1).responses[0];
    assert.ok(put.type === 'put' && del.type === 'deleteRange');
    assert.equal(kvStr(put.put.prevKv), 'k=old@3(c3,v1,l0)');
    assert.deepEqual(del.deleteRange.prevKvs.map(kvStr), ['k=new@4(c3,v2,l0)'], 'the delete sees the put before it');
    // prevKv of both events is the value at revision 3, as etcd's watch server reads it
    assert.deepEqual(result.events.map(evStr), ['PUT k=new@4 prev=old@3', 'DELETE k@4 prev=old@3']);
    assert.deepEqual(live, ['PUT k=new@4 prev=old@3', 'DELETE k@4 prev=old@3']);
    assert.deepEqual(replay(store, 4), ['PUT k=new@4 prev=old@3', 'DELETE k@4 prev=old@3']);
    assert.equal(read(store, 'k'), 'null');
    assert.equal(read(store, 'k', 3), 'k=old@3(c3,v1,l0)');
    store.checkInvariants();
  });

  it('[delete a.."\\0", put k]: k is deleted and created again at the same revision', () => {
    const store = seeded();
    const result = store.txn(txnReq([], [opDel('a', { rangeEnd: TO_END, prevKv: true }), opPut('k', 'new', { prevKv: true }), opRange('k')]));
    const [del, put, range] = result.response.responses;
    assert.ok(del.type === 'deleteRange' && put.type === 'put' && range.type === 'range');
    assert.equal(del.deleteRange.deleted, 2);
    assert.equal(put.put.prevKv, null, 'k was deleted by the first op');
    assert.deepEqual(range.range.kvs.map(kvStr), ['k=new@4(c4,v1,l0)']);
    // the create gets no prevKv (etcd skips creates), though k had a value at revision 3
    assert.deepEqual(result.events.map(evStr), ['DELETE a@4 prev=1@2', 'DELETE k@4 prev=old@3', 'PUT k=new@4']);
    assert.equal(read(store, 'k'), 'k=new@4(c4,v1,l0)');
    assert.equal(read(store, 'a'), 'null');
    store.put(putReq('k', 'newer'));
    assert.equal(read(store, 'k'), 'k=newer@5(c4,v2,l0)');
    assert.deepEqual(replay(store, 4), ['DELETE a@4 prev=1@2', 'DELETE k@4 prev=old@3', 'PUT k=new@4', 'PUT k=newer@5 prev=new@4']);
    store.checkInvariants();
  });

  it('[delete k.."\\0", put k, txn{delete k.."\\0"}]: delete, create, delete', () => {
    const store = seeded();
    const result = store.txn(txnReq([], [opDel('k', { rangeEnd: TO_END }), opPut('k', 'new'), opTxn(txnReq([], [opDel('k', { rangeEnd: TO_END, prevKv: true })]))]));
    const inner = nested(result.response, 2).responses[0];
    assert.ok(inner.type === 'deleteRange');
    assert.deepEqual(inner.deleteRange.prevKvs.map(kvStr), ['k=new@4(c4,v1,l0)']);
    // the last delete's prevKv is k at revision 3, not the value created in between
    assert.deepEqual(result.events.map(evStr), ['DELETE k@4 prev=old@3', 'PUT k=new@4', 'DELETE k@4 prev=old@3']);
    assert.equal(read(store, 'k'), 'null');
    assert.equal(store.keyCount, 2);
    store.checkInvariants();
  });

  it('attaches and detaches leases through every write', () => {
    const store = seeded();
    store.txn(txnReq([], [opPut('k', 'x', { lease: 9 }), opDel('k', { rangeEnd: TO_END })]));
    assert.deepEqual(store.leaseTimeToLive(9, true).keys, []);
    store.txn(txnReq([], [opDel('a', { rangeEnd: TO_END }), opPut('k', 'y', { lease: 9 })]));
    assert.deepEqual(store.leaseTimeToLive(9, true).keys.map((key) => Buffer.from(key).toString()), ['k']);
    store.checkInvariants();
    store.leaseRevoke(9);
    assert.equal(read(store, 'k'), 'null');
    store.checkInvariants();
  });

  it('refuses, writing nothing, a put with ignore_* after a delete of its key in the same txn (etcd panics)', () => {
    const notFound = 'etcdserver: key not found';
    const cases = [
      txnReq([], [opDel('a', { rangeEnd: TO_END }), opPut('k', '', { ignoreValue: true })]),
      txnReq([], [opDel('k', { rangeEnd: TO_END }), opTxn(txnReq([], [opPut('k', 'x', { ignoreLease: true })]))]),
      txnReq([], [opTxn(txnReq([], [opDel('k', { rangeEnd: TO_END })])), opPut('k', '', { ignoreValue: true, prevKv: true })]),
    ];
    for (const req of cases) {
      const store = seeded();
      throwsMessage(() => store.txn(req), notFound);
      assert.equal(store.currentRevision, 3);
      assert.equal(read(store, 'k'), 'k=old@3(c3,v1,l0)');
      store.checkInvariants();
    }
    // a put with ignore_* before the delete, or of a key the delete does not reach, is fine
    const store = seeded();
    store.txn(txnReq([], [opPut('k', '', { ignoreValue: true }), opDel('z', { rangeEnd: TO_END }), opPut('a', '', { ignoreValue: true })]));
    assert.equal(read(store, 'k'), 'k=old@4(c3,v2,l0)');
    store.txn(txnReq([], [opPut('a', '', { ignoreValue: true }), opDel('a', { rangeEnd: TO_END })]));
    assert.equal(read(store, 'a'), 'null');
    store.checkInvariants();
  });

  it('survives snapshot and restore, before and after compacting at that revision', () => {
    const store = seeded();
    store.txn(txnReq([], [opTxn(txnReq([], [opPut('k', 'new')])), opTxn(txnReq([], [opDel('k')]))])); // rev 4
    store.txn(txnReq([], [opDel('a', { rangeEnd: TO_END }), opPut('k', 'again')])); // rev 5
    store.put(putReq('z', '1')); // rev 6
    const copy = roundTrip(store);
    assert.deepEqual(replay(copy, 1), replay(store, 1));
    assert.deepEqual(copy.hashKV(0), store.hashKV(0));
    // compacting at 5 keeps k's last write at 5 (the create) and drops the delete before it
    for (const s of [store, copy]) s.compact({ revision: 5, physical: true });
    const expected = ['PUT k=again@5', 'PUT z=1@6'];
    assert.deepEqual(replay(store, 5), ['DELETE a@5', ...expected], 'revision 5 replays only the writes still held; prevKv at 4 is compacted');
    assert.deepEqual(replay(copy, 5), replay(store, 5));
    assert.deepEqual(replay(roundTrip(store), 5), replay(store, 5));
    assert.equal(read(store, 'k', 5), 'k=again@5(c5,v1,l0)');
    store.checkInvariants();
    copy.checkInvariants();
  });
});
