// The client-facing etcd v3 API (gRPC). Others use: ApiServer, the KvBackend contract it serves
// from, and the proto locations for building clients of the same protos.
export { ApiServer, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_TXN_OPS, GRPC_OVERHEAD_BYTES } from './server.ts';
export type { ApiServerOptions } from './server.ts';
export type { KvBackend, HeaderInfo } from './backend.ts';
export { ETCD_PROTO_FILES, PROTO_INCLUDE_DIR } from './protos.ts';
