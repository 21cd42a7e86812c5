// Reproduction of a lost-write bug found by the chaos watch workload (seed 210, kill nemesis):
// a restarted node answers new Puts with the results of log entries its previous incarnation
// proposed, and the new Puts are never applied.
//   npx tsx test/chaos/repro-restart-command-ids.ts     (exit 1 while the bug is there, ~40 s)
// Why: Replica.nextCommandId starts at 1 in every process; applied entries are matched to waiters
// by (origin node, command id). After a restart the node re-applies its log (MVCC lives in memory),
// so the old entries with ids 1, 2, ... resolve the new requests that got the same ids, and the
// queued new commands are dropped once their waiters are gone. The window is the restarted node's
// first loop turns: its peers redial it with up to 2 s of backoff, and ticks start only after the
// API listens, so client requests that arrive first are queued before the log is replayed.
import { ProcessCluster } from '../support/cluster.ts';
import { EtcdClient } from '../../src/chaos/index.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const cluster = await ProcessCluster.start({ nodes: 3, logLevel: 'info' });
let lost = 0;
try {
  const node2 = new EtcdClient(cluster.endpoint(1), 10_000);
  for (let i = 0; i < 300; i++) await node2.put(`old/${i}`, `o${i}`);
  node2.close();
  await cluster.kill(1);
  await sleep(6_000); // long enough for the peers' redial backoff to grow
  cluster.launch(1);
  const acked: { key: string; revision: number }[] = [];
  const deadline = Date.now() + 20_000;
  // A new channel per attempt (no reconnect backoff), so Puts land as soon as the port opens.
  await Promise.all(
    Array.from({ length: 20 }, async (_, w) => {
      for (let i = 0; Date.now() < deadline && acked.length < 200; i++) {
        const client = new EtcdClient(cluster.endpoint(1), 10_000);
        try {
          acked.push({ key: `new/${w}/${i}`, revision: await client.put(`new/${w}/${i}`, 'NEW') });
        } catch {
          await sleep(5);
        } finally {
          client.close();
        }
      }
    }),
  );
  await sleep(2_000);
  const node1 = new EtcdClient(cluster.endpoint(0), 10_000);
  for (const { key, revision } of acked) {
    if ((await node1.range(key)).kvs.length > 0) continue;
    lost++;
    if (lost <= 5) console.log(`LOST: Put ${key} acknowledged by the restarted node with revision ${revision}; the key does not exist`);
  }
  node1.close();
  console.log(`${acked.length} Puts acknowledged by the restarted node, ${lost} of them lost`);
} finally {
  await cluster.stop();
}
process.exit(lost > 0 ? 1 : 0);
