// Histories and outcome classification: only errors that prove "no effect" make an op `fail`;
// the checker sees unknown ops as returning at +Infinity with no output, and never sees failed ones.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Clock, History, toCallError } from '../../src/chaos/index.ts';

describe('chaos histories', () => {
  it('classifies call errors: definite failures vs unknown outcomes', () => {
    const outcome = (code: number, details: string) => toCallError({ code, details }).outcome;
    assert.equal(outcome(14, 'No connection established. Last error: connect ECONNREFUSED 127.0.0.1:1'), 'fail');
    assert.equal(outcome(3, 'etcdserver: key is not provided'), 'fail');
    assert.equal(outcome(12, 'unimplemented'), 'fail');
    assert.equal(outcome(4, 'Deadline exceeded'), 'unknown');
    assert.equal(outcome(14, 'etcdserver: request timed out'), 'unknown');
    assert.equal(outcome(14, 'Connection dropped'), 'unknown');
    assert.equal(outcome(8, 'etcdserver: too many requests'), 'unknown');
    assert.equal(toCallError(new Error('boom')).outcome, 'unknown');
  });

  it('gives the checker ok ops with their times, unknown ops at +Infinity, and no failed ops', () => {
    const history = new History<string, string>(new Clock());
    const a = history.invoke(0, 0, 'a');
    history.ok(a, 'A');
    const b = history.invoke(1, 1, 'b');
    history.failed(b, toCallError({ code: 4, details: 'Deadline exceeded' }));
    const c = history.invoke(2, 2, 'c');
    history.failed(c, toCallError({ code: 3, details: 'bad' }));
    assert.deepEqual([history.count('ok'), history.count('unknown'), history.count('fail')], [1, 1, 1]);
    const ops = history.operations();
    assert.deepEqual(ops.map((o) => [o.input, o.output, o.ret === Infinity]), [['a', 'A', false], ['b', null, true]]);
    assert.ok(ops[0].call <= ops[0].ret && ops[1].call >= ops[0].call);
    assert.throws(() => history.ok(a, 'again'), /completed twice/);
    assert.equal(history.toJsonLines().trim().split('\n').length, 3);
  });
});
