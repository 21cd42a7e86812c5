// The etcdserverpb.Lease service (etcd's v3rpc/lease.go): grant, revoke, time-to-live, listing,
// and the keepalive stream, which answers renewals one at a time, in order, as etcd does.
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { assert, EtcdError, Errors } from '../util/index.ts';
import type { AuthGate } from './auth-gate.ts';
import type { AuthStamp, HeaderInfo, LeaseBackend } from './backend.ts';
import { encodeHeader, parseInt64 } from './codec.ts';
import { drained, endWithStatus, SERVER_STOPPED, unaryHandler } from './handlers.ts';
import type { OpenStreams } from './handlers.ts';
import type { Received } from './protos.ts';
import { toStatus } from './status.ts';
import type {
  WireLeaseGrantRequest,
  WireLeaseGrantResponse,
  WireLeaseIdRequest,
  WireLeaseKeepAliveResponse,
  WireLeaseLeasesResponse,
  WireLeaseRevokeResponse,
  WireLeaseTimeToLiveRequest,
  WireLeaseTimeToLiveResponse,
  WireResponseHeader,
} from './wire.ts';

/**
 * Keepalives one stream may have read but not yet answered. Past it the stream stops reading
 * (HTTP/2 flow control then holds the client back) until half of them are answered.
 */
export const MAX_PENDING_KEEPALIVES = 128;

export interface LeaseServiceOptions {
  backend: LeaseBackend;
  headerInfo: () => HeaderInfo;
  logger: Logger;
  streams: OpenStreams;
  /** With auth enabled, LeaseRevoke needs WRITE on every key attached to the lease (as etcd). */
  gate?: AuthGate;
}

export function isLeaseNotFound(error: unknown): boolean {
  return error instanceof EtcdError && error.message === Errors.leaseNotFound().message;
}

export function leaseServiceHandlers(options: LeaseServiceOptions): grpc.UntypedServiceImplementation {
  const { backend, headerInfo, logger } = options;
  const header = (revision: number): WireResponseHeader => encodeHeader(revision, headerInfo());
  return {
    LeaseGrant: unaryHandler(
      'LeaseGrant',
      logger,
      async ({ message }: Received<WireLeaseGrantRequest>): Promise<WireLeaseGrantResponse> => {
        const req = { id: parseInt64(message.ID, 'ID'), ttl: parseInt64(message.TTL, 'TTL') };
        const response = await backend.leaseGrant(req);
        assert(
          response.id !== 0 && (req.id === 0 || response.id === req.id),
          'a grant answers with the lease it granted',
        );
        return { header: header(response.header.revision), ID: response.id, TTL: response.ttl };
      },
    ),
    LeaseRevoke: unaryHandler(
      'LeaseRevoke',
      logger,
      async (request: Received<WireLeaseIdRequest>): Promise<WireLeaseRevokeResponse> => {
        const id = parseInt64(request.message.ID, 'ID');
        const gate = options.gate;
        let stamp: AuthStamp | undefined;
        if (gate?.active === true) {
          const { keys } = await backend.leaseTimeToLive({ id, keys: true });
          const empty = new Uint8Array(0);
          stamp = gate.check(request, keys.map((key) => ({ kind: 'write', key, rangeEnd: empty })), 'LeaseRevoke');
        }
        const response = await backend.leaseRevoke(id, stamp);
        return { header: header(response.header.revision) };
      },
    ),
    LeaseTimeToLive: unaryHandler(
      'LeaseTimeToLive',
      logger,
      async ({ message }: Received<WireLeaseTimeToLiveRequest>): Promise<WireLeaseTimeToLiveResponse> => {
        const id = parseInt64(message.ID, 'ID');
        try {
          const response = await backend.leaseTimeToLive({ id, keys: message.keys });
          return {
            header: header(response.header.revision),
            ID: id,
            TTL: response.ttl,
            grantedTTL: response.grantedTtl,
            keys: response.keys,
          };
        } catch (error) {
          // etcd answers an unknown (or expired) lease with TTL -1, not an error.
          if (!isLeaseNotFound(error)) throw error;
          return { header: header(backend.currentRevision()), ID: id, TTL: -1, grantedTTL: 0, keys: [] };
        }
      },
    ),
    LeaseLeases: unaryHandler('LeaseLeases', logger, async (): Promise<WireLeaseLeasesResponse> => {
      const response = await backend.leaseLeases();
      return {
        header: header(response.header.revision),
        leases: response.leases.map((lease) => ({ ID: lease.id })),
      };
    }),
    LeaseKeepAlive: (
      call: grpc.ServerDuplexStream<Received<WireLeaseIdRequest>, WireLeaseKeepAliveResponse>,
    ) => {
      new KeepAliveStream(call, options, header).start();
    },
  };
}

class KeepAliveStream {
  private readonly pending: number[] = [];
  private pumping = false;
  private closed = false;
  private clientDone = false;
  private readingPaused = false;
  private unregister: () => void = () => {};

  constructor(
    private readonly call: grpc.ServerDuplexStream<Received<WireLeaseIdRequest>, WireLeaseKeepAliveResponse>,
    private readonly options: LeaseServiceOptions,
    private readonly header: (revision: number) => WireResponseHeader,
  ) {}

  start(): void {
    this.unregister = this.options.streams.add(() => this.fail(SERVER_STOPPED));
    this.call.on('data', (request: Received<WireLeaseIdRequest>) => this.onRequest(request.message));
    // etcd ends the stream with OK once the client half-closes and every renewal is answered.
    this.call.on('end', () => {
      this.clientDone = true;
      this.finishIfDone();
    });
    this.call.on('cancelled', () => this.close());
    this.call.on('close', () => this.close());
    this.call.on('error', () => this.close());
  }

  private onRequest(request: WireLeaseIdRequest): void {
    if (this.closed) return;
    let id: number;
    try {
      id = parseInt64(request.ID, 'ID');
    } catch (error) {
      return this.fail(toStatus(error, 'LeaseKeepAlive', this.options.logger));
    }
    this.pending.push(id);
    if (this.pending.length >= MAX_PENDING_KEEPALIVES && !this.readingPaused) {
      this.readingPaused = true;
      this.call.pause();
    }
    if (!this.pumping) void this.pump();
  }

  /** Answers pending renewals in order, one at a time; each header is taken before its renewal, as etcd does. */
  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.pending.length > 0 && !this.closed) {
        const id = this.pending.shift() as number;
        const revision = this.options.backend.currentRevision();
        let ttl: number;
        try {
          ttl = await this.options.backend.leaseKeepAlive(id);
        } catch (error) {
          if (!isLeaseNotFound(error))
            return this.fail(toStatus(error, 'LeaseKeepAlive', this.options.logger));
          ttl = 0; // etcd: a renewal of an unknown lease answers TTL 0
        }
        if (this.closed) return;
        const accepted = this.call.write({ header: this.header(revision), ID: id, TTL: ttl });
        if (this.readingPaused && this.pending.length <= MAX_PENDING_KEEPALIVES / 2) {
          this.readingPaused = false;
          this.call.resume();
        }
        if (!accepted) await drained(this.call);
      }
    } finally {
      this.pumping = false;
    }
    this.finishIfDone();
  }

  private finishIfDone(): void {
    if (!this.clientDone || this.pumping || this.pending.length > 0 || this.closed) return;
    this.call.end();
    this.close();
  }

  private fail(status: Partial<grpc.StatusObject>): void {
    endWithStatus(this.call, status);
    this.close();
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pending.length = 0;
    this.unregister();
  }
}
