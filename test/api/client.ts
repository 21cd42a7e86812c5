// A plain grpc-js client of etcd's KV service, built from the same proto files the server loads,
// decoding int64s as strings so tests see exactly what went over the wire.
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
const etcdserverpb = (grpc.loadPackageDefinition(definition) as any).etcdserverpb;

export interface CallError extends Error {
  code: number;
  details: string;
}

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
      this.raw.makeUnaryRequest(path, identity, identity, body, { deadline: Date.now() + 10_000 }, (error, response) =>
        error ? reject(error) : resolve(response as Buffer),
      );
    });
  }

  close(): void {
    this.raw.close();
  }
}

/** Resolves to the error a call failed with (and fails the test if it succeeded). */
export async function callError(promise: Promise<unknown>): Promise<CallError> {
  try {
    await promise;
  } catch (error) {
    return error as CallError;
  }
  throw new Error('expected the call to fail, it succeeded');
}
