// gRPC plumbing for the load generator: the etcd method paths, a connection (the lean node:http2
// client of h2.ts, or grpc-js.ts), and request/response exchanges over a bidi stream.
import type { TransportName } from './config.ts';
import { H2Connection } from './h2.ts';
import type { DuplexStream, RpcConnection } from './rpc-error.ts';
import { RpcError } from './rpc-error.ts';
import { decodeStatus } from './wire.ts';

const GRPC_UNKNOWN = 2;
const GRPC_UNAVAILABLE = 14;

export { RpcError, statusName, GRPC_UNIMPLEMENTED } from './rpc-error.ts';
export type { DuplexStream, RpcConnection } from './rpc-error.ts';

export const PATHS = {
  put: '/etcdserverpb.KV/Put',
  range: '/etcdserverpb.KV/Range',
  txn: '/etcdserverpb.KV/Txn',
  watch: '/etcdserverpb.Watch/Watch',
  leaseGrant: '/etcdserverpb.Lease/LeaseGrant',
  leaseKeepAlive: '/etcdserverpb.Lease/LeaseKeepAlive',
  status: '/etcdserverpb.Maintenance/Status',
} as const;

/** Request/response over a bidi stream, one exchange at a time (LeaseKeepAlive). */
export class StreamExchange {
  private pending: { resolve: (bytes: Buffer) => void; reject: (error: Error) => void } | null = null;
  private failure: Error | null = null;

  constructor(private readonly stream: DuplexStream) {
    stream.on('data', (bytes: Buffer) => {
      const pending = this.pending;
      this.pending = null;
      pending?.resolve(bytes);
    });
    stream.on('error', (error) => this.fail(new RpcError(error.code ?? GRPC_UNKNOWN, error.details ?? error.message)));
    stream.on('end', () => this.fail(new RpcError(GRPC_UNAVAILABLE, 'stream ended by the server')));
  }

  private fail(error: Error): void {
    this.failure ??= error;
    const pending = this.pending;
    this.pending = null;
    pending?.reject(error);
  }

  exchange(request: Buffer): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.pending) return Promise.reject(new Error('one exchange at a time on a stream'));
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.stream.write(request);
    });
  }

  close(): void {
    this.stream.end();
    this.stream.cancel();
  }
}

export async function openConnection(transport: TransportName, endpoint: string): Promise<RpcConnection> {
  if (transport === 'h2') return new H2Connection(endpoint);
  const { GrpcJsConnection } = await import('./grpc-js.ts');
  return new GrpcJsConnection(endpoint);
}

/**
 * Which of `endpoints` serve the Raft leader and which a follower, from each one's
 * Maintenance.Status (etcd and Tessera both answer it). A single client's latency depends on this:
 * through a follower a write takes two more hops (the proposal to the leader, the commit back).
 */
async function findRoles(endpoints: readonly string[], timeoutMs: number): Promise<{ leader: string | null; followers: string[] }> {
  let leader: string | null = null;
  const followers: string[] = [];
  for (const endpoint of endpoints) {
    const connection = new H2Connection(endpoint);
    try {
      await connection.waitReady(timeoutMs);
      const status = decodeStatus(await connection.unary(PATHS.status, Buffer.alloc(0), timeoutMs));
      if (status.leader !== '' && status.leader === status.memberId) leader = endpoint;
      else followers.push(endpoint);
    } finally {
      connection.close();
    }
  }
  return { leader, followers };
}

/** The first of `endpoints` serving the Raft leader, or a follower; null when none does. */
export async function findTarget(endpoints: readonly string[], role: 'leader' | 'follower', timeoutMs = 5_000): Promise<string | null> {
  const roles = await findRoles(endpoints, timeoutMs);
  return role === 'leader' ? roles.leader : (roles.followers[0] ?? null);
}
