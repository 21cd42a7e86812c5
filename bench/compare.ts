// Side-by-side benchmark: a fresh 3-member etcd and a fresh 3-node Tessera on this machine, the same
// workloads from the same client (`tessera bench`'s runner), each workload run on one system and
// right after on the other, which goes first alternating (A B, B A, ...), one table
// of medians with the ratio Tessera/etcd, cluster CPU per operation (/proc utime+stime of every
// server process) and RSS per node.
//   npm run bench:compare [-- --quick] [-- --rounds N] [-- --json] [-- --only tessera|etcd]
//   [-- --scenarios put100,getL|none] [-- --duration S] [-- --warmup S] [-- --server-warmup S] [-- --keys N]
//   [-- --profile DIR]  (Tessera nodes write CPU profiles there; see also bench/profile.ts)
//   [-- --memory-keys N] [-- --memory-settle S]  (memory phase, off by default: a fresh cluster of each
//   system loaded with N keys by `tessera bench load`, RSS per node after S s (default 5), then a
//   snapshot save; see bench/compare/memory.ts. Memory alone: -- --memory-keys 1000000 --scenarios none)
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_CONFIG, findTarget, runBench } from '../src/bench/index.ts';
import type { BenchConfig } from '../src/bench/index.ts';
import type { BenchCluster, SystemName } from './compare/clusters.ts';
import { etcdVersion, startEtcd, startTessera } from './compare/clusters.ts';
import { median } from './compare/stats.ts';
import { machineInfo } from './compare/machine.ts';
import type { MachineInfo } from './compare/machine.ts';
import { cpuSnapshot, cpuSpent, memoryMiB } from './compare/procfs.ts';
import type { MemoryPhase } from './compare/memory.ts';
import { measureMemory, memoryLines } from './compare/memory.ts';
import type { MemoryRun, Scenario, ScenarioRun } from './compare/scenarios.ts';
import { rows, SCENARIOS } from './compare/scenarios.ts';

interface Options {
  quick: boolean;
  rounds: number;
  json: boolean;
  only: SystemName | null;
  scenarios: string[] | null;
  durationSec: number;
  warmupSec: number;
  keys: number;
  /** Unmeasured seconds of puts after the preload: Tessera's JIT needs ~20 s of load to settle. */
  serverWarmupSec: number;
  etcdPort: number;
  tesseraPort: number;
  profileDir: string | null;
  out: string;
  /** Keys loaded for the memory phase; 0 = no memory phase. */
  memoryKeys: number;
  memorySettleSec: number;
}

function parseArgs(argv: string[]): Options {
  const has = (flag: string) => argv.includes(flag);
  const value = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const quick = has('--quick');
  const only = value('--only');
  if (only !== undefined && only !== 'etcd' && only !== 'tessera') throw new Error('--only etcd|tessera');
  return {
    quick,
    rounds: Number(value('--rounds') ?? 2),
    json: has('--json'),
    only: only ?? null,
    scenarios: value('--scenarios')?.split(',') ?? null,
    durationSec: Number(value('--duration') ?? (quick ? 1 : 3)),
    warmupSec: Number(value('--warmup') ?? (quick ? 0.5 : 1)),
    keys: Number(value('--keys') ?? (quick ? 2_000 : 10_000)),
    serverWarmupSec: Number(value('--server-warmup') ?? (quick ? 2 : 8)),
    etcdPort: Number(value('--etcd-port') ?? 12379),
    tesseraPort: Number(value('--tessera-port') ?? 2479), // 2479, 22479, 32479: below the ephemeral range
    profileDir: value('--profile') ?? null,
    out: value('--out') ?? join(tmpdir(), 'tessera-bench-compare.json'),
    memoryKeys: Number(value('--memory-keys') ?? 0),
    memorySettleSec: Number(value('--memory-settle') ?? 5),
  };
}

const startedAt = Date.now();

function log(message: string): void {
  process.stderr.write(`[bench:compare +${Math.round((Date.now() - startedAt) / 1000)}s] ${message}\n`);
}

/** Seconds `scenario` is measured: --duration, or its minimum outside --quick. */
function measuredSec(options: Options, scenario: Scenario): number {
  return options.quick ? options.durationSec : Math.max(options.durationSec, scenario.minDurationSec ?? 0);
}

/** " (watch 10 s)" for the scenarios run that are measured longer than --duration, else "". */
function longerRuns(options: Options, run: Scenario[]): string {
  const longer = run.filter((s) => measuredSec(options, s) > options.durationSec).map((s) => `${s.id} ${measuredSec(options, s)} s`);
  return longer.length === 0 ? '' : ` (${longer.join(', ')})`;
}

function scenarioConfig(options: Options, scenario: Scenario, endpoints: string[]): BenchConfig {
  return {
    ...DEFAULT_CONFIG,
    endpoints,
    durationSec: measuredSec(options, scenario),
    warmupSec: options.warmupSec,
    keySpace: options.keys,
    valSize: 256,
    ...scenario.config,
  };
}

/** The endpoints a scenario runs against: all of them, or the one its `target` names (null: none). */
async function scenarioEndpoints(scenario: Scenario, endpoints: string[]): Promise<string[] | null> {
  if (scenario.target === undefined) return endpoints;
  const endpoint = await findTarget(endpoints, scenario.target);
  return endpoint === null ? null : [endpoint];
}

async function startCluster(system: SystemName, options: Options, root: string, round: number | 'memory'): Promise<BenchCluster> {
  const name = round === 'memory' ? 'memory' : `round${round}`;
  const dir = join(root, `${system}-${name}`);
  if (system === 'etcd') return startEtcd(dir, options.etcdPort);
  const env: NodeJS.ProcessEnv = {};
  if (options.profileDir !== null) {
    const profileDir = join(options.profileDir, name);
    mkdirSync(profileDir, { recursive: true });
    // Node refuses --cpu-prof in NODE_OPTIONS; this preload profiles each node from start to stop.
    const preload = fileURLToPath(new URL('./cpu-profile.mjs', import.meta.url));
    env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --import ${preload}`.trim();
    env.TESSERA_CPU_PROFILE_DIR = profileDir;
  }
  return startTessera(dir, options.tesseraPort, env);
}

/** Loads the key space once (sequential puts), then reads each node's RSS. */
async function preload(cluster: BenchCluster, options: Options, round: number): Promise<MemoryRun> {
  await runBench(
    { ...DEFAULT_CONFIG, workload: 'put', endpoints: cluster.endpoints, total: options.keys, warmupSec: 0, keySpace: options.keys, distribution: 'sequential', valSize: 256 },
    { progress: false },
  );
  await new Promise((r) => setTimeout(r, 500));
  return {
    round,
    system: cluster.system,
    keys: options.keys,
    rssAfterKeysMiB: cluster.nodePids.map((pid) => round1(memoryMiB(pid, 'VmRSS') ?? Number.NaN)),
    peakRssMiB: [],
  };
}

/** A round's cluster of one system, loaded and warmed up. */
interface LiveCluster {
  system: SystemName;
  cluster: BenchCluster;
  memory: MemoryRun;
}

/** Starts a fresh cluster of `system`, loads the key space, then runs the unmeasured puts. */
async function bringUp(system: SystemName, options: Options, root: string, round: number): Promise<LiveCluster> {
  log(`round ${round}: starting ${system}`);
  const cluster = await startCluster(system, options, root, round);
  try {
    log(`round ${round}: ${system} serving; loading ${options.keys} keys, then ${options.serverWarmupSec} s of unmeasured puts`);
    const memory = await preload(cluster, options, round);
    await runBench(
      { ...DEFAULT_CONFIG, workload: 'put', endpoints: cluster.endpoints, durationSec: options.serverWarmupSec, warmupSec: 0, keySpace: options.keys, valSize: 256 },
      { progress: false },
    );
    return { system, cluster, memory };
  } catch (error) {
    await cluster.stop();
    throw error;
  }
}

/** One measured run of `scenario` on a live cluster, with the cluster's CPU over it; null if it could not run. */
async function runScenario(live: LiveCluster, options: Options, round: number, scenario: Scenario): Promise<ScenarioRun | null> {
  const { system, cluster } = live;
  const endpoints = await scenarioEndpoints(scenario, cluster.endpoints);
  if (endpoints === null) {
    log(`round ${round}: ${system} ${scenario.id} skipped: no ${scenario.target ?? ''} endpoint found`);
    return null;
  }
  let before = new Map<number, number>();
  let clusterCpuSec = 0;
  const result = await runBench(scenarioConfig(options, scenario, endpoints), {
    progress: false,
    onMeasureStart: () => (before = cpuSnapshot(cluster.processes)),
    onMeasureEnd: () => (clusterCpuSec = cpuSpent(before, cpuSnapshot(cluster.processes))),
  }).catch((error: unknown) => {
    log(`round ${round}: ${system} ${scenario.id} failed: ${(error as Error).message}`);
    return null;
  });
  if (result === null) return null;
  log(`round ${round}: ${system} ${scenario.id}: ${result.opsPerSec} ops/s, p50 ${result.latency.p50Ms} ms, p99 ${result.latency.p99Ms} ms, cluster CPU ${round3(clusterCpuSec)} s, errors ${result.errors}`);
  return { round, system, scenario: scenario.id, result, clusterCpuSec: round3(clusterCpuSec) };
}

/**
 * One round: a fresh cluster of each system, both kept running, then every scenario on one and
 * right after on the other (the other idles meanwhile), which goes first alternating scenario by
 * scenario and round by round. The VM's speed drifts over minutes; the two runs of a scenario are
 * seconds apart, so the drift lands on both (before session 8 each system ran all its scenarios in
 * turn, a minute apart, and one run's put-throughput ratio swung between 1.08 and 1.50).
 */
async function runRound(systems: SystemName[], options: Options, root: string, round: number, scenarios: Scenario[]) {
  const live: LiveCluster[] = [];
  const runs: ScenarioRun[] = [];
  try {
    for (const system of systems) live.push(await bringUp(system, options, root, round));
    for (const [i, scenario] of scenarios.entries()) {
      const order = (round + i) % 2 === 1 ? live : [...live].reverse();
      for (const cluster of order) {
        const run = await runScenario(cluster, options, round, scenario);
        if (run !== null) runs.push(run);
      }
    }
    for (const { cluster, memory } of live) memory.peakRssMiB = cluster.nodePids.map((pid) => round1(memoryMiB(pid, 'VmHWM') ?? Number.NaN));
    return { runs, memory: live.map((l) => l.memory) };
  } finally {
    await Promise.all(live.map((l) => l.cluster.stop()));
  }
}

/** The memory phase on a fresh cluster of `system` (bench/compare/memory.ts). */
async function runMemoryPhase(system: SystemName, options: Options, root: string): Promise<MemoryPhase> {
  log(`memory: starting ${system}`);
  const cluster = await startCluster(system, options, root, 'memory');
  try {
    log(`memory: ${system} serving; loading ${options.memoryKeys} keys in Txns of 100 puts`);
    const phase = await measureMemory(cluster, options.memoryKeys, options.memorySettleSec, root);
    const snapshot = phase.snapshot === null
      ? `snapshot failed: ${phase.snapshotError}`
      : `snapshot save from node 1: ${phase.snapshot.bytes} bytes in ${phase.snapshot.seconds.toFixed(1)} s, RSS ${phase.snapshot.rssBeforeMiB} -> peak ${phase.snapshot.rssPeakMiB} -> ${phase.snapshot.rssAfterMiB} MiB`;
    log(
      `memory: ${system}: ${phase.keys} keys in ${phase.loadSec} s (${phase.keysPerSec} keys/s, ${phase.errors} errors${phase.errors > 0 ? ` ${JSON.stringify(phase.errorKinds)}` : ''}); ` +
        `RSS per node ${phase.rssMiB.join(' / ')} MiB, VmHWM ${phase.hwmMiB.join(' / ')} MiB; ${snapshot}`,
    );
    return phase;
  } finally {
    await cluster.stop();
  }
}

const round1 = (x: number) => Math.round(x * 10) / 10;
const round3 = (x: number) => Math.round(x * 1000) / 1000;

function format(value: number | null): string {
  if (value === null) return 'n/a';
  if (Math.abs(value) >= 100) return value.toFixed(0);
  if (Math.abs(value) >= 10) return value.toFixed(1);
  return value.toFixed(value >= 1 ? 2 : 3);
}

interface TableLine {
  label: string;
  unit: string;
  better: string;
  etcd: number | null;
  tessera: number | null;
  ratio: number | null;
}

function table(runs: ScenarioRun[], memory: MemoryRun[], options: Options, rounds: number): TableLine[] {
  const lines: TableLine[] = [];
  for (const row of rows(options.keys)) {
    const medianOf = (system: string) => {
      const values: number[] = [];
      for (let r = 1; r <= rounds; r++) {
        const value = row.value(
          runs.filter((run) => run.round === r && run.system === system),
          memory.find((m) => m.round === r && m.system === system),
        );
        if (value !== null) values.push(value);
      }
      return median(values);
    };
    const etcd = medianOf('etcd');
    const tessera = medianOf('tessera');
    if (etcd === null && tessera === null) continue;
    const ratio = etcd !== null && tessera !== null && etcd !== 0 ? Math.round((tessera / etcd) * 100) / 100 : null;
    lines.push({ label: row.label, unit: row.unit, better: row.better, etcd, tessera, ratio });
  }
  return lines;
}

function withRatio(line: Omit<TableLine, 'ratio'>): TableLine {
  const { etcd, tessera } = line;
  return { ...line, ratio: etcd !== null && tessera !== null && etcd !== 0 ? Math.round((tessera / etcd) * 100) / 100 : null };
}

function renderTable(lines: TableLine[]): string {
  const out = ['| metric | unit | etcd | Tessera | Tessera/etcd |', '| --- | --- | ---: | ---: | ---: |'];
  for (const line of lines) {
    const arrow = line.better === 'higher' ? '↑' : '↓';
    out.push(`| ${line.label} ${arrow} | ${line.unit} | ${format(line.etcd)} | ${format(line.tessera)} | ${line.ratio === null ? 'n/a' : line.ratio.toFixed(2)} |`);
  }
  return out.join('\n');
}

function renderMachine(machine: MachineInfo): string {
  return [
    `machine: ${machine.cores} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB RAM, Linux ${machine.kernel}, Node ${machine.node}, ${machine.etcd ?? 'etcd not installed'}`,
    `disk: 4 KiB write+fdatasync p50 ${machine.fsync.p50Ms} ms, p99 ${machine.fsync.p99Ms} ms (${machine.fsync.dir})`,
    `load average at start: ${machine.loadAverageAtStart.join(' ')}, at end: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`,
  ].join('\n');
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const etcd = etcdVersion();
  let systems: SystemName[] = options.only === null ? ['etcd', 'tessera'] : [options.only];
  if (etcd === null && systems.includes('etcd')) {
    console.log('etcd is NOT installed (run `npm run setup:tools`): measuring Tessera only, no ratios.');
    systems = systems.filter((s) => s !== 'etcd');
  }
  const scenarios = SCENARIOS.filter((s) => (options.scenarios === null ? !options.quick || s.quick : options.scenarios.includes(s.id)));
  // `--scenarios none` (or any list naming no scenario): no rounds at all, e.g. for the memory phase alone.
  const rounds = scenarios.length === 0 ? 0 : options.rounds;
  const root = mkdtempSync(join(tmpdir(), 'tessera-bench-compare-'));
  const started = Date.now();
  try {
    const machine = machineInfo(root, etcd);
    log(renderMachine(machine));
    const runs: ScenarioRun[] = [];
    const memory: MemoryRun[] = [];
    for (let round = 1; round <= rounds; round++) {
      const result = await runRound(systems, options, root, round, scenarios);
      runs.push(...result.runs);
      memory.push(...result.memory);
    }
    const memoryPhases: MemoryPhase[] = [];
    if (options.memoryKeys > 0) for (const system of systems) memoryPhases.push(await runMemoryPhase(system, options, root));
    const lines = [...table(runs, memory, options, rounds), ...memoryLines(memoryPhases).map(withRatio)];
    const report = {
      command: `npm run bench:compare -- ${process.argv.slice(2).join(' ')}`.trim(),
      machine,
      rounds,
      durationSec: options.durationSec,
      warmupSec: options.warmupSec,
      keys: options.keys,
      elapsedSec: Math.round((Date.now() - started) / 1000),
      table: lines,
      memory,
      memoryPhases,
      runs,
    };
    writeFileSync(options.out, JSON.stringify(report, null, 2));
    if (options.json) {
      console.log(JSON.stringify(report, null, 2));
      return;
    }
    console.log(renderMachine(machine));
    console.log(
      (rounds === 0
        ? `no workload rounds (systems: ${systems.join(', ')}); `
        : `rounds: ${rounds} (each workload on ${systems.join(' and ')} back to back, alternating which goes first), ${options.durationSec} s measured per workload${longerRuns(options, scenarios)} after ${options.warmupSec} s warm-up, ` +
          `${options.keys} keys and ${options.serverWarmupSec} s of unmeasured puts first, 256-byte values, medians over rounds; `) +
        (memoryPhases.length > 0 ? `memory phase: ${options.memoryKeys} keys in Txns of 100 puts on a fresh cluster, RSS after ${options.memorySettleSec} s; ` : '') +
        `↑ higher is better, ↓ lower is better; took ${report.elapsedSec} s`,
    );
    console.log(renderTable(lines));
    console.log(`raw results: ${options.out}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(`bench:compare: ${(error as Error).stack ?? String(error)}`);
  process.exit(1);
});
