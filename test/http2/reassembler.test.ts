// The reassembler against every way a byte stream can be cut: units inside a chunk, split across
// two or many chunks, headers split, empty chunks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Reassembler } from '../../src/http2/index.ts';

/** Units of a 2-byte length header and a payload. */
function unit(payload: Buffer): Buffer {
  const header = Buffer.alloc(2);
  header.writeUInt16BE(payload.length);
  return Buffer.concat([header, payload]);
}

test('every unit comes out whole and in order, however the stream is cut', () => {
  let seed = 1;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let round = 0; round < 300; round++) {
    const payloads = Array.from({ length: 1 + random(20) }, () => randomBytes(random(3) === 0 ? 0 : random(700)));
    const stream = Buffer.concat(payloads.map(unit));
    const reassembler = new Reassembler(2, (buffer, at) => 2 + buffer.readUInt16BE(at));
    const out: Buffer[] = [];
    let at = 0;
    while (at < stream.length) {
      const size = random(4) === 0 ? 0 : 1 + random(round % 2 === 0 ? 5 : 900);
      reassembler.push(stream.subarray(at, at + size), (buffer, start, end) => out.push(Buffer.from(buffer.subarray(start + 2, end))));
      at += size;
    }
    assert.equal(out.length, payloads.length, `round ${round}`);
    out.forEach((payload, i) => assert.ok(payload.equals(payloads[i]), `round ${round} unit ${i}`));
    assert.ok(reassembler.idle);
  }
});

test('a unit inside one chunk is a view, not a copy; a split one is copied once', () => {
  const reassembler = new Reassembler(2, (buffer, at) => 2 + buffer.readUInt16BE(at));
  const chunk = Buffer.concat([unit(Buffer.from('abc')), unit(Buffer.from('defgh')).subarray(0, 4)]);
  const seen: Buffer[] = [];
  reassembler.push(chunk, (buffer, start, end) => seen.push(buffer.subarray(start, end)));
  assert.equal(seen.length, 1);
  assert.equal(seen[0].buffer, chunk.buffer, 'the first unit is a view of the chunk');
  assert.ok(!reassembler.idle);
  reassembler.push(Buffer.from('fgh'), (buffer, start, end) => seen.push(buffer.subarray(start, end)));
  assert.equal(seen[1].subarray(2).toString(), 'defgh');
  assert.ok(reassembler.idle);
});
