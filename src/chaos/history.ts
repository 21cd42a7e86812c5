// Client histories as Jepsen records them: each op's invoke and completion time (process.hrtime,
// ns since the run started), its input, its result, and whether it is ok, failed (certainly no
// effect) or unknown (timed out, connection lost: it may have happened, now or later).
import { assert } from '../util/index.ts';
import type { CallError } from './client.ts';
import type { Operation } from './checker/index.ts';

export type OpStatus = 'pending' | 'ok' | 'fail' | 'unknown';

export interface HistoryOp<I, O> {
  id: number;
  /** The logical client (Jepsen's process); a client gets a new one after an unknown outcome. */
  process: number;
  /** Index of the node the request went to. */
  node: number;
  input: I;
  output: O | null;
  status: OpStatus;
  error?: string;
  invokeNs: number;
  /** When the answer (or the error) came back; for unknown ops the op may still take effect later. */
  completeNs: number | null;
}

/** One shared time base for the workload's history and the nemesis's log. */
export class Clock {
  private readonly startNs = process.hrtime.bigint();

  nowNs(): number {
    return Number(process.hrtime.bigint() - this.startNs);
  }
}

/** Bound on recorded ops, so a runaway loop cannot exhaust memory (a 60 s run records ~20-50k). */
export const MAX_HISTORY_OPS = 2_000_000;

export class History<I, O> {
  readonly ops: HistoryOp<I, O>[] = [];

  constructor(readonly clock: Clock) {}

  invoke(process: number, node: number, input: I): HistoryOp<I, O> {
    if (this.ops.length >= MAX_HISTORY_OPS) throw new Error(`history is full (${MAX_HISTORY_OPS} ops)`);
    const op: HistoryOp<I, O> = {
      id: this.ops.length,
      process,
      node,
      input,
      output: null,
      status: 'pending',
      invokeNs: this.clock.nowNs(),
      completeNs: null,
    };
    this.ops.push(op);
    return op;
  }

  ok(op: HistoryOp<I, O>, output: O): void {
    assert(op.status === 'pending', () => `op ${op.id} completed twice`);
    op.completeNs = this.clock.nowNs();
    op.output = output;
    op.status = 'ok';
  }

  /** A call that failed: `fail` when the error proves no effect, else `unknown`. */
  failed(op: HistoryOp<I, O>, error: CallError): void {
    this.settle(op, error.outcome, error.message);
  }

  settle(op: HistoryOp<I, O>, status: 'fail' | 'unknown', reason: string): void {
    assert(op.status === 'pending', () => `op ${op.id} completed twice`);
    op.completeNs = this.clock.nowNs();
    op.status = status;
    op.error = reason;
  }

  count(status: OpStatus): number {
    return this.ops.filter((op) => op.status === status).length;
  }

  /**
   * The ops for the checker: failed ops are left out (they had no effect); unknown ones (and any
   * still pending) return at +Infinity with no output. `keep` can drop more (e.g. resolved ops).
   */
  operations(keep: (op: HistoryOp<I, O>) => boolean = () => true): Operation<I, O>[] {
    const out: Operation<I, O>[] = [];
    for (const op of this.ops) {
      if (op.status === 'fail' || !keep(op)) continue;
      const known = op.status === 'ok';
      assert(!known || op.completeNs !== null, 'an ok op has a completion time');
      out.push({
        id: op.id,
        process: op.process,
        input: op.input,
        output: known ? op.output : null,
        call: op.invokeNs,
        ret: known ? (op.completeNs as number) : Infinity,
      });
    }
    return out;
  }

  /** JSON lines, one op per line. */
  toJsonLines(): string {
    return this.ops.map((op) => JSON.stringify(op)).join('\n') + '\n';
  }
}
