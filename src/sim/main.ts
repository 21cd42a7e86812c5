// `npm run sim -- --seeds N --start S [--nodes 3|5|7] [--steps K] [--verbose] [--workers W] [--schedule S] [--fault F]`
// Runs N seeds from S (spread over worker threads); prints each failure with its replay command.
// The last line is always `sim: N seeds, F failed`; the exit code is non-zero when F > 0.
// Wall-clock time is read here only, for the elapsed-time report, never inside a simulation.
import { availableParallelism } from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { DEFAULT_STEPS, SCHEDULES, replayCommand, runSimulation } from './index.ts';
import type { Schedule, SimResult, TestingFault } from './index.ts';

interface CliOptions {
  seeds: number;
  start: number;
  nodes: number | undefined;
  steps: number;
  verbose: boolean;
  workers: number;
  fault: TestingFault | undefined;
  schedule: Schedule | undefined;
}

const FAULTS: readonly TestingFault[] = [
  'commitOldTermByCounting',
  'grantEveryVote',
  'skipAppendConsistencyCheck',
];
/** Bound on seeds per run, so a typo cannot start a day-long run. */
const MAX_SEEDS = 10_000_000;

const USAGE =
  'usage: npm run sim -- --seeds N --start S [--nodes 3|5|7] [--steps K] [--verbose] [--workers W] ' +
  `[--schedule ${SCHEDULES.join('|')}] [--fault ${FAULTS.join('|')}]`;

class UsageError extends Error {
  override name = 'UsageError';
}

function parseInteger(flag: string, value: string | undefined, min: number, max: number): number {
  const parsed = Number(value);
  if (value === undefined || !Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
    throw new UsageError(`${flag} needs an integer in [${min}, ${max}], got ${value ?? 'nothing'}`);
  }
  return parsed;
}

function parseArgs(argv: readonly string[]): CliOptions {
  const options: CliOptions = {
    seeds: 1,
    start: 1,
    nodes: undefined,
    steps: DEFAULT_STEPS,
    verbose: false,
    workers: Math.max(1, Math.min(2, availableParallelism())),
    fault: undefined,
    schedule: undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = (): string | undefined => argv[++i];
    switch (flag) {
      case '--seeds':
        options.seeds = parseInteger(flag, value(), 1, MAX_SEEDS);
        break;
      case '--start':
        options.start = parseInteger(flag, value(), 0, 2 ** 31);
        break;
      case '--nodes': {
        const nodes = parseInteger(flag, value(), 3, 7);
        if (nodes % 2 === 0) throw new UsageError('--nodes must be 3, 5 or 7');
        options.nodes = nodes;
        break;
      }
      case '--steps':
        options.steps = parseInteger(flag, value(), 0, 10_000_000);
        break;
      case '--workers':
        options.workers = parseInteger(flag, value(), 1, 64);
        break;
      case '--verbose':
        options.verbose = true;
        break;
      case '--fault': {
        const fault = value();
        const known = FAULTS.find((name) => name === fault);
        if (known === undefined) throw new UsageError(`--fault must be one of ${FAULTS.join(', ')}`);
        options.fault = known;
        break;
      }
      case '--schedule': {
        const schedule = value();
        const known = SCHEDULES.find((name) => name === schedule);
        if (known === undefined) throw new UsageError(`--schedule must be one of ${SCHEDULES.join(', ')}`);
        options.schedule = known;
        break;
      }
      default:
        throw new UsageError(`unknown argument ${flag}`);
    }
  }
  return options;
}

/** Plain-data summary of one seed, small enough to post from a worker. */
interface SeedReport {
  seed: number;
  ok: boolean;
  text: string;
}

function runSeed(seed: number, options: CliOptions, log: ((line: string) => void) | undefined): SeedReport {
  const result = runSimulation({
    seed,
    steps: options.steps,
    ...(options.nodes === undefined ? {} : { nodes: options.nodes }),
    ...(options.fault === undefined ? {} : { testingFault: options.fault }),
    ...(options.schedule === undefined ? {} : { schedule: options.schedule }),
    ...(log === undefined ? {} : { log }),
  });
  return { seed, ok: result.ok, text: formatResult(result, options) };
}

function formatResult(result: SimResult, options: CliOptions): string {
  const stats = result.stats;
  const summary =
    `seed ${result.seed} (${result.nodes} nodes): ${result.ok ? 'ok' : 'FAILED'} ticks=${stats.ticks} events=${stats.events} ` +
    `writes=${stats.writesApplied} reads=${stats.readsServed} terms=${stats.leaderTerms} crashes=${stats.crashes} ` +
    `partitions=${stats.partitions} snapshots=${stats.snapshots}/${stats.snapshotsInstalled} confChanges=${stats.confChanges}/${stats.confChangesApplied} ` +
    `transfers=${stats.transfers} hash=${result.traceHash}`;
  if (result.failure === null) return summary;
  const failure = result.failure;
  return [
    summary,
    `  invariant broken: ${failure.invariant}`,
    `  ${failure.message.split('\n').join('\n  ')}`,
    `  detected at tick ${failure.step}; last ${failure.trace.length} events:`,
    ...failure.trace.map((line) => `    ${line}`),
    `  replay: ${replayCommand(result, options.fault)}`,
  ].join('\n');
}

function seedsOf(options: CliOptions, worker: number, workers: number): number[] {
  const seeds: number[] = [];
  for (let i = worker; i < options.seeds; i += workers) seeds.push(options.start + i);
  return seeds;
}

async function runWorkers(options: CliOptions, workers: number): Promise<SeedReport[]> {
  const api = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(api)}).then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}); })`;
  const runs = Array.from({ length: workers }, (_, index) => {
    return new Promise<SeedReport[]>((resolve, reject) => {
      const worker = new Worker(code, {
        eval: true,
        workerData: { options, seeds: seedsOf(options, index, workers) },
      });
      worker.once('message', (reports: SeedReport[]) => resolve(reports));
      worker.once('error', reject);
      worker.once('exit', (exitCode) => {
        if (exitCode !== 0) reject(new Error(`sim worker ${index} exited with code ${exitCode}`));
      });
    });
  });
  return (await Promise.all(runs)).flat().sort((a, b) => a.seed - b.seed);
}

async function main(): Promise<void> {
  let options: CliOptions;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`sim: ${error.message}\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  const startedMs = performance.now();
  const workers = options.verbose ? 1 : Math.min(options.workers, Math.ceil(options.seeds / 4));
  let reports: SeedReport[];
  if (workers <= 1) {
    const log = options.verbose ? (line: string) => console.log(line) : undefined;
    reports = seedsOf(options, 0, 1).map((seed) => runSeed(seed, options, log));
  } else {
    reports = await runWorkers(options, workers);
  }
  const failed = reports.filter((report) => !report.ok);
  for (const report of reports) {
    if (!report.ok || options.verbose || options.seeds <= 10) console.log(report.text);
  }
  const elapsedSeconds = (performance.now() - startedMs) / 1000;
  console.log(
    `sim: elapsed ${elapsedSeconds.toFixed(1)} s on ${workers} worker${workers === 1 ? '' : 's'}, ${options.steps} steps per seed`,
  );
  console.log(`sim: ${reports.length} seeds, ${failed.length} failed`);
  process.exitCode = failed.length > 0 ? 1 : 0;
}

if (isMainThread) {
  await main();
} else {
  const data = workerData as { options: CliOptions; seeds: number[] };
  parentPort?.postMessage(data.seeds.map((seed) => runSeed(seed, data.options, undefined)));
}
