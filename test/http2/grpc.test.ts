// gRPC-over-HTTP/2 helpers (src/http2/grpc.ts): message framing across arbitrary chunk
// boundaries, size and flag checks from the prefix, grpc-timeout, grpc-message escaping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeGrpcMessage,
  encodeGrpcMessage,
  formatGrpcTimeout,
  frameMessage,
  GrpcWireError,
  isGrpcContentType,
  MessageDeframer,
  parseGrpcTimeout,
} from '../../src/http2/index.ts';
import { GrpcCode } from '../../src/util/index.ts';

test('messages split at every possible chunk boundary come out whole and in order', () => {
  const messages = [Buffer.alloc(0), Buffer.from('a'), Buffer.alloc(300, 7), Buffer.from('last message')];
  const stream = Buffer.concat(messages.map(frameMessage));
  for (let size = 1; size <= stream.length; size++) {
    const deframer = new MessageDeframer(1024);
    const out: Buffer[] = [];
    for (let offset = 0; offset < stream.length; offset += size) {
      deframer.push(stream.subarray(offset, offset + size), (message, compressed) => {
        assert.equal(compressed, false);
        out.push(Buffer.from(message));
      });
    }
    assert.deepEqual(out, messages, `chunks of ${size}`);
    assert.ok(deframer.idle);
  }
});

test('a partial message leaves the deframer busy', () => {
  const deframer = new MessageDeframer(1024);
  deframer.push(frameMessage(Buffer.alloc(10)).subarray(0, 7), () => assert.fail('not whole yet'));
  assert.equal(deframer.idle, false);
});

test('oversized messages are refused from the prefix; unknown flags are INTERNAL', () => {
  const prefix = Buffer.from([0, 0, 0, 4, 1]); // 1025 bytes announced
  assert.throws(
    () => new MessageDeframer(1024).push(prefix, () => {}),
    (error: unknown) => error instanceof GrpcWireError && error.code === GrpcCode.RESOURCE_EXHAUSTED && /1025 vs\. 1024/.test(error.message),
  );
  assert.throws(
    () => new MessageDeframer(1024).push(Buffer.from([2, 0, 0, 0, 0]), () => {}),
    (error: unknown) => error instanceof GrpcWireError && error.code === GrpcCode.INTERNAL,
  );
  let compressed = false;
  new MessageDeframer(1024).push(Buffer.from([1, 0, 0, 0, 1, 9]), (_, flag) => (compressed = flag));
  assert.ok(compressed);
});

test('grpc-timeout: units, absence, malformed values', () => {
  assert.equal(parseGrpcTimeout('10S'), 10_000);
  assert.equal(parseGrpcTimeout('2M'), 120_000);
  assert.equal(parseGrpcTimeout('1H'), 3_600_000);
  assert.equal(parseGrpcTimeout('250m'), 250);
  assert.equal(parseGrpcTimeout('9999989u'), 9999.989);
  assert.equal(parseGrpcTimeout('5000000n'), 5);
  assert.equal(parseGrpcTimeout(undefined), null);
  for (const bad of ['', '10', '10s', '123456789S', '-1S', '1.5S', ['1S', '2S']]) {
    assert.ok(Number.isNaN(parseGrpcTimeout(bad)), String(bad));
  }
  assert.equal(formatGrpcTimeout(1500), '1500m');
  assert.equal(parseGrpcTimeout(formatGrpcTimeout(1e12)), 99_999_999_000);
});

test('grpc-message: printable ASCII stays, the rest is percent-encoded UTF-8 and decodes back', () => {
  assert.equal(encodeGrpcMessage('etcdserver: key not found'), 'etcdserver: key not found');
  assert.equal(encodeGrpcMessage('100%\n'), '100%25%0A');
  assert.equal(encodeGrpcMessage('naïve'), 'na%C3%AFve');
  for (const text of ['', 'plain', '100% done', 'line1\nline2\ttab', 'naïve ✓ 日本', '%%%']) {
    assert.equal(decodeGrpcMessage(encodeGrpcMessage(text)), text);
  }
  assert.equal(decodeGrpcMessage('bad %zz escape %'), 'bad %zz escape %');
});

test('content types: application/grpc with +proto or parameters, nothing else', () => {
  for (const ok of ['application/grpc', 'application/grpc+proto', 'application/grpc;charset=utf-8']) assert.ok(isGrpcContentType(ok), ok);
  for (const no of [undefined, '', 'application/json', 'application/grpc-web', 'application/grpcx', 'text/plain']) {
    assert.equal(isGrpcContentType(no), false, String(no));
  }
});
