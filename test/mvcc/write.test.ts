// Put and DeleteRange: revisions, versions, tombstones, prevKv, ignore_value / ignore_lease.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MvccStore } from '../../src/mvcc/index.ts';
import { delReq, evStr, keys, kvStr, prefixEnd, putReq, rangeReq, s, throwsMessage } from './helpers.ts';

const get = (store: MvccStore, key: string) => store.range(rangeReq(key)).kvs[0] ?? null;

describe('put', () => {
  it('each put takes the next revision; create stays, version grows, header is the new revision', () => {
    const store = new MvccStore();
    const r1 = store.put(putReq('k', 'v1'));
    const r2 = store.put(putReq('k', 'v2'));
    assert.equal(r1.response.header.revision, 2);
    assert.equal(r2.response.header.revision, 3);
    assert.equal(kvStr(get(store, 'k')), 'k=v2@3(c2,v2,l0)');
    assert.equal(store.currentRevision, 3);
  });

  it('putting the same value again still writes a new revision', () => {
    const store = new MvccStore();
    store.put(putReq('k', 'v'));
    store.put(putReq('k', 'v'));
    assert.equal(kvStr(get(store, 'k')), 'k=v@3(c2,v2,l0)');
  });

  it('prevKv returns the value before the put, and nothing for a new key', () => {
    const store = new MvccStore();
    assert.equal(store.put(putReq('k', 'v1', { prevKv: true })).response.prevKv, null);
    const r = store.put(putReq('k', 'v2', { prevKv: true }));
    assert.equal(kvStr(r.response.prevKv), 'k=v1@2(c2,v1,l0)');
    assert.equal(store.put(putReq('k', 'v3')).response.prevKv, null);
  });

  it('returns one put event with prevKv filled for an update', () => {
    const store = new MvccStore();
    assert.deepEqual(store.put(putReq('k', 'v1')).events.map(evStr), ['PUT k=v1@2']);
    assert.deepEqual(store.put(putReq('k', 'v2')).events.map(evStr), ['PUT k=v2@3 prev=v1@2']);
  });

  it('accepts an empty value and binary keys and values', () => {
    const store = new MvccStore();
    const key = new Uint8Array([0, 1, 255]);
    store.put({ key, value: new Uint8Array([0, 0]), lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false });
    store.put(putReq('e', ''));
    assert.deepEqual([...store.range(rangeReq(key)).kvs[0].value], [0, 0]);
    assert.equal(get(store, 'e')?.value.length, 0);
  });

  it('copies the caller bytes: mutating the request later changes nothing', () => {
    const store = new MvccStore();
    const req = putReq('k', 'abc');
    store.put(req);
    req.key[0] = 'z'.charCodeAt(0);
    req.value[0] = 'z'.charCodeAt(0);
    assert.equal(kvStr(get(store, 'k')), 'k=abc@2(c2,v1,l0)');
  });

  it('ignoreValue keeps the value and ignoreLease keeps the lease', () => {
    const store = new MvccStore();
    store.leaseGrant(7, 60);
    store.put(putReq('k', 'v1', { lease: 7 }));
    store.put(putReq('k', '', { ignoreValue: true }));
    assert.equal(kvStr(get(store, 'k')), 'k=v1@3(c2,v2,l0)');
    store.put(putReq('k', 'v2', { lease: 7 }));
    store.put(putReq('k', 'v3', { ignoreLease: true }));
    assert.equal(kvStr(get(store, 'k')), 'k=v3@5(c2,v4,l7)');
  });

  it('ignore_* on a missing or deleted key is key not found, and writes nothing', () => {
    const store = new MvccStore();
    throwsMessage(() => store.put(putReq('k', '', { ignoreValue: true })), 'etcdserver: key not found');
    store.put(putReq('k', 'v'));
    store.deleteRange(delReq('k'));
    throwsMessage(() => store.put(putReq('k', 'x', { ignoreLease: true })), 'etcdserver: key not found');
    assert.equal(store.currentRevision, 3);
  });

  it('rejects conflicting flags and empty keys like etcd', () => {
    const store = new MvccStore();
    throwsMessage(() => store.put(putReq('', 'v')), 'etcdserver: key is not provided');
    throwsMessage(() => store.put(putReq('k', 'v', { ignoreValue: true })), 'etcdserver: value is provided');
    throwsMessage(() => store.put(putReq('k', '', { ignoreLease: true, lease: 5 })), 'etcdserver: lease is provided');
    assert.equal(store.currentRevision, 1);
  });
});

describe('deleteRange', () => {
  it('deletes one key at a new revision; version and create restart after a re-put', () => {
    const store = new MvccStore();
    store.put(putReq('k', 'v1'));
    store.put(putReq('k', 'v2'));
    const del = store.deleteRange(delReq('k'));
    assert.deepEqual([del.response.deleted, del.response.header.revision], [1, 4]);
    assert.equal(get(store, 'k'), null);
    store.put(putReq('k', 'v3'));
    assert.equal(kvStr(get(store, 'k')), 'k=v3@5(c5,v1,l0)');
  });

  it('deleting nothing does not change the revision', () => {
    const store = new MvccStore();
    store.put(putReq('a', '1'));
    const r = store.deleteRange(delReq('zz'));
    assert.deepEqual([r.response.deleted, r.response.header.revision, r.events.length], [0, 2, 0]);
    store.deleteRange(delReq('a'));
    assert.equal(store.deleteRange(delReq('a')).response.header.revision, 3); // already deleted
    assert.equal(store.currentRevision, 3);
  });

  it('deletes a range in one revision, with prevKvs and delete events in key order', () => {
    const store = new MvccStore();
    for (const k of ['a', 'b1', 'b2', 'b3', 'c']) store.put(putReq(k, `v${k}`));
    const r = store.deleteRange(delReq('b', { rangeEnd: prefixEnd('b'), prevKv: true }));
    assert.equal(r.response.deleted, 3);
    assert.equal(r.response.header.revision, 7);
    assert.deepEqual(keys(r.response.prevKvs), ['b1', 'b2', 'b3']);
    assert.deepEqual(r.events.map(evStr), ['DELETE b1@7 prev=vb1@3', 'DELETE b2@7 prev=vb2@4', 'DELETE b3@7 prev=vb3@5']);
    assert.deepEqual(keys(store.range(rangeReq('a', { rangeEnd: new Uint8Array([0]) })).kvs), ['a', 'c']);
  });

  it('without prevKv returns no prevKvs; "\\0" deletes to the end', () => {
    const store = new MvccStore();
    for (const k of ['a', 'b', 'c']) store.put(putReq(k, k));
    const r = store.deleteRange(delReq('b', { rangeEnd: new Uint8Array([0]) }));
    assert.deepEqual([r.response.deleted, r.response.prevKvs.length], [2, 0]);
    assert.deepEqual(keys(store.range(rangeReq('a', { rangeEnd: new Uint8Array([0]) })).kvs), ['a']);
  });

  it('delete event kv carries only key and mod revision (etcd tombstone)', () => {
    const store = new MvccStore();
    store.put(putReq('k', 'v'));
    const [ev] = store.deleteRange(delReq('k')).events;
    assert.deepEqual({ ...ev.kv, key: s(ev.kv.key), value: s(ev.kv.value) }, { key: 'k', value: '', createRevision: 0, modRevision: 3, version: 0, lease: 0 });
  });

  it('rejects an empty key', () => {
    throwsMessage(() => new MvccStore().deleteRange(delReq('')), 'etcdserver: key is not provided');
  });

  it('deleted keys stay readable at older revisions', () => {
    const store = new MvccStore();
    store.put(putReq('k', 'v'));
    store.deleteRange(delReq('k'));
    assert.equal(kvStr(store.range(rangeReq('k', { revision: 2 })).kvs[0]), 'k=v@2(c2,v1,l0)');
    assert.equal(store.range(rangeReq('k', { revision: 3 })).count, 0);
  });
});
