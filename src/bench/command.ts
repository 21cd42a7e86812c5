// `tessera bench <workload>`: the command-line face of the load generator.
import type { Command } from 'commander';
import { Option } from 'commander';
import { devClientPort, probeEndpoint } from '../cli/index.ts';
import type { BenchConfig, CodecName, TransportName, Workload } from './config.ts';
import { DEFAULT_CONFIG, loadTxnCount, validateConfig, WORKLOADS } from './config.ts';
import type { KeyDistribution } from './keys.ts';
import { formatResult } from './report.ts';
import { BenchError, runBench } from './runner.ts';
import { findTarget } from './rpc.ts';

/** watch runs a few putters at a modest rate by default: every put fans out to every watcher. */
const WATCH_DEFAULT_PUTTERS = 1;
const WATCH_DEFAULT_PUT_RATE = 10;
const PROBE_TIMEOUT_MS = 10_000;

interface BenchFlags {
  endpoints?: string;
  conns?: number;
  clients?: number;
  workers?: number;
  total?: number;
  duration?: number;
  warmup?: number;
  keySize?: number;
  valSize?: number;
  keySpace?: number;
  keyPrefix?: string;
  dist?: KeyDistribution;
  rate?: number;
  consistency?: 'l' | 's';
  readRatio?: number;
  mix?: 'a' | 'b';
  watchers?: number;
  watchStreams?: number;
  leaseTtl?: number;
  batch?: number;
  codec?: CodecName;
  transport?: TransportName;
  timeout?: number;
  wait?: number;
  json?: boolean;
  target?: 'leader' | 'follower';
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new Error(`expected a non-negative number, got "${value}"`);
  return n;
}

function integer(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`expected a non-negative integer, got "${value}"`);
  return n;
}

function defaultEndpoints(): string[] {
  return [0, 1, 2].map((i) => `127.0.0.1:${devClientPort(2379, i)}`);
}

/** Flags to a config: workload-specific defaults first, then the general ones. load writes the key
 *  space once by default: --total is one Txn per batch, with no warm-up (it would write keys twice). */
export function configFromFlags(workload: Workload, flags: BenchFlags): BenchConfig {
  const isWatch = workload === 'watch';
  const isLoad = workload === 'load';
  const keySpace = flags.keySpace ?? DEFAULT_CONFIG.keySpace;
  const batch = flags.batch ?? DEFAULT_CONFIG.batch;
  const readRatio = flags.readRatio ?? (flags.mix === 'b' ? 0.95 : DEFAULT_CONFIG.readRatio);
  return {
    ...DEFAULT_CONFIG,
    workload,
    endpoints: flags.endpoints ? flags.endpoints.split(',').map((e) => e.trim().replace(/^https?:\/\//, '')) : defaultEndpoints(),
    conns: flags.conns ?? DEFAULT_CONFIG.conns,
    clients: flags.clients ?? (isWatch ? WATCH_DEFAULT_PUTTERS : DEFAULT_CONFIG.clients),
    workers: flags.workers ?? DEFAULT_CONFIG.workers,
    total: flags.total ?? (isLoad ? loadTxnCount({ keySpace, batch }) : null),
    durationSec: flags.duration ?? DEFAULT_CONFIG.durationSec,
    warmupSec: flags.warmup ?? (isLoad ? 0 : DEFAULT_CONFIG.warmupSec),
    keySize: flags.keySize ?? DEFAULT_CONFIG.keySize,
    valSize: flags.valSize ?? DEFAULT_CONFIG.valSize,
    keySpace,
    keyPrefix: flags.keyPrefix ?? DEFAULT_CONFIG.keyPrefix,
    distribution: flags.dist ?? (workload === 'mixed' ? 'zipfian' : DEFAULT_CONFIG.distribution),
    rate: flags.rate ?? (isWatch ? WATCH_DEFAULT_PUT_RATE : null),
    consistency: flags.consistency ?? DEFAULT_CONFIG.consistency,
    readRatio,
    watchers: flags.watchers ?? DEFAULT_CONFIG.watchers,
    watchStreams: flags.watchStreams ?? DEFAULT_CONFIG.watchStreams,
    leaseTtlSec: flags.leaseTtl ?? DEFAULT_CONFIG.leaseTtlSec,
    batch,
    codec: flags.codec ?? DEFAULT_CONFIG.codec,
    transport: flags.transport ?? DEFAULT_CONFIG.transport,
    timeoutMs: flags.timeout ?? DEFAULT_CONFIG.timeoutMs,
  };
}

async function benchAction(workload: Workload, flags: BenchFlags): Promise<void> {
  const config = configFromFlags(workload, flags);
  const invalid = validateConfig(config);
  if (invalid !== null) return fail(invalid, 2);
  try {
    await Promise.all(config.endpoints.map((endpoint) => probeEndpoint(endpoint, flags.wait ?? PROBE_TIMEOUT_MS)));
  } catch (error) {
    return fail(`endpoint not serving: ${(error as Error).message}`, 1);
  }
  if (flags.target !== undefined) {
    // One endpoint of the role asked for: a single client's latency depends on whether it leads.
    let endpoint: string | null;
    try {
      endpoint = await findTarget(config.endpoints, flags.target);
    } catch (error) {
      return fail(`could not ask the endpoints who leads: ${(error as Error).message}`, 1);
    }
    if (endpoint === null) return fail(`no ${flags.target} among ${config.endpoints.join(',')}: give every member's endpoint in --endpoints`, 1);
    console.error(`tessera bench: --target ${flags.target}: ${endpoint}`);
    config.endpoints = [endpoint];
  }
  try {
    const result = await runBench(config);
    console.log(flags.json ? JSON.stringify(result, null, 2) : formatResult(result));
  } catch (error) {
    if (error instanceof BenchError) return fail(error.message, 1);
    throw error;
  }
}

function fail(message: string, code: number): void {
  console.error(`tessera bench: ${message}`);
  process.exitCode = code;
}

export function registerBenchCommand(program: Command): void {
  program
    .command('bench')
    .description('Load-test any etcd v3 endpoint (Tessera or etcd): latency percentiles, throughput, client CPU.')
    .addArgument(program.createArgument('<workload>', 'put | get | txn | mixed | watch | lease | load').choices(WORKLOADS))
    .option('--endpoints <list>', 'host:port,... (default: the tessera dev cluster 127.0.0.1:2379,22379,32379)')
    .addOption(new Option('--target <role>', 'run against one endpoint only: the Raft leader, or a follower (found with Maintenance.Status)').choices(['leader', 'follower']))
    .option('--conns <n>', `gRPC connections, round-robin over endpoints (default ${DEFAULT_CONFIG.conns})`, integer)
    .option('--clients <n>', 'concurrent clients, one request in flight each (default 100; watch: putters, default 1)', integer)
    .option('--workers <n>', `worker threads generating load (default ${DEFAULT_CONFIG.workers} on this machine)`, integer)
    .option('--total <n>', 'stop after this many measured operations (default: run for --duration)', integer)
    .option('--duration <s>', `seconds to measure (default ${DEFAULT_CONFIG.durationSec})`, positiveNumber)
    .option('--warmup <s>', `unmeasured seconds first (default ${DEFAULT_CONFIG.warmupSec})`, positiveNumber)
    .option('--key-size <bytes>', `key size (default ${DEFAULT_CONFIG.keySize})`, integer)
    .option('--val-size <bytes>', `value size (default ${DEFAULT_CONFIG.valSize})`, integer)
    .option('--key-space <n>', `distinct keys (default ${DEFAULT_CONFIG.keySpace})`, integer)
    .option('--key-prefix <prefix>', `key prefix; watch watches it (default "${DEFAULT_CONFIG.keyPrefix}")`)
    .addOption(new Option('--dist <d>', 'key choice (default uniform; mixed: zipfian)').choices(['uniform', 'zipfian', 'sequential']))
    .option('--rate <n>', 'total operations per second (default unlimited; watch: puts/s, default 10)', positiveNumber)
    .addOption(new Option('--consistency <c>', 'reads: l linearizable, s serializable (default l)').choices(['l', 's']))
    .addOption(new Option('--mix <ycsb>', 'mixed: YCSB a (50% reads) or b (95% reads)').choices(['a', 'b']))
    .option('--read-ratio <r>', 'mixed: share of reads 0..1 (overrides --mix)', positiveNumber)
    .option('--watchers <n>', `watch: watchers on the prefix (default ${DEFAULT_CONFIG.watchers})`, integer)
    .option('--watch-streams <n>', `watch: gRPC streams carrying them (default ${DEFAULT_CONFIG.watchStreams})`, integer)
    .option('--batch <n>', `load: puts per Txn, at most 128 (default ${DEFAULT_CONFIG.batch}); --total defaults to one Txn per batch of the key space`, integer)
    .option('--lease-ttl <s>', `lease: TTL of the leases kept alive (default ${DEFAULT_CONFIG.leaseTtlSec})`, integer)
    .addOption(new Option('--codec <c>', 'request encoding: raw (hand-rolled, default) or proto (proto-loader)').choices(['raw', 'proto']))
    .addOption(new Option('--transport <t>', 'gRPC client: h2 (lean, over our own HTTP/2; default) or grpc-js').choices(['h2', 'grpc-js']))
    .option('--timeout <ms>', `per-request deadline, 0 for none (default ${DEFAULT_CONFIG.timeoutMs})`, integer)
    .option('--wait <ms>', `how long to wait for every endpoint to serve a read first (default ${PROBE_TIMEOUT_MS})`, integer)
    .option('--json', 'print the result as JSON')
    .action(async (workload: Workload, flags: BenchFlags) => benchAction(workload, flags));
}
