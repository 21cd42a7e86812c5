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

export class WatchHub {
  private readonly all = new Map<number, Watcher>();
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

  /** Hands one committed revision to the synced watchers it concerns; one sink call each. */
  notify(rev: number, changes: readonly Version[], events: readonly WatchEvent[]): void {
    assert(rev === this.ks.currentRevision && changes.length === events.length, 'notify the committed revision');
    if (this.syncedCount === 0) return;
    const batches = this.match(changes);
    if (batches.size === 0) return;
    const bare: (WatchEvent | undefined)[] = [];
    let failure: unknown = null;
    this.notifying = rev;
    try {
      for (const [watcher, indexes] of batches) {
        if (watcher.mode !== 'synced' || watcher.minRevision > rev) continue;
        const out: WatchEvent[] = [];
        for (const i of indexes) {
          if (!watcher.wants(changes[i])) continue;
          if (watcher.prevKv || changes[i].prev === null) out.push(events[i]);
          else out.push((bare[i] ??= toEvent(changes[i], false)));
        }
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

  /** Which synced watchers each change concerns, as indexes into `changes`, in write order. */
  private match(changes: readonly Version[]): Map<Watcher, number[]> {
    const batches = new Map<Watcher, number[]>();
    if (this.singles.size > 0) {
      for (let i = 0; i < changes.length; i++) {
        const watchers = this.singles.get(changes[i].id);
        if (watchers === undefined) continue;
        for (const watcher of watchers) {
          const indexes = batches.get(watcher);
          if (indexes === undefined) batches.set(watcher, [i]);
          else indexes.push(i);
        }
      }
    }
    if (this.ranges.size === 0) return batches;
    if (changes.length * this.ranges.size <= LINEAR_MATCH_LIMIT) {
      for (const watcher of this.ranges) {
        const indexes: number[] = [];
        for (let i = 0; i < changes.length; i++) if (boundsContain(watcher.bounds, changes[i].id)) indexes.push(i);
        if (indexes.length > 0) batches.set(watcher, indexes);
      }
      return batches;
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
      if (indexes.length > 0) batches.set(watcher, indexes.sort((x, y) => x - y));
    }
    return batches;
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

function countMatching(watcher: Watcher, changes: readonly Version[]): number {
  let n = 0;
  for (const version of changes) if (watcher.wants(version) && boundsContain(watcher.bounds, version.id)) n++;
  return n;
}
