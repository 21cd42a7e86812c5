// Register workload (Jepsen's etcd test): linearizable reads, writes and compare-and-sets of small
// values on many keys; each key retires after a bounded number of ops so per-key histories stay
// small for the checker. Final check: the history is linearizable per key, and each key's etcd
// `version` equals the writes that took effect (acknowledged ≤ version ≤ acknowledged + unknown).
import { checkLinearizable, htmlTimeline, registerModel, textReport } from '../checker/index.ts';
import type { RegisterInput, RegisterOutput, TimelineBand } from '../checker/index.ts';
import { History } from '../history.ts';
import type { Random } from '../random.ts';
import { ClientSlot, Processes, combine, statusLine } from './common.ts';
import type { Workload, WorkloadContext, WorkloadResult } from './common.ts';

/** Tries per key for the final read (the cluster is healed then; each try has the patient deadline). */
const FINAL_READ_ATTEMPTS = 5;

export interface RegisterOptions {
  workers: number;
  /** Keys in use at any time. */
  activeKeys?: number;
  /** Ops on one key before it is retired and a fresh key takes its place. */
  opsPerKey?: number;
  /** Values are 0..valueCount-1: few values make compare-and-set contend. */
  valueCount?: number;
}

export class RegisterWorkload implements Workload {
  readonly name = 'register';
  readonly history: History<RegisterInput, RegisterOutput>;
  private readonly processes: Processes;
  private readonly active: number[];
  private readonly opsOnKey = new Map<number, number>();
  private nextKey: number;
  private readonly opsPerKey: number;
  private readonly valueCount: number;
  private prefix = '';

  constructor(
    ctx: WorkloadContext,
    private readonly options: RegisterOptions,
  ) {
    this.history = new History(ctx.clock);
    this.processes = new Processes(options.workers);
    const activeKeys = options.activeKeys ?? 8;
    this.active = Array.from({ length: activeKeys }, (_, i) => i);
    this.nextKey = activeKeys;
    this.opsPerKey = options.opsPerKey ?? 200;
    this.valueCount = options.valueCount ?? 5;
    this.prefix = `${ctx.prefix}reg/`;
  }

  key(index: number): string {
    return `${this.prefix}${String(index).padStart(5, '0')}`;
  }

  async setup(): Promise<void> {}

  /** Picks an active key, retiring it once it has had its share of ops. */
  private pickKey(rng: Random): string {
    const slot = rng.int(this.active.length);
    const index = this.active[slot];
    const used = (this.opsOnKey.get(index) ?? 0) + 1;
    this.opsOnKey.set(index, used);
    if (used >= this.opsPerKey) this.active[slot] = this.nextKey++;
    return this.key(index);
  }

  async worker(ctx: WorkloadContext, index: number, rng: Random): Promise<void> {
    const slot = new ClientSlot(ctx, index, this.processes);
    while (ctx.running()) {
      const key = this.pickKey(rng);
      const roll = rng.int(4);
      const value = () => String(rng.int(this.valueCount));
      if (roll < 2) {
        const serializable = ctx.serializableReads;
        await slot.run(this.history, { f: 'read', key }, (c) => c.range(key, { serializable }), (r) => ({ value: r.kvs[0]?.value ?? null }));
      } else if (roll === 2) {
        const v = value();
        await slot.run(this.history, { f: 'write', key, value: v }, (c) => c.put(key, v), () => ({}));
      } else {
        const from = value();
        const to = value();
        await slot.run(
          this.history,
          { f: 'cas', key, from, to },
          (c) => c.txn([{ key, target: 'VALUE', result: 'EQUAL', value: from }], [{ put: { key, value: to } }]),
          (r) => ({ succeeded: r.succeeded }),
        );
      }
    }
  }

  async finish(ctx: WorkloadContext, bands: TimelineBand[]): Promise<WorkloadResult> {
    const problems: string[] = [];
    const keys = [...this.opsOnKey.keys()].sort((a, b) => a - b).map((i) => this.key(i));
    // Final reads, one per key, recorded as ordinary ops (they take part in the check).
    const versions = new Map<string, number>();
    const finalSlot = new ClientSlot({ ...ctx, clients: ctx.patientClients }, 0, this.processes);
    finalSlot.process = this.processes.fresh();
    for (const key of keys) {
      for (let attempt = 1; attempt <= FINAL_READ_ATTEMPTS; attempt++) {
        const outcome = await finalSlot.run(this.history, { f: 'read', key }, (c) => c.range(key), (r) => ({ value: r.kvs[0]?.value ?? null }));
        if ('result' in outcome) {
          versions.set(key, outcome.result.kvs[0]?.version ?? 0);
          break;
        }
        if (attempt === FINAL_READ_ATTEMPTS) problems.push(`final read of ${key} failed: ${outcome.error.message}`);
      }
    }
    const { lost, duplicated, lines } = this.countWrites(versions);
    problems.push(...lines);
    const check = checkLinearizable(registerModel, this.history.operations(), { timeoutMs: ctx.checkTimeoutMs });
    const report = [
      `register: ${statusLine(this.history)}; ${keys.length} keys`,
      textReport(registerModel, check),
      ...problems.map((p) => `problem: ${p}`),
    ].join('\n');
    return {
      ops: this.history.ops.length,
      linearizable: combine(check, 0),
      lost,
      duplicated,
      problems,
      report,
      html: htmlTimeline(registerModel, check, bands),
      history: this.history.toJsonLines(),
    };
  }

  /** etcd's per-key version counts the puts that took effect: compare with what clients saw. */
  private countWrites(versions: Map<string, number>): { lost: number; duplicated: number; lines: string[] } {
    const acked = new Map<string, number>();
    const maybe = new Map<string, number>();
    for (const op of this.history.ops) {
      const effect =
        op.input.f === 'write' || (op.input.f === 'cas' && (op.status !== 'ok' || (op.output !== null && 'succeeded' in op.output && op.output.succeeded)));
      if (!effect || op.status === 'fail') continue;
      const target = op.status === 'ok' ? acked : maybe;
      target.set(op.input.key, (target.get(op.input.key) ?? 0) + 1);
    }
    let lost = 0;
    let duplicated = 0;
    const lines: string[] = [];
    for (const [key, version] of versions) {
      const low = acked.get(key) ?? 0;
      const high = low + (maybe.get(key) ?? 0);
      if (version < low) {
        lost += low - version;
        lines.push(`${key}: version ${version} but ${low} writes were acknowledged (lost ${low - version})`);
      } else if (version > high) {
        duplicated += version - high;
        lines.push(`${key}: version ${version} but at most ${high} writes were sent (${version - high} applied twice)`);
      }
    }
    return { lost, duplicated, lines };
  }
}
