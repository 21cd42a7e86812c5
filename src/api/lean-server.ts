// A lean gRPC server on our own HTTP/2 (src/http2), wire-compatible with grpc-go clients, in place of grpc-js (which
// costs about twice the CPU per call; docs/BENCHMARKS.md). It takes the same service definitions and
// handlers as grpc.Server (the handlers see grpc-js-like call objects, lean-call.ts), decodes and
// encodes the hot messages with the hand-written codecs of fast-codec.ts and the rest with
// protobufjs, and takes connections from ClientListener as grpc-js's connection injector does.
import type { Duplex } from 'node:stream';
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { encodeHeaderBlock, frameMessage, H2Connection, isGrpcContentType, parseGrpcTimeout } from '../http2/index.ts';
import type { H2Stream } from '../http2/index.ts';
import { assert, GrpcCode } from '../util/index.ts';
import { FAST_CODECS } from './fast-codec.ts';
import { LeanCall, statusHeaders } from './lean-call.ts';
import type { CallKind, CallStatus, LeanMethod } from './lean-call.ts';

export interface LeanServerOptions {
  /** Largest request message (etcd: max request bytes + 512 KiB); larger ones are RESOURCE_EXHAUSTED. */
  maxReceiveMessageBytes: number;
  logger: Logger;
  /** Concurrent streams one connection may open (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS); clients queue past it. */
  maxConcurrentStreams?: number;
  /** Use the hand-written codecs of fast-codec.ts where there is one (default true). */
  fastCodecs?: boolean;
}

/** Connection-level receive window: request data is consumed at once, so this only saves WINDOW_UPDATE round trips. */
const CONNECTION_WINDOW_BYTES = 1024 * 1024;
const SUPPORTED_ENCODINGS = new Set(['identity', 'gzip', 'deflate']);
type Encoding = 'identity' | 'gzip' | 'deflate';

export class LeanGrpcServer implements grpc.ConnectionInjector {
  private readonly methods = new Map<string, LeanMethod>();
  /** Service names with at least one method registered (for grpc-go's "unknown service" wording). */
  private readonly services = new Set<string>();
  private readonly sessions = new Set<H2Connection>();
  /** Called back once each connection has closed (tryShutdown). */
  private readonly closeWaiters = new Map<H2Connection, (() => void)[]>();
  private readonly logger: Logger;
  private shuttingDown = false;

  constructor(private readonly options: LeanServerOptions) {
    assert(
      Number.isSafeInteger(options.maxReceiveMessageBytes) && options.maxReceiveMessageBytes > 0,
      'maxReceiveMessageBytes is a positive integer',
    );
    this.logger = options.logger;
  }

  /** grpc.Server.addService's contract: unimplemented methods answer UNIMPLEMENTED. */
  addService(service: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation): void {
    const useFast = this.options.fastCodecs ?? true;
    for (const [name, definition] of Object.entries(service)) {
      const handler = implementation[name] ?? implementation[definition.originalName ?? ''];
      if (handler === undefined) continue;
      assert(!this.methods.has(definition.path), `method ${definition.path} added twice`);
      assert(!definition.requestStream || definition.responseStream, 'client-streaming methods are not served');
      const kind: CallKind = definition.requestStream ? 'bidi' : definition.responseStream ? 'serverStream' : 'unary';
      const fast = useFast ? FAST_CODECS.get(definition.path) : undefined;
      const serialize = definition.responseSerialize;
      const fastDecode = fast?.decode;
      this.methods.set(definition.path, {
        path: definition.path,
        kind,
        // What the definition's deserializer returns is what grpc-js would hand the handler (for
        // ApiServer's definitions, protos.ts's Received); a fast decoder is wrapped the same way.
        decode:
          fastDecode === undefined
            ? (bytes: Buffer) => definition.requestDeserialize(bytes)
            : (bytes: Buffer) => ({ message: fastDecode(bytes), bytes: bytes.length }),
        encodeFrame: fast?.encodeFrame ?? ((message: unknown) => frameMessage(serialize(message))),
        // The handlers use only the grpc-js call surface LeanCall provides (see lean-call.ts).
        handler: handler as unknown as LeanMethod['handler'],
      });
      this.services.add(serviceOf(definition.path));
    }
  }

  /** grpc.Server's method: here the server is its own injector. */
  createConnectionInjector(_credentials?: grpc.ServerCredentials): grpc.ConnectionInjector {
    return this;
  }

  /** Serves an accepted connection (after the HTTP/2 preface sniff or TLS ALPN `h2`). */
  injectConnection(connection: Duplex): void {
    if (this.shuttingDown) {
      connection.destroy();
      return;
    }
    const session = new H2Connection(connection, {
      role: 'server',
      maxConcurrentStreams: this.options.maxConcurrentStreams,
      connectionWindowBytes: CONNECTION_WINDOW_BYTES,
      onStream: (stream) => this.onStream(stream),
      onError: (error) => this.logger.debug({ err: error }, 'gRPC connection error'),
      onClose: () => {
        this.sessions.delete(session);
        for (const callback of this.closeWaiters.get(session) ?? []) callback();
        this.closeWaiters.delete(session);
      },
    });
    this.sessions.add(session);
  }

  /** GOAWAY to every connection; open calls may finish for `graceTimeMs`, then connections are cut. */
  drain(graceTimeMs: number): void {
    for (const session of this.sessions) session.close();
    setTimeout(() => {
      for (const session of this.sessions) session.destroy();
    }, graceTimeMs).unref();
  }

  destroy(): void {
    this.shuttingDown = true;
    this.forceShutdown();
  }

  /** Sends GOAWAY on every connection, refuses new ones, calls back once open calls have finished. */
  tryShutdown(callback: () => void): void {
    this.shuttingDown = true;
    if (this.sessions.size === 0) {
      setImmediate(callback);
      return;
    }
    let open = this.sessions.size;
    for (const session of this.sessions) {
      const waiters = this.closeWaiters.get(session) ?? [];
      waiters.push(() => {
        open -= 1;
        if (open === 0) callback();
      });
      this.closeWaiters.set(session, waiters);
      session.close();
    }
  }

  /** Cuts every connection now; their calls see 'cancelled'. */
  forceShutdown(): void {
    this.shuttingDown = true;
    for (const session of [...this.sessions]) session.destroy();
  }

  /** Open connections (for tests and metrics). */
  get connectionCount(): number {
    return this.sessions.size;
  }

  private onStream(stream: H2Stream): void {
    const headers = stream.headers;
    if (stream.headerListTooLarge !== null) {
      return this.answerStatus(stream, { code: GrpcCode.RESOURCE_EXHAUSTED, details: `grpc: ${stream.headerListTooLarge}` });
    }
    const contentTypeHeader = headers['content-type'];
    const contentType = typeof contentTypeHeader === 'string' ? contentTypeHeader : undefined;
    if (!isGrpcContentType(contentType)) {
      // grpc-go answers a non-gRPC request on its port with HTTP 415.
      return refuse(stream, '415', `invalid gRPC request content-type "${contentType ?? ''}"`);
    }
    if (headers[':method'] !== 'POST') {
      return refuse(stream, '405', 'gRPC requires POST');
    }
    const path = String(headers[':path'] ?? '');
    const method = this.methods.get(path);
    if (method === undefined) return this.answerStatus(stream, unimplemented(path, this.services));
    const timeoutMs = parseGrpcTimeout(headers['grpc-timeout']);
    if (timeoutMs !== null && Number.isNaN(timeoutMs)) {
      return this.answerStatus(stream, { code: GrpcCode.INTERNAL, details: `transport: malformed grpc-timeout: ${String(headers['grpc-timeout'])}` });
    }
    const encodingHeader = headers['grpc-encoding'];
    const encoding = typeof encodingHeader === 'string' ? encodingHeader : 'identity';
    if (!SUPPORTED_ENCODINGS.has(encoding)) {
      return this.answerStatus(stream, {
        code: GrpcCode.UNIMPLEMENTED,
        details: `grpc: Decompressor is not installed for grpc-encoding "${encoding}"`,
      });
    }
    const deadline = timeoutMs === null ? Infinity : Date.now() + timeoutMs;
    const call = new LeanCall(stream, headers, method, this.options, encoding as Encoding, deadline);
    call.start(timeoutMs);
  }

  /** A trailers-only answer to a stream that gets no call; a client still sending is reset after it. */
  private answerStatus(stream: H2Stream, status: CallStatus): void {
    stream.respond(statusHeaders(status), true);
  }
}

/** A plain-HTTP answer (not gRPC) to a request that is not a gRPC call. */
function refuse(stream: H2Stream, status: string, text: string): void {
  stream.respond(encodeHeaderBlock([[':status', status], ['content-type', 'text/plain']]));
  stream.write(Buffer.from(text));
  stream.end();
}

/** `/pkg.Service/Method` → `pkg.Service`. */
function serviceOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash <= 0 ? '' : path.slice(1, slash);
}

/** grpc-go's wording for paths nobody serves. */
function unimplemented(path: string, services: ReadonlySet<string>): CallStatus {
  const service = serviceOf(path);
  if (!path.startsWith('/') || service === '') return { code: GrpcCode.UNIMPLEMENTED, details: `malformed method name: "${path}"` };
  if (!services.has(service)) return { code: GrpcCode.UNIMPLEMENTED, details: `unknown service ${service}` };
  return { code: GrpcCode.UNIMPLEMENTED, details: `unknown method ${path.slice(service.length + 2)} for service ${service}` };
}

/** Which gRPC server ApiServer runs: grpc-js, or the lean one of this file. */
export type GrpcServerKind = 'grpc-js' | 'lean';
export const GRPC_SERVER_KINDS: readonly GrpcServerKind[] = ['grpc-js', 'lean'];
/**
 * Used when neither the option nor TESSERA_GRPC_SERVER names one. Lean since it passed test/api,
 * test/server and test/compat (etcdctl 3.4, etcd3, the differential run against etcd); grpc-js
 * stays selectable (TESSERA_GRPC_SERVER=grpc-js, --experimental-grpc-server grpc-js).
 */
export const DEFAULT_GRPC_SERVER: GrpcServerKind = 'lean';

/**
 * The option if given, else the TESSERA_GRPC_SERVER environment variable (so a whole test suite or
 * a `tessera dev` cluster can be switched without new flags), else the default.
 */
export function resolveGrpcServerKind(option: GrpcServerKind | undefined, env = process.env): GrpcServerKind {
  if (option !== undefined) return option;
  const fromEnv = env.TESSERA_GRPC_SERVER;
  if (fromEnv === undefined || fromEnv === '') return DEFAULT_GRPC_SERVER;
  assert(
    (GRPC_SERVER_KINDS as readonly string[]).includes(fromEnv),
    () => `TESSERA_GRPC_SERVER must be one of ${GRPC_SERVER_KINDS.join(', ')}, not "${fromEnv}"`,
  );
  return fromEnv as GrpcServerKind;
}
