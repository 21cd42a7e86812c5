// Leases on a real 3-node cluster: keepalives renew on the leader in memory (no log entry), a
// follower forwards them to the leader over the peer transport, TimeToLive on a follower reports the
// leader's clock, and a lease nobody keeps alive still expires.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import { ProcessCluster } from '../support/cluster.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TTL = 4;

function clientFor(endpoint: string): Etcd3 {
  return new Etcd3({ hosts: `http://${endpoint}`, dialTimeout: 2_000 });
}

describe('lease keepalives renew on the leader', { timeout: 120_000 }, () => {
  let cluster: ProcessCluster;
  const clients: Etcd3[] = [];
  let leader = -1;
  let followers: number[] = [];

  before(async () => {
    cluster = await ProcessCluster.start({ nodes: 3 });
    await cluster.waitReady();
    for (let i = 0; i < 3; i++) clients.push(clientFor(cluster.endpoint(i)));
    for (let attempt = 0; attempt < 100 && leader < 0; attempt++) {
      for (let i = 0; i < 3; i++) {
        const status = await clients[i].maintenance.status();
        if (status.leader === status.header.member_id) leader = i;
      }
      if (leader < 0) await sleep(100);
    }
    assert.ok(leader >= 0, 'a leader');
    followers = [0, 1, 2].filter((i) => i !== leader);
  });

  after(async () => {
    for (const client of clients) client.close();
    await cluster?.stop();
  });

  async function raftIndex(i: number): Promise<number> {
    return Number((await clients[i].maintenance.status()).raftIndex);
  }

  async function keepAliveOnce(i: number, id: string): Promise<number> {
    const stream = await clients[i].leaseClient.leaseKeepAlive();
    try {
      const answer = new Promise<number>((resolve, reject) => {
        stream.on('data', (res: { TTL: string }) => resolve(Number(res.TTL)));
        stream.on('error', reject);
      });
      stream.write({ ID: id });
      return await answer;
    } finally {
      stream.end();
    }
  }

  it('keeps a lease alive through a follower and the leader without writing the log', async () => {
    const { ID: id } = await clients[followers[0]].leaseClient.leaseGrant({ TTL, ID: 0 });
    await clients[followers[0]].put('leased').value('v').lease(id).exec();
    const indexBefore = await raftIndex(leader);
    let keepalives = 0;
    for (let round = 0; round < 8; round++) {
      const via = round % 2 === 0 ? followers[0] : leader;
      assert.equal(await keepAliveOnce(via, id), TTL, `keepalive ${round} through node ${via}`);
      keepalives++;
      await sleep(1_000);
    }
    // 8 s after the grant, twice the TTL: alive only because the keepalives renewed it.
    const ttl = await clients[followers[1]].leaseClient.leaseTimeToLive({ ID: id, keys: true });
    assert.ok(Number(ttl.TTL) >= TTL - 2, `the other follower reports the leader's clock, TTL ${ttl.TTL}`);
    assert.equal(ttl.keys.length, 1);
    assert.equal(await clients[followers[1]].get('leased').string(), 'v');
    const written = (await raftIndex(leader)) - indexBefore;
    assert.ok(written < keepalives / 2, `${keepalives} keepalives wrote ${written} log entries`);
  });

  it('a lease nobody keeps alive expires, and a keepalive then answers TTL 0', async () => {
    const { ID: id } = await clients[leader].leaseClient.leaseGrant({ TTL: 2, ID: 0 });
    await clients[leader].put('short').value('v').lease(id).exec();
    assert.equal(await keepAliveOnce(followers[1], id), 2);
    await sleep(5_000);
    assert.equal(await clients[followers[0]].get('short').string(), null, 'the key went with the lease');
    assert.equal(await keepAliveOnce(followers[0], id), 0);
    assert.equal(await keepAliveOnce(leader, id), 0);
    const ttl = await clients[followers[1]].leaseClient.leaseTimeToLive({ ID: id, keys: false });
    assert.equal(Number(ttl.TTL), -1, 'etcd reports an expired lease with TTL -1');
  });
});
