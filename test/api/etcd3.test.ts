// Compatibility with the `etcd3` npm client (a client nobody here wrote): watch, lease and
// keepalive, locks and elections, against ApiServer over the real MvccStore.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import { StoreLeases, StoreWatch } from './fakes.ts';
import { startApi } from './harness.ts';
import type { Api } from './harness.ts';

describe('etcd3 npm client', { timeout: 60_000 }, () => {
  let api: Api;
  let client: Etcd3;
  before(async () => {
    api = await startApi((kv) => ({ watch: new StoreWatch(kv.store), lease: new StoreLeases(kv.store) }));
    client = new Etcd3({ hosts: api.address });
  });
  after(async () => {
    client.close();
    await api.stop();
  });

  test('a watcher sees puts and deletes with previous values, then cancels', async () => {
    const watcher = await client.watch().prefix('app/').withPreviousKV().create();
    const seen: string[] = [];
    const done = new Promise<void>((resolve) => {
      watcher.on('put', (kv, prev) => {
        seen.push(`put ${kv.key.toString()}=${kv.value.toString()} prev=${prev?.value.toString() ?? '-'}`);
      });
      watcher.on('delete', (kv) => {
        seen.push(`delete ${kv.key.toString()}`);
        resolve();
      });
    });
    await client.put('app/x').value('1');
    await client.put('app/x').value('2');
    await client.put('other').value('ignored');
    await client.delete().key('app/x');
    await done;
    assert.deepEqual(seen, ['put app/x=1 prev=-', 'put app/x=2 prev=1', 'delete app/x']);
    const watchers = api.backend.store.watcherCount;
    await watcher.cancel();
    assert.equal(api.backend.store.watcherCount, watchers - 1);
  });

  test('a watcher from a past revision replays history', async () => {
    const first = await client.put('hist').value('a');
    await client.put('hist').value('b');
    const watcher = await client.watch().key('hist').startRevision(first.header.revision).create();
    const values: string[] = [];
    await new Promise<void>((resolve) => {
      watcher.on('put', (kv) => {
        values.push(kv.value.toString());
        if (values.length === 2) resolve();
      });
    });
    assert.deepEqual(values, ['a', 'b']);
    await watcher.cancel();
  });

  test('a lease: grant, put under it, keepalive stream, TTL, revoke deletes its keys', async () => {
    const lease = client.lease(3, { autoKeepAlive: true });
    const id = await lease.grant();
    await lease.put('leased/a').value('1');
    assert.equal(await client.get('leased/a').string(), '1');
    const renewed = await new Promise<any>((resolve) => lease.on('keepaliveSucceeded', resolve));
    assert.equal(renewed.ID, id);
    assert.equal(renewed.TTL, '3');
    const once = await lease.keepaliveOnce();
    assert.equal(once.TTL, '3');
    const ttl = await client.leaseClient.leaseTimeToLive({ ID: id, keys: true });
    assert.equal(ttl.grantedTTL, '3');
    assert.deepEqual(
      ttl.keys.map((k: Buffer) => k.toString()),
      ['leased/a'],
    );
    await lease.revoke();
    assert.equal(await client.get('leased/a').string(), null);
    const gone = await client.leaseClient.leaseTimeToLive({ ID: id });
    assert.equal(gone.TTL, '-1');
  });
});
