// Txn: compares (every target and result, ranged), branches, nesting, one revision per txn,
// reads inside a txn, etcd's validation (op counts, duplicate keys) and atomicity of failures.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MvccStore } from '../../src/mvcc/index.ts';
import type { ResponseOp, TxnResponse } from '../../src/mvcc/index.ts';
import { b, cmp, evStr, keys, kvStr, opDel, opPut, opRange, opTxn, prefixEnd, putReq, rangeReq, throwsMessage, txnReq } from './helpers.ts';

function seeded(): MvccStore {
  const store = new MvccStore();
  store.leaseGrant(9, 100);
  store.put(putReq('a', '1')); // rev 2
  store.put(putReq('b', '2', { lease: 9 })); // rev 3
  store.put(putReq('a', '11')); // rev 4: a version 2
  return store;
}

function only<T extends ResponseOp['type']>(op: ResponseOp, type: T): Extract<ResponseOp, { type: T }> {
  assert.equal(op.type, type);
  return op as Extract<ResponseOp, { type: T }>;
}

const succeeds = (store: MvccStore, ...compares: ReturnType<typeof cmp>[]) => store.txn(txnReq(compares, [])).response.succeeded;

describe('txn compares', () => {
  it('compares version, create, mod, value and lease with every result', () => {
    const store = seeded();
    assert.equal(succeeds(store, cmp('a', 'version', 'equal', 2)), true);
    assert.equal(succeeds(store, cmp('a', 'version', 'notEqual', 2)), false);
    assert.equal(succeeds(store, cmp('a', 'version', 'greater', 1)), true);
    assert.equal(succeeds(store, cmp('a', 'version', 'less', 2)), false);
    assert.equal(succeeds(store, cmp('a', 'create', 'equal', 2)), true);
    assert.equal(succeeds(store, cmp('a', 'mod', 'equal', 4)), true);
    assert.equal(succeeds(store, cmp('a', 'mod', 'less', 4)), false);
    assert.equal(succeeds(store, cmp('a', 'value', 'equal', '11')), true);
    assert.equal(succeeds(store, cmp('a', 'value', 'greater', '1')), true); // bytes: "11" > "1"
    assert.equal(succeeds(store, cmp('a', 'value', 'less', '2')), true);
    assert.equal(succeeds(store, cmp('b', 'lease', 'equal', 9)), true);
    assert.equal(succeeds(store, cmp('a', 'lease', 'equal', 0)), true);
  });

  it('a missing key compares as zeros, except value compares, which always fail', () => {
    const store = seeded();
    assert.equal(succeeds(store, cmp('zz', 'create', 'equal', 0)), true);
    assert.equal(succeeds(store, cmp('zz', 'version', 'equal', 0)), true);
    assert.equal(succeeds(store, cmp('zz', 'mod', 'less', 1)), true);
    assert.equal(succeeds(store, cmp('zz', 'value', 'equal', '')), false);
    assert.equal(succeeds(store, cmp('zz', 'value', 'notEqual', 'x')), false);
  });

  it('all compares must hold', () => {
    const store = seeded();
    assert.equal(succeeds(store, cmp('a', 'version', 'equal', 2), cmp('b', 'version', 'equal', 1)), true);
    assert.equal(succeeds(store, cmp('a', 'version', 'equal', 2), cmp('b', 'version', 'equal', 2)), false);
  });

  it('a ranged compare must hold for every key in range', () => {
    const store = new MvccStore();
    store.put(putReq('p/1', 'x'));
    store.put(putReq('p/2', 'x'));
    store.put(putReq('q', 'y'));
    const end = prefixEnd('p/');
    assert.equal(succeeds(store, cmp('p/', 'value', 'equal', 'x', end)), true);
    assert.equal(succeeds(store, cmp('p/', 'mod', 'less', 4, end)), true);
    assert.equal(succeeds(store, cmp('p/', 'mod', 'less', 3, end)), false);
    assert.equal(succeeds(store, cmp('p', 'value', 'equal', 'x', new Uint8Array([0]))), false); // q=y is in range
    assert.equal(succeeds(store, cmp('r/', 'create', 'equal', 0, prefixEnd('r/'))), true); // empty range: zero kv
    assert.equal(succeeds(store, cmp('r/', 'value', 'equal', '', prefixEnd('r/'))), false);
  });

  it('compares see deleted keys as missing', () => {
    const store = seeded();
    store.txn(txnReq([], [opDel('a')]));
    assert.equal(succeeds(store, cmp('a', 'version', 'equal', 0)), true);
  });
});

describe('txn execution', () => {
  it('runs success or failure ops and reports which', () => {
    const store = seeded();
    const ok = store.txn(txnReq([cmp('a', 'value', 'equal', '11')], [opPut('x', 'then')], [opPut('x', 'else')]));
    assert.equal(ok.response.succeeded, true);
    const ko = store.txn(txnReq([cmp('a', 'value', 'equal', 'nope')], [opPut('y', 'then')], [opPut('y', 'else')]));
    assert.equal(ko.response.succeeded, false);
    assert.equal(kvStr(store.range(rangeReq('x')).kvs[0]), 'x=then@5(c5,v1,l0)');
    assert.equal(kvStr(store.range(rangeReq('y')).kvs[0]), 'y=else@6(c6,v1,l0)');
  });

  it('all writes of a txn share one revision; events come together in op order', () => {
    const store = seeded();
    const r = store.txn(txnReq([], [opPut('z', '1'), opDel('a', { prevKv: true }), opPut('c', '3', { prevKv: true })]));
    assert.equal(r.response.header.revision, 5);
    assert.equal(store.currentRevision, 5);
    assert.deepEqual(r.events.map(evStr), ['PUT z=1@5', 'DELETE a@5 prev=11@4', 'PUT c=3@5']);
    assert.equal(only(r.response.responses[0], 'put').put.header.revision, 5);
    const del = only(r.response.responses[1], 'deleteRange').deleteRange;
    assert.deepEqual([del.deleted, del.header.revision, keys(del.prevKvs)], [1, 5, ['a']]);
  });

  it('a read-only txn or a txn that changes nothing keeps the revision', () => {
    const store = seeded();
    const ro = store.txn(txnReq([], [opRange('a')]));
    assert.equal(ro.response.header.revision, 4);
    assert.equal(kvStr(only(ro.response.responses[0], 'range').range.kvs[0]), 'a=11@4(c2,v2,l0)');
    const nothing = store.txn(txnReq([], [opDel('nope'), opRange('a')]));
    assert.equal(nothing.response.header.revision, 4);
    assert.equal(only(nothing.response.responses[0], 'deleteRange').deleteRange.header.revision, 4);
    assert.equal(store.currentRevision, 4);
    const empty = store.txn(txnReq([], []));
    assert.deepEqual([empty.response.succeeded, empty.response.header.revision, empty.response.responses], [true, 4, []]);
  });

  it('ranges inside a write txn see earlier writes of the same txn, at the new revision', () => {
    const store = seeded();
    const r = store.txn(txnReq([], [opRange('n'), opPut('n', 'new'), opRange('n'), opRange('n', { revision: 4 }), opDel('a'), opRange('a')]));
    const before = only(r.response.responses[0], 'range').range;
    const after = only(r.response.responses[2], 'range').range;
    const old = only(r.response.responses[3], 'range').range;
    const gone = only(r.response.responses[5], 'range').range;
    assert.deepEqual([before.count, before.header.revision], [0, 4]);
    assert.deepEqual([kvStr(after.kvs[0]), after.header.revision], ['n=new@5(c5,v1,l0)', 5]);
    assert.deepEqual([old.count, old.header.revision], [0, 5]);
    assert.equal(gone.count, 0);
  });

  it('nested txns evaluate their compares on the state before the whole txn', () => {
    const store = seeded();
    const inner = txnReq([cmp('a', 'value', 'equal', '11')], [opPut('inner', 'saw-old')], [opPut('inner', 'saw-new')]);
    const r = store.txn(txnReq([], [opPut('a', 'changed'), opTxn(inner)]));
    assert.equal(kvStr(store.range(rangeReq('inner')).kvs[0]), 'inner=saw-old@5(c5,v1,l0)');
    const nested = only(r.response.responses[1], 'txn').txn as TxnResponse;
    assert.equal(nested.succeeded, true);
    assert.equal(nested.header.revision, 0); // etcd fills only the outer header
    assert.equal(r.response.header.revision, 5);
  });

  it('nested failure branches run and can nest again', () => {
    const store = seeded();
    const deepest = txnReq([cmp('b', 'lease', 'equal', 9)], [opPut('deep', 'yes')]);
    const middle = txnReq([cmp('a', 'version', 'equal', 99)], [opPut('mid', 'then')], [opPut('mid', 'else'), opTxn(deepest)]);
    const r = store.txn(txnReq([], [opTxn(middle)]));
    assert.deepEqual(r.events.map(evStr), ['PUT mid=else@5', 'PUT deep=yes@5']);
    const m = only(r.response.responses[0], 'txn').txn;
    assert.equal(m.succeeded, false);
    assert.equal(only(m.responses[1], 'txn').txn.succeeded, true);
  });
});

describe('txn validation', () => {
  it('too many ops at one level (compare, success or failure), with nested budgets', () => {
    const store = new MvccStore({ maxTxnOps: 4 });
    const puts = (n: number, p = 'k') => Array.from({ length: n }, (_, i) => opPut(`${p}${i}`, 'v'));
    assert.doesNotThrow(() => store.txn(txnReq([], puts(4))));
    throwsMessage(() => store.txn(txnReq([], puts(5))), 'etcdserver: too many operations in txn request');
    throwsMessage(() => store.txn(txnReq([], [], puts(5))), 'etcdserver: too many operations in txn request');
    const cmps = Array.from({ length: 5 }, () => cmp('a', 'version', 'equal', 0));
    throwsMessage(() => store.txn(txnReq(cmps, [])), 'etcdserver: too many operations in txn request');
    // a nested txn may use what its parent's widest list left: 4 - 2 = 2
    assert.doesNotThrow(() => store.txn(txnReq([], [opPut('x', '1'), opTxn(txnReq([], puts(2, 'n')))])));
    throwsMessage(() => store.txn(txnReq([], [opPut('x', '1'), opTxn(txnReq([], puts(3, 'n')))])), 'etcdserver: too many operations in txn request');
  });

  it('rejects the same key put twice, or put and deleted, in ops that can run together', () => {
    const store = seeded();
    const dup = 'etcdserver: duplicate key given in txn request';
    throwsMessage(() => store.txn(txnReq([], [opPut('k', '1'), opPut('k', '2')])), dup);
    throwsMessage(() => store.txn(txnReq([], [opDel('k'), opPut('k', '2')])), dup);
    throwsMessage(() => store.txn(txnReq([], [opPut('k', '2'), opDel('a', { rangeEnd: b('z') })])), dup);
    throwsMessage(() => store.txn(txnReq([], [opPut('k', '1'), opTxn(txnReq([], [opPut('k', '2')]))])), dup);
    throwsMessage(() => store.txn(txnReq([], [opDel('k'), opTxn(txnReq([], [opPut('k', '2')]))])), dup);
    throwsMessage(() => store.txn(txnReq([], [opTxn(txnReq([], [opDel('k')])), opPut('k', '2')])), dup);
    throwsMessage(() => store.txn(txnReq([], [opTxn(txnReq([], [opPut('k', '1')])), opTxn(txnReq([], [opPut('k', '2')]))])), dup);
    throwsMessage(() => store.txn(txnReq([], [], [opPut('k', '1'), opPut('k', '2')])), dup);
    assert.equal(store.currentRevision, 4);
    // what etcd lets through ("\0" range ends, a later nested delete of an earlier nested put) is
    // accepted and written with sub-revisions: test/mvcc/subrevision.test.ts
  });

  it('allows what etcd allows: then/else of one nested txn, overlapping deletes, put beside a disjoint delete', () => {
    const store = seeded();
    store.txn(txnReq([], [opTxn(txnReq([cmp('a', 'version', 'equal', 2)], [opPut('k', 'then')], [opPut('k', 'else')]))]));
    assert.equal(kvStr(store.range(rangeReq('k')).kvs[0]), 'k=then@5(c5,v1,l0)');
    const r = store.txn(txnReq([], [opDel('a', { rangeEnd: b('c') }), opDel('b', { rangeEnd: b('z') }), opPut('z', '1')]));
    assert.deepEqual(r.events.map(evStr), ['DELETE a@6 prev=11@4', 'DELETE b@6 prev=2@3', 'DELETE k@6 prev=then@5', 'PUT z=1@6']);
    assert.deepEqual(
      only(r.response.responses[1], 'deleteRange').deleteRange.deleted,
      1, // only k: b was already deleted by the first op
    );
  });

  it('fails as a whole, writing nothing, when a put on the taken branch is invalid', () => {
    const store = seeded();
    throwsMessage(() => store.txn(txnReq([], [opPut('ok', '1'), opPut('x', '2', { lease: 12345 })])), 'etcdserver: requested lease not found');
    throwsMessage(() => store.txn(txnReq([], [opPut('ok', '1'), opPut('nope', '', { ignoreValue: true })])), 'etcdserver: key not found');
    throwsMessage(() => store.txn(txnReq([], [opPut('ok', '1'), opRange('a', { revision: 5 })])), 'etcdserver: mvcc: required revision is a future revision');
    throwsMessage(() => store.txn(txnReq([], [opPut('ok', '1'), opTxn(txnReq([], [opPut('x', '2', { lease: 1 })]))])), 'etcdserver: requested lease not found');
    assert.equal(store.currentRevision, 4);
    assert.equal(store.range(rangeReq('ok')).count, 0);
    // an invalid op on the branch not taken is not checked, as in etcd
    assert.doesNotThrow(() => store.txn(txnReq([cmp('a', 'version', 'equal', 2)], [opPut('ok', '1')], [opPut('x', '2', { lease: 12345 })])));
  });

  it('rejects empty keys anywhere, and empty ops', () => {
    const store = seeded();
    throwsMessage(() => store.txn(txnReq([cmp('', 'version', 'equal', 0)], [])), 'etcdserver: key is not provided');
    throwsMessage(() => store.txn(txnReq([], [opPut('', 'v')])), 'etcdserver: key is not provided');
    throwsMessage(() => store.txn(txnReq([], [], [opRange('')])), 'etcdserver: key is not provided');
    throwsMessage(() => store.txn(txnReq([], [{} as never])), 'etcdserver: key not found');
  });
});
