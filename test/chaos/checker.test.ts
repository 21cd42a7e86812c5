// The linearizability checker on hand-made histories: linearizable ones pass, stale reads, lost
// writes and non-monotonic reads fail with a readable report; unknown outcomes; speed on 10k ops.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  bankModel,
  checkLinearizable,
  explain,
  htmlTimeline,
  listModel,
  Random,
  registerModel,
  textReport,
} from '../../src/chaos/index.ts';
import type { BankInput, BankOutput, ListInput, ListOutput, Operation, RegisterInput, RegisterOutput } from '../../src/chaos/index.ts';


type RegOp = Operation<RegisterInput, RegisterOutput>;
let nextId = 0;

/** A register op on key `k` from `call` to `ret` (ms; null = unknown outcome). */
function w(value: string, call: number, ret: number | null, process = 0, key = 'k'): RegOp {
  return op({ f: 'write', key, value }, ret === null ? null : {}, call, ret, process);
}
function r(value: string | null, call: number, ret: number, process = 1, key = 'k'): RegOp {
  return op({ f: 'read', key }, { value }, call, ret, process);
}
function cas(from: string, to: string, succeeded: boolean | null, call: number, ret: number | null, process = 2, key = 'k'): RegOp {
  return op({ f: 'cas', key, from, to }, succeeded === null ? null : { succeeded }, call, ret ?? null, process);
}
function op<I, O>(input: I, output: O | null, call: number, ret: number | null, process: number): Operation<I, O> {
  return { id: nextId++, process, input, output, call: call * 1e6, ret: ret === null ? Infinity : ret * 1e6 };
}

const verdict = (history: RegOp[]) => checkLinearizable(registerModel, history).verdict;

describe('linearizability checker: register', () => {
  it('accepts sequential and overlapping histories that have a linearization', () => {
    assert.equal(verdict([]), 'ok');
    assert.equal(verdict([w('1', 0, 10), r('1', 20, 30)]), 'ok');
    // A read overlapping a write may see either value.
    assert.equal(verdict([w('1', 0, 10), w('2', 20, 40), r('1', 25, 30), r('2', 35, 50)]), 'ok');
    assert.equal(verdict([r(null, 0, 5), w('1', 10, 20), cas('1', '2', true, 30, 40), r('2', 50, 60), cas('1', '3', false, 70, 80)]), 'ok');
    // Concurrent writes may land in either order.
    assert.equal(verdict([w('1', 0, 100, 0), w('2', 0, 100, 1), r('2', 110, 120), r('2', 130, 140)]), 'ok');
  });

  it('rejects a stale read', () => {
    const history = [w('1', 0, 10), w('2', 20, 30), r('1', 40, 50)];
    const result = checkLinearizable(registerModel, history);
    assert.equal(result.verdict, 'illegal');
    const e = explain(registerModel, result.partitions[0]);
    assert.equal(e.prefix.length, 2, 'the two writes linearize; the read cannot follow');
    assert.equal(e.stateAfterPrefix, '2');
    assert.deepEqual(e.candidates.map((c) => c.op.id), [history[2].id]);
    assert.match(e.candidates[0].why, /impossible in state 2/);
  });

  it('rejects a lost acknowledged write', () => {
    assert.equal(verdict([w('1', 0, 10), r(null, 20, 30)]), 'illegal');
    assert.equal(verdict([w('1', 0, 10), w('2', 12, 18), r('2', 20, 30), r('1', 40, 50)]), 'illegal');
  });

  it('rejects non-monotonic reads (a value comes back after a newer one was read)', () => {
    const history = [w('1', 0, 100, 0), w('2', 0, 100, 3), r('1', 10, 20), r('2', 30, 40), r('1', 50, 60)];
    assert.equal(verdict(history), 'illegal');
    assert.equal(verdict(history.slice(0, 4)), 'ok');
  });

  it('rejects a cas that claims success against another value, and one that claims failure wrongly', () => {
    assert.equal(verdict([w('1', 0, 10), cas('5', '6', true, 20, 30)]), 'illegal');
    assert.equal(verdict([w('1', 0, 10), cas('1', '6', false, 20, 30)]), 'illegal');
    assert.equal(verdict([cas('1', '6', true, 20, 30)]), 'illegal', 'a compare on a missing key fails');
  });

  it('lets an unknown write take effect at any later time, or never', () => {
    assert.equal(verdict([w('1', 0, null), r('1', 50, 60)]), 'ok', 'it happened');
    assert.equal(verdict([w('1', 0, null), r(null, 50, 60)]), 'ok', 'it never happened (or later)');
    assert.equal(verdict([w('1', 0, null), r(null, 10, 20), r('1', 1000, 1010)]), 'ok', 'it happened late');
    assert.equal(verdict([w('1', 0, null), r('1', 10, 20), r(null, 30, 40)]), 'illegal', 'but only once');
    assert.equal(verdict([r('1', 10, 20), w('1', 30, null)]), 'illegal', 'not before it was called');
    assert.equal(verdict([w('1', 0, 5), cas('1', '2', null, 10, null), r('1', 20, 30), r('2', 40, 50)]), 'ok');
  });

  it('checks each key on its own and reports the failing one', () => {
    const history = [w('1', 0, 10, 0, 'a'), r('1', 20, 30, 1, 'a'), w('1', 0, 10, 0, 'b'), r(null, 20, 30, 1, 'b')];
    const result = checkLinearizable(registerModel, history);
    assert.equal(result.verdict, 'illegal');
    assert.deepEqual(result.partitions.map((p) => [p.key, p.verdict]), [['a', 'ok'], ['b', 'illegal']]);
    const text = textReport(registerModel, result);
    assert.match(text, /partition b: NOT linearizable/);
    assert.match(text, /read → nil/);
    assert.doesNotMatch(text, /partition a: NOT/);
    const html = htmlTimeline(registerModel, result, [{ start: 0, end: 5e6, label: 'kill n1' }]);
    assert.match(html, /<h2>b: illegal/);
    assert.match(html, /kill n1/);
  });

  it('draws the timeline of a 200,000-op partition (a 10-minute bank run overflowed the stack)', () => {
    const history: RegOp[] = [];
    for (let i = 0; i < 100_000; i++) history.push(w(`v${i}`, i * 10, i * 10 + 5, i % 10), r(`v${i}`, i * 10 + 6, i * 10 + 8, 10 + (i % 10)));
    const result = checkLinearizable(registerModel, history);
    assert.equal(result.verdict, 'ok');
    const html = htmlTimeline(registerModel, result);
    assert.match(html, /Showing 2000 of 200000 ops/);
  });

  it('shrinks a failure to the ops that cannot be ordered', () => {
    const history: RegOp[] = [w('1', 0, 10)];
    for (let i = 0; i < 30; i++) history.push(r('1', 20 + i * 10, 25 + i * 10, 1 + (i % 3)));
    history.push(w('2', 400, 410), r('2', 420, 430), r('1', 440, 450), r('2', 460, 470));
    for (let i = 0; i < 20; i++) history.push(w(`x${i}`, 500 + i * 10, 505 + i * 10));
    const result = checkLinearizable(registerModel, history);
    assert.equal(result.verdict, 'illegal');
    const e = explain(registerModel, result.partitions[0]);
    const core = e.core.map((o) => registerModel.describeOp(o.input, o.output));
    assert.ok(e.core.length <= 4, `core too large: ${core.join(', ')}`);
    assert.ok(core.includes('read → 1') && core.includes('write 2'), core.join(', '));
    assert.ok(!core.some((d) => d.startsWith('write x')), 'ops after the failure are cut');
  });

  it('gives up with unknown when the time budget is exhausted', () => {
    // Many concurrent unknown writes of distinct values, then reads that rule every order out.
    const history: RegOp[] = [];
    for (let i = 0; i < 40; i++) history.push(w(`v${i}`, i, null, 10 + i));
    for (let i = 0; i < 40; i++) history.push(r(`v${i}`, 1000 + i * 10, 1005 + i * 10, 100));
    history.push(r('v0', 2000, 2001, 100));
    const result = checkLinearizable(registerModel, history, { timeoutMs: 50 });
    assert.equal(result.verdict, 'unknown');
    assert.match(result.partitions[0].reason ?? '', /time budget/);
  });

  for (const keys of [100, 10]) it(`checks 10k ops over ${keys} keys in seconds`, () => {
    const history = randomRegisterHistory(new Random(7), 10_000, keys, 10);
    const started = Date.now();
    const result = checkLinearizable(registerModel, history, { timeoutMs: 30_000 });
    const elapsed = Date.now() - started;
    assert.equal(result.verdict, 'ok');
    assert.ok(elapsed < 10_000, `took ${elapsed} ms`);
    // The same history with one read corrupted must fail.
    const reads = history.filter((o) => o.input.f === 'read' && o.output !== null && 'value' in o.output && o.output.value !== null);
    const victim = reads[reads.length >> 1];
    victim.output = { value: 'never-written' };
    assert.equal(checkLinearizable(registerModel, history, { timeoutMs: 30_000 }).verdict, 'illegal');
  });
});

/**
 * A linearizable history by construction: `clients` concurrent clients on random keys, each op
 * taking effect at a random instant inside its interval; about 3% time out (unknown outcome),
 * half of those never taking effect.
 */
function randomRegisterHistory(rng: Random, count: number, keys: number, clients: number): RegOp[] {
  interface Pending { op: RegOp; at: number; effect: boolean }
  const pending: Pending[] = [];
  const clock = new Array<number>(clients).fill(0);
  for (let i = 0; i < count; i++) {
    const client = i % clients;
    const call = clock[client] + rng.range(0, 5);
    const ret = call + rng.range(1, 20);
    clock[client] = ret;
    const key = `k${rng.int(keys)}`;
    const kind = rng.int(3);
    const input: RegisterInput =
      kind === 0 ? { f: 'read', key } : kind === 1 ? { f: 'write', key, value: String(rng.int(5)) } : { f: 'cas', key, from: String(rng.int(5)), to: String(rng.int(5)) };
    const unknown = input.f !== 'read' && rng.chance(0.03);
    const o: RegOp = { id: i, process: client, input, output: null, call: call * 1e6, ret: unknown ? Infinity : ret * 1e6 };
    pending.push({ op: o, at: call + rng.range(0, ret - call) + rng.int(1000) / 1000, effect: !unknown || rng.chance(0.5) });
    if (unknown) clock[client] = ret + 1;
  }
  const state = new Map<string, string | null>();
  for (const p of [...pending].sort((a, b) => a.at - b.at)) {
    const input = p.op.input;
    const current = state.get(input.key) ?? null;
    let output: RegisterOutput;
    if (input.f === 'read') output = { value: current };
    else if (input.f === 'write') {
      if (p.effect) state.set(input.key, input.value);
      output = {};
    } else if (input.f === 'delete') {
      if (p.effect) state.delete(input.key);
      output = { deleted: current === null ? 0 : 1 };
    } else {
      const holds = current === input.from;
      if (holds && p.effect) state.set(input.key, input.to);
      output = { succeeded: holds };
    }
    if (p.op.ret !== Infinity) p.op.output = output;
  }
  return pending.map((p) => p.op);
}

describe('linearizability checker: bank and list models', () => {
  const bank = bankModel(3, 10);
  const t = (from: number, to: number, amount: number, expect: [number, number], call: number, ret: number | null) =>
    op<BankInput, BankOutput>({ f: 'transfer', from, to, amount, expect }, ret === null ? null : {}, call, ret, 0);
  const read = (balances: number[], call: number, ret: number) => op<BankInput, BankOutput>({ f: 'read' }, { balances }, call, ret, 1);

  it('accepts transfers and reads that see whole transfers', () => {
    const history = [t(0, 1, 3, [10, 10], 0, 10), read([7, 13, 10], 20, 30), t(1, 2, 5, [13, 10], 25, null), read([7, 8, 15], 40, 50)];
    assert.equal(checkLinearizable(bank, history).verdict, 'ok');
  });

  it('rejects a read that sees half a transfer, and one that misses an acknowledged transfer', () => {
    assert.equal(checkLinearizable(bank, [t(0, 1, 3, [10, 10], 0, 10), read([7, 10, 10], 20, 30)]).verdict, 'illegal');
    assert.equal(checkLinearizable(bank, [t(0, 1, 3, [10, 10], 0, 10), read([10, 10, 10], 20, 30)]).verdict, 'illegal');
  });

  const append = (key: string, element: string, prior: string[], call: number, ret: number | null) =>
    op<ListInput, ListOutput>({ f: 'append', key, element, prior }, ret === null ? null : {}, call, ret, 0);
  const readList = (key: string, list: string[], call: number, ret: number) => op<ListInput, ListOutput>({ f: 'read', key }, { list }, call, ret, 1);

  it('list: accepts reads that are prefixes in order, rejects a read that goes back or skips', () => {
    const base = [append('l', 'a', [], 0, 10), append('l', 'b', ['a'], 20, 30), append('l', 'c', ['a', 'b'], 40, null)];
    assert.equal(checkLinearizable(listModel, [...base, readList('l', ['a', 'b'], 50, 60), readList('l', ['a', 'b', 'c'], 70, 80)]).verdict, 'ok');
    assert.equal(checkLinearizable(listModel, [...base, readList('l', ['a', 'b', 'c'], 50, 60), readList('l', ['a', 'b'], 70, 80)]).verdict, 'illegal');
    assert.equal(checkLinearizable(listModel, [...base, readList('l', ['a', 'c'], 50, 60)]).verdict, 'illegal');
  });
});
