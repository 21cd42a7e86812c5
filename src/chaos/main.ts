// `npm run chaos -- --workload register|bank|append|watch|lock --nemesis kill,pause,partition,disk,member,transfer,clock|all --time 60 --seed S`
// Starts a cluster in a temp directory, runs the workload under the nemesis, heals, checks. The
// last line is always `chaos: <ops> ops, <workload>, linearizable=<yes|no|unknown>, lost=<n>, duplicated=<n>`;
// the exit code is 0 only if everything checked out (1: a violation or a failed check, 2: usage or crash).
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { PLANTED_BUGS } from '../server/index.ts';
import type { PlantedBug } from '../server/index.ts';
import { FAULT_KINDS, runChaos, WORKLOADS } from './index.ts';
import type { FaultKind, WorkloadName } from './index.ts';

/** Problems printed on the console (all of them are in report.txt). */
const MAX_PROBLEMS_PRINTED = 20;
/** Bound on --time, so a typo cannot start a day-long run. */
const MAX_TIME_SEC = 24 * 3600;

function integer(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer in [${min}, ${max}]`);
    return n;
  };
}

function faultList(value: string): FaultKind[] {
  if (value === 'none' || value === '') return [];
  const kinds = value.split(',').map((s) => s.trim());
  if (kinds.includes('all')) return [...FAULT_KINDS];
  for (const kind of kinds) {
    if (!(FAULT_KINDS as readonly string[]).includes(kind)) throw new InvalidArgumentError(`unknown fault "${kind}" (${FAULT_KINDS.join(', ')}, all, none)`);
  }
  return kinds as FaultKind[];
}

const NEMESIS_HELP = `
Nemesis kinds (one fault at a time, 3-7 s, then 2-4 s healthy; targets: one node, the leader, or a majority):
  kill       SIGKILL, restart on the same data directory
  pause      SIGSTOP, SIGCONT after at least 1.5 s
  partition  network splits through POST /debug/faults: halves, isolated leader, bridge, leader deaf
  disk       slow fsync (every commit 50-500 ms slower) or a failing fsync (the node must fail-stop:
             fatal log line, non-zero exit; it is restarted on its data)
  member     MemberRemove a node (sometimes the leader), wipe its data, MemberAdd it back under a new
             name and peer URL, start it with --initial-cluster-state existing
  transfer   Maintenance.MoveLeader to random followers, one after another
  clock      a node's timers (Raft ticks, lease clock, request deadlines) at 0.25x-4x real time
  all        every kind above

Harness self-tests (the run must FAIL): --serializable-reads, --planted-bug stale-reads|ack-before-fsync.
Long runs: npm run chaos -- --workload bank --nemesis all --time 600 --seed 1 (docs/TESTING.md).`;

const program = new Command()
  .name('chaos')
  .description('Jepsen-style fault test of a real local Tessera cluster')
  .addOption(new Option('--workload <name>', 'what the clients do').choices(WORKLOADS).default('register'))
  .addOption(
    new Option('--nemesis <faults>', `comma-separated faults: ${FAULT_KINDS.join(',')}, all or none`).argParser(faultList).default([...FAULT_KINDS], 'all'),
  )
  .option('--time <seconds>', 'how long the workload and the nemesis run', integer(1, MAX_TIME_SEC), 60)
  .option('--seed <n>', 'seed for the nemesis schedule, keys and values', integer(0, 2 ** 32 - 1), Math.floor(Math.random() * 2 ** 31))
  .option('--nodes <n>', 'cluster size', integer(1, 7), 3)
  .option('--concurrency <n>', 'concurrent clients', integer(1, 200), 10)
  .option('--op-timeout <ms>', 'client deadline per op (then the outcome is unknown)', integer(100, 60_000), 2_000)
  .option('--check-timeout <seconds>', 'budget for the linearizability check', integer(1, 3600), 120)
  .option('--snapshot-count <n>', "every node's --snapshot-count (small: snapshots and their installs happen under faults)", integer(1, 10_000_000))
  .option('--dir <path>', 'output directory (default: a new temp directory)')
  .option('--keep-data', 'keep the nodes\' data directories even when the run passes')
  .option('--serializable-reads', 'harness self-test: register reads served locally (stale reads expected, so the run should FAIL)')
  .addOption(
    new Option('--planted-bug <bug>', 'harness self-test: start every node with this TEST-ONLY bug (TESSERA_PLANTED_BUG); the run should FAIL').choices(
      PLANTED_BUGS,
    ),
  )
  .addHelpText('after', NEMESIS_HELP)
  .allowExcessArguments(false);

interface CliOptions {
  workload: WorkloadName;
  nemesis: FaultKind[];
  time: number;
  seed: number;
  nodes: number;
  concurrency: number;
  opTimeout: number;
  checkTimeout: number;
  snapshotCount?: number;
  dir?: string;
  keepData?: boolean;
  serializableReads?: boolean;
  plantedBug?: PlantedBug;
}

async function main(): Promise<number> {
  program.exitOverride();
  try {
    program.parse(process.argv);
  } catch (error) {
    return error instanceof CommanderError && error.exitCode === 0 ? 0 : 2; // --help: 0
  }
  const o = program.opts<CliOptions>();
  const result = await runChaos({
    workload: o.workload,
    faults: o.nemesis,
    timeSec: o.time,
    seed: o.seed,
    nodes: o.nodes,
    workers: o.concurrency,
    opTimeoutMs: o.opTimeout,
    checkTimeoutMs: o.checkTimeout * 1_000,
    dir: o.dir,
    keepData: o.keepData,
    serializableReads: o.serializableReads,
    plantedBug: o.plantedBug,
    snapshotCount: o.snapshotCount,
  });
  for (const problem of result.problems.slice(0, MAX_PROBLEMS_PRINTED)) console.log(`chaos: PROBLEM: ${problem}`);
  if (result.problems.length > MAX_PROBLEMS_PRINTED) {
    console.log(`chaos: … ${result.problems.length - MAX_PROBLEMS_PRINTED} more problems in ${result.dir}/report.txt`);
  }
  const extra = [
    o.nodes !== 3 ? ` --nodes ${o.nodes}` : '',
    o.concurrency !== 10 ? ` --concurrency ${o.concurrency}` : '',
    o.opTimeout !== 2_000 ? ` --op-timeout ${o.opTimeout}` : '',
    o.serializableReads ? ' --serializable-reads' : '',
    o.plantedBug ? ` --planted-bug ${o.plantedBug}` : '',
    o.snapshotCount !== undefined ? ` --snapshot-count ${o.snapshotCount}` : '',
  ].join('');
  console.log(
    `chaos: ${result.ok ? 'PASS' : 'FAIL'}; replay: npm run chaos -- --workload ${o.workload} --nemesis ${o.nemesis.join(',') || 'none'} ` +
      `--time ${o.time} --seed ${o.seed}${extra}; report: ${result.dir}/report.txt`,
  );
  console.log(result.summary);
  return result.ok ? 0 : 1;
}

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    console.log(`chaos: ${signal}: stopping`);
    process.exit(130); // the runner's exit hook SIGKILLs the nodes
  });
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    console.log('chaos: 0 ops, crashed, linearizable=unknown, lost=0, duplicated=0');
    process.exit(2);
  },
);
