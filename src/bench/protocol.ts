// Messages between the benchmark's main thread and its worker threads (structured-clone data only).
import type { BenchConfig } from './config.ts';
import type { HistogramSnapshot } from './histogram.ts';

/** One worker's share of the run. */
export interface WorkerInit {
  config: BenchConfig;
  index: number;
  /** Worker threads in this run (may be fewer than config.workers when clients or conns are few). */
  workers: number;
  /** The endpoint of each connection this worker opens. */
  connEndpoints: string[];
  /** Closed-loop requesters in this worker (watch: putters; may be 0 there). */
  clients: number;
  /** Measured operations this worker issues (null: until told to stop). */
  total: number | null;
  /** Operations per second for this worker (null: unlimited). */
  rate: number | null;
  /** watch: watchers and streams in this worker. */
  watchers: number;
  watchStreams: number;
}

/** start: begin the load (measuring at once when there is no warm-up); measure: warm-up is over. */
export type ToWorker = { type: 'start'; warmup: boolean } | { type: 'measure' } | { type: 'stop' };

export interface WorkerResult {
  /** Successful measured operations (watch: puts). */
  ops: number;
  errors: number;
  /** Failures by "STATUS: message", at most MAX_ERROR_KINDS kinds. */
  errorKinds: Record<string, number>;
  /** Latency histograms by name: all, read, write, event. */
  histograms: Record<string, HistogramSnapshot>;
  /** Workload counters: events (watch), casSucceeded/casFailed (txn). */
  counters: Record<string, number>;
  /** Wall-clock ms (performance.timeOrigin + now) of the last measured completion. */
  lastCompletionAt: number;
}

export type FromWorker =
  | { type: 'ready' }
  | { type: 'progress'; ops: number; errors: number; events: number; claimed: number }
  | { type: 'done'; result: WorkerResult }
  | { type: 'fatal'; message: string };

export const MAX_ERROR_KINDS = 20;
