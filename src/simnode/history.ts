// The client history of one simulated run: every operation with its invocation and completion (in
// simulated time and in global event order), its result, or `unknown` when the outcome cannot be
// known (a timeout, no leader, its node crashed). Also the two sequential models it is checked
// against, for src/chaos's Wing–Gong/Porcupine checker: a per-key register with delete, and a lease.
import { hashString, IMPOSSIBLE, registerModel } from '../chaos/index.ts';
import type { Model, Operation, RegisterInput, RegisterOutput } from '../chaos/index.ts';
import { assert } from '../util/index.ts';

export type KvInput = RegisterInput;
export type KvOutput = RegisterOutput;

/**
 * Lease ops, partitioned by the lease's key (each lease guards one key). `expire` is not a client
 * op: the history holds one per lease, with an unknown outcome, so the checker may place the
 * leader's revoke anywhere after the grant was called, or nowhere.
 */
export type LeaseInput =
  | { f: 'grant'; key: string; id: number; ttlSeconds: number }
  | { f: 'keepalive'; key: string; id: number }
  | { f: 'revoke'; key: string; id: number }
  | { f: 'put'; key: string; id: number; value: string }
  | { f: 'read'; key: string }
  | { f: 'expire'; key: string; id: number };

export type LeaseOutput = { done: true } | { notFound: true } | { value: string | null };

export type OpStatus = 'pending' | 'ok' | 'fail' | 'unknown';

export interface SimOp<I, O> {
  id: number;
  /** The client; a client whose op is unknown continues as a new process (as in Jepsen). */
  process: number;
  node: number;
  input: I;
  output: O | null;
  status: OpStatus;
  /**
   * Position in the run's global event order, as a time in ns (simulated ms × 10^6 plus the event's
   * rank within that ms): real-time order exactly, and readable on the checker's timelines.
   */
  callSeq: number;
  retSeq: number;
  callMs: number;
  retMs: number;
  /** The response header's revision (0 when none). */
  revision: number;
  /** True when an ok op created a revision (a put, a successful cas, a delete that deleted). */
  wrote: boolean;
  /**
   * The invoked replica's revision when the op was called: a lower bound of the cluster's, so a
   * write can only take effect above it.
   */
  floorRevision: number;
  error: string;
}

export type KvOp = SimOp<KvInput, KvOutput>;
export type LeaseOp = SimOp<LeaseInput, LeaseOutput>;

/** Bound on recorded ops per run (a runaway workload fails loudly instead of eating memory). */
export const MAX_HISTORY_OPS = 200_000;

export class History {
  readonly kv: KvOp[] = [];
  readonly lease: LeaseOp[] = [];
  private seqMs = -1;
  private seqInMs = 0;
  private nextId = 1;

  constructor(private readonly nowMs: () => number) {}

  /** The next position in the global order (invocations, completions). */
  tick(): number {
    const ms = this.nowMs();
    assert(ms >= this.seqMs, 'simulated time went backwards');
    if (ms !== this.seqMs) {
      this.seqMs = ms;
      this.seqInMs = 0;
    }
    this.seqInMs++;
    assert(this.seqInMs < 1_000_000, 'a million history events within one simulated ms');
    return ms * 1_000_000 + this.seqInMs;
  }

  invoke<I, O>(list: SimOp<I, O>[], process: number, node: number, input: I, nowMs: number): SimOp<I, O> {
    assert(this.kv.length + this.lease.length < MAX_HISTORY_OPS, () => `more than ${MAX_HISTORY_OPS} ops in one run`);
    const op: SimOp<I, O> = {
      id: this.nextId++,
      process,
      node,
      input,
      output: null,
      status: 'pending',
      callSeq: this.tick(),
      retSeq: Infinity,
      callMs: nowMs,
      retMs: Infinity,
      revision: 0,
      wrote: false,
      floorRevision: 0,
      error: '',
    };
    list.push(op);
    return op;
  }

  complete<I, O>(op: SimOp<I, O>, output: O, nowMs: number, revision: number, wrote: boolean): void {
    assert(op.status === 'pending', () => `op ${op.id} completed twice`);
    op.status = 'ok';
    op.output = output;
    op.retSeq = this.tick();
    op.retMs = nowMs;
    op.revision = revision;
    op.wrote = wrote;
  }

  /** The op certainly had no effect (refused before it was proposed, or applied as an error). */
  fail<I, O>(op: SimOp<I, O>, error: string, nowMs: number): void {
    assert(op.status === 'pending', () => `op ${op.id} completed twice`);
    op.status = 'fail';
    op.error = error;
    op.retSeq = this.tick();
    op.retMs = nowMs;
  }

  /** The op may have taken effect, now or at any later time, or never. */
  unknown<I, O>(op: SimOp<I, O>, error: string): void {
    if (op.status !== 'pending') return;
    op.status = 'unknown';
    op.error = error;
  }

  pendingCount(): number {
    return this.kv.filter((op) => op.status === 'pending').length + this.lease.filter((op) => op.status === 'pending').length;
  }
}

/** What the final history tells about an unknown op: it never took effect, or it did, and was visible by `ret`. */
export type Resolution<O> = { drop: true } | { drop: false; output: O; ret: number };

/**
 * The ops as the linearizability checker takes them: failed ops dropped, unknown ones returning at
 * +∞, unless `resolve` (evidence from the final history) settles them: dropped if they never took
 * effect, or completed with their output when they did. This keeps the search small when crashes
 * leave many writes unknown.
 */
export function toOperations<I, O>(ops: readonly SimOp<I, O>[], resolve: (op: SimOp<I, O>) => Resolution<O> | null = () => null): Operation<I, O>[] {
  const out: Operation<I, O>[] = [];
  for (const op of ops) {
    if (op.status === 'fail') continue;
    const resolution = op.status === 'unknown' ? resolve(op) : null;
    if (resolution !== null && resolution.drop) continue;
    if (resolution !== null) {
      out.push({ id: op.id, process: op.process, input: op.input, output: resolution.output, call: op.callSeq, ret: resolution.ret });
      continue;
    }
    const known = op.status === 'ok';
    out.push({
      id: op.id,
      process: op.process,
      input: op.input,
      output: known ? op.output : null,
      call: op.callSeq,
      ret: known ? op.retSeq : Infinity,
    });
  }
  return out;
}

// ---- models ----

function show(value: string | null): string {
  return value === null ? 'nil' : value;
}

/** etcd keys as registers (read, put, delete, value compare-and-set): the chaos checker's model. */
export const kvModel = registerModel;

/** A lease and the one key attached to it: `live` and the key's value (gone with the lease). */
export interface LeaseState {
  live: boolean;
  value: string | null;
}

const GONE: LeaseState = { live: false, value: null };

function needs(state: LeaseState, output: LeaseOutput | null, next: LeaseState): LeaseState | typeof IMPOSSIBLE {
  if (output === null) return state.live ? next : state;
  if ('notFound' in output) return state.live ? IMPOSSIBLE : state;
  if ('done' in output) return state.live ? next : IMPOSSIBLE;
  return IMPOSSIBLE;
}

export const leaseModel: Model<LeaseState, LeaseInput, LeaseOutput> = {
  name: 'lease',
  init: () => GONE,
  step(state, input, output) {
    switch (input.f) {
      case 'grant':
        // Lease IDs are never reused, so a grant always finds no lease.
        if (output !== null && !('done' in output)) return IMPOSSIBLE;
        return { live: true, value: null };
      case 'keepalive':
        return needs(state, output, state);
      case 'revoke':
        return needs(state, output, GONE);
      case 'put':
        return needs(state, output, { live: true, value: input.value });
      case 'read':
        if (output === null) return state;
        return 'value' in output && output.value === state.value ? state : IMPOSSIBLE;
      case 'expire':
        return GONE;
    }
  },
  hash: (state) => hashString(`${state.live ? 1 : 0}|${state.value ?? ''}`),
  equal: (a, b) => a.live === b.live && a.value === b.value,
  partition: (input) => input.key,
  readOnly: (input, output) =>
    input.f === 'read' || (output !== null && 'notFound' in output) || (input.f === 'keepalive' && output !== null),
  describeOp(input, output) {
    const result = output === null ? '?' : 'value' in output ? show(output.value) : 'notFound' in output ? 'not found' : 'ok';
    switch (input.f) {
      case 'grant':
        return `grant ${input.id} ttl ${input.ttlSeconds}s → ${result}`;
      case 'keepalive':
        return `keepalive → ${result}`;
      case 'revoke':
        return `revoke → ${result}`;
      case 'put':
        return `put ${input.value} with lease → ${result}`;
      case 'read':
        return `read → ${result}`;
      case 'expire':
        return 'expiry (leader revoke)';
    }
  },
  describeState: (state) => (state.live ? `live, key=${show(state.value)}` : 'no lease, key=nil'),
};
