// One framed connection (either direction): parses frames, hands them to the current handler,
// counts bytes and frames, and turns any bad input into a logged close instead of a crash.
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { FrameDecoder, WireError } from './wire.ts';
import { trace } from '../util/index.ts';

/** Running totals, shared by every connection of one transport. */
export interface TransportCounters {
  framesSent: number;
  framesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  messagesSent: number;
  messagesReceived: number;
  /** Messages dropped by bounds: full peer queue, unknown peer, message larger than a frame. */
  dropped: number;
  /** Messages dropped by injected faults (partitions). */
  faultDropped: number;
  /** Connections closed because the peer sent a malformed frame or failed the handshake. */
  protocolErrors: number;
}

export function newCounters(): TransportCounters {
  return {
    framesSent: 0,
    framesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    messagesSent: 0,
    messagesReceived: 0,
    dropped: 0,
    faultDropped: 0,
    protocolErrors: 0,
  };
}

/** Handles one frame; throws WireError for input that must close the connection. */
export type FrameHandler = (kind: number, body: Buffer) => void;

export class FrameConn {
  private readonly decoder: FrameDecoder;
  private handler: FrameHandler;
  private closeHandler: (reason: string) => void = () => {};
  private closeReason: string | null = null;
  private closedFlag = false;
  /** The peer's node id once the handshake has named it (for log lines). */
  peerId = 0;

  constructor(
    readonly socket: Socket,
    private readonly logger: Logger,
    private readonly counters: TransportCounters,
    maxFrameBytes: number,
    handler: FrameHandler,
  ) {
    this.decoder = new FrameDecoder(maxFrameBytes);
    this.handler = handler;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error: Error) => {
      this.closeReason ??= `socket error: ${error.message}`;
    });
    socket.on('close', () => {
      this.closedFlag = true;
      this.closeHandler(this.closeReason ?? 'closed by peer');
    });
  }

  get closed(): boolean {
    return this.closedFlag || this.socket.destroyed;
  }

  get remote(): string {
    return `${this.socket.remoteAddress ?? '?'}:${this.socket.remotePort ?? '?'}`;
  }

  setHandler(handler: FrameHandler): void {
    this.handler = handler;
  }

  /** Called once, when the socket has closed for any reason. */
  onClose(handler: (reason: string) => void): void {
    this.closeHandler = handler;
  }

  /** Writes whole frames in one socket write. Returns false when the socket wants a 'drain'. */
  send(bytes: Buffer, frames: number): boolean {
    if (this.closed) return false;
    this.counters.framesSent += frames;
    this.counters.bytesSent += bytes.length;
    trace('peer.write');
    return this.socket.write(bytes);
  }

  /** Writes one frame given as pieces (header, then data views) without copying them together. */
  sendParts(parts: Buffer[]): boolean {
    if (this.closed) return false;
    this.socket.cork();
    let ok = true;
    for (const part of parts) {
      ok = this.socket.write(part);
      this.counters.bytesSent += part.length;
    }
    this.counters.framesSent += 1;
    this.socket.uncork();
    return ok;
  }

  /** Closes the connection; `reason` reaches the close handler. Idempotent. */
  close(reason: string): void {
    if (this.closed) return;
    this.closeReason ??= reason;
    this.socket.destroy();
  }

  /** Closes because the peer broke the protocol: one structured warning, one counter. */
  reject(reason: string): void {
    if (this.closed) return;
    this.counters.protocolErrors += 1;
    this.logger.warn(
      { event: 'protocol_error', peer: this.peerId || undefined, remote: this.remote, reason },
      'transport: closing connection',
    );
    this.close(`protocol error: ${reason}`);
  }

  private onData(chunk: Buffer): void {
    trace('peer.read');
    this.counters.bytesReceived += chunk.length;
    try {
      this.decoder.push(chunk, (kind, body) => {
        this.counters.framesReceived += 1;
        this.handler(kind, body);
        return !this.closed;
      });
    } catch (error) {
      if (error instanceof WireError) {
        this.reject(error.message);
        return;
      }
      this.logger.error(
        { event: 'handler_error', peer: this.peerId || undefined, remote: this.remote, err: error },
        'transport: frame handler threw; closing connection',
      );
      this.close('frame handler threw');
    }
  }
}
