// The node's fault seams for chaos tests, on a real process: POST /debug/faults slows fsyncs, fails
// one (the node must fail-stop: fatal log line, exit code 1, nothing lost on restart), and skews the
// node's clock; plus the skewable clock and the planted-bug switch on their own.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { controlRequest, EtcdClient, ProcessCluster } from '../../src/chaos/index.ts';
import { NodeClock } from '../../src/server/clock.ts';
import { plantedBugFromEnv } from '../../src/server/planted.ts';

describe('NodeClock', () => {
  it('runs at the rate it is given, continuously and monotonically', () => {
    let real = 1_000;
    const clock = new NodeClock(() => real);
    let changes = 0;
    clock.onRateChange(() => changes++);
    real += 100;
    assert.equal(clock.now(), 1_100);
    clock.setRate(4);
    real += 100;
    assert.equal(clock.now(), 1_500);
    clock.setRate(0.5);
    assert.equal(clock.now(), 1_500, 'a rate change does not jump');
    real += 100;
    assert.equal(clock.now(), 1_550);
    assert.equal(changes, 2);
    assert.throws(() => clock.setRate(0), RangeError);
    assert.throws(() => clock.setRate(11), RangeError);
    assert.throws(() => clock.setRate(Number.NaN), RangeError);
    assert.equal(clock.rate, 0.5);
  });
});

describe('planted bugs', () => {
  it('are off unless TESSERA_PLANTED_BUG names one, and an unknown name is refused', () => {
    assert.equal(plantedBugFromEnv({}), null);
    assert.equal(plantedBugFromEnv({ TESSERA_PLANTED_BUG: '' }), null);
    assert.equal(plantedBugFromEnv({ TESSERA_PLANTED_BUG: 'stale-reads' }), 'stale-reads');
    assert.equal(plantedBugFromEnv({ TESSERA_PLANTED_BUG: 'ack-before-fsync' }), 'ack-before-fsync');
    assert.throws(() => plantedBugFromEnv({ TESSERA_PLANTED_BUG: 'stale-read' }), /unknown planted bug/);
  });
});

describe('/debug/faults on a real node', { timeout: 90_000 }, () => {
  let cluster: ProcessCluster;
  let client: EtcdClient;
  const post = (body: object) =>
    controlRequest(cluster.metricsUrl(0), 'POST', '/debug/faults', body as never);
  const timedPut = async (key: string): Promise<number> => {
    const started = performance.now();
    await client.put(key, 'v');
    return performance.now() - started;
  };

  before(async () => {
    cluster = await ProcessCluster.start({ nodes: 1, faultInjection: true, logLevel: 'info' });
    client = new EtcdClient(cluster.endpoint(0), 5_000);
  });
  after(async () => {
    client?.close();
    await cluster?.stop();
  });

  it('slows every fsync while asked to, and skews the clock', async () => {
    const initial = JSON.parse(await controlRequest(cluster.metricsUrl(0), 'GET', '/debug/faults'));
    assert.deepEqual(initial, {
      partitions: {},
      fsync: { fsyncDelayMs: null, failNextFsync: false },
      clockRate: 1,
    });
    await timedPut('warm');
    const slowed = JSON.parse(await post({ fsync: { delayMs: [300, 300] } }));
    assert.deepEqual(slowed.fsync.fsyncDelayMs, [300, 300]);
    const slow = await timedPut('slow');
    assert.ok(slow >= 290, `a put took ${slow.toFixed(0)} ms with a 300 ms fsync`);
    await assert.rejects(post({ fsync: { delayMs: [10, 1] } }), /HTTP 400/);
    await assert.rejects(post({ clock: { rate: 100 } }), /HTTP 400/);
    assert.equal(JSON.parse(await post({ clock: { rate: 4 } })).clockRate, 4);
    await timedPut('fast-clock'); // still serves with its ticks four times as fast
    const healed = JSON.parse(await post({ heal: true }));
    assert.deepEqual(healed, initial);
    const fast = await timedPut('healed');
    assert.ok(fast < 290, `a put took ${fast.toFixed(0)} ms after healing`);
  });

  it('fail-stops on a failed fsync, at once even with calls in flight, and recovers everything acknowledged on restart', async () => {
    for (let i = 0; i < 20; i++) await client.put(`acked/${i}`, String(i));
    // A Lock call waiting for a held lock: a graceful API shutdown would wait for it (5 s).
    await client.lock('held', await client.leaseGrant(60), 5_000);
    const waiting = client.lock('held', await client.leaseGrant(60), 20_000).catch((error: unknown) => error);
    const logOffset = cluster.log(0).length;
    cluster.expectExit(0);
    await post({ fsync: { fail: true } });
    const failedAt = performance.now();
    await assert.rejects(client.put('never', 'acknowledged'));
    const exit = await cluster.waitExit(0, 10_000);
    const stopMs = performance.now() - failedAt;
    assert.deepEqual(exit, { code: 1, signal: null });
    assert.ok(stopMs < 3_000, `the node took ${stopMs.toFixed(0)} ms to fail-stop`);
    assert.ok((await waiting) instanceof Error, 'the waiting Lock call was not granted');
    const fatal = cluster
      .logSince(0, logOffset)
      .split('\n')
      .filter((line) => line.includes('"level":60'));
    assert.equal(fatal.length, 1, fatal.join('\n'));
    assert.match(fatal[0], /"fatal":"storage"/);
    assert.match(fatal[0], /InjectedFsyncError/);
    assert.match(fatal[0], /fail-stop/);
    assert.deepEqual(cluster.unexpectedExits, []);

    await cluster.restart(0);
    const read = await client.range('acked/', { rangeEnd: 'acked0' });
    assert.equal(read.kvs.length, 20);
    assert.equal(
      (await client.range('never')).kvs.length,
      0,
      'the write whose fsync failed was never acknowledged nor kept',
    );
  });

  it('stops gracefully (SIGTERM) at once although a Lock call is waiting', async () => {
    await client.lock('held-again', await client.leaseGrant(60), 5_000);
    const waiting = client.lock('held-again', await client.leaseGrant(60), 20_000).catch((error: unknown) => error);
    await new Promise((r) => setTimeout(r, 200)); // the second Lock is waiting on the server now
    cluster.expectExit(0);
    const started = performance.now();
    await cluster.kill(0, 'SIGTERM');
    const stopMs = performance.now() - started;
    // The lock service's waits end with the node's stop signal; before, the API drain waited 5 s for them.
    assert.ok(stopMs < 2_500, `a graceful stop took ${stopMs.toFixed(0)} ms`);
    assert.ok((await waiting) instanceof Error, 'the waiting Lock call was not granted');
    await cluster.restart(0);
  });
});
