// A plain grpc-js client of etcd's KV service, built from the same proto files the server loads,
// decoding int64s as strings so tests see exactly what went over the wire.
import * as grpc from '@grpc/grpc-js';
import { etcdDefinition as definition, etcdserverpb } from '../support/etcd-grpc.ts';

export { callError } from '../support/etcd-grpc.ts';
export type { CallError } from '../support/etcd-grpc.ts';

export class KvClient {
  readonly raw: grpc.Client;
  private readonly kv: any;

  constructor(address: string) {
    this.kv = new etcdserverpb.KV(address, grpc.credentials.createInsecure(), {
      'grpc.max_send_message_length': -1,
      'grpc.max_receive_message_length': -1,
    });
    this.raw = this.kv;
  }

  call(method: 'range' | 'put' | 'deleteRange' | 'txn' | 'compact', request: object): Promise<any> {
    return new Promise((resolve, reject) => {
      this.kv[method](request, { deadline: Date.now() + 10_000 }, (error: Error | null, response: unknown) =>
        error ? reject(error) : resolve(response),
      );
    });
  }

  /** Sends `body` as the request message of `path` unchanged, and returns the raw response bytes. */
  rawCall(path: string, body: Buffer): Promise<Buffer> {
    const identity = (b: Buffer) => b;
    return new Promise((resolve, reject) => {
      this.raw.makeUnaryRequest(
        path,
        identity,
        identity,
        body,
        { deadline: Date.now() + 10_000 },
        (error, response) => (error ? reject(error) : resolve(response as Buffer)),
      );
    });
  }

  close(): void {
    this.raw.close();
  }
}

const v3lockpb = (grpc.loadPackageDefinition(definition) as any).v3lockpb;
const v3electionpb = (grpc.loadPackageDefinition(definition) as any).v3electionpb;

/** The services of etcd's client API a test can call, by their proto names. */
export type ServiceName = 'KV' | 'Watch' | 'Lease' | 'Cluster' | 'Maintenance' | 'Auth' | 'Lock' | 'Election';

function serviceConstructor(name: ServiceName): any {
  if (name === 'Lock') return v3lockpb.Lock;
  if (name === 'Election') return v3electionpb.Election;
  return etcdserverpb[name];
}

/** A grpc-js client of every etcd service on one channel, decoding int64s as strings and enums as names. */
export class EtcdClient {
  private readonly clients = new Map<ServiceName, any>();

  constructor(private readonly address: string) {}

  service(name: ServiceName): any {
    let client = this.clients.get(name);
    if (client === undefined) {
      const Service = serviceConstructor(name);
      client = new Service(this.address, grpc.credentials.createInsecure(), {
        'grpc.max_send_message_length': -1,
        'grpc.max_receive_message_length': -1,
      });
      this.clients.set(name, client);
    }
    return client;
  }

  /** A unary call; `method` is the proto's rpc name in lowerCamelCase or as written (grpc-js has both). */
  call(service: ServiceName, method: string, request: object = {}, deadlineMs = 10_000): Promise<any> {
    const client = this.service(service);
    return new Promise((resolve, reject) => {
      client[method](
        request,
        { deadline: Date.now() + deadlineMs },
        (error: Error | null, response: unknown) => (error ? reject(error) : resolve(response)),
      );
    });
  }

  /** A server-streaming call, collected: resolves to every message, rejects with the final error. */
  collect(service: ServiceName, method: string, request: object = {}): Promise<any[]> {
    const call = this.service(service)[method](request, { deadline: Date.now() + 10_000 });
    const messages: any[] = [];
    return new Promise((resolve, reject) => {
      call.on('data', (message: unknown) => messages.push(message));
      call.on('error', reject);
      call.on('end', () => resolve(messages));
    });
  }

  close(): void {
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }
}

/** One bidirectional stream (Watch, LeaseKeepAlive) read message by message. */
export class DuplexReader {
  readonly messages: any[] = [];
  private waiters: (() => void)[] = [];
  error: any = null;
  ended = false;

  constructor(readonly call: any) {
    call.on('data', (message: unknown) => {
      this.messages.push(message);
      this.wake();
    });
    call.on('error', (error: unknown) => {
      this.error = error;
      this.wake();
    });
    call.on('end', () => {
      this.ended = true;
      this.wake();
    });
  }

  write(message: object): void {
    this.call.write(message);
  }

  /** The next message, waiting up to `timeoutMs`. */
  async next(timeoutMs = 5_000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.length === 0) {
      if (this.error !== null) throw this.error;
      if (this.ended) throw new Error('stream ended');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no message within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.messages.shift();
  }

  /** Asserts nothing arrives within `ms`. */
  async nothingWithin(ms: number): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    if (this.messages.length > 0) throw new Error(`unexpected message: ${JSON.stringify(this.messages[0])}`);
  }

  close(): void {
    this.call.cancel();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

/** A decoded message with proto3 defaults removed, so it encodes as etcd (gogoproto) would. */
export function canonical(value: any): any {
  if (Buffer.isBuffer(value) || typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map(canonical);
  const out: any = {};
  for (const [k, v] of Object.entries(value)) {
    const empty =
      v === null ||
      v === false ||
      v === '' ||
      v === '0' ||
      v === 'PUT' ||
      (Buffer.isBuffer(v) && v.length === 0) ||
      (Array.isArray(v) && v.length === 0);
    if (!empty) out[k] = canonical(v);
  }
  return out;
}
