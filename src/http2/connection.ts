// One HTTP/2 connection (RFC 9113) over any duplex byte stream (a TCP or TLS socket), server or
// client side, for gRPC: streams, HEADERS/CONTINUATION with HPACK, flow control both ways, SETTINGS,
// PING, RST_STREAM, GOAWAY. No server push, no priorities (PRIORITY frames are read and ignored).
//
// Why not node:http2: its per-stream objects, header objects and events cost a node ~25% of its CPU
// on small gets (docs/BENCHMARKS.md), and it writes a response's trailers one loop turn after its
// data. Here every frame a loop turn produces, on every stream of the connection, leaves in one
// socket write (from a setImmediate, or at once when one stream is open: see queue()), and a
// stream is a plain object with callbacks.
//
// Bounds: the peer may open `maxConcurrentStreams` streams (more are refused with REFUSED_STREAM);
// a stream buffers at most our advertised stream window of received data while paused (the peer
// cannot send more); a header block is at most `maxHeaderListBytes` decoded (past it the stream
// reaches the owner with `headerListTooLarge` set and no headers) and twice that encoded (past it the connection is
// closed with ENHANCE_YOUR_CALM); `write()` returns false once a stream's unsent data or the
// connection's unwritten output passes `HIGH_WATER_BYTES`, and `onDrain` says when to go on.
import type { Duplex } from 'node:stream';
import {
  CLIENT_PREFACE,
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_WINDOW_BYTES,
  ErrorCode,
  Flag,
  frame,
  FRAME_HEADER_BYTES,
  frameHeader,
  FrameType,
  goawayFrame,
  MAX_FRAME_BYTES_LIMIT,
  MAX_WINDOW_BYTES,
  pingFrame,
  rstStreamFrame,
  Setting,
  SETTINGS_ACK,
  settingsFrame,
  windowUpdateFrame,
} from './frames.ts';
import { DEFAULT_HEADER_TABLE_SIZE, HeaderListTooLarge, HpackDecoder, HpackError } from './hpack.ts';
import type { HeaderFields } from './hpack.ts';
import { Reassembler } from './reassembler.ts';
import { ChurnMap, trace } from '../util/index.ts';

export type HeaderMap = Record<string, string | string[]>;

export interface H2ConnectionOptions {
  role: 'server' | 'client';
  /** Server: streams the peer may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
  maxConcurrentStreams?: number;
  /** Our SETTINGS_INITIAL_WINDOW_SIZE: what one stream may receive before we read it. */
  streamWindowBytes?: number;
  /** The connection-level receive window (raised from 65,535 by a WINDOW_UPDATE after the preface). */
  connectionWindowBytes?: number;
  /** Our SETTINGS_MAX_HEADER_LIST_SIZE. */
  maxHeaderListBytes?: number;
  /** Server: a stream the peer opened, with its request headers (set the stream's callbacks here). */
  onStream?: (stream: H2Stream) => void;
  /** The connection is gone (socket closed); every stream has been closed before this. */
  onClose?: () => void;
  /** A protocol error or socket error, for logging; the connection closes after it. */
  onError?: (error: Error) => void;
}

export const DEFAULT_STREAM_WINDOW_BYTES = 1024 * 1024;
export const DEFAULT_CONNECTION_WINDOW_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_HEADER_LIST_BYTES = 256 * 1024;
/** Streams per connection (etcd's bound is 2^32-1; grpc-go clients wait for a free slot past ours). */
export const DEFAULT_MAX_CONCURRENT_STREAMS = 10_000;
/** Past this much unsent data on a stream, or unwritten output on the connection, write() returns false. */
export const HIGH_WATER_BYTES = 1024 * 1024;
/** Output up to this size is joined into one buffer for the socket; larger goes out as a corked writev. */
const CONCAT_LIMIT_BYTES = 64 * 1024;

export class H2ProtocolError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** An HPACK dynamic table size update to 0. */
const TABLE_SIZE_ZERO = Buffer.from([0x20]);
/** How long a connection closing gracefully waits for the peer to close its side. */
const CLOSE_GRACE_MS = 2000;
/** A stream's callbacks before its owner sets them, and after it closes. */
const noop = (): void => undefined;

/** One H2Stream.write: its data still to send, and its callbacks. */
interface PendingWrite {
  data: Buffer;
  onSent: (() => void) | undefined;
  onReleased: (() => void) | undefined;
}

/** One HTTP/2 stream: the owner sets the callbacks and calls respond/write/end/reset. */
export class H2Stream {
  /** Request headers (server side) or response headers (client side), as a map. */
  headers: HeaderMap = {};
  /** Client side: the trailers' fields once they arrived. */
  trailers: HeaderFields | null = null;
  /** Client side: the response headers arrived. */
  headersReceived = false;
  /**
   * Server side: why the request's header list was not kept (it passed our
   * SETTINGS_MAX_HEADER_LIST_SIZE), or null. `headers` is then empty; the owner answers.
   */
  headerListTooLarge: string | null = null;

  onData: (chunk: Buffer) => void = noop;
  /** The peer ended its side (END_STREAM); called once every received chunk has been delivered. */
  onEnd: () => void = noop;
  /** The stream is gone: both sides ended (NO_ERROR), or it was reset (the code), or the connection died (CANCEL). */
  onClose: (code: number) => void = noop;
  /** A write() that returned false may go on. */
  onDrain: () => void = noop;

  /** We sent END_STREAM. */
  localEnded = false;
  /** The peer sent END_STREAM. */
  remoteEnded = false;
  closed = false;

  /** Data waiting for flow-control window, oldest first. */
  /** Writes not yet queued on the connection, in order (the first one maybe partly sent). */
  private pending: PendingWrite[] = [];
  private pendingBytes = 0;
  /** end() was called: trailers (or END_STREAM on data) go once `pending` is sent. */
  private endRequested = false;
  /** What end() was given: the trailers block to finish with, or null for END_STREAM on data. */
  endTrailers: Buffer | null = null;
  sendWindow: number;
  /** Receive window left before the peer must wait for a WINDOW_UPDATE. */
  recvWindow: number;
  /** Received bytes delivered to the owner and not yet credited back to the peer. */
  private uncredited = 0;
  private paused = false;
  /** Data received while paused, with the bytes each frame counted against the window. */
  private held: { chunk: Buffer; bytes: number }[] = [];
  private endPendingDelivery = false;

  constructor(
    readonly id: number,
    readonly connection: H2Connection,
    sendWindow: number,
    recvWindow: number,
  ) {
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
  }

  /** Sends a HEADERS block (response headers, or a trailers-only response with `endStream`). */
  respond(block: Buffer, endStream = false): void {
    if (this.localEnded || this.closed) return;
    this.connection.sendHeaders(this.id, block, endStream);
    if (endStream) this.endLocal();
  }

  /**
   * Queues data; false when the owner should wait for onDrain before writing more. `onSent` runs
   * once all of it is queued on the connection; `onReleased` once the connection no longer reads
   * `data` (copied, or written by the socket), so the caller may reuse the buffer. A stream that
   * closes first calls neither.
   */
  write(data: Buffer, onSent?: () => void, onReleased?: () => void): boolean {
    if (this.localEnded || this.closed || this.endRequested) return false;
    if (data.length > 0) {
      this.pending.push({ data, onSent, onReleased });
      this.pendingBytes += data.length;
      this.connection.pump(this);
    } else {
      onSent?.();
      onReleased?.();
    }
    if (this.pendingBytes >= HIGH_WATER_BYTES || this.connection.congested) {
      this.connection.waitForDrain(this);
      return false;
    }
    return true;
  }

  /** Ends our side once queued data is sent: with a trailers block, or END_STREAM on the data. */
  end(trailers: Buffer | null = null): void {
    if (this.localEnded || this.closed || this.endRequested) return;
    this.endRequested = true;
    this.endTrailers = trailers;
    this.connection.pump(this);
  }

  /** Resets the stream (RST_STREAM with `code`) and closes it. */
  reset(code: number = ErrorCode.CANCEL): void {
    if (this.closed) return;
    this.connection.sendReset(this.id, code);
    this.close(code);
  }

  /** Stops delivering data; the peer stops once our window for this stream is used up. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    while (this.held.length > 0 && !this.paused && !this.closed) {
      const { chunk, bytes } = this.held.shift() as { chunk: Buffer; bytes: number };
      this.deliver(chunk, bytes);
    }
    if (!this.paused && this.endPendingDelivery && !this.closed) {
      this.endPendingDelivery = false;
      this.finishRemote();
    }
  }

  // ---- driven by the connection ----

  /**
   * Takes up to `allowed` bytes of pending data (null when there is none). For a write taken whole,
   * its onSent goes to `sent` (called once the frame is queued and the windows debited) and its
   * onReleased to `released` (called once the socket no longer reads the data).
   */
  takePending(allowed: number, sent: (() => void)[], released: (() => void)[]): Buffer | null {
    if (this.pending.length === 0 || allowed <= 0) return null;
    const first = this.pending[0];
    const data = first.data;
    if (data.length <= allowed) {
      this.pending.shift();
      this.pendingBytes -= data.length;
      if (first.onSent !== undefined) sent.push(first.onSent);
      if (first.onReleased !== undefined) released.push(first.onReleased);
      return data;
    }
    first.data = data.subarray(allowed);
    this.pendingBytes -= allowed;
    return data.subarray(0, allowed);
  }

  get hasPending(): boolean {
    return this.pending.length > 0;
  }

  get unsentBytes(): number {
    return this.pendingBytes;
  }

  /** end() was called and everything before it has been sent: what to finish with. */
  get readyToEnd(): boolean {
    return this.endRequested && !this.localEnded && this.pending.length === 0;
  }

  /**
   * We sent END_STREAM. A server whose client has not ended its side (a stream, or a request still
   * arriving) then resets it with NO_ERROR, as grpc-go does, so the client stops sending (RFC 9113 §8.1).
   */
  endLocal(): void {
    this.localEnded = true;
    if (this.remoteEnded) {
      // Both sides are done; data still held for a paused reader will never be read.
      this.endPendingDelivery = false;
      this.close(ErrorCode.NO_ERROR);
    } else if (this.connection.role === 'server') {
      this.reset(ErrorCode.NO_ERROR);
    }
  }

  /**
   * A DATA frame's payload. END_STREAM is recorded before the payload is delivered, so an answer
   * the owner gives while handling it closes the stream instead of resetting a finished client.
   */
  receiveData(chunk: Buffer, bytes: number, endStream: boolean): void {
    if (endStream) this.remoteEnded = true;
    if (this.paused || this.held.length > 0) {
      if (chunk.length > 0 || bytes > 0) this.held.push({ chunk, bytes });
      if (endStream) this.endPendingDelivery = true;
      return;
    }
    this.deliver(chunk, bytes);
    if (endStream && !this.closed) this.finishRemote();
  }

  /** END_STREAM on a HEADERS frame (`remoteEnded` may already be set by the connection). */
  receiveEnd(): void {
    this.remoteEnded = true;
    if (this.closed) return;
    if (this.paused || this.held.length > 0) this.endPendingDelivery = true;
    else this.finishRemote();
  }

  private deliver(chunk: Buffer, bytes: number): void {
    if (chunk.length > 0) this.onData(chunk);
    this.uncredited += bytes;
    if (!this.remoteEnded && !this.closed && this.uncredited >= this.connection.streamWindowBytes / 2) {
      this.connection.creditStream(this.id, this.uncredited);
      this.recvWindow += this.uncredited;
      this.uncredited = 0;
    }
  }

  private finishRemote(): void {
    if (this.closed) return;
    this.onEnd();
    if (this.localEnded && !this.closed) this.close(ErrorCode.NO_ERROR);
  }

  close(code: number): void {
    if (this.closed) return;
    this.closed = true;
    this.pending = [];
    this.pendingBytes = 0;
    this.held = [];
    this.connection.forget(this);
    this.onClose(code);
  }
}

/** A header list as a map; repeated names collect into arrays. */
function toHeaderMap(fields: HeaderFields): HeaderMap {
  // No prototype: a header named `constructor` or `__proto__` is just a header.
  const map = Object.create(null) as HeaderMap;
  for (const [name, value] of fields) {
    const existing = map[name];
    if (existing === undefined) map[name] = value;
    else if (Array.isArray(existing)) existing.push(value);
    else map[name] = [existing, value];
  }
  return map;
}

interface HeaderAssembly {
  streamId: number;
  flags: number;
  fragments: Buffer[];
  bytes: number;
}

export class H2Connection {
  readonly role: 'server' | 'client';
  readonly streamWindowBytes: number;
  private readonly connectionWindowBytes: number;
  private readonly maxHeaderListBytes: number;
  private readonly maxConcurrentStreams: number;
  /** A ChurnMap: a stream per request comes and goes (src/util/churn-map.ts). */
  private readonly streams = new ChurnMap<number, H2Stream>();
  private readonly decoder = new HpackDecoder();
  private readonly blocked = new Set<H2Stream>();
  private readonly drainWaiters = new Set<H2Stream>();

  /** Cuts the socket's bytes into frames; a frame longer than we allow is a connection error. */
  private readonly frames = new Reassembler(FRAME_HEADER_BYTES, (buffer, at) => {
    const length = (buffer[at] << 16) | (buffer[at + 1] << 8) | buffer[at + 2];
    if (length > DEFAULT_MAX_FRAME_BYTES) {
      throw new H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, `frame of ${length} bytes exceeds ${DEFAULT_MAX_FRAME_BYTES}`);
    }
    return FRAME_HEADER_BYTES + length;
  });
  private prefaceLeft: number;
  private assembly: HeaderAssembly | null = null;

  // The peer's settings.
  private peerInitialWindow = DEFAULT_WINDOW_BYTES;
  private peerMaxFrame = DEFAULT_MAX_FRAME_BYTES;

  private tableSizeUpdatePending = false;
  private sendWindow = DEFAULT_WINDOW_BYTES;
  private recvWindow = DEFAULT_WINDOW_BYTES;
  private recvUncredited = 0;

  /** Highest stream id the peer opened (server) / next id we open (client). */
  private lastPeerStreamId = 0;
  private nextStreamId = 1;
  private goawaySent = false;
  private goawayReceived = false;
  private closeWhenIdle = false;
  private dead = false;

  private out: Buffer[] = [];
  private outBytes = 0;
  /** Called once the socket no longer needs what `out` references (stream writes' onReleased). */
  private outReleases: (() => void)[] = [];
  private flushScheduled = false;
  private socketBlocked = false;

  constructor(
    readonly socket: Duplex,
    private readonly options: H2ConnectionOptions,
  ) {
    this.role = options.role;
    this.streamWindowBytes = options.streamWindowBytes ?? DEFAULT_STREAM_WINDOW_BYTES;
    this.connectionWindowBytes = options.connectionWindowBytes ?? DEFAULT_CONNECTION_WINDOW_BYTES;
    this.maxHeaderListBytes = options.maxHeaderListBytes ?? DEFAULT_MAX_HEADER_LIST_BYTES;
    this.maxConcurrentStreams = options.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS;
    this.prefaceLeft = this.role === 'server' ? CLIENT_PREFACE.length : 0;
    const settings: [number, number][] = [
      [Setting.INITIAL_WINDOW_SIZE, this.streamWindowBytes],
      [Setting.MAX_HEADER_LIST_SIZE, this.maxHeaderListBytes],
    ];
    if (this.role === 'server') settings.push([Setting.MAX_CONCURRENT_STREAMS, this.maxConcurrentStreams]);
    else settings.push([Setting.ENABLE_PUSH, 0]);
    if (this.role === 'client') this.queue(CLIENT_PREFACE);
    this.queue(settingsFrame(settings));
    if (this.connectionWindowBytes > DEFAULT_WINDOW_BYTES) {
      this.queue(windowUpdateFrame(0, this.connectionWindowBytes - DEFAULT_WINDOW_BYTES));
      this.recvWindow = this.connectionWindowBytes;
    }
    const withNoDelay = socket as Duplex & { setNoDelay?: (noDelay: boolean) => void };
    withNoDelay.setNoDelay?.(true);
    socket.on('data', (chunk: Buffer) => this.onSocketData(chunk));
    socket.on('drain', () => this.onSocketDrain());
    socket.on('error', (error: Error) => this.options.onError?.(error));
    socket.on('close', () => this.onSocketClose());
    socket.on('end', () => socket.end());
  }

  /** Open streams. */
  get streamCount(): number {
    return this.streams.size;
  }

  /** Client: no new streams may be opened here (GOAWAY either way, or closed). */
  get isDraining(): boolean {
    return this.dead || this.goawayReceived || this.goawaySent;
  }

  /** Output is waiting on the socket: writers should hold off. */
  get congested(): boolean {
    return this.socketBlocked || this.outBytes >= HIGH_WATER_BYTES;
  }

  /** Client: opens a stream with a request header block. */
  request(block: Buffer, endStream = false): H2Stream {
    if (this.role !== 'client') throw new Error('only a client opens streams');
    if (this.isDraining) throw new H2ProtocolError(ErrorCode.REFUSED_STREAM, 'the connection is closing');
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const stream = new H2Stream(id, this, this.peerInitialWindow, this.streamWindowBytes);
    this.streams.set(id, stream);
    this.sendHeaders(id, block, endStream);
    if (endStream) stream.localEnded = true;
    return stream;
  }

  /** GOAWAY: no new streams; the connection closes once open streams finish. */
  close(): void {
    if (this.dead) return;
    this.sendGoaway(ErrorCode.NO_ERROR, '');
    this.closeWhenIdle = true;
    this.maybeCloseIdle();
  }

  /** Closes the socket now; open streams see CANCEL. */
  destroy(): void {
    if (this.dead) return;
    this.flush();
    this.socket.destroy();
  }

  // ---- output ----

  sendHeaders(streamId: number, block: Buffer, endStream: boolean): void {
    if (this.tableSizeUpdatePending) {
      // The peer lowered SETTINGS_HEADER_TABLE_SIZE: the next block must say our table is smaller
      // (RFC 7541 §4.2). Ours never holds anything, so it says 0.
      this.tableSizeUpdatePending = false;
      block = Buffer.concat([TABLE_SIZE_ZERO, block]);
    }
    const max = this.peerMaxFrame;
    const endFlag = endStream ? Flag.END_STREAM : 0;
    if (block.length <= max) {
      this.queue(frame(FrameType.HEADERS, endFlag | Flag.END_HEADERS, streamId, block));
      return;
    }
    for (let at = 0; at < block.length; at += max) {
      const part = block.subarray(at, at + max);
      const last = at + max >= block.length;
      const type = at === 0 ? FrameType.HEADERS : FrameType.CONTINUATION;
      const flags = (at === 0 ? endFlag : 0) | (last ? Flag.END_HEADERS : 0);
      this.queue(frameHeader(part.length, type, flags, streamId));
      this.queue(part);
    }
  }

  sendReset(streamId: number, code: number): void {
    this.queue(rstStreamFrame(streamId, code));
  }

  creditStream(streamId: number, bytes: number): void {
    this.queue(windowUpdateFrame(streamId, bytes));
  }

  /** Sends what flow control allows of the stream's pending data, then its end if requested. */
  pump(stream: H2Stream): void {
    if (stream.closed || this.dead) return;
    let lastHeader: Buffer | null = null;
    const sent: (() => void)[] = [];
    let blocked = false;
    while (stream.hasPending) {
      const allowed = Math.min(stream.sendWindow, this.sendWindow, this.peerMaxFrame);
      const chunk = stream.takePending(allowed, sent, this.outReleases);
      if (chunk === null) {
        blocked = true;
        break;
      }
      lastHeader = frameHeader(chunk.length, FrameType.DATA, 0, stream.id);
      this.queue(lastHeader);
      this.queue(chunk);
      stream.sendWindow -= chunk.length;
      this.sendWindow -= chunk.length;
    }
    // Re-added at the end, so streams waiting for the connection window take turns.
    this.blocked.delete(stream);
    if (blocked) this.blocked.add(stream);
    else if (stream.readyToEnd) {
      const trailers = stream.endTrailers;
      if (trailers !== null) this.sendHeaders(stream.id, trailers, true);
      else if (lastHeader !== null) lastHeader[4] |= Flag.END_STREAM;
      else this.queue(frameHeader(0, FrameType.DATA, Flag.END_STREAM, stream.id));
      stream.endLocal();
    }
    // Write callbacks run last: one that writes again finds the windows and the order already settled.
    runAll(sent, this.options.onError);
  }

  waitForDrain(stream: H2Stream): void {
    this.drainWaiters.add(stream);
  }

  forget(stream: H2Stream): void {
    this.streams.delete(stream.id);
    this.blocked.delete(stream);
    this.drainWaiters.delete(stream);
    this.maybeCloseIdle();
  }

  private queue(buffer: Buffer): void {
    if (this.dead) return;
    this.out.push(buffer);
    this.outBytes += buffer.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // A connection with one request open has nothing to batch its answer with: it goes out right
      // after the code that queued it (process.nextTick, before the loop polls again). With more
      // open, the write waits for the rest of the loop iteration and carries every answer ready by then.
      if (this.streams.size <= 1) process.nextTick(() => this.flush());
      else setImmediate(() => this.flush());
    }
  }

  /** Writes everything queued in one socket write (or one corked writev when large). */
  private flush(): void {
    this.flushScheduled = false;
    if (this.out.length === 0 || this.dead) return;
    trace('h2.write');
    const out = this.out;
    const bytes = this.outBytes;
    const releases = this.outReleases;
    this.out = [];
    this.outBytes = 0;
    this.outReleases = [];
    const released = releases.length === 0 ? undefined : () => runAll(releases, this.options.onError);
    let flushed: boolean;
    if (out.length > 1 && bytes <= CONCAT_LIMIT_BYTES) {
      flushed = this.socket.write(Buffer.concat(out, bytes));
      released?.(); // copied
    } else if (out.length === 1) {
      flushed = this.socket.write(out[0], released);
    } else {
      this.socket.cork();
      for (let i = 0; i < out.length; i++) this.socket.write(out[i], i === out.length - 1 ? released : undefined);
      this.socket.uncork();
      flushed = !this.socket.writableNeedDrain;
    }
    if (!flushed) this.socketBlocked = true;
    else this.notifyDrain();
  }

  private onSocketDrain(): void {
    this.socketBlocked = false;
    this.notifyDrain();
  }

  private notifyDrain(): void {
    if (this.drainWaiters.size === 0 || this.congested) return;
    for (const stream of [...this.drainWaiters]) {
      if (stream.unsentBytes >= HIGH_WATER_BYTES) continue;
      this.drainWaiters.delete(stream);
      if (!stream.closed) stream.onDrain();
    }
  }

  private sendGoaway(code: number, debug: string): void {
    if (this.goawaySent) return;
    this.goawaySent = true;
    this.queue(goawayFrame(this.role === 'server' ? this.lastPeerStreamId : 0, code, debug));
  }

  private maybeCloseIdle(): void {
    if (this.closeWhenIdle && this.streams.size === 0 && !this.dead) {
      this.flush();
      this.socket.end();
      setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
    }
  }

  /** A connection error: GOAWAY with the code, then the socket closes. */
  private fail(error: H2ProtocolError): void {
    if (this.dead) return;
    this.options.onError?.(error);
    this.sendGoaway(error.code, error.message);
    this.flush();
    this.socket.end();
    this.dead = true;
    setTimeout(() => this.socket.destroy(), 1000).unref();
    this.closeStreams(ErrorCode.CANCEL);
  }

  private onSocketClose(): void {
    this.dead = true;
    this.out = [];
    this.outBytes = 0;
    this.outReleases = [];
    this.closeStreams(ErrorCode.CANCEL);
    this.options.onClose?.();
  }

  private closeStreams(code: number): void {
    for (const stream of [...this.streams.values()]) stream.close(code);
  }

  // ---- input ----

  private onSocketData(chunk: Buffer): void {
    trace('h2.read');
    if (this.dead) return;
    let data = chunk;
    try {
      if (this.prefaceLeft > 0) {
        const n = Math.min(this.prefaceLeft, data.length);
        const offset = CLIENT_PREFACE.length - this.prefaceLeft;
        if (!data.subarray(0, n).equals(CLIENT_PREFACE.subarray(offset, offset + n))) {
          throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 'invalid HTTP/2 connection preface');
        }
        this.prefaceLeft -= n;
        data = data.subarray(n);
      }
      this.frames.push(data, this.onFrameBytes);
    } catch (error) {
      if (error instanceof H2ProtocolError) this.fail(error);
      else this.fail(new H2ProtocolError(ErrorCode.INTERNAL_ERROR, (error as Error).message));
    }
  }

  /** One whole frame in buffer[start, end) (a field: made once, not per read). */
  private readonly onFrameBytes = (buffer: Buffer, start: number, end: number): void => {
    if (this.dead) return;
    const streamId = buffer.readUInt32BE(start + 5) & MAX_WINDOW_BYTES;
    this.onFrame(buffer[start + 3], buffer[start + 4], streamId, buffer.subarray(start + FRAME_HEADER_BYTES, end));
  };

  private onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (this.assembly !== null && type !== FrameType.CONTINUATION) {
      throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 'expected a CONTINUATION frame');
    }
    switch (type) {
      case FrameType.DATA:
        return this.onDataFrame(flags, streamId, payload);
      case FrameType.HEADERS:
        return this.onHeadersFrame(flags, streamId, payload);
      case FrameType.CONTINUATION:
        return this.onContinuation(flags, streamId, payload);
      case FrameType.PRIORITY:
        if (streamId === 0) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 'PRIORITY on stream 0');
        if (payload.length !== 5) throw new H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, 'PRIORITY frame of the wrong size');
        return;
      case FrameType.RST_STREAM:
        return this.onReset(streamId, payload);
      case FrameType.SETTINGS:
        return this.onSettings(flags, streamId, payload);
      case FrameType.PUSH_PROMISE:
        throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 'PUSH_PROMISE is not accepted');
      case FrameType.PING:
        if (streamId !== 0) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 'PING on a stream');
        if (payload.length !== 8) throw new H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, 'PING frame of the wrong size');
        if ((flags & Flag.ACK) === 0) this.queue(pingFrame(Buffer.from(payload), true));
        return;
      case FrameType.GOAWAY:
        return this.onGoaway(streamId, payload);
      case FrameType.WINDOW_UPDATE:
        return this.onWindowUpdate(streamId, payload);
      default:
        return; // unknown frame types are ignored (RFC 9113 §4.1)
    }
  }

  /** Strips padding (and the priority fields of HEADERS). */
  private unpad(flags: number, payload: Buffer, priority: boolean): Buffer {
    let start = 0;
    let end = payload.length;
    if (flags & Flag.PADDED) {
      if (payload.length < 1) throw new H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, 'padded frame without a pad length');
      const padding = payload[0];
      start = 1;
      end -= padding;
    }
    if (priority && flags & Flag.PRIORITY) start += 5;
    if (end < start) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 'padding exceeds the frame');
    return payload.subarray(start, end);
  }

  private onDataFrame(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 'DATA on stream 0');
    const bytes = payload.length;
    this.recvWindow -= bytes;
    if (this.recvWindow < 0) throw new H2ProtocolError(ErrorCode.FLOW_CONTROL_ERROR, 'the peer overran the connection window');
    // The connection window is credited at once: stream windows bound what is held.
    this.recvUncredited += bytes;
    if (this.recvUncredited >= this.connectionWindowBytes / 2) {
      this.queue(windowUpdateFrame(0, this.recvUncredited));
      this.recvWindow += this.recvUncredited;
      this.recvUncredited = 0;
    }
    const data = this.unpad(flags, payload, false);
    const stream = this.streams.get(streamId);
    if (stream === undefined || stream.remoteEnded) {
      if (stream === undefined && !this.isKnownStream(streamId)) {
        throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, `DATA on idle stream ${streamId}`);
      }
      if (stream !== undefined) stream.reset(ErrorCode.STREAM_CLOSED);
      return;
    }
    stream.recvWindow -= bytes;
    if (stream.recvWindow < 0) {
      stream.reset(ErrorCode.FLOW_CONTROL_ERROR);
      return;
    }
    stream.receiveData(data, bytes, (flags & Flag.END_STREAM) !== 0);
  }

  /** A stream id that was opened once (now closed) rather than never used. */
  private isKnownStream(streamId: number): boolean {
    if (this.role === 'server') return streamId <= this.lastPeerStreamId || streamId % 2 === 0;
    return streamId < this.nextStreamId;
  }

  private onHeadersFrame(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 'HEADERS on stream 0');
    const fragment = this.unpad(flags, payload, true);
    if (flags & Flag.END_HEADERS) return this.onHeaderBlock(streamId, flags, fragment);
    this.assembly = { streamId, flags, fragments: [Buffer.from(fragment)], bytes: fragment.length };
  }

  private onContinuation(flags: number, streamId: number, payload: Buffer): void {
    const assembly = this.assembly;
    if (assembly === null || assembly.streamId !== streamId) {
      throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 'unexpected CONTINUATION frame');
    }
    assembly.fragments.push(Buffer.from(payload));
    assembly.bytes += payload.length;
    if (assembly.bytes > 2 * this.maxHeaderListBytes) {
      throw new H2ProtocolError(ErrorCode.ENHANCE_YOUR_CALM, `header block of more than ${2 * this.maxHeaderListBytes} bytes`);
    }
    if ((flags & Flag.END_HEADERS) === 0) return;
    this.assembly = null;
    this.onHeaderBlock(streamId, assembly.flags, Buffer.concat(assembly.fragments, assembly.bytes));
  }

  private onHeaderBlock(streamId: number, flags: number, block: Buffer): void {
    const endStream = (flags & Flag.END_STREAM) !== 0;
    let fields: HeaderFields;
    let tooLarge: string | null = null;
    try {
      fields = this.decoder.decode(block, this.maxHeaderListBytes);
    } catch (error) {
      if (error instanceof HpackError) throw new H2ProtocolError(ErrorCode.COMPRESSION_ERROR, `HPACK: ${error.message}`);
      if (!(error instanceof HeaderListTooLarge)) throw error;
      fields = [];
      tooLarge = error.message;
    }
    const existing = this.streams.get(streamId);
    if (existing !== undefined) {
      if (existing.remoteEnded) return existing.reset(ErrorCode.STREAM_CLOSED);
      if (this.role === 'client') {
        if (!existing.headersReceived) {
          existing.headersReceived = true;
          existing.headers = toHeaderMap(fields);
        }
        if (endStream) existing.trailers = fields; // a trailers-only response is both
      }
      if (endStream) existing.receiveEnd();
      return;
    }
    if (this.role === 'client') {
      if (!this.isKnownStream(streamId)) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, `HEADERS on idle stream ${streamId}`);
      return; // a stream we already closed
    }
    if (streamId % 2 === 0 || streamId <= this.lastPeerStreamId) {
      if (streamId % 2 === 1) return this.sendReset(streamId, ErrorCode.STREAM_CLOSED);
      throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, `client opened even stream ${streamId}`);
    }
    this.lastPeerStreamId = streamId;
    if (this.goawaySent || this.streams.size >= this.maxConcurrentStreams) {
      return this.sendReset(streamId, ErrorCode.REFUSED_STREAM);
    }
    const stream = new H2Stream(streamId, this, this.peerInitialWindow, this.streamWindowBytes);
    this.streams.set(streamId, stream);
    stream.headerListTooLarge = tooLarge;
    stream.headers = toHeaderMap(fields);
    if (endStream) stream.remoteEnded = true; // an answer given in onStream then closes, not resets
    this.options.onStream?.(stream);
    if (endStream) stream.receiveEnd();
  }

  private onReset(streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    if (payload.length !== 4) throw new H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, 'RST_STREAM frame of the wrong size');
    const stream = this.streams.get(streamId);
    if (stream === undefined) {
      if (!this.isKnownStream(streamId)) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, `RST_STREAM on idle stream ${streamId}`);
      return;
    }
    stream.close(payload.readUInt32BE(0));
  }

  private onSettings(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (flags & Flag.ACK) {
      if (payload.length !== 0) throw new H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
      return;
    }
    if (payload.length % 6 !== 0) throw new H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS frame of the wrong size');
    let windowDelta = 0;
    for (let at = 0; at < payload.length; at += 6) {
      const id = payload.readUInt16BE(at);
      const value = payload.readUInt32BE(at + 2);
      switch (id) {
        case Setting.INITIAL_WINDOW_SIZE:
          if (value > MAX_WINDOW_BYTES) throw new H2ProtocolError(ErrorCode.FLOW_CONTROL_ERROR, 'SETTINGS_INITIAL_WINDOW_SIZE too large');
          windowDelta += value - this.peerInitialWindow;
          this.peerInitialWindow = value;
          break;
        case Setting.MAX_FRAME_SIZE:
          if (value < DEFAULT_MAX_FRAME_BYTES || value > MAX_FRAME_BYTES_LIMIT) {
            throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, `SETTINGS_MAX_FRAME_SIZE ${value} is out of range`);
          }
          this.peerMaxFrame = value;
          break;
        case Setting.ENABLE_PUSH:
          if (value > 1) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 'SETTINGS_ENABLE_PUSH must be 0 or 1');
          break;
        case Setting.HEADER_TABLE_SIZE:
          if (value < DEFAULT_HEADER_TABLE_SIZE) this.tableSizeUpdatePending = true;
          break;
        default:
          break; // MAX_HEADER_LIST_SIZE is advisory; unknown settings are ignored
      }
    }
    this.queue(SETTINGS_ACK);
    if (windowDelta !== 0) {
      for (const stream of this.streams.values()) {
        stream.sendWindow += windowDelta;
        if (stream.sendWindow > MAX_WINDOW_BYTES) throw new H2ProtocolError(ErrorCode.FLOW_CONTROL_ERROR, 'a stream window overflowed');
      }
      if (windowDelta > 0) this.pumpBlocked();
    }
  }

  private onGoaway(streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 'GOAWAY on a stream');
    if (payload.length < 8) throw new H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, 'GOAWAY frame too short');
    const lastStreamId = payload.readUInt32BE(0) & MAX_WINDOW_BYTES;
    this.goawayReceived = true;
    if (this.role === 'client') {
      // Streams the server never saw are refused: the caller may retry them elsewhere.
      for (const stream of [...this.streams.values()]) if (stream.id > lastStreamId) stream.close(ErrorCode.REFUSED_STREAM);
    }
  }

  private onWindowUpdate(streamId: number, payload: Buffer): void {
    if (payload.length !== 4) throw new H2ProtocolError(ErrorCode.FRAME_SIZE_ERROR, 'WINDOW_UPDATE frame of the wrong size');
    const increment = payload.readUInt32BE(0) & MAX_WINDOW_BYTES;
    if (streamId === 0) {
      if (increment === 0) throw new H2ProtocolError(ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
      this.sendWindow += increment;
      if (this.sendWindow > MAX_WINDOW_BYTES) throw new H2ProtocolError(ErrorCode.FLOW_CONTROL_ERROR, 'the connection window overflowed');
      return this.pumpBlocked();
    }
    const stream = this.streams.get(streamId);
    if (stream === undefined) return;
    if (increment === 0) return stream.reset(ErrorCode.PROTOCOL_ERROR);
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW_BYTES) return stream.reset(ErrorCode.FLOW_CONTROL_ERROR);
    this.pump(stream);
    this.notifyDrain();
  }

  private pumpBlocked(): void {
    for (const stream of [...this.blocked]) {
      if (this.sendWindow <= 0) break;
      this.pump(stream);
    }
    this.notifyDrain();
  }
}

/** Calls each callback; one that throws is reported and does not stop the others. */
function runAll(callbacks: (() => void)[], onError: ((error: Error) => void) | undefined): void {
  for (const callback of callbacks) {
    try {
      callback();
    } catch (error) {
      onError?.(error as Error);
    }
  }
}
