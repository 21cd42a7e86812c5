// Real processes, real LMDB files, a real etcd client (the `etcd3` npm package): acknowledged
// writes survive a SIGKILLed leader, a restart that catches up from a snapshot, and a whole-cluster crash.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import { ProcessCluster } from '../support/cluster.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function clientFor(endpoints: string[]): Etcd3 {
  return new Etcd3({ hosts: endpoints.map((e) => `http://${e}`), dialTimeout: 2_000 });
}

/** Member id (decimal string) of the leader as `endpoint` sees it, or null if it has none or is down. */
async function leaderSeenBy(endpoint: string): Promise<string | null> {
  const client = clientFor([endpoint]);
  try {
    const status = await client.maintenance.status({ deadline: Date.now() + 1_000 });
    return status.leader === '0' ? null : status.leader;
  } catch {
    return null;
  } finally {
    client.close();
  }
}

async function memberIdOf(endpoint: string): Promise<string> {
  const client = clientFor([endpoint]);
  try {
    return (await client.maintenance.status()).header.member_id;
  } finally {
    client.close();
  }
}

async function leaderIndex(cluster: ProcessCluster, among: number[]): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const leader = await leaderSeenBy(cluster.endpoint(among[0]));
    if (leader) {
      for (const i of among) if ((await memberIdOf(cluster.endpoint(i))) === leader) return i;
    }
    await sleep(100);
  }
  throw new Error('no leader among the running nodes');
}

interface Writer {
  acked: Map<string, string>;
  stop(): Promise<void>;
}

/** `concurrency` loops writing unique keys; remembers every write the cluster acknowledged. */
function startWriters(client: Etcd3, prefix: string, concurrency: number): Writer {
  const acked = new Map<string, string>();
  let running = true;
  const loops = Array.from({ length: concurrency }, async (_, w) => {
    for (let i = 0; running; i++) {
      const key = `${prefix}/${w}/${i}`;
      const value = `v-${w}-${i}`;
      try {
        await client.put(key).value(value);
        acked.set(key, value);
      } catch {
        await sleep(50); // unknown outcome: not counted as acknowledged
      }
    }
  });
  return {
    acked,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

async function checkAcked(client: Etcd3, acked: Map<string, string>, serializable = false): Promise<void> {
  const entries = [...acked];
  for (let i = 0; i < entries.length; i += 50) {
    await Promise.all(
      entries.slice(i, i + 50).map(async ([key, value]) => {
        const got = await client.get(key).serializable(serializable).string();
        assert.equal(got, value, `acknowledged write ${key} lost or wrong`);
      }),
    );
  }
}

/** Waits until `endpoint` has applied at least `revision` (serializable reads are then current enough). */
async function waitForRevision(endpoint: string, revision: number, timeoutMs = 30_000): Promise<void> {
  const client = clientFor([endpoint]);
  const deadline = Date.now() + timeoutMs;
  try {
    while (Date.now() < deadline) {
      try {
        const res = await client.get('tessera/none').serializable(true).exec();
        if (Number(res.header.revision) >= revision) return;
      } catch {
        // not up yet
      }
      await sleep(100);
    }
  } finally {
    client.close();
  }
  throw new Error(`${endpoint} did not reach revision ${revision}`);
}

describe('a durable 3-node cluster', { timeout: 180_000 }, () => {
  let cluster: ProcessCluster;
  before(async () => {
    cluster = await ProcessCluster.start({ nodes: 3, extraArgs: ['--snapshot-count', '300', '--snapshot-catchup-entries', '20'] });
  });
  after(async () => {
    await cluster?.stop();
  });

  it('keeps every acknowledged write when the leader is SIGKILLed mid-load, and the old leader catches up', async () => {
    const all = [0, 1, 2];
    const leader = await leaderIndex(cluster, all);
    const client = clientFor(cluster.endpoints());
    const writers = startWriters(client, 'kill-leader', 8);
    await sleep(1_500);
    const ackedBeforeKill = writers.acked.size;
    await cluster.kill(leader);
    const killedAt = Date.now();
    const survivors = all.filter((i) => i !== leader);
    const newLeader = await leaderIndex(cluster, survivors);
    const electionMs = Date.now() - killedAt;
    await sleep(1_500);
    await writers.stop();
    assert.ok(ackedBeforeKill > 20, `expected load before the kill, got ${ackedBeforeKill} writes`);
    assert.ok(writers.acked.size > ackedBeforeKill, 'the cluster must take writes after the leader died');
    assert.ok(electionMs < 5_000, `new leader took ${electionMs} ms`);
    assert.notEqual(newLeader, leader);
    console.log(`kill-leader: ${writers.acked.size} acknowledged writes, new leader after ${electionMs} ms`);
    const survivorsClient = clientFor(survivors.map((i) => cluster.endpoint(i)));
    await checkAcked(survivorsClient, writers.acked);
    const revision = Number((await survivorsClient.get('x').exec()).header.revision);
    survivorsClient.close();
    client.close();

    await cluster.restart(leader);
    await waitForRevision(cluster.endpoint(leader), revision);
    const restarted = clientFor([cluster.endpoint(leader)]);
    await checkAcked(restarted, writers.acked, true);
    restarted.close();
  });

  it('a follower that missed many writes catches up from a snapshot after compaction', async () => {
    const all = [0, 1, 2];
    const leader = await leaderIndex(cluster, all);
    const follower = all.find((i) => i !== leader)!;
    await cluster.kill(follower);
    const running = all.filter((i) => i !== follower);
    const client = clientFor(running.map((i) => cluster.endpoint(i)));
    const acked = new Map<string, string>();
    for (let batch = 0; batch < 40; batch++) {
      await Promise.all(
        Array.from({ length: 25 }, async (_, j) => {
          const key = `snap/${batch}/${j}`;
          await client.put(key).value(`value-${batch}-${j}`);
          acked.set(key, `value-${batch}-${j}`);
        }),
      );
    }
    const revision = Number((await client.get('x').exec()).header.revision);
    await client.put('snap/compacted').value('yes');
    client.close();

    await cluster.restart(follower);
    await waitForRevision(cluster.endpoint(follower), revision);
    const restarted = clientFor([cluster.endpoint(follower)]);
    await checkAcked(restarted, acked, true);
    restarted.close();
    assert.match(cluster.log(follower), /installed snapshot/, 'the follower should have caught up from a snapshot');
  });

  it('loses nothing acknowledged when every node is SIGKILLed and restarted', async () => {
    const client = clientFor(cluster.endpoints());
    const writers = startWriters(client, 'kill-all', 8);
    await sleep(1_500);
    await Promise.all([0, 1, 2].map((i) => cluster.kill(i)));
    await writers.stop();
    client.close();
    assert.ok(writers.acked.size > 20, `expected load before the crash, got ${writers.acked.size}`);
    console.log(`kill-all: ${writers.acked.size} acknowledged writes before the crash`);
    await Promise.all([0, 1, 2].map((i) => cluster.restart(i)));
    const after = clientFor(cluster.endpoints());
    await checkAcked(after, writers.acked);
    after.close();
  });
});
