// Crash safety with a real process: a child writes and commits in a loop, printing each
// acknowledged index; we SIGKILL it at an arbitrary moment, reopen, and check that every
// acknowledged write is there and that the disk holds one consistent prefix of the child's rounds
// (all three groups and the metadata at the same round: one transaction covers them all).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { NodeStorage } from '../../src/storage/index.ts';
import { confState, Rng, tempDir } from './support.ts';
import {
  CHILD_LIMITS,
  compactIndexFor,
  expectedEntry,
  GROUPS,
  snapshotData,
  snapshotIndexFor,
  termOf,
} from './fixtures/crash-model.ts';

const writer = fileURLToPath(new URL('./fixtures/crash-writer.ts', import.meta.url));

/**
 * Runs the writer until it has acknowledged `killAfter` more rounds, then SIGKILLs it `delayMs`
 * later (so the kill lands anywhere in a round: staging, the LMDB write, the fsync). Returns the
 * last index it acknowledged.
 */
function runAndKill(dataDir: string, killAfter: number, delayMs: number, limits: object): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', writer, dataDir, JSON.stringify(limits)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let acked = 0;
    let seen = 0;
    let buffered = '';
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        acked = Math.max(acked, Number(line));
        if (++seen === killAfter) setTimeout(() => child.kill('SIGKILL'), delayMs);
      }
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(acked);
      else reject(new Error(`writer exited with ${code}: ${stderr}`));
    });
  });
}

/** Everything on disk must be exactly what the writer wrote up to one round boundary `last >= acked`. */
async function checkConsistentPrefix(dataDir: string, acked: number): Promise<number> {
  const storage = NodeStorage.open({ dataDir, limits: CHILD_LIMITS });
  try {
    assert.deepEqual(storage.groups(), GROUPS);
    const last = storage.getMeta<number>('progress');
    assert.ok(last !== undefined && last >= acked, `progress ${last} below acknowledged ${acked}`);
    for (const id of GROUPS) {
      const group = storage.group(id);
      assert.equal(group.lastIndex(), last, `group ${id} last index`);
      assert.deepEqual(group.initialState().hardState, { term: termOf(last), vote: 1, commit: last });
      const snapIndex = snapshotIndexFor(last);
      assert.equal(group.firstIndex(), compactIndexFor(last) + 1, `group ${id} first index`);
      const entries = group.entries(group.firstIndex(), last + 1, Infinity);
      assert.equal(entries.length, last - group.firstIndex() + 1);
      for (const entry of entries) assert.deepEqual(entry, expectedEntry(id, entry.index));
      const snap = group.snapshot();
      assert.equal(snap.metadata.index, snapIndex, `group ${id} snapshot index`);
      if (snapIndex > 0) {
        assert.deepEqual(snap.metadata, { index: snapIndex, term: termOf(snapIndex), confState: confState([1, 2, 3]) });
        assert.deepEqual(snap.data, snapshotData(id, snapIndex));
      }
    }
    return last;
  } finally {
    await storage.close();
  }
}

/** SIGKILLs the writer four times at arbitrary points, checking what is on disk after each. */
async function killAndCheck(limits: object): Promise<void> {
  const { dir, cleanup } = tempDir();
  const rng = new Rng(7); // the exact kill point still varies with timing, run to run
  try {
    let previous = 0;
    for (let round = 0; round < 4; round++) {
      const acked = await runAndKill(dir, rng.int(20, 120), rng.int(0, 6), limits);
      assert.ok(acked > previous, `round ${round}: writer made no progress (${acked})`);
      previous = await checkConsistentPrefix(dir, acked);
    }
    assert.ok(previous > snapshotIndexFor(previous) && snapshotIndexFor(previous) > 0, 'the run never reached a snapshot');
  } finally {
    cleanup();
  }
}

describe('crash safety', () => {
  it('keeps every acknowledged commit and a consistent prefix across SIGKILLs', { timeout: 60_000 }, async () => {
    // LMDB receives the write-ahead log's commits every few milliseconds: kills land before,
    // during and after those transactions.
    await killAndCheck({ lmdbFlushIntervalMs: 3 });
  });

  it('recovers commits that only the write-ahead log holds', { timeout: 60_000 }, async () => {
    // LMDB receives only what a snapshot forces through (chunks go straight to LMDB, with every
    // commit before them); everything else after it is replayed from the log at open.
    await killAndCheck({ lmdbFlushIntervalMs: 3_600_000, lmdbFlushBytes: 2 ** 40 });
  });
});
