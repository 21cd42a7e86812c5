// Fault injection: partitions (full and one-way) drop traffic while in force and healing restores
// it; an injected delay holds messages back.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Message } from '../../src/raft/index.ts';
import { connectAll, sleep, startNode, waitConnected, waitFor } from './helpers.ts';
import type { Node } from './helpers.ts';

const ping = (from: number, to: number, commit: number): Message => ({
  type: 'heartbeat',
  from,
  to,
  term: 1,
  commit,
  context: new Uint8Array(),
});
const commits = (node: Node, from: number): number[] =>
  node.received
    .filter((r) => r.msg.from === from)
    .map((r) => (r.msg.type === 'heartbeat' ? r.msg.commit : -1));

describe('transport faults', () => {
  const open: Node[] = [];
  after(async () => {
    await Promise.all(open.map((n) => n.transport.close()));
  });
  async function pair(idA: number, idB: number): Promise<[Node, Node]> {
    const nodes: [Node, Node] = [await startNode(idA), await startNode(idB)];
    open.push(...nodes);
    connectAll(nodes);
    await waitConnected(nodes[0], 1);
    await waitConnected(nodes[1], 1);
    return nodes;
  }

  it('a partition drops traffic both ways; heal restores it', async () => {
    const [a, b] = await pair(1, 2);
    a.transport.faults.partition(2);
    a.transport.send(1, ping(1, 2, 1));
    b.transport.send(1, ping(2, 1, 1));
    // One dropped on send, one on receive.
    await waitFor('both dropped', () => a.transport.stats().faultDropped === 2);
    assert.deepEqual(commits(b, 1), []);
    assert.deepEqual(commits(a, 2), []);
    assert.equal(a.transport.stats().connectedPeers, 1, 'connections stay up');
    a.transport.faults.heal(2);
    a.transport.send(1, ping(1, 2, 2));
    b.transport.send(1, ping(2, 1, 2));
    await waitFor('traffic after heal', () => commits(b, 1).length === 1 && commits(a, 2).length === 1);
    assert.deepEqual(commits(b, 1), [2]);
    assert.deepEqual(commits(a, 2), [2]);
  });

  it('one-way partitions are asymmetric', async () => {
    const [a, b] = await pair(11, 12);
    a.transport.faults.partition(12, 'outbound');
    a.transport.send(1, ping(11, 12, 1));
    b.transport.send(1, ping(12, 11, 1));
    await waitFor('b -> a still flows', () => commits(a, 12).length === 1);
    await sleep(30);
    assert.deepEqual(commits(b, 11), [], 'a -> b dropped');
    a.transport.faults.heal();
    a.transport.faults.partition(12, 'inbound');
    a.transport.send(1, ping(11, 12, 2));
    b.transport.send(1, ping(12, 11, 2));
    await waitFor('a -> b flows', () => commits(b, 11).length === 1);
    await sleep(30);
    assert.deepEqual(commits(a, 12), [1], 'b -> a dropped at a');
    a.transport.faults.heal();
    b.transport.send(1, ping(12, 11, 3));
    await waitFor('healed', () => commits(a, 12).length === 2);
  });

  it('a partition fails snapshots', async () => {
    const [a, b] = await pair(21, 22);
    const snap: Message = {
      type: 'snap',
      from: 21,
      to: 22,
      term: 1,
      snapshot: {
        metadata: {
          index: 5,
          term: 1,
          confState: {
            voters: [21, 22],
            votersOutgoing: [],
            learners: [],
            learnersNext: [],
            autoLeave: false,
          },
        },
        data: new Uint8Array(10),
      },
    };
    b.transport.faults.partition(21, 'inbound');
    a.transport.send(1, snap);
    await waitFor('failure', () => a.snapshotStatus.length === 1);
    assert.equal(a.snapshotStatus[0].status, 'failure');
    assert.equal(b.received.length, 0);
    b.transport.faults.heal();
    a.transport.send(1, snap);
    await waitFor('finish', () => a.snapshotStatus.length === 2);
    assert.equal(a.snapshotStatus[1].status, 'finish');
    assert.equal(b.received.length, 1);
  });

  it('an injected delay holds messages back, in order', async () => {
    const [a, b] = await pair(31, 32);
    const arrivedMs: number[] = [];
    b.transport.onMessage((groupId, msg) => {
      arrivedMs.push(Date.now());
      b.received.push({ groupId, msg });
    });
    a.transport.faults.setDelay(32, 150);
    const sentMs = Date.now();
    for (let i = 0; i < 5; i++) a.transport.send(1, ping(31, 32, i));
    await waitFor('delayed delivery', () => b.received.length === 5);
    assert.ok(arrivedMs[0] - sentMs >= 145, `held ${arrivedMs[0] - sentMs} ms`);
    assert.deepEqual(commits(b, 31), [0, 1, 2, 3, 4]);
    a.transport.faults.setDelay(32, 0);
    a.transport.send(1, ping(31, 32, 5));
    await waitFor('undelayed delivery', () => b.received.length === 6);
    assert.throws(() => a.transport.faults.setDelay(32, -1), RangeError);
  });
});
