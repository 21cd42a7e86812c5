// `npm run sim:node -- --seeds N --start S [--nodes 3|5] [--duration MS] [--fault F] [--workaround B,…|all] [--verbose] [--workers W]`
// Runs N whole-node simulations from seed S (spread over worker threads); prints each failure with
// its trace tail and replay command. The last line is always `sim-node: N seeds, F failed`; the exit
// code is 1 when F > 0 and 2 for a usage error. Wall-clock time is read here only, for the report.
import { UsageError, defaultSweepOptions, parseChoice, parseInteger, parseSweepFlag, serveSweepWorker, sweep } from '../sim/index.ts';
import type { SeedReport, SweepOptions } from '../sim/index.ts';
import { DEFAULT_DURATION_MS, KNOWN_BUGS, PLANTED_FAULTS, replayCommand, runNodeSimulation } from './index.ts';
import type { KnownBug, NodeSimResult, PlantedFault } from './index.ts';

interface CliOptions extends SweepOptions {
  nodes: number | undefined;
  durationMs: number;
  fault: PlantedFault | undefined;
  workarounds: KnownBug[];
}

/** Bound on seeds per run, so a typo cannot start a week-long run. */
const MAX_SEEDS = 1_000_000;

const USAGE =
  'usage: npm run sim:node -- --seeds N --start S [--nodes 3|5] [--duration MS] [--verbose] [--workers W] ' +
  `[--fault ${PLANTED_FAULTS.join('|')}] [--workaround ${KNOWN_BUGS.join(',')}|all]`;

function parseArgs(argv: readonly string[]): CliOptions {
  const options: CliOptions = { ...defaultSweepOptions(), nodes: undefined, durationMs: DEFAULT_DURATION_MS, fault: undefined, workarounds: [] };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = (): string | undefined => argv[++i];
    if (parseSweepFlag(flag, value, options, MAX_SEEDS)) continue;
    switch (flag) {
      case '--nodes': {
        const nodes = parseInteger(flag, value(), 3, 5);
        if (nodes === 4) throw new UsageError('--nodes must be 3 or 5');
        options.nodes = nodes;
        break;
      }
      case '--duration':
        options.durationMs = parseInteger(flag, value(), 0, 3_600_000);
        break;
      case '--fault':
        options.fault = parseChoice(flag, value(), PLANTED_FAULTS);
        break;
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
  await sweep('sim-node', options, import.meta.url, runSeed, `${options.durationMs} ms of faults per seed`);
}

if (!(await serveSweepWorker(runSeed))) await main();
