// The `etcd3` npm client (a client nobody here wrote) against a real 3-node Tessera cluster:
// watches across a leader kill, leases kept alive across a leader change, its Lock helper,
// its elections and software transactions; and etcd's server-side v3lock / v3election services
// (src/server/concurrency.ts) over gRPC, as clientv3's Lock and Election clients call them.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { EtcdLockFailedError, STMConflictError } from 'etcd3';
import type { Campaign, Etcd3, IKeyValue, Lease, Watcher } from 'etcd3';
import { ConnectionPool } from 'etcd3/lib/connection-pool.js';
import { GrpcCode } from '../../src/util/index.ts';
import { callError, EtcdClient } from '../api/client.ts';
import { ProcessCluster } from '../support/cluster.ts';
import { clientFor, leaderIndex, memberIds, sleep, until } from './support.ts';

// Hosts are tried in the order given, so a test decides which member a client talks to first.
ConnectionPool.deterministicOrder = true;

/** etcd3's Isolation is a const enum (not present at runtime): its values. */
const Isolation = { SerializableSnapshot: 0, Serializable: 1, RepeatableReads: 2 } as const;

const b = (s: string) => Buffer.from(s);
const str = (v: Buffer | Uint8Array) => Buffer.from(v).toString();

/** `promise`, or a rejection naming `what` after `ms` (a hung client call fails the test, not the run). */
function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

describe('etcd3 npm client against a 3-node cluster', { timeout: 180_000 }, () => {
  let cluster: ProcessCluster;
  let client: Etcd3;
  const others: { close(): void }[] = [];
  const track = <T extends { close(): void }>(c: T): T => (others.push(c), c);

  before(async () => {
    cluster = await ProcessCluster.start({ nodes: 3, logLevel: 'info', exitWithParent: true });
    client = track(clientFor(cluster.endpoints()));
  });
  after(async () => {
    for (const c of others) c.close();
    await cluster?.stop({ keepData: process.env.KEEP_TEST_DATA === '1' });
  });

  test('watch a prefix, and from a past revision', async () => {
    const watcher = await client.watch().prefix('app/').withPreviousKV().create();
    const seen: string[] = [];
    const deleted = new Promise<void>((resolve) => {
      watcher.on('put', (kv, prev) => seen.push(`put ${str(kv.key)}=${str(kv.value)} prev=${prev ? str(prev.value) : '-'}`));
      watcher.on('delete', (kv) => {
        seen.push(`delete ${str(kv.key)}`);
        resolve();
      });
    });
    const first = await client.put('app/x').value('1');
    await client.put('app/x').value('2');
    await client.put('other').value('ignored');
    await client.delete().key('app/x');
    await deleted;
    await watcher.cancel();
    assert.deepEqual(seen, ['put app/x=1 prev=-', 'put app/x=2 prev=1', 'delete app/x']);

    const replay = await client.watch().prefix('app/').startRevision(first.header.revision).create();
    const replayed: string[] = [];
    await new Promise<void>((resolve) => {
      replay.on('data', (res) => {
        for (const e of res.events) replayed.push(`${e.type} ${str(e.kv.key)}@${e.kv.mod_revision}`);
        if (replayed.length === 3) resolve();
      });
    });
    await replay.cancel();
    assert.equal(replayed[0], `Put app/x@${first.header.revision}`);
    assert.deepEqual(replayed.map((r) => r.split('@')[0]), ['Put app/x', 'Put app/x', 'Delete app/x']);
  });

  test('a watcher on the leader reconnects after the leader is killed and misses no event', async () => {
    const leader = await leaderIndex(cluster);
    const survivors = [0, 1, 2].filter((i) => i !== leader);
    // The watcher talks to the leader first; the writer only to the others.
    const watchClient = track(clientFor([cluster.endpoint(leader), cluster.endpoint(survivors[0])]));
    const writer = track(clientFor(survivors.map((i) => cluster.endpoint(i))));
    const watcher: Watcher = await watchClient.watch().prefix('w/').create();
    try {
      const events: { key: string; rev: number }[] = [];
      let disconnects = 0;
      watcher.on('disconnected', () => disconnects++);
      watcher.on('put', (kv: IKeyValue) => events.push({ key: str(kv.key), rev: Number(kv.mod_revision) }));

      const total = 120;
      const acked = new Map<string, number>();
      for (let i = 0; i < total; i++) {
        if (i === 40) {
          // etcd3 retries a broken watch stream on its first host in deterministic mode, forever:
          // from here on it picks hosts at random, as it does by default.
          ConnectionPool.deterministicOrder = false;
          await cluster.kill(leader);
        }
        const key = `w/${String(i).padStart(3, '0')}`;
        // An unknown outcome is retried: a duplicate put is a new revision, which the watcher must see too.
        const response = await until(`put ${key}`, () => writer.put(key).value(String(i)).exec(), 20_000);
        acked.set(key, Number(response.header.revision));
      }
      const missing = () => [...acked].filter(([k, rev]) => !events.some((e) => e.key === k && e.rev === rev));
      await until('every acknowledged put to be watched', async () => missing().length === 0).catch((error) => {
        throw new Error(`${error}; ${disconnects} disconnects; missing ${JSON.stringify(missing().slice(0, 10))}; saw ${events.length}`);
      });

      assert.ok(disconnects >= 1, 'the watcher lost its stream when its member died');
      const revisions = events.map((e) => e.rev);
      assert.deepEqual(revisions, [...revisions].sort((x, y) => x - y), 'events arrive in revision order');
      assert.equal(new Set(revisions).size, revisions.length, 'no event delivered twice');
      // Nothing under the prefix changed that the watcher did not report.
      const stored = await writer.getAll().prefix('w/').exec();
      for (const kv of stored.kvs) assert.ok(revisions.includes(Number(kv.mod_revision)));
    } finally {
      ConnectionPool.deterministicOrder = true;
      await watcher.cancel();
      if (!cluster.isRunning(leader)) await cluster.restart(leader);
      await cluster.waitReady();
    }
  });

  test('a kept-alive lease survives a leader change; once keepalives stop it expires with its keys', async () => {
    const lease = client.lease(2);
    const id = await lease.grant();
    await lease.put('leased/a').value('1');
    await lease.put('leased/b').value('2');
    const leader = await leaderIndex(cluster);
    const ids = await memberIds(cluster);
    const target = (leader + 1) % 3;
    const leaderClient = track(clientFor([cluster.endpoint(leader)]));
    await leaderClient.maintenance.moveLeader({ targetID: ids[target] });
    assert.equal(await leaderIndex(cluster), target);
    await sleep(4_500); // more than twice the TTL: only keepalives keep it
    assert.equal(await client.get('leased/a').string(), '1');
    const ttl = await client.leaseClient.leaseTimeToLive({ ID: id, keys: true });
    assert.equal(ttl.grantedTTL, '2');
    assert.deepEqual(ttl.keys.map((k) => str(k)).sort(), ['leased/a', 'leased/b']);

    lease.release(); // stop the keepalives; do not revoke
    const stoppedAt = Date.now();
    await until('the lease to expire', async () => (await client.get('leased/a').string()) === null, 8_000);
    assert.ok(Date.now() - stoppedAt >= 1_000, 'not expired before its TTL ran');
    assert.equal(await client.get('leased/b').string(), null);
    assert.equal((await client.leaseClient.leaseTimeToLive({ ID: id })).TTL, '-1');
  });

  test('the Lock helper: mutual exclusion across concurrent clients, fencing tokens increase', async () => {
    const workers = cluster.endpoints().map((_, i) => track(clientFor([cluster.endpoint(i)])));
    await client.put('locked/counter').value('0');
    let inside = 0;
    let maxInside = 0;
    const tokens: number[] = [];
    const rounds = 4;
    await Promise.all(
      workers.map(async (worker) => {
        for (let done = 0; done < rounds; ) {
          try {
            await worker.lock('locked/mutex').ttl(5).do(async () => {
              inside++;
              maxInside = Math.max(maxInside, inside);
              // The fencing token: the lock key's create revision, as a storage service would check it.
              const lockKey = await worker.get('locked/mutex').exec();
              tokens.push(Number(lockKey.kvs[0].create_revision));
              const value = Number(await worker.get('locked/counter').string());
              await sleep(10);
              await worker.put('locked/counter').value(String(value + 1));
              inside--;
            });
            done++;
          } catch (error) {
            if (!(error instanceof EtcdLockFailedError)) throw error;
            await sleep(5 + Math.random() * 20);
          }
        }
      }),
    );
    assert.equal(maxInside, 1);
    assert.equal(await client.get('locked/counter').string(), String(rounds * workers.length));
    assert.equal(tokens.length, rounds * workers.length);
    for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i] > tokens[i - 1], `token ${tokens[i]} after ${tokens[i - 1]}`);
  });

  test('elections: campaign, observe, resign, and failover when the leader lease dies', async () => {
    const candidates = cluster.endpoints().map((_, i) => clientFor([cluster.endpoint(i)]));
    const observer = await client.election('jobs', 2).observe();
    const campaigns: Campaign[] = [];
    const campaign = (i: number, value: string) => {
      const c = candidates[i].election('jobs', 2).campaign(value);
      campaigns.push(c);
      // wait() listens for 'elected' from now on: take it before anything can elect this one.
      return { campaign: c, elected: within(15_000, c.wait(), `${value} to be elected`) };
    };
    const candidateKeys = async () => (await client.getAll().prefix('election/jobs/').keys()).length;
    try {
      const changes: (string | undefined)[] = [];
      observer.on('change', (value) => changes.push(value));
      const a = campaign(0, 'a');
      await a.elected;
      // Queue b, then c (the queue is ordered by key create revision).
      const b = campaign(1, 'b');
      await until('b to queue', async () => (await candidateKeys()) === 2);
      const c = campaign(2, 'c');
      await until('c to queue', async () => (await candidateKeys()) === 3);
      let bElected = false;
      void b.elected.then(() => (bElected = true), () => {});
      await until('the observer to see a', async () => observer.leader() === 'a');
      assert.equal(await client.election('jobs').leader(), 'a');
      await a.campaign.proclaim('a2');
      await until('the observer to see a2', async () => observer.leader() === 'a2');
      assert.equal(bElected, false);

      await a.campaign.resign();
      await b.elected;
      await until('the observer to see b', async () => observer.leader() === 'b');
      assert.equal(await client.election('jobs').leader(), 'b');

      // b's process hangs: its lease is no longer renewed and expires (TTL 2 s); c takes over.
      (b.campaign as unknown as { lease: Lease }).lease.release();
      await c.elected;
      await until('the observer to see c', async () => observer.leader() === 'c');
      assert.deepEqual(
        changes.filter((v) => v !== undefined),
        ['a', 'a2', 'b', 'c'],
      );
    } finally {
      await observer.cancel();
      await Promise.all(campaigns.map((c) => c.resign().catch(() => {})));
      for (const candidate of candidates) candidate.close();
    }
  });

  for (const [name, isolation] of Object.entries(Isolation)) {
    test(`software transactions (${name}) lose no update on a contended counter`, async () => {
      const key = `stm/${name}`;
      await client.put(key).value('0');
      const workers = cluster.endpoints().map((_, i) => track(clientFor([cluster.endpoint(i)])));
      const perWorker = 5;
      let attempts = 0;
      await Promise.all(
        workers.map(async (worker) => {
          for (let i = 0; i < perWorker; i++) {
            await worker.stm({ isolation, retries: 100 }).transact(async (tx) => {
              const value = Number(await tx.get(key).string());
              await sleep(2);
              attempts++;
              await tx.put(key).value(String(value + 1));
            });
          }
        }),
      );
      assert.equal(await client.get(key).string(), String(perWorker * workers.length));
      assert.ok(attempts > perWorker * workers.length, 'the workers did contend (some attempts were retried)');
      // A stale read set is refused, not overwritten.
      const stale = worker0Stale(workers[0], key, isolation);
      await assert.rejects(stale, STMConflictError);
    });
  }

  /** An STM whose read set changes before it commits, with no retries: it must fail. */
  async function worker0Stale(worker: Etcd3, key: string, isolation: number): Promise<void> {
    await worker.stm({ isolation, retries: 0 }).transact(async (tx) => {
      const value = Number(await tx.get(key).string());
      await client.put(key).value(String(value + 100));
      await tx.put(key).value(String(value + 1));
    });
  }

  describe('the v3lock and v3election services (server-side concurrency)', () => {
    let grpc: EtcdClient[];
    before(() => {
      grpc = cluster.endpoints().map((e) => track(new EtcdClient(e)));
    });
    const grant = async (ttl: number) => Number((await client.leaseClient.leaseGrant({ TTL: ttl })).ID);
    const createRevision = async (key: Buffer) => Number((await client.get(key.toString()).exec()).kvs[0]?.create_revision ?? 0);
    const keysUnder = async (prefix: string) => (await client.getAll().prefix(prefix).keys()).sort();

    test('Lock: one holder at a time across members; the key create revision is an increasing fencing token', async () => {
      let inside = 0;
      const tokens: number[] = [];
      await Promise.all(
        grpc.map(async (g) => {
          const lease = await grant(30);
          for (let i = 0; i < 4; i++) {
            const held = await g.call('Lock', 'lock', { name: b('fence'), lease });
            inside++;
            assert.equal(inside, 1, 'two holders at once');
            assert.equal(str(held.key), `fence/${lease.toString(16)}`);
            const token = await createRevision(held.key);
            assert.ok(Number(held.header.revision) >= token);
            tokens.push(token);
            await sleep(5);
            inside--;
            await g.call('Lock', 'unlock', { key: held.key });
          }
        }),
      );
      assert.equal(tokens.length, 12);
      for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i] > tokens[i - 1]);
      assert.deepEqual(await keysUnder('fence/'), []);
    });

    test('Lock: a cancelled waiter withdraws its key; a holder whose lease is revoked passes the lock on', async () => {
      const [first, second, third] = [await grant(30), await grant(30), await grant(30)];
      const held = await grpc[0].call('Lock', 'lock', { name: b('pass'), lease: first });
      const cancelled = callError(grpc[1].call('Lock', 'lock', { name: b('pass'), lease: second }, 1_500));
      await until('the waiter to queue', async () => (await keysUnder('pass/')).length === 2);
      assert.equal((await cancelled).code, GrpcCode.DEADLINE_EXCEEDED);
      await until('the waiter key to be withdrawn', async () => (await keysUnder('pass/')).length === 1);
      assert.deepEqual(await keysUnder('pass/'), [str(held.key)]);

      const waiting = grpc[2].call('Lock', 'lock', { name: b('pass'), lease: third }, 15_000);
      await until('the next waiter to queue', async () => (await keysUnder('pass/')).length === 2);
      await client.leaseClient.leaseRevoke({ ID: String(first) });
      const next = await waiting;
      assert.equal(str(next.key), `pass/${third.toString(16)}`);
      await grpc[2].call('Lock', 'unlock', { key: next.key });
    });

    test('Lock errors and defaults: session expired while waiting, unknown lease, lease 0 gets a 60 s lease', async () => {
      const holder = await grant(30);
      const held = await grpc[0].call('Lock', 'lock', { name: b('exp'), lease: holder });
      const short = await grant(2); // never kept alive: expires while it waits
      const waiting = grpc[1].call('Lock', 'lock', { name: b('exp'), lease: short }, 15_000);
      waiting.catch(() => {}); // inspected below
      await until('the waiter to queue', async () => (await keysUnder('exp/')).length === 2);
      await until('the waiter key to expire', async () => (await keysUnder('exp/')).length === 1, 10_000);
      await grpc[0].call('Lock', 'unlock', { key: held.key });
      const expired = await callError(waiting);
      assert.deepEqual([expired.code, expired.details], [GrpcCode.UNKNOWN, 'mutex: session is expired']);

      const unknown = await callError(grpc[0].call('Lock', 'lock', { name: b('exp'), lease: 12345 }));
      assert.deepEqual([unknown.code, unknown.details], [GrpcCode.NOT_FOUND, 'etcdserver: requested lease not found']);

      const anonymous = await grpc[1].call('Lock', 'lock', { name: b('anon'), lease: 0 });
      const [kv] = (await client.get(str(anonymous.key)).exec()).kvs;
      assert.equal(str(anonymous.key), `anon/${BigInt(kv.lease).toString(16)}`);
      const ttl = await client.leaseClient.leaseTimeToLive({ ID: kv.lease });
      assert.equal(ttl.grantedTTL, '60');
      await client.leaseClient.leaseRevoke({ ID: kv.lease });
    });

    test('Election: campaign, leader, proclaim, observe, resign, failover on lease revoke', async () => {
      const noLeader = await callError(grpc[0].call('Election', 'leader', { name: b('el') }));
      assert.deepEqual([noLeader.code, noLeader.details], [GrpcCode.UNKNOWN, 'election: no leader']);
      const [la, lb, lc] = [await grant(30), await grant(30), await grant(30)];

      const observe = grpc[2].service('Election').observe({ name: b('el') });
      const observed: string[] = [];
      observe.on('data', (r: any) => observed.push(`${str(r.kv.value)}@${r.header.revision}`));
      observe.on('error', () => {});

      const won = await grpc[0].call('Election', 'campaign', { name: b('el'), lease: la, value: b('a') });
      assert.deepEqual([str(won.leader.name), str(won.leader.key), won.leader.lease], ['el', `el/${la.toString(16)}`, String(la)]);
      assert.equal(won.leader.rev, won.header.revision);
      const bWaits = grpc[1].call('Election', 'campaign', { name: b('el'), lease: lb, value: b('b') }, 15_000);
      await until('b to queue', async () => (await keysUnder('el/')).length === 2); // then c, behind b
      const cWaits = grpc[2].call('Election', 'campaign', { name: b('el'), lease: lc, value: b('c') }, 15_000);
      await until('c to queue', async () => (await keysUnder('el/')).length === 3);
      assert.equal(str((await grpc[1].call('Election', 'leader', { name: b('el') })).kv.value), 'a');

      const proclaimed = await grpc[1].call('Election', 'proclaim', { leader: won.leader, value: b('a2') });
      await until('observe to report a2', async () => observed.some((o) => o.startsWith('a2@')));
      const stale = await callError(grpc[0].call('Election', 'proclaim', { leader: { ...won.leader, rev: 1 }, value: b('x') }));
      assert.deepEqual([stale.code, stale.details], [GrpcCode.UNKNOWN, 'election: not leader']);

      await grpc[0].call('Election', 'resign', { leader: won.leader });
      const bWon = await bWaits;
      assert.equal(str(bWon.leader.key), `el/${lb.toString(16)}`);
      await until('observe to report b', async () => observed.some((o) => o.startsWith('b@')));

      await client.leaseClient.leaseRevoke({ ID: String(lb) }); // the leader's session dies
      const cWon = await cWaits;
      assert.equal(str(cWon.leader.key), `el/${lc.toString(16)}`);
      await until('observe to report c', async () => observed.some((o) => o.startsWith('c@')));
      observe.cancel();
      assert.deepEqual(observed.map((o) => o.split('@')[0]), ['a', 'a2', 'b', 'c']);
      assert.equal(observed[1], `a2@${proclaimed.header.revision}`);
      await grpc[2].call('Election', 'resign', { leader: cWon.leader });
      assert.deepEqual(await keysUnder('el/'), []);
    });

    test('Campaign: a cancelled candidate resigns its key', async () => {
      const [la, lb] = [await grant(30), await grant(30)];
      const won = await grpc[0].call('Election', 'campaign', { name: b('cx'), lease: la, value: b('a') });
      const gaveUp = callError(grpc[1].call('Election', 'campaign', { name: b('cx'), lease: lb, value: b('b') }, 1_500));
      await until('the candidate to queue', async () => (await keysUnder('cx/')).length === 2);
      assert.equal((await gaveUp).code, GrpcCode.DEADLINE_EXCEEDED);
      await until('the candidate key to be withdrawn', async () => (await keysUnder('cx/')).length === 1);
      await grpc[0].call('Election', 'resign', { leader: won.leader });
    });
  });
});
