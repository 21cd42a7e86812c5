// One error type for every failure a client can act on: a gRPC status code plus etcd's exact
// message string, so etcd client libraries map it to their typed errors (clientv3's rpctypes).

/** gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html). */
export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcCodeValue = (typeof GrpcCode)[keyof typeof GrpcCode];

export class EtcdError extends Error {
  override name = 'EtcdError';
  constructor(
    readonly code: GrpcCodeValue,
    message: string,
  ) {
    super(message);
  }
}

const e = (code: GrpcCodeValue, message: string) => () => new EtcdError(code, message);

/** etcd's errors, by name (etcd api/v3rpc/rpctypes). Call to get a fresh Error with a stack. */
export const Errors = {
  emptyKey: e(GrpcCode.INVALID_ARGUMENT, 'etcdserver: key is not provided'),
  keyNotFound: e(GrpcCode.INVALID_ARGUMENT, 'etcdserver: key not found'),
  valueProvided: e(GrpcCode.INVALID_ARGUMENT, 'etcdserver: value is provided'),
  leaseProvided: e(GrpcCode.INVALID_ARGUMENT, 'etcdserver: lease is provided'),
  tooManyOps: e(GrpcCode.INVALID_ARGUMENT, 'etcdserver: too many operations in txn request'),
  duplicateKey: e(GrpcCode.INVALID_ARGUMENT, 'etcdserver: duplicate key given in txn request'),
  compacted: e(GrpcCode.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted'),
  futureRev: e(GrpcCode.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision'),
  noSpace: e(GrpcCode.RESOURCE_EXHAUSTED, 'etcdserver: mvcc: database space exceeded'),
  leaseNotFound: e(GrpcCode.NOT_FOUND, 'etcdserver: requested lease not found'),
  leaseExist: e(GrpcCode.FAILED_PRECONDITION, 'etcdserver: lease already exists'),
  leaseTTLTooLarge: e(GrpcCode.OUT_OF_RANGE, 'etcdserver: too large lease TTL'),
  noLeader: e(GrpcCode.UNAVAILABLE, 'etcdserver: no leader'),
  notLeader: e(GrpcCode.FAILED_PRECONDITION, 'etcdserver: not leader'),
  leaderChanged: e(GrpcCode.UNAVAILABLE, 'etcdserver: leader changed'),
  requestTooLarge: e(GrpcCode.INVALID_ARGUMENT, 'etcdserver: request is too large'),
  tooManyRequests: e(GrpcCode.RESOURCE_EXHAUSTED, 'etcdserver: too many requests'),
  timeout: e(GrpcCode.UNAVAILABLE, 'etcdserver: request timed out'),
  timeoutDueToLeaderFail: e(
    GrpcCode.UNAVAILABLE,
    'etcdserver: request timed out, possibly due to previous leader failure',
  ),
  stopped: e(GrpcCode.UNAVAILABLE, 'etcdserver: server stopped'),
  notCapable: e(GrpcCode.FAILED_PRECONDITION, 'etcdserver: not capable'),
  memberNotFound: e(GrpcCode.NOT_FOUND, 'etcdserver: member not found'),
  memberExist: e(GrpcCode.FAILED_PRECONDITION, 'etcdserver: member ID already exist'),
  peerURLExist: e(GrpcCode.FAILED_PRECONDITION, 'etcdserver: Peer URLs already exists'),
} as const;

/** A malformed or out-of-bounds argument that etcd has no dedicated message for. */
export function invalidArgument(message: string): EtcdError {
  return new EtcdError(GrpcCode.INVALID_ARGUMENT, message);
}

/** Checks an int64 that crossed the wire fits a JavaScript number exactly (see docs/ARCHITECTURE.md). */
export function checkedInt64(value: number, field: string): number {
  if (!Number.isSafeInteger(value)) throw invalidArgument(`etcdserver: ${field} out of range (must be a safe integer)`);
  return value;
}
