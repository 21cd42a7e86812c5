// Varints at every size boundary: the size computed ahead equals the bytes written, and the reader
// gets the value back.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ByteReader, MAX_UVARINT_BYTES, uvarintSize, writeUvarint } from '../../src/util/index.ts';

describe('varints', () => {
  it('round-trip at every 7-bit boundary up to 2^53 - 1, in exactly uvarintSize bytes', () => {
    const values = [0, 1, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER - 1, 2 ** 31, 2 ** 31 - 1, 2 ** 32];
    for (let bits = 7; bits <= 52; bits += 7) values.push(2 ** bits - 1, 2 ** bits, 2 ** bits + 1);
    const buffer = Buffer.alloc(MAX_UVARINT_BYTES + 2);
    for (const value of values) {
      const end = writeUvarint(buffer, 1, value);
      assert.equal(end - 1, uvarintSize(value), `size of ${value}`);
      assert.ok(end - 1 <= MAX_UVARINT_BYTES);
      const reader = new ByteReader(buffer, 1, (why) => new Error(why));
      assert.equal(reader.uvarint(), value);
      assert.equal(reader.at, end);
    }
  });

  it('reports through the caller\'s error', () => {
    class Mine extends Error {}
    const reader = new ByteReader(Buffer.from([0x80]), 0, (why) => new Mine(why));
    assert.throws(() => reader.uvarint(), (error) => error instanceof Mine && /ends inside a field/.test(error.message));
    assert.throws(() => new ByteReader(Buffer.from([2]), 0, (why) => new Mine(why)).bool(), Mine);
    assert.throws(() => new ByteReader(Buffer.from([5, 1]), 0, (why) => new Mine(why)).lengthPrefixed(), /ends inside a byte run/);
  });
});
