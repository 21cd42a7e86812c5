// The write-ahead log on real files: recovery after a crash (the data directory copied while a node
// had commits only the log held), torn tails, gaps, corruption, segment release, format upgrade.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, cpSync, openSync, readdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { open } from 'lmdb';
import { NodeStorage, StorageCorruptionError } from '../../src/storage/index.ts';
import { WAL_HEADER_BYTES as HEADER_BYTES } from '../../src/storage/wal.ts';
import { entry, withStorage, withTempDir } from './support.ts';

/** LMDB gets nothing on its own during a test: only the log holds the commits (in 64 KiB segments, quick to copy). */
const SEGMENT_BYTES = 64 * 1024;
const LOG_ONLY = { lmdbFlushIntervalMs: 3_600_000, lmdbFlushBytes: 2 ** 40, walSegmentBytes: SEGMENT_BYTES };

function segments(dir: string): string[] {
  return readdirSync(join(dir, 'wal'))
    .filter((name) => name.endsWith('.wal'))
    .sort()
    .map((name) => join(dir, 'wal', name));
}

/** Commits batch `b` (0, 1, ...): entries 3b+1..3b+3 of group 1, the hard state, and `progress` b+1. */
async function commitBatch(storage: NodeStorage, b: number): Promise<void> {
  const group = storage.group(1);
  group.append([entry(3 * b + 1, 1, 100), entry(3 * b + 2, 1, 100), entry(3 * b + 3, 1, 100)]);
  group.setHardState({ term: 1, vote: 1, commit: 3 * b + 3 });
  storage.putMeta('progress', b + 1);
  await storage.commit();
}

/**
 * Commits `batches` batches to a node whose LMDB receives nothing, copies its data directory to
 * `crashed` (the disk as a crash would leave it: the log durable, LMDB behind), then closes the node.
 */
async function commitAndCrash(batches: number, crashed: string, limits: object = {}): Promise<void> {
  await withTempDir((dir) =>
    withStorage(
      dir,
      async (storage) => {
        for (let b = 0; b < batches; b++) await commitBatch(storage, b);
        assert.equal(storage.stats().commitsAheadOfLmdb, batches);
        cpSync(dir, crashed, { recursive: true });
      },
      { limits: { ...LOG_ONLY, ...limits } },
    ),
  );
}

/** The records of a segment file, as byte ranges (up to a zero-filled segment's unwritten room). */
function records(path: string): Buffer[] {
  const data = readFileSync(path);
  const out: Buffer[] = [];
  for (let at = 0; at < data.byteLength && data.readUInt32BE(at) + data.readUInt32BE(at + 4) > 0; ) {
    const end = at + HEADER_BYTES + data.readUInt32BE(at);
    out.push(data.subarray(at, end));
    at = end;
  }
  return out;
}

/** Writes `bytes` into the file at `path` at byte `at` (over what is there, as the log writes into a segment's room). */
function writeAt(path: string, at: number, bytes: Buffer): void {
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, bytes, 0, bytes.byteLength, at);
  } finally {
    closeSync(fd);
  }
}

/** What commitBatch wrote for batches 0..batches-1 is all there, and nothing more. */
async function expectBatches(dir: string, batches: number): Promise<void> {
  await withStorage(dir, (storage) => {
    const group = storage.group(1);
    assert.equal(group.lastIndex(), 3 * batches);
    assert.equal(storage.getMeta('progress'), batches === 0 ? undefined : batches);
    assert.deepEqual(group.initialState().hardState, batches === 0 ? { term: 0, vote: 0, commit: 0 } : { term: 1, vote: 1, commit: 3 * batches });
    if (batches > 0) assert.deepEqual(group.entries(1, 3 * batches + 1, Infinity), Array.from({ length: 3 * batches }, (_, i) => entry(i + 1, 1, 100)));
  });
}

describe('write-ahead log', () => {
  it('replays the commits LMDB lacks after a crash, then starts an empty log', () =>
    withTempDir(async (dir) => {
      await commitAndCrash(5, dir);
      assert.equal(segments(dir).length, 1);
      await withStorage(dir, (storage) => {
        assert.deepEqual(storage.recovery, { replayedCommits: 5, tornBytes: 0 });
        assert.equal(storage.group(1).lastIndex(), 15);
        assert.equal(storage.getMeta('progress'), 5);
        // Replayed into LMDB at open: the old segment is gone, the new one holds no record.
        assert.equal(storage.stats().walBytes, 0);
        assert.deepEqual(segments(dir).map((p) => records(p).length), [0]);
      });
      await expectBatches(dir, 5);
    }));

  it('ignores a record a crash cut short at the end of the log', async () => {
    await withTempDir(async (dir) => {
      await commitAndCrash(4, dir);
      const [segment] = segments(dir);
      assert.equal(records(segment).length, 4);
      // A fifth record whose write was cut off: a header promising 500 bytes, 20 of them written.
      const torn = Buffer.alloc(HEADER_BYTES + 20, 7);
      torn.writeUInt32BE(500, 0);
      writeAt(segment, records(segment).reduce((sum, r) => sum + r.byteLength, 0), torn);
      await withStorage(dir, (reopened) => assert.deepEqual(reopened.recovery, { replayedCommits: 4, tornBytes: HEADER_BYTES + 20 }));
      await expectBatches(dir, 4);
    });
    // And a last record with a flipped byte: its checksum fails, the three before it stand.
    await withTempDir(async (dir) => {
      await commitAndCrash(4, dir);
      const [segment] = segments(dir);
      const data = readFileSync(segment);
      const end = records(segment).reduce((sum, r) => sum + r.byteLength, 0);
      data[end - 5] ^= 0xff;
      writeFileSync(segment, data);
      await expectBatches(dir, 3);
    });
  });

  it('stops at a gap: nothing after a batch that never became durable was acknowledged', () =>
    withTempDir(async (dir) => {
      await commitAndCrash(4, dir);
      const [segment] = segments(dir);
      const [r1, , r3, r4] = records(segment);
      writeFileSync(segment, Buffer.concat([r1, r3, r4]));
      await expectBatches(dir, 1);
    }));

  it('refuses a damaged record that has good records in a later segment after it', () =>
    withTempDir(async (dir) => {
      await commitAndCrash(4, dir, { walSegmentBytes: 1 }); // every write starts a new segment
      const paths = segments(dir);
      assert.equal(paths.length, 4);
      const data = readFileSync(paths[1]);
      data[HEADER_BYTES + 3] ^= 0xff;
      writeFileSync(paths[1], data);
      assert.throws(() => NodeStorage.open({ dataDir: dir }), (error: unknown) => {
        assert.ok(error instanceof StorageCorruptionError);
        assert.match(error.message, /write-ahead log .*bad record at byte 0, with later segments after it/);
        return true;
      });
    }));

  it('refuses a damaged record that has good records after it in the same segment', () =>
    withTempDir(async (dir) => {
      await commitAndCrash(4, dir);
      const [segment] = segments(dir);
      const [r1, r2] = records(segment);
      const data = readFileSync(segment);
      const second = r1.byteLength;
      data[second + HEADER_BYTES + 3] ^= 0xff; // inside record 2's payload: records 3 and 4 stay good
      writeFileSync(segment, data);
      assert.throws(() => NodeStorage.open({ dataDir: dir }), (error: unknown) => {
        assert.ok(error instanceof StorageCorruptionError);
        assert.match(error.message, new RegExp(`bad record at byte ${second}, with a good record at byte ${second + r2.byteLength} after it`));
        return true;
      });
    }));

  it('creates each segment at its full size and writes its records inside it, from the start', () =>
    withTempDir(async (dir) => {
      await commitAndCrash(4, dir);
      const [segment] = segments(dir);
      const held = records(segment);
      assert.equal(held.length, 4);
      // The file was its full size before any record went in: no write changed its size.
      assert.equal(readFileSync(segment).byteLength, SEGMENT_BYTES);
      assert.ok(held.reduce((sum, r) => sum + r.byteLength, 0) < SEGMENT_BYTES / 4);
      await withStorage(dir, (storage) => assert.deepEqual(storage.recovery, { replayedCommits: 4, tornBytes: 0 }));
      await expectBatches(dir, 4);
    }));

  it('deletes segments once LMDB holds their batches', () =>
    withTempDir(async (dir) => {
      await withStorage(
        dir,
        async (storage) => {
          const group = storage.group(1);
          for (let index = 1; index <= 200; index++) {
            group.append([entry(index, 1, 200)]);
            await storage.commit();
          }
          assert.ok(segments(dir).length >= 10, `${segments(dir).length} segments`);
          await storage.checkpoint();
          // Only the segment being written stays.
          assert.equal(segments(dir).length, 1);
          assert.equal(storage.stats().commitsAheadOfLmdb, 0);
        },
        { limits: { ...LOG_ONLY, walSegmentBytes: 4096 } },
      );
      assert.deepEqual(readdirSync(dir).includes('wal'), false, 'close removes the log');
      await withStorage(dir, (reopened) => assert.equal(reopened.group(1).lastIndex(), 200));
    }));

  it('makes commits wait for LMDB once too much is only in the log (maxUnstoredBytes)', () =>
    withTempDir((dir) =>
      withStorage(
        dir,
        async (storage) => {
          const before = storage.stats().lmdbTransactions;
          for (let index = 1; index <= 40; index++) {
            storage.group(1).append([entry(index, 1, 200)]);
            await storage.commit();
            assert.ok(storage.stats().commitsAheadOfLmdb <= 12, `${storage.stats().commitsAheadOfLmdb} commits only in the log`);
          }
          assert.ok(storage.stats().lmdbTransactions - before >= 3, 'LMDB took the commits past the bound');
        },
        { limits: { ...LOG_ONLY, maxUnstoredBytes: 3000 } },
      ),
    ));

  it('keeps every commit when each one asks LMDB for a transaction at once (later ones join the next)', () =>
    withTempDir(async (dir) => {
      // Every commit asks for an LMDB write at once, each in its own event turn; a log write is
      // faster than an LMDB transaction, so most commits find one running.
      await withStorage(
        dir,
        async (storage) => {
          for (let b = 0; b < 20; b++) await commitBatch(storage, b);
          await storage.checkpoint();
          const { lmdbTransactions, commitsAheadOfLmdb } = storage.stats();
          assert.equal(commitsAheadOfLmdb, 0);
          assert.ok(lmdbTransactions < 20, `${lmdbTransactions} LMDB transactions for 20 commits: later ones should join the next`);
        },
        { limits: { lmdbFlushBytes: 1 } },
      );
      await expectBatches(dir, 20);
    }));

  it('writes nothing more to LMDB after an LMDB transaction failed, so the log still replays every commit', () =>
    withTempDir(async (crashed) => {
      await withTempDir((dir) =>
        withStorage(
          dir,
          async (storage) => {
            for (let b = 0; b < 5; b++) await commitBatch(storage, b);
            // The transaction taking batches 1-5 fails 100 ms from now; batches 6-8 come meanwhile.
            storage.faults.failNextLmdbWrite(100);
            const failing = storage.checkpoint();
            for (let b = 5; b < 8; b++) await commitBatch(storage, b);
            const after = storage.checkpoint(); // must not commit 6-8 (and walSeq 8) to LMDB
            const outcomes = await Promise.allSettled([failing, after]);
            assert.deepEqual(outcomes.map((o) => o.status), ['rejected', 'rejected']);
            cpSync(dir, crashed, { recursive: true }); // the disk as the fail-stop leaves it
          },
          { limits: LOG_ONLY },
        ),
      );
      await expectBatches(crashed, 8);
    }));

  it('upgrades a format 1 directory (no log) and marks it format 2', () =>
    withTempDir(async (dir) => {
      await withStorage(dir, (storage) => commitBatch(storage, 0));
      const env = open(join(dir, 'db'), { maxDbs: 8 });
      const state = env.openDB('state', { encoding: 'msgpack' });
      await state.put(['node', 'formatVersion'], 1);
      await state.remove(['node', 'walSeq']);
      await env.close();
      await expectBatches(dir, 1);
      const check = open(join(dir, 'db'), { maxDbs: 8, readOnly: true });
      assert.equal(check.openDB('state', { encoding: 'msgpack' }).get(['node', 'formatVersion']), 2);
      await check.close();
    }));
});
