// Maps etcd's protobuf objects (wire.ts) to the mvcc request types and mvcc responses back to
// protobuf objects. int64s cross here: decimal strings become numbers only if they are safe integers.
import type {
  CompactionRequest,
  CompactionResponse,
  Compare,
  CompareResult,
  CompareTarget,
  DeleteRangeRequest,
  DeleteRangeResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  RequestOp,
  ResponseOp,
  SortOrder,
  SortTarget,
  TxnRequest,
  TxnResponse,
} from '../mvcc/index.ts';
import { assert, checkedInt64, Errors, invalidArgument, unreachable } from '../util/index.ts';
import type { EtcdError } from '../util/index.ts';
import type { HeaderInfo } from './backend.ts';
import type {
  WireCompactionRequest,
  WireCompactionResponse,
  WireCompare,
  WireDeleteRangeRequest,
  WireDeleteRangeResponse,
  WireInt64,
  WirePutRequest,
  WirePutResponse,
  WireRangeRequest,
  WireRangeResponse,
  WireRequestOp,
  WireResponseHeader,
  WireResponseOp,
  WireTxnRequest,
  WireTxnResponse,
} from './wire.ts';

// Enum tables indexed by the proto value (etcdserverpb.RangeRequest.SortOrder etc.).
const SORT_ORDERS: readonly SortOrder[] = ['none', 'ascend', 'descend'];
const SORT_TARGETS: readonly SortTarget[] = ['key', 'version', 'create', 'mod', 'value'];
const COMPARE_RESULTS: readonly CompareResult[] = ['equal', 'greater', 'less', 'notEqual'];
const COMPARE_TARGETS: readonly CompareTarget[] = ['version', 'create', 'mod', 'value', 'lease'];

const invalidSortOption = () => invalidArgument('etcdserver: invalid sort option');
// etcd evaluates an unknown compare result as true and an unknown target as "equal"; the mvcc
// types cannot carry either, so Tessera rejects them instead.
const invalidCompareResult = () => invalidArgument('etcdserver: invalid compare result');
const invalidCompareTarget = () => invalidArgument('etcdserver: invalid compare target');

const EMPTY = new Uint8Array(0);
const UINT64_DECIMAL = /^(0|[1-9][0-9]{0,19})$/;

/** An int64 from the wire as a number; beyond ±(2^53-1) it is INVALID_ARGUMENT, never rounded. */
export function parseInt64(value: WireInt64 | undefined, field: string): number {
  if (value === undefined) return 0;
  // Number() of a decimal string past 2^53-1 rounds to an unsafe number, so the check is exact.
  return checkedInt64(typeof value === 'number' ? value : Number(value), field);
}

/** Copies bytes out of the request buffer, so a store that keeps a key does not pin the whole message. */
function ownBytes(bytes: Uint8Array | undefined): Uint8Array {
  return bytes === undefined || bytes.length === 0 ? EMPTY : new Uint8Array(bytes);
}

function enumValue<T>(table: readonly T[], value: number, error: () => EtcdError): T {
  const decoded = table[value];
  if (decoded === undefined) throw error();
  return decoded;
}

export function decodeRangeRequest(wire: WireRangeRequest): RangeRequest {
  return {
    key: ownBytes(wire.key),
    rangeEnd: ownBytes(wire.rangeEnd),
    limit: parseInt64(wire.limit, 'limit'),
    revision: parseInt64(wire.revision, 'revision'),
    sortOrder: enumValue(SORT_ORDERS, wire.sortOrder, invalidSortOption),
    sortTarget: enumValue(SORT_TARGETS, wire.sortTarget, invalidSortOption),
    serializable: wire.serializable,
    keysOnly: wire.keysOnly,
    countOnly: wire.countOnly,
    minModRevision: parseInt64(wire.minModRevision, 'min_mod_revision'),
    maxModRevision: parseInt64(wire.maxModRevision, 'max_mod_revision'),
    minCreateRevision: parseInt64(wire.minCreateRevision, 'min_create_revision'),
    maxCreateRevision: parseInt64(wire.maxCreateRevision, 'max_create_revision'),
  };
}

export function decodePutRequest(wire: WirePutRequest): PutRequest {
  return {
    key: ownBytes(wire.key),
    value: ownBytes(wire.value),
    lease: parseInt64(wire.lease, 'lease'),
    prevKv: wire.prevKv,
    ignoreValue: wire.ignoreValue,
    ignoreLease: wire.ignoreLease,
  };
}

export function decodeDeleteRangeRequest(wire: WireDeleteRangeRequest): DeleteRangeRequest {
  return { key: ownBytes(wire.key), rangeEnd: ownBytes(wire.rangeEnd), prevKv: wire.prevKv };
}

/** An operand the client left unset compares as 0 / empty, as in etcd's compareKV. */
function decodeCompare(wire: WireCompare): Compare {
  return {
    result: enumValue(COMPARE_RESULTS, wire.result, invalidCompareResult),
    target: enumValue(COMPARE_TARGETS, wire.target, invalidCompareTarget),
    key: ownBytes(wire.key),
    rangeEnd: ownBytes(wire.rangeEnd),
    version: parseInt64(wire.version, 'compare version'),
    createRevision: parseInt64(wire.createRevision, 'compare create_revision'),
    modRevision: parseInt64(wire.modRevision, 'compare mod_revision'),
    value: ownBytes(wire.value),
    lease: parseInt64(wire.lease, 'compare lease'),
  };
}

function decodeRequestOp(wire: WireRequestOp, maxTxnOps: number): RequestOp {
  switch (wire.request) {
    case 'requestRange':
      return { type: 'range', range: decodeRangeRequest(present(wire.requestRange)) };
    case 'requestPut':
      return { type: 'put', put: decodePutRequest(present(wire.requestPut)) };
    case 'requestDeleteRange':
      return { type: 'deleteRange', deleteRange: decodeDeleteRangeRequest(present(wire.requestDeleteRange)) };
    case 'requestTxn':
      return { type: 'txn', txn: decodeTxnRequest(present(wire.requestTxn), maxTxnOps) };
    case undefined:
      // An op with no request set: etcd's checkRequestOp answers "key not found".
      throw Errors.keyNotFound();
    default:
      return unreachable(wire.request, 'RequestOp member');
  }
}

function present<T>(value: T | undefined | null): T {
  assert(value !== undefined && value !== null, 'the oneof names a member that is not set');
  return value;
}

/**
 * Decodes a txn within an op budget, as etcd's checkTxnRequest counts: compare, success and failure
 * may each hold `maxTxnOps`, and a nested txn gets what its parent's largest list leaves. The budget
 * is checked before a level's ops are decoded, so it also bounds the nesting depth we recurse into.
 */
export function decodeTxnRequest(wire: WireTxnRequest, maxTxnOps: number): TxnRequest {
  const opCount = Math.max(wire.compare.length, wire.success.length, wire.failure.length);
  if (opCount > maxTxnOps) throw Errors.tooManyOps();
  const nestedBudget = maxTxnOps - opCount;
  return {
    compare: wire.compare.map(decodeCompare),
    success: wire.success.map((op) => decodeRequestOp(op, nestedBudget)),
    failure: wire.failure.map((op) => decodeRequestOp(op, nestedBudget)),
  };
}

export function decodeCompactionRequest(wire: WireCompactionRequest): CompactionRequest {
  return { revision: parseInt64(wire.revision, 'revision'), physical: wire.physical };
}

/** True for a uint64 in decimal (cluster, member and leader IDs travel that way). */
export function isUint64Decimal(value: string): boolean {
  return UINT64_DECIMAL.test(value) && BigInt(value) <= 0xffff_ffff_ffff_ffffn;
}

/** The top-level header: cluster fields from the node, revision from the response. */
export function encodeHeader(revision: number, info: HeaderInfo): WireResponseHeader {
  assert(
    Number.isSafeInteger(revision) && revision >= 0,
    () => `response revision ${revision} is not a revision`,
  );
  assert(
    Number.isSafeInteger(info.raftTerm) && info.raftTerm >= 0,
    () => `raft term ${info.raftTerm} is not a term`,
  );
  if (info.clusterId !== checkedIds.clusterId || info.memberId !== checkedIds.memberId) {
    // The IDs change only with membership: checked once per pair, not per response (a regex and
    // two BigInt parses were ~2% of a node's CPU on gets).
    assert(isUint64Decimal(info.clusterId) && isUint64Decimal(info.memberId), 'cluster and member IDs are uint64 decimals');
    checkedIds.clusterId = info.clusterId;
    checkedIds.memberId = info.memberId;
  }
  return { clusterId: info.clusterId, memberId: info.memberId, revision, raftTerm: info.raftTerm };
}

/** The last (cluster, member) ID pair encodeHeader found valid. */
const checkedIds = { clusterId: '', memberId: '' };

/** Responses nested in a txn carry only their revision, as etcd's do. */
function nestedHeader(revision: number): WireResponseHeader {
  return { clusterId: '0', memberId: '0', revision, raftTerm: 0 };
}

// mvcc's KeyValue has exactly mvccpb.KeyValue's shape, so key-values pass through uncopied.

export function encodeRangeResponse(response: RangeResponse, header: WireResponseHeader): WireRangeResponse {
  return { header, kvs: response.kvs, more: response.more, count: response.count };
}

export function encodePutResponse(response: PutResponse, header: WireResponseHeader): WirePutResponse {
  return { header, prevKv: response.prevKv };
}

export function encodeDeleteRangeResponse(
  response: DeleteRangeResponse,
  header: WireResponseHeader,
): WireDeleteRangeResponse {
  return { header, deleted: response.deleted, prevKvs: response.prevKvs };
}

function encodeResponseOp(op: ResponseOp): WireResponseOp {
  switch (op.type) {
    case 'range':
      return { responseRange: encodeRangeResponse(op.range, nestedHeader(op.range.header.revision)) };
    case 'put':
      return { responsePut: encodePutResponse(op.put, nestedHeader(op.put.header.revision)) };
    case 'deleteRange':
      return {
        responseDeleteRange: encodeDeleteRangeResponse(
          op.deleteRange,
          nestedHeader(op.deleteRange.header.revision),
        ),
      };
    case 'txn':
      // etcd never sets a nested txn's header (txn.newTxnResp): its revision reads 0.
      return { responseTxn: encodeTxnResponse(op.txn, nestedHeader(0)) };
    default:
      return unreachable(op, 'ResponseOp');
  }
}

export function encodeTxnResponse(response: TxnResponse, header: WireResponseHeader): WireTxnResponse {
  return { header, succeeded: response.succeeded, responses: response.responses.map(encodeResponseOp) };
}

export function encodeCompactionResponse(
  _response: CompactionResponse,
  header: WireResponseHeader,
): WireCompactionResponse {
  return { header };
}
