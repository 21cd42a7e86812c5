// `npm run sim -- --seeds N --start S [--nodes 3|5|7] [--steps K] [--verbose] [--workers W] [--schedule S] [--fault F]`
// Runs N seeds from S (spread over worker threads); prints each failure with its replay command.
// The last line is always `sim: N seeds, F failed`; the exit code is non-zero when F > 0.
// Wall-clock time is read here only, for the elapsed-time report, never inside a simulation.
import { DEFAULT_STEPS, SCHEDULES, replayCommand, runSimulation } from './index.ts';
import type { Schedule, SimResult, TestingFault } from './index.ts';
import { UsageError, defaultSweepOptions, parseChoice, parseInteger, parseSweepFlag, serveSweepWorker, sweep } from './seed-runner.ts';
import type { SeedReport, SweepOptions } from './seed-runner.ts';

interface CliOptions extends SweepOptions {
  nodes: number | undefined;
  steps: number;
  fault: TestingFault | undefined;
  schedule: Schedule | undefined;
}

const FAULTS: readonly TestingFault[] = [
  'commitOldTermByCounting',
  'grantEveryVote',
  'skipAppendConsistencyCheck',
  'readBelowDurableNotices',
];
/** Bound on seeds per run, so a typo cannot start a day-long run. */
const MAX_SEEDS = 10_000_000;

const USAGE =
  'usage: npm run sim -- --seeds N --start S [--nodes 3|5|7] [--steps K] [--verbose] [--workers W] ' +
  `[--schedule ${SCHEDULES.join('|')}] [--fault ${FAULTS.join('|')}]`;

function parseArgs(argv: readonly string[]): CliOptions {
  const options: CliOptions = { ...defaultSweepOptions(), nodes: undefined, steps: DEFAULT_STEPS, fault: undefined, schedule: undefined };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = (): string | undefined => argv[++i];
    if (parseSweepFlag(flag, value, options, MAX_SEEDS)) continue;
    switch (flag) {
      case '--nodes': {
        const nodes = parseInteger(flag, value(), 3, 7);
        if (nodes % 2 === 0) throw new UsageError('--nodes must be 3, 5 or 7');
        options.nodes = nodes;
        break;
      }
      case '--steps':
        options.steps = parseInteger(flag, value(), 0, 10_000_000);
        break;
      case '--fault':
        options.fault = parseChoice(flag, value(), FAULTS);
        break;
      case '--schedule':
        options.schedule = parseChoice(flag, value(), SCHEDULES);
        break;
      default:
        throw new UsageError(`unknown argument ${flag}`);
    }
  }
  return options;
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
  await sweep('sim', options, import.meta.url, runSeed, `${options.steps} steps per seed`);
}

if (!(await serveSweepWorker(runSeed))) await main();
