// The benchmark's main thread: splits the run over worker threads, drives the phases (warm-up,
// measure, stop), shows progress, and merges what the workers measured into one result.
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { assert } from '../util/index.ts';
import type { BenchConfig, Workload } from './config.ts';
import { validateConfig } from './config.ts';
import type { LatencySummary } from './histogram.ts';
import { Histogram } from './histogram.ts';
import { ProgressBar } from './progress.ts';
import type { FromWorker, ToWorker, WorkerInit, WorkerResult } from './protocol.ts';
import { wallMs } from './run-state.ts';

export interface BenchResult {
  workload: Workload;
  endpoints: string[];
  settings: Omit<BenchConfig, 'workload' | 'endpoints'>;
  /** Successful measured operations (watch: puts). */
  ops: number;
  errors: number;
  errorKinds: Record<string, number>;
  elapsedSec: number;
  opsPerSec: number;
  latency: LatencySummary;
  /** mixed: reads and writes separately. */
  read?: LatencySummary;
  write?: LatencySummary;
  /** watch: events received by all watchers, their rate, and put-to-event latency. */
  watch?: { watchers: number; events: number; eventsPerSec: number; eventLatency: LatencySummary; clientCpuUsPerEvent: number };
  /** txn: how many compare-and-swaps took the success branch. */
  txn?: { succeeded: number; failed: number };
  /** load: keys written by the measured Txns (`batch` puts each) and their rate. */
  load?: { batch: number; keys: number; keysPerSec: number };
  /** CPU of the benchmark process itself (all threads) while measuring. */
  client: { cpuSec: number; cpuUsPerOp: number };
}

/** Called at the edges of the measured window (the comparison samples server CPU there). */
export interface BenchHooks {
  onMeasureStart?(): void;
  onMeasureEnd?(): void;
  /** Draw a progress bar on stderr when it is a TTY (default true). */
  progress?: boolean;
}

export class BenchError extends Error {
  override name = 'BenchError';
}

const READY_TIMEOUT_MS = 180_000;
const RESULT_TIMEOUT_MS = 15_000;
/** watch with --total: after the last put, how long to wait for the remaining events. */
const WATCH_DRAIN_MS = 3_000;
const TICK_MS = 100;

function share(n: number, parts: number, index: number): number {
  return Math.floor(n / parts) + (index < n % parts ? 1 : 0);
}

/** Each worker's part: connections round-robin over endpoints, clients/total/watchers split evenly. */
export function planWorkers(config: BenchConfig): WorkerInit[] {
  const withClients = config.workload === 'watch' ? Number.MAX_SAFE_INTEGER : config.clients;
  const workers = Math.max(1, Math.min(config.workers, config.conns, withClients));
  const plans: WorkerInit[] = Array.from({ length: workers }, (_, index) => ({
    config,
    index,
    workers,
    connEndpoints: [],
    clients: share(config.clients, workers, index),
    total: config.total === null ? null : share(config.total, workers, index),
    rate: null,
    watchers: 0,
    watchStreams: 0,
  }));
  for (let c = 0; c < config.conns; c++) plans[c % workers].connEndpoints.push(config.endpoints[c % config.endpoints.length]);
  for (let s = 0; s < config.watchStreams; s++) {
    plans[s % workers].watchStreams++;
    plans[s % workers].watchers += share(config.watchers, config.watchStreams, s);
  }
  for (const plan of plans) {
    if (config.rate !== null && config.clients > 0) plan.rate = (config.rate * plan.clients) / config.clients;
    if (plan.rate === 0) plan.rate = null;
  }
  assert(plans.reduce((sum, p) => sum + p.clients, 0) === config.clients, 'clients are all assigned');
  return plans;
}

function workerEntry(): URL {
  // Bundled (dist/node, scripts/build.mjs): the worker is bundled next to this file.
  if (import.meta.url.endsWith('.mjs')) return new URL('./bench-worker.mjs', import.meta.url);
  // Worker threads do not inherit tsx's loader, so a tiny bootstrap registers it before loading the
  // TypeScript worker (harmless where the code is already JavaScript).
  const tsx = import.meta.resolve('tsx/esm/api');
  const target = new URL('./worker.ts', import.meta.url).href;
  const code = `import { register } from ${JSON.stringify(tsx)}; register(); await import(${JSON.stringify(target)});`;
  return new URL(`data:text/javascript,${encodeURIComponent(code)}`);
}

interface WorkerState {
  worker: Worker;
  ready: boolean;
  progress: { ops: number; errors: number; events: number; claimed: number };
  result: WorkerResult | null;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs one benchmark; throws BenchError when the run cannot produce numbers. */
export async function runBench(config: BenchConfig, hooks: BenchHooks = {}): Promise<BenchResult> {
  const invalid = validateConfig(config);
  if (invalid !== null) throw new BenchError(invalid);
  const plans = planWorkers(config);
  let failure: string | null = null;
  const states: WorkerState[] = plans.map((plan) => {
    const worker = new Worker(workerEntry(), { workerData: plan });
    const state: WorkerState = { worker, ready: false, progress: { ops: 0, errors: 0, events: 0, claimed: 0 }, result: null };
    worker.on('message', (message: FromWorker) => {
      if (message.type === 'ready') state.ready = true;
      else if (message.type === 'progress') state.progress = message;
      else if (message.type === 'done') state.result = message.result;
      else failure ??= message.message;
    });
    worker.on('error', (error) => (failure ??= `worker ${plan.index}: ${error.message}`));
    worker.on('exit', (code) => {
      if (state.result === null) failure ??= `worker ${plan.index} exited (code ${code}) before reporting`;
    });
    return state;
  });
  const send = (message: ToWorker) => states.forEach((s) => s.worker.postMessage(message));
  const waitFor = async (what: string, done: () => boolean, timeoutMs: number) => {
    const deadline = performance.now() + timeoutMs;
    while (!done()) {
      if (failure !== null) throw new BenchError(failure);
      if (performance.now() > deadline) throw new BenchError(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await sleep(TICK_MS / 4);
    }
  };
  const bar = hooks.progress === false ? null : ProgressBar.forStderr();
  try {
    await waitFor('the workers to connect and set up', () => states.every((s) => s.ready), READY_TIMEOUT_MS);
    const window = await drive(config, states, send, waitFor, bar, hooks, () => failure);
    await waitFor('the workers\' results', () => states.every((s) => s.result !== null), RESULT_TIMEOUT_MS);
    const results = states.map((s) => s.result).filter((r): r is WorkerResult => r !== null);
    return summarize(config, results, window);
  } finally {
    bar?.clear();
    await Promise.all(states.map((s) => s.worker.terminate()));
  }
}

interface MeasuredWindow {
  startWall: number;
  endWall: number;
  cpuMicros: number;
}

/** Warm-up, then the measured window; returns its bounds and the client CPU spent in it. */
async function drive(
  config: BenchConfig,
  states: WorkerState[],
  send: (message: ToWorker) => void,
  waitFor: (what: string, done: () => boolean, timeoutMs: number) => Promise<void>,
  bar: ProgressBar | null,
  hooks: BenchHooks,
  failure: () => string | null,
): Promise<MeasuredWindow> {
  const sum = (pick: (s: WorkerState) => number) => states.reduce((total, s) => total + pick(s), 0);
  if (config.warmupSec > 0) {
    send({ type: 'start', warmup: true });
    const warmupEnd = performance.now() + config.warmupSec * 1000;
    while (performance.now() < warmupEnd) {
      const fail = failure();
      if (fail !== null) throw new BenchError(fail);
      bar?.warmup();
      await sleep(TICK_MS);
    }
  }
  hooks.onMeasureStart?.();
  const cpuStart = process.cpuUsage();
  const startWall = wallMs();
  send(config.warmupSec > 0 ? { type: 'measure' } : { type: 'start', warmup: false });
  const expectedEvents = () => (config.total ?? 0) * config.watchers;
  let drainDeadline = Number.POSITIVE_INFINITY;
  while (true) {
    const fail = failure();
    if (fail !== null) throw new BenchError(fail);
    const elapsedSec = (wallMs() - startWall) / 1000;
    const ops = sum((s) => s.progress.ops + s.progress.errors);
    bar?.draw(config.total === null ? elapsedSec / config.durationSec : ops / config.total, ops, elapsedSec, sum((s) => s.progress.errors));
    if (config.total === null && elapsedSec >= config.durationSec) break;
    if (config.total !== null && config.workload !== 'watch' && states.every((s) => s.result !== null)) break;
    if (config.total !== null && config.workload === 'watch' && ops >= config.total) {
      drainDeadline = Math.min(drainDeadline, performance.now() + WATCH_DRAIN_MS);
      if (sum((s) => s.progress.events) >= expectedEvents() || performance.now() > drainDeadline) break;
    }
    await sleep(TICK_MS);
  }
  const stopWall = wallMs();
  send({ type: 'stop' });
  const cpu = process.cpuUsage(cpuStart);
  hooks.onMeasureEnd?.();
  await waitFor('the workers to stop', () => states.every((s) => s.result !== null), RESULT_TIMEOUT_MS);
  const lastCompletion = Math.max(...states.map((s) => s.result?.lastCompletionAt ?? 0));
  const endWall = config.total === null ? stopWall : Math.max(lastCompletion, startWall + 1);
  return { startWall, endWall, cpuMicros: cpu.user + cpu.system };
}

function summarize(config: BenchConfig, results: WorkerResult[], window: MeasuredWindow): BenchResult {
  const merged = new Map<string, Histogram>();
  const counters: Record<string, number> = {};
  const errorKinds: Record<string, number> = {};
  for (const result of results) {
    for (const [name, snapshot] of Object.entries(result.histograms)) {
      const histogram = merged.get(name) ?? new Histogram();
      histogram.merge(snapshot);
      merged.set(name, histogram);
    }
    for (const [name, value] of Object.entries(result.counters)) counters[name] = (counters[name] ?? 0) + value;
    for (const [kind, count] of Object.entries(result.errorKinds)) errorKinds[kind] = (errorKinds[kind] ?? 0) + count;
  }
  const ops = results.reduce((total, r) => total + r.ops, 0);
  const elapsedSec = (window.endWall - window.startWall) / 1000;
  const summary = (name: string) => (merged.get(name) ?? new Histogram()).summary();
  const { workload, endpoints, ...settings } = config;
  const result: BenchResult = {
    workload,
    endpoints,
    settings,
    ops,
    errors: results.reduce((total, r) => total + r.errors, 0),
    errorKinds,
    elapsedSec: round(elapsedSec, 3),
    opsPerSec: round(ops / elapsedSec, 1),
    latency: summary('all'),
    client: { cpuSec: round(window.cpuMicros / 1e6, 3), cpuUsPerOp: ops > 0 ? round(window.cpuMicros / ops, 1) : 0 },
  };
  if (workload === 'mixed') {
    result.read = summary('read');
    result.write = summary('write');
  }
  if (workload === 'watch') {
    const events = counters.events ?? 0;
    result.watch = {
      watchers: config.watchers,
      events,
      eventsPerSec: round(events / elapsedSec, 1),
      eventLatency: summary('event'),
      clientCpuUsPerEvent: events > 0 ? round(window.cpuMicros / events, 2) : 0,
    };
  }
  if (workload === 'txn') result.txn = { succeeded: counters.casSucceeded ?? 0, failed: counters.casFailed ?? 0 };
  if (workload === 'load') {
    const keys = counters.keys ?? 0;
    result.load = { batch: config.batch, keys, keysPerSec: round(keys / elapsedSec, 1) };
  }
  return result;
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
