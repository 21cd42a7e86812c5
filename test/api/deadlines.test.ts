// The shared deadline slots (src/api/deadlines.ts) on a driven clock: never early, at most one slot
// late, removed items never fire.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DeadlineSlots } from '../../src/api/deadlines.ts';

describe('deadline slots', () => {
  it('fires each item once its deadline passed, at most one slot late, and never a removed one', async () => {
    let now = 1_000;
    const slots = new DeadlineSlots(() => now, 10);
    const fired: string[] = [];
    const item = (name: string) => ({ expire: () => fired.push(name) });
    const a = item('a');
    const b = item('b');
    const c = item('c');
    slots.add(a, 1_025);
    const slotB = slots.add(b, 1_025);
    slots.add(c, 1_100);
    slots.remove(slotB);
    assert.equal(slots.size, 2);
    const tick = async (to: number) => {
      now = to;
      await new Promise((resolve) => setTimeout(resolve, 25)); // at least one real interval
    };
    await tick(1_024);
    assert.deepEqual(fired, [], 'not before the deadline');
    await tick(1_030);
    assert.deepEqual(fired, ['a']);
    await tick(1_099);
    assert.deepEqual(fired, ['a']);
    await tick(1_110);
    assert.deepEqual(fired, ['a', 'c']);
    assert.equal(slots.size, 0);
  });
});
