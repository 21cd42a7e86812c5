// The contract between the client-facing API and the node that serves it: the API decodes and
// validates etcd requests into mvcc-shaped objects and hands them here (the server layer implements it).
import type {
  CompactionRequest,
  CompactionResponse,
  DeleteRangeRequest,
  DeleteRangeResponse,
  KeyValue,
  HashKVResult,
  LeaseGrantResponse,
  LeaseLeasesResponse,
  LeaseRevokeResponse,
  LeaseTimeToLiveResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  ResponseHeader,
  TxnRequest,
  TxnResponse,
  WatchHandle,
  WatchOptions,
  WatchSink,
} from '../mvcc/index.ts';

/** The cluster-level fields of etcd's ResponseHeader; `revision` comes from each response. */
export interface HeaderInfo {
  /** uint64 as a decimal string: cluster and member IDs use all 64 bits, beyond a safe number. */
  clusterId: string;
  /** uint64 as a decimal string. */
  memberId: string;
  raftTerm: number;
}

/**
 * What the KV service needs from the node. Requests reaching it are already validated as etcd's
 * v3rpc does (non-empty keys, txn op budget, no duplicate writes in a txn, proposal size).
 * Throw an `EtcdError` for failures a client can act on; anything else becomes INTERNAL.
 */
export interface KvBackend {
  /**
   * `stamp` (only while auth is enabled): who the call was authorized as, at which auth revision.
   * Writes carry it into the log and linearizable reads keep it, so the check is made again where
   * the request takes effect if the auth store changed meanwhile (etcd's request header).
   */
  range(req: RangeRequest, stamp?: AuthStamp): Promise<RangeResponse>;
  put(req: PutRequest, stamp?: AuthStamp): Promise<PutResponse>;
  deleteRange(req: DeleteRangeRequest, stamp?: AuthStamp): Promise<DeleteRangeResponse>;
  txn(req: TxnRequest, stamp?: AuthStamp): Promise<TxnResponse>;
  compact(req: CompactionRequest, stamp?: AuthStamp): Promise<CompactionResponse>;
  /** Called once per response to fill cluster_id, member_id and raft_term. */
  header(): HeaderInfo;
}

// ---- Maintenance and Cluster (etcdserverpb.Maintenance, etcdserverpb.Cluster) ----

/** etcd's StatusResponse, as the member sees itself. uint64 IDs are decimal strings. */
export interface StatusResult {
  /** `revision`: the member's current key-value revision (etcd fills it from its KV). */
  header: ResponseHeader;
  /** The member ID this member believes leads, '0' if none (the API then adds "etcdserver: no leader" to errors). */
  leader: string;
  raftTerm: number;
  /** Raft committed index. */
  raftIndex: number;
  raftAppliedIndex: number;
  /** Bytes the backend database occupies, and how many of them are in use. */
  dbSize: number;
  dbSizeInUse: number;
  /** The etcd version Tessera claims, '3.4.0'-style: etcdctl prints it and some tools parse it. */
  version: string;
  /** Alarm and health strings (etcd: "memberID:<id> alarm:NOSPACE"). */
  errors: string[];
  isLearner: boolean;
}

/** etcd's Member. `name` and `clientURLs` are empty for a member that has not started yet. */
export interface MemberInfo {
  /** uint64 as a decimal string. */
  id: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

export interface MemberListResult {
  members: MemberInfo[];
}

/**
 * What etcdserverpb.Maintenance needs from the node. Throw an `EtcdError` for failures a client
 * can act on (etcd's messages: Errors.notLeader, ...); anything else becomes INTERNAL.
 */
export type AlarmType = 'none' | 'nospace' | 'corrupt';

/** etcd's AlarmRequest; `alarm` 'none' with 'get' asks for every alarm. */
export interface AlarmRequest {
  action: 'get' | 'activate' | 'deactivate';
  /** uint64 decimal; '0' = the request concerns every member. */
  memberId: string;
  alarm: AlarmType;
}

export interface AlarmMember {
  /** uint64 decimal. */
  memberId: string;
  alarm: AlarmType;
}

/**
 * A point-in-time copy of the member's state as one byte stream (the `etcdctl snapshot save`
 * file). The API sends it in 32 KiB messages, pads it with zero bytes to a multiple of 512 (etcdctl
 * refuses other sizes: it expects page-sized bolt files) and appends the SHA-256 of everything
 * sent, as etcd does. So the format must tell its own end (trailing zeros are padding).
 */
export interface SnapshotStream {
  /** Exact content bytes `chunks` yields, known up front (responses carry remaining_bytes). */
  size: number;
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
  /** Called once the stream is done, read to the end or abandoned (release what pins the snapshot). */
  close?(): void;
}

/**
 * What etcdserverpb.Maintenance needs from the node. Throw an `EtcdError` for failures a client
 * can act on (etcd's messages: Errors.notLeader, ...); anything else becomes INTERNAL.
 */
export interface MaintenanceBackend {
  status(): Promise<StatusResult>;
  /** Goes through Raft in etcd. Returns the alarms the request matched (etcd's AlarmResponse.alarms). */
  alarm(req: AlarmRequest): Promise<{ alarms: AlarmMember[] }>;
  /** Compacts the member's storage file. */
  defragment(): Promise<void>;
  /** etcd's Hash: a hash of the member's whole store; `header.revision` is the revision hashed at. */
  hash(): Promise<{ header: ResponseHeader; hash: number }>;
  /** MvccStore.hashKV: revision 0 = current; compacted/future revisions fail like reads. */
  hashKV(revision: number): Promise<HashKVResult>;
  snapshot(): Promise<SnapshotStream>;
  /** etcd's MoveLeader: only the leader may (Errors.notLeader otherwise); resolves once transferred. */
  moveLeader(targetId: string): Promise<void>;
}

/**
 * What etcdserverpb.Cluster needs from the node: etcd's membership changes (Raft conf changes).
 * Each change resolves once applied, with the member list after it. Responses carry no revision,
 * as etcd's do. IDs are uint64 decimals. Errors: Errors.memberNotFound, memberExist, peerURLExist,
 * ApiErrors.memberNotLearner, learnerNotReady, tooManyLearners, memberNotEnoughStarted, unhealthy.
 */
export interface ClusterBackend {
  /** `linearizable` (etcd 3.5+ clients) asks for the list as of a ReadIndex; 3.4 clients never set it. */
  memberList(options: { linearizable: boolean }): Promise<MemberListResult>;
  /** `peerURLs` arrive validated, trimmed and sorted (etcd's types.NewURLs). The new member has no name or client URLs yet. */
  memberAdd(req: {
    peerURLs: string[];
    isLearner: boolean;
  }): Promise<{ member: MemberInfo; members: MemberInfo[] }>;
  memberRemove(id: string): Promise<MemberListResult>;
  memberUpdate(req: { id: string; peerURLs: string[] }): Promise<MemberListResult>;
  memberPromote(id: string): Promise<MemberListResult>;
}

// ---- Watch (etcdserverpb.Watch) ----

/**
 * What the Watch service needs: MvccStore.watch's contract, so the server can implement it as
 * `{ currentRevision: () => store.currentRevision, watch: (o, s) => store.watch(o, s) }`.
 *
 * - `watch` replays history from `options.startRevision` (0 = the next write) through `sink`
 *   before it returns, then delivers each committed revision live, in order, never skipping one.
 *   Throws WatchCompactedError (mvcc) when the start revision is compacted, an EtcdError for
 *   other refusals (too many watchers on the node, ...).
 * - The API keeps every stream's memory bounded through the sink's return value: `false` pauses
 *   the watcher (the store's history is the buffer); the API calls `handle.resume()` once the
 *   client has read what was sent (never from inside a sink), and `handle.cancel()` when the
 *   client cancels or goes away.
 * - Progress: a watcher whose handle is `synced` has seen everything up to currentRevision(), so
 *   progress notifications carry currentRevision() (etcd's RequestProgress answers only synced
 *   watchers, with the store's revision).
 */
export interface WatchBackend {
  /** The node's current revision: the header of created/canceled/progress responses. */
  currentRevision(): number;
  watch(options: WatchOptions, sink: WatchSink): WatchHandle;
}

// ---- Lease (etcdserverpb.Lease) ----

/**
 * What the Lease service needs: etcd's lessor as the server runs it (the server owns the clock,
 * proposes grants and revokes through Raft, forwards renewals to the leader). Throw
 * Errors.leaseNotFound for an unknown lease: the API turns it into etcd's answers (TTL -1 for
 * TimeToLive, TTL 0 on the keepalive stream, NOT_FOUND for Revoke).
 */
export interface LeaseBackend {
  /** The node's current revision: the header of answers etcd fills from the store (TTL -1, keepalives). */
  currentRevision(): number;
  /** `id` 0 = the server picks a positive, unused, safe-integer ID (etcd takes one from its request ID generator). */
  leaseGrant(req: { id: number; ttl: number }): Promise<LeaseGrantResponse>;
  /** `stamp` as in KvBackend: the revoke is checked again at apply if the auth store changed. */
  leaseRevoke(id: number, stamp?: AuthStamp): Promise<LeaseRevokeResponse>;
  /** etcd's LeaseRenew: restarts the countdown and returns the lease's TTL in seconds. */
  leaseKeepAlive(id: number): Promise<number>;
  /** `ttl` is the remaining TTL by the server's clock (not mvcc's replicated checkpoint). */
  leaseTimeToLive(req: { id: number; keys: boolean }): Promise<LeaseTimeToLiveResponse>;
  leaseLeases(): Promise<LeaseLeasesResponse>;
}

// ---- Lock (v3lockpb.Lock) and Election (v3electionpb.Election) ----

/**
 * etcd's v3lock service: clientv3/concurrency's Mutex run by the server under the client's lease.
 * Keys are bytes; `lease` is the session lease the waiter key is attached to (etcd grants a 60 s
 * lease when it is 0). `signal` aborts when the client cancels or its deadline passes: withdraw the
 * waiter key (as Mutex.Lock does) and reject. Throw Errors.leaseNotFound for an unknown lease.
 * `stamp` (only while auth is enabled), as in KvBackend: the caller the call was authorized as;
 * pass it on with every read and write the call makes, so each is checked again where it runs.
 */
export interface LockBackend {
  /** Resolves once held: `key` is the owner key (`name/<lease in hex>`), `header` the txn's that created it. */
  lock(
    req: { name: Uint8Array; lease: number },
    signal: AbortSignal,
    stamp?: AuthStamp,
  ): Promise<{ header: ResponseHeader; key: Uint8Array }>;
  /** etcd's Unlock is a plain delete of the key; an absent key is not an error. */
  unlock(req: { key: Uint8Array }, stamp?: AuthStamp): Promise<{ header: ResponseHeader }>;
}

/** v3electionpb.LeaderKey: what a campaign winner holds, and hands back to proclaim or resign. */
export interface LeaderKey {
  name: Uint8Array;
  key: Uint8Array;
  rev: number;
  lease: number;
}

/**
 * etcd's v3election service: clientv3/concurrency's Election run by the server. Errors as etcd's:
 * ApiErrors.electionNotLeader (proclaim by a non-leader), ApiErrors.electionNoLeader (leader()
 * with no candidate), Errors.leaseNotFound.
 */
export interface ElectionBackend {
  /** Resolves once `value` leads `name` (`signal` as in LockBackend.lock: resign and reject). */
  campaign(
    req: { name: Uint8Array; lease: number; value: Uint8Array },
    signal: AbortSignal,
    stamp?: AuthStamp,
  ): Promise<{ header: ResponseHeader; leader: LeaderKey }>;
  proclaim(req: { leader: LeaderKey; value: Uint8Array }, stamp?: AuthStamp): Promise<{ header: ResponseHeader }>;
  leader(req: { name: Uint8Array }, stamp?: AuthStamp): Promise<{ header: ResponseHeader; kv: KeyValue }>;
  /**
   * The current leader's key-value, then every change to it, until `signal` aborts (then end).
   * Pulled: the API asks for the next value only after the client took the previous one, so yield
   * the newest state and keep no queue (etcd's Observe channel is unbuffered).
   */
  observe(
    req: { name: Uint8Array },
    signal: AbortSignal,
  ): AsyncIterable<{ header: ResponseHeader; kv: KeyValue }>;
  resign(req: { leader: LeaderKey }, stamp?: AuthStamp): Promise<{ header: ResponseHeader }>;
}

// ---- Auth (etcdserverpb.Auth) and authorization of every call ----

/** Who makes a call: etcd's `token` metadata, else (with --client-cert-auth) the client certificate's CN. */
export interface CallIdentity {
  token: string | null;
  commonName: string | null;
}

/**
 * What a call needs (etcd's checks): `read`/`write` on every key of [key, rangeEnd) (rangeEnd
 * conventions as in Range), `root` (admin RPCs), `user` (any authenticated user), `self` (root or
 * that very user: UserGet), `role` (root or a holder of that role: RoleGet).
 */
export type AuthNeed =
  | { kind: 'read' | 'write'; key: Uint8Array; rangeEnd: Uint8Array }
  | { kind: 'root' }
  | { kind: 'user' }
  | { kind: 'self'; user: string }
  | { kind: 'role'; role: string };

/**
 * A call that passed authorization (etcd's RequestHeader username + auth_revision): the user, and
 * the auth store revision of the node that checked it. Present only while auth is enabled.
 */
export interface AuthStamp {
  user: string;
  revision: number;
  /** The identity was a client certificate's CN, not a token (no token to have been invalidated). */
  cert?: true;
}

/** Who makes an Auth admin call: for the apply-time check and the audit lines' `actor`. */
export interface AuthCaller {
  /** While auth is enabled: the (root) user and the auth revision it was checked at. */
  stamp?: AuthStamp;
  /** The user; with auth disabled, the client certificate's CN, else "anonymous". Never a secret. */
  actor: string;
}

/** authpb.Permission: permType READ 0, WRITE 1, READWRITE 2. */
export interface AuthPermissionInfo {
  permType: 0 | 1 | 2;
  key: Uint8Array;
  rangeEnd: Uint8Array;
}

/**
 * The node's auth store and token keeper. Changes go through Raft; passwords are hashed by the
 * node that receives them before anything is proposed. Errors: ApiErrors' auth errors.
 */
export interface AuthBackend {
  /** True once AuthEnable applied on this node: every call must then pass authorize(). */
  enabled(): boolean;
  /**
   * Synchronous, against this node's applied auth store: resolves the identity (a token, or a CN
   * when no token is given) and checks every need. Returns the stamp for the request. Throws
   * ApiErrors.invalidAuthToken (unknown, expired or revoked token), userEmpty (no identity),
   * permissionDenied. Refusals are audited with `method`.
   */
  authorize(identity: CallIdentity, needs: readonly AuthNeed[], method: string): AuthStamp;
  /**
   * Called once per call before any check, with its identity. Signed tokens (JWT) are verified
   * here: it returns a promise only when a signature must actually be checked (a token not seen
   * before), and the gate holds the call until it settles; otherwise it returns undefined at once.
   */
  prepare?(identity: CallIdentity): Promise<void> | undefined;
  /** The KV revision for response headers. */
  currentRevision(): number;
  authEnable(caller: AuthCaller): Promise<void>;
  authDisable(caller: AuthCaller): Promise<void>;
  authStatus(): Promise<{ enabled: boolean; authRevision: number }>;
  /** Resolves to a token: a simple one kept in this node's memory, or a JWT good on every member. */
  authenticate(name: string, password: string): Promise<string>;
  userAdd(req: { name: string; password: string; noPassword: boolean }, caller: AuthCaller): Promise<void>;
  userGet(name: string): Promise<{ roles: string[] }>;
  userList(): Promise<string[]>;
  userDelete(name: string, caller: AuthCaller): Promise<void>;
  userChangePassword(req: { name: string; password: string }, caller: AuthCaller): Promise<void>;
  userGrantRole(req: { user: string; role: string }, caller: AuthCaller): Promise<void>;
  userRevokeRole(req: { name: string; role: string }, caller: AuthCaller): Promise<void>;
  roleAdd(name: string, caller: AuthCaller): Promise<void>;
  roleGet(role: string): Promise<{ perms: AuthPermissionInfo[] }>;
  roleList(): Promise<string[]>;
  roleDelete(role: string, caller: AuthCaller): Promise<void>;
  roleGrantPermission(req: { name: string; perm: AuthPermissionInfo }, caller: AuthCaller): Promise<void>;
  roleRevokePermission(req: { role: string; key: Uint8Array; rangeEnd: Uint8Array }, caller: AuthCaller): Promise<void>;
}
