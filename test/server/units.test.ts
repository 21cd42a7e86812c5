// Unit tests for the server's small pure parts: configuration, member IDs, the range table,
// command batches and the lease clock.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RangeTable } from '../../src/cluster/index.ts';
import { MvccStore } from '../../src/mvcc/index.ts';
import { ConfigError, parseHostPort, parseInitialCluster, parseNodeConfig } from '../../src/server/index.ts';
import { decodeBatch, encodeBatch, estimateBytes, isReadOnlyTxn } from '../../src/server/commands.ts';
import type { ProposedCommand } from '../../src/server/commands.ts';
import { pack } from 'msgpackr';
import { LeaseClock } from '../../src/server/leases.ts';
import { EtcdError } from '../../src/util/index.ts';

const bytes = (s: string) => Buffer.from(s);
const empty = new Uint8Array(0);

describe('node configuration', () => {
  it('fills etcd-like defaults and derives the data dir from the name', () => {
    const config = parseNodeConfig({ name: 'n1' });
    assert.equal(config.dataDir, 'n1.tessera');
    assert.deepEqual(config.listenClientUrls, ['http://127.0.0.1:2379']);
    assert.equal(config.limits.maxTxnOps, 128);
    assert.equal(config.limits.maxRequestBytes, 1.5 * 1024 * 1024);
  });

  it('splits comma-separated URL flags and accepts YAML lists', () => {
    assert.deepEqual(parseNodeConfig({ listenClientUrls: 'http://a:1, http://b:2' }).listenClientUrls, ['http://a:1', 'http://b:2']);
    assert.deepEqual(parseNodeConfig({ listenClientUrls: ['http://a:1'] }).listenClientUrls, ['http://a:1']);
  });

  it('reports every invalid setting by its flag name', () => {
    assert.throws(
      () => parseNodeConfig({ initialClusterState: 'maybe', heartbeatInterval: -5 }),
      (error: Error) =>
        error instanceof ConfigError && /--initial-cluster-state/.test(error.message) && /--heartbeat-interval/.test(error.message),
    );
  });

  it('parses URLs and refuses unknown schemes with a hint', () => {
    assert.deepEqual(parseHostPort('http://127.0.0.1:2379'), { host: '127.0.0.1', port: 2379 });
    assert.deepEqual(parseHostPort('https://[::1]:2380'), { host: '::1', port: 2380 });
    assert.throws(() => parseHostPort('unix:///tmp/x'), /use http:\/\/ or https:\/\//);
  });
});

describe('initial cluster', () => {
  it('derives the same member IDs on every node, distinct per member and per cluster token', () => {
    const spec = 'a=http://127.0.0.1:1,b=http://127.0.0.1:2,c=http://127.0.0.1:3';
    const one = parseInitialCluster(spec, 'token');
    const two = parseInitialCluster(spec, 'token');
    assert.deepEqual(one, two);
    assert.equal(new Set(one.map((m) => m.id)).size, 3);
    for (const m of one) assert.ok(Number.isSafeInteger(m.id) && m.id > 0);
    assert.notEqual(parseInitialCluster(spec, 'other')[0].id, one[0].id);
  });

  it('refuses malformed entries with the expected shape in the message', () => {
    assert.throws(() => parseInitialCluster('nameonly', 't'), /name=http:\/\/host:port/);
  });
});

describe('range table', () => {
  it('maps every key to the group owning it', () => {
    const table = new RangeTable([
      { groupId: 1, startKey: empty, endKey: bytes('m') },
      { groupId: 2, startKey: bytes('m'), endKey: empty },
    ]);
    assert.equal(table.lookup(bytes('a')).groupId, 1);
    assert.equal(table.lookup(bytes('m')).groupId, 2);
    assert.equal(table.lookup(bytes('zz')).groupId, 2);
    assert.equal(table.groupForSpan(bytes('a'), bytes('c')), 1);
    assert.throws(() => table.groupForSpan(bytes('a'), bytes('x')), EtcdError);
    assert.throws(() => table.groupForSpan(bytes('a'), Buffer.from([0])), EtcdError);
    assert.equal(table.groupForSpan(bytes('n'), Buffer.from([0])), 2);
  });

  it('refuses tables with gaps', () => {
    assert.throws(() => new RangeTable([{ groupId: 1, startKey: empty, endKey: bytes('m') }]));
  });
});

describe('command batches', () => {
  it('round-trip with their bytes intact', () => {
    const put = { key: bytes('k'), value: bytes('v'), lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false };
    const batch = decodeBatch(encodeBatch({ origin: 7, incarnation: 1, commands: [{ id: 1, cmd: { op: 'put', req: put } }] }));
    assert.equal(batch.origin, 7);
    const cmd = batch.commands[0].cmd;
    assert.equal(cmd.op, 'put');
    assert.equal(Buffer.from(cmd.op === 'put' ? cmd.req.value : empty).toString(), 'v');
  });

  it('round-trip in the binary format: puts (every flag, big ids, any lease), stamped puts and other commands in msgpack', () => {
    const put = (key: string, value: string, extra = {}) => ({ key: bytes(key), value: bytes(value), lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false, ...extra });
    const commands: ProposedCommand[] = [
      { id: 1, cmd: { op: 'put', req: put('a', 'x'.repeat(300)) } },
      { id: 2 ** 40 + 3, cmd: { op: 'put', req: put('b', '', { lease: 2 ** 53 - 1, prevKv: true, ignoreValue: true, ignoreLease: true }) } },
      { id: 3, cmd: { op: 'put', req: put('c', 'v', { lease: -5 }) } },
      { id: 4, cmd: { op: 'put', req: put('d', 'v'), stamp: { user: 'alice', revision: 9 } } },
      { id: 5, cmd: { op: 'leaseGrant', id: 77, ttlSeconds: 30 } },
      { id: 6, cmd: { op: 'deleteRange', req: { key: bytes('e'), rangeEnd: bytes('f'), prevKv: true } } },
      // Either side of the int32 range, where the decoder stops handing back small integers.
      { id: 7, cmd: { op: 'put', req: put('g', 'v', { lease: 2 ** 31 }) } },
      { id: 8, cmd: { op: 'put', req: put('h', 'v', { lease: -(2 ** 31) }) } },
      { id: 9, cmd: { op: 'put', req: put('i', 'v', { lease: 2 ** 31 - 1 }) } },
    ];
    const data = encodeBatch({ origin: 2 ** 52 + 1, incarnation: 123456789, commands });
    assert.equal(data[0], 0xc1, 'the binary format, told from msgpack by its first byte');
    const plain = (value: unknown): unknown =>
      value instanceof Uint8Array
        ? `bytes:${Buffer.from(value).toString()}`
        : Array.isArray(value)
          ? value.map(plain)
          : typeof value === 'object' && value !== null
            ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]))
            : value;
    assert.deepEqual(plain(decodeBatch(data)), plain({ origin: 2 ** 52 + 1, incarnation: 123456789, commands }));
    // Batches written by earlier versions (one msgpack map) are still read.
    const old = pack({ origin: 7, incarnation: 1, commands: [{ id: 1, cmd: { op: 'put', req: put('k', 'v') } }] });
    assert.deepEqual(plain(decodeBatch(old)), plain({ origin: 7, incarnation: 1, commands: [{ id: 1, cmd: { op: 'put', req: put('k', 'v') } }] }));
    // A damaged batch is an error, never a wrong command.
    assert.throws(() => decodeBatch(data.subarray(0, data.length - 3)));
    assert.throws(() => decodeBatch(Buffer.concat([data, Buffer.from([0])])));
  });

  it('estimates every command, byte fields of auth commands included (a crash found by the compat suite)', () => {
    const revoke = { op: 'auth' as const, req: { action: 'roleRevokePermission' as const, role: 'r', key: bytes('a'), rangeEnd: empty } };
    assert.ok(estimateBytes(revoke) > 0);
    const grant = {
      op: 'auth' as const,
      req: { action: 'roleGrantPermission' as const, name: 'r', perm: { permType: 'read', key: bytes('abc'), rangeEnd: bytes('abd') } as never },
    };
    assert.ok(estimateBytes(grant) >= 6);
  });

  it('tells read-only txns from writing ones, nested included', () => {
    const range = { type: 'range' as const, range: { key: bytes('a') } as never };
    const put = { type: 'put' as const, put: { key: bytes('a') } as never };
    assert.equal(isReadOnlyTxn({ compare: [], success: [range], failure: [] }), true);
    assert.equal(isReadOnlyTxn({ compare: [], success: [range], failure: [put] }), false);
    assert.equal(isReadOnlyTxn({ compare: [], success: [{ type: 'txn', txn: { compare: [], success: [put], failure: [] } }], failure: [] }), false);
  });
});

describe('lease clock', () => {
  it('expires a lease after its TTL, proposes its revoke once per retry interval, and restarts countdowns', () => {
    let now = 0;
    const clock = new LeaseClock(() => now);
    clock.renewed(5, 2);
    assert.equal(clock.remainingSeconds(5), 2);
    now = 1_500;
    assert.deepEqual(clock.takeExpired(10), []);
    now = 2_000;
    assert.deepEqual(clock.takeExpired(10), [5]);
    assert.deepEqual(clock.takeExpired(10), [], 'not proposed twice in a row');
    now = 4_100;
    assert.deepEqual(clock.takeExpired(10), [5], 'retried when the revoke did not apply');
    const store = new MvccStore();
    store.leaseGrant(5, 10);
    clock.restartAll(store);
    assert.equal(clock.remainingSeconds(5), 10, 'a new leader gives every lease its full TTL');
    clock.revoked(5);
    assert.equal(clock.remainingSeconds(5), -1);
  });
});
