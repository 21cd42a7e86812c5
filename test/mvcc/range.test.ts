// Range: every RangeRequest option, against etcd 3.4's documented and observed behaviour.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MvccStore, prefixEnd as keyPrefixEnd } from '../../src/mvcc/index.ts';
import { EtcdError } from '../../src/util/index.ts';
import { b, keys, kvStr, prefixEnd, putReq, rangeReq, s, throwsMessage, delReq } from './helpers.ts';

/** a=1@2 b=2@3 c=3@4 ab=4@5 then b=22@6 (version 2); ZERO byte key at 7. */
function seeded(): MvccStore {
  const store = new MvccStore();
  store.put(putReq('a', '1'));
  store.put(putReq('b', '2'));
  store.put(putReq('c', '3'));
  store.put(putReq('ab', '4'));
  store.put(putReq('b', '22'));
  return store;
}

describe('prefixEnd (clientv3.GetPrefixRangeEnd)', () => {
  it('increments the last byte below 0xff and drops what follows; all 0xff means to the end', () => {
    const end = (bytes: number[]) => [...keyPrefixEnd(new Uint8Array(bytes))];
    assert.deepEqual(end([0x61, 0x62]), [0x61, 0x63]);
    assert.deepEqual(end([0x61, 0xff]), [0x62]);
    assert.deepEqual(end([0x61, 0xfe, 0xff, 0xff]), [0x61, 0xff]);
    assert.deepEqual(end([0xff, 0xff]), [0]);
    assert.deepEqual(end([]), [0]);
    const prefix = new Uint8Array([1, 2]);
    keyPrefixEnd(prefix);
    assert.deepEqual([...prefix], [1, 2], 'the prefix itself is not changed');
  });
});

describe('range: key and range_end', () => {
  it('an empty store is at revision 1 and finds nothing', () => {
    const store = new MvccStore();
    assert.equal(store.currentRevision, 1);
    const r = store.range(rangeReq('a'));
    assert.deepEqual([r.header.revision, r.kvs.length, r.count, r.more], [1, 0, 0, false]);
  });

  it('empty range_end reads the single key', () => {
    const r = seeded().range(rangeReq('a'));
    assert.deepEqual(r.kvs.map(kvStr), ['a=1@2(c2,v1,l0)']);
    assert.equal(r.count, 1);
    assert.equal(r.header.revision, 6);
  });

  it('range_end is exclusive and byte-ordered', () => {
    const r = seeded().range(rangeReq('a', { rangeEnd: b('c') }));
    assert.deepEqual(keys(r.kvs), ['a', 'ab', 'b']);
    assert.equal(r.count, 3);
  });

  it('range_end "\\0" means every key >= key', () => {
    const r = seeded().range(rangeReq('ab', { rangeEnd: new Uint8Array([0]) }));
    assert.deepEqual(keys(r.kvs), ['ab', 'b', 'c']);
  });

  it('key "\\0" with range_end "\\0" is the whole keyspace', () => {
    const r = seeded().range(rangeReq(new Uint8Array([0]), { rangeEnd: new Uint8Array([0]) }));
    assert.deepEqual(keys(r.kvs), ['a', 'ab', 'b', 'c']);
  });

  it('prefix ranges use key+1 as range_end', () => {
    const r = seeded().range(rangeReq('a', { rangeEnd: prefixEnd('a') }));
    assert.deepEqual(keys(r.kvs), ['a', 'ab']);
  });

  it('range_end <= key is an empty range', () => {
    const store = seeded();
    assert.equal(store.range(rangeReq('c', { rangeEnd: b('a') })).count, 0);
    assert.equal(store.range(rangeReq('b', { rangeEnd: b('b') })).count, 0);
  });

  it('orders keys byte-wise, not by UTF-16 or locale', () => {
    const store = new MvccStore();
    const raw = [new Uint8Array([0xff]), new Uint8Array([0x7f]), new Uint8Array([0x80, 0x01]), new Uint8Array([0x01]), new Uint8Array([0x01, 0x00])];
    for (const key of raw) store.put({ key, value: b('v'), lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false });
    const r = store.range(rangeReq(new Uint8Array([0]), { rangeEnd: new Uint8Array([0]) }));
    assert.deepEqual(
      r.kvs.map((kv) => [...kv.key]),
      [[0x01], [0x01, 0x00], [0x7f], [0x80, 0x01], [0xff]],
    );
  });

  it('rejects an empty key', () => {
    throwsMessage(() => seeded().range(rangeReq('')), 'etcdserver: key is not provided');
  });

  it('rejects unknown sort options and non-integer numbers', () => {
    throwsMessage(() => seeded().range(rangeReq('a', { sortOrder: 'sideways' as never })), 'etcdserver: invalid sort option');
    assert.throws(() => seeded().range(rangeReq('a', { limit: 1.5 })), EtcdError);
    assert.throws(() => seeded().range(rangeReq('a', { revision: 2 ** 60 })), EtcdError);
  });
});

describe('range: limit, count, more', () => {
  it('count is the total in range, ignoring limit; more says something was cut', () => {
    const r = seeded().range(rangeReq('a', { rangeEnd: new Uint8Array([0]), limit: 2 }));
    assert.deepEqual(keys(r.kvs), ['a', 'ab']);
    assert.equal(r.count, 4);
    assert.equal(r.more, true);
  });

  it('limit equal to the total sets no more', () => {
    const r = seeded().range(rangeReq('a', { rangeEnd: new Uint8Array([0]), limit: 4 }));
    assert.equal(r.kvs.length, 4);
    assert.equal(r.more, false);
  });

  it('limit 0 and negative limits mean no limit', () => {
    const store = seeded();
    assert.equal(store.range(rangeReq('a', { rangeEnd: new Uint8Array([0]), limit: 0 })).kvs.length, 4);
    assert.equal(store.range(rangeReq('a', { rangeEnd: new Uint8Array([0]), limit: -3 })).kvs.length, 4);
  });

  it('countOnly returns the count and no kvs', () => {
    const r = seeded().range(rangeReq('a', { rangeEnd: new Uint8Array([0]), countOnly: true, limit: 1 }));
    assert.deepEqual([r.kvs.length, r.count, r.more], [0, 4, false]);
  });

  it('keysOnly blanks values but keeps the metadata', () => {
    const r = seeded().range(rangeReq('b', { keysOnly: true }));
    assert.deepEqual(r.kvs.map(kvStr), ['b=@6(c3,v2,l0)']);
    // the stored value is untouched
    assert.equal(s(seeded().range(rangeReq('b')).kvs[0].value), '22');
  });
});

describe('range: sort', () => {
  const all = { rangeEnd: new Uint8Array([0]) };

  it('none/key and ascend/key keep key order; descend/key reverses it', () => {
    const store = seeded();
    assert.deepEqual(keys(store.range(rangeReq('a', { ...all })).kvs), ['a', 'ab', 'b', 'c']);
    assert.deepEqual(keys(store.range(rangeReq('a', { ...all, sortOrder: 'ascend' })).kvs), ['a', 'ab', 'b', 'c']);
    assert.deepEqual(keys(store.range(rangeReq('a', { ...all, sortOrder: 'descend' })).kvs), ['c', 'b', 'ab', 'a']);
  });

  it('sorts by mod, create, version and value in both directions', () => {
    const store = seeded();
    const by = (sortTarget: 'mod' | 'create' | 'version' | 'value', sortOrder: 'ascend' | 'descend') =>
      keys(store.range(rangeReq('a', { ...all, sortTarget, sortOrder })).kvs);
    assert.deepEqual(by('mod', 'ascend'), ['a', 'c', 'ab', 'b']);
    assert.deepEqual(by('mod', 'descend'), ['b', 'ab', 'c', 'a']);
    assert.deepEqual(by('create', 'ascend'), ['a', 'b', 'c', 'ab']);
    assert.deepEqual(by('create', 'descend'), ['ab', 'c', 'b', 'a']);
    assert.deepEqual(by('value', 'ascend'), ['a', 'b', 'c', 'ab']); // "1" < "22" < "3" < "4"
    assert.deepEqual(by('value', 'descend'), ['ab', 'c', 'b', 'a']);
    // ties (version 1) keep ascending key order in both directions
    assert.deepEqual(by('version', 'ascend'), ['a', 'ab', 'c', 'b']);
    assert.deepEqual(by('version', 'descend'), ['b', 'a', 'ab', 'c']);
  });

  it('sortOrder none with a non-key target sorts ascending', () => {
    const r = seeded().range(rangeReq('a', { ...all, sortTarget: 'mod' }));
    assert.deepEqual(keys(r.kvs), ['a', 'c', 'ab', 'b']);
  });

  it('sorting fetches everything before applying limit', () => {
    const r = seeded().range(rangeReq('a', { ...all, sortTarget: 'mod', sortOrder: 'descend', limit: 2 }));
    assert.deepEqual(keys(r.kvs), ['b', 'ab']);
    assert.deepEqual([r.count, r.more], [4, true]);
  });

  it('sortOrder none with a non-key target limits first, then sorts (etcd quirk)', () => {
    // etcd fetches limit+1 keys in key order (a, ab, b), sorts them by mod, then cuts to limit.
    const r = seeded().range(rangeReq('a', { ...all, sortTarget: 'mod', limit: 2 }));
    assert.deepEqual(keys(r.kvs), ['a', 'ab']);
    assert.equal(r.more, true);
  });

  it('keysOnly still sorts by value', () => {
    const r = seeded().range(rangeReq('a', { ...all, sortTarget: 'value', sortOrder: 'descend', keysOnly: true }));
    assert.deepEqual(keys(r.kvs), ['ab', 'c', 'b', 'a']);
    assert.ok(r.kvs.every((kv) => kv.value.length === 0));
  });
});

describe('range: revision filters', () => {
  const all = { rangeEnd: new Uint8Array([0]) };

  it('min/max mod and create revision prune results but not count', () => {
    const store = seeded();
    const r = store.range(rangeReq('a', { ...all, minModRevision: 4 }));
    assert.deepEqual(keys(r.kvs), ['ab', 'b', 'c']);
    assert.equal(r.count, 4);
    assert.deepEqual(keys(store.range(rangeReq('a', { ...all, maxModRevision: 4 })).kvs), ['a', 'c']);
    assert.deepEqual(keys(store.range(rangeReq('a', { ...all, minCreateRevision: 4 })).kvs), ['ab', 'c']);
    assert.deepEqual(keys(store.range(rangeReq('a', { ...all, maxCreateRevision: 3 })).kvs), ['a', 'b']);
    assert.deepEqual(keys(store.range(rangeReq('a', { ...all, minModRevision: 3, maxModRevision: 5 })).kvs), ['ab', 'c']);
  });

  it('filters apply before limit, so more reflects filtered results', () => {
    const r = seeded().range(rangeReq('a', { ...all, minCreateRevision: 3, limit: 2 }));
    assert.deepEqual(keys(r.kvs), ['ab', 'b']);
    assert.deepEqual([r.count, r.more], [4, true]);
    const r2 = seeded().range(rangeReq('a', { ...all, minCreateRevision: 4, limit: 2 }));
    assert.deepEqual([keys(r2.kvs), r2.more], [['ab', 'c'], false]);
  });
});

describe('range: reads at a revision', () => {
  it('reads the state as of any past revision; header is the current revision', () => {
    const store = seeded();
    store.deleteRange(delReq('a'));
    const at = (revision: number) => store.range(rangeReq('a', { rangeEnd: new Uint8Array([0]), revision }));
    assert.deepEqual(at(1).kvs, []);
    assert.deepEqual(keys(at(2).kvs), ['a']);
    assert.deepEqual(at(5).kvs.map(kvStr), ['a=1@2(c2,v1,l0)', 'ab=4@5(c5,v1,l0)', 'b=2@3(c3,v1,l0)', 'c=3@4(c4,v1,l0)']);
    assert.deepEqual(keys(at(7).kvs), ['ab', 'b', 'c']);
    assert.equal(at(2).header.revision, 7);
    assert.equal(at(5).count, 4);
  });

  it('a revision above the current one is a future revision', () => {
    const store = seeded();
    assert.doesNotThrow(() => store.range(rangeReq('a', { revision: 6 })));
    throwsMessage(() => store.range(rangeReq('a', { revision: 7 })), 'etcdserver: mvcc: required revision is a future revision');
  });

  it('a revision below the compaction is compacted; the compaction revision itself is readable', () => {
    const store = seeded();
    store.compact({ revision: 4, physical: true });
    throwsMessage(() => store.range(rangeReq('a', { revision: 3 })), 'etcdserver: mvcc: required revision has been compacted');
    assert.deepEqual(keys(store.range(rangeReq('a', { rangeEnd: new Uint8Array([0]), revision: 4 })).kvs), ['a', 'b', 'c']);
    assert.equal(store.range(rangeReq('b', { revision: 4 })).kvs[0].version, 1);
  });
});
