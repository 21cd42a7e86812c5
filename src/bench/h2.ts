// A lean gRPC client over our own HTTP/2 (src/http2) for the load generator: one HTTP/2
// connection per RpcConnection, gRPC's 5-byte message framing done by hand, status from the
// trailers. It does only what the benchmark needs (unary calls and bidi streams of raw protobuf
// bytes) and costs the client less CPU per call than grpc-js or node:http2 (measured in
// docs/BENCHMARKS.md), which leaves more of a small machine to the servers under test.
import { connect } from 'node:net';
import { EventEmitter } from 'node:events';
import {
  decodeGrpcMessage,
  encodeHeaderBlock,
  formatGrpcTimeout,
  frameMessage,
  GrpcWireError,
  H2Connection as Http2Connection,
  H2ErrorCode,
  MessageDeframer,
} from '../http2/index.ts';
import type { H2Stream, HeaderFields } from '../http2/index.ts';
import { assert } from '../util/index.ts';
import type { DuplexStream, RpcConnection } from './rpc-error.ts';
import { RpcError } from './rpc-error.ts';

/** The largest response message accepted (etcd's default max response is 2 GiB; the bench reads small ones). */
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
const GRPC_STATUS_OK = 0;
const GRPC_STATUS_UNAVAILABLE = 14;
const GRPC_STATUS_UNKNOWN = 2;
const GRPC_STATUS_DEADLINE_EXCEEDED = 4;
const GRPC_STATUS_UNIMPLEMENTED = 12;
/** Flow-control windows large enough that thousands of watch events never stall on WINDOW_UPDATEs. */
const WINDOW_BYTES = 16 * 1024 * 1024;

/** Reassembles gRPC messages from DATA chunks: the server's deframer, refusing compressed ones. */
class MessageReader {
  private readonly deframer = new MessageDeframer(MAX_MESSAGE_BYTES);

  push(chunk: Buffer, emit: (message: Buffer) => void): void {
    try {
      this.deframer.push(chunk, (message, compressed) => {
        if (compressed) throw new RpcError(GRPC_STATUS_UNIMPLEMENTED, 'compressed responses are not supported by the bench client');
        emit(message);
      });
    } catch (error) {
      if (error instanceof GrpcWireError) throw new RpcError(error.code, error.message);
      throw error;
    }
  }
}

interface Status {
  code: number;
  details: string;
}

/** The gRPC status a header block carries (trailers, or a trailers-only response), or null. */
function statusOf(fields: HeaderFields | null): Status | null {
  if (fields === null) return null;
  let code: number | null = null;
  let details = '';
  for (const [name, value] of fields) {
    if (name === 'grpc-status') code = Number(value);
    else if (name === 'grpc-message') details = decodeGrpcMessage(value);
  }
  return code === null ? null : { code, details };
}

/** Why a stream ended without a status: its reset code, and a deadline when one was set. */
function statusOfClosed(stream: H2Stream, code: number, timeoutMs: number | null): Status {
  const status = statusOf(stream.trailers);
  if (status !== null) return status;
  if (code === H2ErrorCode.CANCEL && timeoutMs !== null) return { code: GRPC_STATUS_DEADLINE_EXCEEDED, details: 'deadline exceeded' };
  const unavailable = code === H2ErrorCode.CANCEL || code === H2ErrorCode.REFUSED_STREAM;
  return { code: unavailable ? GRPC_STATUS_UNAVAILABLE : GRPC_STATUS_UNKNOWN, details: `stream closed (code ${code}) without a status` };
}

export class H2Connection implements RpcConnection {
  private connection: Http2Connection | null = null;
  private connected: Promise<void> | null = null;
  private readonly blockFor = new Map<string, Buffer>();

  constructor(readonly endpoint: string) {}

  private open(): Http2Connection {
    if (this.connection !== null && !this.connection.isDraining) return this.connection;
    const colon = this.endpoint.lastIndexOf(':');
    const host = this.endpoint.slice(0, colon).replace(/^\[|\]$/g, '');
    const socket = connect(Number(this.endpoint.slice(colon + 1)), host);
    const connection = new Http2Connection(socket, {
      role: 'client',
      streamWindowBytes: WINDOW_BYTES,
      connectionWindowBytes: WINDOW_BYTES,
      onClose: () => {
        if (this.connection === connection) this.connection = null;
      },
    });
    this.connected = new Promise((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', (error) => reject(new Error(`${this.endpoint}: ${error.message}`)));
    });
    this.connected.catch(() => {});
    this.connection = connection;
    return connection;
  }

  waitReady(timeoutMs: number): Promise<void> {
    this.open();
    const connected = this.connected as Promise<void>;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.endpoint}: not connected within ${timeoutMs} ms`)), timeoutMs);
      connected.then(
        () => {
          clearTimeout(timer);
          resolve();
        },
        (error: Error) => {
          clearTimeout(timer);
          reject(error);
        },
      );
    });
  }

  private request(path: string, timeoutMs: number | null): H2Stream {
    let block = this.blockFor.get(path);
    if (block === undefined) {
      block = encodeHeaderBlock([
        [':method', 'POST'],
        [':scheme', 'http'],
        [':path', path],
        [':authority', this.endpoint],
        ['content-type', 'application/grpc'],
        ['te', 'trailers'],
      ]);
      this.blockFor.set(path, block);
    }
    if (timeoutMs !== null) block = Buffer.concat([block, encodeHeaderBlock([['grpc-timeout', formatGrpcTimeout(timeoutMs)]])]);
    return this.open().request(block);
  }

  /** One unary call; resolves to the response message. */
  unary(path: string, request: Buffer, timeoutMs: number | null): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      let stream: H2Stream;
      try {
        stream = this.request(path, timeoutMs);
      } catch (error) {
        reject(new RpcError(GRPC_STATUS_UNAVAILABLE, (error as Error).message));
        return;
      }
      let response: Buffer | null = null;
      let failure: Status | null = null;
      const reader = new MessageReader();
      stream.onData = (chunk) => {
        try {
          reader.push(chunk, (message) => (response = message));
        } catch (error) {
          failure = { code: (error as RpcError).code, details: (error as Error).message };
          stream.reset(H2ErrorCode.CANCEL);
        }
      };
      stream.onClose = (code) => {
        const status = failure ?? statusOfClosed(stream, code, timeoutMs);
        if (status.code !== GRPC_STATUS_OK) reject(new RpcError(status.code, status.details));
        else if (response !== null) resolve(response);
        else reject(new RpcError(GRPC_STATUS_UNKNOWN, 'OK status without a response message'));
      };
      stream.write(frameMessage(request));
      stream.end();
    });
  }

  /** A bidi stream: write() sends messages; 'data' emits each response message; 'error' a failure. */
  bidi(path: string): H2BidiStream {
    return new H2BidiStream(this.request(path, null));
  }

  close(): void {
    this.connection?.close();
    this.connection = null;
  }
}

/** Duplex gRPC stream with the same surface the workloads use from grpc-js's ClientDuplexStream. */
export class H2BidiStream extends EventEmitter implements DuplexStream {
  private canceled = false;

  constructor(private readonly stream: H2Stream) {
    super();
    const reader = new MessageReader();
    stream.onData = (chunk) => reader.push(chunk, (message) => this.emit('data', message));
    stream.onClose = (code) => {
      if (this.canceled) return;
      const status = statusOfClosed(stream, code, null);
      if (status.code === GRPC_STATUS_OK) this.emit('end');
      else this.emit('error', Object.assign(new Error(status.details), { code: status.code, details: status.details }));
    };
  }

  write(message: Buffer): boolean {
    assert(!this.canceled, 'write on a canceled stream');
    return this.stream.write(frameMessage(message));
  }

  end(): void {
    this.stream.end();
  }

  cancel(): void {
    this.canceled = true;
    this.stream.reset(H2ErrorCode.CANCEL);
  }
}
