// Loads etcd's v3 protos (proto/, see proto/README.md) and adapts their service definitions for
// the server: requests decode into the shapes of wire.ts and arrive with their encoded size.
import { fileURLToPath } from 'node:url';
import type * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { assert } from '../util/index.ts';
import { EncodedMessage } from '../http2/index.ts';

/** The include root: imports inside the protos are relative to it (`etcd/api/...`). */
export const PROTO_INCLUDE_DIR = fileURLToPath(new URL('../../proto/', import.meta.url));

/** Every service of etcd's client API, so later slices (Watch, Lease, Lock, ...) load from here too. */
export const ETCD_PROTO_FILES: readonly string[] = [
  'etcd/api/etcdserverpb/rpc.proto',
  'etcd/server/etcdserver/api/v3lock/v3lockpb/v3lock.proto',
  'etcd/server/etcdserver/api/v3election/v3electionpb/v3election.proto',
];

/**
 * How the server decodes requests. int64s arrive as decimal strings (`longs: String`), never as
 * lossy numbers, and the codec turns them into numbers only when they are safe integers; enums stay
 * numbers so values unknown to the proto are visible (etcd rejects them); `defaults` makes every
 * scalar present; `oneofs` names the chosen member of a oneof.
 */
export const SERVER_PROTO_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: String,
  enums: Number,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_INCLUDE_DIR],
};

/** A decoded request together with its size on the wire (etcd's proposal size limit needs it). */
export interface Received<T> {
  readonly message: T;
  readonly bytes: number;
}

let packageDefinition: protoLoader.PackageDefinition | null = null;

/** The etcd package definition with the server's options, loaded once per process. */
export function etcdPackageDefinition(): protoLoader.PackageDefinition {
  packageDefinition ??= protoLoader.loadSync([...ETCD_PROTO_FILES], SERVER_PROTO_OPTIONS);
  return packageDefinition;
}

/**
 * The service `name` (e.g. `etcdserverpb.KV`) for `grpc.Server.addService`, with each request
 * deserializer wrapped to deliver `Received<wire object>`. A request that is not valid protobuf
 * makes the deserializer throw; grpc-js answers INTERNAL, as grpc-go (and so etcd) does.
 */
export function serverServiceDefinition(name: string): grpc.ServiceDefinition {
  const service = etcdPackageDefinition()[name];
  assert(service !== undefined && !('format' in service), `no service ${name} in the etcd protos`);
  const methods: Record<string, grpc.MethodDefinition<Received<unknown>, object>> = {};
  for (const [method, definition] of Object.entries(service)) {
    const decode = definition.requestDeserialize;
    const serialize = definition.responseSerialize;
    methods[method] = {
      path: definition.path,
      requestStream: definition.requestStream,
      responseStream: definition.responseStream,
      originalName: definition.originalName,
      requestSerialize: () => {
        throw new Error(`${definition.path}: the server never serializes requests`);
      },
      requestDeserialize: (bytes: Buffer): Received<unknown> => ({ message: decode(bytes), bytes: bytes.length }),
      responseSerialize: (value: object): Buffer => (value instanceof EncodedMessage ? value.bytes : serialize(value)),
      responseDeserialize: definition.responseDeserialize,
    };
  }
  assert(Object.keys(methods).length > 0, `service ${name} has no methods`);
  return methods;
}
