// Snapshot → restore round trips (exact state, including history, compaction and leases),
// chunking bounds, corruption detection, and hashKV agreement.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { crc32, deflateSync, inflateSync } from 'node:zlib';
import { pack, unpack } from 'msgpackr';
import { MIN_SNAPSHOT_CHUNK_BYTES, MvccStore, SnapshotInvalidatedError } from '../../src/mvcc/index.ts';
import { EtcdError, GrpcCode } from '../../src/util/index.ts';
import { b, delReq, evStr, kvStr, noise, opDel, opPut, putReq, rangeReq, txnReq, watchOpts } from './helpers.ts';

const all = { rangeEnd: new Uint8Array([0]) };

function busyStore(): MvccStore {
  const store = new MvccStore();
  store.leaseGrant(1, 60);
  store.leaseGrant(2, 30);
  store.leaseCheckpoint(2, 17);
  for (let i = 0; i < 40; i++) {
    store.put(putReq(`key/${i % 9}`, `value-${i}`, { lease: i % 3 === 0 ? 1 : 0 }));
    if (i % 7 === 6) store.deleteRange(delReq(`key/${(i + 2) % 9}`));
    if (i % 11 === 10) store.txn(txnReq([], [opPut(`t/${i}`, 'x'), opDel('key/1'), opPut('t/z', String(i))]));
  }
  store.put({ key: new Uint8Array([0, 255, 1]), value: new Uint8Array([9, 0, 9]), lease: 2, prevKv: false, ignoreValue: false, ignoreLease: false });
  return store;
}

/** Everything observable: reads at every held revision, a full watch replay, leases, hashes. */
function observe(store: MvccStore): string[] {
  const out = [`rev ${store.currentRevision} compacted ${store.compactedRevision} keys ${store.keyCount}`];
  const from = Math.max(1, store.compactedRevision);
  for (let rev = from; rev <= store.currentRevision; rev++) {
    out.push(`${rev}: ${store.range(rangeReq(new Uint8Array([0]), { ...all, revision: rev })).kvs.map(kvStr).join(' ')}`);
    // etcd's HashKV refuses the compacted revision itself
    if (rev > store.compactedRevision) out.push(`hash ${rev}: ${store.hashKV(rev).hash}`);
  }
  const events: string[] = [];
  const handle = store.watch(watchOpts('', { ...all, startRevision: from, prevKv: true }), (evs) => {
    events.push(...evs.map(evStr));
  });
  handle.cancel();
  out.push(`events: ${events.join(', ')}`);
  out.push(`leases: ${JSON.stringify(store.leases().leases)}`);
  for (const lease of store.leases().leases) out.push(`lease ${lease.id}: ${store.leaseTimeToLive(lease.id, true).keys.map((k) => [...k].join('.')).join(' ')}`);
  return out;
}

const roundTrip = (store: MvccStore, chunkBytes = 1 << 20) => MvccStore.restore(Array.from(store.snapshotChunks(chunkBytes)));

describe('snapshot and restore', () => {
  it('an empty store round-trips', () => {
    const copy = roundTrip(new MvccStore());
    assert.deepEqual(observe(copy), observe(new MvccStore()));
  });

  it('restores exactly: history, tombstones, txn event order, leases and attachments', () => {
    const store = busyStore();
    const copy = roundTrip(store);
    assert.deepEqual(observe(copy), observe(store));
    assert.equal(copy.hashKV(0).hash, store.hashKV(0).hash);
    // the two then evolve identically, lease revokes included
    for (const s of [store, copy]) {
      s.put(putReq('after', '1', { lease: 1 }));
      s.leaseRevoke(1);
    }
    assert.deepEqual(observe(copy), observe(store));
    copy.checkInvariants();
  });

  it('restores exactly after compaction, including a tombstone kept at the compacted revision', () => {
    const store = busyStore();
    store.put(putReq('gone', '1'));
    store.deleteRange(delReq('gone'));
    store.compact({ revision: store.currentRevision, physical: true });
    store.put(putReq('later', '1'));
    const copy = roundTrip(store);
    assert.equal(copy.compactedRevision, store.compactedRevision);
    assert.deepEqual(observe(copy), observe(store));
    assert.deepEqual(copy.hashKV(0), store.hashKV(0));
    // compacting both further keeps them equal
    store.compact({ revision: store.currentRevision, physical: true });
    copy.compact({ revision: copy.currentRevision, physical: true });
    assert.deepEqual(observe(copy), observe(store));
  });

  it('splits into independent chunks no larger than asked, except a single oversized version', () => {
    const store = busyStore();
    for (let i = 0; i < 200; i++) store.put(putReq(`bulk/${i}`, `${i}`.repeat(40)));
    store.put({ key: b('huge'), value: noise(3 * MIN_SNAPSHOT_CHUNK_BYTES, 7), lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false });
    const chunks = Array.from(store.snapshotChunks(MIN_SNAPSHOT_CHUNK_BYTES));
    assert.ok(chunks.length > 5, `got ${chunks.length} chunks`);
    const oversized = chunks.filter((chunk) => chunk.length > MIN_SNAPSHOT_CHUNK_BYTES);
    assert.equal(oversized.length, 1);
    // Each decodes alone: deflated, or (the incompressible huge value) stored with a CRC-32 after it.
    // Tagged msgpack arrays, or binary versions chunks (first byte 0x01).
    const body = (chunk: Uint8Array) => (chunk[0] === 0x78 ? inflateSync(chunk) : chunk.subarray(0, -4));
    for (const chunk of chunks) assert.ok(body(chunk)[0] === 0x01 || Array.isArray(unpack(body(chunk))));
    assert.ok(chunks.filter((chunk) => body(chunk)[0] === 0x01).length > 5, 'versions chunks are binary');
    assert.deepEqual(observe(MvccStore.restore(chunks)), observe(store));
  });

  it('stores chunks that do not compress as they are, checked by a CRC-32, and restores them', () => {
    const store = new MvccStore();
    for (let i = 0; i < 400; i++) store.put({ key: b(`rnd/${i}`), value: noise(256, i + 1), lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false });
    for (let i = 0; i < 400; i++) store.put(putReq(`txt/${i}`, 'compressible '.repeat(20)));
    const chunks = Array.from(store.snapshotChunks(MIN_SNAPSHOT_CHUNK_BYTES));
    const stored = chunks.filter((chunk) => chunk[0] !== 0x78);
    assert.ok(stored.length > 5, `${stored.length} of ${chunks.length} chunks stored uncompressed`);
    assert.ok(chunks.length - stored.length > 5, 'the compressible ones are still deflated');
    assert.deepEqual(observe(MvccStore.restore(chunks)), observe(store));
    const isDataLoss = (error: unknown) => error instanceof EtcdError && error.code === GrpcCode.DATA_LOSS;
    const at = chunks.indexOf(stored[1]);
    const flipped = chunks.map((chunk) => chunk.slice());
    flipped[at][flipped[at].length >> 1] ^= 0x01; // one bit in a stored chunk's body: the CRC catches it
    assert.throws(() => MvccStore.restore(flipped), isDataLoss);
  });

  it('deflates a compressible state from its first chunk on (the small header chunk does not count)', () => {
    const store = new MvccStore();
    for (let i = 0; i < 3000; i++) store.put(putReq(`txt/${String(i).padStart(5, '0')}`, 'compressible '.repeat(20)));
    const chunks = Array.from(store.snapshotChunks(64 * 1024));
    assert.ok(chunks.length > 10, `${chunks.length} chunks`);
    // The header and end chunks (a few bytes, deflate makes them no smaller) are stored; every versions chunk is deflated.
    assert.deepEqual(chunks.slice(1, -1).filter((chunk) => chunk[0] !== 0x78).length, 0, 'every versions chunk deflated');
    assert.deepEqual(observe(MvccStore.restore(chunks)), observe(store));
  });

  it('rejects chunk sizes below the minimum', () => {
    assert.throws(() => Array.from(new MvccStore().snapshotChunks(100)), EtcdError);
  });

  it('chunks read lazily describe the store as it was when reading began, whatever is applied meanwhile', () => {
    const build = () => {
      const store = busyStore();
      for (let i = 0; i < 300; i++) store.put(putReq(`bulk/${String(i).padStart(3, '0')}`, `v${i}`.repeat(30), { lease: i % 5 === 0 ? 2 : 0 }));
      return store;
    };
    const store = build();
    const expected = observe(build());
    const iterator = store.snapshotChunks(MIN_SNAPSHOT_CHUNK_BYTES)[Symbol.iterator]();
    const chunks: Uint8Array[] = [];
    let step = 0;
    for (let next = iterator.next(); !next.done; next = iterator.next()) {
      chunks.push(next.value);
      // Between chunks: overwrites, new keys before and after the walk, deletes, txns, leases.
      step += 1;
      store.put(putReq(`bulk/${String((step * 37) % 300).padStart(3, '0')}`, `late ${step}`));
      store.put(putReq(`a/new/${step}`, 'behind the walk'));
      store.put(putReq(`zz/new/${step}`, 'ahead of the walk'));
      store.deleteRange(delReq(`bulk/${String((step * 53) % 300).padStart(3, '0')}`));
      store.txn(txnReq([], [opPut(`key/${step % 9}`, 'txn'), opDel(`t/z`)]));
      if (step === 2) store.leaseRevoke(2);
      if (step === 3) store.leaseGrant(9, 10);
    }
    assert.ok(step > 5, `only ${step} chunks`);
    assert.deepEqual(observe(MvccStore.restore(chunks)), expected);
  });

  it('a compaction while chunks are read invalidates them', () => {
    const store = busyStore();
    for (let i = 0; i < 300; i++) store.put(putReq(`bulk/${i}`, `v${i}`.repeat(30)));
    const iterator = store.snapshotChunks(MIN_SNAPSHOT_CHUNK_BYTES)[Symbol.iterator]();
    iterator.next();
    store.put(putReq('x', 'y'));
    iterator.next(); // writes alone are fine
    store.compact({ revision: store.currentRevision - 5, physical: true });
    assert.throws(() => iterator.next(), SnapshotInvalidatedError);
  });

  it('detects corrupt, truncated and extended snapshots', () => {
    const chunks = Array.from(busyStore().snapshotChunks(MIN_SNAPSHOT_CHUNK_BYTES));
    const isDataLoss = (error: unknown) => error instanceof EtcdError && error.code === GrpcCode.DATA_LOSS;
    assert.throws(() => MvccStore.restore(chunks.slice(0, -1)), isDataLoss);
    assert.throws(() => MvccStore.restore(chunks.slice(1)), isDataLoss);
    assert.throws(() => MvccStore.restore([...chunks.slice(0, 1), ...chunks.slice(2)]), isDataLoss);
    assert.throws(() => MvccStore.restore([...chunks, chunks[1]]), isDataLoss);
    const flipped = chunks.map((chunk) => chunk.slice());
    flipped[1][flipped[1].length >> 1] ^= 0x55;
    assert.throws(() => MvccStore.restore(flipped), isDataLoss);
    assert.throws(() => MvccStore.restore([]), isDataLoss);
  });
});

describe('snapshot format', () => {
  const chunk = (items: unknown[]) => new Uint8Array(deflateSync(pack(items)));
  const header = chunk(['header', 1, 3, 0, 1]);
  const versions = (lease: number) => chunk(['versions', b('k'), 2, 2, 1, 0, b('v1'), 0, null, 3, 2, 2, lease, b('v2'), 0]);
  // Format 3's binary versions chunk, written by hand from the format comment in mvcc/snapshot.ts.
  interface HandVersion { key?: string; mod: number; create: number; version: number; value: string; lease?: number; sub?: number }
  const uvarint = (value: number): number[] => {
    const out: number[] = [];
    for (let rest = value; ; rest = Math.floor(rest / 128)) {
      if (rest < 128) return [...out, rest];
      out.push((rest % 128) | 128);
    }
  };
  const version = (v: HandVersion): number[] => {
    const lease = v.lease ?? 0;
    const sub = v.sub ?? 0;
    const flags = (v.key !== undefined ? 1 : 0) | (lease !== 0 ? 2 : 0) | (lease < 0 ? 4 : 0) | (sub !== 0 ? 8 : 0);
    const bytes = [flags];
    if (v.key !== undefined) bytes.push(...uvarint(v.key.length), ...b(v.key));
    bytes.push(...uvarint(v.mod), ...uvarint(v.create), ...uvarint(v.version));
    if (lease !== 0) bytes.push(...uvarint(Math.abs(lease)));
    if (sub !== 0) bytes.push(...uvarint(sub));
    bytes.push(...uvarint(v.value.length), ...b(v.value));
    return bytes;
  };
  const binaryBody = (records: number[][]) => Buffer.from([0x01, ...records.flat()]);
  const stored = (body: Uint8Array) => {
    const out = Buffer.alloc(body.length + 4);
    out.set(body);
    out.writeUInt32BE(crc32(body), body.length);
    return new Uint8Array(out);
  };
  const binaryChunk = (records: number[][]) => stored(binaryBody(records));
  const binaryVersions = (lease: number) =>
    binaryChunk([version({ key: 'k', mod: 2, create: 2, version: 1, value: 'v1' }), version({ mod: 3, create: 2, version: 2, value: 'v2', lease })]);

  it('decodes a hand-written format 3 snapshot: binary versions, signed leases, sub-revisions, large numbers', () => {
    const store = MvccStore.restore([chunk(['header', 3, 3, -1, 1]), chunk(['leases', 5, 10, 0]), binaryVersions(5), chunk(['end', 1, 2, 1])]);
    assert.equal(kvStr(store.range(rangeReq('k')).kvs[0]), 'k=v2@3(c2,v2,l5)');
    assert.equal(kvStr(store.range(rangeReq('k', { revision: 2 })).kvs[0]), 'k=v1@2(c2,v1,l0)');
    assert.deepEqual(store.leaseTimeToLive(5, true).keys, [b('k')]);
    store.checkInvariants();
    // A key spanning two chunks, sub-revisions, a negative lease: the decoder reads what was written.
    const big = 2 ** 53 - 1;
    const spans = [
      binaryChunk([version({ key: 'a', mod: 2, create: 2, version: 1, value: '1' }), version({ key: 'b', mod: 2, create: 2, version: 1, value: '2', sub: 1 })]),
      binaryChunk([version({ key: 'b', mod: 3, create: 2, version: 2, value: '3', lease: -7 })]),
    ];
    const restored = MvccStore.restore([chunk(['header', 3, 3, -1, 1]), chunk(['leases', -7, 10, 0]), ...spans, chunk(['end', 2, 3, 1])]);
    assert.deepEqual(restored.range(rangeReq(new Uint8Array([0]), all)).kvs.map(kvStr), ['a=1@2(c2,v1,l0)', 'b=3@3(c2,v2,l-7)']);
    // varints up to 2^53 - 1 decode exactly (the store then refuses the revision log, not the number)
    const huge = binaryChunk([version({ key: 'k', mod: big, create: big, version: 1, value: 'x' })]);
    assert.throws(() => MvccStore.restore([chunk(['header', 3, big, -1, big]), huge, chunk(['end', 1, 1, 0])]), /inconsistent state/);
  });

  it('rejects malformed binary versions chunks', () => {
    const isDataLoss = (error: unknown) => error instanceof EtcdError && error.code === GrpcCode.DATA_LOSS;
    const restoreWith = (versionsChunk: Uint8Array) => MvccStore.restore([chunk(['header', 3, 3, -1, 1]), versionsChunk, chunk(['end', 1, 2, 0])]);
    assert.equal(restoreWith(binaryVersions(0)).keyCount, 1);
    const good = binaryBody([version({ key: 'k', mod: 2, create: 2, version: 1, value: 'v1' }), version({ mod: 3, create: 2, version: 2, value: 'v2' })]);
    for (let cut = 2; cut < good.length; cut++) {
      assert.throws(() => restoreWith(stored(good.subarray(0, cut))), isDataLoss, `cut at ${cut}`);
    }
    const tooLong = Buffer.from([0x01, 1, 1, 0x6b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 2, 1, 1, 0x76]);
    assert.throws(() => restoreWith(stored(tooLong)), /varint longer than 8 bytes/);
    const beyondSafe = Buffer.from([0x01, 1, 1, 0x6b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 2, 1, 0, 1, 0x76]);
    assert.throws(() => restoreWith(stored(beyondSafe)), /beyond the safe integers/);
    assert.throws(() => restoreWith(stored(Buffer.from([0x01, 0x10]))), /bad version flags/);
    assert.throws(() => restoreWith(stored(Buffer.from([0x01, 0x05, 1, 0x6b, 2, 2, 1, 0, 1, 0x76]))), /bad version flags/, 'negative without a lease');
    assert.throws(() => restoreWith(stored(Buffer.from([0x01, 0x00, 2, 2, 1, 1, 0x76]))), /version without a key/);
    assert.throws(() => restoreWith(stored(Buffer.from([0x01, 0x01, 0, 2, 2, 1, 1, 0x76]))), /bad key/);
    assert.throws(() => restoreWith(stored(Buffer.from([0x01, 0x03, 1, 0x6b, 2, 2, 1, 0, 1, 0x76]))), /lease flag with lease 0/);
  });

  it('decodes a hand-written snapshot (the documented format)', () => {
    const store = MvccStore.restore([header, chunk(['leases', 5, 10, 0]), versions(5), chunk(['end', 1, 2, 1])]);
    assert.equal(kvStr(store.range(rangeReq('k')).kvs[0]), 'k=v2@3(c2,v2,l5)');
    assert.equal(kvStr(store.range(rangeReq('k', { revision: 2 })).kvs[0]), 'k=v1@2(c2,v1,l0)');
    assert.deepEqual(store.leaseTimeToLive(5, true).keys, [b('k')]);
    store.checkInvariants();
  });

  it('rejects states that no store could have produced', () => {
    const isDataLoss = (error: unknown) => error instanceof EtcdError && error.code === GrpcCode.DATA_LOSS;
    // a key attached to a lease that does not exist
    assert.throws(() => MvccStore.restore([header, versions(5), chunk(['end', 1, 2, 0])]), isDataLoss);
    // a version chain that skips a version number
    const broken = chunk(['versions', b('k'), 2, 2, 1, 0, b('v1'), 0, null, 3, 2, 5, 0, b('v2'), 0]);
    assert.throws(() => MvccStore.restore([header, broken, chunk(['end', 1, 2, 0])]), isDataLoss);
    // a revision with no changes in the log
    assert.throws(() => MvccStore.restore([chunk(['header', 1, 4, 0, 1]), versions(0), chunk(['end', 1, 2, 0])]), isDataLoss);
    // an unknown format version
    assert.throws(() => MvccStore.restore([chunk(['header', 4, 3, 0, 1]), versions(0), chunk(['end', 1, 2, 0])]), isDataLoss);
    // msgpack versions in a format 3 snapshot, binary ones in a format 2 snapshot
    assert.throws(() => MvccStore.restore([chunk(['header', 3, 3, -1, 1]), versions(0), chunk(['end', 1, 2, 0])]), isDataLoss);
    assert.throws(() => MvccStore.restore([chunk(['header', 2, 3, -1, 1]), binaryVersions(0), chunk(['end', 1, 2, 0])]), isDataLoss);
    // a compacted revision below -1
    assert.throws(() => MvccStore.restore([chunk(['header', 2, 3, -2, 1]), versions(0), chunk(['end', 1, 2, 0])]), isDataLoss);
    // the revision log: a version above the current revision, two writes at one sub-revision, a
    // gap in the sub-revisions of a revision that was not compacted
    const twoKeys = (subA: number, subB: number) =>
      chunk(['versions', b('a'), 2, 2, 1, 0, b('1'), subA, b('b'), 2, 2, 1, 0, b('2'), subB]);
    assert.throws(() => MvccStore.restore([chunk(['header', 2, 2, -1, 1]), versions(0), chunk(['end', 1, 2, 0])]), isDataLoss);
    assert.throws(() => MvccStore.restore([chunk(['header', 2, 2, -1, 1]), twoKeys(0, 0), chunk(['end', 2, 2, 0])]), isDataLoss);
    assert.throws(() => MvccStore.restore([chunk(['header', 2, 2, -1, 1]), twoKeys(0, 2), chunk(['end', 2, 2, 0])]), isDataLoss);
    assert.equal(MvccStore.restore([chunk(['header', 2, 2, -1, 1]), twoKeys(1, 0), chunk(['end', 2, 2, 0])]).keyCount, 2, 'subs 1, 0 are fine');
    // at the compacted revision a gap is what compaction leaves: b's write 0 there was dropped
    const compactedGap = MvccStore.restore([chunk(['header', 2, 2, 2, 2]), twoKeys(1, 2), chunk(['end', 2, 2, 0])]);
    const events: string[] = [];
    compactedGap.watch(watchOpts('', { ...all, startRevision: 2 }), (evs) => void events.push(...evs.map(evStr))).cancel();
    assert.deepEqual(events, ['PUT a=1@2', 'PUT b=2@2']);
  });

  it('reads format 1, where compacted revision 0 meant never compacted; format 2 keeps -1 and 0 apart', () => {
    const restored = (format: number, compacted: number) =>
      MvccStore.restore([chunk(['header', format, 3, compacted, 1]), versions(0), chunk(['end', 1, 2, 0])]).compactedRevision;
    assert.equal(restored(1, 0), -1);
    assert.equal(restored(2, -1), -1);
    assert.equal(restored(2, 0), 0, 'compact(0) happened');
    const store = new MvccStore();
    store.compact({ revision: 0, physical: false });
    assert.equal(MvccStore.restore(Array.from(store.snapshotChunks(MIN_SNAPSHOT_CHUNK_BYTES))).compactedRevision, 0);
  });
});

describe('hashKV', () => {
  it('is equal for stores that applied the same writes, and changes with any write', () => {
    const a = busyStore();
    const c = busyStore();
    assert.deepEqual(a.hashKV(0), c.hashKV(0));
    const before = a.hashKV(0).hash;
    a.put(putReq('key/1', 'changed'));
    assert.notEqual(a.hashKV(0).hash, before);
    c.put(putReq('key/1', 'different'));
    assert.notEqual(a.hashKV(0).hash, c.hashKV(0).hash);
  });

  it('at a past revision equals the hash of a replica that stopped there', () => {
    const ahead = busyStore();
    const behind = busyStore();
    const rev = behind.currentRevision;
    ahead.put(putReq('more', '1'));
    ahead.deleteRange(delReq('key/3'));
    assert.equal(ahead.hashKV(rev).hash, behind.hashKV(0).hash);
    // -1: never compacted (etcd's compactMainRev)
    assert.deepEqual([ahead.hashKV(rev).revision, ahead.hashKV(rev).compactRevision], [ahead.currentRevision, -1]);
  });

  it('fails for future and compacted revisions, the compacted revision itself included (etcd HashByRev)', () => {
    const store = busyStore();
    store.compact({ revision: 10, physical: false });
    assert.throws(() => store.hashKV(store.currentRevision + 1), /future revision/);
    assert.throws(() => store.hashKV(9), /compacted/);
    assert.throws(() => store.hashKV(10), /compacted/);
    assert.doesNotThrow(() => store.hashKV(11));
    assert.equal(store.hashKV(0).compactRevision, 10);
    assert.equal(store.hashKV(-1).revision, store.currentRevision);
  });
});
