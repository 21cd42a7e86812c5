// The benchmark client (`tessera bench`): a load generator for any etcd v3 endpoint. Others use:
// the command registration, the programmatic runner (bench/compare.ts), and the result types.
export { registerBenchCommand, configFromFlags } from './command.ts';
export { runBench, planWorkers, BenchError } from './runner.ts';
export type { BenchResult, BenchHooks } from './runner.ts';
export { DEFAULT_CONFIG, WORKLOADS, loadTxnCount, validateConfig } from './config.ts';
export type { BenchConfig, CodecName, Workload } from './config.ts';
export { Histogram } from './histogram.ts';
export type { HistogramSnapshot, LatencySummary } from './histogram.ts';
export { formatResult } from './report.ts';
export { findTarget } from './rpc.ts';
