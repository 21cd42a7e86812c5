// MvccStore: etcd's data model as a deterministic in-memory state machine. The server applies
// committed Raft entries through the write methods (same inputs, same order => same state and
// same responses on every replica) and serves reads and watches from it; durability is the Raft
// log plus snapshots of this state (snapshotChunks / restore).

import { Errors, assert, checkedInt64, unreachable } from '../util/index.ts';
import type {
  ApplyResult,
  Compare,
  CompactionRequest,
  CompactionResponse,
  DeleteRangeRequest,
  DeleteRangeResponse,
  HashKVResult,
  KeyValue,
  LeaseCheckpointResponse,
  LeaseGrantResponse,
  LeaseLeasesResponse,
  LeaseRevokeResponse,
  LeaseTimeToLiveResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  RequestOp,
  ResponseOp,
  TxnRequest,
  TxnResponse,
  WatchHandle,
  WatchOptions,
  WatchSink,
} from './types.ts';
import { EMPTY_BYTES, boundsContain, compareBytes, copyBytes, toBounds, toKeyString } from './keys.ts';
import { Keyspace, indexAt, liveValue } from './keyspace.ts';
import type { KeyEntry } from './keyspace.ts';
import { LeaseTable } from './leases.ts';
import { resolveLimits } from './limits.ts';
import type { MvccLimits } from './limits.ts';
import { executeRange } from './range.ts';
import { hashKeyspace } from './hash.ts';
import { SnapshotInvalidatedError, corruptSnapshot, decodeSnapshot, encodeSnapshot } from './snapshot.ts';
import { checkDeleteRequest, checkIntervals, checkPutRequest, checkRangeRequest, checkTxnRequest, targetNumber } from './validate.ts';
import { WatchHub, eventsOf } from './watch.ts';

/** A txn level with its compares already evaluated: the branch to run, and its nested plans. */
interface TxnPlan {
  succeeded: boolean;
  ops: readonly RequestOp[];
  nested: (TxnPlan | null)[];
}

const ZERO_KV: KeyValue = { key: EMPTY_BYTES, createRevision: 0, modRevision: 0, version: 0, value: EMPTY_BYTES, lease: 0 };

export class MvccStore {
  readonly limits: Readonly<MvccLimits>;
  private ks: Keyspace;
  private leaseTable: LeaseTable;
  private hub: WatchHub;
  /** Bumped by every state change; snapshot iteration checks it. */
  private mutations = 0;

  constructor(limits?: Partial<MvccLimits>) {
    this.limits = resolveLimits(limits);
    this.ks = new Keyspace();
    this.leaseTable = new LeaseTable(this.limits);
    this.hub = new WatchHub(this.ks, this.limits);
  }

  /** The revision of the last write; an empty store is at revision 1, like etcd. */
  get currentRevision(): number {
    return this.ks.currentRevision;
  }

  /** The last compaction's revision; -1 before any (etcd's compactMainRev, so compact(0) is a valid
   *  first compaction and HashKV reports -1). Reads and watches below it fail. */
  get compactedRevision(): number {
    return this.ks.compactedRevision;
  }

  get keyCount(): number {
    return this.ks.keyCount;
  }

  /** Bytes of keys and values over every version held: about what a snapshot encodes (Keyspace.dataBytes). */
  get dataBytes(): number {
    return this.ks.dataBytes;
  }

  get watcherCount(): number {
    return this.hub.size;
  }

  get leaseCount(): number {
    return this.leaseTable.size;
  }

  // ---- reads ----

  range(req: RangeRequest): RangeResponse {
    checkRangeRequest(req);
    const current = this.ks.currentRevision;
    this.checkReadRevision(req.revision, current);
    return executeRange(this.ks, req, current);
  }

  /** etcd's Range: a revision above the read view is a future revision; a positive one below the
   *  compaction, compacted; zero or negative reads the current revision. */
  private checkReadRevision(revision: number, readRevision: number): void {
    if (revision > readRevision) throw Errors.futureRev();
    if (revision > 0 && revision < this.ks.compactedRevision) throw Errors.compacted();
  }

  /** etcd 3.4's checkRequestRange for a txn's range ops: any nonzero revision below the compaction is
   *  compacted, negative ones included (-1 passes until the first compaction, as compactMainRev is -1). */
  private checkTxnReadRevision(revision: number): void {
    if (revision === 0) return;
    if (revision > this.ks.currentRevision) throw Errors.futureRev();
    if (revision < this.ks.compactedRevision) throw Errors.compacted();
  }

  // ---- writes (each a committed Raft entry) ----

  put(req: PutRequest): ApplyResult<PutResponse> {
    this.assertWritable();
    checkPutRequest(req);
    this.checkLeaseExists(req.lease);
    this.checkPutTarget(req);
    return this.write(() => this.applyPut(req));
  }

  deleteRange(req: DeleteRangeRequest): ApplyResult<DeleteRangeResponse> {
    this.assertWritable();
    checkDeleteRequest(req);
    return this.write(() => this.applyDelete(req));
  }

  /**
   * Atomic: compares (and nested compares) are evaluated on the state before the txn, every check
   * runs before the first write, and all writes share one revision (none if nothing changed).
   */
  txn(req: TxnRequest): ApplyResult<TxnResponse> {
    this.assertWritable();
    checkTxnRequest(req, this.limits.maxTxnOps);
    checkIntervals(req.success);
    checkIntervals(req.failure);
    const plan = this.plan(req);
    const isWrite = [...req.success, ...req.failure].some((op) => op.type !== 'range');
    if (isWrite) this.checkPuts(plan, hasIgnorePut(plan) ? new Map() : null);
    this.checkPlan(plan);
    if (!isWrite) {
      const response = this.runPlan(plan);
      response.header.revision = this.ks.currentRevision;
      return { response, events: [] };
    }
    const result = this.write(() => this.runPlan(plan));
    result.response.header.revision = this.ks.currentRevision;
    return result;
  }

  compact(req: CompactionRequest): ApplyResult<CompactionResponse> {
    this.assertWritable();
    const revision = checkedInt64(req.revision, 'revision');
    // etcd: anything at or below the last compaction (-1 before any, so compact(0) passes once).
    if (revision <= this.ks.compactedRevision) throw Errors.compacted();
    if (revision > this.ks.currentRevision) throw Errors.futureRev();
    this.ks.compact(revision);
    this.mutations += 1;
    return { response: { header: { revision: this.ks.currentRevision } }, events: [] };
  }

  // ---- leases (the server owns time: it proposes a revoke when a lease expires) ----

  leaseGrant(id: number, ttlSeconds: number): ApplyResult<LeaseGrantResponse> {
    this.assertWritable();
    checkedInt64(id, 'ID');
    checkedInt64(ttlSeconds, 'TTL');
    const lease = this.leaseTable.grant(id, ttlSeconds);
    this.mutations += 1;
    return { response: { header: { revision: this.ks.currentRevision }, id: lease.id, ttl: lease.ttl }, events: [] };
  }

  /** Deletes the lease and its keys, in key order, in one revision (none if it held no keys). */
  leaseRevoke(id: number): ApplyResult<LeaseRevokeResponse> {
    this.assertWritable();
    checkedInt64(id, 'ID');
    const lease = this.leaseTable.get(id);
    if (lease === undefined) throw Errors.leaseNotFound();
    const keyIds = [...lease.keys].sort();
    const result = this.write(() => {
      for (const keyId of keyIds) {
        const entry = this.ks.get(keyId);
        assert(entry !== undefined, 'a leased key is indexed');
        this.deleteEntry(entry);
      }
      assert(lease.keys.size === 0, 'revoke detached every key');
      this.leaseTable.remove(id);
      return { header: { revision: 0 } };
    });
    result.response.header.revision = this.ks.currentRevision;
    return result;
  }

  /** etcd's LeaseCheckpoint: records the remaining TTL so a new leader resumes the countdown. */
  leaseCheckpoint(id: number, remainingTtlSeconds: number): ApplyResult<LeaseCheckpointResponse> {
    this.assertWritable();
    checkedInt64(id, 'ID');
    checkedInt64(remainingTtlSeconds, 'remaining_TTL');
    const lease = this.leaseTable.get(id);
    if (lease !== undefined) {
      lease.remainingTtl = Math.max(0, remainingTtlSeconds);
      this.mutations += 1;
    }
    return { response: { header: { revision: this.ks.currentRevision } }, events: [] };
  }

  /** Throws leaseNotFound for an unknown lease (etcd's API turns that into TTL -1). */
  leaseTimeToLive(id: number, keys: boolean): LeaseTimeToLiveResponse {
    checkedInt64(id, 'ID');
    const lease = this.leaseTable.get(id);
    if (lease === undefined) throw Errors.leaseNotFound();
    const attached = keys ? [...lease.keys].sort().map((keyId) => this.entryOf(keyId).key) : [];
    return {
      header: { revision: this.ks.currentRevision },
      id,
      ttl: lease.remainingTtl > 0 ? lease.remainingTtl : lease.ttl,
      grantedTtl: lease.ttl,
      keys: attached,
    };
  }

  leases(): LeaseLeasesResponse {
    return {
      header: { revision: this.ks.currentRevision },
      leases: this.leaseTable.sorted().map((lease) => ({ id: lease.id, ttl: lease.ttl, remainingTtl: lease.remainingTtl })),
    };
  }

  // ---- watches ----

  /**
   * Starts a watch. With startRevision <= currentRevision the history is replayed through `sink`
   * before this returns (so send the API's "created" response first). Throws WatchCompactedError
   * (with compactRevision) when startRevision is below the compacted revision, and etcd's
   * compacted error for a negative startRevision. See WatchSink and WatchHandle for flow control.
   */
  watch(options: WatchOptions, sink: WatchSink): WatchHandle {
    return this.hub.watch(options, sink);
  }

  // ---- snapshot, restore, hash ----

  /**
   * The state as msgpack+zlib chunks (format in snapshot.ts), produced lazily: the chunks describe
   * the store as it is now, even if writes are applied while they are being read (so a node can
   * spread a large snapshot over many turns of its loop). That works because a write only adds
   * versions: versions after this revision are left out, and the keyspace is walked by key, not
   * with an iterator that a write could invalidate. Only a compaction (which drops versions) or a
   * restore replaces what the chunks still need; reading on after one throws
   * SnapshotInvalidatedError, and the caller starts again. Watchers are not part of a snapshot.
   */
  snapshotChunks(maxChunkBytes: number): Iterable<Uint8Array> {
    const ks = this.ks;
    const revision = ks.currentRevision;
    const compacted = ks.compactedRevision;
    const source = {
      currentRevision: revision,
      compactedRevision: compacted,
      oldestLoggedRevision: ks.oldestLoggedRevision,
      entries: () => ks.entriesByKey(),
      versionsIn: (entry: KeyEntry) => indexAt(entry, revision) + 1,
      leases: this.leaseTable.sorted().map((lease) => ({ id: lease.id, ttl: lease.ttl, remainingTtl: lease.remainingTtl })),
    };
    return encodeSnapshot(source, maxChunkBytes, () => {
      if (this.ks !== ks) throw new SnapshotInvalidatedError('the store was replaced by a restore');
      if (ks.compactedRevision !== compacted) throw new SnapshotInvalidatedError(`a compaction at revision ${ks.compactedRevision} ran`);
    });
  }

  /** A store holding exactly the snapshotted state (with no watchers). Throws DATA_LOSS if corrupt. */
  static restore(chunks: Iterable<Uint8Array>, limits?: Partial<MvccLimits>): MvccStore {
    const decoded = decodeSnapshot(chunks); // checks the keyspace's invariants
    const store = new MvccStore(limits);
    store.ks = decoded.ks;
    store.hub = new WatchHub(store.ks, store.limits);
    for (const lease of decoded.leases) {
      if (lease.id === 0 || store.leaseTable.get(lease.id) !== undefined) throw corruptSnapshot(`bad lease ${lease.id}`);
      store.leaseTable.restore(lease.id, lease.ttl, lease.remainingTtl);
    }
    for (const [id, entry] of store.ks.entries()) {
      const live = liveValue(entry);
      if (live === null || live.lease === 0) continue;
      if (store.leaseTable.get(live.lease) === undefined) throw corruptSnapshot(`key attached to missing lease ${live.lease}`);
      store.leaseTable.attach(live.lease, id);
    }
    return store;
  }

  /** etcd's HashKV: revision 0 (or below) = current; a positive revision at or below the compaction
   *  is compacted (etcd's HashByRev uses <=, unlike Range), above the current one is a future revision. */
  hashKV(revision: number): HashKVResult {
    checkedInt64(revision, 'revision');
    const current = this.ks.currentRevision;
    if (revision > 0 && revision <= this.ks.compactedRevision) throw Errors.compacted();
    if (revision > current) throw Errors.futureRev();
    const rev = revision > 0 ? revision : current;
    return { hash: hashKeyspace(this.ks, rev), revision: current, compactRevision: this.ks.compactedRevision };
  }

  /** Checks every internal invariant (tests). Throws AssertionError on a violation. */
  checkInvariants(): void {
    this.ks.checkInvariants();
    let attached = 0;
    for (const [id, entry] of this.ks.entries()) {
      const live = liveValue(entry);
      if (live === null || live.lease === 0) continue;
      attached += 1;
      assert(this.leaseTable.get(live.lease)?.keys.has(id) === true, () => `key ${JSON.stringify(id)} not attached to lease ${live.lease}`);
    }
    const total = this.leaseTable.sorted().reduce((sum, lease) => sum + lease.keys.size, 0);
    assert(total === attached, 'every lease attachment is a live key');
  }

  // ---- internals ----

  private assertWritable(): void {
    assert(!this.hub.busy, 'a watch sink must not write to the store');
  }

  private entryOf(keyId: string): KeyEntry {
    const entry = this.ks.get(keyId);
    assert(entry !== undefined, 'key is indexed');
    return entry;
  }

  private checkLeaseExists(lease: number): void {
    if (lease !== 0 && this.leaseTable.get(lease) === undefined) throw Errors.leaseNotFound();
  }

  /** ignore_value / ignore_lease need the key to exist (checked on the state before the write). */
  private checkPutTarget(req: PutRequest): void {
    if (!req.ignoreValue && !req.ignoreLease) return;
    const entry = this.ks.get(toKeyString(req.key));
    if (entry === undefined || liveValue(entry) === null) throw Errors.keyNotFound();
  }

  /** Runs `apply` as one write transaction, then hands the revision's events to watchers. */
  private write<R>(apply: () => R): ApplyResult<R> {
    this.ks.beginWrite();
    const response = apply();
    const changes = this.ks.endWrite();
    this.mutations += 1;
    if (changes.length === 0) return { response, events: [] };
    const events = eventsOf(changes);
    this.hub.notify(this.ks.currentRevision, changes, events);
    return { response, events };
  }

  private applyPut(req: PutRequest): PutResponse {
    const id = toKeyString(req.key);
    const entry = this.ks.get(id);
    const live = entry === undefined ? null : liveValue(entry);
    assert(live !== null || (!req.ignoreValue && !req.ignoreLease), 'ignore_* target was checked');
    const value = live !== null && req.ignoreValue ? live.value : copyBytes(req.value);
    const lease = live !== null && req.ignoreLease ? live.lease : req.lease;
    this.ks.put(entry, id, req.key, value, lease);
    const oldLease = live === null ? 0 : live.lease;
    if (oldLease !== lease) {
      if (oldLease !== 0) this.leaseTable.detach(oldLease, id);
      if (lease !== 0) this.leaseTable.attach(lease, id);
    }
    return { header: { revision: this.ks.currentRevision + 1 }, prevKv: req.prevKv ? live : null };
  }

  private applyDelete(req: DeleteRangeRequest): DeleteRangeResponse {
    const victims: KeyEntry[] = [];
    this.ks.forEach(toBounds(req.key, req.rangeEnd), (entry) => {
      if (liveValue(entry) !== null) victims.push(entry);
    });
    const prevKvs: KeyValue[] = [];
    for (const entry of victims) {
      const live = this.deleteEntry(entry);
      if (req.prevKv) prevKvs.push(live);
    }
    return { header: { revision: this.ks.writeReadRevision }, deleted: victims.length, prevKvs };
  }

  /** Tombstones a live key and detaches its lease; returns the value it had. */
  private deleteEntry(entry: KeyEntry): KeyValue {
    const live = liveValue(entry);
    assert(live !== null, 'deleting a live key');
    this.ks.tombstone(entry);
    if (live.lease !== 0) this.leaseTable.detach(live.lease, entry.id);
    return live;
  }

  // ---- txn ----

  /** Evaluates every compare on the path (nested ones too) against the state before the txn. */
  private plan(req: TxnRequest): TxnPlan {
    const succeeded = req.compare.every((compare) => this.evaluateCompare(compare));
    const ops = succeeded ? req.success : req.failure;
    return { succeeded, ops, nested: ops.map((op) => (op.type === 'txn' ? this.plan(op.txn) : null)) };
  }

  /** etcd's applyCompare: every key in range must satisfy it; no key compares as a zero kv,
   *  except that a value compare on missing keys is always false. */
  private evaluateCompare(compare: Compare): boolean {
    let found = false;
    let holds = true;
    this.ks.forEach(toBounds(compare.key, compare.rangeEnd), (entry) => {
      const kv = liveValue(entry);
      if (kv === null) return true;
      found = true;
      holds = compareKv(compare, kv);
      return holds;
    });
    if (found) return holds;
    return compare.target === 'value' ? false : compareKv(compare, ZERO_KV);
  }

  /**
   * etcd 3.4's pre-apply checks of the puts that will run, in op order: the ignore_* target, then
   * the lease. etcd checks ignore_* targets on the state before the txn, so a put with ignore_*
   * after a delete of its key in the same txn (a "\0" range end lets that through) passes its check
   * and fails while applying, and etcd panics on every member. Here the check follows the txn's own
   * deletes and puts (`liveness`: key -> live after the ops so far; null when no put has ignore_*,
   * as then liveness does not matter) and refuses the txn with "key not found" before any write.
   */
  private checkPuts(plan: TxnPlan, liveness: Map<string, boolean> | null): void {
    plan.ops.forEach((op, i) => {
      const nested = plan.nested[i];
      if (nested !== null) return this.checkPuts(nested, liveness);
      if (op.type === 'put') {
        if (liveness === null) this.checkPutTarget(op.put);
        else this.checkPutTargetIn(op.put, liveness);
        this.checkLeaseExists(op.put.lease);
      } else if (op.type === 'deleteRange' && liveness !== null) {
        const bounds = toBounds(op.deleteRange.key, op.deleteRange.rangeEnd);
        this.ks.forEach(bounds, (entry) => {
          if (liveValue(entry) !== null) liveness.set(entry.id, false);
        });
        for (const [id, live] of liveness) if (live && boundsContain(bounds, id)) liveness.set(id, false);
      }
    });
  }

  /** checkPutTarget on the state the put will meet: the store after the txn's earlier ops. */
  private checkPutTargetIn(req: PutRequest, liveness: Map<string, boolean>): void {
    const id = toKeyString(req.key);
    if (req.ignoreValue || req.ignoreLease) {
      const entry = this.ks.get(id);
      const live = liveness.get(id) ?? (entry !== undefined && liveValue(entry) !== null);
      if (!live) throw Errors.keyNotFound();
    }
    liveness.set(id, true);
  }

  /** etcd 3.4's pre-apply checks of the range ops that will run: their revisions. */
  private checkPlan(plan: TxnPlan): void {
    plan.ops.forEach((op, i) => {
      const nested = plan.nested[i];
      if (nested !== null) this.checkPlan(nested);
      else if (op.type === 'range') this.checkTxnReadRevision(op.range.revision);
    });
  }

  /** Runs a checked plan. Nested txn responses carry header revision 0, as in etcd. */
  private runPlan(plan: TxnPlan): TxnResponse {
    const responses = plan.ops.map((op, i): ResponseOp => {
      switch (op.type) {
        case 'range':
          return { type: 'range', range: executeRange(this.ks, op.range, this.readRevision()) };
        case 'put':
          return { type: 'put', put: this.applyPut(op.put) };
        case 'deleteRange':
          return { type: 'deleteRange', deleteRange: this.applyDelete(op.deleteRange) };
        case 'txn': {
          const nested = plan.nested[i];
          assert(nested !== null, 'nested txn was planned');
          return { type: 'txn', txn: this.runPlan(nested) };
        }
        default:
          return unreachable(op, 'request op');
      }
    });
    return { header: { revision: 0 }, succeeded: plan.succeeded, responses };
  }

  /** Inside a write: etcd's beginRev, +1 once the txn changed something; else the current revision. */
  private readRevision(): number {
    return this.ks.inWrite ? this.ks.writeReadRevision : this.ks.currentRevision;
  }
}

/** Whether a put the plan will run has ignore_value or ignore_lease. */
function hasIgnorePut(plan: TxnPlan): boolean {
  return plan.ops.some((op, i) => {
    const nested = plan.nested[i];
    if (nested !== null) return hasIgnorePut(nested);
    return op.type === 'put' && (op.put.ignoreValue || op.put.ignoreLease);
  });
}

function compareKv(compare: Compare, kv: KeyValue): boolean {
  let result: number;
  if (compare.target === 'value') {
    result = compareBytes(kv.value, compare.value);
  } else {
    const actual =
      compare.target === 'version'
        ? kv.version
        : compare.target === 'create'
          ? kv.createRevision
          : compare.target === 'mod'
            ? kv.modRevision
            : kv.lease;
    const operand = targetNumber(compare);
    result = actual < operand ? -1 : actual > operand ? 1 : 0;
  }
  switch (compare.result) {
    case 'equal':
      return result === 0;
    case 'notEqual':
      return result !== 0;
    case 'greater':
      return result > 0;
    case 'less':
      return result < 0;
    default:
      return unreachable(compare.result, 'compare result');
  }
}
