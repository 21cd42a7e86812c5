// Peer calls (request/reply beside the Raft messages): answered, failed remotely, lost to a
// partition (timeout), refused when not connected or over the bound, failed on close.
import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { PeerCallError } from '../../src/transport/index.ts';
import { connectAll, startNode, waitConnected } from './helpers.ts';
import type { Node } from './helpers.ts';

async function rejection(promise: Promise<unknown>): Promise<PeerCallError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof PeerCallError, `a PeerCallError, got ${String(error)}`);
    return error;
  }
  assert.fail('the call succeeded');
}

describe('transport peer calls', () => {
  let nodes: Node[] = [];
  afterEach(async () => {
    await Promise.all(nodes.map((n) => n.transport.close()));
    nodes = [];
  });

  async function pair(limits = {}): Promise<[Node, Node]> {
    const a = await startNode(1, { limits });
    const b = await startNode(2, { limits });
    nodes = [a, b];
    connectAll(nodes);
    await waitConnected(a, 1);
    await waitConnected(b, 1);
    return [a, b];
  }

  it('answers a call with the handler result, and fails it with the handler error', async () => {
    const [a, b] = await pair();
    const seen: [number, string, unknown][] = [];
    b.transport.onCall(async (from, method, body) => {
      seen.push([from, method, body]);
      if (method === 'boom') throw new Error('etcdserver: requested lease not found');
      return { echoed: body, by: 2 };
    });
    const results = await Promise.all([1, 2, 3].map((n) => a.transport.call(2, 'echo', { n }, 2000)));
    assert.deepEqual(results, [1, 2, 3].map((n) => ({ echoed: { n }, by: 2 })));
    assert.deepEqual(seen[0], [1, 'echo', { n: 1 }]);
    const error = await rejection(a.transport.call(2, 'boom', null, 2000));
    assert.equal(error.reason, 'remote');
    assert.equal(error.message, 'etcdserver: requested lease not found');
  });

  it('times out a call lost to a partition, and works again after heal', async () => {
    const [a, b] = await pair();
    b.transport.onCall(async () => 'pong');
    b.transport.faults.partition(1, 'inbound');
    const lost = await rejection(a.transport.call(2, 'ping', null, 200));
    assert.equal(lost.reason, 'timeout');
    b.transport.faults.heal();
    assert.equal(await a.transport.call(2, 'ping', null, 2000), 'pong');
    a.transport.faults.partition(2, 'outbound');
    assert.equal((await rejection(a.transport.call(2, 'ping', null, 2000))).reason, 'unreachable');
  });

  it('refuses calls to unknown peers and past maxPendingCalls; close fails the ones in flight', async () => {
    const [a, b] = await pair({ maxPendingCalls: 2 });
    b.transport.onCall(() => new Promise(() => {})); // never answers
    assert.equal((await rejection(a.transport.call(9, 'x', null, 1000))).reason, 'unreachable');
    const first = a.transport.call(2, 'x', null, 10_000);
    const second = a.transport.call(2, 'x', null, 10_000);
    assert.equal((await rejection(a.transport.call(2, 'x', null, 10_000))).reason, 'overloaded');
    await a.transport.close();
    assert.equal((await rejection(first)).reason, 'closed');
    assert.equal((await rejection(second)).reason, 'closed');
  });

  it('a call too large for maxCallBytes fails at once instead of closing the connection', async () => {
    const [a, b] = await pair({ maxCallBytes: 1024 });
    b.transport.onCall(async () => 'ok');
    const tooBig = await rejection(a.transport.call(2, 'big', 'x'.repeat(4096), 1000));
    assert.equal(tooBig.reason, 'unreachable');
    assert.match(tooBig.message, /big call of \d+ bytes exceeds maxCallBytes 1024/);
    assert.equal(await a.transport.call(2, 'small', 'x', 2000), 'ok');
  });
});
