// One chaos run: a fresh cluster in a directory of its own, a workload of concurrent clients and
// the nemesis for the given time, then every fault healed, recovery and convergence checked, the
// history checked, and the history, nemesis log, report and timeline written next to the logs.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProcessCluster } from './cluster.ts';
import { EtcdClient, prefixEnd } from './client.ts';
import type { KeyValue } from './client.ts';
import { Clock } from './history.ts';
import { PLANTED_BUG_ENV } from '../server/index.ts';
import type { PlantedBug } from '../server/index.ts';
import { CONTROLLED_FAULTS, DEFAULT_TIMING, Nemesis } from './nemesis.ts';
import type { FaultKind, NemesisTiming } from './nemesis.ts';
import { Random } from './random.ts';
import { createWorkload } from './workloads/index.ts';
import { WorkloadUnsupported, sleep } from './workloads/common.ts';
import type { WorkloadContext, WorkloadName, WorkloadResult } from './workloads/common.ts';

export interface ChaosOptions {
  workload: WorkloadName;
  faults: FaultKind[];
  timeSec: number;
  seed: number;
  nodes?: number;
  /** Concurrent clients (default 10). */
  workers?: number;
  /** Output directory (default: a new one under the system temp directory). */
  dir?: string;
  /** Deadline of each workload op (default 2 s): past it the op's outcome is unknown. */
  opTimeoutMs?: number;
  /** Budget for the linearizability check (default 120 s). */
  checkTimeoutMs?: number;
  /** How long the healed cluster gets to serve again on every node (default 60 s). */
  recoveryTimeoutMs?: number;
  timing?: NemesisTiming;
  /** Serializable workload reads (register only): a harness self-test that must find stale reads. */
  serializableReads?: boolean;
  /** Keep the nodes' data directories even when the run passes. */
  keepData?: boolean;
  /**
   * Harness self-test: start every node with this TEST-ONLY planted bug (TESSERA_PLANTED_BUG);
   * the run should then FAIL.
   */
  plantedBug?: PlantedBug;
  /** Every node's --snapshot-count (default: the node's, 100,000); small values make snapshots, and installs of them, happen under faults. */
  snapshotCount?: number;
  log?: (line: string) => void;
}

export interface ChaosResult {
  ok: boolean;
  ops: number;
  workload: WorkloadName;
  linearizable: 'yes' | 'no' | 'unknown';
  lost: number;
  duplicated: number;
  /** Everything that did not check out, one line each. */
  problems: string[];
  faults: Record<FaultKind, number>;
  /** Faults asked for that this build of Tessera cannot inject. */
  unavailableFaults: FaultKind[];
  dir: string;
  /** The run's last line: `chaos: <ops> ops, <workload>, linearizable=…, lost=…, duplicated=…`. */
  summary: string;
}

const CLI = fileURLToPath(new URL('../cli/main.ts', import.meta.url));
const BUILD_SCRIPT = fileURLToPath(new URL('../../scripts/build.mjs', import.meta.url));
/** How long the healed cluster gets to serve again on every node. */
const RECOVERY_TIMEOUT_MS = 60_000;
const PATIENT_TIMEOUT_MS = 10_000;

/** Whether `tessera start` knows the fault-injection flag (the control endpoint partitions need). */
export function supportsFaultInjection(): boolean {
  const help = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'start', '--help'], { encoding: 'utf8', timeout: 30_000 });
  return `${help.stdout}`.includes('--experimental-fault-injection');
}

/**
 * Bundles the sources as they are now (scripts/build.mjs) into dist/chaos-<pid>/ for the nodes to
 * run: a node the nemesis restarts runs the same code as at the start, even if a source file is
 * edited meanwhile (a soak takes hours), and nodes run as deployed. Removed when the run ends.
 */
function buildBundle(log: (line: string) => void): string {
  const name = `dist/chaos-${process.pid}`;
  const built = spawnSync(process.execPath, [BUILD_SCRIPT, '--outdir', name], { encoding: 'utf8', timeout: 120_000 });
  if (built.status !== 0) throw new Error(`chaos: building the node bundle failed: ${built.stderr || built.error?.message}`);
  log(`chaos: nodes run a bundle of the sources as of now (${name}/)`);
  return fileURLToPath(new URL(`../../${name}/`, import.meta.url));
}

export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), `tessera-chaos-${options.workload}-${options.seed}-`));
  mkdirSync(dir, { recursive: true });
  log(`chaos: writing history and reports to ${dir}`);
  const { faults, unavailableFaults } = usableFaults(options.faults, log);
  const bundle = buildBundle(log);
  const cluster = await ProcessCluster.start({
    cli: join(bundle, 'tessera.mjs'),
    extraArgs: options.snapshotCount === undefined ? [] : ['--snapshot-count', String(options.snapshotCount), '--snapshot-catchup-entries', '50'],
    nodes: options.nodes ?? 3,
    root: join(dir, 'cluster'),
    logLevel: 'info',
    faultInjection: faults.some((kind) => CONTROLLED_FAULTS.includes(kind)),
    exitWithParent: true,
    readyTimeoutMs: RECOVERY_TIMEOUT_MS,
    env: options.plantedBug === undefined ? {} : { [PLANTED_BUG_ENV]: options.plantedBug },
  });
  if (options.plantedBug !== undefined) log(`chaos: PLANTED BUG ${options.plantedBug} on every node (harness self-test: this run should FAIL)`);
  const killChildren = () => cluster.nodes.forEach((n) => n.proc?.kill('SIGKILL'));
  process.once('exit', killChildren);
  const clients = cluster.endpoints().map((e) => new EtcdClient(e, options.opTimeoutMs ?? 2_000));
  const patientClients = cluster.endpoints().map((e) => new EtcdClient(e, PATIENT_TIMEOUT_MS));
  const rng = new Random(options.seed);
  const clock = new Clock();
  const deadline = Date.now() + options.timeSec * 1_000;
  const ctx: WorkloadContext = {
    clients,
    patientClients,
    clock,
    running: () => Date.now() < deadline,
    log,
    prefix: 'chaos/',
    checkTimeoutMs: options.checkTimeoutMs ?? 120_000,
    serializableReads: options.serializableReads ?? false,
  };
  const workers = options.workers ?? 10;
  const workload = createWorkload(options.workload, ctx, workers);
  const nemesis = new Nemesis(cluster, patientClients, faults, rng.fork(), clock, log, options.timing ?? DEFAULT_TIMING);
  /** Problems of the run itself (recovery, convergence); the workload reports its own. */
  const runProblems: string[] = [];
  let result: WorkloadResult | null = null;
  try {
    await workload.setup(ctx);
    await nemesis.init();
    log(`chaos: ${options.workload} with ${workers} clients, nemesis ${faults.join(',') || 'none'}, ${options.timeSec} s, seed ${options.seed}`);
    const workerRngs = Array.from({ length: workers }, () => rng.fork());
    await Promise.all([nemesis.run(ctx.running), ...workerRngs.map((r, i) => workload.worker(ctx, i, r))]);
    log(`chaos: time is up; healing (${describeCounts(nemesis.counts(), faults)})`);
    runProblems.push(...(await healAndConverge(nemesis, cluster, patientClients, ctx.prefix, log, options.recoveryTimeoutMs ?? RECOVERY_TIMEOUT_MS)));
    result = await workload.finish(ctx, nemesis.bands());
  } catch (error) {
    if (!(error instanceof WorkloadUnsupported)) throw error;
    runProblems.push(error.message);
  } finally {
    clients.forEach((c) => c.close());
    patientClients.forEach((c) => c.close());
    await cluster.stop({ keepData: true });
    process.removeListener('exit', killChildren);
    rmSync(bundle, { recursive: true, force: true });
  }
  const problems = [...runProblems, ...(result?.problems ?? [])];
  const linearizable = result?.linearizable ?? 'unknown';
  const lost = result?.lost ?? 0;
  const duplicated = result?.duplicated ?? 0;
  const ok = result !== null && linearizable === 'yes' && lost === 0 && duplicated === 0 && problems.length === 0;
  const header =
    `workload ${options.workload}, nemesis ${faults.join(',') || 'none'} (${describeCounts(nemesis.counts(), faults)}), ${options.timeSec} s, seed ${options.seed}` +
    (options.plantedBug === undefined ? '' : `, PLANTED BUG ${options.plantedBug}`);
  writeOutputs(dir, header, nemesis, result, runProblems, ok);
  if (ok && !options.keepData) {
    for (const node of cluster.nodes) rmSync(node.dataDir, { recursive: true, force: true });
  }
  const ops = result?.ops ?? 0;
  return {
    ok,
    ops,
    workload: options.workload,
    linearizable,
    lost,
    duplicated,
    problems,
    faults: nemesis.counts(),
    unavailableFaults,
    dir,
    summary: `chaos: ${ops} ops, ${options.workload}, linearizable=${linearizable}, lost=${lost}, duplicated=${duplicated}`,
  };
}

/** The requested faults this build can inject (partitions, disk faults and clock skew need the fault-injection endpoint). */
function usableFaults(requested: FaultKind[], log: (line: string) => void): { faults: FaultKind[]; unavailableFaults: FaultKind[] } {
  const faults = [...new Set(requested)];
  const controlled = faults.filter((f) => CONTROLLED_FAULTS.includes(f));
  if (controlled.length === 0 || supportsFaultInjection()) return { faults, unavailableFaults: [] };
  log(`chaos: WARNING: \`tessera start\` has no --experimental-fault-injection; the ${controlled.join(', ')} nemesis is disabled`);
  return { faults: faults.filter((f) => !controlled.includes(f)), unavailableFaults: controlled };
}

/** Heals every fault, waits for every node to serve, checks convergence; returns what failed. */
async function healAndConverge(
  nemesis: Nemesis,
  cluster: ProcessCluster,
  clients: EtcdClient[],
  prefix: string,
  log: (line: string) => void,
  recoveryTimeoutMs: number,
): Promise<string[]> {
  const problems: string[] = [];
  try {
    await nemesis.healAll();
  } catch (error) {
    problems.push(`nemesis could not heal every fault: ${(error as Error).message}`);
  }
  try {
    await cluster.waitReady(recoveryTimeoutMs);
    log('chaos: every node serves again');
    problems.push(...(await nemesis.checkMembership()));
    problems.push(...(await checkConvergence(clients, prefix, log, recoveryTimeoutMs)));
  } catch (error) {
    problems.push(`cluster did not recover after healing: ${(error as Error).message}`);
  }
  problems.push(...nemesis.problems);
  for (const exit of cluster.unexpectedExits) {
    problems.push(`${exit.name} exited on its own (code ${exit.code}, signal ${exit.signal}); its log ends:\n${exit.logTail}`);
  }
  return problems;
}

function writeOutputs(dir: string, header: string, nemesis: Nemesis, result: WorkloadResult | null, runProblems: string[], ok: boolean): void {
  writeFileSync(join(dir, 'nemesis.jsonl'), nemesis.events.map((e) => JSON.stringify(e)).join('\n') + '\n');
  if (result) {
    writeFileSync(join(dir, 'history.jsonl'), result.history);
    writeFileSync(join(dir, 'timeline.html'), result.html);
    for (const [name, content] of Object.entries(result.files ?? {})) writeFileSync(join(dir, name), content);
  }
  const report = [
    header,
    ...nemesis.events.map((e) => `  fault ${(e.startNs / 1e6).toFixed(0)}-${e.endNs === null ? '?' : (e.endNs / 1e6).toFixed(0)} ms: ${e.detail}`),
    result?.report ?? 'no result',
    ...runProblems.map((p) => `problem: ${p}`),
    `verdict: ${ok ? 'PASS' : 'FAIL'}`,
  ];
  writeFileSync(join(dir, 'report.txt'), report.join('\n') + '\n');
}

/** `3 kill, 2 disk`: the counts of the kinds the run asked for. */
function describeCounts(counts: Record<FaultKind, number>, kinds: readonly FaultKind[]): string {
  return kinds.map((kind) => `${counts[kind]} ${kind}`).join(', ') || 'no faults';
}

/**
 * After healing: one write through the cluster, then every node must have applied it and hold the
 * same keys at that revision (serializable reads, so each node answers from its own state).
 */
async function checkConvergence(clients: EtcdClient[], prefix: string, log: (line: string) => void, recoveryTimeoutMs: number): Promise<string[]> {
  let revision = 0;
  for (let attempt = 0; attempt < clients.length * 3 && revision === 0; attempt++) {
    try {
      revision = await clients[attempt % clients.length].put(`${prefix}converge`, String(Date.now()));
    } catch {
      await sleep(500);
    }
  }
  if (revision === 0) return ['convergence: no node accepted a write after healing'];
  const views: (KeyValue[] | string)[] = await Promise.all(
    clients.map(async (client) => {
      const until = Date.now() + recoveryTimeoutMs;
      let last = '';
      while (Date.now() < until) {
        try {
          const r = await client.range(prefix, { rangeEnd: prefixEnd(prefix), serializable: true, revision });
          return r.kvs;
        } catch (error) {
          last = (error as Error).message;
          await sleep(200);
        }
      }
      return `did not reach revision ${revision}: ${last}`;
    }),
  );
  const problems: string[] = [];
  const reference = JSON.stringify(views[0]);
  views.forEach((view, i) => {
    if (typeof view === 'string') problems.push(`convergence: node ${i + 1} ${view}`);
    else if (JSON.stringify(view) !== reference) problems.push(`convergence: node ${i + 1} differs from node 1 at revision ${revision} (${describeDiff(views[0], view)})`);
  });
  if (problems.length === 0) log(`chaos: all ${clients.length} nodes hold the same ${(views[0] as KeyValue[]).length} keys at revision ${revision}`);
  return problems;
}

function describeDiff(a: KeyValue[] | string, b: KeyValue[]): string {
  if (typeof a === 'string') return 'node 1 has no view';
  const byKey = new Map(a.map((kv) => [kv.key, kv]));
  for (const kv of b) {
    const other = byKey.get(kv.key);
    if (other === undefined) return `${kv.key} only on this node`;
    if (JSON.stringify(other) !== JSON.stringify(kv)) return `${kv.key}: ${JSON.stringify(other)} vs ${JSON.stringify(kv)}`;
  }
  return `${a.length} vs ${b.length} keys`;
}
