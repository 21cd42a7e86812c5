// The write-ahead log on real files: recovery after a crash (the data directory copied while a node
// had commits only the log held), torn tails, gaps, corruption, segment release, format upgrade.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { open } from 'lmdb';
import { NodeStorage, StorageCorruptionError } from '../../src/storage/index.ts';
import { entry, tempDir } from './support.ts';

/** LMDB gets nothing on its own during a test: only the log holds the commits. */
const LOG_ONLY = { lmdbFlushIntervalMs: 3_600_000, lmdbFlushBytes: 2 ** 40 };
const HEADER_BYTES = 16;

function segments(dir: string): string[] {
  return readdirSync(join(dir, 'wal'))
    .filter((name) => name.endsWith('.wal'))
    .sort()
    .map((name) => join(dir, 'wal', name));
}

/**
 * Commits `batches` batches of 3 entries to group 1 of a node whose LMDB receives nothing, copies
 * its data directory to `crashed` (the disk as a crash would leave it: the log durable, LMDB
 * behind), then closes the node.
 */
async function commitAndCrash(batches: number, crashed: string, limits: object = {}): Promise<void> {
  const { dir, cleanup } = tempDir();
  try {
    const storage = NodeStorage.open({ dataDir: dir, limits: { ...LOG_ONLY, ...limits } });
    const group = storage.group(1);
    for (let b = 0; b < batches; b++) {
      group.append([entry(3 * b + 1, 1, 100), entry(3 * b + 2, 1, 100), entry(3 * b + 3, 1, 100)]);
      group.setHardState({ term: 1, vote: 1, commit: 3 * b + 3 });
      storage.putMeta('progress', b + 1);
      await storage.commit();
    }
    assert.equal(storage.stats().commitsAheadOfLmdb, batches);
    cpSync(dir, crashed, { recursive: true });
    await storage.close();
  } finally {
    cleanup();
  }
}

/** The records of a segment file, as byte ranges. */
function records(path: string): Buffer[] {
  const data = readFileSync(path);
  const out: Buffer[] = [];
  for (let at = 0; at < data.byteLength; ) {
    const end = at + HEADER_BYTES + data.readUInt32BE(at);
    out.push(data.subarray(at, end));
    at = end;
  }
  return out;
}

async function expectBatches(dir: string, batches: number): Promise<void> {
  const storage = NodeStorage.open({ dataDir: dir });
  try {
    const group = storage.group(1);
    assert.equal(group.lastIndex(), 3 * batches);
    assert.equal(storage.getMeta('progress'), batches === 0 ? undefined : batches);
    assert.deepEqual(group.initialState().hardState, batches === 0 ? { term: 0, vote: 0, commit: 0 } : { term: 1, vote: 1, commit: 3 * batches });
    if (batches > 0) assert.deepEqual(group.entries(1, 3 * batches + 1, Infinity), Array.from({ length: 3 * batches }, (_, i) => entry(i + 1, 1, 100)));
  } finally {
    await storage.close();
  }
}

async function expectLastIndex(dir: string, last: number): Promise<void> {
  const storage = NodeStorage.open({ dataDir: dir });
  try {
    assert.equal(storage.group(1).lastIndex(), last);
    assert.deepEqual(storage.group(1).entries(1, last + 1, Infinity), Array.from({ length: last }, (_, i) => entry(i + 1, 1, 100)));
  } finally {
    await storage.close();
  }
}

describe('write-ahead log', () => {
  it('replays the commits LMDB lacks after a crash, then starts an empty log', async () => {
    const { dir, cleanup } = tempDir();
    try {
      await commitAndCrash(5, dir);
      assert.equal(segments(dir).length, 1);
      const storage = NodeStorage.open({ dataDir: dir });
      try {
        assert.deepEqual(storage.recovery, { replayedCommits: 5, tornBytes: 0 });
        assert.equal(storage.group(1).lastIndex(), 15);
        assert.equal(storage.getMeta('progress'), 5);
        // Replayed into LMDB at open: the old segment is gone, the new one is empty.
        assert.equal(storage.stats().walBytes, 0);
        assert.deepEqual(segments(dir).map((p) => readFileSync(p).byteLength), [0]);
      } finally {
        await storage.close();
      }
      await expectBatches(dir, 5);
    } finally {
      cleanup();
    }
  });

  it('ignores a record a crash cut short at the end of the log', async () => {
    const { dir, cleanup } = tempDir();
    try {
      await commitAndCrash(4, dir);
      const [segment] = segments(dir);
      assert.equal(records(segment).length, 4);
      // A fifth record whose write was cut off: a header promising 500 bytes, 20 of them written.
      const torn = Buffer.alloc(HEADER_BYTES + 20, 7);
      torn.writeUInt32BE(500, 0);
      appendFileSync(segment, torn);
      const reopened = NodeStorage.open({ dataDir: dir });
      assert.deepEqual(reopened.recovery, { replayedCommits: 4, tornBytes: HEADER_BYTES + 20 });
      await reopened.close();
      await expectBatches(dir, 4);
      // And a last record with a flipped byte: its checksum fails, the three before it stand.
      const { dir: dir2, cleanup: cleanup2 } = tempDir();
      try {
        await commitAndCrash(4, dir2);
        const [segment2] = segments(dir2);
        const data = readFileSync(segment2);
        data[data.byteLength - 5] ^= 0xff;
        writeFileSync(segment2, data);
        await expectBatches(dir2, 3);
      } finally {
        cleanup2();
      }
    } finally {
      cleanup();
    }
  });

  it('stops at a gap: nothing after a batch that never became durable was acknowledged', async () => {
    const { dir, cleanup } = tempDir();
    try {
      await commitAndCrash(4, dir);
      const [segment] = segments(dir);
      const [r1, , r3, r4] = records(segment);
      writeFileSync(segment, Buffer.concat([r1, r3, r4]));
      await expectBatches(dir, 1);
    } finally {
      cleanup();
    }
  });

  it('refuses a damaged record that has good records in a later segment after it', async () => {
    const { dir, cleanup } = tempDir();
    try {
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
    } finally {
      cleanup();
    }
  });

  it('deletes segments once LMDB holds their batches', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const storage = NodeStorage.open({ dataDir: dir, limits: { ...LOG_ONLY, walSegmentBytes: 4096 } });
      try {
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
      } finally {
        await storage.close();
      }
      assert.deepEqual(readdirSync(dir).includes('wal'), false, 'close removes the log');
      const reopened = NodeStorage.open({ dataDir: dir });
      assert.equal(reopened.group(1).lastIndex(), 200);
      await reopened.close();
    } finally {
      cleanup();
    }
  });

  it('makes commits wait for LMDB once too much is only in the log (maxUnstoredBytes)', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const storage = NodeStorage.open({ dataDir: dir, limits: { ...LOG_ONLY, maxUnstoredBytes: 3000 } });
      try {
        const before = storage.stats().lmdbTransactions;
        for (let index = 1; index <= 40; index++) {
          storage.group(1).append([entry(index, 1, 200)]);
          await storage.commit();
          assert.ok(storage.stats().commitsAheadOfLmdb <= 12, `${storage.stats().commitsAheadOfLmdb} commits only in the log`);
        }
        assert.ok(storage.stats().lmdbTransactions - before >= 3, 'LMDB took the commits past the bound');
      } finally {
        await storage.close();
      }
    } finally {
      cleanup();
    }
  });

  it('keeps every commit when each one asks LMDB for a transaction at once (later ones join the next)', async () => {
    const { dir, cleanup } = tempDir();
    try {
      // Every commit asks for an LMDB write at once, each in its own event turn; a log write is
      // faster than an LMDB transaction, so most commits find one running.
      const storage = NodeStorage.open({ dataDir: dir, limits: { lmdbFlushBytes: 1 } });
      try {
        for (let index = 1; index <= 60; index++) {
          storage.group(1).append([entry(index, 1, 100)]);
          await storage.commit();
        }
        await storage.checkpoint();
        const { lmdbTransactions, commitsAheadOfLmdb } = storage.stats();
        assert.equal(commitsAheadOfLmdb, 0);
        assert.ok(lmdbTransactions < 60, `${lmdbTransactions} LMDB transactions for 60 commits: later ones should join the next`);
      } finally {
        await storage.close();
      }
      await expectLastIndex(dir, 60);
    } finally {
      cleanup();
    }
  });

  it('writes nothing more to LMDB after an LMDB transaction failed, so the log still replays every commit', async () => {
    const { dir, cleanup } = tempDir();
    const { dir: crashed, cleanup: cleanupCrashed } = tempDir();
    try {
      const storage = NodeStorage.open({ dataDir: dir, limits: LOG_ONLY });
      const group = storage.group(1);
      const commitBatch = async (b: number) => {
        group.append([entry(3 * b + 1, 1, 100), entry(3 * b + 2, 1, 100), entry(3 * b + 3, 1, 100)]);
        group.setHardState({ term: 1, vote: 1, commit: 3 * b + 3 });
        storage.putMeta('progress', b + 1);
        await storage.commit();
      };
      for (let b = 0; b < 5; b++) await commitBatch(b);
      // The transaction taking batches 1-5 fails 100 ms from now; batches 6-8 come meanwhile.
      storage.faults.failNextLmdbWrite(100);
      const failing = storage.checkpoint();
      for (let b = 5; b < 8; b++) await commitBatch(b);
      const after = storage.checkpoint(); // must not commit 6-8 (and walSeq 8) to LMDB
      const outcomes = await Promise.allSettled([failing, after]);
      assert.deepEqual(outcomes.map((o) => o.status), ['rejected', 'rejected']);
      cpSync(dir, crashed, { recursive: true }); // the disk as the fail-stop leaves it
      await storage.close();
      await expectBatches(crashed, 8);
    } finally {
      cleanup();
      cleanupCrashed();
    }
  });

  it('upgrades a format 1 directory (no log) and marks it format 2', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const storage = NodeStorage.open({ dataDir: dir });
      storage.group(1).append([entry(1, 1)]);
      await storage.commit();
      await storage.close();
      const env = open(join(dir, 'db'), { maxDbs: 8 });
      const state = env.openDB('state', { encoding: 'msgpack' });
      await state.put(['node', 'formatVersion'], 1);
      await state.remove(['node', 'walSeq']);
      await env.close();
      const upgraded = NodeStorage.open({ dataDir: dir });
      assert.equal(upgraded.group(1).lastIndex(), 1);
      await upgraded.close();
      const check = open(join(dir, 'db'), { maxDbs: 8, readOnly: true });
      assert.equal(check.openDB('state', { encoding: 'msgpack' }).get(['node', 'formatVersion']), 2);
      await check.close();
    } finally {
      cleanup();
    }
  });
});
