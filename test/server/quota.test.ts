// --quota-backend-bytes on a real node: past the quota the member raises NOSPACE; then writes get
// etcd's "database space exceeded" while reads and deletes go on, and disarming lifts it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import { ProcessCluster } from '../support/cluster.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('space quota', { timeout: 120_000 }, () => {
  let cluster: ProcessCluster;
  before(async () => {
    cluster = await ProcessCluster.start({ nodes: 1, extraArgs: ['--quota-backend-bytes', '300000'] });
  });
  after(async () => {
    await cluster?.stop();
  });

  it('raises NOSPACE past the quota, refuses puts but serves reads and deletes', async () => {
    const client = new Etcd3({ hosts: [`http://${cluster.endpoint(0)}`] });
    const value = 'x'.repeat(16 * 1024);
    let refused: Error | null = null;
    for (let i = 0; i < 400 && !refused; i++) {
      try {
        await client.put(`big/${i}`).value(value);
      } catch (error) {
        refused = error as Error;
      }
      if (i % 20 === 19) await sleep(150); // let the tick-driven quota check run
    }
    assert.ok(refused, 'writes past the quota must be refused');
    assert.match(refused.message, /database space exceeded/);
    client.close();
    // A fresh client: etcd3's circuit breaker opened on the refused writes.
    const reader = new Etcd3({ hosts: [`http://${cluster.endpoint(0)}`] });
    const alarms = await reader.maintenance.alarm({ action: 'GET', memberID: '0', alarm: 'NONE' } as never);
    assert.ok(alarms.alarms.some((a: { alarm: string | number }) => String(a.alarm).toUpperCase() === 'NOSPACE' || a.alarm === 1), JSON.stringify(alarms));
    assert.equal(await reader.get('big/0').string(), value, 'reads still work');
    await reader.delete().key('big/0');
    assert.equal(await reader.get('big/0').string(), null, 'deletes still work');
    reader.close();
  });
});
