// The comparison's memory phase (`--memory-keys N`): a fresh cluster of each system is loaded with N
// keys by `tessera bench load` (Txns of 100 sequential puts), left to settle, and each node's VmRSS
// and VmHWM are read; then one node streams a snapshot (`etcdctl snapshot save`) while its RSS is
// sampled, which for Tessera is the same encoding of the whole state its periodic snapshot does.
import { spawn } from 'node:child_process';
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_CONFIG, loadTxnCount, runBench } from '../../src/bench/index.ts';
import type { BenchCluster } from './clusters.ts';
import { memoryMiB } from './procfs.ts';

/** The load: 100 puts per Txn (within etcd's default --max-txn-ops of 128), 256-byte values. */
export const MEMORY_BATCH = 100;
const MEMORY_CLIENTS = 32;
const MEMORY_CONNS = 8;
const RSS_SAMPLE_MS = 25;
const SNAPSHOT_TIMEOUT_MS = 600_000;

export interface SnapshotMemory {
  /** Index of the node that served the snapshot. */
  node: number;
  seconds: number;
  bytes: number;
  rssBeforeMiB: number;
  /** Highest VmRSS sampled while the snapshot streamed. */
  rssPeakMiB: number;
  rssAfterMiB: number;
  /** VmHWM after the snapshot (the process's peak over its whole life, load included). */
  hwmAfterMiB: number;
}

export interface MemoryPhase {
  system: string;
  keys: number;
  batch: number;
  loadSec: number;
  keysPerSec: number;
  errors: number;
  errorKinds: Record<string, number>;
  settleSec: number;
  /** Per node, after the load and the settle. */
  rssMiB: number[];
  /** Per node, VmHWM after the load (peak during it). */
  hwmMiB: number[];
  snapshot: SnapshotMemory | null;
  snapshotError: string | null;
}

const round1 = (x: number) => Math.round(x * 10) / 10;
const rss = (pid: number) => round1(memoryMiB(pid, 'VmRSS') ?? Number.NaN);
const hwm = (pid: number) => round1(memoryMiB(pid, 'VmHWM') ?? Number.NaN);

/** Loads `keys` keys into a fresh cluster, settles, reads every node's memory, then snapshots node 0. */
export async function measureMemory(cluster: BenchCluster, keys: number, settleSec: number, dir: string): Promise<MemoryPhase> {
  const result = await runBench(
    {
      ...DEFAULT_CONFIG,
      workload: 'load',
      endpoints: cluster.endpoints,
      keySpace: keys,
      batch: MEMORY_BATCH,
      total: loadTxnCount({ keySpace: keys, batch: MEMORY_BATCH }),
      warmupSec: 0,
      clients: MEMORY_CLIENTS,
      conns: MEMORY_CONNS,
      valSize: 256,
      timeoutMs: 60_000,
    },
    { progress: false },
  );
  await new Promise((r) => setTimeout(r, settleSec * 1000));
  const phase: MemoryPhase = {
    system: cluster.system,
    keys,
    batch: MEMORY_BATCH,
    loadSec: result.elapsedSec,
    keysPerSec: result.load?.keysPerSec ?? 0,
    errors: result.errors,
    errorKinds: result.errorKinds,
    settleSec,
    rssMiB: cluster.nodePids.map(rss),
    hwmMiB: cluster.nodePids.map(hwm),
    snapshot: null,
    snapshotError: null,
  };
  try {
    phase.snapshot = await snapshotNode(cluster, 0, join(dir, `${cluster.system}-memory.snapshot`));
  } catch (error) {
    phase.snapshotError = (error as Error).message;
  }
  return phase;
}

/** `etcdctl snapshot save` from one node, sampling its VmRSS meanwhile. */
async function snapshotNode(cluster: BenchCluster, node: number, file: string): Promise<SnapshotMemory> {
  const pid = cluster.nodePids[node];
  const rssBeforeMiB = rss(pid);
  let rssPeakMiB = rssBeforeMiB;
  const sampler = setInterval(() => (rssPeakMiB = Math.max(rssPeakMiB, rss(pid))), RSS_SAMPLE_MS);
  const started = Date.now();
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn('etcdctl', ['--endpoints', cluster.endpoints[node], '--command-timeout', '600s', 'snapshot', 'save', file], {
        env: { ...process.env, ETCDCTL_API: '3' },
        stdio: ['ignore', 'ignore', 'pipe'],
        timeout: SNAPSHOT_TIMEOUT_MS,
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.on('error', reject);
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`etcdctl snapshot save exited ${code}: ${stderr.trim().slice(-300)}`))));
    });
  } finally {
    clearInterval(sampler);
  }
  const seconds = (Date.now() - started) / 1000;
  const bytes = statSync(file).size;
  rmSync(file, { force: true });
  await new Promise((r) => setTimeout(r, 1000));
  return { node, seconds, bytes, rssBeforeMiB, rssPeakMiB: Math.max(rssPeakMiB, rss(pid)), rssAfterMiB: rss(pid), hwmAfterMiB: hwm(pid) };
}

export interface MemoryLine {
  label: string;
  unit: string;
  better: 'higher' | 'lower';
  etcd: number | null;
  tessera: number | null;
}

/** The memory phase's rows: RSS after the load (largest node), the load's peak, the snapshot's peak. */
export function memoryLines(phases: MemoryPhase[]): MemoryLine[] {
  if (phases.length === 0) return []; // no memory phase this run (--memory-keys 0): no rows
  const of = (system: string, pick: (phase: MemoryPhase) => number | null) => {
    const phase = phases.find((p) => p.system === system);
    const value = phase === undefined ? null : pick(phase);
    return value === null || !Number.isFinite(value) ? null : value;
  };
  const line = (label: string, unit: string, better: MemoryLine['better'], pick: (phase: MemoryPhase) => number | null): MemoryLine => ({
    label,
    unit,
    better,
    etcd: of('etcd', pick),
    tessera: of('tessera', pick),
  });
  const keys = phases[0]?.keys ?? 0;
  return [
    line(`RSS after ${keys} keys (largest node)`, 'MiB', 'lower', (p) => Math.max(...p.rssMiB)),
    line(`RSS after ${keys} keys (smallest node)`, 'MiB', 'lower', (p) => Math.min(...p.rssMiB)),
    line(`peak RSS while loading ${keys} keys (largest node, VmHWM)`, 'MiB', 'lower', (p) => Math.max(...p.hwmMiB)),
    line(`peak RSS during a snapshot save of ${keys} keys (node 1, sampled)`, 'MiB', 'lower', (p) => p.snapshot?.rssPeakMiB ?? null),
    line(`load throughput (Txns of ${MEMORY_BATCH} puts)`, 'keys/s', 'higher', (p) => p.keysPerSec),
  ];
}
