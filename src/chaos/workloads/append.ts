// Append workload (Elle's list-append, on etcd): each key holds a comma-separated list; a client
// appends a unique element by reading the list and writing list+element in a Txn guarded by the
// key's mod revision. Checks: every read is a prefix of the key's final list, the final list has
// no element twice and every acknowledged append, and the history is linearizable (list model).
import { checkLinearizable, htmlTimeline, joinList, listModel, textReport } from '../checker/index.ts';
import type { ListInput, ListOutput, TimelineBand } from '../checker/index.ts';
import type { KeyValue } from '../client.ts';
import { History } from '../history.ts';
import type { Random } from '../random.ts';
import { ClientSlot, Processes, combine, statusLine } from './common.ts';
import type { Workload, WorkloadContext, WorkloadResult } from './common.ts';

export interface AppendOptions {
  workers: number;
  activeKeys?: number;
  /** Appends to one key before it is retired (keeps values and per-key histories small). */
  appendsPerKey?: number;
}

const parse = (kv: KeyValue | undefined): string[] => (kv === undefined || kv.value === '' ? [] : kv.value.split(','));

export class AppendWorkload implements Workload {
  readonly name = 'append';
  readonly history: History<ListInput, ListOutput>;
  private readonly processes: Processes;
  private readonly active: number[];
  private readonly appendsOnKey = new Map<number, number>();
  private nextKey: number;
  private nextElement = 0;
  private readonly appendsPerKey: number;
  private readonly keyPrefix: string;

  constructor(ctx: WorkloadContext, options: AppendOptions) {
    this.history = new History(ctx.clock);
    this.processes = new Processes(options.workers);
    const activeKeys = options.activeKeys ?? 6;
    this.active = Array.from({ length: activeKeys }, (_, i) => i);
    this.nextKey = activeKeys;
    this.appendsPerKey = options.appendsPerKey ?? 60;
    this.keyPrefix = `${ctx.prefix}list/`;
  }

  private key(index: number): string {
    return `${this.keyPrefix}${String(index).padStart(5, '0')}`;
  }

  async setup(): Promise<void> {}

  async worker(ctx: WorkloadContext, index: number, rng: Random): Promise<void> {
    const slot = new ClientSlot(ctx, index, this.processes);
    while (ctx.running()) {
      const position = rng.int(this.active.length);
      const keyIndex = this.active[position];
      const key = this.key(keyIndex);
      const read = await slot.run(this.history, { f: 'read', key }, (c) => c.range(key), (r) => ({ list: parse(r.kvs[0]) }));
      if (!('result' in read) || rng.chance(0.4)) continue;
      const prior = parse(read.result.kvs[0]);
      const modRevision = read.result.kvs[0]?.modRevision ?? 0;
      const element = `e${this.nextElement++}`;
      const value = joinList([...prior, element]);
      const outcome = await slot.run(
        this.history,
        { f: 'append', key, element, prior },
        (c) => c.txn([{ key, target: 'MOD', result: 'EQUAL', value: modRevision }], [{ put: { key, value } }]),
        () => ({}),
      );
      if ('result' in outcome && !outcome.result.succeeded) {
        outcome.op.status = 'fail';
        outcome.op.error = 'guard failed (the list changed since the read)';
        continue;
      }
      const appended = (this.appendsOnKey.get(keyIndex) ?? 0) + 1;
      this.appendsOnKey.set(keyIndex, appended);
      if (appended >= this.appendsPerKey && this.active[position] === keyIndex) this.active[position] = this.nextKey++;
    }
  }

  async finish(ctx: WorkloadContext, bands: TimelineBand[]): Promise<WorkloadResult> {
    const problems: string[] = [];
    const keys = [...new Set(this.history.ops.map((op) => op.input.key))].sort();
    const finals = new Map<string, string[]>();
    const finalSlot = new ClientSlot({ ...ctx, clients: ctx.patientClients }, 0, this.processes);
    finalSlot.process = this.processes.fresh();
    for (const key of keys) {
      for (let attempt = 0; attempt < 5 && !finals.has(key); attempt++) {
        const read = await finalSlot.run(this.history, { f: 'read', key }, (c) => c.range(key), (r) => ({ list: parse(r.kvs[0]) }));
        if ('result' in read) finals.set(key, parse(read.result.kvs[0]));
      }
      if (!finals.has(key)) problems.push(`append: final read of ${key} failed`);
    }
    let lost = 0;
    let duplicated = 0;
    for (const [key, list] of finals) {
      const seen = new Set<string>();
      for (const element of list) {
        if (seen.has(element)) {
          duplicated++;
          problems.push(`append: ${element} appears twice in ${key}`);
        }
        seen.add(element);
      }
    }
    let notPrefix = 0;
    for (const op of this.history.ops) {
      const final = finals.get(op.input.key);
      if (final === undefined || op.status !== 'ok') continue;
      if (op.input.f === 'append' && !final.includes(op.input.element)) {
        lost++;
        problems.push(`append: acknowledged ${op.input.element} (op ${op.id}) missing from ${op.input.key}`);
      }
      if (op.input.f === 'read' && op.output !== null && 'list' in op.output) {
        const list = op.output.list;
        if (list.length > final.length || list.some((e, i) => e !== final[i])) {
          notPrefix++;
          problems.push(`append: read op ${op.id} of ${op.input.key} saw [${list.join(' ')}], not a prefix of the final [${final.join(' ')}]`);
        }
      }
    }
    const check = checkLinearizable(listModel, this.history.operations(), { timeoutMs: ctx.checkTimeoutMs });
    return {
      ops: this.history.ops.length,
      linearizable: combine(check, notPrefix),
      lost,
      duplicated,
      problems,
      report: [`append: ${statusLine(this.history)}; ${keys.length} keys`, textReport(listModel, check), ...problems.map((p) => `problem: ${p}`)].join('\n'),
      html: htmlTimeline(listModel, check, bands),
      history: this.history.toJsonLines(),
    };
  }
}
