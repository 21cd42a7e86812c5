// etcd's proto files loaded for raw grpc-js test clients, exactly as they go over the wire (int64s
// as strings, enums as names, bytes as Buffers), and the error such a client's failed call carries.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ETCD_PROTO_FILES, PROTO_INCLUDE_DIR } from '../../src/api/index.ts';

export const etcdDefinition = protoLoader.loadSync([...ETCD_PROTO_FILES], {
  keepCase: false,
  longs: String,
  enums: String,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_INCLUDE_DIR],
});

/** The etcdserverpb package: service client constructors (KV, Watch, Lease, Auth, ...). */
export const etcdserverpb = (grpc.loadPackageDefinition(etcdDefinition) as any).etcdserverpb;
/** The v3lockpb package: the Lock service client constructor. */
export const v3lockpb = (grpc.loadPackageDefinition(etcdDefinition) as any).v3lockpb;

export interface CallError extends Error {
  code: number;
  details: string;
}

/** Resolves to the error a call failed with (and fails the test if it succeeded). */
export async function callError(pending: Promise<unknown>): Promise<CallError> {
  try {
    await pending;
  } catch (error) {
    return error as CallError;
  }
  throw new Error('expected the call to fail, it succeeded');
}
