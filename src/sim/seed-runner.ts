// What `npm run sim` and `npm run sim:node` share: the flags every seed sweep takes, integer and
// choice parsing with usage errors, and the sweep itself (seeds spread over worker threads that
// re-import the calling module, one summary line at the end). Wall-clock time is read here only,
// for the elapsed-time report, never inside a simulation.
import { availableParallelism } from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

export class UsageError extends Error {
  override name = 'UsageError';
}

export function parseInteger(flag: string, value: string | undefined, min: number, max: number): number {
  const parsed = Number(value);
  if (value === undefined || !Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
    throw new UsageError(`${flag} needs an integer in [${min}, ${max}], got ${value ?? 'nothing'}`);
  }
  return parsed;
}

export function parseChoice<T extends string>(flag: string, value: string | undefined, choices: readonly T[]): T {
  const known = choices.find((choice) => choice === value);
  if (known === undefined) throw new UsageError(`${flag} must be one of ${choices.join(', ')}`);
  return known;
}

/** The options every sweep has. */
export interface SweepOptions {
  seeds: number;
  start: number;
  verbose: boolean;
  workers: number;
}

export function defaultSweepOptions(): SweepOptions {
  return { seeds: 1, start: 1, verbose: false, workers: Math.max(1, Math.min(2, availableParallelism())) };
}

/** Parses one of the shared flags into `options`; false for any other flag. */
export function parseSweepFlag(flag: string, value: () => string | undefined, options: SweepOptions, maxSeeds: number): boolean {
  switch (flag) {
    case '--seeds':
      options.seeds = parseInteger(flag, value(), 1, maxSeeds);
      return true;
    case '--start':
      options.start = parseInteger(flag, value(), 0, 2 ** 31);
      return true;
    case '--workers':
      options.workers = parseInteger(flag, value(), 1, 64);
      return true;
    case '--verbose':
      options.verbose = true;
      return true;
    default:
      return false;
  }
}

/** Plain-data summary of one seed, small enough to post from a worker. */
export interface SeedReport {
  seed: number;
  ok: boolean;
  text: string;
}

export type RunSeed<O> = (seed: number, options: O, log: ((line: string) => void) | undefined) => SeedReport | Promise<SeedReport>;

function seedsOf(options: SweepOptions, worker: number, workers: number): number[] {
  const seeds: number[] = [];
  for (let i = worker; i < options.seeds; i += workers) seeds.push(options.start + i);
  return seeds;
}

async function runSeeds<O>(seeds: readonly number[], options: O, runSeed: RunSeed<O>, log: ((line: string) => void) | undefined): Promise<SeedReport[]> {
  const reports: SeedReport[] = [];
  for (const seed of seeds) reports.push(await runSeed(seed, options, log));
  return reports;
}

/**
 * In a worker thread started by `sweep`: runs the seeds it was given and posts their reports, then
 * resolves true. On the main thread it resolves false at once, so a CLI module starts with
 * `if (!(await serveSweepWorker(runSeed))) await main();`.
 */
export async function serveSweepWorker<O>(runSeed: RunSeed<O>): Promise<boolean> {
  if (isMainThread) return false;
  const data = workerData as { options: O; seeds: number[] };
  parentPort?.postMessage(await runSeeds(data.seeds, data.options, runSeed, undefined));
  return true;
}

/**
 * Runs every seed (in `moduleUrl`'s worker threads unless verbose or few), prints failures (and
 * every report when verbose or at most 10 seeds), then `<name>: elapsed …` with `detail` and the
 * last line `<name>: N seeds, F failed`. Sets the exit code: 1 when any seed failed.
 */
export async function sweep<O extends SweepOptions>(name: string, options: O, moduleUrl: string, runSeed: RunSeed<O>, detail: string): Promise<void> {
  const startedMs = performance.now();
  const workers = options.verbose ? 1 : Math.min(options.workers, Math.ceil(options.seeds / 4));
  const log = options.verbose ? (line: string) => console.log(line) : undefined;
  const reports = workers <= 1 ? await runSeeds(seedsOf(options, 0, 1), options, runSeed, log) : await runWorkers(name, options, workers, moduleUrl);
  const failed = reports.filter((report) => !report.ok);
  for (const report of reports) {
    if (!report.ok || options.verbose || options.seeds <= 10) console.log(report.text);
  }
  const elapsedSeconds = (performance.now() - startedMs) / 1000;
  console.log(`${name}: elapsed ${elapsedSeconds.toFixed(1)} s on ${workers} worker${workers === 1 ? '' : 's'}, ${detail}`);
  console.log(`${name}: ${reports.length} seeds, ${failed.length} failed`);
  process.exitCode = failed.length > 0 ? 1 : 0;
}

async function runWorkers(name: string, options: SweepOptions, workers: number, moduleUrl: string): Promise<SeedReport[]> {
  // Worker threads do not inherit tsx's loader: a bootstrap registers it, then loads the CLI module.
  const api = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(api)}).then(({ register }) => { register(); return import(${JSON.stringify(moduleUrl)}); })`;
  const runs = Array.from({ length: workers }, (_, index) => {
    return new Promise<SeedReport[]>((resolve, reject) => {
      const worker = new Worker(code, { eval: true, workerData: { options, seeds: seedsOf(options, index, workers) } });
      worker.once('message', (reports: SeedReport[]) => resolve(reports));
      worker.once('error', reject);
      worker.once('exit', (exitCode) => {
        if (exitCode !== 0) reject(new Error(`${name} worker ${index} exited with code ${exitCode}`));
      });
    });
  });
  return (await Promise.all(runs)).flat().sort((a, b) => a.seed - b.seed);
}
