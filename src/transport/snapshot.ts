// Snapshot streams: each snapshot travels on its own connection (head frame, raw chunk frames,
// then an ack back), so a large image never queues behind or delays the message stream.
import type { Logger } from 'pino';
import type { Message, SnapshotMsg } from '../raft/index.ts';
import { assert } from '../util/index.ts';
import { readSnapshotAck, readSnapshotHead, wireSnapshotHead } from './codec.ts';
import type { SnapshotAck, SnapshotHead, StreamKind } from './codec.ts';
import type { FrameConn, TransportCounters } from './conn.ts';
import type { TransportFaults } from './faults.ts';
import type { TransportLimits } from './limits.ts';
import type { PeerAddress } from './peer.ts';
import { FrameKind, WireError, decodeBody, encodeFrame, encodeFrameHeader } from './wire.ts';

export interface SnapshotHost {
  readonly nodeId: number;
  readonly logger: Logger;
  readonly limits: TransportLimits;
  readonly counters: TransportCounters;
  readonly faults: TransportFaults;
  openStream(address: PeerAddress, stream: StreamKind): Promise<FrameConn>;
  /** Hands a complete snapshot message to the application; may throw. */
  deliver(groupId: number, msg: Message): void;
  /** Takes one of the `maxInboundSnapshots` slots; false when none is free. */
  acquireInboundSnapshot(): boolean;
  releaseInboundSnapshot(): void;
}

// ---------------------------------------------------------------- sending side

/** Streams `msg` to `address`; resolves once the receiver has delivered it, rejects otherwise. */
export async function streamSnapshot(
  host: SnapshotHost,
  address: PeerAddress,
  groupId: number,
  msg: SnapshotMsg,
): Promise<void> {
  assert(msg.to === address.id, 'snapshot sent to the wrong address');
  const conn = await host.openStream(address, 'snapshot');
  try {
    conn.socket.setTimeout(host.limits.snapshotIdleTimeoutMs, () => conn.close('snapshot stream idle'));
    const acked = awaitAck(conn);
    acked.catch(() => undefined); // observed below; avoids an unhandled rejection while chunks are written
    conn.send(encodeFrame(FrameKind.snapshotHead, wireSnapshotHead(groupId, msg)), 1);
    await writeChunks(conn, msg.snapshot.data, host.limits.snapshotChunkBytes);
    const ack = await acked;
    if (!ack.ok) throw new Error(`receiver refused the snapshot: ${ack.reason}`);
  } finally {
    conn.close('snapshot stream done');
  }
}

function awaitAck(conn: FrameConn): Promise<SnapshotAck> {
  return new Promise((resolve, reject) => {
    conn.onClose((reason) => reject(new Error(`snapshot stream closed before ack: ${reason}`)));
    conn.setHandler((kind, body) => {
      if (kind !== FrameKind.snapshotAck)
        throw new WireError(`unexpected frame kind ${kind} on snapshot stream`);
      resolve(readSnapshotAck(decodeBody(body)));
    });
  });
}

async function writeChunks(conn: FrameConn, data: Uint8Array, chunkBytes: number): Promise<void> {
  assert(chunkBytes > 0, 'chunkBytes must be positive');
  for (let offset = 0; offset < data.length; offset += chunkBytes) {
    const bytes = Math.min(chunkBytes, data.length - offset);
    const view = Buffer.from(data.buffer, data.byteOffset + offset, bytes);
    if (conn.closed) throw new Error('snapshot stream closed while sending');
    if (!conn.sendParts([encodeFrameHeader(FrameKind.snapshotChunk, bytes), view])) await drained(conn);
  }
}

function drained(conn: FrameConn): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = (): void => {
      conn.socket.off('close', onClose);
      resolve();
    };
    const onClose = (): void => {
      conn.socket.off('drain', onDrain);
      reject(new Error('snapshot stream closed while sending'));
    };
    conn.socket.once('drain', onDrain);
    conn.socket.once('close', onClose);
  });
}

// ---------------------------------------------------------------- receiving side

type ReceiveState = 'head' | 'data' | 'done';

/** The acceptor's half of one snapshot stream: reassembles the data and delivers one Message. */
export class SnapshotReceiver {
  private state: ReceiveState = 'head';
  private head: SnapshotHead | null = null;
  private data: Buffer = Buffer.alloc(0);
  private receivedBytes = 0;
  private holdsSlot = false;

  constructor(
    private readonly conn: FrameConn,
    private readonly peerId: number,
    private readonly host: SnapshotHost,
  ) {
    conn.socket.setTimeout(host.limits.snapshotIdleTimeoutMs, () => conn.close('snapshot stream idle'));
    conn.onClose((reason) => {
      this.releaseSlot();
      if (this.state !== 'done') {
        host.logger.warn(
          { event: 'snapshot_receive_failed', peer: peerId, receivedBytes: this.receivedBytes, reason },
          'transport: snapshot stream ended early',
        );
      }
    });
  }

  readonly onFrame = (kind: number, body: Buffer): void => {
    if (this.state === 'head') {
      if (kind !== FrameKind.snapshotHead)
        throw new WireError(`expected snapshot head, got frame kind ${kind}`);
      this.start(readSnapshotHead(decodeBody(body), this.host.limits.maxSnapshotBytes));
    } else if (this.state === 'data') {
      if (kind !== FrameKind.snapshotChunk)
        throw new WireError(`expected snapshot chunk, got frame kind ${kind}`);
      this.append(body);
    }
    // 'done': the sender closes after our ack; anything it still had in flight is ignored.
  };

  private start(head: SnapshotHead): void {
    if (head.msg.from !== this.peerId || head.msg.to !== this.host.nodeId) {
      throw new WireError(
        `misrouted snapshot ${head.msg.from}->${head.msg.to} on a stream from ${this.peerId}`,
      );
    }
    if (this.host.faults.isInboundBlocked(this.peerId)) {
      this.host.counters.faultDropped += 1;
      this.conn.close('snapshot dropped by fault injection');
      return;
    }
    if (!this.host.acquireInboundSnapshot()) {
      this.host.logger.warn(
        {
          event: 'snapshot_refused',
          peer: this.peerId,
          group: head.groupId,
          maxInboundSnapshots: this.host.limits.maxInboundSnapshots,
        },
        'transport: too many inbound snapshots',
      );
      this.finish({ ok: false, reason: 'too many inbound snapshots' });
      return;
    }
    this.holdsSlot = true;
    this.head = head;
    this.data = Buffer.allocUnsafe(head.bytes);
    this.state = 'data';
    if (head.bytes === 0) this.complete(head);
  }

  private append(chunk: Buffer): void {
    const head = this.head;
    assert(head !== null, 'chunk before head');
    if (this.receivedBytes + chunk.length > head.bytes) {
      throw new WireError(`snapshot data exceeds the announced ${head.bytes} bytes`);
    }
    chunk.copy(this.data, this.receivedBytes);
    this.receivedBytes += chunk.length;
    if (this.receivedBytes === head.bytes) this.complete(head);
  }

  private complete(head: SnapshotHead): void {
    assert(this.receivedBytes === head.bytes, 'snapshot completed with missing bytes');
    head.msg.snapshot.data = this.data;
    this.releaseSlot();
    try {
      this.host.deliver(head.groupId, head.msg);
    } catch (error) {
      this.host.logger.error(
        { event: 'snapshot_deliver_failed', peer: this.peerId, group: head.groupId, err: error },
        'transport: message handler threw on a snapshot',
      );
      this.finish({ ok: false, reason: 'receiver failed to take the snapshot' });
      return;
    }
    this.host.counters.messagesReceived += 1;
    this.host.logger.info(
      {
        event: 'snapshot_received',
        peer: this.peerId,
        group: head.groupId,
        bytes: head.bytes,
        index: head.msg.snapshot.metadata.index,
      },
      'transport: snapshot received',
    );
    this.finish({ ok: true, reason: '' });
  }

  private finish(ack: SnapshotAck): void {
    this.state = 'done';
    this.conn.send(encodeFrame(FrameKind.snapshotAck, ack), 1);
  }

  private releaseSlot(): void {
    if (!this.holdsSlot) return;
    this.holdsSlot = false;
    this.host.releaseInboundSnapshot();
  }
}
