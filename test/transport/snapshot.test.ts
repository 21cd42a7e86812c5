// Snapshot streaming: a 20 MiB image arrives intact in chunks on its own connection while the
// message stream keeps flowing, and the sender hears `finish` or `failure`.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Message, SnapshotMsg } from '../../src/raft/index.ts';
import { connectAll, startNode, waitConnected, waitFor } from './helpers.ts';
import type { Node } from './helpers.ts';

const MIB = 1024 * 1024;

function snapshotMsg(from: number, to: number, data: Uint8Array): SnapshotMsg {
  return {
    type: 'snap',
    from,
    to,
    term: 4,
    snapshot: {
      metadata: {
        index: 1000,
        term: 3,
        confState: {
          voters: [from, to],
          votersOutgoing: [],
          learners: [],
          learnersNext: [],
          autoLeave: false,
        },
      },
      data,
    },
  };
}

const heartbeat = (from: number, to: number): Message => ({
  type: 'heartbeat',
  from,
  to,
  term: 4,
  commit: 1,
  context: new Uint8Array(),
});

describe('snapshot streaming', () => {
  const open: Node[] = [];
  const start = async (...args: Parameters<typeof startNode>): Promise<Node> => {
    const node = await startNode(...args);
    open.push(node);
    return node;
  };
  after(async () => {
    await Promise.all(open.map((n) => n.transport.close()));
  });

  it('delivers a 20 MiB snapshot intact, in chunks, without blocking messages; finish fires', async () => {
    const [a, b] = [await start(1), await start(2)];
    connectAll([a, b]);
    await waitConnected(a, 1);
    const data = randomBytes(20 * MIB);
    const framesBefore = b.transport.stats().framesReceived;
    a.transport.send(7, snapshotMsg(1, 2, data));
    a.transport.send(7, heartbeat(1, 2));
    await waitFor('snapshot delivered', () => b.received.some((r) => r.msg.type === 'snap'), 10_000);
    assert.equal(b.received[0].msg.type, 'heartbeat', 'the heartbeat did not wait behind the snapshot');
    const got = b.received.find((r) => r.msg.type === 'snap')!;
    assert.equal(got.groupId, 7);
    assert.ok(got.msg.type === 'snap');
    assert.equal(got.msg.snapshot.metadata.index, 1000);
    assert.deepEqual(got.msg.snapshot.metadata.confState.voters, [1, 2]);
    assert.ok(got.msg.snapshot.data instanceof Uint8Array);
    assert.ok(Buffer.from(got.msg.snapshot.data).equals(data), 'snapshot bytes intact');
    const frames = b.transport.stats().framesReceived - framesBefore;
    assert.ok(frames >= 20 + 2, `received in chunks (${frames} frames)`);
    await waitFor('finish callback', () => a.snapshotStatus.length === 1);
    assert.deepEqual(a.snapshotStatus, [{ groupId: 7, peerId: 2, status: 'finish' }]);
    await waitFor('snapshot connection closed', () => a.transport.stats().connections === 2);
  });

  it('delivers an empty snapshot', async () => {
    const [a, b] = [await start(11), await start(12)];
    connectAll([a, b]);
    a.transport.send(3, snapshotMsg(11, 12, new Uint8Array(0)));
    await waitFor('finish callback', () => a.snapshotStatus.length === 1);
    assert.equal(a.snapshotStatus[0].status, 'finish');
    assert.ok(b.received[0].msg.type === 'snap' && b.received[0].msg.snapshot.data.length === 0);
  });

  it('reports failure when the peer is down, refuses, or cannot take the snapshot', async () => {
    const a = await start(21);
    const small = await start(22, { limits: { maxSnapshotBytes: 1 * MIB } });
    const throwing = await start(23);
    throwing.transport.onMessage(() => {
      throw new Error('cannot install');
    });
    connectAll([a, small, throwing]);
    const dead = await start(24);
    const deadPort = dead.transport.port;
    await dead.transport.close();
    a.transport.setPeers([
      { id: 22, host: '127.0.0.1', port: small.transport.port },
      { id: 23, host: '127.0.0.1', port: throwing.transport.port },
      { id: 24, host: '127.0.0.1', port: deadPort },
    ]);
    a.transport.send(1, snapshotMsg(21, 22, new Uint8Array(2 * MIB))); // over the receiver's maxSnapshotBytes
    a.transport.send(2, snapshotMsg(21, 23, new Uint8Array(100)));
    a.transport.send(3, snapshotMsg(21, 24, new Uint8Array(100)));
    a.transport.send(4, snapshotMsg(21, 99, new Uint8Array(100))); // unknown peer
    await waitFor('four failures', () => a.snapshotStatus.length === 4);
    const byGroup = new Map(a.snapshotStatus.map((s) => [s.groupId, s]));
    for (const [groupId, peerId] of [
      [1, 22],
      [2, 23],
      [3, 24],
      [4, 99],
    ]) {
      assert.deepEqual(byGroup.get(groupId), { groupId, peerId, status: 'failure' });
    }
    assert.ok(
      small.logs.lines.some((l) => l.event === 'protocol_error' && /maxSnapshotBytes/.test(String(l.reason))),
    );
    assert.ok(throwing.logs.events().includes('snapshot_deliver_failed'));
  });

  it('bounds concurrent snapshots on both sides', async () => {
    const a = await start(31, { limits: { maxOutboundSnapshots: 2 } });
    const b = await start(32, { limits: { maxInboundSnapshots: 1 } });
    connectAll([a, b]);
    await waitConnected(a, 1);
    for (let g = 0; g < 3; g++) a.transport.send(g, snapshotMsg(31, 32, randomBytes(4 * MIB)));
    await waitFor('three outcomes', () => a.snapshotStatus.length === 3, 10_000);
    const statuses = a.snapshotStatus.map((s) => s.status).sort();
    // One refused by the sender's bound; of the two in flight at least one finished, and the
    // receiver's bound of one may have refused the other if both heads arrived together.
    assert.ok(statuses.filter((s) => s === 'failure').length >= 1, statuses.join());
    assert.ok(statuses.includes('finish'), statuses.join());
    assert.ok(
      a.logs.lines.some(
        (l) => l.event === 'snapshot_send_failed' && l.reason === 'too many outbound snapshots',
      ),
    );
    assert.equal(b.received.length, statuses.filter((s) => s === 'finish').length);
  });
});
