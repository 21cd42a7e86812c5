// One worker's run state: the phase (warm-up, measuring, stopped), its share of operations, the
// rate limiter, and what it recorded. Every client loop in the worker shares it.
import { performance } from 'node:perf_hooks';
import { assert } from '../util/index.ts';
import { Histogram } from './histogram.ts';
import type { WorkerResult } from './protocol.ts';
import { MAX_ERROR_KINDS } from './protocol.ts';
import { RpcError, statusName } from './rpc.ts';

export type Phase = 'idle' | 'warmup' | 'measure' | 'stopped';

/** Wall-clock milliseconds comparable across threads of one machine. */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Paces a worker's operations to `rate` per second (a token per slot, no bursts beyond 1 ms). */
class RateLimiter {
  private nextSlotMs = 0;
  private readonly intervalMs: number;

  constructor(ratePerSec: number) {
    assert(ratePerSec > 0, 'rate is positive');
    this.intervalMs = 1000 / ratePerSec;
  }

  take(): Promise<void> | null {
    const now = performance.now();
    const slot = Math.max(now, this.nextSlotMs);
    this.nextSlotMs = slot + this.intervalMs;
    const waitMs = slot - now;
    return waitMs < 1 ? null : new Promise((resolve) => setTimeout(resolve, waitMs));
  }
}

/** A fatal condition: the run cannot produce meaningful numbers (e.g. the service is missing). */
export class FatalBenchError extends Error {
  override name = 'FatalBenchError';
}

/** Past this many failures with no success the run stops: the numbers would mean nothing. */
const MAX_ERRORS_WITHOUT_SUCCESS = 200;

export class RunState {
  phase: Phase = 'idle';
  /** performance.now() and wall time when measuring began. */
  measureStartPerf = 0;
  measureStartWall = 0;
  ops = 0;
  errors = 0;
  claimed = 0;
  lastCompletionAt = 0;
  readonly counters: Record<string, number> = {};
  private readonly errorKinds = new Map<string, number>();
  private readonly histograms = new Map<string, Histogram>();
  private readonly limiter: RateLimiter | null;

  constructor(
    /** Measured operations to issue (null: until stopped). */
    readonly total: number | null,
    rate: number | null,
  ) {
    this.limiter = rate === null ? null : new RateLimiter(rate);
  }

  startMeasuring(): void {
    assert(this.phase === 'warmup' || this.phase === 'idle', `measure after ${this.phase}`);
    this.phase = 'measure';
    this.measureStartPerf = performance.now();
    this.measureStartWall = wallMs();
  }

  /**
   * Called before each operation: null means stop; otherwise whether it is measured. A measured
   * operation takes one slot of the worker's total.
   */
  begin(): boolean | null {
    if (this.phase === 'stopped' || this.phase === 'idle') return null;
    if (this.phase === 'warmup') return false;
    if (this.total !== null && this.claimed >= this.total) return null;
    this.claimed++;
    return true;
  }

  /** Waits for the operation's slot when a rate is set (null: go now). */
  pace(): Promise<void> | null {
    return this.limiter === null ? null : this.limiter.take();
  }

  histogram(name: string): Histogram {
    let histogram = this.histograms.get(name);
    if (histogram === undefined) {
      histogram = new Histogram();
      this.histograms.set(name, histogram);
    }
    return histogram;
  }

  /** Records a measured success that started at `startPerf` (performance.now()). */
  succeeded(kind: string | null, startPerf: number, measured: boolean): void {
    if (!measured || this.phase !== 'measure') return;
    const now = performance.now();
    const latencyUs = (now - startPerf) * 1000;
    this.histogram('all').record(latencyUs);
    if (kind !== null) this.histogram(kind).record(latencyUs);
    this.ops++;
    this.lastCompletionAt = performance.timeOrigin + now;
  }

  /** Counts a failure; throws FatalBenchError when the run cannot go on. */
  failed(error: unknown, path: string, measured: boolean): void {
    if (error instanceof RpcError && error.code === 12) {
      throw new FatalBenchError(`the server does not implement ${path} (${statusName(error.code)}: ${error.details})`);
    }
    if (error instanceof FatalBenchError) throw error;
    if (measured && this.phase === 'measure') {
      this.errors++;
      this.lastCompletionAt = wallMs();
    }
    const kind = (error instanceof Error ? error.message : String(error)).slice(0, 160);
    if (this.errorKinds.has(kind) || this.errorKinds.size < MAX_ERROR_KINDS) {
      this.errorKinds.set(kind, (this.errorKinds.get(kind) ?? 0) + 1);
    }
    if (this.ops === 0 && this.errors >= MAX_ERRORS_WITHOUT_SUCCESS) {
      throw new FatalBenchError(`${this.errors} failures and no success; last: ${kind}`);
    }
  }

  count(name: string, by = 1): void {
    this.counters[name] = (this.counters[name] ?? 0) + by;
  }

  result(): WorkerResult {
    const histograms: WorkerResult['histograms'] = {};
    for (const [name, histogram] of this.histograms) histograms[name] = histogram.snapshot();
    return {
      ops: this.ops,
      errors: this.errors,
      errorKinds: Object.fromEntries(this.errorKinds),
      histograms,
      counters: { ...this.counters },
      lastCompletionAt: this.lastCompletionAt,
    };
  }
}
