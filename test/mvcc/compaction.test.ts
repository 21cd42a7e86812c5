// Compaction: what survives (the latest version at or below the revision of each live key), reads at
// and after the compacted revision, errors below it, and the revision arithmetic around it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MvccStore } from '../../src/mvcc/index.ts';
import { delReq, keys, kvStr, opRange, putReq, rangeReq, throwsMessage, txnReq } from './helpers.ts';

const all = { rangeEnd: new Uint8Array([0]) };
const COMPACTED = 'etcdserver: mvcc: required revision has been compacted';
const FUTURE = 'etcdserver: mvcc: required revision is a future revision';

/** a@2 b@3 a@4 c@5 del b@6 a@7 del c@8 d@9 */
function history(): MvccStore {
  const store = new MvccStore();
  store.put(putReq('a', 'a1'));
  store.put(putReq('b', 'b1'));
  store.put(putReq('a', 'a2'));
  store.put(putReq('c', 'c1'));
  store.deleteRange(delReq('b'));
  store.put(putReq('a', 'a3'));
  store.deleteRange(delReq('c'));
  store.put(putReq('d', 'd1'));
  return store;
}

/** Every read at every revision from `from` to the current one, as text. */
function readsFrom(store: MvccStore, from: number): string[] {
  const out: string[] = [];
  for (let rev = from; rev <= store.currentRevision; rev++) {
    out.push(`${rev}: ${store.range(rangeReq('a', { ...all, revision: rev })).kvs.map(kvStr).join(' ')}`);
  }
  return out;
}

describe('compaction', () => {
  it('keeps every read at or after the compacted revision unchanged', () => {
    for (let at = 1; at <= 9; at++) {
      const store = history();
      const before = readsFrom(store, at);
      const r = store.compact({ revision: at, physical: false });
      assert.equal(r.response.header.revision, 9);
      assert.equal(store.compactedRevision, at);
      assert.deepEqual(readsFrom(store, at), before, `compact at ${at}`);
      if (at > 1) throwsMessage(() => store.range(rangeReq('a', { revision: at - 1 })), COMPACTED);
      store.checkInvariants();
    }
  });

  it('does not change the current revision or current reads', () => {
    const store = history();
    store.compact({ revision: 9, physical: true });
    assert.equal(store.currentRevision, 9);
    assert.deepEqual(store.range(rangeReq('a', all)).kvs.map(kvStr), ['a=a3@7(c2,v3,l0)', 'd=d1@9(c9,v1,l0)']);
    store.put(putReq('a', 'a4'));
    assert.equal(kvStr(store.range(rangeReq('a')).kvs[0]), 'a=a4@10(c2,v4,l0)');
  });

  it('drops keys whose last version is a tombstone below the compaction', () => {
    const store = history();
    store.compact({ revision: 9, physical: true });
    assert.equal(store.keyCount, 2); // a and d; b and c are gone from the index
    // a compaction at exactly a tombstone keeps it (a watch from that revision must see the delete)
    const other = history();
    other.compact({ revision: 8, physical: true });
    assert.equal(other.keyCount, 3); // a, c's tombstone at 8, d
  });

  it('rejects a revision at or below the last compaction, and future revisions', () => {
    const store = history();
    throwsMessage(() => store.compact({ revision: 10, physical: false }), FUTURE);
    store.compact({ revision: 5, physical: false });
    throwsMessage(() => store.compact({ revision: 5, physical: false }), COMPACTED);
    throwsMessage(() => store.compact({ revision: 3, physical: false }), COMPACTED);
    assert.doesNotThrow(() => store.compact({ revision: 6, physical: false }));
  });

  it('starts from etcd compacted revision -1: compact(0) succeeds once, negative revisions never', () => {
    const store = new MvccStore();
    assert.equal(store.compactedRevision, -1);
    throwsMessage(() => store.compact({ revision: -1, physical: false }), COMPACTED);
    store.compact({ revision: 0, physical: false });
    assert.equal(store.compactedRevision, 0);
    throwsMessage(() => store.compact({ revision: 0, physical: false }), COMPACTED);
    store.put(putReq('a', '1'));
    assert.equal(store.range(rangeReq('a', { revision: 1 })).count, 0, 'revision 1 is still readable');
    store.compact({ revision: 1, physical: false });
    store.compact({ revision: 2, physical: false });
    store.checkInvariants();
  });

  it('negative revisions: a range reads the current one; a txn range below the compaction is compacted (etcd checkRequestRange)', () => {
    const store = new MvccStore();
    store.put(putReq('a', '1'));
    const txnRange = (revision: number) => () => store.txn(txnReq([], [opRange('a', { revision })]));
    assert.deepEqual(keys(store.range(rangeReq('a', { revision: -5 })).kvs), ['a']);
    assert.doesNotThrow(txnRange(-1), 'not below -1: reads the current revision');
    throwsMessage(txnRange(-2), COMPACTED);
    store.compact({ revision: 0, physical: false });
    throwsMessage(txnRange(-1), COMPACTED);
    assert.deepEqual(keys(store.range(rangeReq('a', { revision: -5 })).kvs), ['a']);
    throwsMessage(txnRange(3), FUTURE);
  });

  it('compacts repeatedly while writes continue', () => {
    const store = new MvccStore();
    const expected = new Map<string, string>();
    for (let i = 0; i < 300; i++) {
      const key = `k${i % 7}`;
      if (i % 5 === 4) {
        store.deleteRange(delReq(key));
        expected.delete(key);
      } else {
        store.put(putReq(key, `v${i}`));
        expected.set(key, `v${i}`);
      }
      if (i % 37 === 36) store.compact({ revision: store.currentRevision - 3, physical: false });
    }
    store.checkInvariants();
    const got = store.range(rangeReq('k', { rangeEnd: new Uint8Array([0]) }));
    assert.deepEqual(keys(got.kvs), [...expected.keys()].sort());
    assert.ok(store.keyCount <= 7);
  });
});
