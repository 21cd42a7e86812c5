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
  /** The live value this write replaced, for watch prevKv; null for a create, and null once
   *  compaction dropped it (etcd answers prevKv from a read at modRevision-1, which is compacted then). */
  prev: KeyValue | null;
  /** Position of this write in its revision's change list (txn op order). */
  readonly sub: number;
}

export interface KeyEntry {
  readonly id: string;
  readonly key: Uint8Array;
  /** Ascending by modRevision, at most one version per revision, never empty while indexed. */
  readonly history: Version[];
}

export function isTombstone(kv: KeyValue): boolean {
  return kv.createRevision === 0;
}

/** Index of the last version with modRevision <= rev, or -1 (the latest is checked first). */
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
  private compacted = 0;
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
    assert(last === null || last.modRevision < rev, 'a key is written at most once per revision');
    const live = last !== null && !isTombstone(last) ? last : null;
    const kv: KeyValue = {
      key: entry.key,
      createRevision: live !== null ? live.createRevision : rev,
      modRevision: rev,
      version: live !== null ? live.version + 1 : 1,
      value,
      lease,
    };
    const version: Version = { id, kv, prev: live, sub: pending.length };
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
    assert(live !== null && live.modRevision < rev, 'tombstone of a key that is not live');
    const kv: KeyValue = { key: entry.key, createRevision: 0, modRevision: rev, version: 0, value: EMPTY_BYTES, lease: 0 };
    const version: Version = { id: entry.id, kv, prev: live, sub: pending.length };
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
   * cost is proportional to the writes since the last compaction, not to the keyspace.
   */
  compact(rev: number): void {
    assert(this.pending === null, 'compact inside a write transaction');
    assert(rev > this.compacted && rev <= this.current, () => `bad compaction revision ${rev}`);
    const touched = new Set<string>();
    for (let r = this.logBase; r <= rev; r++) {
      for (const version of this.log[r - this.logBase]) touched.add(version.id);
    }
    for (const id of touched) this.compactKey(id, rev);
    this.log = this.log.slice(rev - this.logBase);
    this.logBase = rev;
    this.compacted = rev;
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
    assert(current >= 1 && compacted >= 0 && compacted <= current, 'bad snapshot revisions');
    assert(logBase >= 1 && logBase <= current && (compacted === 0 ? logBase === 1 : logBase === compacted), 'bad snapshot log base');
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
      for (let i = 0; i < changes.length; i++) {
        const version = changes[i];
        assert(version !== undefined && version.sub === i && version.kv.modRevision === r, () => `log entry ${r}/${i}`);
        const history = this.byId.get(version.id)?.history;
        assert(history !== undefined && history[indexAt(history, r)] === version, () => `log entry ${r}/${i} not in history`);
      }
    }
  }
}

function checkHistory(entry: KeyEntry, compacted: number, current: number): void {
  const history = entry.history;
  assert(history.length > 0, () => `empty history for ${JSON.stringify(entry.id)}`);
  for (let i = 0; i < history.length; i++) {
    const { kv, prev, id } = history[i];
    assert(id === entry.id && kv.key === entry.key, 'version belongs to its entry');
    assert(kv.modRevision <= current && (i === 0 || history[i - 1].kv.modRevision < kv.modRevision), 'history order');
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
    const expectedPrev = i > 0 && (isTombstone(kv) || kv.version > 1) ? before : null;
    assert(prev === expectedPrev, () => `prev link of ${JSON.stringify(entry.id)}@${kv.modRevision}`);
  }
}
