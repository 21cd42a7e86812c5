// A raw grpc-js client of etcd's KV, Auth, Watch, Lease, Maintenance, Cluster and Lock services that sends
// a chosen `token` metadata (or none), so the auth tests control exactly what goes over the wire.
import * as grpc from '@grpc/grpc-js';
import { etcdserverpb as pb, v3lockpb } from '../support/etcd-grpc.ts';
import type { CallError } from '../support/etcd-grpc.ts';

export { callError as failure } from '../support/etcd-grpc.ts';
export type { CallError } from '../support/etcd-grpc.ts';

type Service = 'KV' | 'Auth' | 'Watch' | 'Lease' | 'Maintenance' | 'Cluster' | 'Lock';

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
      stub = new (service === 'Lock' ? v3lockpb.Lock : pb[service])(this.address, this.credentials, this.channelOptions);
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

