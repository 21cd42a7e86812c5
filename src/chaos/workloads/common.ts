// What every workload shares: the run context, the result shape, and a client slot that records
// each call in the history and follows Jepsen's rule for unknown outcomes (the process that
// issued it is gone for good: later ops come from a new process, since the old op may still land).
import { toCallError } from '../client.ts';
import type { CallError, EtcdClient } from '../client.ts';
import type { Clock, History, HistoryOp } from '../history.ts';
import type { Random } from '../random.ts';
import type { CheckResult, TimelineBand, Verdict } from '../checker/index.ts';

export type WorkloadName = 'register' | 'bank' | 'append' | 'watch' | 'lock';
export const WORKLOADS: readonly WorkloadName[] = ['register', 'bank', 'append', 'watch', 'lock'];

export interface WorkloadContext {
  /** One client per node, index = node index. */
  clients: EtcdClient[];
  /** Clients with a longer deadline for setup and final reads (the cluster is healthy then). */
  patientClients: EtcdClient[];
  clock: Clock;
  /** False once the run's time is up: workers finish their current op and return. */
  running(): boolean;
  log(line: string): void;
  /** Prefix of every key the workload touches (unique per run). */
  prefix: string;
  /** Budget for the linearizability check. */
  checkTimeoutMs: number;
  /**
   * Workload reads are serializable (served from the local node, may be stale): not linearizable
   * by design, for checking that the harness catches stale reads. Final reads stay linearizable.
   */
  serializableReads: boolean;
}

export interface WorkloadResult {
  /** Client ops invoked (every status). */
  ops: number;
  linearizable: 'yes' | 'no' | 'unknown';
  lost: number;
  duplicated: number;
  /** Findings of the workload's direct checks, one line each (empty when all hold). */
  problems: string[];
  /** Human-readable summary and violation report. */
  report: string;
  /** HTML timeline of the checked history. */
  html: string;
  /** Every recorded op, JSON lines. */
  history: string;
  /** More files for the output directory, by name (e.g. the watch workload's replayed history). */
  files?: Record<string, string>;
}

export interface Workload {
  readonly name: WorkloadName;
  /** Creates initial keys; runs before the nemesis starts. */
  setup(ctx: WorkloadContext): Promise<void>;
  /** One client's loop, until ctx.running() turns false. */
  worker(ctx: WorkloadContext, index: number, rng: Random): Promise<void>;
  /** After every fault is healed: final reads, then the checks. */
  finish(ctx: WorkloadContext, bands: TimelineBand[]): Promise<WorkloadResult>;
}

export class WorkloadUnsupported extends Error {
  override name = 'WorkloadUnsupported';
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Hands out process ids; workers start with their own index. */
export class Processes {
  private nextId: number;
  constructor(workers: number) {
    this.nextId = workers;
  }
  fresh(): number {
    return this.nextId++;
  }
}

/** A worker's connection: which process it is and which node it talks to. */
export class ClientSlot {
  process: number;
  node: number;

  constructor(
    private readonly ctx: WorkloadContext,
    index: number,
    private readonly processes: Processes,
  ) {
    this.process = index;
    this.node = index % ctx.clients.length;
  }

  get client(): EtcdClient {
    return this.ctx.clients[this.node];
  }

  /**
   * Runs `call` as one op of `history`: ok → `output(result)` recorded and the result returned;
   * an error → recorded as fail/unknown, the slot moves to the next node (an unknown outcome also
   * retires the process), and null is returned.
   */
  async run<I, O, R>(
    history: History<I, O>,
    input: I,
    call: (client: EtcdClient) => Promise<R>,
    output: (result: R) => O,
  ): Promise<{ result: R; op: HistoryOp<I, O> } | { error: CallError; op: HistoryOp<I, O> }> {
    const op = history.invoke(this.process, this.node, input);
    try {
      const result = await call(this.client);
      history.ok(op, output(result));
      return { result, op };
    } catch (raw) {
      const error = toCallError(raw);
      history.failed(op, error);
      await this.afterError(error);
      return { error, op };
    }
  }

  /** Moves on after an error: another node, a new process if the outcome is unknown, a pause. */
  async afterError(error: CallError): Promise<void> {
    if (error.outcome === 'unknown') this.process = this.processes.fresh();
    this.node = (this.node + 1) % this.ctx.clients.length;
    await sleep(error.outcome === 'fail' ? 100 : 10);
  }
}

export function verdictWord(verdict: Verdict): 'yes' | 'no' | 'unknown' {
  return verdict === 'ok' ? 'yes' : verdict === 'illegal' ? 'no' : 'unknown';
}

/** Combines the checker's verdict with direct findings that also mean "not linearizable". */
export function combine(check: CheckResult<unknown, unknown> | null, violations: number): 'yes' | 'no' | 'unknown' {
  if (violations > 0) return 'no';
  return check === null ? 'unknown' : verdictWord(check.verdict);
}

/** A summary line of a history's statuses. */
export function statusLine<I, O>(history: History<I, O>): string {
  return `${history.ops.length} ops: ${history.count('ok')} ok, ${history.count('fail')} failed, ${history.count('unknown')} unknown`;
}
