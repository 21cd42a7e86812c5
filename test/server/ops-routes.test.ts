// etcd's operational paths on the client port (beside the JSON gateway), as etcd serves them:
// /metrics for Prometheus, /health, /version; the gateway keeps answering /v3/*.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ProcessCluster } from '../support/cluster.ts';

describe('client port: /metrics, /health, /version', { timeout: 90_000 }, () => {
  let cluster: ProcessCluster;
  before(async () => {
    cluster = await ProcessCluster.start({ nodes: 1 });
    await cluster.waitReady();
  });
  after(async () => cluster?.stop());

  it('serves them and the gateway on the same port', async () => {
    const base = `http://${cluster.endpoint(0)}`;
    const metrics = await fetch(`${base}/metrics`);
    assert.equal(metrics.status, 200);
    const text = await metrics.text();
    assert.match(text, /^etcd_server_has_leader 1$/m);
    assert.match(text, /^etcd_network_peer_sent_bytes_total \d+$/m);
    const health = await fetch(`${base}/health`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { health: 'true', reason: '' });
    const version = (await (await fetch(`${base}/version`)).json()) as Record<string, string>;
    assert.equal(version.etcdserver, '3.4.0');
    assert.equal(version.etcdcluster, '3.4.0');
    const put = await fetch(`${base}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key: 'Zm9v', value: 'YmFy' }) });
    assert.equal(put.status, 200);
    const range = (await (await fetch(`${base}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: 'Zm9v' }) })).json()) as { kvs: { value: string }[] };
    assert.equal(range.kvs[0].value, 'YmFy');
    assert.equal((await fetch(`${base}/nope`)).status, 404);
    // The put went through the write-ahead log; LMDB took it within its flush interval (100 ms).
    let after = '';
    for (let i = 0; i < 50 && !/^etcd_disk_backend_commit_duration_seconds_count [1-9]/m.test(after); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      after = await (await fetch(`${base}/metrics`)).text();
    }
    assert.match(after, /^etcd_disk_wal_fsync_duration_seconds_count [1-9]\d*$/m);
    assert.match(after, /^etcd_disk_backend_commit_duration_seconds_count [1-9]\d*$/m);
    assert.match(after, /^tessera_wal_bytes \d+$/m);
    assert.match(after, /^tessera_storage_commits_ahead_of_lmdb \d+$/m);
  });
});
