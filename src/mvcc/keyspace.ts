// The revisioned keyspace: every key's history of versions in an ordered B+tree, and the log of
// which versions each revision wrote (for watch replay). Pure data structure; the store decides
// what to write, this keeps the revision arithmetic, the reads at a revision and compaction.

import { assert } from '../util/index.ts';
import type { KeyValue } from './types.ts';
import { BTree, EMPTY_BYTES, boundsEmpty, compareKeyStrings, copyBytes } from './keys.ts';
import type { KeyBounds } from './keys.ts';

/** One write of one key: a put, or a tombstone (etcd's encoding: createRevision 0, version 0). */
export interface Version {
  /** The key's binary string (shared with its KeyEntry). */
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

export interface KeyEntry {
  readonly id: string;
  readonly key: Uint8Array;
  /** Ascending by (modRevision, sub), never empty while indexed. A txn may write a key more than
   *  once in its revision (etcd accepts e.g. a put and a later delete of it), so several versions
   *  can share a modRevision; a read at that revision sees the last of them. */
  readonly history: Version[];
}

export function isTombstone(kv: KeyValue): boolean {
  return kv.createRevision === 0;
}

/** Index of the last version with modRevision <= rev (the last sub-revision), or -1 (the latest is checked first). */
export function indexAt(history: readonly Version[], rev: number): number {
  let hi = history.length - 1;
  if (history[hi].kv.modRevision <= rev) return hi;
  let lo = 0;
  if (history[0].kv.modRevision > rev) return -1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (history[mid].kv.modRevision <= rev) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** The live value of `entry` at revision `rev`, or null if absent (never written, or deleted). */
export function visibleAt(entry: KeyEntry, rev: number): KeyValue | null {
  const i = indexAt(entry.history, rev);
  if (i < 0) return null;
  const kv = entry.history[i].kv;
  return isTombstone(kv) ? null : kv;
}

/** The latest value of `entry`, or null if its last write was a delete. */
export function liveValue(entry: KeyEntry): KeyValue | null {
  const kv = entry.history[entry.history.length - 1].kv;
  return isTombstone(kv) ? null : kv;
}

export class Keyspace {
  /** Ordered index for range scans; `byId` holds the same entries for O(1) point lookups. */
  private readonly tree: BTree<string, KeyEntry> = new BTree<string, KeyEntry>(undefined, compareKeyStrings);
  private readonly byId = new Map<string, KeyEntry>();
  /** log[i] holds the versions written at revision logBase + i, in write order. */
  private log: Version[][] = [[]];
  private logBase = 1;
  private current = 1;
  /** etcd's compactMainRev: -1 until the first compaction, and compact(0) is a valid first one. */
  private compacted = -1;
  /** The open write transaction's versions (written at current + 1), or null. */
  private pending: Version[] | null = null;

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

  /** Every entry in key order (snapshot, hash). */
  entries(): IterableIterator<[string, KeyEntry]> {
    return this.tree.entries();
  }

  /** The versions written at `rev`, in write order; `rev` must be logged and not pending. */
  changesAt(rev: number): readonly Version[] {
    assert(rev >= this.logBase && rev <= this.current, () => `revision ${rev} not in log [${this.logBase}, ${this.current}]`);
    return this.log[rev - this.logBase];
  }

  // ---- writes: beginWrite, put/tombstone*, endWrite (one revision) ----

  beginWrite(): void {
    assert(this.pending === null, 'write transaction already open');
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

  /** Writes `value` (owned by the store from now on) under `key` (copied if new). */
  put(id: string, key: Uint8Array, value: Uint8Array, lease: number): Version {
    const pending = this.pending;
    assert(pending !== null, 'put outside a write transaction');
    const rev = this.current + 1;
    let entry = this.byId.get(id);
    if (entry === undefined) {
      entry = { id, key: copyBytes(key), history: [] };
      this.tree.set(id, entry);
      this.byId.set(id, entry);
    }
    const last = entry.history.length > 0 ? entry.history[entry.history.length - 1].kv : null;
    assert(last === null || last.modRevision <= rev, 'history never runs ahead of the open write');
    const live = last !== null && !isTombstone(last) ? last : null;
    const kv: KeyValue = {
      key: entry.key,
      createRevision: live !== null ? live.createRevision : rev,
      modRevision: rev,
      version: live !== null ? live.version + 1 : 1,
      value,
      lease,
    };
    const prev = kv.createRevision === rev ? null : liveBefore(entry.history, rev);
    const version: Version = { id, kv, prev, sub: pending.length };
    entry.history.push(version);
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
    const version: Version = { id: entry.id, kv, prev: liveBefore(entry.history, rev), sub: pending.length };
    entry.history.push(version);
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
    this.log.push(pending);
    assert(this.log.length === this.current - this.logBase + 1, 'log covers [logBase, current]');
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
    const touched = new Set<string>();
    for (let r = this.logBase; r <= rev; r++) {
      for (const version of this.log[r - this.logBase]) touched.add(version.id);
    }
    for (const id of touched) this.compactKey(id, rev);
    this.log = this.log.slice(rev - this.logBase);
    this.log[0] = this.log[0].filter((version) => this.byId.get(version.id)?.history[0] === version);
    this.logBase = rev;
  }

  private compactKey(id: string, rev: number): void {
    const entry = this.byId.get(id);
    if (entry === undefined) return; // already removed: its tombstone was compacted on an earlier pass
    const history = entry.history;
    let keep = history.length - 1;
    while (keep >= 0 && history[keep].kv.modRevision > rev) keep--;
    if (keep < 0) return; // every version is newer than rev
    const kept = history[keep];
    const drop = isTombstone(kept.kv) && kept.kv.modRevision < rev ? keep + 1 : keep;
    if (drop > 0) history.splice(0, drop);
    if (history.length === 0) {
      this.tree.delete(id);
      this.byId.delete(id);
      return;
    }
    if (drop === keep) history[0].prev = null;
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
    ks.log = [];
    for (let r = logBase; r <= current; r++) ks.log.push([]);
    let previousId: string | null = null;
    for (const entry of entries) {
      assert(previousId === null || previousId < entry.id, 'snapshot keys out of order');
      previousId = entry.id;
      ks.tree.set(entry.id, entry);
      ks.byId.set(entry.id, entry);
      for (const version of entry.history) {
        if (version.kv.modRevision >= logBase) ks.log[version.kv.modRevision - logBase][version.sub] = version;
      }
    }
    // The log's first revision may have lost earlier writes of a key to compaction: close the gaps.
    ks.log[0] = ks.log[0].filter((version) => version !== undefined);
    ks.checkInvariants();
    return ks;
  }

  /** Verifies the structure (tests and restore). Throws AssertionError on the first violation. */
  checkInvariants(): void {
    assert(this.pending === null, 'write transaction open');
    assert(this.log.length === this.current - this.logBase + 1, 'log length');
    assert(this.byId.size === this.tree.size, 'point index and ordered index hold the same keys');
    let previousId: string | null = null;
    for (const [id, entry] of this.tree.entries()) {
      assert(previousId === null || previousId < id, 'tree order');
      previousId = id;
      assert(this.byId.get(id) === entry, 'point index entry');
      checkHistory(entry, this.compacted, this.current);
    }
    for (let r = this.logBase; r <= this.current; r++) {
      const changes = this.log[r - this.logBase];
      assert(r === 1 || changes.length > 0, () => `revision ${r} logged with no changes`);
      // Only the compacted revision may have lost writes (earlier writes of a key at it).
      const dense = r !== this.compacted;
      for (let i = 0; i < changes.length; i++) {
        const version = changes[i];
        assert(version !== undefined && version.kv.modRevision === r, () => `log entry ${r}/${i}`);
        assert(dense ? version.sub === i : i === 0 || changes[i - 1].sub < version.sub, () => `log entry ${r}/${i} sub-revision`);
        const history = this.byId.get(version.id)?.history;
        assert(history !== undefined && heldAt(history, r, version), () => `log entry ${r}/${i} not in history`);
      }
    }
  }
}

/** Whether `version`, written at `rev`, is in `history` (among the few versions written at `rev`). */
function heldAt(history: readonly Version[], rev: number, version: Version): boolean {
  for (let i = indexAt(history, rev); i >= 0 && history[i].kv.modRevision === rev; i--) {
    if (history[i] === version) return true;
  }
  return false;
}

/** The key's live value at rev - 1: skips the writes the open txn already made at `rev` (a few at most). */
function liveBefore(history: readonly Version[], rev: number): KeyValue | null {
  let i = history.length - 1;
  while (i >= 0 && history[i].kv.modRevision >= rev) i--;
  assert(i === history.length - 1 || history[history.length - 1].kv.modRevision === rev, 'no write above the open revision');
  if (i < 0) return null;
  const kv = history[i].kv;
  return isTombstone(kv) ? null : kv;
}

function checkHistory(entry: KeyEntry, compacted: number, current: number): void {
  const history = entry.history;
  assert(history.length > 0, () => `empty history for ${JSON.stringify(entry.id)}`);
  let groupPrev: KeyValue | null = null; // the live value before the current revision's writes
  for (let i = 0; i < history.length; i++) {
    const { kv, prev, id, sub } = history[i];
    assert(id === entry.id && kv.key === entry.key, 'version belongs to its entry');
    const earlier = i > 0 ? history[i - 1] : null;
    assert(
      kv.modRevision <= current &&
        (earlier === null || earlier.kv.modRevision < kv.modRevision || (earlier.kv.modRevision === kv.modRevision && earlier.sub < sub)),
      'history order',
    );
    if (earlier !== null && earlier.kv.modRevision < kv.modRevision) groupPrev = isTombstone(earlier.kv) ? null : earlier.kv;
    if (i > 0) assert(kv.modRevision > compacted, 'only the first version may be at or below the compacted revision');
    else if (isTombstone(kv)) assert(kv.modRevision >= compacted, 'a tombstone below the compacted revision survived');
    const before = i > 0 ? history[i - 1].kv : null;
    if (isTombstone(kv)) {
      assert(before === null || !isTombstone(before), 'two tombstones in a row');
      assert(kv.version === 0 && kv.lease === 0 && kv.value.length === 0, 'tombstone shape');
    } else if (before !== null && !isTombstone(before)) {
      assert(kv.version === before.version + 1 && kv.createRevision === before.createRevision, 'version chain');
    } else if (i > 0 || kv.version === 1) {
      assert(kv.version === 1 && kv.createRevision === kv.modRevision, 'create after tombstone');
    }
    const expectedPrev = !isTombstone(kv) && kv.createRevision === kv.modRevision ? null : groupPrev;
    assert(prev === expectedPrev, () => `prev link of ${JSON.stringify(entry.id)}@${kv.modRevision}/${sub}`);
  }
}
