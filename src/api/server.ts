// The client-facing server: etcd's v3 gRPC services and its HTTP/JSON gateway on one port (as
// etcd does with cmux; see listener.ts and docs/API.md), with etcd's message size limits.
import type * as http from 'node:http';
import type * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { assert } from '../util/index.ts';
import {
  AuthGate,
  CLUSTER_POLICY,
  ELECTION_POLICY,
  LEASE_POLICY,
  LOCK_POLICY,
  MAINTENANCE_POLICY,
} from './auth-gate.ts';
import type { StaticPolicy, WrapOptions } from './auth-gate.ts';
import { authServiceHandlers } from './auth-service.ts';
import type {
  AuthBackend,
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
import { LeanGrpcServer, resolveGrpcServerKind } from './lean-server.ts';
import type { GrpcServerKind } from './lean-server.ts';
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
  /**
   * etcd's Auth service and, once auth is enabled, authorization of every call (auth-gate.ts).
   * Without it there is no Auth service and no call is checked.
   */
  auth?: AuthBackend;
  /** Per-stream watch bounds; maxResponseBytes defaults to maxRequestBytes + GRPC_OVERHEAD_BYTES, like etcd. */
  watchLimits?: Partial<WatchLimits>;
  /** Serve etcd's HTTP/JSON gateway (/v3/...) on the same port (etcd's --enable-grpc-gateway); default true. */
  gateway?: boolean;
  /**
   * HTTP/1 requests are offered here first (etcd's /metrics, /health, /version on the client port);
   * resolves true when it answered the request, false to hand it to the gateway.
   */
  opsRoutes?: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<boolean>;
  host: string;
  /** 0 picks a free port; start() returns the one bound. */
  port: number;
  /** Largest write request (etcd --max-request-bytes); default 1.5 MiB. */
  maxRequestBytes?: number;
  /** Most ops per txn list (etcd --max-txn-ops); default 128. */
  maxTxnOps?: number;
  logger?: Logger;
  /**
   * Serve clients over TLS (etcd's --cert-file/--key-file; mutual TLS with requestCert +
   * rejectUnauthorized + ca, etcd's --client-cert-auth/--trusted-ca-file). gRPC and the gateway
   * share the port, split by ALPN. setSecureContext() swaps certificates for new connections.
   */
  tls?: tls.TlsOptions;
  /**
   * The gRPC server: the lean node:http2 server (lean-server.ts, hand-written codecs for the hot
   * messages) or grpc-js. Default: TESSERA_GRPC_SERVER if set, else DEFAULT_GRPC_SERVER (lean).
   */
  grpcServer?: GrpcServerKind;
}

interface Running {
  grpc: grpc.Server | LeanGrpcServer;
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
  /** With TLS: where the gateway reaches this server's gRPC API (a private Unix socket). */
  private gatewayTarget: string | null = null;

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
    const server =
      resolveGrpcServerKind(this.options.grpcServer) === 'lean'
        ? new LeanGrpcServer({ maxReceiveMessageBytes: this.maxRequestBytes + GRPC_OVERHEAD_BYTES, logger: this.logger })
        : new grpc.Server({
            'grpc.max_receive_message_length': this.maxRequestBytes + GRPC_OVERHEAD_BYTES,
            'grpc.max_send_message_length': MAX_SEND_BYTES,
          });
    this.addServices(server);
    const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    const gateway = this.options.gateway === false ? null : this.createGateway();
    const listener = new ClientListener(
      injector,
      (req, res) => {
        const ops = this.options.opsRoutes;
        const rest = () => (gateway === null ? res.writeHead(404).end() : gateway.handle(req, res));
        if (ops === undefined) return rest();
        ops(req, res).then(
          (served) => {
            if (!served) rest();
          },
          () => {
            if (!res.headersSent) res.writeHead(500).end();
          },
        );
      },
      this.logger,
      { tls: this.options.tls },
    );
    try {
      if (listener.secure && gateway !== null) this.gatewayTarget = await listener.listenLocal();
      this.boundPort = await listener.listen(this.options.host, this.options.port);
    } catch (error) {
      await listener.stopAccepting();
      injector.destroy();
      server.forceShutdown();
      throw error;
    }
    this.running = { grpc: server, injector, listener, gateway };
    this.logger.info(
      { host: this.options.host, port: this.boundPort, gateway: gateway !== null, tls: listener.secure },
      'etcd API listening',
    );
    return this.boundPort;
  }

  /** New certificates for new client connections (certificate reload); open connections keep theirs. */
  setSecureContext(options: tls.TlsOptions): void {
    assert(this.running !== null && this.options.tls !== undefined, 'setSecureContext needs a running TLS server');
    this.running.listener.setSecureContext(options);
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
      this.gatewayTarget ??
      (loopback.includes(':') ? `[${loopback}]:${this.boundPort}` : `${loopback}:${this.boundPort}`);
    const maxBodyBytes =
      Math.ceil(((this.maxRequestBytes + GRPC_OVERHEAD_BYTES) * 4) / 3) + GATEWAY_JSON_SLACK_BYTES;
    return new Gateway({ target, maxBodyBytes, logger: this.logger });
  }

  /** A service left out answers UNIMPLEMENTED for each method (grpc-js's answer for unknown paths). */
  private addServices(server: Pick<grpc.Server, 'addService'>): void {
    const { options, logger, streams } = this;
    const headerInfo = () => options.backend.header();
    const gate = new AuthGate(options.auth, logger);
    const add = (name: string, handlers: grpc.UntypedServiceImplementation, policy?: StaticPolicy, wrap?: WrapOptions) =>
      server.addService(serverServiceDefinition(name), gate.wrap(handlers, policy, wrap));
    add(
      'etcdserverpb.KV',
      kvServiceHandlers({
        backend: options.backend,
        maxRequestBytes: this.maxRequestBytes,
        maxTxnOps: this.maxTxnOps,
        logger,
        gate,
      }),
    );
    if (options.auth !== undefined) {
      // Audit lines name who changed what, also while auth is disabled (the certificate's CN, if any).
      add('etcdserverpb.Auth', authServiceHandlers({ backend: options.auth, gate, headerInfo, logger }), undefined, { recordAlways: true });
    }
    if (options.maintenance !== undefined) {
      add(
        'etcdserverpb.Maintenance',
        maintenanceServiceHandlers({ backend: options.maintenance, headerInfo, logger, streams }),
        MAINTENANCE_POLICY,
      );
    }
    if (options.cluster !== undefined) {
      add('etcdserverpb.Cluster', clusterServiceHandlers({ backend: options.cluster, headerInfo, logger }), CLUSTER_POLICY);
    }
    if (options.watch !== undefined) {
      const limits = this.watchLimits;
      add(
        'etcdserverpb.Watch',
        watchServiceHandlers({ backend: options.watch, headerInfo, logger, limits, streams, gate }),
      );
    }
    if (options.lease !== undefined) {
      add(
        'etcdserverpb.Lease',
        leaseServiceHandlers({ backend: options.lease, headerInfo, logger, streams, gate }),
        LEASE_POLICY,
      );
    }
    if (options.lock !== undefined) {
      add('v3lockpb.Lock', lockServiceHandlers({ backend: options.lock, headerInfo, logger, gate }), LOCK_POLICY);
    }
    if (options.election !== undefined) {
      add(
        'v3electionpb.Election',
        electionServiceHandlers({ backend: options.election, headerInfo, logger, streams, gate }),
        ELECTION_POLICY,
      );
    }
  }
}
