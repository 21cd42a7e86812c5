// The HTTP/2 layer against node:http2 (nghttp2) as the peer on loopback: HPACK with Huffman and the
// dynamic table, flow control both ways, trailers, pause/resume, refused streams, malformed input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { encodeHeaderBlock, H2Connection, HPACK_STATIC_TABLE, HpackDecoder, HpackError, HeaderListTooLarge } from '../../src/http2/index.ts';
import type { H2ConnectionOptions, H2Stream } from '../../src/http2/index.ts';

async function withServer(
  onStream: (stream: H2Stream) => void,
  body: (port: number) => Promise<void>,
  options: Partial<H2ConnectionOptions> = {},
): Promise<void> {
  const connections = new Set<H2Connection>();
  const server = net.createServer((socket) => {
    const connection = new H2Connection(socket, { role: 'server', onStream, ...options });
    connections.add(connection);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await body((server.address() as net.AddressInfo).port);
  } finally {
    for (const connection of connections) connection.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** Echoes the request body back with trailers naming its size and a header from the request. */
function echo(stream: H2Stream): void {
  const chunks: Buffer[] = [];
  stream.onData = (chunk) => chunks.push(Buffer.from(chunk));
  stream.onEnd = () => {
    const body = Buffer.concat(chunks);
    stream.respond(encodeHeaderBlock([[':status', '200'], ['content-type', 'application/grpc'], ['x-echo', String(stream.headers['x-tag'] ?? '')]]));
    stream.write(body);
    stream.end(encodeHeaderBlock([['grpc-status', '0'], ['x-bytes', String(body.length)]]));
  };
}

function nodeRequest(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body: Buffer) {
  return new Promise<{ headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
    const request = session.request({ ':method': 'POST', ':path': '/echo', ...headers });
    const chunks: Buffer[] = [];
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    request.on('response', (h) => (responseHeaders = h));
    request.on('trailers', (t) => (trailers = t));
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => resolve({ headers: responseHeaders, trailers, body: Buffer.concat(chunks) }));
    request.on('error', reject);
    request.end(body);
  });
}

test('node:http2 clients get answers: headers through Huffman and the dynamic table, bodies past every window', async () => {
  await withServer(echo, async (port) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      for (let i = 0; i < 50; i++) {
        const tag = `tag-${i}-${'x'.repeat(i * 7)}`;
        const result = await nodeRequest(session, { 'x-tag': tag, 'user-agent': 'test/1.0' }, Buffer.from(`hello ${i}`));
        assert.equal(result.headers['x-echo'], tag);
        assert.equal(result.body.toString(), `hello ${i}`);
        assert.equal(result.trailers['x-bytes'], String(`hello ${i}`.length));
      }
      const big = randomBytes(5 * 1024 * 1024 + 123);
      const parallel = await Promise.all([0, 1, 2].map(() => nodeRequest(session, { 'x-tag': 'big' }, big)));
      for (const result of parallel) {
        assert.ok(result.body.equals(big));
        assert.equal(result.trailers['x-bytes'], String(big.length));
      }
    } finally {
      session.close();
    }
  });
});

test('the client side talks to a node:http2 server: trailers, a large response, many streams at once', async () => {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    const size = Number(headers['x-size'] ?? 0);
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'x-request-bytes': String(Buffer.concat(chunks).length) }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'done' }));
      stream.end(Buffer.alloc(size, 7));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const socket = net.connect(port, '127.0.0.1');
  const connection = new H2Connection(socket, { role: 'client' });
  const call = (size: number, body: Buffer) =>
    new Promise<{ status: string; trailers: Map<string, string>; bytes: number }>((resolve, reject) => {
      const stream = connection.request(
        encodeHeaderBlock([[':method', 'POST'], [':scheme', 'http'], [':path', '/x'], [':authority', 'localhost'], ['x-size', String(size)]]),
      );
      let bytes = 0;
      stream.onData = (chunk) => {
        bytes += chunk.length;
      };
      stream.onClose = (code) => {
        if (code !== 0) return reject(new Error(`stream closed with ${code}`));
        resolve({ status: String(stream.headers[':status']), trailers: new Map(stream.trailers ?? []), bytes });
      };
      stream.write(body);
      stream.end();
    });
  try {
    const small = await call(10, Buffer.from('abc'));
    assert.equal(small.status, '200');
    assert.equal(small.trailers.get('grpc-message'), 'done');
    assert.equal(small.bytes, 10);
    const large = await call(20 * 1024 * 1024, randomBytes(3 * 1024 * 1024));
    assert.equal(large.bytes, 20 * 1024 * 1024);
    const many = await Promise.all(Array.from({ length: 200 }, (_, i) => call(i * 100, Buffer.alloc(i))));
    many.forEach((result, i) => assert.equal(result.bytes, i * 100));
  } finally {
    connection.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('a paused stream holds data within its window and delivers all of it on resume', async () => {
  let paused: H2Stream | null = null;
  let received = 0;
  let ended = false;
  await withServer(
    (stream) => {
      paused = stream;
      stream.pause();
      stream.onData = (chunk) => (received += chunk.length);
      stream.onEnd = () => {
        ended = true;
        stream.respond(encodeHeaderBlock([[':status', '200']]));
        stream.end(encodeHeaderBlock([['grpc-status', '0']]));
      };
    },
    async (port) => {
      const session = http2.connect(`http://127.0.0.1:${port}`);
      try {
        const body = randomBytes(1024 * 1024);
        const done = nodeRequest(session, {}, body);
        await new Promise((resolve) => setTimeout(resolve, 300));
        assert.equal(received, 0, 'nothing is delivered while paused');
        assert.equal(ended, false);
        assert.ok(paused !== null);
        (paused as H2Stream).resume();
        await done;
        assert.equal(received, body.length);
        assert.equal(ended, true);
      } finally {
        session.close();
      }
    },
    { streamWindowBytes: 64 * 1024 },
  );
});

/** The frames a raw socket received until it closed or `until` saw what it wanted. */
function readFrames(socket: net.Socket, until: (frames: { type: number; flags: number; id: number; payload: Buffer }[]) => boolean) {
  return new Promise<{ type: number; flags: number; id: number; payload: Buffer }[]>((resolve) => {
    let bytes = Buffer.alloc(0);
    const frames: { type: number; flags: number; id: number; payload: Buffer }[] = [];
    const done = () => resolve(frames);
    socket.on('data', (chunk: Buffer) => {
      bytes = Buffer.concat([bytes, chunk]);
      while (bytes.length >= 9 && bytes.length >= 9 + bytes.readUIntBE(0, 3)) {
        const length = bytes.readUIntBE(0, 3);
        frames.push({ type: bytes[3], flags: bytes[4], id: bytes.readUInt32BE(5), payload: bytes.subarray(9, 9 + length) });
        bytes = bytes.subarray(9 + length);
      }
      if (until(frames)) done();
    });
    socket.on('close', done);
  });
}

function rawFrame(type: number, flags: number, id: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(id, 5);
  return Buffer.concat([header, payload]);
}

test('streams past SETTINGS_MAX_CONCURRENT_STREAMS are refused, and the connection goes on', async () => {
  const open: H2Stream[] = [];
  await withServer(
    (stream) => open.push(stream),
    async (port) => {
      const socket = net.connect(port, '127.0.0.1');
      try {
        const request = encodeHeaderBlock([[':method', 'POST'], [':scheme', 'http'], [':path', '/a'], [':authority', 'x']]);
        const frames = readFrames(socket, (seen) => seen.some((f) => f.type === 3));
        socket.write(
          Buffer.concat([
            Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
            rawFrame(4, 0, 0, Buffer.alloc(0)),
            rawFrame(1, 4, 1, request),
            rawFrame(1, 4, 3, request),
          ]),
        );
        const reset = (await frames).find((f) => f.type === 3);
        assert.ok(reset !== undefined, 'a RST_STREAM came back');
        assert.equal(reset.id, 3);
        assert.equal(reset.payload.readUInt32BE(0), http2.constants.NGHTTP2_REFUSED_STREAM);
        assert.equal(open.length, 1);
        assert.equal(open[0].id, 1);
      } finally {
        socket.destroy();
      }
    },
    { maxConcurrentStreams: 1 },
  );
});

test('malformed input closes that connection with GOAWAY and nothing else', async () => {
  let streams = 0;
  await withServer(
    (stream) => {
      streams++;
      echo(stream);
    },
    async (port) => {
      for (const garbage of [
        Buffer.from('PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n'),
        Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 4, 1, 5, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff])]),
        Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0])]),
      ]) {
        const socket = net.connect(port, '127.0.0.1');
        const received: Buffer[] = [];
        socket.on('data', (chunk: Buffer) => received.push(chunk));
        socket.write(garbage);
        await new Promise<void>((resolve) => socket.on('close', () => resolve()));
        const bytes = Buffer.concat(received);
        let at = 0;
        let sawGoaway = false;
        while (at + 9 <= bytes.length) {
          const length = bytes.readUIntBE(at, 3);
          if (bytes[at + 3] === 7) sawGoaway = true;
          at += 9 + length;
        }
        assert.ok(sawGoaway, 'the server says GOAWAY before closing');
      }
      const session = http2.connect(`http://127.0.0.1:${port}`);
      try {
        const result = await nodeRequest(session, {}, Buffer.from('still up'));
        assert.equal(result.body.toString(), 'still up');
        assert.equal(streams, 1);
      } finally {
        session.close();
      }
    },
  );
});

test('HPACK: the static table matches hpack.js, and random blocks fail only with HPACK errors', () => {
  const require = createRequire(import.meta.url);
  const reference = (require('hpack.js/lib/hpack/static-table.js') as { table: { name: string; value: string }[] }).table;
  assert.equal(HPACK_STATIC_TABLE.length, 61);
  HPACK_STATIC_TABLE.forEach(([name, value], i) => {
    assert.equal(reference[i].name, name);
    assert.equal(reference[i].value, value);
  });
  const decoder = new HpackDecoder();
  for (let i = 0; i < 5000; i++) {
    try {
      decoder.decode(randomBytes(1 + (i % 40)), 1 << 20);
    } catch (error) {
      assert.ok(error instanceof HpackError || error instanceof HeaderListTooLarge, String(error));
    }
  }
  const fresh = new HpackDecoder();
  const block = encodeHeaderBlock([[':status', '200'], ['content-type', 'application/grpc'], ['grpc-status', '0'], ['x-long', 'y'.repeat(300)]]);
  assert.deepEqual(fresh.decode(block, 1 << 20), [[':status', '200'], ['content-type', 'application/grpc'], ['grpc-status', '0'], ['x-long', 'y'.repeat(300)]]);
  assert.throws(() => fresh.decode(block, 100), HeaderListTooLarge);
});

test('a server that ends a paused stream whose client already ended closes it (no stream is left behind)', async () => {
  let closedWith: number | null = null;
  let server: H2Connection | null = null;
  await withServer(
    (stream) => {
      server = stream.connection;
      stream.pause();
      stream.onClose = (code) => (closedWith = code);
      setTimeout(() => {
        stream.respond(encodeHeaderBlock([[':status', '200']]));
        stream.end(encodeHeaderBlock([['grpc-status', '0']]));
      }, 100);
    },
    async (port) => {
      const session = http2.connect(`http://127.0.0.1:${port}`);
      try {
        await nodeRequest(session, {}, Buffer.from('never read'));
        assert.equal(closedWith, 0);
        assert.equal((server as H2Connection | null)?.streamCount, 0);
      } finally {
        session.close();
      }
    },
  );
});

test('a write callback that writes again keeps the order and the peer window (a small window)', async () => {
  await withServer(
    (stream) => {
      stream.onEnd = () => {
        stream.respond(encodeHeaderBlock([[':status', '200']]));
        let next = 0;
        const writeNext = (): void => {
          if (next === 20) return stream.end(encodeHeaderBlock([['grpc-status', '0']]));
          const chunk = Buffer.alloc(3000, next++);
          stream.write(chunk, writeNext);
        };
        writeNext();
      };
    },
    async (port) => {
      const session = http2.connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: 5000 } });
      try {
        const result = await nodeRequest(session, {}, Buffer.alloc(0));
        assert.equal(result.body.length, 60_000);
        for (let i = 0; i < 20; i++) assert.ok(result.body.subarray(i * 3000, (i + 1) * 3000).every((b) => b === i), `chunk ${i} in place`);
      } finally {
        session.close();
      }
    },
  );
});

test('an answer given while the request ends sends no RST_STREAM; header maps have no prototype; a zero header table works', async () => {
  let seen: unknown = null;
  await withServer(
    (stream) => {
      seen = stream.headers['constructor'];
      stream.onData = () => {
        stream.respond(encodeHeaderBlock([[':status', '200']]));
        stream.end(encodeHeaderBlock([['grpc-status', '0']]));
      };
    },
    async (port) => {
      const socket = net.connect(port, '127.0.0.1');
      try {
        const request = encodeHeaderBlock([[':method', 'POST'], [':scheme', 'http'], [':path', '/a'], [':authority', 'x'], ['constructor', 'c']]);
        const frames = readFrames(socket, (all) => all.some((f) => f.type === 1 && f.id === 1 && (f.flags & 1) === 1));
        socket.write(
          Buffer.concat([
            Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
            rawFrame(4, 0, 0, Buffer.alloc(0)),
            rawFrame(1, 4, 1, request),
            rawFrame(0, 1, 1, Buffer.from('x')),
          ]),
        );
        const received = await frames;
        await new Promise((resolve) => setTimeout(resolve, 50));
        assert.equal(seen, 'c');
        assert.ok(!received.some((f) => f.type === 3), 'no RST_STREAM');
      } finally {
        socket.destroy();
      }
      const session = http2.connect(`http://127.0.0.1:${port}`, { settings: { headerTableSize: 0 } });
      try {
        for (let i = 0; i < 3; i++) assert.equal((await nodeRequest(session, {}, Buffer.from('z'))).headers[':status'], 200);
      } finally {
        session.close();
      }
    },
  );
});

test('random frames never throw out of the connection, and the server keeps serving', async () => {
  const errors: Error[] = [];
  const connectionErrors: Error[] = [];
  const uncaught = (error: Error): void => {
    errors.push(error);
  };
  process.on('uncaughtException', uncaught);
  try {
    await withServer(
      (stream) => {
        if (stream.id % 4 === 1) stream.pause();
        echo(stream);
        setTimeout(() => stream.resume(), 5);
      },
      async (port) => {
        let seed = 7;
        const random = (n: number): number => {
          seed = (seed * 1103515245 + 12345) % 2 ** 31;
          return seed % n;
        };
        const block = encodeHeaderBlock([[':method', 'POST'], [':scheme', 'http'], [':path', '/a'], [':authority', 'x'], ['x-tag', 'fuzz']]);
        for (let connection = 0; connection < 60; connection++) {
          const frames: Buffer[] = [Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), rawFrame(4, 0, 0, Buffer.alloc(0))];
          for (let i = 0; i < 40; i++) {
            const type = random(11);
            const flags = random(256);
            const id = random(4) === 0 ? 0 : 1 + random(12);
            let payload: Buffer;
            if (type === 1 && random(2) === 0) payload = block;
            else if (type === 8 || type === 3) payload = Buffer.alloc(4, random(256));
            else if (type === 4) payload = Buffer.alloc(6 * random(3), random(256));
            else payload = randomBytes(random(64));
            frames.push(rawFrame(type, flags, id, payload));
          }
          const socket = net.connect(port, '127.0.0.1');
          socket.on('error', () => {});
          socket.on('data', () => {});
          socket.write(Buffer.concat(frames));
          await new Promise((resolve) => setTimeout(resolve, 10));
          socket.destroy();
        }
        const session = http2.connect(`http://127.0.0.1:${port}`);
        try {
          const result = await nodeRequest(session, { 'x-tag': 'after' }, Buffer.from('still serving'));
          assert.equal(result.body.toString(), 'still serving');
          assert.equal(result.headers['x-echo'], 'after');
        } finally {
          session.close();
        }
      },
      { onError: (error) => connectionErrors.push(error) },
    );
  } finally {
    process.off('uncaughtException', uncaught);
  }
  assert.deepEqual(errors, []);
  // Every connection the fuzz closed was closed for a protocol reason, never for a bug of ours
  // (an exception inside the layer becomes INTERNAL_ERROR).
  assert.ok(connectionErrors.length > 0, 'the fuzz broke some connections');
  for (const error of connectionErrors) {
    const code = (error as Error & { code?: unknown }).code;
    if (typeof code === 'number') assert.notEqual(code, 2, `INTERNAL_ERROR: ${error.message}`);
  }
});

test('a request whose header list passes the bound reaches the owner flagged, without its headers', async () => {
  let seen: H2Stream | null = null;
  await withServer(
    (stream) => {
      seen = stream;
      stream.respond(encodeHeaderBlock([[':status', '200']]), true);
    },
    async (port) => {
      const socket = net.connect(port, '127.0.0.1');
      try {
        const block = encodeHeaderBlock([[':method', 'POST'], [':scheme', 'http'], [':path', '/a'], [':authority', 'x'], ['x-big', 'b'.repeat(300 * 1024)]]);
        const parts: Buffer[] = [];
        for (let at = 0; at < block.length; at += 16_384) {
          const last = at + 16_384 >= block.length;
          parts.push(rawFrame(at === 0 ? 1 : 9, (at === 0 ? 1 : 0) | (last ? 4 : 0), 1, block.subarray(at, at + 16_384)));
        }
        const frames = readFrames(socket, (all) => all.some((f) => f.type === 1 && f.id === 1));
        socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), rawFrame(4, 0, 0, Buffer.alloc(0)), ...parts]));
        await frames;
        const stream = seen as H2Stream | null;
        assert.ok(stream !== null);
        assert.match(String(stream.headerListTooLarge), /header list of \d+ bytes exceeds 262144/);
        assert.equal(stream.headers[':path'], undefined);
      } finally {
        socket.destroy();
      }
    },
  );
});

test('one open stream gets its answer written at once; with several, answers wait for the loop iteration and share a write', async () => {
  const log: string[] = [];
  const pair: H2Stream[] = [];
  const answer = (stream: H2Stream) => {
    stream.respond(encodeHeaderBlock([[':status', '200']]));
    stream.end(encodeHeaderBlock([['grpc-status', '0']]));
    log.push(`answered ${String(stream.headers['x-id'])}`);
  };
  const server = net.createServer((socket) => {
    const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
    socket.write = ((...args: unknown[]) => {
      log.push('write');
      return write(...args);
    }) as typeof socket.write;
    new H2Connection(socket, {
      role: 'server',
      onStream: (stream) => {
        stream.onEnd = () => {
          if (stream.headers['x-id'] === 'lone') {
            answer(stream);
            queueMicrotask(() => log.push('promise jobs'));
            return;
          }
          // Both of the pair open: answer them from two callbacks of the same loop iteration.
          pair.push(stream);
          if (pair.length === 2) for (const s of pair) setImmediate(() => answer(s));
        };
      },
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const session = http2.connect(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`);
  try {
    await nodeRequest(session, { 'x-id': 'lone' }, Buffer.alloc(0));
    const lone = log.slice(log.indexOf('answered lone'));
    assert.deepEqual(lone.slice(0, 3), ['answered lone', 'write', 'promise jobs'], `the lone answer is written before anything else runs: ${lone.join(', ')}`);

    log.length = 0;
    await Promise.all([nodeRequest(session, { 'x-id': 'pair' }, Buffer.alloc(0)), nodeRequest(session, { 'x-id': 'pair' }, Buffer.alloc(0))]);
    assert.deepEqual(log, ['answered pair', 'answered pair', 'write'], 'with two streams open, both answers leave in one write');
  } finally {
    session.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('a write is released only once the socket no longer reads it: overwriting it then corrupts nothing', async () => {
  const answerBytes = 900 * 1024; // within the stream window, far beyond what a paused reader's socket takes at once
  const server = net.createServer((socket) => {
    new H2Connection(socket, {
      role: 'server',
      onStream: (stream) => {
        stream.onEnd = () => {
          const body = Buffer.alloc(answerBytes, 0x5a);
          stream.respond(encodeHeaderBlock([[':status', '200']]));
          stream.write(body, undefined, () => body.fill(0)); // what a writer reusing its buffer does
          stream.end(encodeHeaderBlock([['grpc-status', '0']]));
        };
      },
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  const client = new H2Connection(socket, { role: 'client' });
  try {
    const body = await new Promise<Buffer>((resolve, reject) => {
      const stream = client.request(encodeHeaderBlock([[':method', 'POST'], [':scheme', 'http'], [':path', '/x'], [':authority', 'localhost']]));
      const chunks: Buffer[] = [];
      stream.onData = (chunk) => chunks.push(Buffer.from(chunk));
      stream.onClose = (code) => (code === 0 ? resolve(Buffer.concat(chunks)) : reject(new Error(`closed with ${code}`)));
      stream.end();
      // Stop reading while the answer is written, so the server's socket keeps part of it queued.
      setTimeout(() => socket.pause(), 5);
      setTimeout(() => socket.resume(), 300);
    });
    assert.equal(body.length, answerBytes);
    assert.ok(body.equals(Buffer.alloc(answerBytes, 0x5a)), 'the answer arrived intact');
  } finally {
    client.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
