// etcdserverpb.Lease over real gRPC, leases in the real MvccStore: etcd's answers and errors,
// and the keepalive stream (in order, one renewal at a time, TTL 0 for unknown leases).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Errors, GrpcCode } from '../../src/util/index.ts';
import { callError, DuplexReader } from './client.ts';
import { StoreLeases } from './fakes.ts';
import { b, startApi, str } from './harness.ts';
import type { Api } from './harness.ts';

describe('Lease', { timeout: 60_000 }, () => {
  let api: Api;
  let leases: StoreLeases;
  before(async () => {
    api = await startApi((kv) => {
      leases = new StoreLeases(kv.store);
      return { lease: leases };
    });
  });
  after(async () => {
    await api.stop();
  });

  const rev = () => String(api.backend.store.currentRevision);

  test('LeaseGrant with ID 0 lets the server pick; a chosen ID is kept; TTL below the minimum is raised', async () => {
    const picked = await api.client.call('Lease', 'leaseGrant', { TTL: 60 });
    assert.notEqual(picked.ID, '0');
    assert.equal(picked.TTL, '60');
    assert.equal(picked.header.revision, rev());
    assert.equal(picked.header.memberId, '10276657743932975437');
    const chosen = await api.client.call('Lease', 'leaseGrant', { ID: 12345, TTL: 1 });
    assert.deepEqual([chosen.ID, chosen.TTL], ['12345', '2']);
  });

  test('LeaseGrant errors: existing ID, TTL too large, unsafe ID', async () => {
    await api.client.call('Lease', 'leaseGrant', { ID: 777, TTL: 10 });
    const exists = await callError(api.client.call('Lease', 'leaseGrant', { ID: 777, TTL: 10 }));
    assert.deepEqual(
      [exists.code, exists.details],
      [GrpcCode.FAILED_PRECONDITION, 'etcdserver: lease already exists'],
    );
    const large = await callError(api.client.call('Lease', 'leaseGrant', { ID: 778, TTL: 9_000_000_001 }));
    assert.deepEqual([large.code, large.details], [GrpcCode.OUT_OF_RANGE, 'etcdserver: too large lease TTL']);
    const unsafe = await callError(
      api.client.call('Lease', 'leaseGrant', { ID: '9007199254740993', TTL: 10 }),
    );
    assert.equal(unsafe.code, GrpcCode.INVALID_ARGUMENT);
  });

  test('LeaseRevoke deletes the attached keys; an unknown lease is NOT_FOUND', async () => {
    const grant = await api.client.call('Lease', 'leaseGrant', { TTL: 30 });
    await api.client.call('KV', 'put', { key: b('leased'), value: b('v'), lease: grant.ID });
    const revoked = await api.client.call('Lease', 'leaseRevoke', { ID: grant.ID });
    assert.equal(revoked.header.revision, rev());
    assert.equal(api.backend.value('leased'), null);
    const missing = await callError(api.client.call('Lease', 'leaseRevoke', { ID: grant.ID }));
    assert.deepEqual(
      [missing.code, missing.details],
      [GrpcCode.NOT_FOUND, 'etcdserver: requested lease not found'],
    );
  });

  test('LeaseTimeToLive reports the server countdown and keys; an unknown lease is TTL -1', async () => {
    const grant = await api.client.call('Lease', 'leaseGrant', { TTL: 30 });
    await api.client.call('KV', 'put', { key: b('t/2'), value: b('v'), lease: grant.ID });
    await api.client.call('KV', 'put', { key: b('t/1'), value: b('v'), lease: grant.ID });
    leases.nowMs += 10_500;
    const ttl = await api.client.call('Lease', 'leaseTimeToLive', { ID: grant.ID, keys: true });
    assert.deepEqual([ttl.ID, ttl.TTL, ttl.grantedTTL], [grant.ID, '20', '30']);
    assert.deepEqual(ttl.keys.map(str), ['t/1', 't/2']);
    const without = await api.client.call('Lease', 'leaseTimeToLive', { ID: grant.ID });
    assert.deepEqual(without.keys, []);
    const unknown = await api.client.call('Lease', 'leaseTimeToLive', { ID: 999_999 });
    assert.deepEqual([unknown.ID, unknown.TTL, unknown.grantedTTL, unknown.keys], ['999999', '-1', '0', []]);
    assert.equal(unknown.header.revision, rev());
  });

  test('LeaseLeases lists every lease ID', async () => {
    const list = await api.client.call('Lease', 'leaseLeases', {});
    const ids = api.backend.store.leases().leases.map((l) => String(l.id));
    assert.deepEqual(
      list.leases.map((l: any) => l.ID),
      ids,
    );
    assert.ok(ids.length >= 3);
  });

  test('LeaseKeepAlive answers each renewal in order, TTL 0 for unknown leases, then ends after half-close', async () => {
    const grant = await api.client.call('Lease', 'leaseGrant', { TTL: 40 });
    const stream = new DuplexReader(api.client.service('Lease').leaseKeepAlive());
    leases.nowMs += 30_000;
    stream.write({ ID: grant.ID });
    const renewed = await stream.next();
    assert.deepEqual([renewed.ID, renewed.TTL], [grant.ID, '40']);
    assert.equal(renewed.header.revision, rev());
    const ttl = await api.client.call('Lease', 'leaseTimeToLive', { ID: grant.ID });
    assert.equal(ttl.TTL, '40', 'the renewal restarted the countdown');
    stream.write({ ID: 424242 });
    assert.deepEqual([(await stream.next()).TTL], ['0']);

    leases.maxConcurrentRenewals = 0;
    const count = 600;
    for (let i = 0; i < count; i++) stream.write({ ID: i % 2 === 0 ? grant.ID : 424242 });
    stream.call.end();
    for (let i = 0; i < count; i++) {
      const response = await stream.next();
      assert.equal(response.TTL, i % 2 === 0 ? '40' : '0', `response ${i}`);
    }
    assert.equal(leases.maxConcurrentRenewals, 1);
    await assert.rejects(stream.next(), /stream ended/);
    assert.equal(stream.error, null);
  });

  test("a renewal failure ends the keepalive stream with etcd's status", async () => {
    const grant = await api.client.call('Lease', 'leaseGrant', { TTL: 40 });
    const stream = new DuplexReader(api.client.service('Lease').leaseKeepAlive());
    leases.failNext(Errors.noLeader());
    stream.write({ ID: grant.ID });
    await assert.rejects(
      stream.next(),
      (e: any) => e.code === GrpcCode.UNAVAILABLE && e.details === 'etcdserver: no leader',
    );
    const bad = new DuplexReader(api.client.service('Lease').leaseKeepAlive());
    bad.write({ ID: '-9007199254740993' });
    await assert.rejects(bad.next(), (e: any) => e.code === GrpcCode.INVALID_ARGUMENT);
  });
});
