// What one benchmark run is: the workload and its knobs, validated once in the main thread and
// handed to every worker as plain data.
import { availableParallelism } from 'node:os';
import type { KeyDistribution } from './keys.ts';
import { minKeySize } from './keys.ts';

export const WORKLOADS = ['put', 'get', 'txn', 'mixed', 'watch', 'lease', 'load'] as const;
export type Workload = (typeof WORKLOADS)[number];

/** How requests are encoded: hand-rolled protobuf (default, cheapest) or proto-loader/protobufjs. */
export type CodecName = 'raw' | 'proto';
/** The gRPC client: a lean one over node:http2 (default, cheapest) or @grpc/grpc-js. */
export type TransportName = 'h2' | 'grpc-js';

export interface BenchConfig {
  workload: Workload;
  endpoints: string[];
  /** gRPC connections (HTTP/2 sessions), spread round-robin over endpoints and workers. */
  conns: number;
  /** Concurrent requesters (closed loop, one request in flight each); for watch: the putters. */
  clients: number;
  /** Worker threads generating the load. */
  workers: number;
  /** Stop after this many measured operations (null: run for durationSec). */
  total: number | null;
  durationSec: number;
  /** Unmeasured seconds before measuring (JIT warm-up, connection setup). */
  warmupSec: number;
  keySize: number;
  valSize: number;
  keySpace: number;
  keyPrefix: string;
  distribution: KeyDistribution;
  /** Total operations per second over all workers (null: as fast as the clients go). */
  rate: number | null;
  /** get/mixed reads: linearizable ('l') or serializable ('s'). */
  consistency: 'l' | 's';
  /** mixed: share of reads, 0..1 (YCSB A = 0.5, B = 0.95). */
  readRatio: number;
  /** watch: total watchers on the prefix, and the gRPC streams carrying them. */
  watchers: number;
  watchStreams: number;
  /** lease: seconds of TTL for the leases kept alive. */
  leaseTtlSec: number;
  /** load: puts per Txn. */
  batch: number;
  codec: CodecName;
  transport: TransportName;
  /** Per-request deadline in ms; 0: none. */
  timeoutMs: number;
}

/** Bounds: a typo must not open a million sockets or threads. */
export const LIMITS = {
  maxConns: 1_000,
  maxClients: 100_000,
  maxWorkers: 64,
  maxWatchers: 1_000_000,
  maxWatchStreams: 10_000,
  maxValSize: 1_572_864,
  maxKeySize: 4_096,
  /** load: puts per Txn; etcd's --max-txn-ops defaults to 128 (Tessera's too). */
  maxBatch: 128,
  /** load: bytes of one Txn request; etcd's --max-request-bytes defaults to 1.5 MiB (Tessera's too). */
  maxRequestBytes: 1_572_864,
} as const;

/** Protobuf bytes of one put inside a load Txn beyond its key and value (tags and lengths, generous). */
const LOAD_PUT_OVERHEAD_BYTES = 16;

/** Bytes of one load Txn request (an upper bound). */
export function loadRequestBytes(config: Pick<BenchConfig, 'batch' | 'keySize' | 'valSize'>): number {
  return config.batch * (config.keySize + config.valSize + LOAD_PUT_OVERHEAD_BYTES);
}

/** load: how many Txns write the key space once. */
export function loadTxnCount(config: Pick<BenchConfig, 'batch' | 'keySpace'>): number {
  return Math.ceil(config.keySpace / config.batch);
}

export function defaultWorkers(): number {
  // Leave a core to the servers on a small machine: one worker per spare core, at least one.
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}

export const DEFAULT_CONFIG: Omit<BenchConfig, 'workload'> = {
  endpoints: ['127.0.0.1:2379'],
  conns: 10,
  clients: 100,
  workers: defaultWorkers(),
  total: null,
  durationSec: 10,
  warmupSec: 1,
  keySize: 16,
  valSize: 256,
  keySpace: 10_000,
  keyPrefix: 'bench/',
  distribution: 'uniform',
  rate: null,
  consistency: 'l',
  readRatio: 0.5,
  watchers: 1_000,
  watchStreams: 10,
  leaseTtlSec: 60,
  batch: 100,
  codec: 'raw',
  transport: 'h2',
  timeoutMs: 10_000,
};

/** Returns a message for the first invalid setting, or null. */
export function validateConfig(config: BenchConfig): string | null {
  const checks: [boolean, string][] = [
    [config.endpoints.length > 0, 'at least one endpoint'],
    [config.conns >= 1 && config.conns <= LIMITS.maxConns, `--conns between 1 and ${LIMITS.maxConns}`],
    [config.clients >= 1 && config.clients <= LIMITS.maxClients, `--clients between 1 and ${LIMITS.maxClients}`],
    [config.workers >= 1 && config.workers <= LIMITS.maxWorkers, `--workers between 1 and ${LIMITS.maxWorkers}`],
    [config.total === null || config.total >= 1, '--total at least 1'],
    [config.durationSec > 0, '--duration above 0'],
    [config.warmupSec >= 0, '--warmup at least 0'],
    [config.valSize >= 8 && config.valSize <= LIMITS.maxValSize, `--val-size between 8 and ${LIMITS.maxValSize}`],
    [config.keySize <= LIMITS.maxKeySize, `--key-size at most ${LIMITS.maxKeySize}`],
    [
      config.keySize >= minKeySize(config.keyPrefix, config.keySpace),
      `--key-size at least ${minKeySize(config.keyPrefix, config.keySpace)} for ${config.keySpace} keys after "${config.keyPrefix}"`,
    ],
    [config.keySpace >= 1, '--key-space at least 1'],
    [config.rate === null || config.rate > 0, '--rate above 0'],
    [config.readRatio >= 0 && config.readRatio <= 1, '--read-ratio between 0 and 1'],
    [config.watchers >= 1 && config.watchers <= LIMITS.maxWatchers, `--watchers between 1 and ${LIMITS.maxWatchers}`],
    [
      config.watchStreams >= 1 && config.watchStreams <= Math.min(LIMITS.maxWatchStreams, config.watchers),
      '--watch-streams between 1 and the number of watchers',
    ],
    [config.leaseTtlSec >= 1, '--lease-ttl at least 1'],
    [config.batch >= 1 && config.batch <= LIMITS.maxBatch, `--batch between 1 and ${LIMITS.maxBatch} (etcd's default --max-txn-ops)`],
    [
      config.workload !== 'load' || loadRequestBytes(config) <= LIMITS.maxRequestBytes,
      `--batch x (--key-size + --val-size) within ${LIMITS.maxRequestBytes} bytes per Txn (etcd's default --max-request-bytes)`,
    ],
    [config.timeoutMs >= 0, '--timeout at least 0 ms (0: no deadline)'],
  ];
  for (const [ok, message] of checks) if (!ok) return `expected ${message}`;
  return null;
}
