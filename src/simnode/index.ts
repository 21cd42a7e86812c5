// Whole-node deterministic simulation (FoundationDB / TigerBeetle VOPR style, one level up from
// src/sim): N real ReplicaHosts (the server's multi-Raft loop, Replica, MvccStore) in one process,
// over simulated disks, network and time, with clients recorded in a history, all from one seed.
import { Checker, InvariantViolation, SimRandom } from '../sim/index.ts';
import { assert } from '../util/index.ts';
import { checkLeaseExpiry, checkLinearizability, checkRevisionOrder, checkWrites, eventHistory, eventsFingerprint, replicaFingerprint } from './checks.ts';
import { GROUP_ID, KNOWN_BUGS, PLANTED_FAULTS, QUANTUM_MS, SimCluster, SimFailure } from './cluster.ts';
import type { KnownBug, PlantedFault } from './cluster.ts';
import { History } from './history.ts';
import type { KvOp } from './history.ts';
import { Nemesis } from './nemesis.ts';
import { Trace } from './trace.ts';
import { randomProfile, Workload } from './workload.ts';

export { KNOWN_BUGS, PLANTED_FAULTS, SimFailure } from './cluster.ts';
export type { KnownBug, LeaseClockEvent, PlantedFault } from './cluster.ts';
// The checks and the history on their own (tests feed them hand-made histories).
export { checkLeaseExpiry, checkLinearizability, checkRevisionOrder, checkWrites, writeEvidence } from './checks.ts';
export type { WriteEvidence } from './checks.ts';
export { History, kvModel, leaseModel } from './history.ts';
export type { KvInput, KvOutput, LeaseInput, LeaseOutput, OpStatus, SimOp } from './history.ts';

export interface NodeSimOptions {
  seed: number;
  /** 3 or 5 nodes; by default it alternates with the seed. */
  nodes?: number;
  /** Simulated ms of faults and client traffic before the calm phase. */
  durationMs?: number;
  /** A planted bug the checks must catch (fault tests). */
  fault?: PlantedFault;
  /** Known, unfixed server bugs to work around (none by default; see KnownBug). */
  workarounds?: readonly KnownBug[];
  /** Final checks not enforced (tests use it to show that another check catches a bug too). */
  ignore?: readonly FinalCheck[];
  /** Receives every trace event as it happens (--verbose). */
  log?: (line: string) => void;
  /** Events shown with a failure. */
  traceLines?: number;
  /** Internal: replaying a failed seed to collect the events up to this simulated ms. */
  focusMs?: number;
}

export interface NodeSimStats {
  simulatedMs: number;
  events: number;
  ops: number;
  ok: number;
  failed: number;
  unknown: number;
  leases: number;
  crashes: number;
  pauses: number;
  partitions: number;
  transfers: number;
  memberChanges: number;
  leaderTerms: number;
  snapshotsInstalled: number;
  finalRevision: number;
  /** Lease-expiry violations forgiven as a known lease bug (when worked around). */
  knownBugHits: number;
}

export interface NodeSimFailure {
  check: string;
  message: string;
  atMs: number;
  /** Where the trace tail ends: the failure, or the evidence it names (found by replaying the seed). */
  traceEndMs: number;
  trace: string[];
}

export interface NodeSimResult {
  seed: number;
  nodes: number;
  durationMs: number;
  fault: PlantedFault | null;
  workarounds: KnownBug[];
  ok: boolean;
  failure: NodeSimFailure | null;
  /** Fingerprint of every event: the same seed must give the same hash. */
  traceHash: string;
  /** With `focusMs`: the events up to it. */
  focusTrace: string[];
  stats: NodeSimStats;
}

/** The checks run at the end, in this order; the first that fails is reported. */
export type FinalCheck = 'convergence' | 'lost write' | 'revision order' | 'lease expiry' | 'linearizability';

export const DEFAULT_DURATION_MS = 15_000;
export const DEFAULT_TRACE_LINES = 40;
/** After the calm begins, a write must be acknowledged within this much simulated time. */
export const LIVENESS_MS = 30_000;
/** After that, every member must apply everything (and the final reads answer) within this much. */
export const CONVERGE_MS = 20_000;
const CLUSTER_SIZES = [3, 5] as const;
/** The pairwise log cross-check and the replica hash comparison run every this many steps. */
const CROSS_CHECK_EVERY_STEPS = 50;
const LEASE_CHECK_EVERY_STEPS = 5;

export function defaultNodes(seed: number): number {
  return CLUSTER_SIZES[Math.abs(seed) % CLUSTER_SIZES.length];
}

/** The command that replays one seed exactly. */
export function replayCommand(result: Pick<NodeSimResult, 'seed' | 'nodes' | 'durationMs' | 'fault' | 'workarounds'>): string {
  const duration = result.durationMs !== DEFAULT_DURATION_MS ? ` --duration ${result.durationMs}` : '';
  const fault = result.fault === null ? '' : ` --fault ${result.fault}`;
  const workarounds = result.workarounds.length === 0 ? '' : ` --workaround ${result.workarounds.join(',')}`;
  return `npm run sim:node -- --seeds 1 --start ${result.seed} --nodes ${result.nodes}${duration}${fault}${workarounds} --verbose`;
}

export async function runNodeSimulation(options: NodeSimOptions): Promise<NodeSimResult> {
  const seed = options.seed;
  const nodes = options.nodes ?? defaultNodes(seed);
  const durationMs = options.durationMs ?? DEFAULT_DURATION_MS;
  const fault = options.fault ?? null;
  assert(fault === null || PLANTED_FAULTS.includes(fault), () => `unknown fault ${fault}`);
  const workarounds = KNOWN_BUGS.filter((bug) => options.workarounds?.includes(bug) === true);
  const rnd = new SimRandom(seed);
  const focusMs = options.focusMs ?? null;
  const trace = new Trace(options.log ?? null, focusMs === null ? null : { fromMs: 0, toMs: focusMs });
  const checker = new Checker();
  const profile = randomProfile(rnd, nodes);
  options.log?.(
    `seed ${seed}: ${nodes} nodes, ${durationMs} ms, fault ${fault ?? 'none'}, workarounds ${workarounds.join(',') || 'none'}, profile ${JSON.stringify(profile)}`,
  );
  let cluster: SimCluster | null = null;
  let history: History | null = null;
  let failure: NodeSimFailure | null = null;
  let run: Run | null = null;
  try {
    cluster = new SimCluster({ seed, size: nodes, rnd, trace, checker, profile: profile.cluster, fault, workarounds: new Set(workarounds) });
    const simCluster = cluster;
    history = new History(() => simCluster.now);
    run = new Run(cluster, history, new Workload(cluster, rnd, history, profile), new Nemesis(cluster, rnd, profile), new Set(options.ignore ?? []));
    await run.execute(durationMs);
  } catch (error) {
    const [check, message] =
      error instanceof SimFailure
        ? [error.check, error.message]
        : error instanceof InvariantViolation
          ? [error.invariant, error.message]
          : ['sim error', describeError(error)];
    const atMs = cluster?.now ?? 0;
    failure = { check, message, atMs, traceEndMs: atMs, trace: trace.last(options.traceLines ?? DEFAULT_TRACE_LINES) };
    const focus = error instanceof SimFailure ? error.focusMs : null;
    if (focus !== null && focusMs === null) {
      // The same seed again (it replays exactly), keeping the events that led to the evidence.
      const replay = await runNodeSimulation({ ...options, log: undefined, focusMs: focus });
      failure.trace = replay.focusTrace.slice(-(options.traceLines ?? DEFAULT_TRACE_LINES));
      failure.traceEndMs = focus;
    }
  }
  const ops = history === null ? [] : [...history.kv, ...history.lease].filter((op) => op.process !== 0);
  trace.mix(ops.length);
  for (const op of ops) trace.mix(op.status === 'ok' ? op.revision : op.status === 'fail' ? -1 : -2);
  const stats = cluster?.stats;
  return {
    seed,
    nodes,
    durationMs,
    fault,
    workarounds,
    ok: failure === null,
    failure,
    traceHash: trace.hash(),
    focusTrace: trace.windowLines(),
    stats: {
      simulatedMs: cluster?.now ?? 0,
      events: trace.eventCount,
      ops: ops.length,
      ok: ops.filter((op) => op.status === 'ok').length,
      failed: ops.filter((op) => op.status === 'fail').length,
      unknown: ops.filter((op) => op.status === 'unknown').length,
      leases: history?.lease.filter((op) => op.input.f === 'grant').length ?? 0,
      crashes: stats?.crashes ?? 0,
      pauses: stats?.pauses ?? 0,
      partitions: stats?.partitions ?? 0,
      transfers: stats?.transfers ?? 0,
      memberChanges: stats?.memberChanges ?? 0,
      leaderTerms: stats?.leaderTerms ?? 0,
      snapshotsInstalled: stats?.snapshotsInstalled ?? 0,
      finalRevision: run?.finalRevision ?? 0,
      knownBugHits: run?.knownBugHits ?? 0,
    },
  };
}

function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}\n${(error.stack ?? '').split('\n').slice(1, 8).join('\n')}`;
  return String(error);
}

/** One seed's run: the fault phase, the calm phase, then the checks. */
class Run {
  finalRevision = 0;
  knownBugHits = 0;
  private readonly leaseSeen = new Map<number, { store: unknown; ids: Set<number> }>();
  /** Replica state hash by (revision, compacted revision): replicas that applied the same revisions must agree. */
  private readonly hashAt = new Map<string, { hash: number; node: number }>();

  constructor(
    private readonly cluster: SimCluster,
    private readonly history: History,
    private readonly workload: Workload,
    private readonly nemesis: Nemesis,
    private readonly ignore: ReadonlySet<FinalCheck>,
  ) {}

  async execute(durationMs: number): Promise<void> {
    const { cluster, workload, nemesis } = this;
    cluster.trace.record('phase', 0, 'faults and clients');
    while (cluster.now < durationMs) {
      await cluster.beginStep();
      nemesis.act();
      workload.act();
      await cluster.runRounds();
      this.afterStep();
    }
    nemesis.calm();
    workload.quiet = true;
    cluster.trace.record('phase', 0, 'calm: liveness');
    await this.awaitProbe();
    await this.awaitConverged('every member applies everything after the first acknowledged write');
    cluster.trace.record('phase', 0, 'final reads');
    await this.finalReads();
    workload.abandonAll();
    await this.awaitConverged('every member applies everything after the final reads');
    this.finalChecks();
  }

  private async step(): Promise<void> {
    await this.cluster.beginStep();
    await this.cluster.runRounds();
    this.afterStep();
  }

  /** The cheap checks, after every step. */
  private afterStep(): void {
    if (this.workload.fatal !== null) throw this.workload.fatal;
    if (this.cluster.applied.failure !== null) throw this.cluster.applied.failure;
    const step = this.cluster.step;
    if (step % LEASE_CHECK_EVERY_STEPS === 0) this.workload.observeLeases(this.leaseSeen);
    if (step % CROSS_CHECK_EVERY_STEPS === 0) {
      this.cluster.crossCheckLogs();
      this.compareReplicaHashes();
    }
  }

  /** State machine safety, directly: replicas at the same revision (and compaction) hold the same keys and values. */
  private compareReplicaHashes(): void {
    for (const node of this.cluster.serving()) {
      const replica = this.cluster.replica(node.id);
      if (replica === null) continue;
      const { hash, revision, compactRevision } = replica.store.hashKV(0);
      const key = `${revision}/${compactRevision}`;
      const seen = this.hashAt.get(key);
      if (seen === undefined) this.hashAt.set(key, { hash, node: node.id });
      else if (seen.hash !== hash) {
        throw new SimFailure(
          'convergence',
          `n${node.id} and n${seen.node} both applied up to revision ${revision} (compacted ${compactRevision}) but their data differ (hash ${hash} vs ${seen.hash})`,
        );
      }
    }
  }

  /** Liveness: with every fault healed, some write is acknowledged within LIVENESS_MS. */
  private async awaitProbe(): Promise<void> {
    const { cluster, workload } = this;
    const start = cluster.now;
    let probe: KvOp | null = null;
    let probes = 0;
    while (probe === null || probe.status !== 'ok') {
      if (cluster.now - start > LIVENESS_MS) {
        throw new SimFailure('liveness', `no write acknowledged within ${LIVENESS_MS} ms after every fault healed (${probes} probes): ${this.describeCluster()}`);
      }
      if (probe === null || probe.status === 'fail' || probe.status === 'unknown') {
        const nodes = cluster.serving().filter((n) => this.cluster.replica(n.id) !== null);
        if (nodes.length > 0) {
          probe = workload.probe(cluster.rnd.pick(nodes));
          probes++;
        }
      }
      await this.step();
    }
  }

  /** Every member of the configuration has applied exactly the leader's commit index, and no op is pending. */
  private converged(): boolean {
    const leader = this.cluster.leader();
    if (leader === null) return false;
    const commit = this.cluster.replica(leader.id)?.raft.status().hardState.commit ?? 0;
    for (const id of this.cluster.members()) {
      const replica = this.cluster.replica(id);
      if (replica === null || replica.applied !== commit) return false;
    }
    return this.history.pendingCount() === 0;
  }

  /** Steps until converged (bounded). Leases may still expire meanwhile, so compare right after. */
  private async awaitConverged(what: string): Promise<void> {
    const start = this.cluster.now;
    while (!this.converged()) {
      if (this.cluster.now - start > CONVERGE_MS) {
        throw new SimFailure('liveness', `not done within ${CONVERGE_MS} ms: ${what}; ${this.describeCluster()}; ${this.history.pendingCount()} ops pending`);
      }
      await this.step();
    }
  }

  /** A linearizable read of every key ever used, through a random node: lost writes show up here. */
  private async finalReads(): Promise<void> {
    const { cluster, workload } = this;
    const nodes = cluster.members().map((id) => cluster.nodes.get(id)).filter((n) => n !== undefined && n.up);
    assert(nodes.length > 0, 'no member is up for the final reads');
    for (const key of [...workload.usedKeys].sort()) {
      const node = cluster.rnd.pick(nodes);
      if (node !== undefined) workload.finalRead(key, node);
    }
    const start = cluster.now;
    while (this.history.pendingCount() > 0) {
      if (cluster.now - start > CONVERGE_MS) {
        throw new SimFailure('liveness', `final reads still pending after ${CONVERGE_MS} ms: ${this.describeCluster()}`);
      }
      await this.step();
    }
  }

  private finalChecks(): void {
    const { cluster, history } = this;
    cluster.crossCheckLogs();
    const members = cluster.members();
    let reference: { node: number; fingerprint: string; events: string } | null = null;
    let finalEvents = null;
    let compacted = 0;
    let revision = 0;
    for (const id of members) {
      const replica = cluster.replica(id);
      if (replica === null) throw new SimFailure('convergence', `member n${id} is not running after the calm phase`);
      const fingerprint = replicaFingerprint(replica);
      const events = eventHistory(replica);
      const eventsPrint = eventsFingerprint(events);
      if (reference === null) {
        reference = { node: id, fingerprint, events: eventsPrint };
        finalEvents = events;
        compacted = replica.store.compactedRevision;
        revision = replica.store.currentRevision;
      } else if ((reference.fingerprint !== fingerprint || reference.events !== eventsPrint) && !this.ignore.has('convergence')) {
        throw new SimFailure(
          'convergence',
          `replicas differ after healing: n${reference.node} ${reference.fingerprint} (${reference.events}) vs n${id} ${fingerprint} (${eventsPrint})`,
        );
      }
    }
    assert(finalEvents !== null, 'no member to check');
    const events = finalEvents;
    const enforce = (check: FinalCheck, run: () => void) => {
      if (!this.ignore.has(check)) run();
    };
    enforce('lost write', () => checkWrites(history, events, compacted, this.cluster.applied.putAt));
    enforce('revision order', () => checkRevisionOrder(history));
    enforce('lease expiry', () => {
      this.knownBugHits = checkLeaseExpiry(history, this.workload.leaseGone, this.cluster.leaseClockEvents, this.cluster.workarounds);
    });
    enforce('linearizability', () =>
      checkLinearizability(history, { putAt: this.cluster.applied.putAt, complete: true, compactedRevision: compacted }),
    );
    this.finalRevision = revision;
  }

  private describeCluster(): string {
    const parts: string[] = [];
    for (const node of this.cluster.nodes.values()) {
      if (node.removed) continue;
      const replica = this.cluster.replica(node.id);
      if (replica === null) {
        parts.push(`n${node.id}: down`);
        continue;
      }
      const status = replica.raft.status();
      parts.push(
        `n${node.id}: ${status.softState.role} t${status.hardState.term} commit=${status.hardState.commit} applied=${replica.applied} leader=n${replica.leaderId}${node.paused ? ' paused' : ''}`,
      );
    }
    return `${parts.join('; ')}; members ${this.cluster.members().join(',')}; group ${GROUP_ID}; step ${QUANTUM_MS} ms`;
  }
}
