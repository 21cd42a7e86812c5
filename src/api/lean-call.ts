// One gRPC call of the lean server on one HTTP/2 stream (src/http2), dressed as the grpc-js call objects the
// service handlers use (ServerUnaryCall, ServerWritableStream, ServerDuplexStream): `request`,
// `write(message, cb)` → false when HTTP/2 flow control holds the client back, 'drain', `end()`,
// `emit('error', status)` to end with a status, `pause()`/`resume()` of reading (flow control on the
// client), 'data'/'end' of client messages, 'cancelled' when the client leaves or the deadline passes,
// 'close' when the stream is gone, `destroyed`, `writableEnded`.
import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http2';
import type { Socket } from 'node:net';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { gunzipSync, inflateSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { EncodedMessage, encodeGrpcMessage, encodeHeaderBlock, frameMessage, GrpcWireError, H2ErrorCode, MessageDeframer } from '../http2/index.ts';
import type { H2Stream, HeaderMap } from '../http2/index.ts';
import { assert, GrpcCode, trace } from '../util/index.ts';
import { callDeadlines, COARSE_AFTER_MS } from './deadlines.ts';
import type { SlotEntry } from './deadlines.ts';
import type { Received } from './protos.ts';

export type CallKind = 'unary' | 'serverStream' | 'bidi';

/** What the server knows about a method: how to decode, encode and run it. */
export interface LeanMethod {
  readonly path: string;
  readonly kind: CallKind;
  /** Request bytes → what the handler receives as `request` / 'data' (throws on malformed bytes). */
  readonly decode: (bytes: Buffer) => unknown;
  /** Response message → one whole gRPC message (prefix included). */
  readonly encodeFrame: (message: unknown) => Buffer;
  /** The grpc-js handler from the service implementation, called with a LeanCall. */
  readonly handler: (call: LeanCall, callback: UnaryCallback) => void;
}

export interface CallStatus {
  code: number;
  details: string;
}

export type UnaryCallback = (error: unknown, value?: unknown) => void;

/**
 * A streaming call that takes gRPC messages its handler framed itself, several per write (the
 * lean server's calls; grpc-js's take one message object per write).
 */
export interface FramesWriter {
  /**
   * Writes whole gRPC messages (5-byte prefixes included) in one stream write; false when the
   * client is behind. `callback` runs once they are queued; `onReleased` once nothing reads
   * `frames` any more, so the caller may reuse the buffer.
   */
  writeFrames(frames: Buffer, callback: () => void, onReleased?: () => void): boolean;
}

export function isFramesWriter(call: object): call is FramesWriter {
  return typeof (call as Partial<FramesWriter>).writeFrames === 'function';
}

export interface CallContext {
  readonly maxReceiveMessageBytes: number;
  readonly logger: Logger;
}

/** grpc-go's answer to bytes that do not decode (grpc-js words it this way; tests match it). */
export const DESERIALIZE_ERROR = 'Error deserializing request';
/** Header blocks that never change, HPACK-encoded once. */
const RESPONSE_HEADERS = encodeHeaderBlock([[':status', '200'], ['content-type', 'application/grpc']]);
const OK_TRAILERS = encodeHeaderBlock([['grpc-status', '0']]);
const OK: CallStatus = Object.freeze({ code: GrpcCode.OK, details: '' });

/** The status a handler's error stands for: grpc-js accepts {code, details} objects and Errors alike. */
export function statusOf(error: unknown): CallStatus {
  if (typeof error !== 'object' || error === null) return { code: GrpcCode.UNKNOWN, details: String(error) };
  const { code, details, message } = error as { code?: unknown; details?: unknown; message?: unknown };
  const valid = typeof code === 'number' && Number.isInteger(code) && code >= 0 && code <= 16;
  const text = typeof details === 'string' ? details : typeof message === 'string' ? message : '';
  return { code: valid ? code : GrpcCode.UNKNOWN, details: text };
}

function statusFields(status: CallStatus): [string, string][] {
  const fields: [string, string][] = [['grpc-status', String(status.code)]];
  if (status.details.length > 0) fields.push(['grpc-message', encodeGrpcMessage(status.details)]);
  return fields;
}

/** A trailers-only answer's header block: headers carrying the status (the stream ends with it). */
export function statusHeaders(status: CallStatus): Buffer {
  return encodeHeaderBlock([[':status', '200'], ['content-type', 'application/grpc'], ...statusFields(status)]);
}

function trailers(status: CallStatus): Buffer {
  if (status.code === GrpcCode.OK && status.details.length === 0) return OK_TRAILERS;
  return encodeHeaderBlock(statusFields(status));
}

export class LeanCall extends EventEmitter implements FramesWriter {
  /** The request message (unary and server-streaming calls), set before the handler runs. */
  request: Received<unknown> | null = null;
  /** grpc-js's flag: the client went away or the deadline passed before the call finished. */
  cancelled = false;
  private readonly deframer: MessageDeframer;
  /** Response headers sent. */
  private responded = false;
  /** A status was decided; nothing more is written. */
  private finished = false;
  private closed = false;
  private clientEnded = false;
  /**
   * bidi: client messages held while the handler paused reading. Bounded by one DATA chunk's
   * worth: pause() stops the stream's delivery, so no further chunk arrives until resume().
   */
  private readonly queued: Received<unknown>[] = [];
  private paused = false;
  private endEmitted = false;
  private dispatched = false;
  private timer: NodeJS.Timeout | null = null;
  /** Its entry in the deadline slot it waits in (deadlines.ts), or null. */
  private deadlineSlot: SlotEntry | null = null;
  private grpcMetadata: grpc.Metadata | null = null;

  constructor(
    private readonly stream: H2Stream,
    private readonly headers: HeaderMap,
    private readonly method: LeanMethod,
    private readonly context: CallContext,
    private readonly encoding: 'identity' | 'gzip' | 'deflate',
    private readonly deadline: number,
  ) {
    super();
    this.deframer = new MessageDeframer(context.maxReceiveMessageBytes);
    stream.onData = (chunk) => this.onData(chunk);
    stream.onEnd = () => this.onClientEnd();
    stream.onClose = () => this.onClose();
    if (method.kind !== 'unary') stream.onDrain = () => this.notify('drain');
  }

  /** Starts the call: arms the deadline and, for bidi streams, runs the handler at once. */
  start(timeoutMs: number | null): void {
    if (timeoutMs !== null) {
      // Far deadlines (nearly all) share one timer; setTimeout holds at most 2^31-1 ms (~24 days),
      // and a longer deadline is as good as none.
      if (timeoutMs >= COARSE_AFTER_MS) this.deadlineSlot = callDeadlines.add(this, performance.now() + timeoutMs);
      else this.timer = setTimeout(() => this.onDeadline(), Math.max(0, timeoutMs));
    }
    if (this.method.kind === 'bidi') this.dispatch();
  }

  // ---- the grpc-js surface the handlers use ----

  /**
   * grpc-js semantics: a handler ends a stream with a status by emitting it as 'error'; the call's
   * own listeners then hear it too. (An override, not a listener: one registration less per call.)
   */
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event !== 'error') return super.emit(event, ...args);
    this.sendStatus(statusOf(args[0]));
    return this.listenerCount('error') > 0 ? super.emit(event, ...args) : true;
  }

  get metadata(): grpc.Metadata {
    this.grpcMetadata ??= grpc.Metadata.fromHttp2Headers(this.headers as IncomingHttpHeaders);
    return this.grpcMetadata;
  }

  getPeer(): string {
    const socket = this.stream.connection.socket as Partial<Socket>;
    return `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
  }

  getDeadline(): number {
    return this.deadline;
  }

  /** grpc-js's AuthContext: the client certificate of a TLS connection (with --client-cert-auth its CN is the etcd user). */
  getAuthContext(): { transportSecurityType?: string; sslPeerCertificate?: PeerCertificate } {
    const socket = this.stream.connection.socket as Partial<TLSSocket>;
    if (typeof socket.getPeerCertificate !== 'function') return {};
    const certificate = socket.getPeerCertificate();
    const present = socket.authorized === true && certificate !== null && Object.keys(certificate).length > 0;
    return { transportSecurityType: 'ssl', sslPeerCertificate: present ? certificate : undefined };
  }

  getPath(): string {
    return this.method.path;
  }

  get destroyed(): boolean {
    return this.gone;
  }

  /** The stream can take nothing more. */
  private get gone(): boolean {
    return this.closed || this.stream.closed;
  }

  get writableEnded(): boolean {
    return this.finished;
  }

  /** Sends one response message; false when the client is behind (wait for 'drain'). */
  write(message: unknown, callback?: () => void): boolean {
    if (this.finished || this.gone) return false;
    let frame: Buffer;
    try {
      frame = message instanceof EncodedMessage ? frameMessage(message.bytes) : this.method.encodeFrame(message);
    } catch (error) {
      this.failInternal(error, 'response encoding failed');
      return false;
    }
    return this.writeFrames(frame, callback);
  }

  /** FramesWriter: whole gRPC messages, already framed, in one HTTP/2 stream write. */
  writeFrames(frames: Buffer, callback?: () => void, onReleased?: () => void): boolean {
    if (this.finished || this.gone) return false;
    let accepted = false;
    this.guarded('write', () => {
      this.respondOnce();
      accepted = this.stream.write(frames, callback, onReleased);
    });
    return accepted;
  }

  /** Ends the call with OK after everything written. */
  end(): void {
    this.sendStatus(OK);
  }

  /** Stops reading the client's messages: HTTP/2 flow control then holds the client. */
  pause(): this {
    this.paused = true;
    this.stream.pause();
    return this;
  }

  resume(): this {
    if (!this.paused) return this;
    this.paused = false;
    while (this.queued.length > 0 && !this.paused && !this.closed) {
      try {
        this.emit('data', this.queued.shift());
      } catch (error) {
        this.failInternal(error, "gRPC 'data' listener threw");
      }
    }
    if (!this.paused) {
      this.stream.resume();
      this.maybeEmitEnd();
    }
    return this;
  }

  // ---- unary answer ----

  private answer(error: unknown, value: unknown): void {
    if (this.finished || this.gone) return;
    if (error !== null && error !== undefined) return this.sendStatus(statusOf(error));
    let frame: Buffer;
    try {
      frame = this.method.encodeFrame(value);
    } catch (encodeError) {
      return this.failInternal(encodeError, 'response encoding failed');
    }
    this.finished = true;
    this.clearTimer();
    this.guarded('answer', () => {
      this.respondOnce();
      this.stream.write(frame);
      this.stream.end(OK_TRAILERS);
    });
  }

  // ---- HTTP/2 events ----

  private onData(chunk: Buffer): void {
    if (this.finished || this.gone) return;
    try {
      this.deframer.push(chunk, (bytes, compressed) => this.onMessage(bytes, compressed));
    } catch (error) {
      if (error instanceof GrpcWireError) return this.sendStatus({ code: error.code, details: error.message });
      this.failInternal(error, 'gRPC message handling threw');
    }
  }

  private onMessage(bytes: Buffer, compressed: boolean): void {
    if (this.finished) return;
    if (this.request !== null && this.method.kind !== 'bidi') return; // one request message: later ones are ignored, as grpc-go does
    const plain = compressed ? this.decompress(bytes) : bytes;
    let message: unknown;
    try {
      message = this.method.decode(plain);
    } catch (error) {
      this.context.logger.debug({ err: error, path: this.method.path }, 'undecodable request');
      throw new GrpcWireError(GrpcCode.INTERNAL, DESERIALIZE_ERROR);
    }
    const received = message as Received<unknown>;
    if (this.method.kind !== 'bidi') {
      this.request = received;
      trace('grpc.request');
      return this.dispatch();
    }
    if (this.paused || this.queued.length > 0) this.queued.push(received);
    else this.emit('data', received);
  }

  private decompress(bytes: Buffer): Buffer {
    const options = { maxOutputLength: this.context.maxReceiveMessageBytes };
    if (this.encoding === 'identity') {
      throw new GrpcWireError(GrpcCode.INTERNAL, 'grpc: compressed flag set with identity or empty encoding');
    }
    try {
      return this.encoding === 'gzip' ? gunzipSync(bytes, options) : inflateSync(bytes, options);
    } catch (error) {
      if (error instanceof RangeError) {
        throw new GrpcWireError(GrpcCode.RESOURCE_EXHAUSTED, `grpc: received message after decompression larger than max (${this.context.maxReceiveMessageBytes})`);
      }
      throw new GrpcWireError(GrpcCode.INTERNAL, `grpc: failed to decompress the received message: ${(error as Error).message}`);
    }
  }

  private onClientEnd(): void {
    this.clientEnded = true;
    if (this.finished || this.gone) return;
    if (!this.deframer.idle) {
      return this.sendStatus({ code: GrpcCode.INTERNAL, details: 'grpc: the client ended the stream inside a message' });
    }
    if (this.method.kind !== 'bidi') {
      if (this.request === null) this.sendStatus({ code: GrpcCode.INTERNAL, details: 'grpc: no request message' });
      return;
    }
    this.maybeEmitEnd();
  }

  private maybeEmitEnd(): void {
    if (!this.clientEnded || this.endEmitted || this.paused || this.queued.length > 0 || this.closed) return;
    this.endEmitted = true;
    this.notify('end');
  }

  private onClose(): void {
    if (this.closed) return;
    this.clearTimer();
    if (!this.finished) {
      this.finished = true;
      this.cancelled = true;
      this.notify('cancelled');
    }
    this.closed = true;
    this.notify('close');
  }

  /** Expiring: the call's deadline slot came due. */
  expire(): void {
    this.deadlineSlot = null;
    this.onDeadline();
  }

  private onDeadline(): void {
    this.timer = null;
    if (this.finished || this.gone) return;
    // 'cancelled' before the status: sending it may close the stream, and 'close' comes last.
    this.cancelled = true;
    this.notify('cancelled');
    this.sendStatus({ code: GrpcCode.DEADLINE_EXCEEDED, details: 'Deadline exceeded' });
  }

  // ---- answering ----

  private dispatch(): void {
    assert(!this.dispatched, 'a call is dispatched once');
    this.dispatched = true;
    try {
      // An inline arrow: tsx's keepNames would rename a stored one on every call.
      this.method.handler(this, (error, value) => this.answer(error, value));
    } catch (error) {
      this.failInternal(error, 'gRPC handler threw');
    }
  }

  /** Emits a lifecycle event; a listener that throws ends the call, never the process. */
  private notify(event: 'drain' | 'end' | 'cancelled' | 'close'): void {
    try {
      this.emit(event);
    } catch (error) {
      this.failInternal(error, `gRPC '${event}' listener threw`);
    }
  }

  private failInternal(error: unknown, what: string): void {
    this.context.logger.error({ err: error, path: this.method.path }, what);
    this.sendStatus({ code: GrpcCode.INTERNAL, details: 'etcdserver: internal error' });
  }

  private respondOnce(): void {
    if (this.responded) return;
    this.responded = true;
    this.stream.respond(RESPONSE_HEADERS);
  }

  /**
   * Ends the call with `status`: trailers after the data sent, or a trailers-only answer. Like
   * grpc-go, a client that has not ended its side (a stream, or an oversized message still
   * arriving) is then told to stop with RST_STREAM(NO_ERROR); the HTTP/2 layer does that once the
   * trailers are out.
   */
  sendStatus(status: CallStatus): void {
    if (this.finished || this.gone) return;
    this.finished = true;
    this.clearTimer();
    this.guarded('status', () => {
      if (this.responded) {
        this.stream.end(trailers(status));
      } else {
        this.responded = true;
        this.stream.respond(statusHeaders(status), true);
      }
    });
  }

  /** An HTTP/2 step that must not throw into a handler's promise chain: if it fails, the stream is reset. */
  private guarded(what: string, step: () => void): void {
    try {
      step();
    } catch (error) {
      this.context.logger.debug({ err: error, path: this.method.path }, `gRPC ${what} failed; resetting the stream`);
      this.stream.reset(H2ErrorCode.INTERNAL_ERROR);
    }
  }

  private clearTimer(): void {
    if (this.deadlineSlot !== null) {
      callDeadlines.remove(this.deadlineSlot);
      this.deadlineSlot = null;
    }
    if (this.timer === null) return;
    clearTimeout(this.timer);
    this.timer = null;
  }
}
