// One node's durable storage: an LMDB environment holding every Raft group's state plus node
// metadata, in front of it a write-ahead log. Writes are staged in memory and committed by
// commit(): everything staged since the previous commit, across all groups, becomes one record of
// the write-ahead log, durable after one sequential write (group commit). LMDB receives the same
// writes later, the commits of up to `lmdbFlushIntervalMs` in one transaction; until it holds them,
// what reads need of them stays in memory. Recovery replays the log's tail into LMDB.
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pack, unpack } from 'msgpackr';
import type { Keyring } from '../security/index.ts';
import { assert } from '../util/index.ts';
import { openDbs } from './dbs.ts';
import type { StorageDbs } from './dbs.ts';
import { AtRestCodec, ENCRYPTION_RECORD_KEY, keyRecord, verifyKeys } from './encryption.ts';
import { StorageClosedError, StorageCorruptionError, StorageEncryptionError, StorageFailedError, StorageLimitError } from './errors.ts';
import { recoverWal, Wal, WAL_DIR, WAL_SEQ_KEY } from './wal.ts';
import type { WalReplay } from './wal.ts';
import { DB_META, Writes } from './writes.ts';
import { InjectedFsyncError, StorageFaults } from './faults.ts';
import { GroupStorage } from './group-storage.ts';
import type { GroupHost } from './group-storage.ts';
import { DEFAULT_STORAGE_LIMITS } from './limits.ts';
import type { StorageLimits } from './limits.ts';
import { acquireLock } from './lock.ts';
import { REENCRYPT_OLD_DIR } from './reencrypt.ts';
import { isIndex } from './records.ts';

/**
 * Bumped when the on-disk layout changes incompatibly; a newer version refuses to open. Version 2
 * added the write-ahead log: version 1 directories are upgraded on open, and a version 1 binary
 * refuses a version 2 directory (it would not replay the log).
 */
const FORMAT_VERSION = 2;
const FORMAT_KEY = ['node', 'formatVersion'];


export interface NodeStorageOptions {
  /** Directory for this node's storage; the LMDB environment lives in `<dataDir>/db`. Created if missing. */
  dataDir: string;
  /** fsync every commit (default true). Off: a process crash loses nothing committed, a power loss may. */
  sync?: boolean;
  /** Initial LMDB map size; LMDB grows it as needed. */
  mapSizeBytes?: number;
  limits?: Partial<StorageLimits>;
  /**
   * Encryption at rest: log payloads and snapshot chunks are sealed under the newest key; data
   * sealed under any key of the ring stays readable. Without it, an encrypted directory refuses
   * to open (StorageEncryptionError). See docs/SECURITY.md.
   */
  encryption?: Keyring;
}

export interface StorageStats {
  /** Batches committed by commit(). */
  commits: number;
  /** LMDB write transactions committed since open (observed through lmdb's `aftercommit`). */
  lmdbTransactions: number;
  /** Commits made that are not yet durable. */
  commitsInFlight: number;
  /** Bytes staged and not yet committed. */
  stagedBytes: number;
  /** Durable commits (in the write-ahead log) whose writes LMDB does not hold yet. */
  commitsAheadOfLmdb: number;
  /** Bytes in write-ahead log segments not yet released. */
  walBytes: number;
  /** Bytes of log entries cached in memory, summed over groups. */
  cachedEntryBytes: number;
  /** Groups open in this process. */
  openGroups: number;
  /** Bytes of snapshot pieces handed to LMDB and not yet written (bounded by maxSnapshotPieceBytesInFlight). */
  snapshotPieceBytesInFlight: number;
}

export class NodeStorage {
  readonly limits: Readonly<StorageLimits>;
  /** Injected disk faults (chaos tests only; inert unless driven, see faults.ts). */
  readonly faults = new StorageFaults();
  private readonly dbs: StorageDbs;
  /** What groups see of this node: the databases, the limits, staging and durability. */
  private readonly host: GroupHost;
  private readonly groupsById = new Map<number, GroupStorage>();
  /** Groups with compacted entries still to delete from LMDB (GroupStorage.issueTrims). */
  private readonly trimmingGroups = new Set<GroupStorage>();
  private readonly dirtyGroups = new Set<GroupStorage>();
  /** Metadata values by name: everything read or written so far (authoritative over LMDB). */
  private readonly metaValues = new Map<string, unknown>();
  private readonly stagedMeta = new Map<string, Buffer>();
  private readonly releaseLock: () => void;
  private stagedBytes = 0;
  /** Sequence number of the last batch committed; staged writes belong to batch `batchSeq + 1`. */
  private batchSeq: number;
  /** Last batch durable (in the write-ahead log or LMDB). */
  private durable: number;
  /** Last batch LMDB holds durably. */
  private stored: number;
  private lastCommit: Promise<void> = Promise.resolve();
  /** Snapshot pieces written straight to LMDB (writeSnapshotPiece): all of them, and their bytes not yet written. */
  private piecesWritten: Promise<void> = Promise.resolve();
  private pieceBytes = 0;
  private pieceWritesInFlight = 0;
  /** Durable batches not yet issued to LMDB, in order. */
  private forLmdb: { seq: number; writes: Writes }[] = [];
  private forLmdbBytes = 0;
  /** Bytes of committed batches LMDB does not hold durably yet (waiting, or in a transaction). */
  private unstoredBytes = 0;
  private lmdbTimer: NodeJS.Timeout | null = null;
  private lastLmdbWrite: Promise<void> = Promise.resolve();
  /** An LMDB transaction is running; the next waits for it (see writeToLmdb). */
  private lmdbWriting = false;
  /** The transaction that will take what is waiting once the running one is durable, or null. */
  private nextLmdbWrite: Promise<void> | null = null;
  private readonly wal: Wal;
  private commitCount = 0;
  private lmdbTransactions = 0;
  private failure: StorageFailedError | null = null;
  private closed = false;
  private lmdbCommitListener: ((seconds: number) => void) | null = null;
  /** What open() found in the write-ahead log: commits replayed into LMDB, bytes of a torn last record dropped. */
  recovery = { replayedCommits: 0, tornBytes: 0 };

  private constructor(dbs: StorageDbs, limits: StorageLimits, releaseLock: () => void, codec: AtRestCodec, wal: Wal, lastSeq: number) {
    this.dbs = dbs;
    this.limits = Object.freeze(limits);
    this.releaseLock = releaseLock;
    this.wal = wal;
    this.batchSeq = lastSeq;
    this.durable = lastSeq;
    this.stored = lastSeq;
    const storedSeq = () => this.stored;
    this.host = {
      dbs,
      limits: this.limits,
      codec,
      stage: (group, bytes) => this.stage(group, bytes),
      writeSnapshotPiece: (key, value) => this.writeSnapshotPiece(key, value),
      trimPending: (group) => this.trimmingGroups.add(group),
      get storedSeq() {
        return storedSeq();
      },
    };
    // lmdb-js also reports a phantom txnId 0 before the first real transaction: skip it.
    dbs.env.on('aftercommit', (event: { txnId?: unknown }) => {
      if (typeof event.txnId === 'number' && event.txnId > 0) this.lmdbTransactions++;
    });
  }

  /** Opens (creating if needed) the node's storage and takes its lock. Group state is recovered lazily by group(). */
  static open(options: NodeStorageOptions): NodeStorage {
    const limits = { ...DEFAULT_STORAGE_LIMITS, ...options.limits };
    assert(limits.snapshotChunkBytes >= 1024 && limits.maxStagedBytes > 0 && limits.logCacheBytesPerGroup >= 0, 'bad storage limits');
    const dataDir = resolve(options.dataDir);
    mkdirSync(dataDir, { recursive: true });
    const releaseLock = acquireLock(join(dataDir, 'db.lock'));
    try {
      if (!existsSync(join(dataDir, 'db')) && existsSync(join(dataDir, REENCRYPT_OLD_DIR))) {
        throw new StorageCorruptionError(`${dataDir} holds an interrupted re-encryption; run \`tessera storage re-encrypt\` again to finish it`);
      }
      const sync = options.sync ?? true;
      const dbs = openDbs({ path: join(dataDir, 'db'), sync, mapSizeBytes: options.mapSizeBytes });
      let wal: Wal;
      let lastSeq: number;
      let replay: WalReplay;
      try {
        checkFormat(dbs);
        replay = recoverWal(dbs, join(dataDir, WAL_DIR));
        lastSeq = replay.lastSeq;
        checkEncryption(dbs, options.encryption ?? null);
        wal = new Wal({ dir: join(dataDir, WAL_DIR), sync, segmentBytes: limits.walSegmentBytes }, lastSeq + 1);
      } catch (error) {
        dbs.env.close().catch(() => undefined);
        throw error;
      }
      const storage = new NodeStorage(dbs, limits, releaseLock, new AtRestCodec(options.encryption ?? null), wal, lastSeq);
      storage.recovery = { replayedCommits: replay.replayed, tornBytes: replay.tornBytes };
      return storage;
    } catch (error) {
      releaseLock();
      throw error;
    }
  }

  /**
   * Seals new writes under `keyring`'s newest key from now on: a key file reloaded without a
   * restart (a new key added for rotation). The checks of open() apply: every key that sealed data
   * here must be in it, and be the same key; the new key's check record is committed before
   * anything is sealed with it. Throws StorageEncryptionError and keeps the current keys otherwise.
   * Turning encryption on or off needs a restart (and `tessera storage re-encrypt`).
   */
  setKeyring(keyring: Keyring): void {
    this.checkOpen();
    if (this.host.codec.keyring === null) {
      throw new StorageEncryptionError('encryption at rest was off at start; turning it on needs a restart (and `tessera storage re-encrypt` for what is already written)');
    }
    checkEncryption(this.dbs, keyring);
    this.host.codec.keyring = keyring;
  }

  /** The storage of group `groupId`, recovered from disk on first use (empty if it has none). */
  group(groupId: number): GroupStorage {
    this.checkOpen();
    assert(isIndex(groupId), () => `group id ${groupId} is not a non-negative safe integer`);
    let group = this.groupsById.get(groupId);
    if (group === undefined) {
      group = new GroupStorage(this.host, groupId);
      this.groupsById.set(groupId, group);
    }
    return group;
  }

  /** Ids of groups with state on disk or staged, ascending (what to reopen after a restart). */
  groups(): number[] {
    this.checkOpen();
    const ids = new Set<number>();
    for (const key of this.dbs.state.getKeys({ start: [0], end: [Number.MAX_SAFE_INTEGER, 'z'] })) {
      if (typeof key[0] === 'number' && key[1] === 'group') ids.add(key[0]);
    }
    for (const [id, group] of this.groupsById) if (group.hasState) ids.add(id);
    return [...ids].sort((a, b) => a - b);
  }

  /** A metadata value (staged or committed). Returned by reference: do not modify it. */
  getMeta<T>(name: string): T | undefined {
    this.checkOpen();
    if (!this.metaValues.has(name)) {
      const bytes = this.dbs.meta.get(name);
      this.metaValues.set(name, bytes === undefined ? undefined : unpack(bytes));
    }
    return this.metaValues.get(name) as T | undefined;
  }

  /** Stages a metadata value (msgpack-encodable, not undefined); durable after commit(). */
  putMeta(name: string, value: unknown): void {
    assert(value !== undefined, () => `putMeta(${name}): undefined cannot be stored`);
    assert(name.length > 0, 'putMeta: empty name');
    const bytes = pack(value);
    this.reserve(bytes.byteLength);
    this.stagedMeta.set(name, bytes);
    this.metaValues.set(name, value);
  }

  /**
   * Commits everything staged so far (all groups, metadata) as one batch and resolves once it and
   * every earlier batch are durable (flushed to disk when `sync` is on). With nothing staged it
   * resolves when the commits already in flight are durable.
   */
  commit(): Promise<void> {
    if (this.closed) return Promise.reject(new StorageClosedError());
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.dirtyGroups.size === 0 && this.stagedMeta.size === 0) return this.lastCommit;
    if (this.faults.takeFsyncFailure()) {
      // As a failed fsync: this batch never reaches the disk, and nothing after it may be written.
      this.failure = new StorageFailedError(new InjectedFsyncError());
      return Promise.reject(this.failure);
    }
    const seq = ++this.batchSeq;
    const writes = new Writes();
    for (const group of this.dirtyGroups) group.drainStaged(writes);
    for (const [name, bytes] of this.stagedMeta) writes.put(DB_META, name, bytes, bytes.byteLength);
    this.dirtyGroups.clear();
    this.stagedMeta.clear();
    this.stagedBytes = 0;
    this.commitCount++;
    this.forLmdb.push({ seq, writes });
    this.forLmdbBytes += writes.bytes;
    this.unstoredBytes += writes.bytes;
    let flushed: Promise<void>;
    if (writes.hasChunks || writes.afterPieces || writes.bytes > this.limits.walMaxRecordBytes || this.unstoredBytes > this.limits.maxUnstoredBytes) {
      // Snapshot images: straight to LMDB (with every batch before them), not through the log.
      // So does any commit while LMDB is too far behind: it then waits for LMDB (backpressure).
      // A snapshot record waits for its pieces as well (writeToLmdb issues it only once they are written).
      flushed = this.writeToLmdb();
    } else {
      flushed = this.wal.append(seq, writes.encode());
      if (this.forLmdbBytes >= this.limits.lmdbFlushBytes) this.writeToLmdb().catch(() => undefined);
      else this.lmdbTimer ??= setTimeout(() => this.writeToLmdb().catch(() => undefined), this.limits.lmdbFlushIntervalMs);
    }
    const delayMs = this.faults.nextFsyncDelayMs();
    if (delayMs > 0) flushed = flushed.then(() => new Promise<void>((resolveLater) => setTimeout(resolveLater, delayMs)));
    // Chained on the previous commit, so commits become durable in order.
    const previous = this.lastCommit;
    this.lastCommit = Promise.all([previous, flushed]).then(
      () => this.onDurable(seq),
      (error: unknown) => {
        this.failure ??= new StorageFailedError(error);
        throw this.failure;
      },
    );
    return this.lastCommit;
  }

  /**
   * Resolves once at most `maxSnapshotPieceBytesInFlight` bytes of snapshot pieces are unwritten:
   * a snapshot build waits on it after each step, so a disk slower than the encoding bounds the
   * memory the pieces hold (the node's other commits never wait for pieces).
   */
  snapshotPiecesWithinBound(): Promise<void> {
    return this.pieceBytes > this.limits.maxSnapshotPieceBytesInFlight ? this.piecesWritten : Promise.resolve();
  }

  /**
   * Writes every committed batch LMDB does not hold yet to LMDB now and resolves once it holds
   * them durably (the write-ahead log can then be released). Normally this happens on its own,
   * `lmdbFlushIntervalMs` after a commit; close() and tests call it.
   */
  async checkpoint(): Promise<void> {
    await this.lastCommit;
    await this.writeToLmdb();
  }

  /** Calls `listener` with the seconds each LMDB transaction of the write-ahead log's commits took to become durable. */
  onLmdbCommit(listener: (seconds: number) => void): void {
    this.lmdbCommitListener = listener;
  }

  stats(): StorageStats {
    let cachedEntryBytes = 0;
    for (const group of this.groupsById.values()) cachedEntryBytes += group.cachedBytes;
    return {
      commits: this.commitCount,
      lmdbTransactions: this.lmdbTransactions,
      commitsInFlight: this.batchSeq - this.durable,
      stagedBytes: this.stagedBytes,
      commitsAheadOfLmdb: this.durable - Math.min(this.stored, this.durable),
      walBytes: this.wal.bytes,
      cachedEntryBytes,
      openGroups: this.groupsById.size,
      snapshotPieceBytesInFlight: this.pieceBytes,
    };
  }

  /**
   * Waits for commits in flight, drops whatever is staged but uncommitted, writes the rest of the
   * write-ahead log to LMDB (then removes the log), closes LMDB and the lock.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.lastCommit.catch(() => undefined);
    await this.piecesWritten.catch(() => undefined);
    let written = this.failure === null;
    if (written) await this.writeToLmdb().catch(() => (written = false));
    // After a failure the log keeps what LMDB may lack; the next open replays it.
    if (written) await this.wal.destroy();
    else await this.wal.close();
    await this.dbs.env.close();
    this.releaseLock();
  }

  // ---- internals ----

  /** GroupHost.writeSnapshotPiece: an LMDB put now, tracked until written; a failure fails the storage. */
  private writeSnapshotPiece(key: [number, number, number], value: Buffer): void {
    this.checkOpen();
    if (this.failure !== null) throw this.failure;
    const bytes = value.byteLength;
    this.pieceBytes += bytes;
    this.pieceWritesInFlight += 1;
    const failAfterMs = this.faults.takePieceFailure();
    const put = failAfterMs === null ? this.dbs.chunks.put(key, value) : new Promise<boolean>((_, reject) => setTimeout(() => reject(new InjectedFsyncError()), failAfterMs));
    const written = put.then(
      () => {
        this.pieceBytes -= bytes;
        this.pieceWritesInFlight -= 1;
      },
      (error: unknown) => {
        this.pieceWritesInFlight -= 1;
        this.failure ??= new StorageFailedError(error);
        throw this.failure;
      },
    );
    const before = this.piecesWritten;
    this.piecesWritten = Promise.all([before, written]).then(() => undefined);
    this.piecesWritten.catch(() => undefined); // reported by the commit that waits for it
  }

  private stage(group: GroupStorage, bytes: number): number {
    this.reserve(bytes);
    this.dirtyGroups.add(group);
    return this.batchSeq + 1;
  }

  private checkOpen(): void {
    if (this.closed) throw new StorageClosedError();
  }

  private reserve(bytes: number): void {
    this.checkOpen();
    if (this.failure !== null) throw this.failure;
    if (this.stagedBytes + bytes > this.limits.maxStagedBytes) {
      throw new StorageLimitError(
        `${bytes} more bytes would exceed maxStagedBytes ${this.limits.maxStagedBytes} (${this.stagedBytes} staged); commit first`,
      );
    }
    this.stagedBytes += bytes;
  }

  /**
   * Issues the writes of every batch waiting for LMDB synchronously, so lmdb-js puts them all in
   * one transaction (it batches the writes of one event turn) together with the number of the last
   * one, and returns a promise for that transaction's fsync.
   */
  private writeToLmdb(): Promise<void> {
    if (this.lmdbTimer !== null) {
      clearTimeout(this.lmdbTimer);
      this.lmdbTimer = null;
    }
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.lmdbWriting) {
      // One transaction at a time: each records the last batch LMDB holds, so a later one that
      // committed while an earlier one failed would claim batches LMDB never got. What waits now
      // goes in one transaction after the running one is durable (and never, if it fails).
      this.nextLmdbWrite ??= this.lastLmdbWrite.then(() => {
        this.nextLmdbWrite = null;
        return this.writeToLmdb();
      });
      return this.nextLmdbWrite;
    }
    if (this.forLmdb.length === 0) return this.lastLmdbWrite;
    if (this.pieceWritesInFlight > 0 && this.forLmdb.some((batch) => batch.writes.afterPieces)) {
      // A snapshot record reaches LMDB only after every piece it names is written: issued now, it
      // could commit even if a piece's transaction then failed, leaving a record without its data.
      this.nextLmdbWrite ??= this.piecesWritten.then(() => {
        this.nextLmdbWrite = null;
        return this.writeToLmdb();
      });
      return this.nextLmdbWrite;
    }
    const batches = this.forLmdb;
    const bytes = this.forLmdbBytes;
    this.forLmdb = [];
    this.forLmdbBytes = 0;
    const lastSeq = batches[batches.length - 1].seq;
    const failAfterMs = this.faults.takeLmdbFailure();
    if (failAfterMs !== null) return this.startLmdbWrite(new Promise((_, reject) => setTimeout(() => reject(new InjectedFsyncError()), failAfterMs)), bytes, lastSeq);
    const writes: Promise<boolean>[] = [];
    let last: Promise<boolean> | null = null;
    const track = (write: Promise<boolean>) => {
      if (write !== last) writes.push(write); // lmdb-js returns one shared promise per transaction
      last = write;
    };
    try {
      for (const batch of batches) batch.writes.issue(this.dbs, track);
      // Compacted entries go once LMDB holds the offset that dropped them, a bounded part each time.
      for (const group of this.trimmingGroups) {
        group.issueTrims(this.stored, this.limits.logTrimEntriesPerTransaction, (key) => track(this.dbs.log.remove(key)));
        if (!group.trimming) this.trimmingGroups.delete(group);
      }
      track(this.dbs.state.put(WAL_SEQ_KEY, lastSeq));
    } catch (error) {
      // lmdb-js throws synchronously only for invalid keys or values, which staging rules out; if
      // it happens anyway, part of the batch may already be queued, so stop accepting writes.
      this.failure = new StorageFailedError(error);
      return Promise.reject(this.failure);
    }
    const flushed = new Promise<void>((resolveFlushed, rejectFlushed) => {
      this.dbs.env.flushed.then(() => resolveFlushed(), rejectFlushed);
    });
    return this.startLmdbWrite(Promise.all([...writes, flushed]), bytes, lastSeq);
  }

  /** Tracks the LMDB transaction `written` (batches up to `lastSeq`, `bytes` of them) until it is durable. */
  private startLmdbWrite(written: Promise<unknown>, bytes: number, lastSeq: number): Promise<void> {
    const startedAt = performance.now();
    this.lmdbWriting = true;
    this.lastLmdbWrite = written.then(
      () => {
        this.lmdbWriting = false;
        this.lmdbCommitListener?.((performance.now() - startedAt) / 1000);
        this.unstoredBytes -= bytes;
        this.onStored(lastSeq);
      },
      (error: unknown) => {
        this.failure ??= new StorageFailedError(error);
        throw this.failure; // lmdbWriting stays set: nothing is written to LMDB after a failure
      },
    );
    return this.lastLmdbWrite;
  }

  private onDurable(seq: number): void {
    assert(seq === this.durable + 1, () => `batch ${seq} durable after ${this.durable}`);
    this.durable = seq;
  }

  /** LMDB holds every batch up to `seq` durably: memory and the write-ahead log may let go of them. */
  private onStored(seq: number): void {
    this.stored = seq;
    for (const group of this.groupsById.values()) group.onDurable(seq);
    this.wal.release(seq);
  }
}

/** Refuses to open data the key ring cannot read; records the newest key once it seals data here. */
function checkEncryption(dbs: StorageDbs, keyring: Keyring | null): void {
  const { records, addNewest } = verifyKeys(dbs, keyring);
  if (keyring !== null && addNewest) dbs.state.putSync(ENCRYPTION_RECORD_KEY, [...records, keyRecord(keyring)]);
}

function checkFormat(dbs: StorageDbs): void {
  const version = dbs.state.get(FORMAT_KEY);
  if (version === FORMAT_VERSION) return;
  // Version 1 (no write-ahead log) reads the same; from now on the log is in use.
  if (version === undefined || version === 1) {
    dbs.state.putSync(FORMAT_KEY, FORMAT_VERSION);
    return;
  }
  throw new StorageCorruptionError(`format version ${String(version)}, expected ${FORMAT_VERSION} (written by a newer Tessera?)`);
}
