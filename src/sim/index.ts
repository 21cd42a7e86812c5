// Deterministic cluster simulator for the Raft core (FoundationDB / TigerBeetle VOPR style): one
// seed drives a whole cluster, its network, faults and clients; invariants are checked as it runs.
import type { NodeId } from '../raft/index.ts';
import { Checker, InvariantViolation } from './checker.ts';
import type { Invariant } from './checker.ts';
import { Cluster, describeConf, isJoint, membersOf } from './cluster.ts';
import type { DriverFault, TestingFault } from './cluster.ts';
import { SimNetwork } from './network.ts';
import { SimRandom } from './random.ts';
import { formatEvent, Trace } from './trace.ts';
import { FIGURE8_NODES, FIGURE8_RAFT, runFigure8 } from './schedules.ts';
import type { Schedule } from './schedules.ts';
import { Workload, randomProfile, randomRaftOverrides } from './workload.ts';
import type { Profile } from './workload.ts';

export { Checker, InvariantViolation } from './checker.ts';
export type { Invariant, LogView } from './checker.ts';
export type { DriverFault, TestingFault } from './cluster.ts';
export { SCHEDULES } from './schedules.ts';
// Pieces the whole-node simulator (src/simnode) reuses: the seeded stream, the faulty network.
export { SimRandom, nodeRng } from './random.ts';
export { SimNetwork, PERFECT_NETWORK, LINK_CAPACITY_MESSAGES } from './network.ts';
export type { NetworkFaults, Envelope, SendOutcome } from './network.ts';
export { formatMessage } from './trace.ts';
export { Ring, TraceHash } from './trace-core.ts';
// The seed sweep both CLIs run (npm run sim, npm run sim:node).
export { UsageError, defaultSweepOptions, parseChoice, parseInteger, parseSweepFlag, serveSweepWorker, sweep } from './seed-runner.ts';
export type { SeedReport, SweepOptions } from './seed-runner.ts';
export type { Schedule } from './schedules.ts';

export interface SimOptions {
  seed: number;
  /** Cluster size at start (3, 5 or 7); by default it cycles 3, 5, 7 with the seed. */
  nodes?: number;
  /** Ticks of faults and client traffic before the calm phase that checks liveness. */
  steps?: number;
  /** Receives every trace event as it happens (--verbose). */
  log?: (line: string) => void;
  /** A deliberately broken core (tests prove the checks catch it). */
  testingFault?: TestingFault;
  /**
   * `random`: seeded chaos, then the calm phase. `figure8`: the Raft paper's Figure 8 scripted on
   * 5 nodes first. By default one 5-node seed in four (seed % 4 === 0) starts with Figure 8.
   */
  schedule?: Schedule;
  /** A deliberately broken driver (tests prove the read check catches it): serve reads before applying up to their index. */
  driverFault?: DriverFault;
  /** Invariants not enforced (tests use it to show that a later check catches a bug too). */
  ignore?: readonly Invariant[];
  /** Events shown with a failure. */
  traceLines?: number;
}

export interface SimFailure {
  invariant: Invariant;
  message: string;
  /** Tick at which the violation was detected. */
  step: number;
  /** The latest events before the failure, oldest first. */
  trace: string[];
}

export interface SimStats {
  ticks: number;
  events: number;
  writesApplied: number;
  readsServed: number;
  leaderTerms: number;
  crashes: number;
  partitions: number;
  snapshots: number;
  snapshotsInstalled: number;
  confChanges: number;
  confChangesApplied: number;
  transfers: number;
  finalConf: string;
}

export interface SimResult {
  seed: number;
  nodes: number;
  steps: number;
  schedule: Schedule;
  ok: boolean;
  failure: SimFailure | null;
  /** Fingerprint of every event: the same seed must give the same hash. */
  traceHash: string;
  stats: SimStats;
}

export const DEFAULT_STEPS = 600;
export const DEFAULT_TRACE_LINES = 40;
/** Liveness bound: after the faults end, a write must commit everywhere within this many election timeouts. */
export const LIVENESS_ELECTION_TIMEOUTS = 50;
export const CLUSTER_SIZES = [3, 5, 7] as const;
/** The pairwise log cross-check is O(nodes² × log) so it runs periodically, not after every event. */
const CROSS_CHECK_EVERY_TICKS = 50;

export function defaultNodes(seed: number): number {
  return CLUSTER_SIZES[Math.abs(seed) % CLUSTER_SIZES.length];
}

/** The command that replays one seed exactly (pass the fault too when one was injected). */
export function defaultSchedule(seed: number, nodes: number): Schedule {
  return nodes === FIGURE8_NODES && seed % 4 === 0 ? 'figure8' : 'random';
}

export function replayCommand(
  result: Pick<SimResult, 'seed' | 'nodes' | 'steps' | 'schedule'>,
  fault?: TestingFault,
): string {
  const steps = result.steps !== DEFAULT_STEPS ? ` --steps ${result.steps}` : '';
  const schedule =
    result.schedule === defaultSchedule(result.seed, result.nodes) ? '' : ` --schedule ${result.schedule}`;
  const faultFlag = fault === undefined ? '' : ` --fault ${fault}`;
  return `npm run sim -- --seeds 1 --start ${result.seed} --nodes ${result.nodes}${steps}${schedule}${faultFlag} --verbose`;
}

export function runSimulation(options: SimOptions): SimResult {
  const seed = options.seed;
  const requestedNodes = options.nodes ?? defaultNodes(seed);
  const schedule = options.schedule ?? defaultSchedule(seed, requestedNodes);
  const nodes = schedule === 'figure8' ? FIGURE8_NODES : requestedNodes;
  const steps = options.steps ?? DEFAULT_STEPS;
  const rnd = new SimRandom(seed);
  const trace = new Trace(options.log ?? null);
  const checker = new Checker(options.ignore ?? []);
  const profile = randomProfile(rnd, nodes);
  const raftOverrides = schedule === 'figure8' ? FIGURE8_RAFT : randomRaftOverrides(rnd);
  options.log?.(
    `seed ${seed}: ${nodes} nodes, ${steps} steps, raft ${JSON.stringify(raftOverrides)}, profile ${JSON.stringify(profile)}`,
  );
  const network = new SimNetwork(rnd, profile.network);
  let cluster: Cluster | null = null;
  let failure: SimFailure | null = null;
  try {
    cluster = new Cluster({
      seed,
      size: nodes,
      rnd,
      checker,
      trace,
      network,
      raftOverrides,
      testingFault: options.testingFault ?? null,
      driverFault: options.driverFault ?? null,
    });
    const workload = new Workload(cluster, rnd, profile);
    if (schedule === 'figure8') runFigure8(cluster);
    runChaos(cluster, workload, profile, steps);
    checkLiveness(cluster, workload);
    cluster.crossCheckLogs();
  } catch (error) {
    const [invariant, message] =
      error instanceof InvariantViolation
        ? [error.invariant, error.message]
        : (['sim error', describe(error)] as const);
    failure = {
      invariant,
      message,
      step: trace.step,
      trace: trace.last(options.traceLines ?? DEFAULT_TRACE_LINES).map(formatEvent),
    };
  }
  trace.mix(checker.writes.length);
  for (const write of checker.writes) trace.mix(write);
  return {
    seed,
    nodes,
    steps,
    schedule,
    ok: failure === null,
    failure,
    traceHash: trace.hash(),
    stats: {
      ticks: cluster?.now ?? 0,
      events: trace.eventCount,
      writesApplied: checker.writes.length,
      readsServed: checker.readsServed,
      leaderTerms: checker.leaderCount(),
      crashes: cluster?.stats.crashes ?? 0,
      partitions: cluster?.stats.partitions ?? 0,
      snapshots: cluster?.stats.snapshots ?? 0,
      snapshotsInstalled: cluster?.stats.snapshotsInstalled ?? 0,
      confChanges: cluster?.stats.confChanges ?? 0,
      confChangesApplied: cluster?.stats.confChangesApplied ?? 0,
      transfers: cluster?.stats.transfers ?? 0,
      finalConf: cluster === null ? '' : describeConf(cluster.leader()?.confState ?? cluster.genesis),
    },
  };
}

function describe(error: unknown): string {
  if (error instanceof Error)
    return `${error.name}: ${error.message}\n${(error.stack ?? '').split('\n').slice(1, 8).join('\n')}`;
  return String(error);
}

/** The fault phase: each tick, clients and the nemesis act, timers fire, the clock ticks, messages flow. */
function runChaos(cluster: Cluster, workload: Workload, profile: Profile, steps: number): void {
  cluster.recordEvent('phase', 'chaos');
  for (let step = 0; step < steps; step++) {
    workload.act();
    cluster.runTimers();
    cluster.tick(profile.tickSkewPermille);
    cluster.deliver();
    if (step % CROSS_CHECK_EVERY_TICKS === 0) cluster.crossCheckLogs();
  }
  cluster.crossCheckLogs();
}

/**
 * The calm phase: every fault healed, every member up, a perfect network. A leader must emerge and
 * a new write must be applied by every member of its configuration within the liveness bound.
 */
function checkLiveness(cluster: Cluster, workload: Workload): void {
  cluster.recordEvent('phase', 'calm: network healed and perfect, every member up');
  workload.calm();
  const limitTicks = LIVENESS_ELECTION_TIMEOUTS * cluster.electionTicks;
  const start = cluster.now;
  const probes: number[] = [];
  let lastActionAt = -Infinity;
  while (cluster.now - start < limitTicks) {
    cluster.runTimers();
    cluster.tick(0);
    cluster.deliver();
    const leader = cluster.leader();
    if (leader === null) continue;
    const members = membersOf(leader.confState);
    if (probes.some((probe) => members.every((id) => hasApplied(cluster, id, probe)))) return;
    if (cluster.now - lastActionAt < cluster.electionTicks) continue;
    lastActionAt = cluster.now;
    if (isJoint(leader.confState) && !leader.confState.autoLeave) {
      cluster.proposeConfChange(leader, { transition: 'auto', changes: [], context: new Uint8Array(0) });
    } else {
      probes.push(...cluster.propose(leader, 1, 0));
    }
  }
  throw new InvariantViolation(
    'liveness',
    `no write committed on every member within ${limitTicks} ticks of calm: ${describeCluster(cluster)}`,
  );
}

function hasApplied(cluster: Cluster, id: NodeId, writeId: number): boolean {
  const node = cluster.nodes.get(id);
  return node !== undefined && node.up && node.writes.lastIndexOf(writeId) >= 0;
}

function describeCluster(cluster: Cluster): string {
  const parts: string[] = [];
  for (const node of cluster.nodes.values()) {
    if (node.removed) continue;
    const state = node.up
      ? `${node.role} t${node.hardState.term} commit=${node.hardState.commit} applied=${node.applied}`
      : 'down';
    parts.push(`n${node.id}: ${state} ${describeConf(node.confState)}`);
  }
  return parts.join('; ');
}
