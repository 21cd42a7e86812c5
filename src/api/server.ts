// The client-facing gRPC server: etcd's v3 services on one port, with etcd's message size limits.
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { assert } from '../util/index.ts';
import type { KvBackend } from './backend.ts';
import { kvServiceHandlers } from './kv-service.ts';
import { serverServiceDefinition } from './protos.ts';

/** etcd's default --max-request-bytes (1.5 MiB). */
export const DEFAULT_MAX_REQUEST_BYTES = 1_572_864;
/** etcd's default --max-txn-ops. */
export const DEFAULT_MAX_TXN_OPS = 128;
/**
 * What etcd lets a gRPC message exceed --max-request-bytes by (its grpcOverheadBytes): gRPC refuses
 * larger messages outright (RESOURCE_EXHAUSTED); up to it, writes get "request is too large".
 */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;
/** etcd's MaxSendMsgSize: responses are bounded by the range limits, not by gRPC. */
const MAX_SEND_BYTES = 2 ** 31 - 1;
/** How long stop() lets in-flight calls finish before cutting connections. */
const SHUTDOWN_GRACE_MS = 5_000;

export interface ApiServerOptions {
  backend: KvBackend;
  host: string;
  /** 0 picks a free port; start() returns the one bound. */
  port: number;
  /** Largest write request (etcd --max-request-bytes); default 1.5 MiB. */
  maxRequestBytes?: number;
  /** Most ops per txn list (etcd --max-txn-ops); default 128. */
  maxTxnOps?: number;
  logger?: Logger;
}

export class ApiServer {
  private readonly backend: KvBackend;
  private readonly address: string;
  private readonly maxRequestBytes: number;
  private readonly maxTxnOps: number;
  private readonly logger: Logger;
  private server: grpc.Server | null = null;

  constructor(options: ApiServerOptions) {
    this.backend = options.backend;
    this.maxRequestBytes = options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
    this.maxTxnOps = options.maxTxnOps ?? DEFAULT_MAX_TXN_OPS;
    this.logger = options.logger ?? pino({ name: 'tessera-api' });
    assert(Number.isSafeInteger(this.maxRequestBytes) && this.maxRequestBytes > 0, 'maxRequestBytes is a positive integer');
    assert(Number.isSafeInteger(this.maxTxnOps) && this.maxTxnOps > 0, 'maxTxnOps is a positive integer');
    assert(Number.isInteger(options.port) && options.port >= 0 && options.port <= 65_535, 'port is 0..65535');
    // An IPv6 literal needs brackets in a gRPC address.
    this.address = options.host.includes(':') ? `[${options.host}]:${options.port}` : `${options.host}:${options.port}`;
  }

  /** Binds and starts serving; resolves to the bound port. */
  async start(): Promise<number> {
    assert(this.server === null, 'ApiServer already started');
    const server = new grpc.Server({
      'grpc.max_receive_message_length': this.maxRequestBytes + GRPC_OVERHEAD_BYTES,
      'grpc.max_send_message_length': MAX_SEND_BYTES,
    });
    server.addService(
      serverServiceDefinition('etcdserverpb.KV'),
      kvServiceHandlers({
        backend: this.backend,
        maxRequestBytes: this.maxRequestBytes,
        maxTxnOps: this.maxTxnOps,
        logger: this.logger,
      }),
    );
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(this.address, grpc.ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      );
    }).catch((error: unknown) => {
      server.forceShutdown();
      throw error;
    });
    this.server = server;
    this.logger.info({ address: this.address, port }, 'etcd API listening');
    return port;
  }

  /** Stops accepting calls, lets in-flight ones finish (up to a grace period), then closes. */
  async stop(): Promise<void> {
    const server = this.server;
    if (server === null) return;
    this.server = null;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, SHUTDOWN_GRACE_MS);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
