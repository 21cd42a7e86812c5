// etcd's request checks (server/etcdserver/api/v3rpc/key.go, and the proposal size limit of
// etcdserver's processInternalRaftRequestOnce), applied to decoded requests before the backend sees them.
import sortedBtree from 'sorted-btree';
import type { DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest } from '../mvcc/index.ts';
import { assert, Errors } from '../util/index.ts';

// sorted-btree is CommonJS with `exports.default = BTree`; an ESM default import is `module.exports`.
const BTree = sortedBtree.default;

export function checkRangeRequest(req: RangeRequest): void {
  if (req.key.length === 0) throw Errors.emptyKey();
}

export function checkPutRequest(req: PutRequest): void {
  if (req.key.length === 0) throw Errors.emptyKey();
  if (req.ignoreValue && req.value.length !== 0) throw Errors.valueProvided();
  if (req.ignoreLease && req.lease !== 0) throw Errors.leaseProvided();
}

export function checkDeleteRangeRequest(req: DeleteRangeRequest): void {
  if (req.key.length === 0) throw Errors.emptyKey();
}

/**
 * Every compare and op, recursively, then the duplicate-write rule for each branch. The op budget
 * (too many operations) was already enforced while decoding (codec.decodeTxnRequest).
 */
export function checkTxnRequest(req: TxnRequest): void {
  checkTxnOps(req);
  checkWriteConflicts(req.success);
  checkWriteConflicts(req.failure);
}

function checkTxnOps(req: TxnRequest): void {
  for (const compare of req.compare) {
    if (compare.key.length === 0) throw Errors.emptyKey();
  }
  for (const op of req.success) checkRequestOp(op);
  for (const op of req.failure) checkRequestOp(op);
}

function checkRequestOp(op: RequestOp): void {
  switch (op.type) {
    case 'range':
      return checkRangeRequest(op.range);
    case 'put':
      return checkPutRequest(op.put);
    case 'deleteRange':
      return checkDeleteRangeRequest(op.deleteRange);
    case 'txn':
      return checkTxnOps(op.txn);
  }
}

/** etcd runs a read-only txn without a Raft proposal (txn.IsTxnReadonly): only range ops, no nesting. */
export function isReadOnlyTxn(req: TxnRequest): boolean {
  return req.success.every((op) => op.type === 'range') && req.failure.every((op) => op.type === 'range');
}

/**
 * etcd refuses a write whose Raft proposal (the request inside an InternalRaftRequest, next to a
 * RequestHeader carrying the request ID) is larger than --max-request-bytes: "request is too large".
 * We measure the request as received plus that envelope, so the limit falls on the byte where
 * etcd's does. (With auth, etcd's header also carries the user name: add it when auth lands.)
 */
export function checkProposalSize(requestBytes: number, maxRequestBytes: number, requestIdBytes: number): void {
  assert(Number.isSafeInteger(requestBytes) && requestBytes >= 0, 'request size is a byte count');
  assert(requestIdBytes >= 1 && requestIdBytes <= 10, 'a request ID is a uint64 varint');
  // header: field 100's tag (2 bytes), its length (1), the ID's tag (1) and varint; then the request's tag and length.
  const envelopeBytes = 2 + 1 + 1 + requestIdBytes + 1 + varintBytes(requestBytes);
  if (requestBytes + envelopeBytes > maxRequestBytes) throw Errors.requestTooLarge();
}

/**
 * The varint size of the request IDs etcd's member `memberId` generates (pkg/idutil): the member
 * ID's low 16 bits above 48 bits of time and counter, so members differ by up to a few bytes.
 */
export function requestIdVarintBytes(memberId: string): number {
  const member16 = Number(BigInt(memberId) & 0xffffn);
  const bits = 48 + (member16 === 0 ? 0 : Math.floor(Math.log2(member16)) + 1);
  return Math.ceil(bits / 7);
}

function varintBytes(value: number): number {
  let bytes = 1;
  for (let rest = Math.floor(value / 128); rest > 0; rest = Math.floor(rest / 128)) bytes += 1;
  return bytes;
}

/**
 * etcd's checkIntervals: within one branch, no key may be put twice or put and deleted, where a
 * nested txn's then/else branches exclude each other. Kept rule for rule (it is what clients rely
 * on), including what it lets through: a nested txn's puts are checked against the deletes of this
 * level and of earlier siblings only, and a delete with range_end "\0" covers no key here.
 * Returns the branch's puts and deletes for the caller one level up.
 */
export function checkWriteConflicts(ops: readonly RequestOp[]): { puts: Set<string>; deletes: CoveredKeys } {
  const deletes = new CoveredKeys();
  for (const op of ops) {
    if (op.type !== 'deleteRange') continue;
    const begin = binaryString(op.deleteRange.key);
    const end = op.deleteRange.rangeEnd.length === 0 ? begin + '\x00' : binaryString(op.deleteRange.rangeEnd);
    deletes.add(begin, end);
  }
  const puts = new Set<string>();
  for (const op of ops) {
    if (op.type !== 'txn') continue;
    const then = checkWriteConflicts(op.txn.success);
    const otherwise = checkWriteConflicts(op.txn.failure);
    for (const key of then.puts) {
      if (puts.has(key) || deletes.covers(key)) throw Errors.duplicateKey();
      puts.add(key);
    }
    for (const key of otherwise.puts) {
      // A key the then-branch also puts is fine: only one of the two branches runs.
      if ((puts.has(key) && !then.puts.has(key)) || deletes.covers(key)) throw Errors.duplicateKey();
      puts.add(key);
    }
    deletes.addAll(then.deletes);
    deletes.addAll(otherwise.deletes);
  }
  for (const op of ops) {
    if (op.type !== 'put') continue;
    const key = binaryString(op.put.key);
    if (puts.has(key) || deletes.covers(key)) throw Errors.duplicateKey();
    puts.add(key);
  }
  return { puts, deletes };
}

/** Bytes as a string of code units 0-255, so string order is byte order. */
function binaryString(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

/**
 * The keys covered by a set of half-open ranges [begin, end), kept as disjoint merged ranges in a
 * B-tree: membership is all checkWriteConflicts asks, so merging loses nothing, and each add or
 * lookup is O(log n) even for the largest txn a request can carry.
 */
export class CoveredKeys {
  private readonly ranges = new BTree<string, string>();

  add(begin: string, end: string): void {
    if (end <= begin) return; // an empty or inverted range covers nothing
    let lo = begin;
    let hi = end;
    const before = this.ranges.getPairOrNextLower(begin);
    if (before !== undefined && before[1] >= begin) {
      lo = before[0];
      if (before[1] > hi) hi = before[1];
    }
    // Ranges are disjoint, so only ranges starting inside [lo, hi] can overlap, and only the last can extend hi.
    this.ranges.forRange(lo, hi, true, (_start, stop) => {
      if (stop > hi) hi = stop;
    });
    this.ranges.deleteRange(lo, hi, true);
    this.ranges.set(lo, hi);
    assert(this.covers(begin), 'a range covers its own start after add');
  }

  addAll(other: CoveredKeys): void {
    other.ranges.forEachPair((begin, end) => this.add(begin, end));
  }

  covers(key: string): boolean {
    const range = this.ranges.getPairOrNextLower(key);
    return range !== undefined && key < range[1];
  }
}
