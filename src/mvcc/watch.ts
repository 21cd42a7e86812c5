// The watch hub: hands each write's events to the watchers whose key range they hit, replays history
// for watchers that start in the past or fell behind, and never buffers. A watcher is either
// synced (gets each revision live, synchronously, right after the write commits) or paused (a
// cursor into the store's history, which is the only buffer). This is etcd's synced/unsynced split
// with the sink's return value as the backpressure signal instead of a full channel.

import { EtcdError, GrpcCode, assert, checkedInt64, invalidArgument } from '../util/index.ts';
import type { WatchEvent, WatchHandle, WatchOptions, WatchSink, WatchState } from './types.ts';
import { boundsContain, compareKeyStrings, toBounds } from './keys.ts';
import type { KeyBounds } from './keys.ts';
import { isTombstone } from './keyspace.ts';
import type { Keyspace, Version } from './keyspace.ts';
import type { MvccLimits } from './limits.ts';

/** A watch asked for history that compaction removed; the API cancels with compact_revision set. */
export class WatchCompactedError extends EtcdError {
  override name = 'WatchCompactedError';
  constructor(readonly compactRevision: number) {
    super(GrpcCode.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted');
  }
}

export function tooManyWatchers(): EtcdError {
  return new EtcdError(GrpcCode.RESOURCE_EXHAUSTED, 'etcdserver: too many watchers');
}

type Mode = 'synced' | 'paused' | 'catchingUp' | 'cancelled';

/** Below this many (change, range watcher) pairs, matching is a plain double loop. */
const LINEAR_MATCH_LIMIT = 4096;

class Watcher implements WatchHandle {
  mode: Mode = 'paused';
  /** Next revision to deliver; for a synced watcher, max(this, current + 1). */
  minRevision: number;
  /** The hub's match() that last found this watcher, and the watcher's slot in that Matches. */
  matchStamp = 0;
  matchSlot = 0;

  constructor(
    private readonly hub: WatchHub,
    readonly id: number,
    readonly bounds: KeyBounds,
    readonly noPut: boolean,
    readonly noDelete: boolean,
    readonly prevKv: boolean,
    readonly sink: WatchSink,
    startRevision: number,
  ) {
    this.minRevision = startRevision;
  }

  get state(): WatchState {
    return this.mode === 'catchingUp' ? 'paused' : this.mode;
  }

  get nextRevision(): number {
    return this.mode === 'synced' ? Math.max(this.minRevision, this.hub.currentRevision + 1) : this.minRevision;
  }

  pause(): void {
    this.hub.pause(this);
  }

  resume(): void {
    this.hub.resume(this);
  }

  cancel(): void {
    this.hub.cancel(this);
  }

  wants(version: Version): boolean {
    return isTombstone(version.kv) ? !this.noDelete : !this.noPut;
  }
}

function toEvent(version: Version, withPrev: boolean): WatchEvent {
  return {
    type: isTombstone(version.kv) ? 'delete' : 'put',
    kv: version.kv,
    prevKv: withPrev ? version.prev : null,
  };
}

/** The events of one revision with prevKv filled wherever etcd would send it. */
export function eventsOf(changes: readonly Version[]): WatchEvent[] {
  return changes.map((version) => toEvent(version, true));
}

/**
 * The synced watchers one revision concerns, each with its indexes into the revision's changes.
 * Sized once for every synced watcher (each appears at most once), so filling it does not regrow.
 */
class Matches {
  readonly watchers: Watcher[];
  /** Parallel to `watchers`, in write order; arrays may be shared between watchers (read-only). */
  readonly indexes: (readonly number[])[];
  count = 0;

  constructor(capacity: number) {
    this.watchers = new Array<Watcher>(capacity);
    this.indexes = new Array<readonly number[]>(capacity);
  }

  /** Returns the watcher's slot. */
  add(watcher: Watcher, indexes: readonly number[]): number {
    assert(this.count < this.watchers.length, 'a watcher is matched at most once per revision');
    this.watchers[this.count] = watcher;
    this.indexes[this.count] = indexes;
    return this.count++;
  }
}

export class WatchHub {
  private readonly all = new Map<number, Watcher>();
  /** Counts match() calls, to tell a watcher already matched in this one (Watcher.matchStamp). */
  private matchStamp = 0;
  /** Synced single-key watchers by key, and synced range watchers. */
  private readonly singles = new Map<string, Set<Watcher>>();
  private readonly ranges = new Set<Watcher>();
  private syncedCount = 0;
  private nextId = 1;
  /** The revision being handed out live, or 0. */
  private notifying = 0;
  private replaying = false;

  constructor(
    private readonly ks: Keyspace,
    private readonly limits: Readonly<MvccLimits>,
  ) {}

  get currentRevision(): number {
    return this.ks.currentRevision;
  }

  /** True while sinks are being called: the store refuses writes then. */
  get busy(): boolean {
    return this.notifying !== 0 || this.replaying;
  }

  get size(): number {
    return this.all.size;
  }

  watch(options: WatchOptions, sink: WatchSink): WatchHandle {
    assert(!this.busy, 'a watch sink must not create watches');
    if (!(options.key instanceof Uint8Array) || !(options.rangeEnd instanceof Uint8Array)) {
      throw invalidArgument('etcdserver: key and range_end must be bytes');
    }
    const start = checkedInt64(options.startRevision, 'start_revision');
    // etcd's watchable store: any start below the compacted revision, negative ones included, is
    // compacted (compactRevision -1 before the first compaction); a start that passes but is not
    // positive (-1 then) replays nothing and watches from the next write, like start 0.
    if (start !== 0 && start < this.ks.compactedRevision) throw new WatchCompactedError(this.ks.compactedRevision);
    if (this.all.size >= this.limits.maxWatchersPerStore) throw tooManyWatchers();
    const key = options.key.length === 0 ? new Uint8Array([0]) : options.key;
    const current = this.ks.currentRevision;
    const watcher = new Watcher(
      this,
      this.nextId++,
      toBounds(key, options.rangeEnd),
      options.noPut === true,
      options.noDelete === true,
      options.prevKv === true,
      sink,
      start <= 0 ? current + 1 : start,
    );
    this.all.set(watcher.id, watcher);
    if (watcher.minRevision > current) this.register(watcher);
    else this.resume(watcher);
    return watcher;
  }

  pause(watcher: Watcher): void {
    if (watcher.mode === 'catchingUp') {
      watcher.mode = 'paused'; // the replay loop stops after the batch in hand
    } else if (watcher.mode === 'synced') {
      this.unregister(watcher);
      // During a live hand-out of revision R, a watcher not yet served must still get R on resume.
      const next = this.notifying !== 0 ? this.notifying : this.ks.currentRevision + 1;
      watcher.minRevision = Math.max(watcher.minRevision, next);
      watcher.mode = 'paused';
    }
  }

  resume(watcher: Watcher): void {
    assert(!this.busy, 'a watch sink must not resume watchers');
    if (watcher.mode !== 'paused') return;
    if (watcher.minRevision < this.ks.compactedRevision) {
      this.cancel(watcher);
      throw new WatchCompactedError(this.ks.compactedRevision);
    }
    watcher.mode = 'catchingUp';
    this.replaying = true;
    try {
      this.replay(watcher);
    } catch (error) {
      this.cancel(watcher);
      throw error;
    } finally {
      this.replaying = false;
    }
    if (watcher.mode === 'catchingUp') this.register(watcher);
  }

  cancel(watcher: Watcher): void {
    if (watcher.mode === 'cancelled') return;
    if (watcher.mode === 'synced') this.unregister(watcher);
    watcher.mode = 'cancelled';
    this.all.delete(watcher.id);
  }

  /**
   * Replays [minRevision, current] in batches of whole revisions, at most maxEventsPerWatchBatch
   * events unless one revision alone holds more. Stops early when the sink pauses or cancels.
   */
  private replay(watcher: Watcher): void {
    const maxEvents = this.limits.maxEventsPerWatchBatch;
    let batch: WatchEvent[] = [];
    let rev = watcher.minRevision;
    for (; rev <= this.ks.currentRevision; rev++) {
      const changes = this.ks.changesAt(rev);
      let first = true;
      for (const version of changes) {
        if (!watcher.wants(version) || !boundsContain(watcher.bounds, version.id)) continue;
        if (first && batch.length > 0 && batch.length + countMatching(watcher, changes) > maxEvents) {
          watcher.minRevision = rev;
          if (!this.deliver(watcher, batch, this.ks.currentRevision)) return;
          batch = [];
        }
        first = false;
        batch.push(toEvent(version, watcher.prevKv));
      }
    }
    watcher.minRevision = rev;
    if (batch.length > 0) this.deliver(watcher, batch, this.ks.currentRevision);
  }

  /** Calls the sink; false when the watcher must not get more now (paused or cancelled). */
  private deliver(watcher: Watcher, events: WatchEvent[], revision: number): boolean {
    if (watcher.sink(events, revision) === false) this.pause(watcher);
    return watcher.mode === 'synced' || watcher.mode === 'catchingUp';
  }

  /**
   * Hands one committed revision to the synced watchers it concerns; one sink call each. Watchers
   * that get every change of the revision share one events array (one with prev_kv, one without),
   * so a fan-out to thousands of watchers allocates per watcher only what filters make different.
   */
  notify(rev: number, changes: readonly Version[], events: readonly WatchEvent[]): void {
    assert(rev === this.ks.currentRevision && changes.length === events.length, 'notify the committed revision');
    if (this.syncedCount === 0) return;
    const { watchers, indexes, count } = this.match(changes);
    if (count === 0) return;
    const shared = new RevisionEvents(changes, events);
    let failure: unknown = null;
    this.notifying = rev;
    try {
      for (let k = 0; k < count; k++) {
        const watcher = watchers[k];
        if (watcher.mode !== 'synced' || watcher.minRevision > rev) continue;
        const out = shared.select(watcher, indexes[k]);
        if (out.length === 0) continue;
        watcher.minRevision = rev + 1;
        try {
          this.deliver(watcher, out, rev);
        } catch (error) {
          this.cancel(watcher);
          failure ??= error;
        }
      }
    } finally {
      this.notifying = 0;
    }
    if (failure !== null) throw failure;
  }

  /**
   * Which synced watchers each change concerns, as indexes into `changes`, in write order. Built
   * without a per-watcher allocation where it can: a watcher concerned by every change, or by one,
   * gets a shared (read-only) array of indexes.
   */
  private match(changes: readonly Version[]): Matches {
    const matches = new Matches(this.syncedCount);
    if (this.singles.size > 0) this.matchSingles(changes, matches);
    if (this.ranges.size === 0) return matches;
    if (changes.length * this.ranges.size <= LINEAR_MATCH_LIMIT || changes.length === 1) {
      const all = changes.map((_, i) => i);
      // forEach, not for-of: the loop runs once per watcher, and an iterator result each is garbage.
      this.ranges.forEach((watcher) => {
        // Null while every change so far is in the watcher's range: then it shares `all`.
        let indexes: number[] | null = null;
        for (let i = 0; i < changes.length; i++) {
          const inRange = boundsContain(watcher.bounds, changes[i].id);
          if (indexes === null) {
            if (!inRange) indexes = all.slice(0, i);
          } else if (inRange) {
            indexes.push(i);
          }
        }
        if (indexes === null || indexes.length > 0) matches.add(watcher, indexes ?? all);
      });
      return matches;
    }
    // Many changes and many range watchers: sort the changes by key once, then each watcher
    // binary-searches its start, so the cost is O((E + W) log E + matches), not O(E * W).
    const byKey = changes.map((_, i) => i).sort((x, y) => compareKeyStrings(changes[x].id, changes[y].id));
    for (const watcher of this.ranges) {
      const { lo, hi } = watcher.bounds;
      let first = 0;
      let last = byKey.length;
      while (first < last) {
        const mid = (first + last) >>> 1;
        if (changes[byKey[mid]].id < lo) first = mid + 1;
        else last = mid;
      }
      const indexes: number[] = [];
      for (let k = first; k < byKey.length && (hi === null || changes[byKey[k]].id < hi); k++) indexes.push(byKey[k]);
      if (indexes.length > 0) matches.add(watcher, indexes.sort((x, y) => x - y));
    }
    return matches;
  }

  /** Single-key watchers by their key; a watcher whose key changes more than once in the revision gets all its indexes. */
  private matchSingles(changes: readonly Version[], matches: Matches): void {
    const stamp = ++this.matchStamp;
    for (let i = 0; i < changes.length; i++) {
      const watchers = this.singles.get(changes[i].id);
      if (watchers === undefined) continue;
      const only = [i];
      for (const watcher of watchers) {
        if (watcher.matchStamp !== stamp) {
          watcher.matchStamp = stamp;
          watcher.matchSlot = matches.add(watcher, only);
        } else {
          assert(matches.watchers[watcher.matchSlot] === watcher, 'a matched watcher keeps its slot');
          matches.indexes[watcher.matchSlot] = [...matches.indexes[watcher.matchSlot], i];
        }
      }
    }
  }

  private register(watcher: Watcher): void {
    assert(watcher.mode !== 'synced' && watcher.mode !== 'cancelled', 'register a live unsynced watcher');
    watcher.mode = 'synced';
    this.syncedCount += 1;
    if (!watcher.bounds.single) {
      this.ranges.add(watcher);
      return;
    }
    const set = this.singles.get(watcher.bounds.lo);
    if (set === undefined) this.singles.set(watcher.bounds.lo, new Set([watcher]));
    else set.add(watcher);
  }

  private unregister(watcher: Watcher): void {
    assert(watcher.mode === 'synced', 'unregister a synced watcher');
    this.syncedCount -= 1;
    if (!watcher.bounds.single) {
      this.ranges.delete(watcher);
      return;
    }
    const set = this.singles.get(watcher.bounds.lo);
    assert(set !== undefined && set.delete(watcher), 'single-key watcher was registered');
    if (set.size === 0) this.singles.delete(watcher.bounds.lo);
  }
}

/**
 * The events of one revision as each watcher receives them. A watcher that gets every change gets
 * a shared array; sinks only read their batch (WatchSink), so sharing it is safe.
 */
class RevisionEvents {
  /** Events without prev_kv, made on first need (a change without prev is the same event either way). */
  private readonly bare: (WatchEvent | undefined)[] = [];
  private allWithPrev: WatchEvent[] | null = null;
  private allBare: WatchEvent[] | null = null;

  constructor(
    private readonly changes: readonly Version[],
    private readonly events: readonly WatchEvent[],
  ) {
    assert(changes.length === events.length && changes.length > 0, 'one event per change');
  }

  select(watcher: Watcher, indexes: readonly number[]): WatchEvent[] {
    const changes = this.changes;
    if (indexes.length === changes.length && this.wantsEvery(watcher)) return this.all(watcher.prevKv);
    const out: WatchEvent[] = [];
    for (let k = 0; k < indexes.length; k++) {
      const i = indexes[k];
      if (watcher.wants(changes[i])) out.push(this.event(i, watcher.prevKv));
    }
    return out;
  }

  private wantsEvery(watcher: Watcher): boolean {
    if (!watcher.noPut && !watcher.noDelete) return true;
    for (let i = 0; i < this.changes.length; i++) if (!watcher.wants(this.changes[i])) return false;
    return true;
  }

  // No closures in these: V8 would allocate their context on every call, that is per watcher.
  private all(withPrev: boolean): WatchEvent[] {
    if (withPrev) {
      this.allWithPrev ??= this.events.slice();
      return this.allWithPrev;
    }
    if (this.allBare === null) {
      const bare: WatchEvent[] = [];
      for (let i = 0; i < this.changes.length; i++) bare.push(this.event(i, false));
      this.allBare = bare;
    }
    return this.allBare;
  }

  private event(i: number, withPrev: boolean): WatchEvent {
    const version = this.changes[i];
    if (withPrev || version.prev === null) return this.events[i];
    return (this.bare[i] ??= toEvent(version, false));
  }
}

function countMatching(watcher: Watcher, changes: readonly Version[]): number {
  let n = 0;
  for (const version of changes) if (watcher.wants(version) && boundsContain(watcher.bounds, version.id)) n++;
  return n;
}
