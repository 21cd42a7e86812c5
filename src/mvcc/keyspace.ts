// The revisioned keyspace: every key's history of versions in an ordered B+tree, and the log of
// which keys each revision wrote (for watch replay). Pure data structure; the store decides what
// to write, this keeps the revision arithmetic, the reads at a revision and compaction.
//
// Memory is the constraint here (every key of the cluster lives in each node's heap), so a key
// costs few objects: one KeyEntry holding its latest KeyValue inline (older versions only while
// history is held), one shared key Uint8Array, one value, and one slot in the flat revision log.
// Watch-shaped Version objects are built on demand, never stored.

import { assert } from '../util/index.ts';
import type { KeyValue } from './types.ts';
import { BTree, EMPTY_BYTES, boundsEmpty, compareKeyStrings, copyBytes } from './keys.ts';
import type { KeyBounds } from './keys.ts';

/** One write of one key, as the write path and the watch hub see it: a put, or a tombstone
 *  (etcd's encoding: createRevision 0, version 0). Built on demand from a KeyEntry; not stored. */
export interface Version {
  /** The key's binary string (its KeyEntry's id). */
  readonly id: string;
  /** What readers and watchers see. A tombstone carries key and modRevision only. Never mutated. */
  readonly kv: KeyValue;
  /** The watch event's prevKv as etcd sends it: the key's live value at modRevision - 1 (etcd reads
   *  it at that revision, so a delete after a put in the same revision gets the value from before
   *  both), except for a create (a put with createRevision = modRevision), which etcd sends without
   *  one. Null also once compaction dropped it (a read at modRevision - 1 is compacted then). */
  prev: KeyValue | null;
  /** Position of this write in its revision's change list (txn op order): etcd's sub-revision. */
  readonly sub: number;
}

/** A key's earlier writes, oldest first: kvs[i] was written at sub-revision subs[i]. */
interface OlderVersions {
  readonly kvs: KeyValue[];
  readonly subs: number[];
}

/**
 * One key and the versions of it still held, ascending by (modRevision, sub), never empty while
 * indexed. Version i (0 = oldest) is kvAt(i); the latest is `kv`, held inline because most keys
 * have one version (always so right after a compaction that covers their last write). A txn may
 * write a key more than once in its revision (etcd accepts e.g. a put and a later delete of it), so
 * several versions can share a modRevision; a read at that revision sees the last of them. Every
 * version's kv.key is the same Uint8Array.
 */
export class KeyEntry {
  /** The latest write. */
  kv: KeyValue;
  /** Its sub-revision. */
  sub: number;
  /** The earlier writes still held; null while the key has one version. */
  older: OlderVersions | null = null;

  constructor(
    readonly id: string,
    kv: KeyValue,
    sub: number,
  ) {
    this.kv = kv;
    this.sub = sub;
  }

  get key(): Uint8Array {
    return this.kv.key;
  }

  get versionCount(): number {
    return this.older === null ? 1 : this.older.kvs.length + 1;
  }

  kvAt(i: number): KeyValue {
    const older = this.older;
    return older === null || i === older.kvs.length ? this.kv : older.kvs[i];
  }

  subAt(i: number): number {
    const older = this.older;
    return older === null || i === older.subs.length ? this.sub : older.subs[i];
  }

  /** Appends a newer version (the caller checked the order). */
  push(kv: KeyValue, sub: number): void {
    assert(kv.key === this.kv.key, 'every version shares the key bytes');
    if (this.older === null) this.older = { kvs: [this.kv], subs: [this.sub] };
    else {
      this.older.kvs.push(this.kv);
      this.older.subs.push(this.sub);
    }
    this.kv = kv;
    this.sub = sub;
  }

  /** Drops the `count` oldest versions; at least one stays. */
  dropOldest(count: number): void {
    const older = this.older;
    assert(older !== null && count > 0 && count <= older.kvs.length, () => `drop ${count} of ${this.versionCount} versions`);
    if (count === older.kvs.length) {
      this.older = null;
      return;
    }
    older.kvs.splice(0, count);
    older.subs.splice(0, count);
  }
}

/** What a version weighs in Keyspace.dataBytes. */
function versionBytes(kv: KeyValue): number {
  return kv.key.length + kv.value.length;
}

export function isTombstone(kv: KeyValue): boolean {
  return kv.createRevision === 0;
}

/** Index of the last version with modRevision <= rev (the last sub-revision), or -1 (the latest is checked first). */
export function indexAt(entry: KeyEntry, rev: number): number {
  const older = entry.older;
  if (entry.kv.modRevision <= rev) return older === null ? 0 : older.kvs.length;
  if (older === null) return -1;
  const kvs = older.kvs;
  if (kvs[0].modRevision > rev) return -1;
  let lo = 0;
  let hi = kvs.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (kvs[mid].modRevision <= rev) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** The live value of `entry` at revision `rev`, or null if absent (never written, or deleted). */
export function visibleAt(entry: KeyEntry, rev: number): KeyValue | null {
  const latest = entry.kv;
  if (latest.modRevision <= rev) return isTombstone(latest) ? null : latest;
  const i = indexAt(entry, rev);
  if (i < 0) return null;
  const kv = entry.kvAt(i);
  return isTombstone(kv) ? null : kv;
}

/** The latest value of `entry`, or null if its last write was a delete. */
export function liveValue(entry: KeyEntry): KeyValue | null {
  return isTombstone(entry.kv) ? null : entry.kv;
}

export class Keyspace {
  /** Ordered index for range scans; `byId` holds the same entries for O(1) point lookups. */
  private readonly tree: BTree<string, KeyEntry> = new BTree<string, KeyEntry>(undefined, compareKeyStrings);
  private readonly byId = new Map<string, KeyEntry>();
  /**
   * The revision log, flat: the entry of every write held for revisions [logBase, current] (and,
   * during a write, of the open revision), in revision order, then sub-revision order. The writes
   * of revision logBase + i are changes[revEnd[i - 1] .. revEnd[i]) (from 0 for i = 0); the
   * position in that span is the sub-revision, except at a compacted logBase that lost earlier
   * writes of some key (baseSubs then holds the sub-revisions of its writes).
   */
  private changes: KeyEntry[] = [];
  private revEnd: number[] = [0];
  private baseSubs: number[] | null = null;
  private logBase = 1;
  private current = 1;
  /** etcd's compactMainRev: -1 until the first compaction, and compact(0) is a valid first one. */
  private compacted = -1;
  /** The open write transaction's versions (written at current + 1), or null. */
  private pending: Version[] | null = null;
  /** Key and value bytes summed over every version held (what a snapshot has to encode). */
  private heldBytes = 0;

  get currentRevision(): number {
    return this.current;
  }

  get compactedRevision(): number {
    return this.compacted;
  }

  /** Oldest revision whose change list is still held (watch replay can start here). */
  get oldestLoggedRevision(): number {
    return this.logBase;
  }

  get keyCount(): number {
    return this.tree.size;
  }

  /** Bytes of keys and values over every version held, history and tombstones included. */
  get dataBytes(): number {
    return this.heldBytes;
  }

  get(id: string): KeyEntry | undefined {
    return this.byId.get(id);
  }

  /** Calls `visit` on every entry in `bounds`, in key order, until it returns false. */
  forEach(bounds: KeyBounds, visit: (entry: KeyEntry) => boolean | void): void {
    if (bounds.single) {
      const entry = this.byId.get(bounds.lo);
      if (entry !== undefined) visit(entry);
      return;
    }
    if (boundsEmpty(bounds) || this.tree.size === 0) return;
    const hi = bounds.hi ?? this.tree.maxKey();
    if (hi === undefined) return;
    this.tree.forRange(bounds.lo, hi, bounds.hi === null, (_id, entry) => {
      if (visit(entry) === false) return { break: true };
      return undefined;
    });
  }

  /** Every entry in key order (hash, invariant checks); the keyspace must not change meanwhile. */
  entries(): IterableIterator<[string, KeyEntry]> {
    return this.tree.entries();
  }

  /**
   * Every entry in key order, safe to consume across writes (a lazily read snapshot): the tree is
   * read a batch of keys at a time and the walk resumes after the last key seen, so it never holds
   * a tree iterator that a write could invalidate. Keys added behind the cursor are not seen.
   */
  *entriesByKey(batchKeys = 256): Generator<[string, KeyEntry]> {
    let after: string | null = null;
    for (;;) {
      const batch: [string, KeyEntry][] = [];
      for (const pair of this.tree.entries(after ?? undefined)) {
        if (pair[0] === after) continue;
        batch.push(pair);
        if (batch.length === batchKeys) break;
      }
      yield* batch;
      if (batch.length < batchKeys) return;
      after = batch[batch.length - 1][0];
    }
  }

  /** The versions written at `rev`, in write order; `rev` must be logged and not pending. Built on
   *  each call (watch replay); prev links are derived from the key's history, as written. */
  changesAt(rev: number): readonly Version[] {
    assert(rev >= this.logBase && rev <= this.current, () => `revision ${rev} not in log [${this.logBase}, ${this.current}]`);
    const i = rev - this.logBase;
    const start = i === 0 ? 0 : this.revEnd[i - 1];
    const end = this.revEnd[i];
    const versions: Version[] = [];
    for (let j = start; j < end; j++) versions.push(versionOf(this.changes[j], rev, this.subOf(i, j - start)));
    return versions;
  }

  /** Sub-revision of the change at `position` in log revision logBase + i. */
  private subOf(i: number, position: number): number {
    return i === 0 && this.baseSubs !== null ? this.baseSubs[position] : position;
  }

  // ---- writes: beginWrite, put/tombstone*, endWrite (one revision) ----

  beginWrite(): void {
    assert(this.pending === null, 'write transaction already open');
    assert(this.changes.length === this.revEnd[this.revEnd.length - 1], 'no changes past the last revision');
    this.pending = [];
  }

  get inWrite(): boolean {
    return this.pending !== null;
  }

  /** The revision a read inside the open write sees: etcd's beginRev, +1 once something changed. */
  get writeReadRevision(): number {
    assert(this.pending !== null, 'no write transaction open');
    return this.pending.length > 0 ? this.current + 1 : this.current;
  }

  get pendingChanges(): number {
    assert(this.pending !== null, 'no write transaction open');
    return this.pending.length;
  }

  /**
   * Writes `value` (owned by the store from now on) under `key` (copied if new); `id` must be flat
   * (toKeyString's), as a new key keeps it. `entry` is get(id) in this write: the caller has looked
   * the key up already, so a put costs one Map lookup.
   */
  put(entry: KeyEntry | undefined, id: string, key: Uint8Array, value: Uint8Array, lease: number): Version {
    const pending = this.pending;
    assert(pending !== null, 'put outside a write transaction');
    const rev = this.current + 1;
    const sub = pending.length;
    let version: Version;
    if (entry === undefined) {
      const kv: KeyValue = { key: copyBytes(key), createRevision: rev, modRevision: rev, version: 1, value, lease };
      const created = new KeyEntry(id, kv, sub);
      this.tree.set(id, created);
      this.byId.set(id, created);
      this.changes.push(created);
      version = { id, kv, prev: null, sub };
    } else {
      const last = entry.kv;
      assert(last.modRevision <= rev, 'history never runs ahead of the open write');
      const live = isTombstone(last) ? null : last;
      const kv: KeyValue = {
        key: last.key,
        createRevision: live !== null ? live.createRevision : rev,
        modRevision: rev,
        version: live !== null ? live.version + 1 : 1,
        value,
        lease,
      };
      const prev = kv.createRevision === rev ? null : liveBefore(entry, entry.versionCount, rev);
      entry.push(kv, sub);
      this.changes.push(entry);
      version = { id, kv, prev, sub };
    }
    this.heldBytes += versionBytes(version.kv);
    pending.push(version);
    return version;
  }

  /** Deletes the live key `entry`; the caller checked it is live. */
  tombstone(entry: KeyEntry): Version {
    const pending = this.pending;
    assert(pending !== null, 'delete outside a write transaction');
    const rev = this.current + 1;
    const live = liveValue(entry);
    assert(live !== null && live.modRevision <= rev, 'tombstone of a key that is not live');
    const kv: KeyValue = { key: entry.key, createRevision: 0, modRevision: rev, version: 0, value: EMPTY_BYTES, lease: 0 };
    const version: Version = { id: entry.id, kv, prev: liveBefore(entry, entry.versionCount, rev), sub: pending.length };
    entry.push(kv, version.sub);
    this.changes.push(entry);
    this.heldBytes += versionBytes(kv);
    pending.push(version);
    return version;
  }

  /** Closes the write; bumps the revision by one iff something changed. Returns the changes. */
  endWrite(): readonly Version[] {
    const pending = this.pending;
    assert(pending !== null, 'no write transaction open');
    this.pending = null;
    if (pending.length === 0) return pending;
    this.current += 1;
    this.revEnd.push(this.changes.length);
    assert(this.revEnd.length === this.current - this.logBase + 1, 'log covers [logBase, current]');
    assert(this.changes.length - this.revEnd[this.revEnd.length - 2] === pending.length, 'every change is logged');
    return pending;
  }

  // ---- compaction ----

  /**
   * Drops every version that no read at a revision >= `rev` and no watch from a revision >= `rev`
   * can see: per key, everything older than its latest version at or below `rev`, and that version
   * too when it is a tombstone below `rev` (a tombstone at exactly `rev` stays: a watch from `rev`
   * must still see the delete). Only keys written in [logBase, rev] can hold such versions, so the
   * cost is proportional to the writes since the last compaction, not to the keyspace. Revision
   * `rev` stays in the log (a watch may start there) with only the versions still held: a key
   * written several times at `rev` keeps its last write, as etcd's index does.
   * compact(0) is valid on a store never compacted (etcd's compactMainRev starts at -1) and drops nothing.
   */
  compact(rev: number): void {
    assert(this.pending === null, 'compact inside a write transaction');
    assert(rev > this.compacted && rev <= this.current && rev >= 0, () => `bad compaction revision ${rev}`);
    this.compacted = rev;
    if (rev < this.logBase) return;
    const i = rev - this.logBase;
    const start = i === 0 ? 0 : this.revEnd[i - 1];
    const end = this.revEnd[i];
    const touched = new Set<KeyEntry>();
    for (let j = 0; j < end; j++) touched.add(this.changes[j]);
    for (const entry of touched) this.compactKey(entry, rev);
    const changes: KeyEntry[] = [];
    const subs: number[] = [];
    for (let j = start; j < end; j++) {
      const entry = this.changes[j];
      const sub = this.subOf(i, j - start);
      if (this.byId.get(entry.id) !== entry || entry.kvAt(0).modRevision !== rev || entry.subAt(0) !== sub) continue;
      changes.push(entry);
      subs.push(sub);
    }
    for (let j = end; j < this.changes.length; j++) changes.push(this.changes[j]);
    const shift = changes.length - this.changes.length;
    const revEnd = [subs.length];
    for (let k = i + 1; k < this.revEnd.length; k++) revEnd.push(this.revEnd[k] + shift);
    this.changes = changes;
    this.revEnd = revEnd;
    this.baseSubs = subs.every((sub, position) => sub === position) ? null : subs;
    this.logBase = rev;
  }

  private compactKey(entry: KeyEntry, rev: number): void {
    if (this.byId.get(entry.id) !== entry) return; // already removed: its tombstone was compacted on an earlier pass
    const keep = indexAt(entry, rev);
    if (keep < 0) return; // every version is newer than rev
    const kept = entry.kvAt(keep);
    const drop = isTombstone(kept) && kept.modRevision < rev ? keep + 1 : keep;
    for (let v = 0; v < drop; v++) this.heldBytes -= versionBytes(entry.kvAt(v));
    if (drop === entry.versionCount) {
      this.tree.delete(entry.id);
      this.byId.delete(entry.id);
    } else if (drop > 0) {
      entry.dropOldest(drop);
    }
  }

  // ---- restore (snapshot.ts) ----

  /** Rebuilds a keyspace from entries in ascending key order; checks every invariant. */
  static fromEntries(entries: Iterable<KeyEntry>, current: number, compacted: number, logBase: number): Keyspace {
    assert(current >= 1 && compacted >= -1 && compacted <= current, 'bad snapshot revisions');
    assert(logBase >= 1 && logBase <= current && logBase === Math.max(1, compacted), 'bad snapshot log base');
    const ks = new Keyspace();
    ks.current = current;
    ks.compacted = compacted;
    ks.logBase = logBase;
    const counts: number[] = new Array<number>(current - logBase + 1).fill(0);
    let previousId: string | null = null;
    for (const entry of entries) {
      assert(previousId === null || previousId < entry.id, 'snapshot keys out of order');
      previousId = entry.id;
      ks.tree.set(entry.id, entry);
      ks.byId.set(entry.id, entry);
      for (let v = 0; v < entry.versionCount; v++) {
        ks.heldBytes += versionBytes(entry.kvAt(v));
        const mod = entry.kvAt(v).modRevision;
        if (mod > current) assert(false, () => `version of ${JSON.stringify(entry.id)} above the current revision`);
        if (mod >= logBase) counts[mod - logBase] += 1;
      }
    }
    ks.rebuildLog(counts);
    ks.checkInvariants();
    return ks;
  }

  /** Places every logged version (`counts` per revision) at its sub-revision: a counting sort. */
  private rebuildLog(counts: number[]): void {
    this.revEnd = [];
    let total = 0;
    for (const count of counts) this.revEnd.push((total += count));
    this.changes = new Array<KeyEntry>(total);
    const base: { entry: KeyEntry; sub: number }[] = [];
    for (const entry of this.byId.values()) {
      for (let v = 0; v < entry.versionCount; v++) {
        const i = entry.kvAt(v).modRevision - this.logBase;
        if (i < 0) continue;
        const sub = entry.subAt(v);
        if (i === 0) {
          base.push({ entry, sub });
          continue;
        }
        const slot = this.revEnd[i - 1] + sub;
        assert(sub < counts[i] && this.changes[slot] === undefined, () => `sub-revision ${sub} of revision ${i + this.logBase}`);
        this.changes[slot] = entry;
      }
    }
    // The log's first revision may have lost earlier writes of a key to compaction: subs with gaps.
    base.sort((x, y) => x.sub - y.sub);
    base.forEach(({ entry }, position) => (this.changes[position] = entry));
    this.baseSubs = base.every(({ sub }, position) => sub === position) ? null : base.map(({ sub }) => sub);
  }

  /** Verifies the structure (tests and restore). Throws AssertionError on the first violation. */
  checkInvariants(): void {
    assert(this.pending === null, 'write transaction open');
    assert(this.revEnd.length === this.current - this.logBase + 1, 'log length');
    assert(this.byId.size === this.tree.size, 'point index and ordered index hold the same keys');
    let previousId: string | null = null;
    let bytes = 0;
    // forEachPair, not entries(): no [key, value] array per key (restore runs this over every key).
    this.tree.forEachPair((id, entry) => {
      assert(previousId === null || previousId < id, 'tree order');
      previousId = id;
      assert(entry instanceof KeyEntry && entry.id === id && this.byId.get(id) === entry, 'point index entry');
      checkHistory(entry, this.compacted, this.current);
      for (let v = 0; v < entry.versionCount; v++) bytes += versionBytes(entry.kvAt(v));
    });
    assert(bytes === this.heldBytes, () => `dataBytes ${this.heldBytes}, versions hold ${bytes}`);
    // Only the compacted revision may have lost writes (earlier writes of a key at it).
    assert(this.baseSubs === null || this.logBase === this.compacted, 'sub-revision gaps only at the compacted revision');
    let start = 0;
    for (let i = 0; i < this.revEnd.length; i++) {
      const r = this.logBase + i;
      const end = this.revEnd[i];
      assert(end >= start && (r === 1 || end > start), () => `revision ${r} logged with no changes`);
      for (let j = start; j < end; j++) {
        const entry = this.changes[j];
        const sub = this.subOf(i, j - start);
        assert(j === start || this.subOf(i, j - start - 1) < sub, () => `log entry ${r}/${j - start} sub-revision`);
        assert(entry !== undefined && this.byId.get(entry.id) === entry, () => `log entry ${r}/${j - start} is an indexed key`);
        writeIndex(entry, r, sub); // asserts the key holds that write
      }
      start = end;
    }
    assert(start === this.changes.length, 'no changes past the log');
  }
}

/** The Version of `entry` written at (rev, sub); asserts the entry holds it. Hot in watch replay. */
function versionOf(entry: KeyEntry, rev: number, sub: number): Version {
  const i = writeIndex(entry, rev, sub);
  // The key's only version held: nothing earlier to be its prev.
  if (entry.older === null) return { id: entry.id, kv: entry.kv, prev: null, sub };
  const kv = entry.kvAt(i);
  const prev = !isTombstone(kv) && kv.createRevision === rev ? null : liveBefore(entry, i, rev);
  return { id: entry.id, kv, prev, sub };
}

/** Index of the version of `entry` written at (rev, sub); asserts the entry holds it. */
function writeIndex(entry: KeyEntry, rev: number, sub: number): number {
  const older = entry.older;
  if (older === null) {
    assert(entry.kv.modRevision === rev && entry.sub === sub, 'a logged write is held');
    return 0;
  }
  let i = indexAt(entry, rev);
  while (i > 0 && entry.subAt(i) > sub && older.kvs[i - 1].modRevision === rev) i--;
  assert(i >= 0 && entry.kvAt(i).modRevision === rev && entry.subAt(i) === sub, 'a logged write is held');
  return i;
}

/** The key's live value at rev - 1 as seen from its version `below` (exclusive): skips the writes at
 *  `rev` before it (a few at most); null if none is held (never written, or compacted away). */
function liveBefore(entry: KeyEntry, below: number, rev: number): KeyValue | null {
  let i = below - 1;
  while (i >= 0 && entry.kvAt(i).modRevision >= rev) i--;
  if (i < 0) return null;
  const kv = entry.kvAt(i);
  return isTombstone(kv) ? null : kv;
}

function checkHistory(entry: KeyEntry, compacted: number, current: number): void {
  const count = entry.versionCount;
  assert(entry.older === null || entry.older.kvs.length > 0, () => `empty older versions for ${JSON.stringify(entry.id)}`);
  assert(entry.older === null || entry.older.kvs.length === entry.older.subs.length, 'one sub-revision per version');
  for (let i = 0; i < count; i++) {
    const kv = entry.kvAt(i);
    const sub = entry.subAt(i);
    assert(kv.key === entry.key, 'version belongs to its entry');
    const earlier = i > 0 ? entry.kvAt(i - 1) : null;
    assert(
      kv.modRevision <= current &&
        (earlier === null || earlier.modRevision < kv.modRevision || (earlier.modRevision === kv.modRevision && entry.subAt(i - 1) < sub)),
      'history order',
    );
    if (i > 0) assert(kv.modRevision > compacted, 'only the first version may be at or below the compacted revision');
    else if (isTombstone(kv)) assert(kv.modRevision >= compacted, 'a tombstone below the compacted revision survived');
    if (isTombstone(kv)) {
      assert(earlier === null || !isTombstone(earlier), 'two tombstones in a row');
      assert(kv.version === 0 && kv.lease === 0 && kv.value.length === 0, 'tombstone shape');
    } else if (earlier !== null && !isTombstone(earlier)) {
      assert(kv.version === earlier.version + 1 && kv.createRevision === earlier.createRevision, 'version chain');
    } else if (i > 0 || kv.version === 1) {
      assert(kv.version === 1 && kv.createRevision === kv.modRevision, 'create after tombstone');
    }
  }
}
