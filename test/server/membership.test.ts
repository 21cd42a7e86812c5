// Membership changes on real processes, through a real etcd client: add a learner, start it
// with --initial-cluster-state existing, see it catch up, promote it, remove a founding member.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { openSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import { probeEndpoint } from '../../src/cli/index.ts';
import { freePort, ProcessCluster } from '../support/cluster.ts';

const cli = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value) return value;
    } catch {
      // not yet
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('membership changes', { timeout: 120_000 }, () => {
  let cluster: ProcessCluster;
  let joiner: ChildProcess | null = null;
  before(async () => {
    cluster = await ProcessCluster.start({ nodes: 3, extraArgs: ['--snapshot-count', '50', '--snapshot-catchup-entries', '5'] });
  });
  after(async () => {
    joiner?.kill('SIGKILL');
    await cluster?.stop({ keepData: process.env.KEEP_TEST_DATA === '1' });
  });

  it('adds a learner that catches up from a snapshot, promotes it, and removes a founding member', async () => {
    const client = new Etcd3({ hosts: cluster.endpoints().map((e) => `http://${e}`) });
    for (let i = 0; i < 120; i++) await client.put(`m/${i}`).value(`v${i}`);

    const peerPort = await freePort();
    const clientPort = await freePort();
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    const added = await client.cluster.memberAdd({ peerURLs: [peerUrl], isLearner: true });
    assert.equal(added.member.isLearner, true);
    const newId = added.member.ID;

    const initialCluster = [
      ...cluster.nodes.map((n) => `${n.name}=http://127.0.0.1:${n.peerPort}`),
      `n4=${peerUrl}`,
    ].join(',');
    const log = openSync(join(cluster.root, 'n4.log'), 'a');
    joiner = spawn(
      process.execPath,
      ['--import', 'tsx', cli, 'start', '--name', 'n4', '--data-dir', join(cluster.root, 'n4'),
        '--listen-client-urls', `http://127.0.0.1:${clientPort}`, '--listen-peer-urls', peerUrl,
        '--initial-cluster', initialCluster, '--initial-cluster-state', 'existing'],
      { stdio: ['ignore', log, log] },
    );
    await probeEndpoint(`127.0.0.1:${clientPort}`, 30_000);
    const learner = new Etcd3({ hosts: [`http://127.0.0.1:${clientPort}`] });
    assert.equal(await until('the learner to catch up', () => learner.get('m/119').serializable(true).string()), 'v119');

    await until('the learner to publish its name', async () => {
      const list = await client.cluster.memberList({});
      if (process.env.DEBUG_MEMBERS) console.log(JSON.stringify(list.members), newId);
      return list.members.find((m) => m.ID === newId && m.name === 'n4');
    });
    await client.cluster.memberPromote({ ID: newId });
    const promoted = await client.cluster.memberList({});
    assert.equal(promoted.members.find((m) => m.ID === newId)?.isLearner, false);

    await learner.put('written/through/n4').value('yes');
    assert.equal(await client.get('written/through/n4').string(), 'yes');

    // Ask another member, as an operator would: the removed one stops as soon as it learns.
    const removed = promoted.members.find((m) => m.name === 'n1')!;
    const others = new Etcd3({ hosts: [cluster.endpoint(1), cluster.endpoint(2)].map((e) => `http://${e}`) });
    await others.cluster.memberRemove({ ID: removed.ID });
    others.close();
    const remaining = await new Etcd3({ hosts: [cluster.endpoint(1)].map((e) => `http://${e}`) }).cluster.memberList({});
    assert.deepEqual(remaining.members.map((m) => m.name).sort(), ['n2', 'n3', 'n4']);
    const survivors = new Etcd3({ hosts: [cluster.endpoint(1), cluster.endpoint(2), `127.0.0.1:${clientPort}`].map((e) => `http://${e}`) });
    await survivors.put('after/remove').value('ok');
    assert.equal(await learner.get('after/remove').string(), 'ok');
    await until('the removed member to stop', async () => cluster.nodes[0].proc?.exitCode !== null);
    survivors.close();
    learner.close();
    client.close();
  });
});
