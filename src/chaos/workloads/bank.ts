// Bank workload: money moves between accounts (one key each) in multi-key Txns guarded by the
// balances the client read; every transfer also writes a log key in the same Txn. Reads take all
// balances in one Range (one revision). Checks: the total never changes, no read sees part of a
// transfer, the history is linearizable (bank model), and the final balances are exactly the
// initial ones plus the logged transfers: acknowledged transfers missing from the log are lost.
import { bankModel, checkLinearizable, htmlTimeline, textReport } from '../checker/index.ts';
import type { BankInput, BankOutput, CheckResult, TimelineBand } from '../checker/index.ts';
import { prefixEnd } from '../client.ts';
import type { EtcdClient, KeyValue } from '../client.ts';
import { History } from '../history.ts';
import type { HistoryOp } from '../history.ts';
import type { Random } from '../random.ts';
import { ClientSlot, Processes, WorkloadUnsupported, combine, statusLine } from './common.ts';
import type { Workload, WorkloadContext, WorkloadResult } from './common.ts';

export interface BankOptions {
  workers: number;
  accounts?: number;
  initialBalance?: number;
}

interface TransferLog {
  from: number;
  to: number;
  amount: number;
}

export class BankWorkload implements Workload {
  readonly name = 'bank';
  readonly history: History<BankInput, BankOutput>;
  private readonly processes: Processes;
  private readonly accounts: number;
  private readonly initial: number;
  private readonly accountPrefix: string;
  private readonly logPrefix: string;
  private nextTransfer = 0;
  /** The transfer log key of each transfer op. */
  private readonly logKeyOf = new Map<number, string>();

  constructor(ctx: WorkloadContext, options: BankOptions) {
    this.history = new History(ctx.clock);
    this.processes = new Processes(options.workers);
    this.accounts = options.accounts ?? 5;
    this.initial = options.initialBalance ?? 100;
    this.accountPrefix = `${ctx.prefix}bank/acct/`;
    this.logPrefix = `${ctx.prefix}bank/log/`;
  }

  private account(i: number): string {
    return `${this.accountPrefix}${i}`;
  }

  async setup(ctx: WorkloadContext): Promise<void> {
    const puts = Array.from({ length: this.accounts }, (_, i) => ({ put: { key: this.account(i), value: String(this.initial) } }));
    const created = await ctx.patientClients[0].txn([{ key: this.account(0), target: 'CREATE', result: 'EQUAL', value: 0 }], puts);
    if (!created.succeeded) throw new WorkloadUnsupported('bank: accounts already exist (not a fresh cluster)');
  }

  /** Balances by account index from a Range over the account keys (null if any is missing). */
  private balances(kvs: KeyValue[]): number[] {
    const out = new Array<number>(this.accounts).fill(Number.NaN);
    for (const kv of kvs) out[Number(kv.key.slice(this.accountPrefix.length))] = Number(kv.value);
    return out;
  }

  private readAll(client: EtcdClient) {
    return client.range(this.accountPrefix, { rangeEnd: prefixEnd(this.accountPrefix) });
  }

  async worker(ctx: WorkloadContext, index: number, rng: Random): Promise<void> {
    const slot = new ClientSlot(ctx, index, this.processes);
    while (ctx.running()) {
      const read = await slot.run(this.history, { f: 'read' }, (c) => this.readAll(c), (r) => ({ balances: this.balances(r.kvs) }));
      if (!('result' in read) || rng.chance(0.3)) continue;
      const balances = this.balances(read.result.kvs);
      const from = rng.int(this.accounts);
      const to = (from + 1 + rng.int(this.accounts - 1)) % this.accounts;
      if (!(balances[from] > 0)) continue;
      const amount = 1 + rng.int(Math.min(balances[from], 20));
      const logKey = `${this.logPrefix}${String(this.nextTransfer++).padStart(7, '0')}`;
      const input: BankInput = { f: 'transfer', from, to, amount, expect: [balances[from], balances[to]] };
      const log: TransferLog = { from, to, amount };
      const outcome = await slot.run(
        this.history,
        input,
        (c) =>
          c.txn(
            [
              { key: this.account(from), target: 'VALUE', result: 'EQUAL', value: String(balances[from]) },
              { key: this.account(to), target: 'VALUE', result: 'EQUAL', value: String(balances[to]) },
            ],
            [
              { put: { key: this.account(from), value: String(balances[from] - amount) } },
              { put: { key: this.account(to), value: String(balances[to] + amount) } },
              { put: { key: logKey, value: JSON.stringify(log) } },
            ],
          ),
        () => ({}),
      );
      this.logKeyOf.set(outcome.op.id, logKey);
      // A guard that failed: the txn certainly had no effect, so it is not an op of the model.
      if ('result' in outcome && !outcome.result.succeeded) {
        outcome.op.status = 'fail';
        outcome.op.error = 'guard failed (balances changed since the read)';
      }
    }
  }

  async finish(ctx: WorkloadContext, bands: TimelineBand[]): Promise<WorkloadResult> {
    const problems: string[] = [];
    const finalSlot = new ClientSlot({ ...ctx, clients: ctx.patientClients }, 0, this.processes);
    finalSlot.process = this.processes.fresh();
    let final: number[] | null = null;
    let logs: KeyValue[] | null = null;
    for (let attempt = 0; attempt < 5 && (final === null || logs === null); attempt++) {
      const read = await finalSlot.run(this.history, { f: 'read' }, (c) => this.readAll(c), (r) => ({ balances: this.balances(r.kvs) }));
      if ('result' in read) final = this.balances(read.result.kvs);
      try {
        logs = (await finalSlot.client.range(this.logPrefix, { rangeEnd: prefixEnd(this.logPrefix) })).kvs;
      } catch {
        logs = null;
      }
    }
    if (final === null || logs === null) {
      problems.push('bank: final reads failed');
      return this.result(null, problems, 0, 0, bands);
    }
    const logged = new Map(logs.map((kv) => [kv.key, kv]));
    let lost = 0;
    let duplicated = 0;
    const transfers = this.history.ops.filter((op) => op.input.f === 'transfer' && op.status !== 'fail');
    for (const op of transfers) {
      const kv = logged.get(this.logKeyOf.get(op.id) ?? '');
      if (op.status === 'ok' && kv === undefined) {
        lost++;
        problems.push(`bank: acknowledged transfer op ${op.id} (${JSON.stringify(op.input)}) is not in the log`);
      }
      if (kv !== undefined && kv.version > 1) {
        duplicated++;
        problems.push(`bank: transfer op ${op.id} applied ${kv.version} times`);
      }
    }
    problems.push(...this.checkReads(final, logs));
    // An unknown transfer whose log key is absent never happened: drop it (it also speeds the search).
    const resolved = (op: HistoryOp<BankInput, BankOutput>) => op.input.f !== 'transfer' || op.status !== 'unknown' || logged.has(this.logKeyOf.get(op.id) ?? '');
    const check = checkLinearizable(bankModel(this.accounts, this.initial), this.history.operations(resolved), { timeoutMs: ctx.checkTimeoutMs });
    return this.result(check, problems, lost, duplicated, bands);
  }

  /** Totals of every read, and the final balances against the initial ones plus the logged transfers. */
  private checkReads(final: number[], logs: KeyValue[]): string[] {
    const problems: string[] = [];
    const total = this.accounts * this.initial;
    for (const op of this.history.ops) {
      if (op.status !== 'ok' || op.output === null || !('balances' in op.output)) continue;
      const sum = op.output.balances.reduce((a, b) => a + b, 0);
      if (sum !== total) problems.push(`bank: read op ${op.id} saw [${op.output.balances.join(' ')}], total ${sum}, expected ${total}`);
    }
    const expected = new Array<number>(this.accounts).fill(this.initial);
    for (const kv of logs) {
      const t = JSON.parse(kv.value) as TransferLog;
      expected[t.from] -= t.amount;
      expected[t.to] += t.amount;
    }
    if (expected.some((b, i) => b !== final[i])) {
      problems.push(`bank: final balances [${final.join(' ')}] but the ${logs.length} logged transfers give [${expected.join(' ')}]`);
    }
    return problems;
  }

  private result(check: CheckResult<BankInput, BankOutput> | null, problems: string[], lost: number, duplicated: number, bands: TimelineBand[]): WorkloadResult {
    const model = bankModel(this.accounts, this.initial);
    const partial = problems.filter((p) => p.includes('saw [')).length;
    return {
      ops: this.history.ops.length,
      linearizable: combine(check, partial),
      lost,
      duplicated,
      problems,
      report: [`bank: ${statusLine(this.history)}`, check ? textReport(model, check) : 'not checked', ...problems.map((p) => `problem: ${p}`)].join('\n'),
      html: check ? htmlTimeline(model, check, bands) : '<p>not checked</p>',
      history: this.history.toJsonLines(),
    };
  }
}
