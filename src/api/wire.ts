// The shapes of etcd's protobuf messages as the server decodes them (see SERVER_PROTO_OPTIONS in
// protos.ts: camelCase names, int64 as decimal strings, enums as numbers, bytes as Buffer, defaults
// filled, a oneof's chosen field named by its virtual property) and as it hands them to the encoder.

/** int64/uint64 from the wire: a decimal string (longs: String); a number only if someone encodes one. */
export type WireInt64 = string | number;

export interface WireRangeRequest {
  key: Buffer;
  rangeEnd: Buffer;
  limit: WireInt64;
  revision: WireInt64;
  sortOrder: number;
  sortTarget: number;
  serializable: boolean;
  keysOnly: boolean;
  countOnly: boolean;
  minModRevision: WireInt64;
  maxModRevision: WireInt64;
  minCreateRevision: WireInt64;
  maxCreateRevision: WireInt64;
}

export interface WirePutRequest {
  key: Buffer;
  value: Buffer;
  lease: WireInt64;
  prevKv: boolean;
  ignoreValue: boolean;
  ignoreLease: boolean;
}

export interface WireDeleteRangeRequest {
  key: Buffer;
  rangeEnd: Buffer;
  prevKv: boolean;
}

/** oneof target_union: only the chosen member is present (oneof fields get no defaults). */
export interface WireCompare {
  result: number;
  target: number;
  key: Buffer;
  rangeEnd: Buffer;
  targetUnion?: 'version' | 'createRevision' | 'modRevision' | 'value' | 'lease';
  version?: WireInt64;
  createRevision?: WireInt64;
  modRevision?: WireInt64;
  value?: Buffer;
  lease?: WireInt64;
}

/** oneof request: absent when the client sent an empty op (etcd answers "key not found"). */
export interface WireRequestOp {
  request?: 'requestRange' | 'requestPut' | 'requestDeleteRange' | 'requestTxn';
  requestRange?: WireRangeRequest;
  requestPut?: WirePutRequest;
  requestDeleteRange?: WireDeleteRangeRequest;
  requestTxn?: WireTxnRequest;
}

export interface WireTxnRequest {
  compare: WireCompare[];
  success: WireRequestOp[];
  failure: WireRequestOp[];
}

export interface WireCompactionRequest {
  revision: WireInt64;
  physical: boolean;
}

// Outgoing messages. Numbers are safe integers; uint64 IDs travel as decimal strings, which
// protobufjs encodes exactly through Long.

export interface WireResponseHeader {
  clusterId: string;
  memberId: string;
  revision: number;
  raftTerm: number;
}

export interface WireKeyValue {
  key: Uint8Array;
  createRevision: number;
  modRevision: number;
  version: number;
  value: Uint8Array;
  lease: number;
}

export interface WireRangeResponse {
  header: WireResponseHeader;
  kvs: WireKeyValue[];
  more: boolean;
  count: number;
}

export interface WirePutResponse {
  header: WireResponseHeader;
  prevKv: WireKeyValue | null;
}

export interface WireDeleteRangeResponse {
  header: WireResponseHeader;
  deleted: number;
  prevKvs: WireKeyValue[];
}

export type WireResponseOp =
  | { responseRange: WireRangeResponse }
  | { responsePut: WirePutResponse }
  | { responseDeleteRange: WireDeleteRangeResponse }
  | { responseTxn: WireTxnResponse };

export interface WireTxnResponse {
  header: WireResponseHeader;
  succeeded: boolean;
  responses: WireResponseOp[];
}

export interface WireCompactionResponse {
  header: WireResponseHeader;
}

// ---- Maintenance and Cluster ----

export type WireStatusRequest = Record<string, never>;

export interface WireStatusResponse {
  header: WireResponseHeader;
  version: string;
  dbSize: number;
  /** uint64 decimal. */
  leader: string;
  raftIndex: number;
  raftTerm: number;
  raftAppliedIndex: number;
  errors: string[];
  dbSizeInUse: number;
  isLearner: boolean;
}

export interface WireMember {
  /** uint64 decimal. */
  ID: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

export interface WireMemberListRequest {
  linearizable: boolean;
}

export interface WireMemberListResponse {
  header: WireResponseHeader;
  members: WireMember[];
}

// ---- Watch ----

export interface WireWatchCreateRequest {
  key: Buffer;
  rangeEnd: Buffer;
  startRevision: WireInt64;
  progressNotify: boolean;
  /** WatchCreateRequest.FilterType values: 0 NOPUT, 1 NODELETE; others are ignored, as etcd does. */
  filters: number[];
  prevKv: boolean;
  watchId: WireInt64;
  fragment: boolean;
}

/** oneof request_union: absent when the client sent an empty request (etcd ignores it). */
export interface WireWatchRequest {
  requestUnion?: 'createRequest' | 'cancelRequest' | 'progressRequest';
  createRequest?: WireWatchCreateRequest;
  cancelRequest?: { watchId: WireInt64 };
  progressRequest?: Record<string, never>;
}

export interface WireEvent {
  /** mvccpb.Event.EventType: 0 PUT, 1 DELETE. */
  type: number;
  kv: WireKeyValue;
  prevKv: WireKeyValue | null;
}

export interface WireWatchResponse {
  header: WireResponseHeader;
  watchId: number;
  created: boolean;
  canceled: boolean;
  compactRevision: number;
  cancelReason: string;
  fragment: boolean;
  events: WireEvent[];
}

// ---- Lease ----

export interface WireLeaseGrantRequest {
  TTL: WireInt64;
  ID: WireInt64;
}

export interface WireLeaseIdRequest {
  ID: WireInt64;
}

export interface WireLeaseTimeToLiveRequest {
  ID: WireInt64;
  keys: boolean;
}

export interface WireLeaseGrantResponse {
  header: WireResponseHeader;
  ID: number;
  TTL: number;
}

export interface WireLeaseRevokeResponse {
  header: WireResponseHeader;
}

export interface WireLeaseKeepAliveResponse {
  header: WireResponseHeader;
  ID: number;
  TTL: number;
}

export interface WireLeaseTimeToLiveResponse {
  header: WireResponseHeader;
  ID: number;
  TTL: number;
  grantedTTL: number;
  keys: Uint8Array[];
}

export interface WireLeaseLeasesResponse {
  header: WireResponseHeader;
  leases: { ID: number }[];
}

export interface WireAlarmRequest {
  /** AlarmRequest.AlarmAction: 0 GET, 1 ACTIVATE, 2 DEACTIVATE. */
  action: number;
  memberID: string;
  /** AlarmType: 0 NONE, 1 NOSPACE, 2 CORRUPT. */
  alarm: number;
}

export interface WireAlarmMember {
  memberID: string;
  alarm: number;
}

/** etcd's Alarm, Defragment and MoveLeader responses carry no header (`header` null). */
export interface WireAlarmResponse {
  header: WireResponseHeader | null;
  alarms: WireAlarmMember[];
}

export interface WireHashResponse {
  header: WireResponseHeader;
  hash: number;
}

export interface WireHashKVRequest {
  revision: WireInt64;
}

export interface WireHashKVResponse {
  header: WireResponseHeader;
  hash: number;
  compactRevision: number;
  hashRevision: number;
}

export interface WireSnapshotResponse {
  header: WireResponseHeader | null;
  remainingBytes: number;
  blob: Uint8Array;
}

export interface WireMoveLeaderRequest {
  targetID: string;
}

export interface WireMemberAddRequest {
  peerURLs: string[];
  isLearner: boolean;
}

export interface WireMemberIdRequest {
  ID: string;
}

export interface WireMemberUpdateRequest {
  ID: string;
  peerURLs: string[];
}

// ---- Lock and Election ----

export interface WireLockRequest {
  name: Buffer;
  lease: WireInt64;
}

export interface WireUnlockRequest {
  key: Buffer;
}

export interface WireLeaderKey {
  name: Buffer;
  key: Buffer;
  rev: WireInt64;
  lease: WireInt64;
}

export interface WireCampaignRequest {
  name: Buffer;
  lease: WireInt64;
  value: Buffer;
}

export interface WireProclaimRequest {
  leader: WireLeaderKey | null;
  value: Buffer;
}

export interface WireLeaderRequest {
  name: Buffer;
}

export interface WireResignRequest {
  leader: WireLeaderKey | null;
}
