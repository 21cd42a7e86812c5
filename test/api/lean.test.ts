// The lean gRPC server (src/api/lean-server.ts) at the HTTP/2 level, with a raw node:http2 client:
// deadlines it enforces itself, oversized and malformed messages, compression, clients that vanish
// mid-call, many concurrent streams, HTTP/2 flow control holding back a big Range and a Watch
// stream, GOAWAY on stop. The service behaviour itself is covered by the other API tests, which run
// against the lean server with TESSERA_GRPC_SERVER=lean.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { gzipSync } from 'node:zlib';
import { pino } from 'pino';
import { ApiServer } from '../../src/api/index.ts';
import type { ApiServerOptions, HeaderInfo, KvBackend } from '../../src/api/index.ts';
import { decodeGrpcMessage, frameMessage, MessageDeframer } from '../../src/http2/index.ts';
import { resolveGrpcServerKind } from '../../src/api/lean-server.ts';
import type { RangeResponse } from '../../src/mvcc/index.ts';
import { EtcdError, GrpcCode } from '../../src/util/index.ts';
import { StoreBackend, TEST_HEADER } from './backends.ts';
import { EtcdClient, callError } from './client.ts';
import { StoreWatch } from './fakes.ts';

const b = (s: string) => Buffer.from(s);
const RANGE = '/etcdserverpb.KV/Range';
const PUT = '/etcdserverpb.KV/Put';
const WATCH = '/etcdserverpb.Watch/Watch';
const client = new EtcdClient('127.0.0.1:1');
const kv = client.service('KV');
const watchMethods = client.service('Watch').watch;
const encodeRange = (request: object) => kv.range.requestSerialize(request) as Buffer;
const decodeRange = (bytes: Buffer) => kv.range.responseDeserialize(bytes);
const encodePut = (request: object) => kv.put.requestSerialize(request) as Buffer;
const encodeWatch = (request: object) => watchMethods.requestSerialize(request) as Buffer;
const decodeWatch = (bytes: Buffer) => watchMethods.responseDeserialize(bytes);

async function startLean(extra: Partial<ApiServerOptions> = {}, backend: KvBackend = new StoreBackend()) {
  const server = new ApiServer({ backend, host: '127.0.0.1', port: 0, logger: pino({ level: 'silent' }), grpcServer: 'lean', ...extra });
  const port = await server.start();
  return { server, port, backend };
}

function connect(port: number, settings: http2.Settings = {}): http2.ClientHttp2Session {
  const session = http2.connect(`http://127.0.0.1:${port}`, { settings });
  session.on('error', () => {});
  return session;
}

interface RawCall {
  stream: http2.ClientHttp2Stream;
  /** Resolves when the stream closes: the status (trailers or trailers-only headers) and every message. */
  done: Promise<{ httpStatus: number; code: number | null; message: string; messages: Buffer[]; rstCode: number }>;
  messages: Buffer[];
}

/** One gRPC call over a raw HTTP/2 stream; `body` frames are written as they are (the test decides the framing). */
function rawCall(
  session: http2.ClientHttp2Session,
  path: string,
  body: Buffer[],
  options: { headers?: http2.OutgoingHttpHeaders; end?: boolean } = {},
): RawCall {
  const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...options.headers });
  const messages: Buffer[] = [];
  const deframer = new MessageDeframer(256 * 1024 * 1024);
  let httpStatus = 0;
  let code: number | null = null;
  let message = '';
  const status = (headers: http2.IncomingHttpHeaders) => {
    if (headers['grpc-status'] !== undefined) code = Number(headers['grpc-status']);
    if (typeof headers['grpc-message'] === 'string') message = decodeGrpcMessage(headers['grpc-message']);
  };
  stream.on('response', (headers) => {
    httpStatus = Number(headers[':status']);
    status(headers);
  });
  stream.on('trailers', (headers) => {
    status(headers);
    if (!stream.writableEnded) stream.close(); // as grpc clients do once they have the status
  });
  stream.on('data', (chunk: Buffer) => {
    if (httpStatus === 200) deframer.push(chunk, (m) => messages.push(Buffer.from(m)));
  });
  stream.on('error', () => {});
  const done = new Promise<Awaited<RawCall['done']>>((resolve) =>
    stream.on('close', () => resolve({ httpStatus, code, message, messages, rstCode: stream.rstCode ?? 0 })),
  );
  for (const chunk of body) stream.write(chunk);
  if (options.end ?? true) stream.end();
  return { stream, done, messages };
}

const waitFor = async (what: string, condition: () => boolean, timeoutMs = 5_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

/** A backend whose reads never answer (for deadlines). */
class HangingBackend implements KvBackend {
  header(): HeaderInfo {
    return TEST_HEADER;
  }
  private never<T>(): Promise<T> {
    return new Promise(() => {});
  }
  range = () => this.never<RangeResponse>();
  put = () => this.never<Awaited<ReturnType<KvBackend['put']>>>();
  deleteRange = () => this.never<Awaited<ReturnType<KvBackend['deleteRange']>>>();
  txn = () => this.never<Awaited<ReturnType<KvBackend['txn']>>>();
  compact = () => this.never<Awaited<ReturnType<KvBackend['compact']>>>();
}

describe('lean gRPC server', { timeout: 60_000 }, () => {
  let started: Awaited<ReturnType<typeof startLean>>;
  let store: StoreBackend;
  let watch: StoreWatch;
  let session: http2.ClientHttp2Session;
  before(async () => {
    store = new StoreBackend();
    watch = new StoreWatch(store.store);
    started = await startLean({ watch }, store);
    session = connect(started.port);
  });
  after(async () => {
    session.destroy();
    await started.server.stop();
  });

  test('TESSERA_GRPC_SERVER picks the server when the option does not; bad values are refused', () => {
    assert.equal(resolveGrpcServerKind(undefined, { TESSERA_GRPC_SERVER: 'lean' }), 'lean');
    assert.equal(resolveGrpcServerKind('grpc-js', { TESSERA_GRPC_SERVER: 'lean' }), 'grpc-js');
    assert.equal(resolveGrpcServerKind(undefined, {}), 'lean');
    assert.throws(() => resolveGrpcServerKind(undefined, { TESSERA_GRPC_SERVER: 'grpc' }), /must be one of/);
  });

  test('a unary call: :status 200, application/grpc, one message, grpc-status 0 in trailers', async () => {
    await store.put({ key: b('u'), value: b('v'), lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false } as never);
    const call = rawCall(session, RANGE, [frameMessage(encodeRange({ key: b('u') }))]);
    let contentType: unknown;
    call.stream.on('response', (headers) => (contentType = headers['content-type']));
    const result = await call.done;
    assert.equal(result.httpStatus, 200);
    assert.equal(contentType, 'application/grpc');
    assert.equal(result.code, GrpcCode.OK);
    assert.equal(result.messages.length, 1);
    assert.equal(Buffer.from(decodeRange(result.messages[0]).kvs[0].value).toString(), 'v');
  });

  test('the server enforces grpc-timeout itself: DEADLINE_EXCEEDED for a call the backend never answers', async () => {
    const hanging = await startLean({}, new HangingBackend());
    const own = connect(hanging.port);
    try {
      const startedAt = Date.now();
      const result = await rawCall(own, RANGE, [frameMessage(encodeRange({ key: b('k') }))], { headers: { 'grpc-timeout': '150m' } }).done;
      assert.equal(result.code, GrpcCode.DEADLINE_EXCEEDED);
      assert.ok(Date.now() - startedAt >= 140, 'not before the deadline');
      // A far deadline (>= 1 s) waits in a shared slot: not early, at most a slot late.
      const farStart = performance.now();
      const far = await rawCall(own, RANGE, [frameMessage(encodeRange({ key: b('k') }))], { headers: { 'grpc-timeout': '1100m' } }).done;
      const farMs = performance.now() - farStart;
      assert.equal(far.code, GrpcCode.DEADLINE_EXCEEDED);
      assert.ok(farMs >= 1090 && farMs < 1600, `far deadline fired after ${farMs} ms`);
      const malformed = await rawCall(own, RANGE, [frameMessage(encodeRange({ key: b('k') }))], { headers: { 'grpc-timeout': '12x' } }).done;
      assert.equal(malformed.code, GrpcCode.INTERNAL);
    } finally {
      own.destroy();
      await hanging.server.stop();
    }
  });

  test('a Watch stream past its deadline ends DEADLINE_EXCEEDED and its watcher is canceled', async () => {
    const before = store.store.watcherCount;
    const call = rawCall(session, WATCH, [frameMessage(encodeWatch({ createRequest: { key: b('dl') } }))], {
      headers: { 'grpc-timeout': '200m' },
      end: false,
    });
    await waitFor('created', () => call.messages.length > 0);
    assert.equal(store.store.watcherCount, before + 1);
    const result = await call.done;
    assert.equal(result.code, GrpcCode.DEADLINE_EXCEEDED);
    await waitFor('watcher canceled', () => store.store.watcherCount === before);
  });

  test('a message past max request bytes + 512 KiB is RESOURCE_EXHAUSTED from its prefix; the connection keeps serving', async () => {
    const max = 1_572_864 + 512 * 1024;
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(max + 1, 1);
    const result = await rawCall(session, PUT, [prefix, Buffer.alloc(64 * 1024)], { end: false }).done;
    assert.equal(result.code, GrpcCode.RESOURCE_EXHAUSTED);
    assert.equal(result.message, `grpc: received message larger than max (${max + 1} vs. ${max})`);
    const ok = await rawCall(session, RANGE, [frameMessage(encodeRange({ key: b('u') }))]).done;
    assert.equal(ok.code, GrpcCode.OK);
  });

  test('malformed framing and headers get grpc-go\'s answers, never a crash', async () => {
    const put = encodePut({ key: b('k'), value: b('v') });
    const bad = (flag: number) => Buffer.concat([Buffer.from([flag, 0, 0, 0, put.length]), put]);
    const cases: [string, RawCall, number][] = [
      ['compressed flag 2', rawCall(session, PUT, [bad(2)]), GrpcCode.INTERNAL],
      ['compressed without grpc-encoding', rawCall(session, PUT, [bad(1)]), GrpcCode.INTERNAL],
      ['unknown grpc-encoding', rawCall(session, PUT, [frameMessage(put)], { headers: { 'grpc-encoding': 'snappy' } }), GrpcCode.UNIMPLEMENTED],
      ['message cut by END_STREAM', rawCall(session, PUT, [frameMessage(put).subarray(0, 8)]), GrpcCode.INTERNAL],
      ['no message at all', rawCall(session, PUT, []), GrpcCode.INTERNAL],
      ['not protobuf', rawCall(session, PUT, [frameMessage(b('\xff\xff\xff garbage'))]), GrpcCode.INTERNAL],
      ['unknown method', rawCall(session, '/etcdserverpb.KV/Nope', [frameMessage(put)]), GrpcCode.UNIMPLEMENTED],
      ['unknown service', rawCall(session, '/etcdserverpb.Auth/Authenticate', [frameMessage(put)]), GrpcCode.UNIMPLEMENTED],
    ];
    for (const [name, call, code] of cases) assert.equal((await call.done).code, code, name);
    assert.equal((await cases[6][1].done).message, 'unknown method Nope for service etcdserverpb.KV');
    assert.equal((await cases[7][1].done).message, 'unknown service etcdserverpb.Auth');
    const json = await rawCall(session, PUT, [b('{}')], { headers: { 'content-type': 'application/json' } }).done;
    assert.equal(json.httpStatus, 415);
    assert.equal(store.value('k'), null, 'nothing malformed reached the store');
  });

  test('gzip and deflate requests are decompressed; a decompression bomb is RESOURCE_EXHAUSTED', async () => {
    const put = encodePut({ key: b('gz'), value: b('zipped') });
    const gz = gzipSync(put);
    const framed = Buffer.concat([Buffer.from([1, 0, 0, 0, 0]), gz]);
    framed.writeUInt32BE(gz.length, 1);
    const result = await rawCall(session, PUT, [framed], { headers: { 'grpc-encoding': 'gzip' } }).done;
    assert.equal(result.code, GrpcCode.OK);
    assert.equal(store.value('gz'), 'zipped');
    const bomb = gzipSync(encodePut({ key: b('bomb'), value: Buffer.alloc(3 * 1024 * 1024) }));
    const framedBomb = Buffer.concat([Buffer.from([1, 0, 0, 0, 0]), bomb]);
    framedBomb.writeUInt32BE(bomb.length, 1);
    const refused = await rawCall(session, PUT, [framedBomb], { headers: { 'grpc-encoding': 'gzip' } }).done;
    assert.equal(refused.code, GrpcCode.RESOURCE_EXHAUSTED);
    assert.equal(store.value('bomb'), null);
  });

  test('grpc-message is percent-encoded: a grpc-js client reads the exact text', async () => {
    const text = 'etcdserver: 100% naïve\nsecond line';
    store.failNext(new EtcdError(GrpcCode.FAILED_PRECONDITION, text));
    const grpcClient = new EtcdClient(`127.0.0.1:${started.port}`);
    try {
      const error = await callError(grpcClient.call('KV', 'range', { key: b('x') }));
      assert.equal(error.code, GrpcCode.FAILED_PRECONDITION);
      assert.equal(error.details, text);
    } finally {
      grpcClient.close();
    }
  });

  test('garbage after the HTTP/2 preface closes that connection only', async () => {
    const socket = net.connect(started.port, '127.0.0.1');
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    socket.write(Buffer.alloc(64, 0xee));
    socket.resume(); // read the server's SETTINGS and GOAWAY, then its end
    await new Promise((resolve) => socket.once('close', resolve));
    const ok = await rawCall(session, RANGE, [frameMessage(encodeRange({ key: b('u') }))]).done;
    assert.equal(ok.code, GrpcCode.OK);
  });

  test('a client that disappears mid-stream or mid-message leaves nothing behind', async () => {
    const before = store.store.watcherCount;
    const socket = net.connect(started.port, '127.0.0.1');
    socket.on('error', () => {});
    const gone = http2.connect(`http://127.0.0.1:${started.port}`, { createConnection: () => socket });
    gone.on('error', () => {});
    const calls = Array.from({ length: 5 }, () =>
      rawCall(gone, WATCH, [frameMessage(encodeWatch({ createRequest: { key: b('gone'), prevKv: true } }))], { end: false }),
    );
    await waitFor('watchers created', () => calls.every((c) => c.messages.length > 0));
    assert.equal(store.store.watcherCount, before + 5);
    const half = frameMessage(encodePut({ key: b('half'), value: Buffer.alloc(10_000) }));
    rawCall(gone, PUT, [half.subarray(0, 5_000)], { end: false });
    await new Promise((r) => setTimeout(r, 20));
    socket.destroy(); // no GOAWAY, no RST_STREAM: the client just vanishes
    await waitFor('watchers canceled', () => store.store.watcherCount === before);
    assert.equal(store.value('half'), null);
    const ok = await rawCall(session, RANGE, [frameMessage(encodeRange({ key: b('u') }))]).done;
    assert.equal(ok.code, GrpcCode.OK);
  });

  test('1000 concurrent unary calls and 100 watch streams on one connection', async () => {
    const streams = Array.from({ length: 100 }, () =>
      rawCall(session, WATCH, [frameMessage(encodeWatch({ createRequest: { key: b('many') } }))], { end: false }),
    );
    const calls = Array.from({ length: 1000 }, (_, i) =>
      rawCall(session, PUT, [frameMessage(encodePut({ key: b(`c/${i}`), value: b(String(i)) }))]).done,
    );
    const results = await Promise.all(calls);
    assert.ok(results.every((r) => r.code === GrpcCode.OK));
    assert.equal(store.value('c/999'), '999');
    await waitFor('watchers created', () => streams.every((s) => s.messages.length > 0));
    await store.put({ key: b('many'), value: b('x'), lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false } as never);
    await waitFor('every stream sees the event', () => streams.every((s) => s.messages.length === 2));
    for (const s of streams) assert.equal(decodeWatch(s.messages[1]).events[0].kv.value.toString(), 'x');
    for (const s of streams) s.stream.close(http2.constants.NGHTTP2_CANCEL);
  });

  test('flow control: a big Range waits for a client that does not read, and others go on meanwhile', async () => {
    const value = Buffer.alloc(64 * 1024, 7);
    for (let i = 0; i < 160; i++) {
      store.store.put({ key: b(`big/${String(i).padStart(3, '0')}`), value, lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false });
    }
    const slow = connect(started.port);
    try {
      const stream = slow.request({ ':method': 'POST', ':path': RANGE, 'content-type': 'application/grpc' });
      stream.on('error', () => {});
      stream.end(frameMessage(encodeRange({ key: b('big/'), rangeEnd: b('big0') })));
      stream.pause(); // not flowing: Node stops granting window once its buffer is full
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(stream.readableLength < 1024 * 1024, `the server sent ${stream.readableLength} bytes into a ~64 KiB window`);
      const other = await rawCall(slow, RANGE, [frameMessage(encodeRange({ key: b('u') }))]).done;
      assert.equal(other.code, GrpcCode.OK, 'the connection is not blocked by the stalled stream');
      const chunks: Buffer[] = [];
      const closed = new Promise((resolve) => stream.on('close', resolve));
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.resume();
      await closed;
      const all = Buffer.concat(chunks);
      assert.equal(all.readUInt32BE(1), all.length - 5);
      const response = decodeRange(all.subarray(5));
      assert.equal(response.kvs.length, 160);
      assert.ok(response.kvs.every((item: { value: Buffer }) => item.value.equals(value)));
    } finally {
      slow.destroy();
    }
  });

  test('flow control: a Watch stream whose client stops reading pauses its watcher; nothing is lost', async () => {
    const slow = connect(started.port);
    try {
      const stream = slow.request({ ':method': 'POST', ':path': WATCH, 'content-type': 'application/grpc' });
      stream.on('error', () => {});
      stream.write(frameMessage(encodeWatch({ createRequest: { key: b('fc/'), rangeEnd: b('fc0') } })));
      stream.pause();
      const pausesBefore = watch.pauses;
      await new Promise((r) => setTimeout(r, 50));
      const value = Buffer.alloc(16 * 1024, 1);
      const first = store.store.currentRevision + 1;
      for (let i = 0; i < 400; i++) {
        store.store.put({ key: b(`fc/${i}`), value, lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false });
      }
      await new Promise((r) => setTimeout(r, 200));
      assert.ok(watch.pauses > pausesBefore, 'the watcher was paused while the client did not read');
      assert.ok(stream.readableLength < 2 * 1024 * 1024, `${stream.readableLength} bytes sent into a stalled stream`);
      const revisions: number[] = [];
      const deframer = new MessageDeframer(64 * 1024 * 1024);
      stream.on('data', (chunk: Buffer) =>
        deframer.push(chunk, (message) => {
          for (const event of decodeWatch(message).events) revisions.push(Number(event.kv.modRevision));
        }),
      );
      stream.resume();
      await waitFor('every event', () => revisions.length === 400, 10_000);
      assert.deepEqual(revisions, Array.from({ length: 400 }, (_, i) => first + i));
      stream.close(http2.constants.NGHTTP2_CANCEL);
    } finally {
      slow.destroy();
    }
  });
});

describe('lean gRPC server shutdown', { timeout: 30_000 }, () => {
  test('stop sends GOAWAY, lets an in-flight call finish, and refuses new connections', async () => {
    let release!: () => void;
    const store = new StoreBackend();
    const slowRange = store.range.bind(store);
    store.range = async (req) => {
      await new Promise<void>((resolve) => (release = resolve));
      return slowRange(req);
    };
    const { server, port } = await startLean({}, store);
    const session = connect(port);
    let goaway = false;
    session.on('goaway', () => (goaway = true));
    const inflight = rawCall(session, RANGE, [frameMessage(encodeRange({ key: b('k') }))]);
    await waitFor('call at the backend', () => release !== undefined);
    const stopping = server.stop();
    await waitFor('GOAWAY', () => goaway);
    release();
    const result = await inflight.done;
    assert.equal(result.code, GrpcCode.OK);
    await stopping;
    const refused = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => resolve(true));
      socket.on('connect', () => {
        socket.destroy();
        resolve(false);
      });
    });
    assert.ok(refused, 'the port is closed');
    session.destroy();
  });

  test('HTTP/2 PING is answered', async () => {
    const { server, port } = await startLean();
    const session = connect(port);
    try {
      await new Promise((resolve) => session.once('connect', resolve));
      const error = await new Promise<unknown>((resolve) => session.ping((e) => resolve(e)));
      assert.equal(error, null);
    } finally {
      session.destroy();
      await server.stop();
    }
  });
});
