// The client-facing etcd v3 API (gRPC and the HTTP/JSON gateway, one port; docs/API.md). Others use:
// ApiServer, the backend contracts it serves from, etcd's extra errors, and the proto locations.
export { ApiServer, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_TXN_OPS, GRPC_OVERHEAD_BYTES } from './server.ts';
export type { ApiServerOptions } from './server.ts';
export type {
  AuthBackend,
  AuthCaller,
  AuthStamp,
  AuthNeed,
  AuthPermissionInfo,
  CallIdentity,
  AlarmMember,
  AlarmRequest,
  AlarmType,
  ClusterBackend,
  ElectionBackend,
  HeaderInfo,
  KvBackend,
  LeaderKey,
  LeaseBackend,
  LockBackend,
  MaintenanceBackend,
  MemberInfo,
  MemberListResult,
  SnapshotStream,
  StatusResult,
  WatchBackend,
} from './backend.ts';
export { DEFAULT_WATCH_LIMITS } from './watch-service.ts';
export type { WatchLimits } from './watch-service.ts';
export { ApiErrors } from './errors.ts';
export { deleteRangeNeeds, putNeeds, rangeNeeds, txnNeeds } from './auth-gate.ts';
export { ETCD_PROTO_FILES, PROTO_INCLUDE_DIR } from './protos.ts';
