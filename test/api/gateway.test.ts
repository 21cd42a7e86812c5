// etcd's HTTP/JSON gateway on the gRPC port, with real HTTP requests (fetch, and curl when
// installed): etcd's paths, base64 bytes, int64 strings, defaults omitted, etcd's error bodies,
// and the streamed endpoints (watch, keepalive, snapshot, observe).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { StoreElections, StoreLocks } from './concurrency.ts';
import { FakeCluster, FakeMaintenance, MEMBER_A, StoreLeases, StoreWatch } from './fakes.ts';
import { startApi } from './harness.ts';
import type { Api } from './harness.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const text = (base64: string) => Buffer.from(base64, 'base64').toString();

const HEADER = { cluster_id: '14841639068965178418', member_id: '10276657743932975437', raft_term: '2' };

describe('HTTP/JSON gateway', { timeout: 60_000 }, () => {
  let api: Api;
  let base: string;
  before(async () => {
    api = await startApi((kv) => ({
      maintenance: new FakeMaintenance(kv.store),
      cluster: new FakeCluster(),
      watch: new StoreWatch(kv.store),
      lease: new StoreLeases(kv.store),
      lock: new StoreLocks(kv.store),
      election: new StoreElections(kv.store),
    }));
    base = `http://${api.address}`;
  });
  after(async () => {
    await api.stop();
  });

  async function post(path: string, body: unknown, raw = false) {
    const response = await fetch(`${base}${path}`, {
      method: 'POST',
      body: raw ? String(body) : JSON.stringify(body),
    });
    const content = await response.text();
    return {
      status: response.status,
      headers: response.headers,
      body: content,
      json: () => JSON.parse(content),
    };
  }

  const rev = () => String(api.backend.store.currentRevision);

  test('put and range: base64 bytes, int64 strings, snake_case names, defaults omitted', async () => {
    const put = await post('/v3/kv/put', { key: b64('foo'), value: b64('bar') });
    assert.equal(put.status, 200);
    assert.equal(put.headers.get('content-type'), 'application/json');
    assert.deepEqual(put.json(), { header: { ...HEADER, revision: rev() } });
    const range = await post('/v3/kv/range', { key: b64('foo') });
    assert.deepEqual(range.json(), {
      header: { ...HEADER, revision: rev() },
      kvs: [
        { key: b64('foo'), create_revision: rev(), mod_revision: rev(), version: '1', value: b64('bar') },
      ],
      count: '1',
    });
  });

  test('requests accept lowerCamel names, integers as numbers or strings, enums by name or number', async () => {
    await post('/v3/kv/put', { key: b64('p/1'), value: b64('1') });
    await post('/v3/kv/put', { key: b64('p/2'), value: b64('2') });
    const camel = await post('/v3/kv/range', {
      key: b64('p/'),
      rangeEnd: b64('p0'),
      limit: '1',
      sortOrder: 'DESCEND',
    });
    assert.deepEqual(
      camel.json().kvs.map((kv: any) => text(kv.key)),
      ['p/2'],
    );
    assert.equal(camel.json().more, true);
    const snake = await post('/v3/kv/range', {
      key: b64('p/'),
      range_end: b64('p0'),
      keys_only: true,
      sort_order: 1,
      limit: 5,
    });
    assert.deepEqual(
      snake.json().kvs.map((kv: any) => [text(kv.key), kv.value]),
      [
        ['p/1', undefined],
        ['p/2', undefined],
      ],
    );
    const ignored = await post('/v3/kv/range', { key: b64('p/1'), no_such_field: 1 });
    assert.equal(ignored.json().count, '1');
  });

  test('txn with compares and nested responses; deleterange; compaction', async () => {
    const txn = await post('/v3/kv/txn', {
      compare: [{ key: b64('foo'), target: 'VALUE', result: 'EQUAL', value: b64('bar') }],
      success: [
        { request_put: { key: b64('foo'), value: b64('baz') } },
        { request_range: { key: b64('foo') } },
      ],
    });
    const body = txn.json();
    assert.equal(body.succeeded, true);
    assert.deepEqual(body.responses[0], { response_put: { header: { revision: rev() } } });
    assert.equal(text(body.responses[1].response_range.kvs[0].value), 'baz');
    const deleted = await post('/v3/kv/deleterange', { key: b64('p/'), range_end: b64('p0'), prev_kv: true });
    assert.equal(deleted.json().deleted, '2');
    assert.equal(deleted.json().prev_kvs.length, 2);
    const compacted = await post('/v3/kv/compaction', { revision: rev() });
    assert.deepEqual(compacted.json(), { header: { ...HEADER, revision: rev() } });
  });

  test("errors are etcd's gateway bodies with the HTTP status grpc-gateway maps the code to", async () => {
    const cases: [string, unknown, boolean, number, number, string | RegExp][] = [
      ['/v3/kv/put', { key: '', value: b64('x') }, false, 400, 3, 'etcdserver: key is not provided'],
      [
        '/v3/kv/range',
        { key: b64('foo'), revision: 1 },
        false,
        400,
        11,
        'etcdserver: mvcc: required revision has been compacted',
      ],
      ['/v3/lease/revoke', { ID: 5 }, false, 404, 5, 'etcdserver: requested lease not found'],
      ['/v3/kv/range', 'not json', true, 400, 3, /^json: /],
      ['/v3/kv/range', { key: '!!' }, false, 400, 3, 'json: illegal base64 data in field key'],
      [
        '/v3/kv/range',
        { key: b64('a'), revision: 'abc' },
        false,
        400,
        3,
        /^json: invalid value for int64 field revision/,
      ],
      ['/v3/kv/range', { key: b64('a'), revision: '9007199254740993' }, false, 400, 3, /out of range/],
      ['/v3/election/leader', { name: b64('nobody') }, false, 500, 2, 'election: no leader'],
    ];
    for (const [path, body, raw, status, code, message] of cases) {
      const response = await post(path, body, raw);
      assert.equal(response.status, status, `${path} ${response.body}`);
      const json = response.json();
      assert.deepEqual(Object.keys(json), ['error', 'message', 'code']);
      assert.equal(json.code, code);
      assert.equal(json.error, json.message);
      if (typeof message === 'string') assert.equal(json.message, message);
      else assert.match(json.message, message);
    }
  });

  test('an empty body is an empty request; GET, unknown paths, OPTIONS and v3beta as etcd answers them', async () => {
    const empty = await post('/v3/kv/range', '', true);
    assert.deepEqual(empty.json(), {
      error: 'etcdserver: key is not provided',
      message: 'etcdserver: key is not provided',
      code: 3,
    });
    const get = await fetch(`${base}/v3/kv/range`);
    assert.deepEqual([get.status, await get.text()], [405, 'Method Not Allowed\n']);
    const missing = await post('/v3/nope', {});
    assert.deepEqual([missing.status, missing.body], [404, 'Not Found\n']);
    const options = await fetch(`${base}/v3/kv/range`, { method: 'OPTIONS' });
    assert.equal(options.status, 200);
    assert.equal(options.headers.get('access-control-allow-origin'), '*');
    const beta = await post('/v3beta/kv/range', { key: b64('foo') });
    assert.equal(beta.json().count, '1');
  });

  test('maintenance and cluster: uint64 IDs as strings, uint32 hash as a number, empty responses as {}', async () => {
    const status = await post('/v3/maintenance/status', {});
    assert.deepEqual(status.json(), {
      header: { ...HEADER, revision: rev() },
      version: '3.4.0',
      dbSize: '24576',
      leader: MEMBER_A,
      raftIndex: '42',
      raftTerm: '7',
      raftAppliedIndex: '41',
      dbSizeInUse: '16384',
    });
    const members = await post('/v3/cluster/member/list', {});
    assert.deepEqual(members.json().header, HEADER);
    assert.deepEqual(members.json().members[1], {
      ID: '12345678901234567890',
      peerURLs: ['http://127.0.0.2:2380'],
      isLearner: true,
    });
    const hash = await post('/v3/maintenance/hash', {});
    assert.equal(hash.json().hash, api.backend.store.hashKV(0).hash);
    const hashkv = await post('/v3/maintenance/hashkv', { revision: 0 });
    assert.equal(hashkv.json().hash_revision, rev());
    assert.deepEqual((await post('/v3/maintenance/defragment', {})).json(), {});
    assert.deepEqual((await post('/v3/maintenance/alarm', { action: 'GET' })).json(), {});
  });

  test('leases: grant, timetolive on both paths, leases, revoke', async () => {
    const grant = (await post('/v3/lease/grant', { TTL: 30, ID: 4242 })).json();
    assert.deepEqual(grant, { header: { ...HEADER, revision: rev() }, ID: '4242', TTL: '30' });
    await post('/v3/kv/put', { key: b64('leased'), value: b64('v'), lease: '4242' });
    const ttl = (await post('/v3/kv/lease/timetolive', { ID: '4242', keys: true })).json();
    assert.deepEqual([ttl.TTL, ttl.grantedTTL, ttl.keys], ['30', '30', [b64('leased')]]);
    assert.deepEqual((await post('/v3/lease/leases', {})).json().leases, [{ ID: '4242' }]);
    await post('/v3/kv/lease/revoke', { ID: '4242' });
    assert.equal((await post('/v3/lease/timetolive', { ID: '4242' })).json().TTL, '-1');
  });

  /** Reads newline-delimited JSON from a streamed response. */
  async function* lines(response: Response) {
    const reader = response.body!.getReader();
    let buffered = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += Buffer.from(value).toString();
      let newline;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        yield JSON.parse(buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
      }
    }
    if (buffered.trim() !== '') yield JSON.parse(buffered);
  }

  test('watch streams {"result": ...} lines; PUT types are omitted as defaults; closing cancels the watcher', async () => {
    const watchers = api.backend.store.watcherCount;
    const abort = new AbortController();
    const body = `${JSON.stringify({ create_request: { key: b64('w/'), range_end: b64('w0'), prev_kv: true } })}\n`;
    const response = await fetch(`${base}/v3/watch`, { method: 'POST', body, signal: abort.signal });
    assert.equal(response.status, 200);
    const stream = lines(response);
    const created = (await stream.next()).value;
    assert.deepEqual(created, { result: { header: { ...HEADER, revision: rev() }, created: true } });
    await post('/v3/kv/put', { key: b64('w/a'), value: b64('1') });
    const put = (await stream.next()).value.result;
    assert.deepEqual(put.events, [
      { kv: { key: b64('w/a'), create_revision: rev(), mod_revision: rev(), version: '1', value: b64('1') } },
    ]);
    await post('/v3/kv/deleterange', { key: b64('w/a') });
    const deleted = (await stream.next()).value.result;
    assert.equal(deleted.events[0].type, 'DELETE');
    assert.equal(text(deleted.events[0].prev_kv.value), '1');
    assert.equal(api.backend.store.watcherCount, watchers + 1);
    abort.abort();
    for (let i = 0; i < 100 && api.backend.store.watcherCount !== watchers; i++)
      await new Promise((r) => setTimeout(r, 10));
    assert.equal(api.backend.store.watcherCount, watchers);
  });

  test('watch requests may be concatenated in one body, as grpc-gateway decodes them', async () => {
    const abort = new AbortController();
    const body =
      JSON.stringify({ create_request: { key: b64('a') } }) +
      ' ' +
      JSON.stringify({ create_request: { key: b64('b'), watch_id: 7 } });
    const response = await fetch(`${base}/v3/watch`, { method: 'POST', body, signal: abort.signal });
    const stream = lines(response);
    assert.equal((await stream.next()).value.result.watch_id, undefined); // ID 0, a default
    assert.equal((await stream.next()).value.result.watch_id, '7');
    abort.abort();
  });

  test('lease keepalive answers each request, then ends with the body', async () => {
    await post('/v3/lease/grant', { TTL: 60, ID: 99 });
    const body = `${JSON.stringify({ ID: 99 })}${JSON.stringify({ ID: '100' })}`;
    const response = await fetch(`${base}/v3/lease/keepalive`, { method: 'POST', body });
    const results = [];
    for await (const line of lines(response)) results.push(line);
    assert.deepEqual(
      results.map((r) => [r.result.ID, r.result.TTL]),
      [
        ['99', '60'],
        ['100', undefined],
      ],
    );
  });

  test("a bad message mid-stream ends the stream with grpc-gateway's error chunk", async () => {
    let send!: (text: string) => void;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        send = (text) => controller.enqueue(Buffer.from(text));
      },
    });
    send(JSON.stringify({ create_request: { key: b64('a') } }));
    const response = await fetch(`${base}/v3/watch`, { method: 'POST', body, duplex: 'half' } as RequestInit);
    const stream = lines(response);
    assert.equal((await stream.next()).value.result.created, true);
    send('{"create_request":{"key":"!!"}}');
    assert.deepEqual((await stream.next()).value, {
      error: {
        grpc_code: 3,
        http_code: 400,
        message: 'json: illegal base64 data in field key',
        http_status: 'Bad Request',
      },
    });
    assert.equal((await stream.next()).done, true);
  });

  test('snapshot streams the blob in base64 with the SHA-256 last', async () => {
    const response = await fetch(`${base}/v3/maintenance/snapshot`, { method: 'POST', body: '{}' });
    const results = [];
    for await (const line of lines(response)) results.push(line.result);
    const blob = Buffer.concat(results.slice(0, -1).map((r) => Buffer.from(r.blob, 'base64')));
    assert.equal(blob.length % 512, 0);
    assert.equal(results.at(-1).remaining_bytes, undefined);
    assert.equal(results.at(-1).blob, createHash('sha256').update(blob).digest('base64'));
  });

  test('lock, unlock, campaign, leader, observe over HTTP', async () => {
    api.backend.store.leaseGrant(0x51, 60);
    const locked = (await post('/v3/lock/lock', { name: b64('L'), lease: 0x51 })).json();
    assert.equal(text(locked.key), 'L/51');
    assert.deepEqual((await post('/v3/lock/unlock', { key: locked.key })).json(), {
      header: { ...HEADER, revision: rev() },
    });
    const won = (
      await post('/v3/election/campaign', { name: b64('E'), lease: 0x51, value: b64('v1') })
    ).json();
    assert.equal(text(won.leader.key), 'E/51');
    const abort = new AbortController();
    const observe = lines(
      await fetch(`${base}/v3/election/observe`, {
        method: 'POST',
        body: JSON.stringify({ name: b64('E') }),
        signal: abort.signal,
      }),
    );
    assert.equal(text((await observe.next()).value.result.kv.value), 'v1');
    await post('/v3/election/proclaim', { leader: won.leader, value: b64('v2') });
    assert.equal(text((await observe.next()).value.result.kv.value), 'v2');
    abort.abort();
    assert.equal(text((await post('/v3/election/leader', { name: b64('E') })).json().kv.value), 'v2');
    const missing = await post('/v3/election/resign', {});
    assert.deepEqual([missing.status, missing.json().message], [500, '"leader" field must be provided']);
  });

  test('a body beyond the limit is refused with RESOURCE_EXHAUSTED', async () => {
    const huge = await post('/v3/kv/put', { key: b64('big'), value: 'A'.repeat(3 * 1024 * 1024) });
    assert.deepEqual([huge.status, huge.json().code], [429, 8]);
    assert.match(huge.json().message, /^tessera: gateway request body too large/);
    const tooLarge = await post('/v3/kv/put', {
      key: b64('big'),
      value: Buffer.alloc(1_600_000).toString('base64'),
    });
    assert.deepEqual([tooLarge.status, tooLarge.json().message], [400, 'etcdserver: request is too large']);
  });

  const curl = spawnSync('curl', ['--version']).status === 0;
  test(
    "curl -d with a base64 body, as etcd's documentation shows",
    { skip: !curl && 'SKIP: curl not installed' },
    async () => {
      const run = (args: string[]) =>
        new Promise<string>((resolve, reject) => {
          const child = spawn('curl', ['-s', ...args]);
          let out = '';
          child.stdout.on('data', (chunk) => (out += chunk));
          child.on('error', reject);
          child.on('close', () => resolve(out));
        });
      await run(['-L', `${base}/v3/kv/put`, '-X', 'POST', '-d', '{"key": "Zm9v", "value": "YmFy"}']);
      const got = JSON.parse(await run(['-L', `${base}/v3/kv/range`, '-X', 'POST', '-d', '{"key": "Zm9v"}']));
      assert.equal(text(got.kvs[0].value), 'bar');
    },
  );
});

describe('gateway without backends', { timeout: 30_000 }, () => {
  test('an absent service answers 501 with code 12; gateway: false serves gRPC only', async () => {
    const api = await startApi();
    try {
      const response = await fetch(`http://${api.address}/v3/maintenance/status`, {
        method: 'POST',
        body: '{}',
      });
      assert.equal(response.status, 501);
      assert.equal(((await response.json()) as any).code, 12);
    } finally {
      await api.stop();
    }
    const grpcOnly = await startApi(() => ({ gateway: false }));
    try {
      const response = await fetch(`http://${grpcOnly.address}/v3/kv/range`, { method: 'POST', body: '{}' });
      assert.equal(response.status, 404);
      const put = await grpcOnly.client.call('KV', 'put', { key: Buffer.from('k'), value: Buffer.from('v') });
      assert.ok(put.header);
    } finally {
      await grpcOnly.stop();
    }
  });
});
