// etcd's data model, in etcd's own shapes (camelCase of the etcdserverpb/mvccpb protos), so the
// API layer maps protobuf objects to these with no reinterpretation. int64s are checked numbers.

export interface KeyValue {
  key: Uint8Array;
  createRevision: number;
  modRevision: number;
  version: number;
  value: Uint8Array;
  lease: number;
}

export interface ResponseHeader {
  /** The store's revision after the request. For a read this is the current revision, even when it
   *  read an older one (etcd's `header.revision`); inside a write txn, the txn's revision so far. */
  revision: number;
}

export type SortOrder = 'none' | 'ascend' | 'descend';
export type SortTarget = 'key' | 'version' | 'create' | 'mod' | 'value';

export interface RangeRequest {
  key: Uint8Array;
  /** Empty = single key; [0x00] = every key >= key; otherwise [key, rangeEnd). key=[0]&rangeEnd=[0] = all. */
  rangeEnd: Uint8Array;
  limit: number;
  /** 0 = current revision. */
  revision: number;
  sortOrder: SortOrder;
  sortTarget: SortTarget;
  serializable: boolean;
  keysOnly: boolean;
  countOnly: boolean;
  minModRevision: number;
  maxModRevision: number;
  minCreateRevision: number;
  maxCreateRevision: number;
}

export interface RangeResponse {
  header: ResponseHeader;
  kvs: KeyValue[];
  more: boolean;
  count: number;
}

export interface PutRequest {
  key: Uint8Array;
  value: Uint8Array;
  lease: number;
  prevKv: boolean;
  ignoreValue: boolean;
  ignoreLease: boolean;
}

export interface PutResponse {
  header: ResponseHeader;
  prevKv: KeyValue | null;
}

export interface DeleteRangeRequest {
  key: Uint8Array;
  rangeEnd: Uint8Array;
  prevKv: boolean;
}

export interface DeleteRangeResponse {
  header: ResponseHeader;
  deleted: number;
  prevKvs: KeyValue[];
}

export type CompareResult = 'equal' | 'greater' | 'less' | 'notEqual';
export type CompareTarget = 'version' | 'create' | 'mod' | 'value' | 'lease';

export interface Compare {
  result: CompareResult;
  target: CompareTarget;
  key: Uint8Array;
  rangeEnd: Uint8Array;
  /** The operand for `target`: a number for version/create/mod/lease, bytes for value. */
  version: number;
  createRevision: number;
  modRevision: number;
  value: Uint8Array;
  lease: number;
}

export type RequestOp =
  | { type: 'range'; range: RangeRequest }
  | { type: 'put'; put: PutRequest }
  | { type: 'deleteRange'; deleteRange: DeleteRangeRequest }
  | { type: 'txn'; txn: TxnRequest };

export type ResponseOp =
  | { type: 'range'; range: RangeResponse }
  | { type: 'put'; put: PutResponse }
  | { type: 'deleteRange'; deleteRange: DeleteRangeResponse }
  | { type: 'txn'; txn: TxnResponse };

export interface TxnRequest {
  compare: Compare[];
  success: RequestOp[];
  failure: RequestOp[];
}

export interface TxnResponse {
  header: ResponseHeader;
  succeeded: boolean;
  responses: ResponseOp[];
}

export interface CompactionRequest {
  revision: number;
  physical: boolean;
}

export interface CompactionResponse {
  header: ResponseHeader;
}

export type EventType = 'put' | 'delete';

export interface WatchEvent {
  type: EventType;
  kv: KeyValue;
  prevKv: KeyValue | null;
}

// ---- Added with the state machine (src/mvcc/store.ts) ----

/**
 * What a replicated command returns: the response for the client, and the watch events it
 * produced (all at the response's revision, in write order, prevKv filled wherever etcd would send
 * one). The store has already delivered these events to its own watchers; the array is for the
 * caller's information (metrics, cross-range merging) and must not be delivered again.
 */
export interface ApplyResult<R> {
  response: R;
  events: WatchEvent[];
}

export interface LeaseGrantResponse {
  header: ResponseHeader;
  id: number;
  /** Granted TTL in seconds (raised to the minimum TTL if the request asked for less). */
  ttl: number;
}

export interface LeaseRevokeResponse {
  header: ResponseHeader;
}

export interface LeaseCheckpointResponse {
  header: ResponseHeader;
}

export interface LeaseTimeToLiveResponse {
  header: ResponseHeader;
  id: number;
  /** The replicated remaining TTL: the last checkpoint, else the granted TTL. The server, which
   *  owns the clock, answers clients with its own countdown instead. */
  ttl: number;
  grantedTtl: number;
  /** Attached keys in byte order; empty unless requested. */
  keys: Uint8Array[];
}

export interface LeaseStatus {
  id: number;
  /** Granted TTL in seconds. */
  ttl: number;
  /** Last checkpointed remaining TTL, 0 = none. */
  remainingTtl: number;
}

export interface LeaseLeasesResponse {
  header: ResponseHeader;
  /** Ascending by id. */
  leases: LeaseStatus[];
}

export interface WatchOptions {
  /** Empty key means [0x00], as etcd's watch server does. */
  key: Uint8Array;
  /** Same rules as RangeRequest.rangeEnd. */
  rangeEnd: Uint8Array;
  /** First revision to deliver; 0 = the next write (currentRevision + 1). */
  startRevision: number;
  noPut: boolean;
  noDelete: boolean;
  prevKv: boolean;
}

/**
 * Receives one batch: every event of one or more whole revisions, in revision order. `revision` is
 * the store's revision when the batch is handed over (etcd's WatchResponse header revision).
 * Return `false` to pause the watcher (see WatchHandle.resume); anything else keeps it flowing.
 * A sink may read from the store and may pause or cancel watchers; it must not write to the store,
 * create watches or resume watchers (AssertionError). It must not throw: a throwing sink's watcher
 * is cancelled and the error is rethrown once every other watcher has its batch. The array may be
 * shared with other watchers of the same revision: a sink may keep it but must not modify it.
 */
export type WatchSink = (events: WatchEvent[], revision: number) => boolean | void;

export type WatchState = 'synced' | 'paused' | 'cancelled';

export interface WatchHandle {
  /** Store-unique id (the API layer keeps its own per-stream watch ids). */
  readonly id: number;
  readonly state: WatchState;
  /** Every event below this revision has been delivered (or filtered out). */
  readonly nextRevision: number;
  /** Stops delivery. Nothing is buffered while paused: the store's history is the buffer. */
  pause(): void;
  /** Replays from nextRevision up to the current revision in batches, then resumes live delivery
   *  (unless the sink pauses it again). Throws WatchCompactedError, and cancels the watcher, if
   *  compaction passed nextRevision meanwhile. */
  resume(): void;
  cancel(): void;
}

export interface HashKVResult {
  /** CRC-32 over every key version with modRevision <= `revision` still held. Equal across
   *  replicas with the same history and the same compacted revision. */
  hash: number;
  /** The store's current revision. */
  revision: number;
  compactRevision: number;
}

/** A RangeRequest with etcd's defaults (one key, current revision, no options), then `overrides`. */
export function rangeRequest(key: Uint8Array, overrides: Partial<RangeRequest> = {}): RangeRequest {
  return {
    key,
    rangeEnd: new Uint8Array(0),
    limit: 0,
    revision: 0,
    sortOrder: 'none',
    sortTarget: 'key',
    serializable: false,
    keysOnly: false,
    countOnly: false,
    minModRevision: 0,
    maxModRevision: 0,
    minCreateRevision: 0,
    maxCreateRevision: 0,
    ...overrides,
  };
}

/**
 * The range_end that selects every key with this prefix (clientv3.GetPrefixRangeEnd): the prefix
 * with its last byte below 0xff incremented and what follows dropped; [0] (to the end) when every
 * byte is 0xff.
 */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  const end = Uint8Array.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i] += 1;
      return end.subarray(0, i + 1);
    }
  }
  return new Uint8Array([0]);
}
