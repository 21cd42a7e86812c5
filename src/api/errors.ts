// etcd's client-visible errors that src/util's Errors does not carry yet: membership, election and
// lock answers, with etcd's codes and messages (v3rpc/rpctypes, clientv3/concurrency, v3election).
// Backends throw these so that clients see exactly what etcd would send.
import { EtcdError, GrpcCode } from '../util/index.ts';
import type { GrpcCodeValue } from '../util/index.ts';

const e = (code: GrpcCodeValue, message: string) => () => new EtcdError(code, message);

export const ApiErrors = {
  memberBadURLs: e(GrpcCode.INVALID_ARGUMENT, 'etcdserver: given member URLs are invalid'),
  memberNotEnoughStarted: e(
    GrpcCode.FAILED_PRECONDITION,
    'etcdserver: re-configuration failed due to not enough started members',
  ),
  memberNotLearner: e(GrpcCode.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member'),
  learnerNotReady: e(
    GrpcCode.FAILED_PRECONDITION,
    'etcdserver: can only promote a learner member which is in sync with leader',
  ),
  tooManyLearners: e(GrpcCode.FAILED_PRECONDITION, 'etcdserver: too many learner members in cluster'),
  unhealthy: e(GrpcCode.UNAVAILABLE, 'etcdserver: unhealthy cluster'),
  notSupportedForLearner: e(GrpcCode.UNAVAILABLE, 'etcdserver: rpc not supported for learner'),
  badLeaderTransferee: e(GrpcCode.FAILED_PRECONDITION, 'etcdserver: bad leader transferee'),
  // etcd's election server returns clientv3/concurrency's plain Go errors: gRPC code Unknown.
  electionNotLeader: e(GrpcCode.UNKNOWN, 'election: not leader'),
  electionNoLeader: e(GrpcCode.UNKNOWN, 'election: no leader'),
  missingLeaderKey: e(GrpcCode.UNKNOWN, '"leader" field must be provided'),
  // Auth (etcd's rpctypes ErrGRPC*; clients match these messages).
  rootUserNotExist: e(GrpcCode.FAILED_PRECONDITION, 'etcdserver: root user does not exist'),
  rootRoleNotExist: e(GrpcCode.FAILED_PRECONDITION, 'etcdserver: root user does not have root role'),
  userAlreadyExist: e(GrpcCode.FAILED_PRECONDITION, 'etcdserver: user name already exists'),
  userEmpty: e(GrpcCode.INVALID_ARGUMENT, 'etcdserver: user name is empty'),
  userNotFound: e(GrpcCode.FAILED_PRECONDITION, 'etcdserver: user name not found'),
  roleAlreadyExist: e(GrpcCode.FAILED_PRECONDITION, 'etcdserver: role name already exists'),
  roleNotFound: e(GrpcCode.FAILED_PRECONDITION, 'etcdserver: role name not found'),
  roleEmpty: e(GrpcCode.INVALID_ARGUMENT, 'etcdserver: role name is empty'),
  authFailed: e(GrpcCode.INVALID_ARGUMENT, 'etcdserver: authentication failed, invalid user ID or password'),
  permissionNotGiven: e(GrpcCode.INVALID_ARGUMENT, 'etcdserver: permission not given'),
  permissionDenied: e(GrpcCode.PERMISSION_DENIED, 'etcdserver: permission denied'),
  roleNotGranted: e(GrpcCode.FAILED_PRECONDITION, 'etcdserver: role is not granted to the user'),
  permissionNotGranted: e(GrpcCode.FAILED_PRECONDITION, 'etcdserver: permission is not granted to the role'),
  authNotEnabled: e(GrpcCode.FAILED_PRECONDITION, 'etcdserver: authentication is not enabled'),
  invalidAuthToken: e(GrpcCode.UNAUTHENTICATED, 'etcdserver: invalid auth token'),
  invalidAuthMgmt: e(GrpcCode.INVALID_ARGUMENT, 'etcdserver: invalid auth management'),
  /** A request checked against an auth store that changed before it applied (clients re-authenticate and retry). */
  authOldRevision: e(GrpcCode.INVALID_ARGUMENT, 'etcdserver: revision of auth store is old'),
  /** Authenticate on a member holding only the JWT public key (etcd's auth.ErrVerifyOnly, gRPC Unknown). */
  jwtVerifyOnly: e(GrpcCode.UNKNOWN, 'auth: token signing attempted with verify-only key'),
  /** Tessera's bound on users, roles, permissions per role and live tokens (etcd has none). */
  authStoreFull: e(GrpcCode.RESOURCE_EXHAUSTED, 'etcdserver: too many requests'),
} as const;
