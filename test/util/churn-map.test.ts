// ChurnMap (src/util/churn-map.ts) behaves as the Map it stands in for: insertion order, deletes
// during iteration, clear. What it is for (V8 GC behaviour) is measured in docs/BENCHMARKS.md.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ChurnMap } from '../../src/util/index.ts';

describe('ChurnMap', () => {
  it('gets, sets, overwrites in place and deletes like a Map', () => {
    const map = new ChurnMap<number, string>();
    assert.equal(map.size, 0);
    map.set(3, 'c').set(1, 'a').set(2, 'b');
    assert.equal(map.size, 3);
    assert.equal(map.get(1), 'a');
    assert.equal(map.get(9), undefined);
    assert.equal(map.has(2), true);
    map.set(3, 'C'); // an overwrite keeps the key's place
    assert.deepEqual([...map], [[3, 'C'], [1, 'a'], [2, 'b']]);
    assert.equal(map.delete(1), true);
    assert.equal(map.delete(1), false);
    assert.equal(map.has(1), false);
    assert.equal(map.get(1), undefined);
    assert.deepEqual([...map.values()], ['C', 'b']);
    map.set(1, 'again'); // a deleted key comes back at the end
    assert.deepEqual([...map.entries()], [[3, 'C'], [2, 'b'], [1, 'again']]);
  });

  it('iterates in insertion order while entries are deleted, and never yields a deleted one', () => {
    const map = new ChurnMap<number, number>();
    for (let i = 0; i < 1_000; i++) map.set(i, i * 10);
    const seen: number[] = [];
    for (const [key, value] of map) {
      assert.equal(value, key * 10);
      seen.push(key);
      map.delete(key); // the entry being visited (expireRequests does this)
      map.delete(key + 1); // and the next one: it must be skipped
      if (key >= 100) break;
    }
    assert.deepEqual(seen, Array.from({ length: 51 }, (_, i) => i * 2));
    assert.equal(map.size, 1_000 - 102);
    assert.equal(map.get(102), 1_020);
  });

  it('clear() empties it, and an iterator made before the clear ends, as a Map\'s does', () => {
    const map = new ChurnMap<string, { n: number }>();
    map.set('a', { n: 1 }).set('b', { n: 2 });
    const values = map.values();
    assert.deepEqual(values.next().value, { n: 1 });
    map.clear();
    assert.equal(map.size, 0);
    assert.equal(values.next().done, true);
    assert.deepEqual([...map], []);
  });
});
