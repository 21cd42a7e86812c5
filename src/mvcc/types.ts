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
  /** The store's revision after the request (for a read: the revision it read at, etcd's `header.revision`). */
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
