// A raw grpc-js client of etcd's KV, Auth, Watch, Lease, Maintenance and Cluster services that sends
// a chosen `token` metadata (or none), so the auth tests control exactly what goes over the wire.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ETCD_PROTO_FILES, PROTO_INCLUDE_DIR } from '../../src/api/index.ts';

const definition = protoLoader.loadSync([...ETCD_PROTO_FILES], {
  keepCase: false,
  longs: String,
  enums: String,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_INCLUDE_DIR],
});
const pb = (grpc.loadPackageDefinition(definition) as any).etcdserverpb;

export interface CallError extends Error {
  code: number;
  details: string;
}

type Service = 'KV' | 'Auth' | 'Watch' | 'Lease' | 'Maintenance' | 'Cluster';

export class AuthTestClient {
  private readonly stubs = new Map<Service, any>();
  token: string | null = null;

  constructor(
    private readonly address: string,
    private readonly credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
    private readonly channelOptions: grpc.ChannelOptions = {},
  ) {}

  private stub(service: Service): any {
    let stub = this.stubs.get(service);
    if (stub === undefined) {
      stub = new pb[service](this.address, this.credentials, this.channelOptions);
      this.stubs.set(service, stub);
    }
    return stub;
  }

  metadata(): grpc.Metadata {
    const metadata = new grpc.Metadata();
    if (this.token !== null) metadata.set('token', this.token);
    return metadata;
  }

  call(service: Service, method: string, request: object = {}): Promise<any> {
    return new Promise((resolve, reject) => {
      this.stub(service)[method](request, this.metadata(), { deadline: Date.now() + 10_000 }, (error: Error | null, response: unknown) =>
        error ? reject(error) : resolve(response),
      );
    });
  }

  /** Authenticates and keeps the token for later calls; returns it. */
  async login(name: string, password: string): Promise<string> {
    this.token = null;
    const response = await this.call('Auth', 'authenticate', { name, password });
    this.token = response.token as string;
    return this.token;
  }

  /** Opens a watch on [key, rangeEnd) and returns the first response (created, possibly canceled). */
  watchOnce(key: string, rangeEnd = ''): Promise<any> {
    const stream = this.stub('Watch').watch(this.metadata());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        stream.cancel();
        reject(new Error('no watch response'));
      }, 10_000);
      stream.on('data', (response: unknown) => {
        clearTimeout(timer);
        stream.cancel();
        resolve(response);
      });
      stream.on('error', (error: CallError) => {
        clearTimeout(timer);
        if (error.code !== grpc.status.CANCELLED) reject(error);
      });
      stream.write({ createRequest: { key: Buffer.from(key), rangeEnd: Buffer.from(rangeEnd) } });
    });
  }

  close(): void {
    for (const stub of this.stubs.values()) stub.close();
    this.stubs.clear();
  }
}

/** Resolves to the gRPC error a call fails with (fails the test if it succeeds). */
export async function failure(pending: Promise<unknown>): Promise<CallError> {
  try {
    await pending;
  } catch (error) {
    return error as CallError;
  }
  throw new Error('expected the call to fail');
}
