// etcd's HTTP/JSON gateway (grpc-gateway v1 paths under /v3/, as etcd 3.4 serves them): each
// request becomes a call to this server's own gRPC API over loopback, as etcd's gateway dials its
// own gRPC endpoint, so validation, limits and errors are the gRPC path's. See docs/API.md.
import type * as http from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Logger } from 'pino';
import { assert, EtcdError, GrpcCode, invalidArgument } from '../util/index.ts';
import { JsonCodec } from './gateway-json.ts';
import { ETCD_PROTO_FILES, PROTO_INCLUDE_DIR } from './protos.ts';
import { INTERNAL_ERROR_MESSAGE } from './status.ts';

/** How the gateway's loopback client decodes: .proto field names, base64 bytes, 64-bit ints as strings. */
const GATEWAY_PROTO_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  bytes: String,
  defaults: false,
  oneofs: false,
  includeDirs: [PROTO_INCLUDE_DIR],
};

/** etcd 3.4's gateway routes (the google.api.http options of its protos). HashKV has its 3.5 path. */
export const GATEWAY_ROUTES: Readonly<Record<string, string>> = Object.freeze({
  '/v3/kv/range': 'etcdserverpb.KV/Range',
  '/v3/kv/put': 'etcdserverpb.KV/Put',
  '/v3/kv/deleterange': 'etcdserverpb.KV/DeleteRange',
  '/v3/kv/txn': 'etcdserverpb.KV/Txn',
  '/v3/kv/compaction': 'etcdserverpb.KV/Compact',
  '/v3/watch': 'etcdserverpb.Watch/Watch',
  '/v3/lease/grant': 'etcdserverpb.Lease/LeaseGrant',
  '/v3/lease/revoke': 'etcdserverpb.Lease/LeaseRevoke',
  '/v3/kv/lease/revoke': 'etcdserverpb.Lease/LeaseRevoke',
  '/v3/lease/keepalive': 'etcdserverpb.Lease/LeaseKeepAlive',
  '/v3/lease/timetolive': 'etcdserverpb.Lease/LeaseTimeToLive',
  '/v3/kv/lease/timetolive': 'etcdserverpb.Lease/LeaseTimeToLive',
  '/v3/lease/leases': 'etcdserverpb.Lease/LeaseLeases',
  '/v3/kv/lease/leases': 'etcdserverpb.Lease/LeaseLeases',
  '/v3/cluster/member/add': 'etcdserverpb.Cluster/MemberAdd',
  '/v3/cluster/member/remove': 'etcdserverpb.Cluster/MemberRemove',
  '/v3/cluster/member/update': 'etcdserverpb.Cluster/MemberUpdate',
  '/v3/cluster/member/list': 'etcdserverpb.Cluster/MemberList',
  '/v3/cluster/member/promote': 'etcdserverpb.Cluster/MemberPromote',
  '/v3/maintenance/alarm': 'etcdserverpb.Maintenance/Alarm',
  '/v3/maintenance/status': 'etcdserverpb.Maintenance/Status',
  '/v3/maintenance/defragment': 'etcdserverpb.Maintenance/Defragment',
  '/v3/maintenance/hash': 'etcdserverpb.Maintenance/Hash',
  '/v3/maintenance/hashkv': 'etcdserverpb.Maintenance/HashKV',
  '/v3/maintenance/snapshot': 'etcdserverpb.Maintenance/Snapshot',
  '/v3/maintenance/transfer-leadership': 'etcdserverpb.Maintenance/MoveLeader',
  '/v3/lock/lock': 'v3lockpb.Lock/Lock',
  '/v3/lock/unlock': 'v3lockpb.Lock/Unlock',
  '/v3/election/campaign': 'v3electionpb.Election/Campaign',
  '/v3/election/proclaim': 'v3electionpb.Election/Proclaim',
  '/v3/election/leader': 'v3electionpb.Election/Leader',
  '/v3/election/observe': 'v3electionpb.Election/Observe',
  '/v3/election/resign': 'v3electionpb.Election/Resign',
  '/v3/auth/enable': 'etcdserverpb.Auth/AuthEnable',
  '/v3/auth/disable': 'etcdserverpb.Auth/AuthDisable',
  '/v3/auth/status': 'etcdserverpb.Auth/AuthStatus',
  '/v3/auth/authenticate': 'etcdserverpb.Auth/Authenticate',
  '/v3/auth/user/add': 'etcdserverpb.Auth/UserAdd',
  '/v3/auth/user/get': 'etcdserverpb.Auth/UserGet',
  '/v3/auth/user/list': 'etcdserverpb.Auth/UserList',
  '/v3/auth/user/delete': 'etcdserverpb.Auth/UserDelete',
  '/v3/auth/user/changepw': 'etcdserverpb.Auth/UserChangePassword',
  '/v3/auth/user/grant': 'etcdserverpb.Auth/UserGrantRole',
  '/v3/auth/user/revoke': 'etcdserverpb.Auth/UserRevokeRole',
  '/v3/auth/role/add': 'etcdserverpb.Auth/RoleAdd',
  '/v3/auth/role/get': 'etcdserverpb.Auth/RoleGet',
  '/v3/auth/role/list': 'etcdserverpb.Auth/RoleList',
  '/v3/auth/role/delete': 'etcdserverpb.Auth/RoleDelete',
  '/v3/auth/role/grant': 'etcdserverpb.Auth/RoleGrantPermission',
  '/v3/auth/role/revoke': 'etcdserverpb.Auth/RoleRevokePermission',
});

/** etcd's gateway passes the `Authorization` header on as the call's `token` metadata. */
function authMetadata(req: http.IncomingMessage): grpc.Metadata {
  const metadata = new grpc.Metadata();
  const token = req.headers.authorization;
  if (typeof token === 'string' && token.length > 0) metadata.set('token', token);
  return metadata;
}

/** grpc-gateway's HTTPStatusFromCode. */
const HTTP_STATUS: Readonly<Record<number, number>> = {
  [GrpcCode.OK]: 200,
  [GrpcCode.CANCELLED]: 408,
  [GrpcCode.UNKNOWN]: 500,
  [GrpcCode.INVALID_ARGUMENT]: 400,
  [GrpcCode.DEADLINE_EXCEEDED]: 504,
  [GrpcCode.NOT_FOUND]: 404,
  [GrpcCode.ALREADY_EXISTS]: 409,
  [GrpcCode.PERMISSION_DENIED]: 403,
  [GrpcCode.RESOURCE_EXHAUSTED]: 429,
  [GrpcCode.FAILED_PRECONDITION]: 400,
  [GrpcCode.ABORTED]: 409,
  [GrpcCode.OUT_OF_RANGE]: 400,
  [GrpcCode.UNIMPLEMENTED]: 501,
  [GrpcCode.INTERNAL]: 500,
  [GrpcCode.UNAVAILABLE]: 503,
  [GrpcCode.DATA_LOSS]: 500,
  [GrpcCode.UNAUTHENTICATED]: 401,
};

const STATUS_TEXT: Readonly<Record<number, string>> = {
  200: 'OK',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  409: 'Conflict',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** The CORS headers etcd sets on every client HTTP response (its default --cors is "*"). */
const CORS_HEADERS: Readonly<Record<string, string>> = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Methods': 'POST, GET, OPTIONS, PUT, DELETE',
  'Access-Control-Allow-Headers': 'accept, content-type, authorization',
};

interface Route {
  path: string;
  requestType: string;
  responseType: string;
  requestStream: boolean;
  responseStream: boolean;
  serialize: (value: object) => Buffer;
  deserialize: (bytes: Buffer) => Record<string, unknown>;
}

interface CallStatus {
  code: number;
  details: string;
}

export interface GatewayOptions {
  /** Where this server's gRPC API answers (the gateway's loopback target), known once bound. */
  target: () => string;
  /** Largest JSON body (or, on a stream, JSON message) accepted. */
  maxBodyBytes: number;
  logger: Logger;
}

export class Gateway {
  private readonly routes = new Map<string, Route>();
  private readonly codec: JsonCodec;
  private client: grpc.Client | null = null;
  private readonly calls = new Set<
    grpc.ClientReadableStream<unknown> | grpc.ClientDuplexStream<unknown, unknown> | grpc.ClientUnaryCall
  >();

  constructor(private readonly options: GatewayOptions) {
    assert(
      Number.isSafeInteger(options.maxBodyBytes) && options.maxBodyBytes > 0,
      'maxBodyBytes is positive',
    );
    const definition = protoLoader.loadSync([...ETCD_PROTO_FILES], GATEWAY_PROTO_OPTIONS);
    this.codec = new JsonCodec(definition);
    for (const [httpPath, grpcPath] of Object.entries(GATEWAY_ROUTES)) {
      const [service, method] = grpcPath.split('/');
      const methods = definition[service] as protoLoader.ServiceDefinition;
      const found = methods[method];
      assert(found !== undefined, () => `no method ${grpcPath}`);
      // etcd's request and response messages live in their service's package.
      const pkg = service.slice(0, service.lastIndexOf('.'));
      const requestType = `${pkg}.${(found.requestType.type as { name: string }).name}`;
      const responseType = `${pkg}.${(found.responseType.type as { name: string }).name}`;
      assert(
        requestType in definition && responseType in definition,
        () => `types of ${grpcPath} are loaded`,
      );
      this.routes.set(httpPath, {
        path: found.path,
        requestType,
        responseType,
        requestStream: found.requestStream,
        responseStream: found.responseStream,
        serialize: found.requestSerialize as (value: object) => Buffer,
        deserialize: found.responseDeserialize as (bytes: Buffer) => Record<string, unknown>,
      });
    }
  }

  /** The http.Server request handler. */
  handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    for (const [name, value] of Object.entries(CORS_HEADERS)) res.setHeader(name, value);
    if (req.method === 'OPTIONS') {
      res.writeHead(200).end();
      return;
    }
    const url = new URL(req.url ?? '/', 'http://gateway');
    // etcd still answers the v3beta paths of 3.3 clients.
    const path = url.pathname.startsWith('/v3beta/')
      ? `/v3/${url.pathname.slice('/v3beta/'.length)}`
      : url.pathname;
    const route = this.routes.get(path);
    if (route === undefined) return plainText(res, 404, 'Not Found\n');
    if (req.method !== 'POST') return plainText(res, 405, 'Method Not Allowed\n');
    if (route.requestStream) this.bidi(route, req, res);
    else this.single(route, req, res);
  }

  /** Cancels every call in flight (their HTTP responses end with an error) and closes the loopback client. */
  close(): void {
    for (const call of this.calls) call.cancel();
    this.calls.clear();
    this.client?.close();
    this.client = null;
  }

  private grpcClient(): grpc.Client {
    this.client ??= new grpc.Client(this.options.target(), grpc.credentials.createInsecure(), {
      // The server enforces etcd's request limits; the gateway forwards whatever it was given.
      'grpc.max_send_message_length': -1,
      'grpc.max_receive_message_length': -1,
      // Its own connection, closed with the gateway (a shared subchannel would outlive stop()).
      'grpc.use_local_subchannel_pool': 1,
    });
    return this.client;
  }

  /** Unary and server-streaming methods: one JSON request body. */
  private single(route: Route, req: http.IncomingMessage, res: http.ServerResponse): void {
    readBody(req, this.options.maxBodyBytes).then(
      (body) => {
        let request: object;
        try {
          request = this.codec.fromJson(route.requestType, body.trim() === '' ? {} : parseJson(body));
        } catch (error) {
          return this.fail(res, statusOf(error));
        }
        const metadata = authMetadata(req);
        if (route.responseStream) this.serverStream(route, request, res, metadata);
        else this.unary(route, request, res, metadata);
      },
      (error: unknown) => this.fail(res, statusOf(error)),
    );
  }

  private unary(route: Route, request: object, res: http.ServerResponse, metadata: grpc.Metadata): void {
    const call = this.grpcClient().makeUnaryRequest(
      route.path,
      route.serialize,
      route.deserialize,
      request,
      metadata,
      (error, response) => {
        this.calls.delete(call);
        if (error) return this.fail(res, error);
        assert(response !== undefined, 'a unary call without error has a response');
        const body = JSON.stringify(this.codec.toJson(route.responseType, response));
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(body);
      },
    );
    this.calls.add(call);
    res.on('close', () => {
      if (!res.writableFinished) call.cancel();
    });
  }

  private serverStream(route: Route, request: object, res: http.ServerResponse, metadata: grpc.Metadata): void {
    const call = this.grpcClient().makeServerStreamRequest(
      route.path,
      route.serialize,
      route.deserialize,
      request,
      metadata,
    );
    this.pipeResponses(route, call, res);
  }

  /** Watch and LeaseKeepAlive: the body is a stream of JSON requests, the response a stream of JSON lines. */
  private bidi(route: Route, req: http.IncomingMessage, res: http.ServerResponse): void {
    const call = this.grpcClient().makeBidiStreamRequest(route.path, route.serialize, route.deserialize, authMetadata(req));
    this.pipeResponses(route, call, res);
    const splitter = new JsonSplitter(this.options.maxBodyBytes);
    req.on('data', (chunk: Buffer) => {
      try {
        for (const text of splitter.push(chunk)) {
          if (!call.write(this.codec.fromJson(route.requestType, parseJson(text)))) {
            req.pause();
            call.once('drain', () => req.resume());
          }
        }
      } catch (error) {
        call.cancel();
        this.failStream(res, statusOf(error));
      }
    });
    req.on('end', () => {
      if (splitter.pending) {
        call.cancel();
        return this.failStream(res, {
          code: GrpcCode.INVALID_ARGUMENT,
          details: 'json: unexpected end of request body',
        });
      }
      call.end();
    });
  }

  /** Each response as one line `{"result": ...}`; the client reading slowly pauses the gRPC stream. */
  private pipeResponses(
    route: Route,
    call:
      | grpc.ClientReadableStream<Record<string, unknown>>
      | grpc.ClientDuplexStream<object, Record<string, unknown>>,
    res: http.ServerResponse,
  ): void {
    this.calls.add(call);
    call.on('data', (message: Record<string, unknown>) => {
      if (!res.headersSent) res.writeHead(200, { 'Content-Type': 'application/json' });
      if (!res.write(`${JSON.stringify({ result: this.codec.toJson(route.responseType, message) })}\n`)) {
        call.pause();
        res.once('drain', () => call.resume());
      }
    });
    call.on('error', (error: grpc.ServiceError) => {
      this.calls.delete(call);
      if (error.code !== GrpcCode.CANCELLED || !res.destroyed) this.failStream(res, error);
    });
    call.on('end', () => {
      this.calls.delete(call);
      if (!res.headersSent) res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end();
    });
    res.on('close', () => {
      if (!res.writableFinished) call.cancel();
    });
  }

  /** etcd's gateway error body: `{"error": message, "message": message, "code": grpc code}`. */
  private fail(res: http.ServerResponse, status: CallStatus): void {
    if (res.headersSent || res.destroyed) return void res.end();
    const body = JSON.stringify({ error: status.details, message: status.details, code: status.code });
    res.writeHead(httpStatus(status.code), { 'Content-Type': 'application/json' }).end(body);
  }

  /** Once a stream has started, grpc-gateway reports a failure as a final `{"error": {...}}` chunk. */
  private failStream(res: http.ServerResponse, status: CallStatus): void {
    if (!res.headersSent) return this.fail(res, status);
    if (res.writableEnded) return;
    const httpCode = httpStatus(status.code);
    const error = {
      grpc_code: status.code,
      http_code: httpCode,
      message: status.details,
      http_status: STATUS_TEXT[httpCode] ?? '',
    };
    res.end(JSON.stringify({ error }));
  }
}

function httpStatus(code: number): number {
  return HTTP_STATUS[code] ?? 500;
}

function statusOf(error: unknown): CallStatus {
  if (error instanceof EtcdError) return { code: error.code, details: error.message };
  return { code: GrpcCode.INTERNAL, details: INTERNAL_ERROR_MESSAGE };
}

function plainText(res: http.ServerResponse, status: number, text: string): void {
  res
    .writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' })
    .end(text);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw invalidArgument(`json: ${error instanceof Error ? error.message : 'invalid JSON'}`);
  }
}

function bodyTooLarge(maxBytes: number): EtcdError {
  return new EtcdError(
    GrpcCode.RESOURCE_EXHAUSTED,
    `tessera: gateway request body too large (limit ${maxBytes} bytes)`,
  );
}

/** The whole body as text, refusing more than `maxBytes` (the connection is then closed). */
function readBody(req: http.IncomingMessage, maxBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > maxBytes) {
        req.removeAllListeners('data');
        req.resume();
        reject(bodyTooLarge(maxBytes));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/**
 * Splits a byte stream of concatenated JSON objects (what grpc-gateway's JSON decoder reads from a
 * streaming request body) into one text per object, holding at most `maxBytes` of a pending one.
 */
export class JsonSplitter {
  private buffer = '';
  private depth = 0;
  private inString = false;
  private escaped = false;
  private start = -1;
  private scanned = 0;
  private readonly decoder = new StringDecoder('utf8');

  constructor(private readonly maxBytes: number) {}

  get pending(): boolean {
    return this.buffer.trim() !== '';
  }

  push(chunk: Buffer): string[] {
    this.buffer += this.decoder.write(chunk);
    const out: string[] = [];
    for (let i = this.scanned; i < this.buffer.length; i++) {
      const c = this.buffer[i];
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === '\\') this.escaped = true;
        else if (c === '"') this.inString = false;
        continue;
      }
      if (c === '"') this.inString = true;
      else if (c === '{' || c === '[') {
        if (this.depth === 0) this.start = i;
        this.depth += 1;
      } else if (c === '}' || c === ']') {
        this.depth -= 1;
        if (this.depth < 0) throw invalidArgument('json: unbalanced brackets in request body');
        if (this.depth === 0) {
          out.push(this.buffer.slice(this.start, i + 1));
          this.buffer = this.buffer.slice(i + 1);
          i = -1;
        }
      } else if (this.depth === 0 && !/\s/.test(c)) {
        throw invalidArgument(`json: unexpected ${JSON.stringify(c)} between requests`);
      }
    }
    this.scanned = this.buffer.length;
    if (Buffer.byteLength(this.buffer) > this.maxBytes) throw bodyTooLarge(this.maxBytes);
    return out;
  }
}
