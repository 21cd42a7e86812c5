// The client-facing server: etcd's v3 gRPC services and its HTTP/JSON gateway on one port (as
// etcd does with cmux; see listener.ts and docs/API.md), with etcd's message size limits.
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { assert } from '../util/index.ts';
import type {
  ClusterBackend,
  ElectionBackend,
  KvBackend,
  LeaseBackend,
  LockBackend,
  MaintenanceBackend,
  WatchBackend,
} from './backend.ts';
import { clusterServiceHandlers } from './cluster-service.ts';
import { Gateway } from './gateway.ts';
import { OpenStreams } from './handlers.ts';
import { kvServiceHandlers } from './kv-service.ts';
import { leaseServiceHandlers } from './lease-service.ts';
import { ClientListener } from './listener.ts';
import { electionServiceHandlers, lockServiceHandlers } from './lock-service.ts';
import { maintenanceServiceHandlers } from './maintenance-service.ts';
import { serverServiceDefinition } from './protos.ts';
import { DEFAULT_WATCH_LIMITS, watchServiceHandlers } from './watch-service.ts';
import type { WatchLimits } from './watch-service.ts';

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
/** JSON room beyond a request's base64-encoded bytes, for a gateway body. */
const GATEWAY_JSON_SLACK_BYTES = 64 * 1024;

export interface ApiServerOptions {
  /** The KV service, and the source of every response header's cluster/member/term. */
  backend: KvBackend;
  /** Each service below is served only if its backend is given; otherwise its methods answer UNIMPLEMENTED. */
  maintenance?: MaintenanceBackend;
  cluster?: ClusterBackend;
  watch?: WatchBackend;
  lease?: LeaseBackend;
  lock?: LockBackend;
  election?: ElectionBackend;
  /** Per-stream watch bounds; maxResponseBytes defaults to maxRequestBytes + GRPC_OVERHEAD_BYTES, like etcd. */
  watchLimits?: Partial<WatchLimits>;
  /** Serve etcd's HTTP/JSON gateway (/v3/...) on the same port (etcd's --enable-grpc-gateway); default true. */
  gateway?: boolean;
  host: string;
  /** 0 picks a free port; start() returns the one bound. */
  port: number;
  /** Largest write request (etcd --max-request-bytes); default 1.5 MiB. */
  maxRequestBytes?: number;
  /** Most ops per txn list (etcd --max-txn-ops); default 128. */
  maxTxnOps?: number;
  logger?: Logger;
}

interface Running {
  grpc: grpc.Server;
  injector: grpc.ConnectionInjector;
  listener: ClientListener;
  gateway: Gateway | null;
}

export class ApiServer {
  private readonly options: ApiServerOptions;
  private readonly watchLimits: Readonly<WatchLimits>;
  /** Streams that only end when the client leaves; stop() ends them. */
  private readonly streams = new OpenStreams();
  private readonly maxRequestBytes: number;
  private readonly maxTxnOps: number;
  private readonly logger: Logger;
  private running: Running | null = null;
  private boundPort = 0;

  constructor(options: ApiServerOptions) {
    this.options = options;
    this.maxRequestBytes = options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
    this.maxTxnOps = options.maxTxnOps ?? DEFAULT_MAX_TXN_OPS;
    this.logger = options.logger ?? pino({ name: 'tessera-api' });
    this.watchLimits = {
      ...DEFAULT_WATCH_LIMITS,
      maxResponseBytes: this.maxRequestBytes + GRPC_OVERHEAD_BYTES,
      ...options.watchLimits,
    };
    assert(
      Number.isSafeInteger(this.maxRequestBytes) && this.maxRequestBytes > 0,
      'maxRequestBytes is a positive integer',
    );
    assert(Number.isSafeInteger(this.maxTxnOps) && this.maxTxnOps > 0, 'maxTxnOps is a positive integer');
    assert(Number.isInteger(options.port) && options.port >= 0 && options.port <= 65_535, 'port is 0..65535');
  }

  /** Binds and starts serving; resolves to the bound port. */
  async start(): Promise<number> {
    assert(this.running === null, 'ApiServer already started');
    const server = new grpc.Server({
      'grpc.max_receive_message_length': this.maxRequestBytes + GRPC_OVERHEAD_BYTES,
      'grpc.max_send_message_length': MAX_SEND_BYTES,
    });
    this.addServices(server);
    const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    const gateway = this.options.gateway === false ? null : this.createGateway();
    const listener = new ClientListener(
      injector,
      (req, res) => (gateway === null ? res.writeHead(404).end() : gateway.handle(req, res)),
      this.logger,
    );
    try {
      this.boundPort = await listener.listen(this.options.host, this.options.port);
    } catch (error) {
      injector.destroy();
      server.forceShutdown();
      throw error;
    }
    this.running = { grpc: server, injector, listener, gateway };
    this.logger.info(
      { host: this.options.host, port: this.boundPort, gateway: gateway !== null },
      'etcd API listening',
    );
    return this.boundPort;
  }

  /** Stops accepting, ends long-lived streams, lets other calls finish (up to a grace period), then closes. */
  async stop(): Promise<void> {
    const running = this.running;
    if (running === null) return;
    this.running = null;
    const accepting = running.listener.stopAccepting();
    this.streams.closeAll();
    running.gateway?.close();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        running.grpc.forceShutdown();
        resolve();
      }, SHUTDOWN_GRACE_MS);
      running.grpc.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    await running.listener.closeConnections(SHUTDOWN_GRACE_MS);
    running.injector.destroy();
    await accepting;
  }

  private createGateway(): Gateway {
    // The gateway dials this server; a wildcard address is reached on loopback.
    const host = this.options.host;
    const loopback = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '::1' : host;
    const target = () =>
      loopback.includes(':') ? `[${loopback}]:${this.boundPort}` : `${loopback}:${this.boundPort}`;
    const maxBodyBytes =
      Math.ceil(((this.maxRequestBytes + GRPC_OVERHEAD_BYTES) * 4) / 3) + GATEWAY_JSON_SLACK_BYTES;
    return new Gateway({ target, maxBodyBytes, logger: this.logger });
  }

  /** A service left out answers UNIMPLEMENTED for each method (grpc-js's answer for unknown paths). */
  private addServices(server: grpc.Server): void {
    const { options, logger, streams } = this;
    const headerInfo = () => options.backend.header();
    server.addService(
      serverServiceDefinition('etcdserverpb.KV'),
      kvServiceHandlers({
        backend: options.backend,
        maxRequestBytes: this.maxRequestBytes,
        maxTxnOps: this.maxTxnOps,
        logger,
      }),
    );
    const add = (name: string, handlers: grpc.UntypedServiceImplementation) =>
      server.addService(serverServiceDefinition(name), handlers);
    if (options.maintenance !== undefined) {
      add(
        'etcdserverpb.Maintenance',
        maintenanceServiceHandlers({ backend: options.maintenance, headerInfo, logger, streams }),
      );
    }
    if (options.cluster !== undefined) {
      add('etcdserverpb.Cluster', clusterServiceHandlers({ backend: options.cluster, headerInfo, logger }));
    }
    if (options.watch !== undefined) {
      const limits = this.watchLimits;
      add(
        'etcdserverpb.Watch',
        watchServiceHandlers({ backend: options.watch, headerInfo, logger, limits, streams }),
      );
    }
    if (options.lease !== undefined) {
      add(
        'etcdserverpb.Lease',
        leaseServiceHandlers({ backend: options.lease, headerInfo, logger, streams }),
      );
    }
    if (options.lock !== undefined) {
      add('v3lockpb.Lock', lockServiceHandlers({ backend: options.lock, headerInfo, logger }));
    }
    if (options.election !== undefined) {
      add(
        'v3electionpb.Election',
        electionServiceHandlers({ backend: options.election, headerInfo, logger, streams }),
      );
    }
  }
}
