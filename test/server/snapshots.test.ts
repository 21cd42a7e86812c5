// The replica's snapshot image: format 2 round trips, format 1 still read, corruption refused, and
// a backup encoded across macrotasks describes the moment it started while writes go on.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Packr } from 'msgpackr';
import { MvccStore } from '../../src/mvcc/index.ts';
import { AuthStore } from '../../src/server/auth-store.ts';
import { backupChunks, decodeBackup } from '../../src/server/backup.ts';
import { buildSnapshotData, decodeSnapshotData, encodeSnapshotData, replaceMembers } from '../../src/server/snapshots.ts';
import type { ReplicatedState } from '../../src/server/snapshots.ts';
import { EtcdError, GrpcCode } from '../../src/util/index.ts';

const put = (store: MvccStore, key: string, value: string) =>
  store.put({ key: Buffer.from(key), value: Buffer.from(value), lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false });

function state(keys: number): ReplicatedState {
  const store = new MvccStore();
  for (let i = 0; i < keys; i++) put(store, `k/${String(i).padStart(6, '0')}`, `value ${i} `.repeat(20));
  return {
    store,
    alarms: new Set(['7:nospace']),
    members: new Map([[7, { id: 7, name: 'n7', peerUrls: ['http://127.0.0.1:7'], clientUrls: [] }]]),
    removed: new Set([3]),
    auth: new AuthStore(),
    leaseRenewedAt: new Map([[5, 42]]),
  };
}

/** Everything in the image, comparable. */
function observe(s: ReplicatedState) {
  const all = s.store.range({
    key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]), limit: 0, revision: 0, sortOrder: 'none', sortTarget: 'key',
    serializable: true, keysOnly: false, countOnly: false, minModRevision: 0, maxModRevision: 0, minCreateRevision: 0, maxCreateRevision: 0,
  });
  return {
    revision: all.header.revision,
    kvs: all.kvs.map((kv) => `${Buffer.from(kv.key)}=${Buffer.from(kv.value)}@${kv.modRevision}`),
    alarms: [...s.alarms],
    members: [...s.members.values()],
    removed: [...s.removed],
    leaseRenewedAt: [...s.leaseRenewedAt],
  };
}

const isDataLoss = (error: unknown) => error instanceof EtcdError && error.code === GrpcCode.DATA_LOSS;

describe('snapshot images', () => {
  it('format 2 round-trips, and format 1 images are still read', () => {
    const original = state(3_000);
    const data = encodeSnapshotData(original);
    assert.equal(Buffer.from(data.subarray(0, 4)).toString('latin1'), 'TSI2');
    assert.deepEqual(observe(decodeSnapshotData(data)), observe(original));

    const v1 = new Packr({ useRecords: false }).pack({
      version: 1,
      mvcc: [...original.store.snapshotChunks(1 << 20)],
      alarms: [...original.alarms],
      members: [...original.members.values()],
      removed: [...original.removed],
      auth: original.auth.image(),
      leaseRenewedAt: [...original.leaseRenewedAt],
    });
    assert.deepEqual(observe(decodeSnapshotData(v1)), observe(original));
    // A restore into a new cluster rewrites either format as format 2 with the new members.
    const members = [{ id: 9, name: 'n9', peerUrls: ['http://127.0.0.1:9'], clientUrls: [] }];
    for (const image of [data, v1]) {
      const replaced = decodeSnapshotData(replaceMembers(image, members));
      assert.deepEqual(observe(replaced), { ...observe(original), members, removed: [] });
    }
  });

  it('refuses truncated or damaged images with DATA_LOSS', () => {
    const data = encodeSnapshotData(state(2_000));
    assert.throws(() => decodeSnapshotData(data.subarray(0, data.length - 10)), isDataLoss);
    assert.throws(() => decodeSnapshotData(data.subarray(0, 6)), isDataLoss);
    const damaged = Buffer.from(data);
    damaged[damaged.length - 100] ^= 0x40; // inside the last MVCC chunk
    assert.throws(() => decodeSnapshotData(damaged), isDataLoss);
  });

  it('a backup built across macrotasks is the state when it started, whatever is written meanwhile', async () => {
    const live = state(20_000); // several chunks, so the build yields in between
    const expected = observe(state(20_000));
    const building = buildSnapshotData(live, () => live.store.currentRevision); // starts synchronously
    let writes = 0;
    let writing = true;
    const writer = (async () => {
      while (writing) {
        put(live.store, `k/${String((writes * 7919) % 20_000).padStart(6, '0')}`, `late ${writes}`);
        put(live.store, `a/${writes}`, 'new');
        live.alarms.add(`${writes}:corrupt`);
        writes++;
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    const { pieces, captured } = await building;
    const data = Buffer.concat(pieces);
    writing = false;
    await writer;
    assert.ok(writes >= 2, `only ${writes} writes ran during the build`);
    assert.equal(captured, expected.revision);
    assert.deepEqual(observe(decodeSnapshotData(data)), expected);
  });

  it('a backup streamed from the image pieces is the encodeBackup byte format, and decodes to the same backup', () => {
    const image = encodeSnapshotData(state(1_000));
    const pieces = [image.subarray(0, 1000), image.subarray(1000, 1000), image.subarray(1000)];
    const position = { index: 42, term: 7, confState: { voters: [1, 2, 3], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false } };
    const { size, chunks } = backupChunks(position, pieces);
    const streamed = Buffer.concat(chunks);
    assert.equal(streamed.length, size);
    const decoded = decodeBackup(streamed);
    assert.deepEqual({ ...decoded, data: Buffer.from(decoded.data) }, { ...position, data: Buffer.from(image) });
    // What earlier versions wrote (the whole object packed at once) is still read.
    const payload = new Packr({ useRecords: false }).pack({ ...position, data: image });
    const length = Buffer.alloc(4);
    length.writeUInt32BE(payload.length);
    const legacy = decodeBackup(Buffer.concat([Buffer.from('TESSERA-BACKUP-1'), length, payload]));
    assert.equal(legacy.index, 42);
    assert.deepEqual(Buffer.from(legacy.data), Buffer.from(image));
  });
});
