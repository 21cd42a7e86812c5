// v3lockpb.Lock and v3electionpb.Election over real gRPC, with backends that follow etcd's
// concurrency.Mutex and concurrency.Election on the real MvccStore.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rangeRequest } from '../../src/mvcc/index.ts';
import { GrpcCode } from '../../src/util/index.ts';
import { callError } from './client.ts';
import { StoreElections, StoreLocks } from './concurrency.ts';
import { b, startApi, str } from './harness.ts';
import type { Api } from './harness.ts';

describe('Lock and Election', { timeout: 60_000 }, () => {
  let api: Api;
  let locks: StoreLocks;
  before(async () => {
    api = await startApi((kv) => {
      locks = new StoreLocks(kv.store);
      return { lock: locks, election: new StoreElections(kv.store) };
    });
  });
  after(async () => {
    await api.stop();
  });

  let nextLease = 0x100;
  const lease = () => {
    const id = nextLease++;
    api.backend.store.leaseGrant(id, 60);
    return id;
  };
  const keysUnder = (prefix: string) =>
    api.backend.store.range({ ...rangeAll(prefix) }).kvs.map((kv) => str(kv.key));
  const rangeAll = (prefix: string) =>
    rangeRequest(b(prefix), { rangeEnd: b(prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)) });

  test('Lock returns the owner key; a second locker waits until Unlock', async () => {
    const [first, second] = [lease(), lease()];
    const held = await api.client.call('Lock', 'lock', { name: b('res'), lease: first });
    assert.equal(str(held.key), `res/${first.toString(16)}`);
    assert.equal(held.header.revision, String(api.backend.store.currentRevision));
    assert.equal(held.header.clusterId, '14841639068965178418');
    let acquired = false;
    const waiting = api.client.call('Lock', 'lock', { name: b('res'), lease: second }).then((r) => {
      acquired = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(acquired, false);
    const unlocked = await api.client.call('Lock', 'unlock', { key: held.key });
    assert.equal(unlocked.header.revision, String(api.backend.store.currentRevision));
    const next = await waiting;
    assert.equal(str(next.key), `res/${second.toString(16)}`);
    await api.client.call('Lock', 'unlock', { key: next.key });
    assert.deepEqual(keysUnder('res/'), []);
  });

  test('a waiting Lock whose deadline passes withdraws its waiter key', async () => {
    const [first, second] = [lease(), lease()];
    const held = await api.client.call('Lock', 'lock', { name: b('dl'), lease: first });
    const error = await callError(api.client.call('Lock', 'lock', { name: b('dl'), lease: second }, 200));
    assert.equal(error.code, GrpcCode.DEADLINE_EXCEEDED);
    for (let i = 0; i < 50 && keysUnder('dl/').length > 1; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(keysUnder('dl/'), [str(held.key)]);
  });

  test('Lock errors: unknown lease; Unlock of an absent key succeeds', async () => {
    const missing = await callError(api.client.call('Lock', 'lock', { name: b('x'), lease: 987654 }));
    assert.deepEqual(
      [missing.code, missing.details],
      [GrpcCode.NOT_FOUND, 'etcdserver: requested lease not found'],
    );
    await api.client.call('Lock', 'unlock', { key: b('x/absent') });
  });

  test('Campaign, Leader, Proclaim, Observe, Resign: leadership passes to the waiting candidate', async () => {
    const [first, second] = [lease(), lease()];
    const noLeader = await callError(api.client.call('Election', 'leader', { name: b('el') }));
    assert.deepEqual([noLeader.code, noLeader.details], [GrpcCode.UNKNOWN, 'election: no leader']);

    const won = await api.client.call('Election', 'campaign', { name: b('el'), lease: first, value: b('a') });
    assert.deepEqual(
      [str(won.leader.name), str(won.leader.key), won.leader.lease],
      ['el', `el/${first.toString(16)}`, String(first)],
    );
    assert.equal(won.leader.rev, won.header.revision);

    const observe = api.client.service('Election').observe({ name: b('el') });
    const observed: string[] = [];
    const observedAll = new Promise<void>((resolve, reject) => {
      observe.on('data', (r: any) => {
        observed.push(`${str(r.kv.value)}@${r.header.revision}`);
        if (str(r.kv.value) === 'b') resolve();
      });
      observe.on('error', (e: any) => (e.code === GrpcCode.CANCELLED ? undefined : reject(e)));
    });

    const leader = await api.client.call('Election', 'leader', { name: b('el') });
    assert.equal(str(leader.kv.value), 'a');
    const waiting = api.client.call('Election', 'campaign', { name: b('el'), lease: second, value: b('b') });
    await new Promise((r) => setTimeout(r, 50));
    const proclaimed = await api.client.call('Election', 'proclaim', { leader: won.leader, value: b('a2') });
    assert.equal(str((await api.client.call('Election', 'leader', { name: b('el') })).kv.value), 'a2');
    await new Promise((r) => setTimeout(r, 50));

    const stale = await callError(
      api.client.call('Election', 'proclaim', { leader: { ...won.leader, rev: 1 }, value: b('x') }),
    );
    assert.deepEqual([stale.code, stale.details], [GrpcCode.UNKNOWN, 'election: not leader']);
    const missing = await callError(api.client.call('Election', 'proclaim', { value: b('x') }));
    assert.deepEqual([missing.code, missing.details], [GrpcCode.UNKNOWN, '"leader" field must be provided']);

    await api.client.call('Election', 'resign', { leader: won.leader });
    const next = await waiting;
    assert.equal(str(next.leader.key), `el/${second.toString(16)}`);
    await observedAll;
    observe.cancel();
    assert.deepEqual(
      observed.map((o) => o.split('@')[0]),
      ['a', 'a2', 'b'],
    );
    assert.equal(observed[1].split('@')[1], proclaimed.header.revision);
  });
});
