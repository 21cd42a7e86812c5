// Storage commit throughput: sequential commits (append + hard state, then await commit()) for
// batches of 1 and 100 entries, with fsync on (and, for contrast, off), plus group commit across
// many groups. Run: node --import tsx bench/storage.ts [seconds-per-case] [name filter]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeStorage } from '../src/storage/index.ts';
import type { Entry } from '../src/raft/index.ts';

const secondsPerCase = Number(process.argv[2] ?? 3);
/** Optional substring: run only the cases whose name contains it. */
const only = process.argv[3] ?? '';
const ENTRY_BYTES = 256;

interface Result {
  name: string;
  commits: number;
  entries: number;
  seconds: number;
  lmdbTransactions: number;
}

async function run(name: string, sync: boolean, groups: number, entriesPerGroup: number): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-storage-'));
  const storage = NodeStorage.open({ dataDir: dir, sync });
  const payload = new Uint8Array(ENTRY_BYTES).fill(7);
  let next = 1;
  let commits = 0;
  const round = async () => {
    for (let g = 1; g <= groups; g++) {
      const batch: Entry[] = [];
      for (let i = 0; i < entriesPerGroup; i++) batch.push({ index: next + i, term: 1, type: 'normal', data: payload });
      const group = storage.group(g);
      group.append(batch);
      group.setHardState({ term: 1, vote: 1, commit: next + entriesPerGroup - 1 });
      if (group.lastIndex() > 20_000) group.compact(group.lastIndex() - 10_000); // keep the log bounded, as a real node would
    }
    next += entriesPerGroup;
    await storage.commit();
    commits++;
  };
  for (let i = 0; i < 20; i++) await round(); // warm up
  commits = 0;
  const before = storage.stats().lmdbTransactions;
  const start = performance.now();
  const deadline = start + secondsPerCase * 1000;
  while (performance.now() < deadline) await round();
  const seconds = (performance.now() - start) / 1000;
  const lmdbTransactions = storage.stats().lmdbTransactions - before;
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
  return { name, commits, entries: commits * groups * entriesPerGroup, seconds, lmdbTransactions };
}

const cases: [string, boolean, number, number][] = [
  ['fsync on,  1 group,   1 entry/commit', true, 1, 1],
  ['fsync on,  1 group, 100 entries/commit', true, 1, 100],
  ['fsync on, 100 groups x 1 entry/commit', true, 100, 1],
  ['fsync off, 1 group,   1 entry/commit', false, 1, 1],
  ['fsync off, 1 group, 100 entries/commit', false, 1, 100],
];

console.log(`storage bench: ${secondsPerCase}s per case, ${ENTRY_BYTES}-byte entries, sequential commits (each awaited)`);
for (const [name, sync, groups, perGroup] of cases.filter(([name]) => name.includes(only))) {
  const r = await run(name, sync, groups, perGroup);
  const commitsPerSecond = r.commits / r.seconds;
  console.log(
    `${r.name.padEnd(40)} ${commitsPerSecond.toFixed(0).padStart(6)} commits/s  ` +
      `${(r.entries / r.seconds).toFixed(0).padStart(8)} entries/s  ` +
      `${((r.seconds * 1000) / r.commits).toFixed(3)} ms/commit  (${r.lmdbTransactions} LMDB txns for ${r.commits} commits)`,
  );
}
