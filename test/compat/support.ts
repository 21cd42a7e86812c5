// Shared helpers of the compatibility suites: polling, and finding the Raft leader of a real
// ProcessCluster through etcd's Maintenance.Status as any etcd client would.
import { Etcd3 } from 'etcd3';
import type { ProcessCluster } from '../support/cluster.ts';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `probe` until it returns something truthy; errors count as "not yet". */
export async function until<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
}

/**
 * An etcd3 client of `endpoints`. With etcd3's `ConnectionPool.deterministicOrder` set, the first
 * endpoint is tried first (etcd3 walks its host list from the end, hence the reversal).
 */
export function clientFor(endpoints: string[]): Etcd3 {
  return new Etcd3({ hosts: endpoints.map((e) => `http://${e}`).reverse(), dialTimeout: 2_000 });
}

/** `{ id, leader }` as member `endpoint` reports them (decimal strings), or null if it cannot answer. */
async function statusOf(endpoint: string): Promise<{ id: string; leader: string } | null> {
  const client = clientFor([endpoint]);
  try {
    const status = await client.maintenance.status({ deadline: Date.now() + 1_000 });
    return { id: status.header.member_id, leader: status.leader };
  } catch {
    return null;
  } finally {
    client.close();
  }
}

/** Index (in cluster.nodes) of the member every running member in `among` agrees leads. */
export async function leaderIndex(cluster: ProcessCluster, among = cluster.nodes.map((_, i) => i)): Promise<number> {
  return until('an agreed leader', async () => {
    const statuses = await Promise.all(among.map((i) => statusOf(cluster.endpoint(i))));
    if (statuses.some((s) => s === null || s.leader === '0' || s.leader !== statuses[0]!.leader)) return null;
    const at = statuses.findIndex((s) => s!.id === s!.leader);
    return at < 0 ? null : among[at] + 1; // +1: index 0 is falsy
  }).then((i) => i - 1);
}

/** Member IDs (decimal strings) of every node, in cluster.nodes order. */
export async function memberIds(cluster: ProcessCluster): Promise<string[]> {
  const statuses = await Promise.all(cluster.nodes.map((_, i) => statusOf(cluster.endpoint(i))));
  return statuses.map((s, i) => {
    if (s === null) throw new Error(`node ${i} does not answer Status`);
    return s.id;
  });
}
