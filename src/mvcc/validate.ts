// Request validation that etcd does before a request reaches the state machine (v3rpc/key.go):
// empty keys, flag conflicts, op counts, duplicate keys in a txn; plus the int64 boundary check.

import { Errors, checkedInt64, invalidArgument } from '../util/index.ts';
import type { Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest } from './types.ts';
import { toBounds, toKeyString } from './keys.ts';
import type { KeyBounds } from './keys.ts';

const SORT_ORDERS = new Set<string>(['none', 'ascend', 'descend']);
const SORT_TARGETS = new Set<string>(['key', 'version', 'create', 'mod', 'value']);
const COMPARE_RESULTS = new Set<string>(['equal', 'greater', 'less', 'notEqual']);
const COMPARE_TARGETS = new Set<string>(['version', 'create', 'mod', 'value', 'lease']);

function checkBytes(value: unknown, field: string): void {
  if (!(value instanceof Uint8Array)) throw invalidArgument(`etcdserver: ${field} must be bytes`);
}

export function checkRangeRequest(req: RangeRequest): void {
  checkBytes(req.key, 'key');
  checkBytes(req.rangeEnd, 'range_end');
  if (req.key.length === 0) throw Errors.emptyKey();
  if (!SORT_ORDERS.has(req.sortOrder) || !SORT_TARGETS.has(req.sortTarget)) {
    throw invalidArgument('etcdserver: invalid sort option');
  }
  checkedInt64(req.limit, 'limit');
  checkedInt64(req.revision, 'revision');
  checkedInt64(req.minModRevision, 'min_mod_revision');
  checkedInt64(req.maxModRevision, 'max_mod_revision');
  checkedInt64(req.minCreateRevision, 'min_create_revision');
  checkedInt64(req.maxCreateRevision, 'max_create_revision');
}

export function checkPutRequest(req: PutRequest): void {
  checkBytes(req.key, 'key');
  checkBytes(req.value, 'value');
  if (req.key.length === 0) throw Errors.emptyKey();
  checkedInt64(req.lease, 'lease');
  if (req.ignoreValue && req.value.length !== 0) throw Errors.valueProvided();
  if (req.ignoreLease && req.lease !== 0) throw Errors.leaseProvided();
}

export function checkDeleteRequest(req: DeleteRangeRequest): void {
  checkBytes(req.key, 'key');
  checkBytes(req.rangeEnd, 'range_end');
  if (req.key.length === 0) throw Errors.emptyKey();
}

function checkCompare(compare: Compare): void {
  checkBytes(compare.key, 'key');
  checkBytes(compare.rangeEnd, 'range_end');
  if (compare.key.length === 0) throw Errors.emptyKey();
  if (!COMPARE_RESULTS.has(compare.result) || !COMPARE_TARGETS.has(compare.target)) {
    throw invalidArgument('etcdserver: invalid compare');
  }
  if (compare.target === 'value') checkBytes(compare.value, 'value');
  else checkedInt64(targetNumber(compare), compare.target);
}

/** The numeric operand of a compare whose target is not `value`. */
export function targetNumber(compare: Compare): number {
  switch (compare.target) {
    case 'version':
      return compare.version;
    case 'create':
      return compare.createRevision;
    case 'mod':
      return compare.modRevision;
    case 'lease':
      return compare.lease;
    default:
      return 0;
  }
}

/**
 * etcd's checkTxnRequest: each level may hold at most `maxTxnOps` compares, success ops and
 * failure ops, and a nested txn gets the budget left after its parent's widest list.
 */
export function checkTxnRequest(req: TxnRequest, maxTxnOps: number): void {
  const widest = Math.max(req.compare.length, req.success.length, req.failure.length);
  if (widest > maxTxnOps) throw Errors.tooManyOps();
  for (const compare of req.compare) checkCompare(compare);
  for (const op of req.success) checkRequestOp(op, maxTxnOps - widest);
  for (const op of req.failure) checkRequestOp(op, maxTxnOps - widest);
}

function checkRequestOp(op: RequestOp, maxTxnOps: number): void {
  switch (op?.type) {
    case 'range':
      return checkRangeRequest(op.range);
    case 'put':
      return checkPutRequest(op.put);
    case 'deleteRange':
      return checkDeleteRequest(op.deleteRange);
    case 'txn':
      return checkTxnRequest(op.txn, maxTxnOps);
    default:
      throw Errors.keyNotFound(); // etcd's answer to an empty RequestOp
  }
}

/** The keys a txn level may put, and the intervals it may delete (both branches of children). */
interface Writes {
  puts: Set<string>;
  deletes: KeyBounds[];
}

function deletesContain(deletes: readonly KeyBounds[], id: string): boolean {
  for (const bounds of deletes) {
    if (bounds.single ? bounds.lo === id : bounds.hi !== null && id >= bounds.lo && id < bounds.hi) return true;
  }
  return false;
}

/**
 * etcd's checkIntervals, rule for rule: within the ops that can run together, no key is put twice
 * and no put falls in a delete of the same level or of an earlier nested txn (the two branches of
 * one nested txn are exclusive, so they may repeat a put). What etcd lets through is allowed here
 * too, and the keyspace models it with sub-revisions (a key written more than once in one
 * revision): a delete with range_end "\0" covers no key here (etcd's interval ["key", "\0") is
 * empty), and a nested txn's delete is not checked against the puts of earlier nested txns, so
 * [txn{put k}, txn{delete k}] passes.
 */
export function checkIntervals(ops: readonly RequestOp[]): Writes {
  const deletes: KeyBounds[] = [];
  for (const op of ops) {
    if (op.type === 'deleteRange') deletes.push(toBounds(op.deleteRange.key, op.deleteRange.rangeEnd));
  }
  const puts = new Set<string>();
  for (const op of ops) {
    if (op.type !== 'txn') continue;
    const then = checkIntervals(op.txn.success);
    const otherwise = checkIntervals(op.txn.failure);
    for (const id of then.puts) {
      if (puts.has(id) || deletesContain(deletes, id)) throw Errors.duplicateKey();
      puts.add(id);
    }
    for (const id of otherwise.puts) {
      if (puts.has(id) && !then.puts.has(id)) throw Errors.duplicateKey();
      if (deletesContain(deletes, id)) throw Errors.duplicateKey();
      puts.add(id);
    }
    deletes.push(...then.deletes, ...otherwise.deletes);
  }
  for (const op of ops) {
    if (op.type !== 'put') continue;
    const id = toKeyString(op.put.key);
    if (puts.has(id) || deletesContain(deletes, id)) throw Errors.duplicateKey();
    puts.add(id);
  }
  return { puts, deletes };
}
