// One Raft group's durable state (log, hard state, conf state, latest snapshot) with etcd
// MemoryStorage semantics. Writes are staged here and become durable at NodeStorage.commit();
// reads see staged writes at once, because everything a read needs that is not yet in LMDB is in memory.
// Byte arrays handed in (entry data, snapshot data) are kept by reference, not copied: treat them
// as immutable from then on, as the Raft core does.
import { assert } from '../util/index.ts';
import { CompactedError, SnapshotOutOfDateError, SnapshotTemporarilyUnavailableError, UnavailableError, entrySizeBytes } from '../raft/index.ts';
import type { ConfState, Entry, HardState, LogStorage, Snapshot } from '../raft/index.ts';
import { decodeEntryTerm, logKey, logKeyIndex } from './codec.ts';
import type { StorageDbs } from './dbs.ts';
import type { AtRestCodec } from './encryption.ts';
import { StorageCorruptionError } from './errors.ts';
import type { StorageLimits } from './limits.ts';
import {
  copyConfState,
  isConfState,
  isHardState,
  isIndex,
  readConfState,
  readHardState,
  readOffset,
  readSnapshotRecord,
} from './records.ts';
import type { LogOffset, RecordName, SnapshotRecord } from './records.ts';
import { TermRuns } from './term-runs.ts';
import { DB_CHUNKS, DB_LOG, DB_STATE } from './writes.ts';
import type { Writes } from './writes.ts';

/** Bytes counted against the staging bound for one small record (hard state, offset, ...). */
const RECORD_STAGED_BYTES = 256;

/** What a group needs from its NodeStorage (implemented there; not part of the public API). */
export interface GroupHost {
  readonly dbs: StorageDbs;
  readonly limits: Readonly<StorageLimits>;
  /** Encodes entries and snapshot chunks for disk (sealed when encryption at rest is on) and back. */
  readonly codec: AtRestCodec;
  /**
   * Checks the node is writable and `bytes` more fit under `maxStagedBytes`, then marks `group`
   * dirty. Returns the sequence number of the batch the staged writes will be committed in.
   */
  stage(group: GroupStorage, bytes: number): number;
  /**
   * Writes a piece of a snapshot being built straight to LMDB, outside the sequence of commits (so
   * the turns of a long build do not each wait for an LMDB transaction). The commit that records
   * the snapshot goes to LMDB after every piece (Writes.afterPieces).
   */
  writeSnapshotPiece(key: [number, number, number], value: Buffer): void;
  /** Highest batch sequence number LMDB holds (durably): memory may drop what it wrote. */
  readonly storedSeq: number;
  /** `group` has entries to delete from LMDB: its issueTrims is called with each LMDB transaction. */
  trimPending(group: GroupStorage): void;
}

interface CachedEntry {
  entry: Entry;
  bytes: number;
  /** Batch that wrote it; the entry may leave the cache only once LMDB holds that batch. */
  seq: number;
}

/** A snapshot's data being read from its chunks, possibly over several calls. */
interface SnapshotRead {
  index: number;
  data: Uint8Array;
  nextChunk: number;
  /** Bytes of `data` filled. */
  at: number;
}

export class GroupStorage implements LogStorage {
  readonly groupId: number;
  private readonly host: GroupHost;
  private hardState: HardState = { term: 0, vote: 0, commit: 0 };
  private confState: ConfState;
  private offset: LogOffset = { index: 0, term: 0 };
  /** Terms of (offset.index, last]; `terms.last` is the log's last index. */
  private readonly terms = new TermRuns(1);
  private snap: SnapshotRecord;
  /** Data of a snapshot installed or created in a batch LMDB does not hold yet. */
  private snapData: { data: Uint8Array; seq: number } | null = null;
  /** A large snapshot being read a part per snapshot() call (to send it), or null. */
  private snapRead: SnapshotRead | null = null;
  /** Recent entries [cacheFirst, last], contiguous; older ones are read from LMDB. */
  private readonly cache = new Map<number, CachedEntry>();
  private cacheFirst = 1;
  private cacheBytes = 0;
  /** True once the group's marker record is on disk or staged (so groups() finds it after a restart). */
  private persisted = false;
  // Staged writes, coalesced by key, moved into the commit by drainStaged(). `null` deletes.
  private readonly stagedLog = new Map<number, Buffer | null>();
  private readonly stagedRecords = new Map<RecordName, unknown>();
  private readonly stagedChunks = new Map<string, { index: number; chunk: number; value: Uint8Array | null }>();
  /** A snapshot record naming pieces written with writeSnapshotPiece is staged. */
  private recordAfterPieces = false;
  /**
   * Log entries a compaction (or an installed snapshot) left behind in LMDB, to delete there a
   * bounded number at a time (issueTrims): each entry may go once LMDB holds batch `seq`, whose
   * offset record makes every entry up to `upTo` unreachable. Deleting a large compaction's entries
   * in its own commit stalled the loop (95,000 entries took 95 ms to stage and encode) and went
   * through the write-ahead log for nothing: the offset alone decides where the log starts.
   */
  private readonly trims: { upTo: number; seq: number }[] = [];
  /** Entries appended since issueTrims last ran while trims were pending: its budget grows with them, so it keeps up. */
  private appendedSinceTrim = 0;

  /** @internal NodeStorage.group() creates groups; use that. */
  constructor(host: GroupHost, groupId: number) {
    assert(isIndex(groupId), () => `group id ${groupId}`);
    this.host = host;
    this.groupId = groupId;
    this.confState = readConfState(groupId, undefined);
    this.snap = readSnapshotRecord(groupId, undefined);
    this.recover();
  }

  // ---- LogStorage reads ----

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: { ...this.hardState }, confState: copyConfState(this.confState) };
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo <= this.offset.index) throw new CompactedError();
    if (hi > this.terms.last + 1) throw new UnavailableError();
    assert(lo <= hi, () => `entries: lo ${lo} > hi ${hi}`);
    if (this.terms.last === this.offset.index) throw new UnavailableError();
    const out: Entry[] = [];
    const budget = { usedBytes: 0, maxBytes };
    if (lo < this.cacheFirst && !this.readFromDisk(lo, Math.min(hi, this.cacheFirst), out, budget)) return out;
    for (let index = Math.max(lo, this.cacheFirst); index < hi; index++) {
      const cached = this.cache.get(index);
      assert(cached !== undefined, () => `group ${this.groupId}: entry ${index} missing from cache`);
      if (!takes(out, budget, cached.bytes)) break;
      out.push(cached.entry);
    }
    return out;
  }

  term(index: number): number {
    if (index < this.offset.index) throw new CompactedError();
    if (index > this.terms.last) throw new UnavailableError();
    return index === this.offset.index ? this.offset.term : this.terms.termAt(index);
  }

  firstIndex(): number {
    return this.offset.index + 1;
  }

  lastIndex(): number {
    return this.terms.last;
  }

  /**
   * Raft's view: the latest snapshot with its data. A stored image over `snapshotReadBytesPerCall`
   * is read a part per call; until the last part is in, this throws
   * SnapshotTemporarilyUnavailableError (Raft then retries at a later heartbeat).
   */
  snapshot(): Snapshot {
    const { index, term, confState, byteLength } = this.snap;
    if (this.snapData !== null || index === 0 || byteLength <= this.host.limits.snapshotReadBytesPerCall) return this.fullSnapshot();
    const metadata = { index, term, confState: copyConfState(confState) };
    if (this.snapRead === null || this.snapRead.index !== index) {
      this.snapRead = { index, data: new Uint8Array(byteLength), nextChunk: 0, at: 0 };
    }
    if (!this.readSnapshotPart(this.snapRead, this.host.limits.snapshotReadBytesPerCall)) throw new SnapshotTemporarilyUnavailableError();
    const { data } = this.snapRead;
    this.snapRead = null; // the caller holds it while it sends; a later send reads it again
    return { metadata, data };
  }

  /** The latest snapshot with all its data, read now however large (a replica opening). */
  fullSnapshot(): Snapshot {
    const { index, term, confState } = this.snap;
    const metadata = { index, term, confState: copyConfState(confState) };
    if (this.snapData !== null) return { metadata, data: this.snapData.data };
    return { metadata, data: index === 0 ? new Uint8Array(0) : this.readSnapshotData() };
  }

  // ---- staged writes ----

  setHardState(hs: HardState): void {
    assert(isHardState(hs), () => `group ${this.groupId}: bad hard state ${JSON.stringify(hs)}`);
    this.stage(RECORD_STAGED_BYTES);
    this.hardState = { term: hs.term, vote: hs.vote, commit: hs.commit };
    this.stagedRecords.set('hardState', this.hardState);
  }

  /**
   * Records the membership as of the last applied entry; initialState() reports it until a later
   * setConfState(), applySnapshot() or createSnapshot() (a restart resumes from the snapshot, so it
   * reports the snapshot's membership, as etcd's MemoryStorage does).
   */
  setConfState(cs: ConfState): void {
    assert(isConfState(cs), () => `group ${this.groupId}: bad conf state ${JSON.stringify(cs)}`);
    this.stage(RECORD_STAGED_BYTES);
    this.confState = copyConfState(cs);
    this.stagedRecords.set('confState', this.confState);
  }

  /** Appends `entries` (consecutive indexes), first truncating any conflicting suffix; skips compacted ones. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    for (let i = 1; i < entries.length; i++) {
      assert(entries[i].index === entries[i - 1].index + 1, () => `append: entries not contiguous at ${entries[i].index}`);
    }
    const first = this.firstIndex();
    if (entries[0].index + entries.length - 1 < first) return;
    const fresh = first > entries[0].index ? entries.slice(first - entries[0].index) : entries;
    const at = fresh[0].index;
    assert(at <= this.terms.last + 1, () => `missing log entry [last: ${this.terms.last}, append at: ${at}]`);
    // Check everything before changing anything: a failed append leaves the group as it was.
    let previousTerm = this.term(at - 1);
    let bytes = 0;
    for (const entry of fresh) {
      assert(isIndex(entry.term) && entry.data instanceof Uint8Array, () => `append: bad entry ${entry.index}`);
      assert(entry.term >= previousTerm, () => `append: term ${entry.term} at ${entry.index} below term ${previousTerm} before it`);
      previousTerm = entry.term;
      bytes += this.host.codec.entryBytes(entry);
    }
    const seq = this.stage(bytes);
    if (at <= this.terms.last) this.truncateFrom(at);
    if (this.trims.length > 0) this.appendedSinceTrim += fresh.length;
    for (const entry of fresh) {
      this.stagedLog.set(entry.index, this.host.codec.encodeEntry(this.groupId, entry));
      this.terms.append(entry.index, entry.term);
      const copy: Entry = { term: entry.term, index: entry.index, type: entry.type, data: entry.data };
      this.cache.set(entry.index, { entry: copy, bytes: entrySizeBytes(entry), seq });
      this.cacheBytes += entrySizeBytes(entry);
    }
    this.evictCache();
  }

  /** Installs a snapshot received from the leader: it replaces the whole log. */
  applySnapshot(snap: Snapshot): void {
    const { index, term, confState } = snap.metadata;
    if (index <= this.snap.index) throw new SnapshotOutOfDateError();
    assert(isIndex(index) && isIndex(term) && isConfState(confState), () => `applySnapshot: bad metadata ${index}/${term}`);
    const seq = this.stage(snap.data.byteLength + 3 * RECORD_STAGED_BYTES);
    // Entries past the snapshot would read as log after it: deleted with it, compacted ones included
    // (a compaction's may still be in LMDB). Those before it go as a compaction's do.
    if (this.terms.last > index) this.stageLogDelete(index + 1, this.terms.last);
    this.trimUpTo(Math.min(index, this.terms.last), seq);
    this.clearCache(index + 1);
    this.terms.reset(index + 1);
    this.setOffset({ index, term });
    this.replaceSnapshot({ index, term, confState, byteLength: snap.data.byteLength, chunkCount: 0, sealed: false }, snap.data, seq);
    this.confState = copyConfState(confState);
    this.stagedRecords.set('confState', this.confState);
  }

  /** Records the state machine's image at `index` (<= applied); the log is untouched (see compact). */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snap.index) throw new SnapshotOutOfDateError();
    assert(index <= this.terms.last, () => `snapshot ${index} is out of bound lastindex(${this.terms.last})`);
    assert(isConfState(confState), () => `createSnapshot: bad conf state ${JSON.stringify(confState)}`);
    const term = this.term(index);
    const seq = this.stage(data.byteLength + 2 * RECORD_STAGED_BYTES);
    this.replaceSnapshot({ index, term, confState, byteLength: data.byteLength, chunkCount: 0, sealed: false }, data, seq);
    this.setConfState(confState);
    return { metadata: { index, term, confState: copyConfState(confState) }, data };
  }

  /**
   * Writes piece `piece` (0, 1, …) of the image of a snapshot at `index` that is still being built
   * straight to LMDB, beside the commits: a large image goes to disk a piece per turn instead of in
   * one huge write (Replica.snapshotStep), and no commit waits for it. Nothing reads the pieces until
   * createSnapshotFromPieces names them; pieces of a build that never finished are removed when the
   * group is next opened.
   */
  writeSnapshotPiece(index: number, piece: number, bytes: Uint8Array): void {
    if (index <= this.snap.index) throw new SnapshotOutOfDateError();
    assert(isIndex(piece), () => `snapshot piece ${piece}`);
    const value = this.host.codec.sealChunk(this.groupId, index, piece, bytes);
    this.host.writeSnapshotPiece([this.groupId, index, piece], Buffer.from(value.buffer, value.byteOffset, value.byteLength));
  }

  /** createSnapshot for an image of `byteLength` bytes already written as `pieces` pieces (writeSnapshotPiece). */
  createSnapshotFromPieces(index: number, confState: ConfState, pieces: number, byteLength: number): void {
    if (index <= this.snap.index) throw new SnapshotOutOfDateError();
    assert(index <= this.terms.last, () => `snapshot ${index} is out of bound lastindex(${this.terms.last})`);
    assert(isConfState(confState), () => `createSnapshot: bad conf state ${JSON.stringify(confState)}`);
    assert(isIndex(pieces) && pieces > 0 && isIndex(byteLength), () => `snapshot of ${pieces} pieces, ${byteLength} bytes`);
    const term = this.term(index);
    this.stage(2 * RECORD_STAGED_BYTES);
    this.dropSnapshotChunks();
    this.recordAfterPieces = true;
    this.snap = { index, term, confState: copyConfState(confState), byteLength, chunkCount: pieces, sealed: this.host.codec.sealing };
    this.stagedRecords.set('snapshot', this.snap);
    this.snapData = null; // read back from LMDB: commits that write chunks go straight to LMDB (NodeStorage.commit)
    this.snapRead = null;
    this.setConfState(confState);
  }

  /** Discards entries up to and including `index`, which becomes the dummy (etcd's Compact). */
  compact(index: number): void {
    if (index <= this.offset.index) throw new CompactedError();
    assert(index <= this.terms.last, () => `compact ${index} is out of bound lastindex(${this.terms.last})`);
    const term = this.term(index);
    this.trimUpTo(index, this.stage(RECORD_STAGED_BYTES));
    for (const staged of this.stagedLog.keys()) if (staged <= index) this.stagedLog.delete(staged); // never to reach LMDB
    this.terms.dropBefore(index + 1);
    for (let i = this.cacheFirst; i <= index; i++) this.uncache(i);
    this.cacheFirst = Math.max(this.cacheFirst, index + 1);
    this.setOffset({ index, term });
  }

  // ---- NodeStorage's side ----

  /** @internal Bytes of entries held in memory. */
  get cachedBytes(): number {
    return this.cacheBytes;
  }

  /** @internal True once the group's marker record is on disk or staged (groups() lists it). */
  get hasState(): boolean {
    return this.persisted;
  }

  /** @internal Moves every staged write into `writes` (the caller's commit). */
  drainStaged(writes: Writes): void {
    const g = this.groupId;
    for (const [index, value] of this.stagedLog) writes.put(DB_LOG, logKey(g, index), value, value === null ? 0 : value.byteLength);
    for (const [name, value] of this.stagedRecords) writes.put(DB_STATE, [g, name], value, RECORD_STAGED_BYTES);
    for (const { index, chunk, value } of this.stagedChunks.values()) {
      writes.put(DB_CHUNKS, [g, index, chunk], value === null ? null : Buffer.from(value.buffer, value.byteOffset, value.byteLength), value === null ? 0 : value.byteLength);
    }
    if (this.recordAfterPieces) writes.afterPieces = true;
    this.recordAfterPieces = false;
    this.stagedLog.clear();
    this.stagedRecords.clear();
    this.stagedChunks.clear();
  }

  /** @internal True while compacted entries wait to be deleted from LMDB (issueTrims). */
  get trimming(): boolean {
    return this.trims.length > 0;
  }

  /**
   * @internal Issues the deletion from LMDB of up to `budget` (more when the log grew faster) of
   * the entries compactions left there, once LMDB holds the batch with their offset (`storedSeq`,
   * before the caller's transaction: the read below sees only what LMDB holds, so every entry put
   * up to that batch is found). Reads which entries are there: a snapshot can move the offset far
   * past the last entry the group ever had, and a restart forgets what was pending.
   */
  issueTrims(storedSeq: number, budget: number, remove: (key: Buffer) => void): void {
    let upTo = 0;
    let ready = 0;
    while (ready < this.trims.length && this.trims[ready].seq <= storedSeq) upTo = Math.max(upTo, this.trims[ready++].upTo);
    const limit = Math.max(budget, 2 * this.appendedSinceTrim);
    this.appendedSinceTrim = 0;
    if (ready === 0) return;
    // A snapshot older than the last compaction moves the offset back, and the log restarts after it
    // (its old entries there were deleted with the snapshot): nothing after the offset may go.
    upTo = Math.min(upTo, this.offset.index);
    let removed = 0;
    for (const key of this.host.dbs.log.getKeys({ start: logKey(this.groupId, 0), end: logKey(this.groupId, upTo + 1), limit })) {
      remove(key as Buffer);
      removed++;
    }
    if (removed < limit) this.trims.splice(0, ready); // all of them found: nothing up to `upTo` is left
  }

  /** @internal LMDB holds batch `seq` and every earlier one: release what memory held only until it did. */
  onDurable(seq: number): void {
    if (this.snapData !== null && this.snapData.seq <= seq) this.snapData = null;
    this.evictCache();
  }

  // ---- internals ----

  private stage(bytes: number): number {
    const seq = this.host.stage(this, bytes);
    if (!this.persisted) {
      this.stagedRecords.set('group', 1);
      this.persisted = true;
    }
    return seq;
  }

  private setOffset(offset: LogOffset): void {
    this.offset = offset;
    this.stagedRecords.set('offset', offset);
  }

  /** Entries up to `upTo` are unreachable once batch `seq` is stored: delete them from LMDB later. */
  private trimUpTo(upTo: number, seq: number): void {
    if (upTo > 0) this.trims.push({ upTo, seq });
    this.host.trimPending(this);
  }

  private stageLogDelete(lo: number, hi: number): void {
    for (let index = lo; index <= hi; index++) this.stagedLog.set(index, null);
  }

  private truncateFrom(index: number): void {
    this.stageLogDelete(index, this.terms.last);
    this.terms.truncateFrom(index);
    if (index < this.cacheFirst) {
      this.clearCache(index);
      return;
    }
    for (let i = index; this.cache.has(i); i++) this.uncache(i);
  }

  /** Stages `data` in chunks under the new index and the removal of the old snapshot's chunks. */
  private replaceSnapshot(record: SnapshotRecord, data: Uint8Array, seq: number): void {
    assert(record.index > this.snap.index, () => `snapshot ${record.index} does not replace ${this.snap.index}`);
    const { snapshotChunkBytes } = this.host.limits;
    const { codec } = this.host;
    this.dropSnapshotChunks();
    const chunkCount = Math.ceil(data.byteLength / snapshotChunkBytes);
    for (let chunk = 0; chunk < chunkCount; chunk++) {
      const plain = data.subarray(chunk * snapshotChunkBytes, (chunk + 1) * snapshotChunkBytes);
      const value = codec.sealChunk(this.groupId, record.index, chunk, plain);
      this.stagedChunks.set(`${record.index}/${chunk}`, { index: record.index, chunk, value });
    }
    this.snap = { ...record, confState: copyConfState(record.confState), chunkCount, sealed: codec.sealing };
    this.stagedRecords.set('snapshot', this.snap);
    this.snapData = { data, seq };
    this.snapRead = null;
  }

  /** Stages the removal of the current snapshot's chunks. */
  private dropSnapshotChunks(): void {
    for (let chunk = 0; chunk < this.snap.chunkCount; chunk++) {
      this.stagedChunks.set(`${this.snap.index}/${chunk}`, { index: this.snap.index, chunk, value: null });
    }
  }

  private uncache(index: number): void {
    const cached = this.cache.get(index);
    if (cached === undefined) return;
    this.cache.delete(index);
    this.cacheBytes -= cached.bytes;
  }

  private clearCache(first: number): void {
    this.cache.clear();
    this.cacheBytes = 0;
    this.cacheFirst = first;
  }

  /** Drops the oldest durable entries while the cache is over its bound. */
  private evictCache(): void {
    const limit = this.host.limits.logCacheBytesPerGroup;
    const stored = this.host.storedSeq;
    while (this.cacheBytes > limit) {
      const oldest = this.cache.get(this.cacheFirst);
      if (oldest === undefined || oldest.seq > stored) break;
      this.uncache(this.cacheFirst);
      this.cacheFirst++;
    }
    assert(this.cacheFirst > this.offset.index && this.cacheFirst <= this.terms.last + 1, () => `cache starts at ${this.cacheFirst}`);
  }

  /** Reads committed entries [lo, hi) from LMDB into `out`; false once `budget` is used up. */
  private readFromDisk(lo: number, hi: number, out: Entry[], budget: { usedBytes: number; maxBytes: number }): boolean {
    let expected = lo;
    for (const { key, value } of this.host.dbs.log.getRange({ start: logKey(this.groupId, lo), end: logKey(this.groupId, hi) })) {
      const index = logKeyIndex(key);
      if (index !== expected) throw new StorageCorruptionError(`group ${this.groupId}: log entry ${expected} missing`);
      const entry = this.host.codec.decodeEntry(this.groupId, index, value);
      if (!takes(out, budget, entrySizeBytes(entry))) return false;
      out.push(entry);
      expected++;
    }
    if (expected !== hi) throw new StorageCorruptionError(`group ${this.groupId}: log entry ${expected} missing`);
    return true;
  }

  private readSnapshotData(): Uint8Array {
    const read: SnapshotRead = { index: this.snap.index, data: new Uint8Array(this.snap.byteLength), nextChunk: 0, at: 0 };
    this.readSnapshotPart(read, Infinity);
    return read.data;
  }

  /** Reads the next chunks of the current snapshot into `read`, about `maxBytes` of them; true once all are in. */
  private readSnapshotPart(read: SnapshotRead, maxBytes: number): boolean {
    const { index, byteLength, chunkCount, sealed } = this.snap;
    assert(read.index === index, 'snapshot read of a replaced snapshot');
    let readBytes = 0;
    for (const { value: stored } of this.host.dbs.chunks.getRange({ start: [this.groupId, index, read.nextChunk], end: [this.groupId, index, chunkCount] })) {
      const value = this.host.codec.openChunk(this.groupId, index, read.nextChunk, stored, sealed);
      if (read.at + value.byteLength > byteLength) break;
      read.data.set(value, read.at);
      read.at += value.byteLength;
      read.nextChunk++;
      readBytes += value.byteLength;
      if (readBytes >= maxBytes) break;
    }
    if (read.nextChunk < chunkCount && readBytes >= maxBytes) return false;
    if (read.at !== byteLength || read.nextChunk !== chunkCount) {
      throw new StorageCorruptionError(`group ${this.groupId}: snapshot ${index} has ${read.at} of ${byteLength} bytes in ${read.nextChunk} of ${chunkCount} chunks`);
    }
    return true;
  }

  // ---- recovery ----

  /** Rebuilds the in-memory view from what is committed in LMDB. */
  private recover(): void {
    const { state } = this.host.dbs;
    const g = this.groupId;
    this.persisted = state.get([g, 'group']) !== undefined;
    if (!this.persisted) return;
    this.hardState = readHardState(g, state.get([g, 'hardState']));
    this.confState = readConfState(g, state.get([g, 'confState']));
    this.snap = readSnapshotRecord(g, state.get([g, 'snapshot']));
    this.offset = readOffset(g, state.get([g, 'offset']));
    this.terms.reset(this.offset.index + 1);
    this.recoverLog();
    // A compaction's entries may still be in LMDB (the deletions are issued after it, a part at a time).
    if (this.offset.index > 0) this.trimUpTo(this.offset.index, 0);
    this.clearCache(this.terms.last + 1);
    this.dropOrphanPieces();
  }

  /**
   * Chunks of no recorded snapshot: pieces of a build a crash interrupted. Removed at once, in a
   * transaction of their own: a removal waiting in the commit sequence would reach LMDB after the
   * pieces of a new build, which go straight to LMDB, and could delete one written at the same key.
   */
  private dropOrphanPieces(): void {
    const { chunks, env } = this.host.dbs;
    const g = this.groupId;
    const orphans: [number, number, number][] = [];
    for (const key of chunks.getKeys({ start: [g], end: [g + 1] })) {
      const [, index, chunk] = key as [number, number, number];
      if (index === this.snap.index && chunk < this.snap.chunkCount) continue;
      orphans.push([g, index, chunk]);
    }
    if (orphans.length > 0) env.transactionSync(() => orphans.forEach((key) => chunks.removeSync(key)));
  }

  private recoverLog(): void {
    const { log } = this.host.dbs;
    const g = this.groupId;
    const first = this.offset.index + 1;
    let last = this.offset.index;
    // Reverse ranges include `start` and exclude `end`: this finds the highest key in [first, ∞).
    for (const key of log.getKeys({ start: logKey(g + 1, 0), end: logKey(g, first - 1), reverse: true, limit: 1 })) {
      last = logKeyIndex(key);
    }
    if (last < first) return;
    const count = log.getKeysCount({ start: logKey(g, first), end: logKey(g, last + 1) });
    if (count !== last - first + 1) throw new StorageCorruptionError(`group ${g}: ${count} log entries in [${first}, ${last}]`);
    this.recoverTerms(first, last);
  }

  /** Finds each run of equal terms by binary search (terms never decrease), reading only entry headers. */
  private recoverTerms(first: number, last: number): void {
    let index = first;
    while (index <= last) {
      const term = this.diskTerm(index);
      if (term < (this.terms.lastTerm() ?? this.offset.term)) {
        throw new StorageCorruptionError(`group ${this.groupId}: term ${term} at ${index} decreases`);
      }
      let lo = index;
      let hi = last;
      while (lo < hi) {
        const mid = Math.floor((lo + hi + 1) / 2);
        if (this.diskTerm(mid) === term) lo = mid;
        else hi = mid - 1;
      }
      this.terms.append(index, term, lo - index + 1);
      index = lo + 1;
    }
    assert(this.terms.last === last, () => `recovered terms up to ${this.terms.last}, log up to ${last}`);
  }

  private diskTerm(index: number): number {
    const value = this.host.dbs.log.getBinaryFast(logKey(this.groupId, index));
    if (value === undefined) throw new StorageCorruptionError(`group ${this.groupId}: log entry ${index} missing`);
    return decodeEntryTerm(index, value);
  }
}

/** etcd's limitSize, one entry at a time: the first entry always fits, later ones while the total stays <= maxBytes. */
function takes(out: Entry[], budget: { usedBytes: number; maxBytes: number }, bytes: number): boolean {
  if (out.length > 0 && budget.usedBytes + bytes > budget.maxBytes) return false;
  budget.usedBytes += bytes;
  return true;
}
