// The request checks in isolation: the merged-range set behind the duplicate-write rule against a
// plain list of ranges, and the proposal size boundary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkProposalSize, CoveredKeys, requestIdVarintBytes } from '../../src/api/validate.ts';
import { Errors } from '../../src/util/index.ts';

/** A tiny deterministic generator (tests must replay exactly). */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

test('CoveredKeys answers like a list of half-open ranges, whatever the order of adds', () => {
  const alphabet = ['\x00', 'a', 'b', 'c', '\xff'];
  for (let seed = 1; seed <= 200; seed++) {
    const random = lcg(seed);
    const word = () => Array.from({ length: 1 + Math.floor(random() * 3) }, () => alphabet[Math.floor(random() * alphabet.length)]).join('');
    const covered = new CoveredKeys();
    const ranges: [string, string][] = [];
    for (let i = 0; i < 12; i++) {
      const begin = word();
      // points (begin + "\0"), ordinary and inverted ranges
      const end = random() < 0.3 ? begin + '\x00' : word();
      covered.add(begin, end);
      ranges.push([begin, end]);
      for (let probe = 0; probe < 10; probe++) {
        const key = word();
        const expected = ranges.some(([lo, hi]) => lo <= key && key < hi);
        assert.equal(covered.covers(key), expected, `seed ${seed}: ${JSON.stringify(ranges)} covers ${JSON.stringify(key)}`);
      }
    }
    const merged = new CoveredKeys();
    merged.addAll(covered);
    for (const [begin] of ranges) assert.equal(merged.covers(begin), covered.covers(begin));
  }
});

test('proposal size: request bytes plus the raft envelope against max-request-bytes', () => {
  // The envelope: header tag (2), length (1), ID tag (1), ID varint (9 here); request tag (1), length varint.
  assert.doesNotThrow(() => checkProposalSize(984, 1000, 9)); // 984 + 14 + 2 = 1000
  assert.throws(() => checkProposalSize(985, 1000, 9), { message: Errors.requestTooLarge().message });
  assert.throws(() => checkProposalSize(984, 1000, 10), { message: Errors.requestTooLarge().message });
  assert.doesNotThrow(() => checkProposalSize(100, 115, 9)); // one-byte length varint
  assert.throws(() => checkProposalSize(101, 115, 9), { message: Errors.requestTooLarge().message });
});

test('request ID size follows the low 16 bits of the member ID, as etcd\'s idutil builds IDs', () => {
  assert.equal(requestIdVarintBytes('13668033151171901709'), 9); // low 16 bits 0x390d: a 62-bit ID
  assert.equal(requestIdVarintBytes(String(0x8000n)), 10); // top bit of 64 set
  assert.equal(requestIdVarintBytes('18446744073709551615'), 10);
  assert.equal(requestIdVarintBytes(String((1n << 20n) | 0x100n)), 9); // 0x100: 9 + 48 = 57 bits
  assert.equal(requestIdVarintBytes(String(0x80n)), 8); // 8 + 48 = 56 bits
  assert.equal(requestIdVarintBytes('1'), 7);
  assert.equal(requestIdVarintBytes('65536'), 7); // low 16 bits are 0: the 48 bits of time alone
});
