// The outbound message stream to one peer: a bounded queue, one batched write per flush, and a
// connection that is redialled with exponential backoff whenever it fails.
import type { Logger } from 'pino';
import { assert } from '../util/index.ts';
import { encodeBatchFrame } from './batch.ts';
import { estimateMessageBytes } from './codec.ts';
import type { BatchItem, StreamKind } from './codec.ts';
import type { FrameConn, TransportCounters } from './conn.ts';
import { backoffDelayMs } from './limits.ts';
import type { TransportLimits } from './limits.ts';

export interface PeerAddress {
  id: number;
  host: string;
  port: number;
}

/** What a link needs from its transport. */
export interface LinkHost {
  readonly logger: Logger;
  readonly limits: TransportLimits;
  readonly counters: TransportCounters;
  /** Dials, exchanges hellos, and resolves with a connection to exactly `address.id`. */
  openStream(address: PeerAddress, stream: StreamKind): Promise<FrameConn>;
  /** Asks for `link.flush()` at the end of this event-loop turn. */
  markDirty(link: PeerLink): void;
  reportUnreachable(peerId: number): void;
}

type LinkState = 'connecting' | 'ready' | 'backoff' | 'closed';

export class PeerLink {
  private state: LinkState = 'connecting';
  private conn: FrameConn | null = null;
  private queue: BatchItem[] = [];
  private queueBytes = 0;
  private failedAttempts = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  /** Bumped on every (re)dial so a stale dial's result is recognized and discarded. */
  private dialGeneration = 0;
  /** True while dropping on a full queue, so the warning is logged once per episode. */
  private overflowing = false;
  /** Messages held by an injected delay (bounded like the queue). */
  delayedMessages = 0;
  /** Encoded call and reply frames waiting for the next flush (bounded by maxPeerQueueMessages). */
  private controlFrames: Buffer[] = [];

  constructor(
    public address: PeerAddress,
    private readonly host: LinkHost,
  ) {
    assert(Number.isSafeInteger(address.id) && address.id > 0, 'peer id must be a positive safe integer');
  }

  get id(): number {
    return this.address.id;
  }

  get connected(): boolean {
    return this.state === 'ready';
  }

  start(): void {
    assert(this.state === 'connecting' && this.dialGeneration === 0, 'link started twice');
    void this.dial();
  }

  /** Queues a message for the next flush; false (and nothing queued) when the queue is full. */
  enqueue(item: BatchItem): boolean {
    const bytes = estimateMessageBytes(item.msg);
    const { maxPeerQueueMessages, maxPeerQueueBytes } = this.host.limits;
    if (this.queue.length >= maxPeerQueueMessages || this.queueBytes + bytes > maxPeerQueueBytes) {
      if (!this.overflowing) {
        this.overflowing = true;
        this.host.logger.warn(
          {
            event: 'queue_full',
            peer: this.id,
            queued: this.queue.length,
            queuedBytes: this.queueBytes,
            connected: this.connected,
          },
          'transport: peer queue full; dropping messages',
        );
      }
      return false;
    }
    this.queue.push(item);
    this.queueBytes += bytes;
    return true;
  }

  /**
   * Queues an encoded call or reply frame for the next flush; false when the link is not connected
   * (a call is not worth holding: its caller has a deadline) or too much is waiting already.
   */
  enqueueFrame(frame: Buffer): boolean {
    if (this.state !== 'ready' || this.controlFrames.length >= this.host.limits.maxPeerQueueMessages) return false;
    this.controlFrames.push(frame);
    return true;
  }

  /** Writes everything queued as one socket write (one frame unless it exceeds maxFrameBytes). */
  flush(): void {
    const conn = this.conn;
    if (this.state !== 'ready' || conn === null || (this.queue.length === 0 && this.controlFrames.length === 0)) return;
    if (conn.socket.writableNeedDrain) return; // 'drain' marks the link dirty again
    const items = this.queue;
    const estimatedBytes = this.queueBytes;
    this.queue = [];
    this.queueBytes = 0;
    this.overflowing = false;
    const frames = items.length === 0 ? [] : this.encodeFrames(items, estimatedBytes);
    const messageFrames = frames.length;
    if (this.controlFrames.length > 0) {
      frames.push(...this.controlFrames);
      this.controlFrames = [];
    }
    if (frames.length === 0) return;
    conn.send(frames.length === 1 ? frames[0] : Buffer.concat(frames), frames.length);
    if (messageFrames > 0) this.host.counters.messagesSent += items.length;
  }

  /** Points the link at a new address (membership update); redials at once if it changed. */
  updateAddress(address: PeerAddress): void {
    assert(address.id === this.id, 'updateAddress must keep the peer id');
    if (address.host === this.address.host && address.port === this.address.port) return;
    this.address = address;
    this.failedAttempts = 0;
    this.clearRetry();
    this.conn?.close('peer address changed');
    this.conn = null;
    void this.dial();
  }

  /** Stops dialling and drops what is queued (counted). */
  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.dialGeneration += 1;
    this.clearRetry();
    this.conn?.close('peer removed');
    this.conn = null;
    this.host.counters.dropped += this.queue.length;
    this.queue = [];
    this.queueBytes = 0;
    this.controlFrames = [];
  }

  private async dial(): Promise<void> {
    const generation = ++this.dialGeneration;
    this.state = 'connecting';
    let conn: FrameConn;
    try {
      conn = await this.host.openStream(this.address, 'message');
    } catch (error) {
      if (generation === this.dialGeneration) this.onDialFailed(error);
      return;
    }
    if (generation !== this.dialGeneration) {
      conn.close('superseded dial');
      return;
    }
    this.onConnected(conn);
  }

  private onConnected(conn: FrameConn): void {
    this.conn = conn;
    this.state = 'ready';
    const hadFailures = this.failedAttempts > 0;
    this.failedAttempts = 0;
    conn.onClose((reason) => this.onDisconnected(conn, reason));
    conn.socket.on('drain', () => this.host.markDirty(this));
    this.host.logger.info(
      { event: 'peer_connected', peer: this.id, remote: conn.remote, afterFailures: hadFailures },
      'transport: connected to peer',
    );
    this.host.markDirty(this);
  }

  private onDisconnected(conn: FrameConn, reason: string): void {
    if (this.conn !== conn || this.state === 'closed') return;
    this.conn = null;
    this.controlFrames = []; // their callers time out; a late reply to a retried call would only confuse
    this.host.logger.warn(
      { event: 'peer_disconnected', peer: this.id, reason },
      'transport: lost connection to peer',
    );
    this.host.reportUnreachable(this.id);
    this.scheduleRetry();
  }

  private onDialFailed(error: unknown): void {
    const reason = error instanceof Error ? error.message : String(error);
    // The first failure of an episode is news; the retries every ≤ backoffMaxMs are not.
    const level = this.failedAttempts === 0 ? 'warn' : 'debug';
    this.host.logger[level](
      {
        event: 'dial_failed',
        peer: this.id,
        address: `${this.address.host}:${this.address.port}`,
        attempt: this.failedAttempts + 1,
        reason,
      },
      'transport: cannot reach peer',
    );
    this.host.reportUnreachable(this.id);
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    assert(this.retryTimer === null, 'retry already scheduled');
    this.state = 'backoff';
    const delayMs = backoffDelayMs(this.failedAttempts, this.host.limits);
    this.failedAttempts += 1;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.dial();
    }, delayMs);
  }

  private clearRetry(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  /** Cuts the batch into frames of at most maxFrameBytes; a single message too big for a frame is dropped. */
  private encodeFrames(items: BatchItem[], estimatedBytes: number): Buffer[] {
    const frames: Buffer[] = [];
    const pending = this.presplit(items, estimatedBytes).reverse();
    while (pending.length > 0) {
      const batch = pending.pop() as BatchItem[];
      const frame = encodeBatchFrame(batch);
      if (frame.length - 4 <= this.host.limits.maxFrameBytes) {
        frames.push(frame);
      } else if (batch.length > 1) {
        const half = batch.length >> 1;
        pending.push(batch.slice(half), batch.slice(0, half)); // popped first half first: order kept
      } else {
        this.dropOversize(batch[0], frame.length);
      }
    }
    return frames;
  }

  /** Groups of about half a frame by estimate, so an over-full queue is not encoded whole first. */
  private presplit(items: BatchItem[], estimatedBytes: number): BatchItem[][] {
    const targetBytes = this.host.limits.maxFrameBytes >> 1;
    if (estimatedBytes <= targetBytes) return [items];
    const groups: BatchItem[][] = [[]];
    let groupBytes = 0;
    for (const item of items) {
      const bytes = estimateMessageBytes(item.msg);
      if (groupBytes + bytes > targetBytes && groups[groups.length - 1].length > 0) {
        groups.push([]);
        groupBytes = 0;
      }
      groups[groups.length - 1].push(item);
      groupBytes += bytes;
    }
    return groups;
  }

  private dropOversize(item: BatchItem, frameBytes: number): void {
    this.host.counters.dropped += 1;
    this.host.logger.error(
      {
        event: 'message_too_large',
        peer: this.id,
        group: item.groupId,
        type: item.msg.type,
        frameBytes,
        maxFrameBytes: this.host.limits.maxFrameBytes,
      },
      'transport: message exceeds maxFrameBytes; dropped',
    );
  }
}
