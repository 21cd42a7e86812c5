// A linearizability checker: Wing & Gong's search with Lowe's improvements, as Porcupine does it.
// The history is cut into independent partitions (P-compositionality: one per key for registers),
// each searched depth-first over a dancing-links list of call/return entries, with a cache of
// (linearized set, model state) pairs already explored. Ops whose outcome is unknown (a timeout)
// return at +Infinity: they may take effect at any time after their call, or never.
import { performance } from 'node:perf_hooks';
import { assert } from '../../util/index.ts';

/** One completed (or abandoned) client operation, as the checker sees it. Times in ns. */
export interface Operation<I, O> {
  /** Unique within the history (the recorder's op id). */
  id: number;
  /** The client (Jepsen's process) that ran it: for reports only. */
  process: number;
  input: I;
  /** null: the outcome is unknown (timed out, connection lost); the op may or may not have happened. */
  output: O | null;
  call: number;
  /** Infinity when the outcome is unknown. */
  ret: number;
}

/** What `Model.step` answers for an output the state cannot produce (states themselves may be null). */
export const IMPOSSIBLE: unique symbol = Symbol('impossible');

/** A sequential specification. `step` must be pure; states are compared with `equal`. */
export interface Model<S, I, O> {
  readonly name: string;
  init(): S;
  /**
   * The state after applying `input` that produced `output` in `state`, or IMPOSSIBLE when that
   * output cannot happen there. An unknown output (null) must be accepted: the op's effect, if any, is applied.
   */
  step(state: S, input: I, output: O | null): S | typeof IMPOSSIBLE;
  hash(state: S): number;
  equal(a: S, b: S): boolean;
  /** Ops on different partitions never interact (e.g. the key of a register op). */
  partition(input: I): string;
  /** True when the op cannot change the state (a read, a compare that failed): it may be dropped. */
  readOnly(input: I, output: O | null): boolean;
  describeOp(input: I, output: O | null): string;
  describeState(state: S): string;
}

export type Verdict = 'ok' | 'illegal' | 'unknown';

export interface PartitionResult<I, O> {
  key: string;
  verdict: Verdict;
  /** The partition's ops, sorted by call time. */
  ops: Operation<I, O>[];
  /** Positions (into `ops`) of the longest linearizable prefix found, in linearization order. */
  longest: number[];
  /**
   * When illegal: the latest call/return time the search ever reached. Every op called after it is
   * irrelevant to the failure (the search never considered it), so cutting there keeps it illegal.
   */
  frontierTime: number;
  /** Search steps taken, and why an `unknown` verdict was given. */
  steps: number;
  reason?: string;
  elapsedMs: number;
}

export interface CheckResult<I, O> {
  verdict: Verdict;
  partitions: PartitionResult<I, O>[];
  /** Ops removed before the search: unknown reads (they constrain nothing). */
  dropped: number;
  elapsedMs: number;
}

export interface CheckOptions {
  /** Time budget for the whole check; past it the remaining partitions are `unknown`. Default 60 s. */
  timeoutMs?: number;
  /** Bound on memoized (linearized set, state) pairs per partition; past it, `unknown`. Default 4M. */
  maxCacheEntries?: number;
}

const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_MAX_CACHE_ENTRIES = 4_000_000;
/** How often (in search steps) the clock is read. */
const CLOCK_EVERY_STEPS = 4_096;

/** Checks `history` against `model`, partition by partition. */
export function checkLinearizable<S, I, O>(
  model: Model<S, I, O>,
  history: readonly Operation<I, O>[],
  options: CheckOptions = {},
): CheckResult<I, O> {
  const started = performance.now();
  const deadline = started + (options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const maxCache = options.maxCacheEntries ?? DEFAULT_MAX_CACHE_ENTRIES;
  const partitions = new Map<string, Operation<I, O>[]>();
  let dropped = 0;
  for (const op of history) {
    assert(op.call <= op.ret, () => `op ${op.id} returns before it is called`);
    assert((op.output === null) === (op.ret === Infinity), () => `op ${op.id}: unknown outcome iff ret = Infinity`);
    if (op.output === null && model.readOnly(op.input, null)) {
      dropped++;
      continue;
    }
    const key = model.partition(op.input);
    let ops = partitions.get(key);
    if (ops === undefined) partitions.set(key, (ops = []));
    ops.push(op);
  }
  const results: PartitionResult<I, O>[] = [];
  for (const [key, ops] of [...partitions].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    results.push(checkPartition(model, key, ops, deadline, maxCache));
  }
  const verdict: Verdict = results.some((r) => r.verdict === 'illegal')
    ? 'illegal'
    : results.some((r) => r.verdict === 'unknown')
      ? 'unknown'
      : 'ok';
  return { verdict, partitions: results, dropped, elapsedMs: performance.now() - started };
}

/** Searches one partition. Exposed for the report's shrinking, which re-checks sub-histories. */
export function checkPartition<S, I, O>(
  model: Model<S, I, O>,
  key: string,
  unsorted: readonly Operation<I, O>[],
  deadline: number,
  maxCache = DEFAULT_MAX_CACHE_ENTRIES,
): PartitionResult<I, O> {
  const started = performance.now();
  const ops = [...unsorted].sort((a, b) => a.call - b.call || a.id - b.id);
  const search = new Search(model, ops, deadline, maxCache);
  const verdict = search.run();
  return {
    key,
    verdict,
    ops,
    longest: search.longest(),
    frontierTime: search.frontierTime(),
    steps: search.steps,
    reason: search.reason,
    elapsedMs: performance.now() - started,
  };
}

/** The Wing–Gong–Lowe search over one partition's ops. */
class Search<S, I, O> {
  private readonly n: number;
  private readonly head: number;
  /** Entries 0..2n-1 in time order; entryOp = op position; isCall; match = the return of a call. */
  private readonly entryOp: Int32Array;
  private readonly isCall: Uint8Array;
  private readonly match: Int32Array;
  private readonly entryTime: Float64Array;
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  /** Zobrist keys: the linearized set's hash is the XOR of its members' keys. */
  private readonly zobrist: Uint32Array;
  private readonly bits: Uint32Array;
  private readonly cache = new Map<number, { bits: Uint32Array; state: S }[]>();
  private cacheSize = 0;
  private readonly stackEntry: number[] = [];
  private readonly stackState: S[] = [];
  private best: number[] = [];
  private divergeAt = 0;
  private furthestEntry = -1;
  steps = 0;
  reason: string | undefined;

  constructor(
    private readonly model: Model<S, I, O>,
    private readonly ops: readonly Operation<I, O>[],
    private readonly deadline: number,
    private readonly maxCache: number,
  ) {
    const n = ops.length;
    this.n = n;
    this.head = 2 * n;
    const order = Array.from({ length: 2 * n }, (_, e) => e);
    const time = (e: number) => (e < n ? ops[e].call : ops[e - n].ret);
    // Calls sort before returns at the same instant: touching ops count as concurrent.
    order.sort((a, b) => time(a) - time(b) || (a < n ? 0 : 1) - (b < n ? 0 : 1) || (a % n) - (b % n));
    this.entryOp = new Int32Array(2 * n);
    this.isCall = new Uint8Array(2 * n);
    this.match = new Int32Array(2 * n).fill(-1);
    this.entryTime = new Float64Array(2 * n);
    const callEntry = new Int32Array(n);
    const returnEntry = new Int32Array(n);
    order.forEach((raw, position) => {
      const op = raw % n;
      this.entryOp[position] = op;
      this.isCall[position] = raw < n ? 1 : 0;
      this.entryTime[position] = time(raw);
      if (raw < n) callEntry[op] = position;
      else returnEntry[op] = position;
    });
    for (let op = 0; op < n; op++) {
      assert(callEntry[op] < returnEntry[op], () => `op ${ops[op].id}: call entry after its return`);
      this.match[callEntry[op]] = returnEntry[op];
    }
    this.next = new Int32Array(2 * n + 1);
    this.prev = new Int32Array(2 * n + 1);
    for (let e = 0; e < 2 * n; e++) {
      this.next[e] = e + 1 < 2 * n ? e + 1 : -1;
      this.prev[e] = e === 0 ? this.head : e - 1;
    }
    this.next[this.head] = n > 0 ? 0 : -1;
    this.prev[this.head] = -1;
    this.zobrist = new Uint32Array(n);
    let seed = 0x9e3779b9;
    for (let op = 0; op < n; op++) {
      seed = (Math.imul(seed ^ (seed >>> 16), 0x85ebca6b) + 0x6d2b79f5 + op) >>> 0;
      this.zobrist[op] = (seed ^ (seed >>> 13)) >>> 0;
    }
    this.bits = new Uint32Array(Math.ceil(n / 32) || 1);
  }

  run(): Verdict {
    const { model, ops, next, isCall, entryOp } = this;
    let state = model.init();
    let setHash = 0;
    let entry = next[this.head];
    while (next[this.head] !== -1) {
      if (++this.steps % CLOCK_EVERY_STEPS === 0 && performance.now() > this.deadline) {
        this.reason = `time budget exhausted after ${this.steps} steps`;
        return 'unknown';
      }
      if (isCall[entry] === 1) {
        const op = entryOp[entry];
        const after = model.step(state, ops[op].input, ops[op].output);
        if (after !== IMPOSSIBLE) {
          const hash = setHash ^ this.zobrist[op];
          this.setBit(op);
          if (this.remember(hash, after)) {
            if (this.cacheSize > this.maxCache) {
              this.reason = `more than ${this.maxCache} cached configurations`;
              return 'unknown';
            }
            this.push(entry, state);
            state = after;
            setHash = hash;
            this.lift(entry);
            entry = next[this.head];
            continue;
          }
          this.clearBit(op);
        }
        entry = next[entry];
        continue;
      }
      // A return entry: its op was not linearized before its response, so undo the last choice.
      if (entry > this.furthestEntry) this.furthestEntry = entry;
      if (this.stackEntry.length === 0) return 'illegal';
      const undone = this.stackEntry.pop()!;
      state = this.stackState.pop()!;
      if (this.stackEntry.length < this.divergeAt) this.divergeAt = this.stackEntry.length;
      const op = entryOp[undone];
      setHash ^= this.zobrist[op];
      this.clearBit(op);
      this.unlift(undone);
      entry = next[undone];
    }
    return 'ok';
  }

  /** Op positions of the deepest linearization reached, in order. */
  longest(): number[] {
    return this.best.map((entry) => this.entryOp[entry]);
  }

  frontierTime(): number {
    return this.furthestEntry < 0 ? Infinity : this.entryTime[this.furthestEntry];
  }

  private push(entry: number, state: S): void {
    this.stackEntry.push(entry);
    this.stackState.push(state);
    const depth = this.stackEntry.length;
    if (depth > this.best.length) {
      // Copy only what changed since the last record: amortized O(1) per push.
      this.best.length = this.divergeAt;
      for (let i = this.divergeAt; i < depth; i++) this.best.push(this.stackEntry[i]);
      this.divergeAt = depth;
    }
  }

  /** Adds (linearized set, state) to the cache; false when it was already there. */
  private remember(setHash: number, state: S): boolean {
    const key = (setHash ^ Math.imul(this.model.hash(state) | 0, 0x9e3779b1)) >>> 0;
    let bucket = this.cache.get(key);
    if (bucket === undefined) this.cache.set(key, (bucket = []));
    for (const seen of bucket) {
      if (sameBits(seen.bits, this.bits) && this.model.equal(seen.state, state)) return false;
    }
    bucket.push({ bits: this.bits.slice(), state });
    this.cacheSize++;
    return true;
  }

  private setBit(op: number): void {
    this.bits[op >>> 5] |= 1 << (op & 31);
  }

  private clearBit(op: number): void {
    this.bits[op >>> 5] &= ~(1 << (op & 31));
  }

  /** Removes a call entry and its return entry from the list (dancing links). */
  private lift(call: number): void {
    const { next, prev } = this;
    const ret = this.match[call];
    assert(ret >= 0, 'lift of a non-call entry');
    next[prev[call]] = next[call];
    if (next[call] !== -1) prev[next[call]] = prev[call];
    next[prev[ret]] = next[ret];
    if (next[ret] !== -1) prev[next[ret]] = prev[ret];
  }

  /** Undoes lift(call); lifts are undone in reverse order. */
  private unlift(call: number): void {
    const { next, prev } = this;
    const ret = this.match[call];
    next[prev[ret]] = ret;
    if (next[ret] !== -1) prev[next[ret]] = ret;
    next[prev[call]] = call;
    if (next[call] !== -1) prev[next[call]] = call;
  }
}

function sameBits(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** FNV-1a over a string, for model hashes. */
export function hashString(text: string, seed = 0x811c9dc5): number {
  let hash = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
