// Transport over real sockets on 127.0.0.1: delivery of every message type, one frame per peer
// per turn, reconnect after a peer restart, unreachable reports, queue bounds, membership updates.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Message } from '../../src/raft/index.ts';
import { freePort } from '../support/cluster.ts';
import { connectAll, everyMessageType, plain, sleep, startNode, waitConnected, waitFor } from './helpers.ts';
import type { Node } from './helpers.ts';

const heartbeat = (from: number, to: number, commit: number): Message => ({
  type: 'heartbeat',
  from,
  to,
  term: 1,
  commit,
  context: new Uint8Array([commit & 0xff]),
});

/** A port nothing listens on (bound, then released). */
/**
 * A port nothing listens on, that a test listens on later: freePort's, below Linux's ephemeral
 * range. One from listen(0) (the ephemeral range) could be handed meanwhile to any socket's
 * automatic local port, the transport's own dial to it included (a TCP self-connect), and the
 * later listen failed with EADDRINUSE (seen once in CI).
 */
const deadPort = freePort;

describe('transport', () => {
  const open: Node[] = [];
  const start = async (...args: Parameters<typeof startNode>): Promise<Node> => {
    const node = await startNode(...args);
    open.push(node);
    return node;
  };
  after(async () => {
    await Promise.all(open.map((n) => n.transport.close()));
  });

  it('delivers every message type intact, binary fields as Uint8Array', async () => {
    const [a, b] = [await start(1), await start(2)];
    connectAll([a, b]);
    const messages = everyMessageType(1, 2);
    messages.forEach((msg, i) => a.transport.send(100 + i, msg));
    await waitFor('all messages', () => b.received.length === messages.length);
    // The snapshot travels on its own stream, so compare by type, not by arrival order.
    for (const [i, sent] of messages.entries()) {
      const got = b.received.find((r) => r.msg.type === sent.type && r.msg.term === sent.term);
      assert.ok(got, `received ${sent.type}`);
      assert.equal(got.groupId, 100 + i);
      assert.deepEqual(plain(got.msg), plain(sent), sent.type);
    }
    const app = b.received.find((r) => r.msg.type === 'app')!.msg;
    assert.ok(app.type === 'app' && app.entries.every((e) => e.data instanceof Uint8Array));
    await waitFor('snapshot status', () => a.snapshotStatus.length === 1);
    assert.deepEqual(a.snapshotStatus, [{ groupId: 100 + messages.length - 1, peerId: 2, status: 'finish' }]);
  });

  it('coalesces everything sent in one turn into one frame per peer', async () => {
    const [a, b, c] = [await start(11), await start(12), await start(13)];
    connectAll([a, b, c]);
    // Every handshake done, so hello frames do not land in the counts below.
    for (const node of [a, b, c]) await waitConnected(node, 2);
    const sentBefore = a.transport.stats();
    const receivedBefore = b.transport.stats().framesReceived;
    for (let i = 0; i < 100; i++) {
      a.transport.send(i % 7, heartbeat(11, 12, i));
      a.transport.send(i % 7, heartbeat(11, 13, i));
    }
    await waitFor('200 messages', () => b.received.length === 100 && c.received.length === 100);
    const sentAfter = a.transport.stats();
    assert.equal(sentAfter.framesSent - sentBefore.framesSent, 2, 'one frame per peer');
    assert.equal(sentAfter.messagesSent - sentBefore.messagesSent, 200);
    assert.equal(b.transport.stats().framesReceived - receivedBefore, 1);
    assert.deepEqual(
      b.received.map((r) => (r.msg.type === 'heartbeat' ? r.msg.commit : -1)),
      [...Array(100).keys()],
      'order kept',
    );
    // A later turn is a new frame.
    a.transport.send(0, heartbeat(11, 12, 500));
    await waitFor('next turn', () => b.received.length === 101);
    assert.equal(a.transport.stats().framesSent - sentAfter.framesSent, 1);
  });

  it('reconnects after a peer restart and resumes delivery', async () => {
    const a = await start(21);
    let b = await start(22);
    const port = b.transport.port;
    connectAll([a, b]);
    a.transport.send(1, heartbeat(21, 22, 1));
    await waitFor('first delivery', () => b.received.length === 1);
    await b.transport.close();
    await waitFor('disconnect noticed', () => a.transport.stats().connectedPeers === 0);
    await waitFor('unreachable reported', () => a.unreachable.includes(22));
    b = await start(22, { port });
    await waitConnected(a, 1);
    a.transport.send(1, heartbeat(21, 22, 2));
    await waitFor('delivery after restart', () => b.received.length === 1);
    assert.equal(b.received[0].msg.type === 'heartbeat' && b.received[0].msg.commit, 2);
    assert.ok(a.logs.events().includes('peer_disconnected'));
  });

  it('queues while disconnected, delivers the queue on connect, and drops past the bound', async () => {
    const port = await deadPort();
    const a = await start(31, { limits: { maxPeerQueueMessages: 50 } });
    a.transport.setPeers([{ id: 32, host: '127.0.0.1', port }]);
    for (let i = 0; i < 80; i++) a.transport.send(1, heartbeat(31, 32, i));
    await sleep(20);
    assert.equal(a.transport.stats().dropped, 30);
    assert.ok(a.logs.events().includes('queue_full'));
    const b = await start(32, { port });
    await waitFor('queued messages', () => b.received.length === 50);
    assert.deepEqual(
      b.received.map((r) => (r.msg.type === 'heartbeat' ? r.msg.commit : -1)),
      [...Array(50).keys()],
    );
  });

  it('reports an unreachable peer, repeatedly with backoff, and drops messages to unknown peers', async () => {
    const port = await deadPort();
    const a = await start(41);
    a.transport.setPeers([{ id: 42, host: '127.0.0.1', port }]);
    await waitFor('two unreachable reports', () => a.unreachable.filter((id) => id === 42).length >= 2);
    assert.ok(a.logs.events().includes('dial_failed'));
    a.transport.send(1, heartbeat(41, 99, 1));
    await waitFor('unknown peer reported', () => a.unreachable.includes(99));
    assert.ok(a.transport.stats().dropped >= 1);
  });

  it('follows membership changes: removed peers are closed, moved peers redialled', async () => {
    const [a, b, c] = [await start(51), await start(52), await start(53)];
    connectAll([a, b, c]);
    await waitConnected(a, 2);
    a.transport.setPeers([{ id: 52, host: '127.0.0.1', port: b.transport.port }]);
    assert.equal(a.transport.stats().connectedPeers, 1);
    a.transport.send(1, heartbeat(51, 53, 1));
    await waitFor('removed peer reported', () => a.unreachable.includes(53));
    // Node 52 "moves": a new process with the same id on another port.
    const moved = await start(52);
    a.transport.setPeers([{ id: 52, host: '127.0.0.1', port: moved.transport.port }]);
    moved.transport.setPeers([{ id: 51, host: '127.0.0.1', port: a.transport.port }]);
    await waitConnected(a, 1);
    a.transport.send(1, heartbeat(51, 52, 7));
    await waitFor('delivered to the new address', () => moved.received.length === 1);
    assert.equal(b.received.length, 0);
    assert.equal(c.received.length, 0);
  });

  it('drops a message larger than maxFrameBytes but keeps the rest of the batch', async () => {
    const limits = { maxFrameBytes: 64 * 1024, snapshotChunkBytes: 16 * 1024 };
    const [a, b] = [await start(61, { limits }), await start(62, { limits })];
    connectAll([a, b]);
    await waitConnected(a, 1);
    const big: Message = {
      type: 'prop',
      from: 61,
      to: 62,
      term: 0,
      entries: [{ term: 0, index: 0, type: 'normal', data: new Uint8Array(100 * 1024) }],
    };
    const medium = (i: number): Message => ({
      type: 'prop',
      from: 61,
      to: 62,
      term: 0,
      entries: [{ term: 0, index: i, type: 'normal', data: new Uint8Array(20 * 1024) }],
    });
    a.transport.send(1, medium(1));
    a.transport.send(1, big);
    for (let i = 2; i <= 6; i++) a.transport.send(1, medium(i));
    await waitFor('six medium messages', () => b.received.length === 6);
    assert.equal(a.transport.stats().dropped, 1);
    assert.ok(a.logs.events().includes('message_too_large'));
    assert.deepEqual(
      b.received.map((r) => (r.msg.type === 'prop' ? r.msg.entries[0].index : -1)),
      [1, 2, 3, 4, 5, 6],
    );
  });
});
