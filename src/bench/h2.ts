// A lean gRPC client over node:http2 for the load generator: one HTTP/2 session per connection,
// gRPC's 5-byte message framing done by hand, status from the trailers. It does only what the
// benchmark needs (unary calls and bidi streams of raw protobuf bytes) and costs the client less
// CPU per call than grpc-js (measured in docs/BENCHMARKS.md), which leaves more of a small machine
// to the servers under test.
import { connect, constants } from 'node:http2';
import type { ClientHttp2Session, ClientHttp2Stream, IncomingHttpHeaders } from 'node:http2';
import { EventEmitter } from 'node:events';
import { assert } from '../util/index.ts';
import type { DuplexStream, RpcConnection } from './rpc-error.ts';
import { RpcError } from './rpc-error.ts';

/** The largest response message accepted (etcd's default max response is 2 GiB; the bench reads small ones). */
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
const GRPC_STATUS_OK = 0;
const GRPC_STATUS_UNAVAILABLE = 14;
const GRPC_STATUS_UNKNOWN = 2;
const GRPC_STATUS_DEADLINE_EXCEEDED = 4;
/** Flow-control windows large enough that thousands of watch events never stall on WINDOW_UPDATEs. */
const WINDOW_BYTES = 16 * 1024 * 1024;

function frame(message: Buffer): Buffer {
  const framed = Buffer.allocUnsafe(5 + message.length);
  framed[0] = 0;
  framed.writeUInt32BE(message.length, 1);
  message.copy(framed, 5);
  return framed;
}

/** Reassembles gRPC length-prefixed messages from DATA chunks. */
class MessageReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  push(chunk: Buffer, emit: (message: Buffer) => void): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    while (this.pendingBytes >= 5) {
      const head = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingBytes);
      const length = head.readUInt32BE(1);
      if (length > MAX_MESSAGE_BYTES) throw new RpcError(8, `response message of ${length} bytes exceeds ${MAX_MESSAGE_BYTES}`);
      if (head[0] !== 0) throw new RpcError(12, 'compressed responses are not supported by the bench client');
      if (head.length < 5 + length) {
        this.pending = [head];
        return;
      }
      emit(head.subarray(5, 5 + length));
      const rest = head.subarray(5 + length);
      this.pending = rest.length > 0 ? [rest] : [];
      this.pendingBytes = rest.length;
    }
  }
}

function statusOf(headers: IncomingHttpHeaders): { code: number; details: string } | null {
  const raw = headers['grpc-status'];
  if (raw === undefined) return null;
  const message = headers['grpc-message'];
  const details = typeof message === 'string' ? decodeURIComponent(message) : '';
  return { code: Number(raw), details };
}

export class H2Connection implements RpcConnection {
  private session: ClientHttp2Session | null = null;
  private readonly headersFor = new Map<string, Record<string, string>>();

  constructor(readonly endpoint: string) {}

  private open(): ClientHttp2Session {
    if (this.session !== null && !this.session.closed && !this.session.destroyed) return this.session;
    const session = connect(`http://${this.endpoint}`, {
      settings: { initialWindowSize: WINDOW_BYTES, enablePush: false },
    });
    session.on('error', () => {});
    session.on('connect', () => session.setLocalWindowSize(WINDOW_BYTES));
    session.on('close', () => {
      if (this.session === session) this.session = null;
    });
    this.session = session;
    return session;
  }

  waitReady(timeoutMs: number): Promise<void> {
    const session = this.open();
    if (!session.connecting) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.endpoint}: not connected within ${timeoutMs} ms`)), timeoutMs);
      session.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
      session.once('error', (error) => {
        clearTimeout(timer);
        reject(new Error(`${this.endpoint}: ${error.message}`));
      });
    });
  }

  private request(path: string, timeoutMs: number | null): ClientHttp2Stream {
    let headers = this.headersFor.get(path);
    if (headers === undefined) {
      headers = {
        ':method': 'POST',
        ':path': path,
        ':scheme': 'http',
        'content-type': 'application/grpc',
        te: 'trailers',
      };
      this.headersFor.set(path, headers);
    }
    if (timeoutMs !== null) headers = { ...headers, 'grpc-timeout': `${Math.max(1, Math.round(timeoutMs))}m` };
    return this.open().request(headers, { endStream: false });
  }

  /** One unary call; resolves to the response message. */
  unary(path: string, request: Buffer, timeoutMs: number | null): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      let stream: ClientHttp2Stream;
      try {
        stream = this.request(path, timeoutMs);
      } catch (error) {
        reject(new RpcError(GRPC_STATUS_UNAVAILABLE, (error as Error).message));
        return;
      }
      let response: Buffer | null = null;
      let status: { code: number; details: string } | null = null;
      const reader = new MessageReader();
      stream.on('response', (headers) => (status = statusOf(headers)));
      stream.on('trailers', (trailers) => (status = statusOf(trailers)));
      stream.on('data', (chunk: Buffer) => {
        try {
          reader.push(chunk, (message) => (response = message));
        } catch (error) {
          status = { code: (error as RpcError).code, details: (error as Error).message };
          stream.close(constants.NGHTTP2_CANCEL);
        }
      });
      stream.on('error', () => {});
      stream.on('close', () => {
        const final: { code: number; details: string } | null = status;
        if (final !== null && final.code !== GRPC_STATUS_OK) reject(new RpcError(final.code, final.details));
        else if (final !== null && response !== null) resolve(response);
        else if (stream.rstCode === constants.NGHTTP2_CANCEL && timeoutMs !== null) reject(new RpcError(GRPC_STATUS_DEADLINE_EXCEEDED, 'deadline exceeded'));
        else reject(new RpcError(final === null ? GRPC_STATUS_UNAVAILABLE : GRPC_STATUS_UNKNOWN, `stream closed (rst code ${stream.rstCode}) without a response`));
      });
      stream.end(frame(request));
    });
  }

  /** A bidi stream: write() sends messages; 'data' emits each response message; 'error' a failure. */
  bidi(path: string): H2BidiStream {
    return new H2BidiStream(this.request(path, null));
  }

  close(): void {
    this.session?.close();
    this.session = null;
  }
}

/** Duplex gRPC stream with the same surface the workloads use from grpc-js's ClientDuplexStream. */
export class H2BidiStream extends EventEmitter implements DuplexStream {
  private status: { code: number; details: string } | null = null;
  private canceled = false;

  constructor(private readonly stream: ClientHttp2Stream) {
    super();
    const reader = new MessageReader();
    stream.on('response', (headers) => (this.status = statusOf(headers)));
    stream.on('trailers', (trailers) => (this.status = statusOf(trailers)));
    stream.on('data', (chunk: Buffer) => reader.push(chunk, (message) => this.emit('data', message)));
    stream.on('error', () => {});
    stream.on('close', () => {
      if (this.canceled) return;
      const status = this.status ?? { code: GRPC_STATUS_UNAVAILABLE, details: `stream reset (code ${stream.rstCode})` };
      if (status.code === GRPC_STATUS_OK) this.emit('end');
      else this.emit('error', Object.assign(new Error(status.details), { code: status.code, details: status.details }));
    });
  }

  write(message: Buffer): boolean {
    assert(!this.canceled, 'write on a canceled stream');
    return this.stream.write(frame(message));
  }

  end(): void {
    if (!this.stream.closed) this.stream.end();
  }

  cancel(): void {
    this.canceled = true;
    if (!this.stream.closed) this.stream.close(constants.NGHTTP2_CANCEL);
  }
}
