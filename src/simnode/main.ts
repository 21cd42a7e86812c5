// `npm run sim:node -- --seeds N --start S [--nodes 3|5] [--duration MS] [--fault F] [--workaround B,…|all] [--verbose] [--workers W]`
// Runs N whole-node simulations from seed S (spread over worker threads); prints each failure with
// its trace tail and replay command. The last line is always `sim-node: N seeds, F failed`; the exit
// code is 1 when F > 0 and 2 for a usage error. Wall-clock time is read here only, for the report.
import { availableParallelism } from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { DEFAULT_DURATION_MS, KNOWN_BUGS, PLANTED_FAULTS, replayCommand, runNodeSimulation } from './index.ts';
import type { KnownBug, NodeSimResult, PlantedFault } from './index.ts';

interface CliOptions {
  seeds: number;
  start: number;
  nodes: number | undefined;
  durationMs: number;
  verbose: boolean;
  workers: number;
  fault: PlantedFault | undefined;
  workarounds: KnownBug[];
}

/** Bound on seeds per run, so a typo cannot start a week-long run. */
const MAX_SEEDS = 1_000_000;

const USAGE =
  'usage: npm run sim:node -- --seeds N --start S [--nodes 3|5] [--duration MS] [--verbose] [--workers W] ' +
  `[--fault ${PLANTED_FAULTS.join('|')}] [--workaround ${KNOWN_BUGS.join(',')}|all]`;

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
    durationMs: DEFAULT_DURATION_MS,
    verbose: false,
    workers: Math.max(1, Math.min(2, availableParallelism())),
    fault: undefined,
    workarounds: [],
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
        const nodes = parseInteger(flag, value(), 3, 5);
        if (nodes === 4) throw new UsageError('--nodes must be 3 or 5');
        options.nodes = nodes;
        break;
      }
      case '--duration':
        options.durationMs = parseInteger(flag, value(), 0, 3_600_000);
        break;
      case '--workers':
        options.workers = parseInteger(flag, value(), 1, 64);
        break;
      case '--verbose':
        options.verbose = true;
        break;
      case '--fault': {
        const fault = value();
        const known = PLANTED_FAULTS.find((name) => name === fault);
        if (known === undefined) throw new UsageError(`--fault must be one of ${PLANTED_FAULTS.join(', ')}`);
        options.fault = known;
        break;
      }
      case '--workaround': {
        const names = (value() ?? '').split(',').filter((name) => name !== '');
        const list = names.includes('all') ? [...KNOWN_BUGS] : names.map((name) => KNOWN_BUGS.find((bug) => bug === name));
        if (list.length === 0 || list.some((bug) => bug === undefined)) {
          throw new UsageError(`--workaround takes a comma-separated list of ${KNOWN_BUGS.join(', ')}, or all`);
        }
        options.workarounds = list.filter((bug) => bug !== undefined);
        break;
      }
      case '--help':
      case '-h':
        throw new UsageError('help');
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

async function runSeed(seed: number, options: CliOptions, log: ((line: string) => void) | undefined): Promise<SeedReport> {
  const result = await runNodeSimulation({
    seed,
    durationMs: options.durationMs,
    ...(options.nodes === undefined ? {} : { nodes: options.nodes }),
    ...(options.fault === undefined ? {} : { fault: options.fault }),
    workarounds: options.workarounds,
    ...(log === undefined ? {} : { log }),
  });
  return { seed, ok: result.ok, text: formatResult(result) };
}

export function formatResult(result: NodeSimResult): string {
  const s = result.stats;
  const summary =
    `seed ${result.seed} (${result.nodes} nodes): ${result.ok ? 'ok' : 'FAILED'} simulated=${s.simulatedMs}ms events=${s.events} ` +
    `ops=${s.ops} (ok ${s.ok}, failed ${s.failed}, unknown ${s.unknown}) leases=${s.leases} revision=${s.finalRevision} ` +
    `crashes=${s.crashes} pauses=${s.pauses} partitions=${s.partitions} transfers=${s.transfers} members=${s.memberChanges} ` +
    `leaders=${s.leaderTerms} snapshotsInstalled=${s.snapshotsInstalled}${s.knownBugHits > 0 ? ` knownBugHits=${s.knownBugHits}` : ''} hash=${result.traceHash}`;
  if (result.failure === null) return summary;
  const failure = result.failure;
  return [
    summary,
    `  check failed: ${failure.check}`,
    `  ${failure.message.split('\n').join('\n  ')}`,
    failure.traceEndMs === failure.atMs
      ? `  detected at ${failure.atMs} ms (simulated); last ${failure.trace.length} events:`
      : `  detected at ${failure.atMs} ms (simulated); the ${failure.trace.length} events up to ${failure.traceEndMs} ms, where the evidence is (from a replay of the seed):`,
    ...failure.trace.map((line) => `    ${line}`),
    `  replay: ${replayCommand(result)}`,
  ].join('\n');
}

function seedsOf(options: CliOptions, worker: number, workers: number): number[] {
  const seeds: number[] = [];
  for (let i = worker; i < options.seeds; i += workers) seeds.push(options.start + i);
  return seeds;
}

async function runSeeds(seeds: readonly number[], options: CliOptions, log: ((line: string) => void) | undefined): Promise<SeedReport[]> {
  const reports: SeedReport[] = [];
  for (const seed of seeds) reports.push(await runSeed(seed, options, log));
  return reports;
}

async function runWorkers(options: CliOptions, workers: number): Promise<SeedReport[]> {
  const api = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(api)}).then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}); })`;
  const runs = Array.from({ length: workers }, (_, index) => {
    return new Promise<SeedReport[]>((resolve, reject) => {
      const worker = new Worker(code, { eval: true, workerData: { options, seeds: seedsOf(options, index, workers) } });
      worker.once('message', (reports: SeedReport[]) => resolve(reports));
      worker.once('error', reject);
      worker.once('exit', (exitCode) => {
        if (exitCode !== 0) reject(new Error(`sim:node worker ${index} exited with code ${exitCode}`));
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
    console.error(error.message === 'help' ? USAGE : `sim-node: ${error.message}\n${USAGE}`);
    process.exitCode = error.message === 'help' ? 0 : 2;
    return;
  }
  const startedMs = performance.now();
  const workers = options.verbose ? 1 : Math.min(options.workers, Math.ceil(options.seeds / 4));
  const log = options.verbose ? (line: string) => console.log(line) : undefined;
  const reports = workers <= 1 ? await runSeeds(seedsOf(options, 0, 1), options, log) : await runWorkers(options, workers);
  const failed = reports.filter((report) => !report.ok);
  for (const report of reports) {
    if (!report.ok || options.verbose || options.seeds <= 10) console.log(report.text);
  }
  const elapsedSeconds = (performance.now() - startedMs) / 1000;
  console.log(`sim-node: elapsed ${elapsedSeconds.toFixed(1)} s on ${workers} worker${workers === 1 ? '' : 's'}, ${options.durationMs} ms of faults per seed`);
  console.log(`sim-node: ${reports.length} seeds, ${failed.length} failed`);
  process.exitCode = failed.length > 0 ? 1 : 0;
}

if (isMainThread) {
  await main();
} else {
  const data = workerData as { options: CliOptions; seeds: number[] };
  parentPort?.postMessage(await runSeeds(data.seeds, data.options, undefined));
}
