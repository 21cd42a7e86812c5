// The workloads the side-by-side comparison runs on both systems, and the table rows it reports.
import type { BenchConfig, BenchResult } from '../../src/bench/index.ts';

export interface Scenario {
  id: string;
  label: string;
  /** Settings on top of the comparison's defaults. */
  config: Partial<BenchConfig> & Pick<BenchConfig, 'workload'>;
  /** Part of a --quick run. */
  quick: boolean;
  /**
   * Seconds measured at least (outside --quick), whatever --duration says. Watch: at 10 puts/s a
   * 3 s run is 30 puts, and its p99 is the slowest of them; 10 s makes it the slowest 1 in 100.
   */
  minDurationSec?: number;
  /**
   * The one endpoint the scenario uses, chosen just before it runs: the Raft leader, or a follower.
   * Unset: every endpoint. A single client's write latency depends on it (through a follower, two
   * more hops), and which node leads is chance, so an unpinned single-client run is bimodal.
   */
  target?: 'leader' | 'follower';
}

/** 10,000 watchers, as asked; one putter at 10 puts/s makes 100,000 events/s. */
export const WATCHERS = 10_000;

export const SCENARIOS: Scenario[] = [
  // 10 s: a Tessera node snapshots its whole state every 100,000 applied puts, about every 10 s at
  // this rate. A 3 s window held a whole snapshot or none, and the median of four rounds usually
  // none (session 8); 10 s holds about one, so its cost counts as it does in a long run.
  { id: 'put100', label: 'put, 100 clients', config: { workload: 'put', clients: 100, conns: 10 }, quick: true, minDurationSec: 10 },
  { id: 'put1', label: 'put, 1 client, to the leader', config: { workload: 'put', clients: 1, conns: 1 }, quick: true, target: 'leader' },
  { id: 'put1f', label: 'put, 1 client, through a follower', config: { workload: 'put', clients: 1, conns: 1 }, quick: true, target: 'follower' },
  { id: 'getL', label: 'get linearizable, 100 clients', config: { workload: 'get', consistency: 'l', clients: 100, conns: 10 }, quick: true },
  { id: 'getS', label: 'get serializable, 100 clients', config: { workload: 'get', consistency: 's', clients: 100, conns: 10 }, quick: true },
  { id: 'txn', label: 'txn compare-and-swap, 100 clients', config: { workload: 'txn', clients: 100, conns: 10 }, quick: false },
  { id: 'ycsbA', label: 'YCSB A (50% read, zipfian), 100 clients', config: { workload: 'mixed', readRatio: 0.5, distribution: 'zipfian', clients: 100, conns: 10 }, quick: false },
  { id: 'ycsbB', label: 'YCSB B (95% read, zipfian), 100 clients', config: { workload: 'mixed', readRatio: 0.95, distribution: 'zipfian', clients: 100, conns: 10 }, quick: false },
  {
    id: 'watch',
    label: `watch: ${WATCHERS} watchers on one prefix, 1 putter at 10/s`,
    config: { workload: 'watch', watchers: WATCHERS, watchStreams: 100, clients: 1, conns: 10, rate: 10, keyPrefix: 'watch/' },
    quick: true,
    minDurationSec: 10,
  },
  { id: 'lease', label: 'lease keepalive, 100 clients', config: { workload: 'lease', clients: 100, conns: 10 }, quick: false },
];

/** One system's figures for one scenario in one round. */
export interface ScenarioRun {
  round: number;
  system: string;
  scenario: string;
  result: BenchResult;
  /** CPU seconds of all the cluster's processes during the measured window. */
  clusterCpuSec: number;
}

export interface MemoryRun {
  round: number;
  system: string;
  keys: number;
  /** VmRSS of each node after loading `keys` keys, MiB. */
  rssAfterKeysMiB: number[];
  /** VmHWM of each node at the end of the round, MiB. */
  peakRssMiB: number[];
}

export interface Row {
  label: string;
  unit: string;
  better: 'higher' | 'lower';
  /** The figure from one round's runs of one system, or null when not measured. */
  value(runs: ScenarioRun[], memory: MemoryRun | undefined): number | null;
}

function pick(scenario: string, get: (run: ScenarioRun) => number): Row['value'] {
  return (runs) => {
    const run = runs.find((r) => r.scenario === scenario);
    return run === undefined ? null : get(run);
  };
}

const cpuPer10k = (run: ScenarioRun) => (run.result.ops > 0 ? (run.clusterCpuSec / run.result.ops) * 10_000 : Number.NaN);

export function rows(keys: number): Row[] {
  return [
    { label: 'put throughput, 100 clients', unit: 'ops/s', better: 'higher', value: pick('put100', (r) => r.result.opsPerSec) },
    { label: 'put p50, 100 clients', unit: 'ms', better: 'lower', value: pick('put100', (r) => r.result.latency.p50Ms) },
    { label: 'put p99, 100 clients', unit: 'ms', better: 'lower', value: pick('put100', (r) => r.result.latency.p99Ms) },
    { label: 'put p50, 1 client, to the leader', unit: 'ms', better: 'lower', value: pick('put1', (r) => r.result.latency.p50Ms) },
    { label: 'put p99, 1 client, to the leader', unit: 'ms', better: 'lower', value: pick('put1', (r) => r.result.latency.p99Ms) },
    { label: 'put p50, 1 client, through a follower', unit: 'ms', better: 'lower', value: pick('put1f', (r) => r.result.latency.p50Ms) },
    { label: 'put p99, 1 client, through a follower', unit: 'ms', better: 'lower', value: pick('put1f', (r) => r.result.latency.p99Ms) },
    { label: 'CPU per 10k puts (cluster, 100 clients)', unit: 's', better: 'lower', value: pick('put100', cpuPer10k) },
    { label: 'get linearizable throughput, 100 clients', unit: 'ops/s', better: 'higher', value: pick('getL', (r) => r.result.opsPerSec) },
    { label: 'get linearizable p99', unit: 'ms', better: 'lower', value: pick('getL', (r) => r.result.latency.p99Ms) },
    { label: 'CPU per 10k linearizable gets', unit: 's', better: 'lower', value: pick('getL', cpuPer10k) },
    { label: 'get serializable throughput, 100 clients', unit: 'ops/s', better: 'higher', value: pick('getS', (r) => r.result.opsPerSec) },
    { label: 'get serializable p99', unit: 'ms', better: 'lower', value: pick('getS', (r) => r.result.latency.p99Ms) },
    { label: 'txn CAS throughput, 100 clients', unit: 'ops/s', better: 'higher', value: pick('txn', (r) => r.result.opsPerSec) },
    { label: 'txn CAS p99', unit: 'ms', better: 'lower', value: pick('txn', (r) => r.result.latency.p99Ms) },
    { label: 'YCSB A throughput', unit: 'ops/s', better: 'higher', value: pick('ycsbA', (r) => r.result.opsPerSec) },
    { label: 'YCSB A p99', unit: 'ms', better: 'lower', value: pick('ycsbA', (r) => r.result.latency.p99Ms) },
    { label: 'YCSB B throughput', unit: 'ops/s', better: 'higher', value: pick('ycsbB', (r) => r.result.opsPerSec) },
    { label: 'YCSB B p99', unit: 'ms', better: 'lower', value: pick('ycsbB', (r) => r.result.latency.p99Ms) },
    { label: `watch events/s (${WATCHERS} watchers)`, unit: 'ev/s', better: 'higher', value: pick('watch', (r) => r.result.watch?.eventsPerSec ?? Number.NaN) },
    { label: 'watch put-to-event p50', unit: 'ms', better: 'lower', value: pick('watch', (r) => r.result.watch?.eventLatency.p50Ms ?? Number.NaN) },
    { label: 'watch put-to-event p99', unit: 'ms', better: 'lower', value: pick('watch', (r) => r.result.watch?.eventLatency.p99Ms ?? Number.NaN) },
    { label: 'lease keepalives/s, 100 clients', unit: 'ops/s', better: 'higher', value: pick('lease', (r) => r.result.opsPerSec) },
    {
      label: `RSS after ${keys} keys (largest node)`,
      unit: 'MiB',
      better: 'lower',
      value: (_runs, memory) => (memory === undefined ? null : Math.max(...memory.rssAfterKeysMiB)),
    },
    {
      label: 'peak RSS (largest node, whole run)',
      unit: 'MiB',
      better: 'lower',
      value: (_runs, memory) => (memory === undefined ? null : Math.max(...memory.peakRssMiB)),
    },
    { label: 'bench client CPU per put (100 clients)', unit: 'µs', better: 'lower', value: pick('put100', (r) => r.result.client.cpuUsPerOp) },
  ];
}
