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
