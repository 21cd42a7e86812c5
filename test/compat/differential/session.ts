// One differential run from a seed: fresh clusters (a real 3-member etcd and a 3-node Tessera,
// started side by side), the generated sequence in lockstep, both clusters removed afterwards.
import { probeEndpoint } from '../../../src/cli/index.ts';
import { ProcessCluster } from '../../support/cluster.ts';
import { formatMismatch } from './compare.ts';
import { EtcdCluster } from './etcd.ts';
import { generateOps } from './ops.ts';
import { runDifferential } from './run.ts';
import type { RunOptions, RunResult } from './run.ts';

export interface SeedReport extends RunResult {
  seed: number;
  elapsedMs: number;
  /** Members that no longer answer after the run (a crash is a failure whatever the answers were). */
  down: string[];
  /** Printable summary: one line, then every mismatch. */
  text: string;
}

/** Starts attempts: ports are picked free but not held, so another process (or the other cluster) may take one. */
const START_ATTEMPTS = 3;

/** Both clusters, started side by side; a failed start stops whatever did start and tries again. */
async function startClusters(): Promise<[EtcdCluster, ProcessCluster]> {
  for (let attempt = 1; ; attempt++) {
    const [etcd, tessera] = await Promise.allSettled([
      EtcdCluster.start(),
      ProcessCluster.start({ logLevel: 'warn', exitWithParent: true, readyTimeoutMs: 60_000 }),
    ]);
    if (etcd.status === 'fulfilled' && tessera.status === 'fulfilled') return [etcd.value, tessera.value];
    await Promise.all([
      etcd.status === 'fulfilled' ? etcd.value.stop() : null,
      tessera.status === 'fulfilled' ? tessera.value.stop() : null,
    ]);
    if (attempt >= START_ATTEMPTS) throw etcd.status === 'rejected' ? etcd.reason : (tessera as PromiseRejectedResult).reason;
  }
}

export async function runSeed(seed: number, opCount: number, options: RunOptions = {}): Promise<SeedReport> {
  const started = Date.now();
  const ops = generateOps(seed, opCount);
  const [etcd, tessera] = await startClusters();
  try {
    const result = await runDifferential(ops, etcd.endpoints(), tessera.endpoints(), options);
    const down = [
      ...result.streamFailures,
      ...(await unreachable('etcd', etcd.endpoints(), (i) => etcd.log(i))),
      ...(await unreachable('tessera', tessera.endpoints(), (i) => tessera.log(i))),
    ];
    const elapsedMs = Date.now() - started;
    const divergences = [...result.divergences].map(([name, n]) => `${name} x${n}`).join(', ') || 'none';
    const summary =
      `seed ${seed}: ${result.ops} ops, reference revision ${result.referenceRevision}, ` +
      `${result.mismatches.length} mismatches, documented divergences: ${divergences} (${(elapsedMs / 1000).toFixed(1)} s)`;
    const text = [summary, ...down.map((d) => `DOWN after the run: ${d}`), ...result.mismatches.map(formatMismatch)].join('\n');
    return { ...result, seed, elapsedMs, down, text };
  } finally {
    await Promise.all([etcd.stop(), tessera.stop()]);
  }
}

/** The members of a cluster that no longer answer a linearizable read, with the end of their logs. */
async function unreachable(system: string, endpoints: string[], log: (i: number) => string): Promise<string[]> {
  const down: string[] = [];
  for (let i = 0; i < endpoints.length; i++) {
    try {
      await probeEndpoint(endpoints[i], 5_000);
    } catch {
      down.push(`${system} member ${i} (${endpoints[i]}); log ends:\n${log(i).trim().split('\n').slice(-5).join('\n')}`);
    }
  }
  return down;
}
