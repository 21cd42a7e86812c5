// One differential run from a seed: fresh clusters (a real 3-member etcd and a 3-node Tessera,
// started side by side), the generated sequence in lockstep, both clusters removed afterwards.
import { ProcessCluster } from '../../support/cluster.ts';
import { formatMismatch } from './compare.ts';
import { EtcdCluster } from './etcd.ts';
import { generateOps } from './ops.ts';
import { runDifferential } from './run.ts';
import type { RunOptions, RunResult } from './run.ts';

export interface SeedReport extends RunResult {
  seed: number;
  elapsedMs: number;
  /** Printable summary: one line, then every mismatch. */
  text: string;
}

export async function runSeed(seed: number, opCount: number, options: RunOptions = {}): Promise<SeedReport> {
  const started = Date.now();
  const ops = generateOps(seed, opCount);
  const [etcd, tessera] = await Promise.allSettled([
    EtcdCluster.start(),
    ProcessCluster.start({ logLevel: 'warn', exitWithParent: true }),
  ]);
  try {
    if (etcd.status === 'rejected') throw etcd.reason;
    if (tessera.status === 'rejected') throw tessera.reason;
    const result = await runDifferential(ops, etcd.value.endpoints(), tessera.value.endpoints(), options);
    const elapsedMs = Date.now() - started;
    const divergences = [...result.divergences].map(([name, n]) => `${name} x${n}`).join(', ') || 'none';
    const summary =
      `seed ${seed}: ${result.ops} ops, reference revision ${result.referenceRevision}, ` +
      `${result.mismatches.length} mismatches, documented divergences: ${divergences} (${(elapsedMs / 1000).toFixed(1)} s)`;
    const text = [summary, ...result.mismatches.map(formatMismatch)].join('\n');
    return { ...result, seed, elapsedMs, text };
  } finally {
    await Promise.all([
      etcd.status === 'fulfilled' ? etcd.value.stop() : null,
      tessera.status === 'fulfilled' ? tessera.value.stop() : null,
    ]);
  }
}
