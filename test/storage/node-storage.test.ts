// NodeStorage on real LMDB files: restart recovery, group commit, snapshot chunking, limits,
// metadata and the data-directory lock.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { open } from 'lmdb';
import { CompactedError, SnapshotTemporarilyUnavailableError } from '../../src/raft/index.ts';
import {
  NodeStorage,
  type GroupStorage,
  StorageClosedError,
  StorageCorruptionError,
  StorageFailedError,
  StorageLimitError,
  StorageLockedError,
} from '../../src/storage/index.ts';
import { logKey, logKeyIndex } from '../../src/storage/codec.ts';
import { confState, entry, payload, tempDir, withStorage, withTempDir } from './support.ts';

const MIB = 1024 * 1024;

function entries(lo: number, hi: number, term: number, size = 16) {
  const out = [];
  for (let index = lo; index <= hi; index++) out.push(entry(index, term, size));
  return out;
}

/** Opens the LMDB files directly (not through NodeStorage) to look at what is really on disk. */
async function rawChunkKeys(dir: string): Promise<unknown[][]> {
  const env = open(join(dir, 'db'), { maxDbs: 8, readOnly: true });
  try {
    const chunks = env.openDB('chunks', { encoding: 'binary', compression: true });
    return [...chunks.getKeys()] as unknown[][];
  } finally {
    await env.close();
  }
}


/** Indexes of group `group`'s log entries really in LMDB (opened directly, as rawChunkKeys does). */
async function rawLogIndexes(dir: string, group: number): Promise<number[]> {
  const env = open(join(dir, 'db'), { maxDbs: 8, readOnly: true });
  try {
    const log = env.openDB('log', { encoding: 'binary', keyEncoding: 'binary' });
    return [...log.getKeys({ start: logKey(group, 0), end: logKey(group + 1, 0) })].map((key) => logKeyIndex(key as Buffer));
  } finally {
    await env.close();
  }
}

const range = (lo: number, hi: number) => Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);

describe('compacted entries', () => {
  /** 1,000 entries of group 1 in LMDB, 100 per commit; returns the group. */
  async function thousandEntries(s: NodeStorage): Promise<GroupStorage> {
    const g = s.group(1);
    for (let lo = 1; lo <= 1000; lo += 100) {
      g.append(entries(lo, lo + 99, 1));
      await s.commit();
    }
    await s.checkpoint();
    return g;
  }
  const limits = { logTrimEntriesPerTransaction: 100 };

  it('leave LMDB a bounded part per transaction, from the one that holds their offset, and the rest after a restart', () =>
    withTempDir(async (dir) => {
      await withStorage(
        dir,
        async (s) => {
          const g = await thousandEntries(s);
          g.compact(900);
          await s.commit();
          await s.checkpoint(); // the offset's transaction: nothing goes before LMDB holds it
          for (const index of [1001, 1002]) {
            g.append(entries(index, index, 1));
            await s.commit();
            await s.checkpoint(); // each later one: 100 of the 900
          }
          assert.equal(g.firstIndex(), 901);
          assert.equal(g.entries(901, 1003, Infinity).length, 102);
        },
        { limits },
      );
      assert.deepEqual(await rawLogIndexes(dir, 1), range(201, 1002));
      // A restart finds the rest below the offset and deletes it, a part per transaction.
      await withStorage(
        dir,
        async (s) => {
          const g = s.group(1);
          for (let i = 0; i < 7; i++) {
            g.setHardState({ term: 1, vote: 1, commit: 1002 });
            await s.commit();
            await s.checkpoint();
          }
          assert.deepEqual(g.entries(901, 1003, Infinity), entries(901, 1002, 1));
        },
        { limits },
      );
      assert.deepEqual(await rawLogIndexes(dir, 1), range(901, 1002));
    }));

  it('stay in LMDB until the offset that drops them is stored there', () =>
    withTempDir(async (dir) => {
      await withStorage(
        dir,
        async (s) => {
          const g = await thousandEntries(s);
          g.setHardState({ term: 1, vote: 1, commit: 1000 });
          const committed = s.commit();
          g.compact(900); // staged after that commit: its offset is in the next batch, which never comes
          await committed;
          await s.checkpoint();
        },
        { limits },
      );
      assert.deepEqual(await rawLogIndexes(dir, 1), range(1, 1000));
      await withStorage(dir, (s) => assert.equal(s.group(1).firstIndex(), 1));
    }));
});

describe('restart recovery', () => {
  it('shows exactly what was committed: staged writes vanish with close', async () => {
    const { dir, cleanup } = tempDir();
    try {
      await withStorage(dir, async (s) => {
        const g = s.group(1);
        g.append(entries(1, 10, 1));
        g.append(entries(8, 12, 2)); // truncates 8..10 and appends
        g.setHardState({ term: 2, vote: 3, commit: 9 });
        g.setConfState(confState([1, 2, 3]));
        g.createSnapshot(5, confState([1, 2]), payload(5, 1, 3000));
        g.compact(4);
        s.putMeta('cluster', { id: 77, members: ['a', 'b'] });
        await s.commit();
        // Staged only: must not survive the restart.
        g.append(entries(13, 20, 2));
        g.setHardState({ term: 3, vote: 0, commit: 12 });
        g.compact(8);
        s.putMeta('cluster', { id: 78 });
        s.group(2).setHardState({ term: 1, vote: 1, commit: 0 });
        assert.equal(g.lastIndex(), 20);
        assert.deepEqual(s.groups(), [1, 2]);
      });
      await withStorage(dir, (s) => {
        assert.deepEqual(s.groups(), [1]);
        assert.deepEqual(s.getMeta('cluster'), { id: 77, members: ['a', 'b'] });
        const g = s.group(1);
        assert.equal(g.firstIndex(), 5);
        assert.equal(g.lastIndex(), 12);
        assert.equal(g.term(4), 1);
        assert.equal(g.term(7), 1);
        assert.equal(g.term(8), 2);
        assert.throws(() => g.term(3), CompactedError);
        assert.deepEqual(g.entries(5, 13, Infinity), [...entries(5, 7, 1), ...entries(8, 12, 2)]);
        // A restart resumes from the snapshot, so the snapshot's membership is reported.
        assert.deepEqual(g.initialState(), { hardState: { term: 2, vote: 3, commit: 9 }, confState: confState([1, 2]) });
        const snap = g.snapshot();
        assert.deepEqual(snap.metadata, { index: 5, term: 1, confState: confState([1, 2]) });
        assert.deepEqual(snap.data, payload(5, 1, 3000));
        assert.equal(s.group(2).lastIndex(), 0);
        assert.deepEqual(s.group(2).initialState().hardState, { term: 0, vote: 0, commit: 0 });
      });
    } finally {
      cleanup();
    }
  });

  it('reads a long log back from LMDB once the cache has let go of it', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const all = entries(1, 2000, 1, 100).map((e) => (e.index > 1000 ? { ...e, term: 2 } : e));
      await withStorage(
        dir,
        async (s) => {
          for (let lo = 1; lo <= 2000; lo += 100) {
            s.group(9).append(all.slice(lo - 1, lo + 99));
            await s.commit();
          }
          // Durable in the write-ahead log, not yet in LMDB: the cache must keep every entry.
          assert.ok(s.stats().cachedEntryBytes >= 2000 * 100, `cache holds ${s.stats().cachedEntryBytes} bytes`);
          await s.checkpoint();
          assert.ok(s.stats().cachedEntryBytes <= 4096, `cache holds ${s.stats().cachedEntryBytes} bytes`);
          assert.deepEqual(s.group(9).entries(1, 2001, Infinity), all);
        },
        { limits: { logCacheBytesPerGroup: 4096 } },
      );
      await withStorage(dir, (s) => {
        const g = s.group(9);
        assert.equal(g.term(1000), 1);
        assert.equal(g.term(1001), 2);
        assert.deepEqual(g.entries(1, 2001, Infinity), all);
        assert.deepEqual(g.entries(995, 2001, 1000), all.slice(994, 994 + 8)); // 8 entries of 124 bytes fit in 1000
        assert.deepEqual(g.entries(10, 20, 0), [all[9]]); // always at least one
      });
    } finally {
      cleanup();
    }
  });

  it('refuses a data directory written by another format version', async () => {
    const { dir, cleanup } = tempDir();
    try {
      await withStorage(dir, () => undefined);
      const env = open(join(dir, 'db'), { maxDbs: 8 });
      await env.openDB('state', { encoding: 'msgpack' }).put(['node', 'formatVersion'], 999);
      await env.close();
      assert.throws(() => NodeStorage.open({ dataDir: dir }), StorageCorruptionError);
    } finally {
      cleanup();
    }
  });
});

describe('group commit', () => {
  it("commits many groups' writes in one log record, and many commits in one LMDB transaction", async () => {
    const { dir, cleanup } = tempDir();
    try {
      await withStorage(dir, async (s) => {
        await s.commit(); // nothing staged: resolves at once, no transaction
        const before = s.stats();
        assert.equal(before.commits, 0);
        for (let id = 1; id <= 50; id++) {
          const g = s.group(id);
          g.append(entries(1, 5, 1, 64));
          g.setHardState({ term: 1, vote: id, commit: 3 });
        }
        s.putMeta('members', [1, 2, 3]);
        assert.ok(s.stats().stagedBytes > 50 * 5 * 64);
        await s.commit();
        const after = s.stats();
        assert.equal(after.commits - before.commits, 1);
        assert.equal(after.stagedBytes, 0);
        assert.equal(after.commitsInFlight, 0);
        assert.equal(after.commitsAheadOfLmdb, 1);
        assert.ok(after.walBytes > 50 * 5 * 64);
        // Two more rounds, then the writes go to LMDB: all three commits in one transaction.
        for (let round = 0; round < 2; round++) {
          for (let id = 1; id <= 50; id++) s.group(id).append([entry(6 + round, 1)]);
          await s.commit();
        }
        assert.equal(s.stats().commitsAheadOfLmdb, 3);
        await s.checkpoint();
        assert.equal(s.stats().lmdbTransactions - before.lmdbTransactions, 1);
        assert.equal(s.stats().commitsAheadOfLmdb, 0);
      });
      await withStorage(dir, (s) => {
        assert.deepEqual(s.groups(), Array.from({ length: 50 }, (_, i) => i + 1));
        assert.deepEqual(s.getMeta('members'), [1, 2, 3]);
        for (let id = 1; id <= 50; id++) {
          assert.equal(s.group(id).lastIndex(), 7);
          assert.equal(s.group(id).initialState().hardState.vote, id);
        }
      });
    } finally {
      cleanup();
    }
  });

  it('pipelines: commits left in flight become durable in order and reads never wait', async () => {
    const { dir, cleanup } = tempDir();
    try {
      await withStorage(dir, async (s) => {
        const g = s.group(3);
        const order: number[] = [];
        const commits: Promise<void>[] = [];
        for (let i = 1; i <= 20; i++) {
          g.append([entry(i, 1, 1000)]);
          assert.deepEqual(g.entries(i, i + 1, Infinity), [entry(i, 1, 1000)]);
          commits.push(s.commit().then(() => void order.push(i)));
        }
        assert.ok(s.stats().commitsInFlight > 0);
        await Promise.all(commits);
        assert.deepEqual(order, Array.from({ length: 20 }, (_, i) => i + 1));
        assert.equal(s.stats().commitsInFlight, 0);
      });
    } finally {
      cleanup();
    }
  });
});

describe('snapshots', () => {
  it('round-trips 5 MiB of snapshot data in 1 MiB chunks and replaces old chunks', async () => {
    const { dir, cleanup } = tempDir();
    const big = payload(1, 1, 5 * MIB);
    big.fill(7, MIB, 2 * MIB); // one compressible chunk
    try {
      await withStorage(dir, async (s) => {
        const g = s.group(5);
        g.append(entries(1, 30, 1));
        const snap = g.createSnapshot(20, confState([1, 2, 3]), big);
        assert.deepEqual(snap.metadata, { index: 20, term: 1, confState: confState([1, 2, 3]) });
        assert.equal(g.snapshot().data, big); // staged: served from memory
        await s.commit();
        const read = g.snapshot().data;
        assert.notEqual(read, big); // durable: served from LMDB
        assert.deepEqual(read, big);
      });
      const keys = await rawChunkKeys(dir);
      assert.deepEqual(keys, [0, 1, 2, 3, 4].map((n) => [5, 20, n]));
      const small = payload(2, 2, 2 * MIB + 5);
      await withStorage(dir, async (s) => {
        const g = s.group(5);
        assert.deepEqual(g.snapshot().data, big);
        g.applySnapshot({ metadata: { index: 50, term: 3, confState: confState([4]) }, data: small });
        await s.commit();
      });
      assert.deepEqual(await rawChunkKeys(dir), [0, 1, 2].map((n) => [5, 50, n]));
      await withStorage(dir, (s) => {
        const g = s.group(5);
        const snap = g.snapshot();
        assert.deepEqual(snap.metadata, { index: 50, term: 3, confState: confState([4]) });
        assert.deepEqual(snap.data, small);
        assert.equal(g.firstIndex(), 51);
        assert.equal(g.lastIndex(), 50);
        assert.equal(g.term(50), 3);
        assert.deepEqual(g.initialState().confState, confState([4]));
      });
    } finally {
      cleanup();
    }
  });
});

describe('limits, metadata, lifecycle', () => {
  it('refuses to stage past maxStagedBytes and leaves the group unchanged', async () => {
    const { dir, cleanup } = tempDir();
    try {
      await withStorage(
        dir,
        async (s) => {
          const g = s.group(1);
          g.append(entries(1, 5, 1, 1000));
          assert.throws(() => g.append(entries(6, 20, 1, 1000)), StorageLimitError);
          assert.throws(() => g.createSnapshot(5, confState([1]), new Uint8Array(20_000)), StorageLimitError);
          assert.equal(g.lastIndex(), 5);
          assert.equal(g.snapshot().metadata.index, 0);
          await s.commit();
          g.append(entries(6, 10, 1, 1000)); // fits again once committed
          assert.equal(g.lastIndex(), 10);
        },
        { limits: { maxStagedBytes: 10_000 } },
      );
    } finally {
      cleanup();
    }
  });

  it("writes a snapshot's pieces straight to LMDB, and drops the pieces of a build a crash interrupted", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const pieces = [payload(1, 1, 70_000), payload(2, 1, 5), payload(3, 1, 300_000)];
      const whole = Buffer.concat(pieces);
      await withStorage(dir, async (s) => {
        const g = s.group(3);
        g.append(entries(1, 30, 1));
        await s.commit();
        for (let i = 0; i < pieces.length; i++) {
          g.writeSnapshotPiece(20, i, pieces[i]);
          await s.commit(); // nothing to commit: pieces are outside the commit sequence
        }
        assert.equal(g.snapshot().metadata.index, 0, 'pieces are nothing until the snapshot names them');
        g.createSnapshotFromPieces(20, confState([1, 2]), pieces.length, whole.length);
        g.compact(15);
        await s.commit();
        assert.deepEqual(g.snapshot().metadata, { index: 20, term: 1, confState: confState([1, 2]) });
        assert.deepEqual(Buffer.from(g.snapshot().data), whole);
        // A later build that never finishes: its pieces are on disk when the process dies.
        g.writeSnapshotPiece(25, 0, pieces[0]);
        g.writeSnapshotPiece(25, 1, pieces[1]);
        await s.commit();
      });
      assert.deepEqual(await rawChunkKeys(dir), [[3, 20, 0], [3, 20, 1], [3, 20, 2], [3, 25, 0], [3, 25, 1]]);
      await withStorage(dir, async (s) => {
        const g = s.group(3);
        assert.equal(g.snapshot().metadata.index, 20);
        assert.deepEqual(Buffer.from(g.snapshot().data), whole);
      });
      assert.deepEqual(await rawChunkKeys(dir), [[3, 20, 0], [3, 20, 1], [3, 20, 2]], 'the orphans are removed at open');
    } finally {
      cleanup();
    }
  });

  it('keeps the commits of the turns of a build on the log: pieces never make a commit wait for LMDB', async () => {
    const { dir, cleanup } = tempDir();
    try {
      await withStorage(dir, async (s) => {
        const g = s.group(3);
        g.append(entries(1, 10, 1));
        await s.commit();
        await s.checkpoint();
        g.writeSnapshotPiece(8, 0, payload(1, 1, 200_000));
        g.append(entries(11, 15, 1));
        await s.commit();
        assert.equal(s.stats().commitsAheadOfLmdb, 1, 'the turn with a piece committed to the log only');
        g.createSnapshotFromPieces(8, confState([1]), 1, 200_000);
        await s.commit();
        assert.equal(s.stats().commitsAheadOfLmdb, 0, 'the record went to LMDB, after its piece');
        assert.deepEqual(Buffer.from(g.snapshot().data), Buffer.from(payload(1, 1, 200_000)));
      });
    } finally {
      cleanup();
    }
  });

  it("rebuilds a snapshot at the index of a build a crash interrupted: the orphans' removal never deletes the new pieces", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const pieces = [payload(1, 1, 70_000), payload(2, 1, 70_000)];
      await withStorage(dir, async (s) => {
        const g = s.group(3);
        g.append(entries(1, 30, 1));
        await s.commit();
        g.writeSnapshotPiece(25, 0, payload(9, 9, 1000)); // interrupted: no record
        await s.commit();
      });
      await withStorage(dir, async (s) => {
        const g = s.group(3);
        for (let i = 0; i < pieces.length; i++) g.writeSnapshotPiece(25, i, pieces[i]);
        g.createSnapshotFromPieces(25, confState([1]), pieces.length, 140_000);
        await s.commit();
        assert.deepEqual(Buffer.from(g.snapshot().data), Buffer.concat(pieces));
      });
      await withStorage(dir, (s) => assert.deepEqual(Buffer.from(s.group(3).snapshot().data), Buffer.concat(pieces)));
    } finally {
      cleanup();
    }
  });

  it('never lets a snapshot record reach LMDB when one of its pieces failed to be written', async () => {
    const { dir, cleanup } = tempDir();
    try {
      await withStorage(dir, async (s) => {
        const g = s.group(3);
        g.append(entries(1, 30, 1));
        await s.commit();
        s.faults.failNextPieceWrite(50);
        g.writeSnapshotPiece(20, 0, payload(1, 1, 1000));
        g.writeSnapshotPiece(20, 1, payload(2, 1, 1000));
        g.createSnapshotFromPieces(20, confState([1]), 2, 2000);
        g.compact(15);
        await assert.rejects(s.commit(), StorageFailedError);
      });
      await withStorage(dir, (s) => {
        const g = s.group(3);
        assert.equal(g.snapshot().metadata.index, 0, 'no record without its pieces');
        assert.equal(g.firstIndex(), 1, 'the compaction that came with it is not on disk either');
      });
    } finally {
      cleanup();
    }
  });

  it('makes a build wait while more than maxSnapshotPieceBytesInFlight of its pieces are unwritten', async () => {
    const { dir, cleanup } = tempDir();
    try {
      await withStorage(
        dir,
        async (s) => {
          const g = s.group(3);
          g.append(entries(1, 10, 1));
          await s.commit();
          g.writeSnapshotPiece(8, 0, payload(1, 1, 50_000));
          assert.ok(s.stats().snapshotPieceBytesInFlight > 1_000);
          await s.snapshotPiecesWithinBound(); // 50,000 bytes in flight > 1,000: waits for the piece
          assert.equal(s.stats().snapshotPieceBytesInFlight, 0);
        },
        { limits: { maxSnapshotPieceBytesInFlight: 1_000 } },
      );
    } finally {
      cleanup();
    }
  });

  it("reads a large snapshot for Raft a part per call ('temporarily unavailable' until it is all in)", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const big = payload(9, 1, 5 * MIB + 123);
      await withStorage(dir, async (s) => {
        const g = s.group(4);
        g.append(entries(1, 30, 1));
        g.createSnapshot(20, confState([1, 2, 3]), big);
        await s.commit();
      });
      await withStorage(
        dir,
        (s) => {
          const g = s.group(4);
          let calls = 1;
          for (;;) {
            try {
              const snap = g.snapshot();
              assert.deepEqual(snap.metadata, { index: 20, term: 1, confState: confState([1, 2, 3]) });
              assert.deepEqual(Buffer.from(snap.data), Buffer.from(big));
              break;
            } catch (error) {
              assert.ok(error instanceof SnapshotTemporarilyUnavailableError, String(error));
              calls++;
            }
          }
          assert.equal(calls, 3, 'two 2 MiB parts, then the last one with the data'); // 1 MiB chunks, 2 MiB per call
          assert.deepEqual(Buffer.from(g.fullSnapshot().data), Buffer.from(big), 'a replica opening reads it all at once');
        },
        { limits: { snapshotReadBytesPerCall: 2 * MIB } },
      );
    } finally {
      cleanup();
    }
  });

  it('keeps metadata: visible at once, durable after commit', async () => {
    const { dir, cleanup } = tempDir();
    try {
      await withStorage(dir, async (s) => {
        assert.equal(s.getMeta('node'), undefined);
        s.putMeta('node', { id: 12, name: 'n1', peers: [new Uint8Array([1, 2])] });
        assert.deepEqual(s.getMeta('node'), { id: 12, name: 'n1', peers: [new Uint8Array([1, 2])] });
        await s.commit();
        s.putMeta('node', 'uncommitted');
        s.putMeta('other', 1);
      });
      await withStorage(dir, (s) => {
        const node = s.getMeta<{ id: number; peers: Uint8Array[] }>('node');
        assert.equal(node?.id, 12);
        assert.deepEqual([...(node?.peers[0] ?? [])], [1, 2]);
        assert.equal(s.getMeta('other'), undefined);
      });
    } finally {
      cleanup();
    }
  });

  it('locks the data directory against a second opener; a dead owner is taken over', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const first = NodeStorage.open({ dataDir: dir });
      assert.throws(() => NodeStorage.open({ dataDir: dir }), StorageLockedError);
      await first.close();
      assert.throws(() => first.group(1), StorageClosedError);
      await assert.rejects(first.commit(), StorageClosedError);
      const gone = spawnSync(process.execPath, ['-e', '0']).pid; // a pid that no longer runs
      writeFileSync(join(dir, 'db.lock'), String(gone));
      await withStorage(dir, (s) => assert.deepEqual(s.groups(), []));
    } finally {
      cleanup();
    }
  });
});
