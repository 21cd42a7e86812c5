// Interleaved A/B of two Tessera builds. On this VM the same build's figures drift 10-20% between
// runs a minute apart, which hides changes of a few percent. Here both clusters run at once (one
// idles while the other is measured) and the workload alternates between them slice by slice (A B,
// B A, ...), so the drift lands on both; the report gives each side's median and the slices B won.
// An A/A run (the same checkout twice) shows the noise left: p50 within ~3% over 8 slices.
// Under 100 clients, what one cluster leaves running after its slice (a snapshot build, GC, LMDB's
// flush) slows the other's: in one run the first side of a pair won 10 of 12 pairs. --fresh gives
// every slice a new cluster of its own instead (warmed up with --warmup seconds of puts), which
// also puts each slice's first snapshot at the same place.
//   npx tsx bench/ab.ts <checkout A> <checkout B> [--slices N] [--seconds S] [--warmup S] [--fresh] -- <tessera bench args>
// e.g. a baseline clone against this checkout, one client on the leader:
//   git clone -q . /tmp/base && (cd /tmp/base && git checkout -q HEAD~1 && ln -s "$PWD/../main/node_modules" .)
//   npx tsx bench/ab.ts /tmp/base . --slices 8 -- put --clients 1 --conns 1 --target leader
// Each checkout needs its node_modules (a symlink to this one's will do); it is built if stale.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTessera } from './compare/clusters.ts';
import type { BenchCluster } from './compare/clusters.ts';
import { cpuSnapshot, cpuSpent } from './compare/procfs.ts';
import { median } from './compare/stats.ts';

const USAGE = 'usage: npx tsx bench/ab.ts <checkout A> <checkout B> [--slices N] [--seconds S] [--warmup S] [--fresh] -- <tessera bench args>';
const dashes = process.argv.indexOf('--');
const given = process.argv.slice(2, dashes < 0 ? undefined : dashes);
/** A fresh cluster for every slice instead of two that stay up (see the header). */
const fresh = given.includes('--fresh');
const own = given.filter((arg) => arg !== '--fresh');
const benchArgs = dashes < 0 ? [] : process.argv.slice(dashes + 1);
const flag = (name: string, fallback: number): number => {
  const i = own.indexOf(name);
  const value = i >= 0 ? Number(own[i + 1]) : fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number\n${USAGE}`);
  return value;
};
const checkouts = own.filter((arg, i) => !arg.startsWith('--') && (i === 0 || !own[i - 1].startsWith('--')));
if (checkouts.length !== 2 || benchArgs.length === 0) {
  console.error(USAGE);
  process.exit(2);
}
const slices = flag('--slices', 8);
const seconds = flag('--seconds', 3);
const warmupSeconds = flag('--warmup', 3);
/** The load generator of this checkout drives both clusters: only the servers differ. */
const tesseraBin = fileURLToPath(new URL('../bin/tessera.js', import.meta.url));

interface Slice {
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** The cluster's CPU over the slice (its 0.5 s warm-up included) per operation at the slice's rate. */
  cpuUsPerOp: number;
}

const SLICE_WARMUP_SEC = 0.5;

function bench(cluster: BenchCluster, args: string[], durationSec: number): Slice {
  const cpuBefore = cpuSnapshot(cluster.processes);
  const result = spawnSync(
    process.execPath,
    [tesseraBin, 'bench', ...args, '--endpoints', cluster.endpoints.join(','), '--duration', String(durationSec), '--warmup', String(SLICE_WARMUP_SEC), '--json'],
    { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 },
  );
  const cpuSec = cpuSpent(cpuBefore, cpuSnapshot(cluster.processes));
  if (result.status !== 0) throw new Error(`tessera bench failed:\n${result.stderr}`);
  const json = JSON.parse(result.stdout) as {
    opsPerSec: number;
    latency: { p50Ms: number; p99Ms: number };
    watch?: { eventLatency: { p50Ms: number; p99Ms: number } };
  };
  const latency = json.watch?.eventLatency ?? json.latency; // watch: put-to-event latency
  const cpuUsPerOp = (cpuSec * 1e6) / (json.opsPerSec * (durationSec + SLICE_WARMUP_SEC));
  return { opsPerSec: json.opsPerSec, p50Ms: latency.p50Ms, p99Ms: latency.p99Ms, cpuUsPerOp };
}

const root = mkdtempSync(join(tmpdir(), 'tessera-ab-'));
const clusters: BenchCluster[] = [];
const names = ['A', 'B'];
const startSide = (i: number, dir: string) => startTessera(join(root, dir), 2479 + 100 * i, {}, resolve(checkouts[i]));

/** One slice of side `i`: on its cluster that stays up, or (--fresh) on a new one, warmed up first. */
async function sliceOf(i: number, slice: number): Promise<Slice> {
  if (!fresh) return bench(clusters[i], benchArgs, seconds);
  const cluster = await startSide(i, `${names[i]}${slice}`);
  try {
    bench(cluster, ['put'], warmupSeconds);
    return bench(cluster, benchArgs, seconds);
  } finally {
    await cluster.stop();
    rmSync(join(root, `${names[i]}${slice}`), { recursive: true, force: true });
  }
}

try {
  if (!fresh) {
    for (const [i, checkout] of checkouts.entries()) {
      clusters.push(await startSide(i, names[i]));
      console.log(`${names[i]}: ${resolve(checkout)} on ${clusters[i].endpoints.join(',')}`);
    }
    // The JIT and the data set settle under a few seconds of puts on each side.
    for (const cluster of clusters) bench(cluster, ['put'], warmupSeconds);
  } else {
    for (const [i, checkout] of checkouts.entries()) console.log(`${names[i]}: ${resolve(checkout)}, a fresh cluster per slice`);
  }
  const results: Slice[][] = [[], []];
  const format = (s: Slice) => `${s.opsPerSec.toFixed(0).padStart(7)} ops/s  p50 ${s.p50Ms.toFixed(3)}  p99 ${s.p99Ms.toFixed(3)} ms  ${s.cpuUsPerOp.toFixed(0)} µs CPU/op`;
  for (let slice = 1; slice <= slices; slice++) {
    // A then B, then B then A: whichever runs second in a pair does not get an edge.
    const order = slice % 2 === 1 ? [0, 1] : [1, 0];
    const line: string[] = [];
    for (const i of order) {
      const result = await sliceOf(i, slice);
      results[i].push(result);
      line.push(`${names[i]} ${format(result)}`);
    }
    console.log(`slice ${String(slice).padStart(2)}: ${line.join('   ')}`);
  }
  const [a, b] = results;
  const row = (label: string, pick: (s: Slice) => number, higherIsBetter: boolean) => {
    const ma = median(a.map(pick)) ?? Number.NaN;
    const mb = median(b.map(pick)) ?? Number.NaN;
    const wins = a.filter((s, i) => (higherIsBetter ? pick(b[i]) > pick(s) : pick(b[i]) < pick(s))).length;
    console.log(`${label.padEnd(9)} A ${ma.toFixed(3).padStart(10)}   B ${mb.toFixed(3).padStart(10)}   B/A ${(mb / ma).toFixed(3)}   B better in ${wins} of ${slices} slices`);
  };
  console.log(`medians over ${slices} slices of ${seconds} s (tessera bench ${benchArgs.join(' ')}):`);
  row('ops/s', (s) => s.opsPerSec, true);
  row('p50 ms', (s) => s.p50Ms, false);
  row('p99 ms', (s) => s.p99Ms, false);
  row('CPU µs/op', (s) => s.cpuUsPerOp, false);
} finally {
  await Promise.all(clusters.map((cluster) => cluster.stop()));
  rmSync(root, { recursive: true, force: true });
}
