// GroupStorage against raft's MemoryStorage (etcd semantics): random appends, truncations,
// compactions, snapshots, commits, clean restarts and crashes (close without commit), with every
// read compared after every step. A tiny entry cache and tiny snapshot chunks force the LMDB paths.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AssertionError } from '../../src/util/index.ts';
import { MemoryStorage } from '../../src/raft/index.ts';
import type { Entry, LogStorage } from '../../src/raft/index.ts';
import { NodeStorage } from '../../src/storage/index.ts';
import type { GroupStorage } from '../../src/storage/index.ts';
import { Rng, confState, payload, tempDir } from './support.ts';

const GROUP = 42;
const limits = { logCacheBytesPerGroup: 600, snapshotChunkBytes: 1024, logTrimEntriesPerTransaction: 3 };

type Outcome = { value: unknown } | { error: string };

function outcome(read: () => unknown): Outcome {
  try {
    return { value: read() };
  } catch (error) {
    if (error instanceof AssertionError) throw error;
    return { error: (error as Error).name };
  }
}

function compareReads(mine: LogStorage, ref: LogStorage, rng: Rng, step: string): void {
  const first = ref.firstIndex();
  const last = ref.lastIndex();
  assert.equal(mine.firstIndex(), first, `${step}: firstIndex`);
  assert.equal(mine.lastIndex(), last, `${step}: lastIndex`);
  for (let i = Math.max(0, first - 2); i <= last + 1; i++) {
    assert.deepEqual(outcome(() => mine.term(i)), outcome(() => ref.term(i)), `${step}: term(${i})`);
  }
  assert.deepEqual(outcome(() => mine.entries(first, last + 1, Infinity)), outcome(() => ref.entries(first, last + 1, Infinity)), `${step}: all entries`);
  for (let probe = 0; probe < 6; probe++) {
    const lo = rng.int(Math.max(0, first - 2), last + 1);
    const hi = rng.int(lo, last + 2);
    const maxBytes = rng.chance(0.2) ? 0 : rng.int(0, 1500);
    const expected = outcome(() => ref.entries(lo, hi, maxBytes));
    assert.deepEqual(outcome(() => mine.entries(lo, hi, maxBytes)), expected, `${step}: entries(${lo}, ${hi}, ${maxBytes})`);
  }
  assert.deepEqual(mine.snapshot(), ref.snapshot(), `${step}: snapshot`);
  assert.deepEqual(mine.initialState(), ref.initialState(), `${step}: initialState`);
}

/** Both storages, driven in lock step; `committed` is the reference as of the last commit. */
class Harness {
  storage: NodeStorage;
  mine: GroupStorage;
  ref = new MemoryStorage();
  committed = new MemoryStorage();
  maxTerm = 1;
  inFlight: Promise<void>[] = [];
  constructor(
    readonly dir: string,
    readonly rng: Rng,
  ) {
    this.storage = NodeStorage.open({ dataDir: dir, limits });
    this.mine = this.storage.group(GROUP);
  }

  /** Applies the same write to both; both must succeed or throw the same error class. */
  both(name: string, write: (s: MemoryStorage | GroupStorage) => unknown): void {
    const expected = outcome(() => write(this.ref));
    assert.deepEqual(outcome(() => write(this.mine)), expected, name);
  }

  async step(): Promise<string> {
    const { rng, ref } = this;
    const first = ref.firstIndex();
    const last = ref.lastIndex();
    const roll = rng.next();
    if (roll < 0.4) {
      const at = rng.int(Math.max(1, first - 3), last + 1);
      if (at <= last || rng.chance(0.3)) this.maxTerm += rng.int(0, 1);
      const base = ref.term(Math.max(at - 1, first - 1));
      const count = rng.int(1, 6);
      const entries: Entry[] = [];
      for (let i = 0; i < count; i++) {
        const index = at + i;
        entries.push({ index, term: Math.max(base, this.maxTerm), type: rng.chance(0.1) ? 'conf' : 'normal', data: payload(index, this.maxTerm, rng.int(0, 300), rng.int(0, 1e6)) });
      }
      this.both(`append ${at}..${at + count - 1}`, (s) => s.append(entries));
      return `append ${at}+${count}`;
    }
    if (roll < 0.5) {
      const hs = { term: this.maxTerm, vote: rng.int(0, 5), commit: rng.int(0, last) };
      this.both('setHardState', (s) => s.setHardState(hs));
      return 'setHardState';
    }
    if (roll < 0.55) {
      const cs = confState([rng.int(1, 3), rng.int(4, 9)]);
      this.both('setConfState', (s) => s.setConfState(cs));
      return 'setConfState';
    }
    if (roll < 0.65) {
      const index = rng.chance(0.15) ? rng.int(0, first - 1) : rng.int(first, Math.max(first, last));
      if (index > last) return 'skip compact';
      this.both(`compact ${index}`, (s) => s.compact(index));
      return `compact ${index}`;
    }
    if (roll < 0.72) {
      const snapIndex = ref.snapshot().metadata.index;
      const index = rng.chance(0.15) ? rng.int(0, snapIndex) : rng.int(snapIndex + 1, Math.max(snapIndex + 1, last));
      if (index > last) return 'skip createSnapshot';
      const data = payload(index, 0, rng.int(0, 5000), rng.int(0, 1e6));
      const cs = confState([rng.int(1, 9)]);
      this.both(`createSnapshot ${index}`, (s) => s.createSnapshot(index, cs, data));
      return `createSnapshot ${index}`;
    }
    if (roll < 0.76) {
      const snapIndex = ref.snapshot().metadata.index;
      const index = rng.chance(0.15) ? rng.int(0, snapIndex) : snapIndex + rng.int(1, 25);
      this.maxTerm += rng.int(0, 1);
      const snap = { metadata: { index, term: this.maxTerm, confState: confState([rng.int(1, 9)]) }, data: payload(index, 1, rng.int(0, 4000)) };
      this.both(`applySnapshot ${index}`, (s) => s.applySnapshot(snap));
      return `applySnapshot ${index}`;
    }
    if (roll < 0.82) {
      await this.storage.commit();
      this.committed = ref.clone();
      return 'commit';
    }
    if (roll < 0.87) {
      // Left in flight: later steps stage (and read) while LMDB is still writing this batch.
      this.inFlight.push(this.storage.commit());
      this.committed = ref.clone();
      return 'commitNoWait';
    }
    if (roll < 0.9) {
      await new Promise((resolve) => setTimeout(resolve, rng.int(0, 2)));
      return 'yield';
    }
    if (roll < 0.95) {
      await this.storage.commit();
      this.committed = ref.clone();
      await this.reopen();
      return 'commit+reopen';
    }
    await this.reopen(); // a crash as far as storage can tell: whatever was staged is gone
    this.ref = this.committed.clone();
    return 'reopen without commit';
  }

  async reopen(): Promise<void> {
    await Promise.all(this.inFlight.splice(0));
    await this.storage.close();
    this.storage = NodeStorage.open({ dataDir: this.dir, limits });
    this.mine = this.storage.group(GROUP);
  }
}

describe('GroupStorage matches MemoryStorage', () => {
  for (const seed of [1, 2, 3, 4]) {
    it(`random operations, seed ${seed}`, async () => {
      const { dir, cleanup } = tempDir();
      const harness = new Harness(dir, new Rng(seed));
      try {
        const kinds = new Set<string>();
        for (let stepNo = 0; stepNo < 400; stepNo++) {
          const step = await harness.step();
          kinds.add(step.split(' ')[0]);
          compareReads(harness.mine, harness.ref, harness.rng, `seed ${seed} step ${stepNo} (${step})`);
        }
        // The run must have exercised every kind of operation, or it proves little.
        for (const kind of ['append', 'setHardState', 'setConfState', 'compact', 'createSnapshot', 'applySnapshot', 'commit', 'commitNoWait', 'yield', 'commit+reopen', 'reopen']) {
          assert.ok(kinds.has(kind), `seed ${seed} never ran ${kind}`);
        }
        assert.ok(harness.ref.lastIndex() > 0);
      } finally {
        await Promise.all(harness.inFlight);
        await harness.storage.close();
        cleanup();
      }
    });
  }
});
