// Where a Tessera cluster spends its CPU under one benchmark workload: starts a fresh `tessera dev`
// with bench/cpu-profile.mjs preloaded, profiles every node only during the measured window
// (SIGUSR2 at its edges), and prints each node's summary plus cluster CPU per operation.
//   npx tsx bench/profile.ts [put|get|txn|mixed|watch|lease] [--duration S] [--clients N]
//     [--consistency l|s] [--watchers N] [--watch-streams N] [--rate R] [--out DIR] [--top N]
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configFromFlags, formatResult, runBench } from '../src/bench/index.ts';
import type { Workload } from '../src/bench/index.ts';
import { startTessera } from './compare/clusters.ts';
import { summarizeProfile } from './compare/cpuprofile.ts';
import type { CpuProfile } from './compare/cpuprofile.ts';
import { cpuSnapshot, cpuSpent } from './compare/procfs.ts';

const args = process.argv.slice(2);
const value = (flag: string) => {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
};
const workload = (args[0] && !args[0].startsWith('--') ? args[0] : 'put') as Workload;
const outDir = value('--out') ?? mkdtempSync(join(tmpdir(), 'tessera-profile-'));
const top = Number(value('--top') ?? 25);
const preload = fileURLToPath(new URL('./cpu-profile.mjs', import.meta.url));
const dataDir = mkdtempSync(join(tmpdir(), 'tessera-profile-data-'));

const cluster = await startTessera(dataDir, Number(value('--port') ?? 2479), {
  TESSERA_CPU_PROFILE_DIR: outDir,
  TESSERA_CPU_PROFILE_ON_SIGNAL: '1',
  NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${preload}`.trim(),
});
const signal = () => cluster.nodePids.forEach((pid) => process.kill(pid, 'SIGUSR2'));
let before = new Map<number, number>();
let clusterCpuSec = 0;
try {
  const config = configFromFlags(workload, {
    endpoints: cluster.endpoints.join(','),
    duration: Number(value('--duration') ?? 10),
    warmup: 2,
    clients: value('--clients') === undefined ? undefined : Number(value('--clients')),
    consistency: value('--consistency') as 'l' | 's' | undefined,
    watchers: value('--watchers') === undefined ? undefined : Number(value('--watchers')),
    watchStreams: value('--watch-streams') === undefined ? undefined : Number(value('--watch-streams')),
    rate: value('--rate') === undefined ? undefined : Number(value('--rate')),
  });
  const result = await runBench(config, {
    progress: false,
    onMeasureStart: () => {
      before = cpuSnapshot(cluster.processes);
      signal();
    },
    onMeasureEnd: () => {
      signal();
      clusterCpuSec = cpuSpent(before, cpuSnapshot(cluster.processes));
    },
  });
  console.log(formatResult(result));
  console.log(`cluster CPU ${clusterCpuSec.toFixed(2)} s => ${((clusterCpuSec / Math.max(1, result.ops)) * 1e6).toFixed(0)} µs per op`);
  await new Promise((r) => setTimeout(r, 1_000));
} finally {
  await cluster.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
for (const file of readdirSync(outDir).filter((f) => f.endsWith('.cpuprofile')).sort()) {
  console.log(`\n== ${file}`);
  console.log(summarizeProfile(JSON.parse(readFileSync(join(outDir, file), 'utf8')) as CpuProfile, top));
}
console.log(`\nprofiles: ${outDir} (open in Chrome DevTools > Performance, or npx tsx bench/profile-top.ts)`);
