// etcdserverpb.Watch over real gRPC against MvccStore.watch: created/canceled responses as etcd
// sends them, IDs, filters, history, compaction, progress, fragmentation and per-stream bounds.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { GrpcCode } from '../../src/util/index.ts';
import { canonical, DuplexReader } from './client.ts';
import { StoreWatch } from './fakes.ts';
import { b, startApi, str } from './harness.ts';
import type { Api } from './harness.ts';
import type { WatchLimits } from '../../src/api/index.ts';

const DUPLICATE = 'mvcc: duplicate watch ID provided on the WatchStream';
const EMPTY_RANGE = 'mvcc: watcher range is empty';

async function startWatchApi(watchLimits: Partial<WatchLimits> = {}) {
  let watch!: StoreWatch;
  const api = await startApi((kv) => {
    watch = new StoreWatch(kv.store);
    return { watch, watchLimits };
  });
  return { api, watch };
}

function openStream(api: Api): DuplexReader {
  return new DuplexReader(api.client.service('Watch').watch());
}

function put(api: Api, key: string, value: string) {
  return api.backend.store.put({
    key: b(key),
    value: b(value),
    lease: 0,
    prevKv: false,
    ignoreValue: false,
    ignoreLease: false,
  });
}

function del(api: Api, key: string) {
  return api.backend.store.deleteRange({ key: b(key), rangeEnd: new Uint8Array(0), prevKv: false });
}

const rev = (api: Api) => String(api.backend.store.currentRevision);
const summary = (response: any) =>
  response.events.map((e: any) => `${e.type} ${str(e.kv.key)}=${str(e.kv.value)}@${e.kv.modRevision}`);

describe('Watch', { timeout: 60_000 }, () => {
  let api: Api;
  let watch: StoreWatch;
  before(async () => {
    ({ api, watch } = await startWatchApi({ progressNotifyIntervalMs: 300 }));
  });
  after(async () => {
    await api.stop();
  });

  test('create answers created with an auto ID from 0 and the current revision; events follow', async () => {
    const stream = openStream(api);
    try {
      stream.write({ createRequest: { key: b('w/a') } });
      const created = await stream.next();
      assert.equal(created.created, true);
      assert.equal(created.canceled, false);
      assert.equal(created.watchId, '0');
      assert.equal(created.header.revision, rev(api));
      assert.equal(created.header.clusterId, '14841639068965178418');
      assert.equal(created.header.memberId, '10276657743932975437');

      stream.write({ createRequest: { key: b('w/'), rangeEnd: b('w0'), prevKv: true } });
      assert.equal((await stream.next()).watchId, '1');

      put(api, 'w/a', '1');
      put(api, 'w/a', '2');
      del(api, 'w/a');
      const seen: Record<string, string[]> = { '0': [], '1': [] };
      while (seen['0'].length + seen['1'].length < 6) {
        const response = await stream.next();
        assert.equal(response.created, false);
        seen[response.watchId].push(...summary(response).map((s: string) => s.replace(/@\d+$/, '')));
        assert.equal(response.header.revision, response.events.at(-1).kv.modRevision);
        if (
          response.watchId === '1' &&
          response.events[0].type === 'PUT' &&
          str(response.events[0].kv.value) === '2'
        ) {
          assert.equal(str(response.events[0].prevKv.value), '1');
        }
        if (response.watchId === '0') assert.equal(response.events[0].prevKv, null);
      }
      assert.deepEqual(seen['0'], ['PUT w/a=1', 'PUT w/a=2', 'DELETE w/a=']);
      assert.deepEqual(seen['1'], ['PUT w/a=1', 'PUT w/a=2', 'DELETE w/a=']);
    } finally {
      stream.close();
    }
  });

  test('client-chosen watch IDs; a duplicate is refused as etcd does; auto IDs skip used ones', async () => {
    const stream = openStream(api);
    try {
      stream.write({ createRequest: { key: b('x'), watchId: 0 } });
      assert.equal((await stream.next()).watchId, '0');
      stream.write({ createRequest: { key: b('x'), watchId: 1 } });
      assert.equal((await stream.next()).watchId, '1');
      stream.write({ createRequest: { key: b('x'), watchId: 1 } });
      const duplicate = await stream.next();
      assert.deepEqual(
        [duplicate.watchId, duplicate.created, duplicate.canceled, duplicate.cancelReason],
        ['-1', true, true, DUPLICATE],
      );
      assert.equal(duplicate.header.revision, rev(api));
      stream.write({ createRequest: { key: b('x') } });
      assert.equal((await stream.next()).watchId, '2');
      stream.write({ createRequest: { key: b('x'), watchId: 100 } });
      assert.equal((await stream.next()).watchId, '100');
    } finally {
      stream.close();
    }
  });

  test('an empty range, a negative or unsafe watch_id are refused with created+canceled', async () => {
    const stream = openStream(api);
    try {
      stream.write({ createRequest: { key: b('b'), rangeEnd: b('a') } });
      assert.equal((await stream.next()).cancelReason, EMPTY_RANGE);
      stream.write({ createRequest: { key: b('b'), rangeEnd: b('b') } });
      assert.equal((await stream.next()).cancelReason, EMPTY_RANGE);
      stream.write({ createRequest: { key: b('b'), watchId: '9007199254740993' } });
      const unsafe = await stream.next();
      assert.equal(unsafe.canceled, true);
      assert.match(unsafe.cancelReason, /watch_id out of range/);
      // rangeEnd "\0" means every key >= key: not empty.
      stream.write({ createRequest: { key: b('b'), rangeEnd: Buffer.from([0]) } });
      const fromKey = await stream.next();
      assert.equal(fromKey.canceled, false);
      assert.equal(fromKey.watchId, '0');
    } finally {
      stream.close();
    }
  });

  test('filters NOPUT and NODELETE', async () => {
    const stream = openStream(api);
    try {
      stream.write({ createRequest: { key: b('f'), filters: ['NOPUT'] } });
      await stream.next();
      stream.write({ createRequest: { key: b('f'), filters: ['NODELETE'] } });
      await stream.next();
      put(api, 'f', '1');
      del(api, 'f');
      const first = await stream.next();
      const second = await stream.next();
      const byId = Object.fromEntries(
        [first, second].map((r) => [r.watchId, summary(r).map((s: string) => s.split(' ')[0])]),
      );
      assert.deepEqual(byId, { '0': ['DELETE'], '1': ['PUT'] });
      await stream.nothingWithin(50);
    } finally {
      stream.close();
    }
  });

  test('start_revision replays history; a compacted one is created then canceled with compact_revision', async () => {
    const first = put(api, 'h', '1').response.header.revision;
    put(api, 'h', '2');
    const stream = openStream(api);
    try {
      stream.write({ createRequest: { key: b('h'), startRevision: first } });
      const created = await stream.next();
      assert.equal(created.created, true);
      const replay = await stream.next();
      assert.deepEqual(summary(replay), [`PUT h=1@${first}`, `PUT h=2@${first + 1}`]);
      assert.equal(replay.header.revision, rev(api));

      api.backend.store.compact({ revision: first + 1, physical: false });
      stream.write({ createRequest: { key: b('h'), startRevision: first } });
      const acknowledged = await stream.next();
      assert.deepEqual(
        [acknowledged.created, acknowledged.canceled, acknowledged.watchId],
        [true, false, '1'],
      );
      const compacted = await stream.next();
      assert.equal(compacted.watchId, '1');
      assert.equal(compacted.canceled, true);
      assert.equal(compacted.created, false);
      assert.equal(compacted.compactRevision, String(first + 1));
      assert.equal(compacted.header.revision, '0'); // etcd leaves the compacted response's revision unset
      assert.equal(compacted.cancelReason, 'etcdserver: mvcc: required revision has been compacted');
    } finally {
      stream.close();
    }
  });

  test('cancel answers canceled and stops events; cancelling an unknown ID is ignored', async () => {
    const stream = openStream(api);
    try {
      stream.write({ createRequest: { key: b('c') } });
      await stream.next();
      const watchers = api.backend.store.watcherCount;
      stream.write({ cancelRequest: { watchId: 0 } });
      const canceled = await stream.next();
      assert.deepEqual(
        [canceled.watchId, canceled.canceled, canceled.created, canceled.cancelReason],
        ['0', true, false, ''],
      );
      assert.equal(canceled.header.revision, rev(api));
      assert.equal(api.backend.store.watcherCount, watchers - 1);
      stream.write({ cancelRequest: { watchId: 42 } });
      put(api, 'c', '1');
      await stream.nothingWithin(50);
    } finally {
      stream.close();
    }
  });

  test('progress_request answers with watch_id -1 at the current revision', async () => {
    const stream = openStream(api);
    try {
      stream.write({ createRequest: { key: b('p') } });
      await stream.next();
      put(api, 'other', 'x');
      stream.write({ progressRequest: {} });
      const progress = await stream.next();
      assert.deepEqual(
        [progress.watchId, progress.created, progress.canceled, progress.events],
        ['-1', false, false, []],
      );
      assert.equal(progress.header.revision, rev(api));
    } finally {
      stream.close();
    }
  });

  test('progress_notify watchers get empty responses when idle, others do not', async () => {
    const stream = openStream(api);
    try {
      stream.write({ createRequest: { key: b('n'), progressNotify: true } });
      await stream.next();
      stream.write({ createRequest: { key: b('m') } });
      await stream.next();
      put(api, 'unrelated', 'x');
      const notified = await stream.next(3_000);
      assert.deepEqual(
        [notified.watchId, notified.events, notified.created, notified.canceled],
        ['0', [], false, false],
      );
      assert.equal(notified.header.revision, rev(api));
    } finally {
      stream.close();
    }
  });

  test('closing the stream cancels its watchers in the store', async () => {
    // Streams closed by earlier tests may still be winding down on the server.
    for (let i = 0; i < 100 && api.backend.store.watcherCount !== 0; i++)
      await new Promise((r) => setTimeout(r, 10));
    const before = api.backend.store.watcherCount;
    assert.equal(before, 0);
    const stream = openStream(api);
    stream.write({ createRequest: { key: b('z') } });
    await stream.next();
    stream.write({ createRequest: { key: b('z') } });
    await stream.next();
    assert.equal(api.backend.store.watcherCount, before + 2);
    stream.close();
    for (let i = 0; i < 100 && api.backend.store.watcherCount !== before; i++)
      await new Promise((r) => setTimeout(r, 10));
    assert.equal(api.backend.store.watcherCount, before);
    assert.ok(watch.handles.length > 0);
  });
});

describe('Watch: negative start revisions, as etcd 3.4 answers them', { timeout: 60_000 }, () => {
  test('below the compacted revision (-1 before any compaction) they are compacted; after compact(0), not canceled', async () => {
    const { api } = await startWatchApi();
    const stream = openStream(api);
    try {
      put(api, 'n', '1');
      stream.write({ createRequest: { key: b('n'), startRevision: -2 } });
      assert.deepEqual([(await stream.next()).created, (await stream.next()).compactRevision], [true, '-1']);
      // -1 is not below -1: a watch from the next write, with no replay
      stream.write({ createRequest: { key: b('n'), startRevision: -1 } });
      const live = await stream.next();
      assert.deepEqual([live.created, live.canceled, live.watchId], [true, false, '1']);
      put(api, 'n', '2');
      assert.deepEqual(summary(await stream.next()), [`PUT n=2@${rev(api)}`]);

      api.backend.store.compact({ revision: 0, physical: false });
      stream.write({ createRequest: { key: b('n'), startRevision: -1 } });
      assert.equal((await stream.next()).watchId, '2');
      // etcd's sendLoop sets canceled only for a nonzero compact_revision: this watcher stays,
      // silent, its ID taken until the client cancels it
      const dead = await stream.next();
      assert.deepEqual(
        [dead.watchId, dead.canceled, dead.compactRevision, dead.cancelReason, dead.header.revision],
        ['2', false, '0', '', '0'],
      );
      stream.write({ createRequest: { key: b('n'), watchId: 2 } });
      assert.equal((await stream.next()).cancelReason, DUPLICATE);
      stream.write({ cancelRequest: { watchId: 2 } });
      const canceled = await stream.next();
      assert.deepEqual([canceled.watchId, canceled.canceled], ['2', true]);
    } finally {
      stream.close();
      await api.stop();
    }
  });
});

describe('Watch bounds', { timeout: 60_000 }, () => {
  test('fragment splits a large revision below maxResponseBytes; others get it whole', async () => {
    const { api } = await startWatchApi({ maxResponseBytes: 1_000 });
    const stream = openStream(api);
    try {
      stream.write({ createRequest: { key: b('g/'), rangeEnd: b('g0'), fragment: true } });
      await stream.next();
      stream.write({ createRequest: { key: b('g/'), rangeEnd: b('g0') } });
      await stream.next();
      const ops = Array.from({ length: 40 }, (_, i) => ({
        type: 'put' as const,
        put: {
          key: b(`g/${String(i).padStart(2, '0')}`),
          value: b('v'.repeat(50)),
          lease: 0,
          prevKv: false,
          ignoreValue: false,
          ignoreLease: false,
        },
      }));
      api.backend.store.txn({ compare: [], success: ops, failure: [] });
      const fragments: any[] = [];
      let whole: any = null;
      while (whole === null || fragments.length === 0 || fragments.at(-1).fragment) {
        const response = await stream.next();
        if (response.watchId === '0') fragments.push(response);
        else whole = response;
      }
      assert.ok(fragments.length > 2, `${fragments.length} fragments`);
      assert.deepEqual(
        fragments.map((f) => f.fragment),
        [...fragments.slice(1).map(() => true), false],
      );
      const keys = fragments.flatMap((f) => f.events.map((e: any) => str(e.kv.key)));
      assert.deepEqual(
        keys,
        ops.map((op) => str(op.put.key)),
      );
      assert.equal(whole.events.length, 40);
      assert.equal(whole.fragment, false);
      // etcd's rule, on etcd's (defaults-omitted) encoding: each fragment stays below the limit,
      // and adding the next fragment's first event would have reached it.
      const serialize = api.client.service('Watch').watch.responseSerialize;
      const size = (response: any) => serialize(canonical(response)).length;
      for (let i = 0; i < fragments.length; i++) {
        assert.ok(size(fragments[i]) < 1_000, `fragment ${i} is ${size(fragments[i])} bytes`);
        if (i === fragments.length - 1) break;
        const grown = { ...fragments[i], events: [...fragments[i].events, fragments[i + 1].events[0]] };
        assert.ok(size(grown) >= 1_000, `fragment ${i} could have held one more event`);
      }
    } finally {
      stream.close();
      await api.stop();
    }
  });

  test('max watchers per stream refuses the next create with a reason', async () => {
    const { api } = await startWatchApi({ maxWatchersPerStream: 2 });
    const stream = openStream(api);
    try {
      for (let i = 0; i < 2; i++) {
        stream.write({ createRequest: { key: b('k') } });
        assert.equal((await stream.next()).canceled, false);
      }
      stream.write({ createRequest: { key: b('k') } });
      const refused = await stream.next();
      assert.deepEqual([refused.watchId, refused.created, refused.canceled], ['-1', true, true]);
      assert.equal(refused.cancelReason, 'tessera: too many watchers on one stream (limit 2)');
      stream.write({ cancelRequest: { watchId: 0 } });
      await stream.next();
      stream.write({ createRequest: { key: b('k') } });
      assert.equal((await stream.next()).canceled, false);
    } finally {
      stream.close();
      await api.stop();
    }
  });

  test('a slow reader pauses its watchers; they catch up from history without losing an event', async () => {
    const { api, watch } = await startWatchApi();
    const call = api.client.service('Watch').watch();
    const stream = new DuplexReader(call);
    try {
      stream.write({ createRequest: { key: b('s/'), rangeEnd: b('s0') } });
      await stream.next();
      call.pause(); // stop reading: HTTP/2 flow control backs up into the server
      const value = 'x'.repeat(16 * 1024);
      const first = api.backend.store.currentRevision + 1;
      for (let i = 0; i < 400; i++) {
        put(api, `s/${i % 7}`, value);
        if (i % 50 === 49) await new Promise((r) => setImmediate(r));
      }
      const last = api.backend.store.currentRevision;
      assert.ok(watch.pauses > 0, 'the sink paused its watcher');
      call.resume();
      const revisions: number[] = [];
      while (revisions.at(-1) !== last) {
        const response = await stream.next();
        assert.equal(response.canceled, false);
        revisions.push(...response.events.map((e: any) => Number(e.kv.modRevision)));
      }
      assert.deepEqual(
        revisions,
        Array.from({ length: last - first + 1 }, (_, i) => first + i),
      );
    } finally {
      stream.close();
      await api.stop();
    }
  });

  test('past the stream byte budget a watcher is canceled with a clear reason, never queued', async () => {
    const { api } = await startWatchApi({ maxBufferedBytesPerStream: 64 * 1024 });
    const call = api.client.service('Watch').watch();
    const stream = new DuplexReader(call);
    try {
      for (let i = 0; i < 30; i++) {
        stream.write({ createRequest: { key: b('big') } });
        await stream.next();
      }
      call.pause();
      put(api, 'big', 'y'.repeat(8 * 1024));
      call.resume();
      let delivered = 0;
      const reasons: string[] = [];
      while (delivered + reasons.length < 30) {
        const response = await stream.next();
        if (response.canceled) reasons.push(response.cancelReason);
        else delivered += response.events.length;
      }
      assert.ok(delivered >= 7 && delivered < 30, `delivered to ${delivered} watchers`);
      assert.match(
        reasons[0],
        /^tessera: watch stream buffer full \(limit 65536 bytes, client reading too slowly\); watcher canceled, re-watch from revision \d+$/,
      );
    } finally {
      stream.close();
      await api.stop();
    }
  });

  test('without a Watch backend the service is UNIMPLEMENTED', async () => {
    const api = await startApi();
    const stream = openStream(api);
    try {
      stream.write({ createRequest: { key: b('a') } });
      await assert.rejects(stream.next(), (error: any) => error.code === GrpcCode.UNIMPLEMENTED);
    } finally {
      await api.stop();
    }
  });

  test('stopping the server ends open watch streams with UNAVAILABLE', async () => {
    const { api } = await startWatchApi();
    const stream = openStream(api);
    stream.write({ createRequest: { key: b('a') } });
    await stream.next();
    const started = Date.now();
    await api.server.stop();
    await assert.rejects(
      stream.next(),
      (error: any) => error.code === GrpcCode.UNAVAILABLE && error.details === 'etcdserver: server stopped',
    );
    assert.ok(Date.now() - started < 4_000, 'stop did not wait out its grace period');
    api.client.close();
  });
});
