// The write-ahead log: what makes a commit durable. Each commit's writes are appended as one record
// to a segment file opened with O_DSYNC, so a commit costs one sequential write and one flush of
// the data (about 0.1 ms here) instead of an LMDB transaction's two fsyncs of scattered pages
// (0.4-2 ms). LMDB receives the same writes later, many commits per transaction (NodeStorage), and
// once a transaction holding batch N is durable, segments holding only batches <= N are deleted.
//
// A segment is created at its full size, as a sparse file (ftruncate), and records are written at
// explicit offsets inside it. An append to a file's end changes its size, so every O_DSYNC append
// also waits for a journal commit of the inode; inside the file only a write that allocates a new
// block does (one in ten of a single client's records). etcd preallocates its WAL segments for the
// same reason. Recovery reads a segment's trailing zero bytes as room not yet written, never as a
// record. (Zero-filling segments ahead of use, so that no write allocates, was measured too: the
// extra writes of zeros cost more under load than they saved; docs/BENCHMARKS.md, session 10.)
//
// Record: u32 payload length, u32 CRC-32 of (seq, payload), u64 seq, payload. Batches carry
// consecutive sequence numbers; recovery replays the run that continues LMDB's last batch and
// stops at the first torn record or gap (a commit is acknowledged only after every earlier one is
// durable, so nothing past a gap was acknowledged).
import { closeSync, existsSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, unlinkSync, writev, constants } from 'node:fs';
import { dirname, join } from 'node:path';
import { crc32 } from 'node:zlib';
import { assert, trace } from '../util/index.ts';
import type { StorageDbs } from './dbs.ts';
import { StorageCorruptionError } from './errors.ts';
import { Writes } from './writes.ts';

export const WAL_HEADER_BYTES = 16;
/** The log's directory inside a node's data directory. */
export const WAL_DIR = 'wal';
/** Key (in the `state` database) of the last batch LMDB holds: the log is replayed from the next one. */
export const WAL_SEQ_KEY = ['node', 'walSeq'];
const SEGMENT_SUFFIX = '.wal';
const TWO_POW_32 = 2 ** 32;
/** Most buffers handed to one writev call (IOV_MAX is 1024 on Linux). */
const MAX_IOVECS = 512;
/** Bytes compared at a time while looking for the end of a segment's records (writtenBytes). */
const ZERO_RUN_BYTES = 64 * 1024;
const ZEROS = Buffer.alloc(ZERO_RUN_BYTES);

interface WalRecord {
  seq: number;
  payload: Buffer;
}

export interface WalOptions {
  dir: string;
  /** O_DSYNC on the segment files (off: a process crash loses nothing, a power loss may). */
  sync: boolean;
  /** A segment is closed and a new one started once it holds this many bytes. */
  segmentBytes: number;
}

interface Segment {
  path: string;
  firstSeq: number;
  /** Highest batch written to it (firstSeq - 1 while empty). */
  lastSeq: number;
  bytes: number;
}

interface Waiter {
  seq: number;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** What recovery found in the segments. */
interface WalRecovery {
  /** Batches after `appliedSeq`, consecutive, in order. */
  records: WalRecord[];
  /** Bytes after the last good record of the last segment (a write a crash cut short), or 0. */
  tornBytes: number;
}

/**
 * Reads every segment in `dir` and returns the batches after `appliedSeq` (what LMDB already has),
 * stopping at a gap or at a torn record at the very end. A bad record followed by a good one (in
 * its segment or a later one) is corruption, not a torn write, and throws StorageCorruptionError.
 */
function readWal(dir: string, appliedSeq: number): WalRecovery {
  const records: WalRecord[] = [];
  let expected = appliedSeq + 1;
  let gap = false;
  const segments = listSegments(dir);
  for (let i = 0; i < segments.length; i++) {
    const { path } = segments[i];
    const data = readFileSync(path); // one at a time: each may be a whole preallocated segment
    // A preallocated segment's room not yet written; nothing after it was ever written.
    const written = writtenBytes(data);
    let at = 0;
    while (at < written) {
      const record = parseRecord(data, at);
      if (record === null) {
        if (i < segments.length - 1) throw new StorageCorruptionError(`write-ahead log ${path}: bad record at byte ${at}, with later segments after it`);
        // A write a crash cut short is the last thing in the log. A good record after the bad one
        // was written (and maybe acknowledged) after it: that is damage, and dropping it would
        // lose acknowledged writes.
        const later = findGoodRecord(data, at + 1, written);
        if (later >= 0) throw new StorageCorruptionError(`write-ahead log ${path}: bad record at byte ${at}, with a good record at byte ${later} after it`);
        return { records, tornBytes: written - at };
      }
      at += WAL_HEADER_BYTES + record.payload.byteLength;
      if (gap || record.seq <= appliedSeq) continue;
      if (record.seq !== expected) {
        gap = true; // an unacknowledged batch after one that never became durable
        continue;
      }
      records.push(record);
      expected++;
    }
  }
  return { records, tornBytes: 0 };
}

/**
 * Bytes of `data` up to and including its last nonzero byte: a preallocated segment's zero tail is
 * room, not records (a record's header is never all zeros: parseRecord). Runs of zeros are
 * compared natively, from the end.
 */
function writtenBytes(data: Buffer): number {
  let end = data.byteLength;
  while (end >= ZERO_RUN_BYTES && data.subarray(end - ZERO_RUN_BYTES, end).equals(ZEROS)) end -= ZERO_RUN_BYTES;
  while (end > 0 && data[end - 1] === 0) end--;
  return end;
}

/**
 * Replays the write-ahead log's batches that LMDB lacks into LMDB in one synced transaction, then
 * removes the log. Returns the number of the last batch LMDB holds.
 */
export function recoverWal(dbs: StorageDbs, walDir: string): WalReplay {
  const applied = dbs.state.get(WAL_SEQ_KEY) ?? 0;
  if (typeof applied !== 'number' || !Number.isSafeInteger(applied) || applied < 0) throw new StorageCorruptionError(`bad write-ahead log position ${String(applied)}`);
  const { records, tornBytes } = readWal(walDir, applied);
  if (records.length === 0) {
    clearWal(walDir);
    return { lastSeq: applied, replayed: 0, tornBytes };
  }
  const batches = records.map((record) => Writes.decode(record.payload));
  const last = records[records.length - 1].seq;
  dbs.env.transactionSync(() => {
    for (const writes of batches) writes.issueSync(dbs);
    dbs.state.putSync(WAL_SEQ_KEY, last);
  });
  clearWal(walDir);
  return { lastSeq: last, replayed: records.length, tornBytes };
}

/** What recoverWal did. */
export interface WalReplay {
  /** The last batch LMDB holds now. */
  lastSeq: number;
  /** Commits replayed from the log into LMDB. */
  replayed: number;
  /** Bytes of a torn last record (a write a crash cut short) that were dropped. */
  tornBytes: number;
}

/** Removes every segment in `dir` (after their batches were written to LMDB durably). */
function clearWal(dir: string): void {
  const segments = listSegments(dir);
  for (const segment of segments) unlinkSync(segment.path);
  if (segments.length > 0) syncDir(dir);
}

function encodeRecord(seq: number, payload: Uint8Array): Buffer {
  const record = Buffer.allocUnsafe(WAL_HEADER_BYTES + payload.byteLength);
  record.writeUInt32BE(payload.byteLength, 0);
  record.writeUInt32BE(Math.floor(seq / TWO_POW_32), 8);
  record.writeUInt32BE(seq % TWO_POW_32, 12);
  record.set(payload, WAL_HEADER_BYTES);
  record.writeUInt32BE(crc32(record.subarray(8)) >>> 0, 4);
  return record;
}

/**
 * The offset of the first record at or after `from` and before `end` whose checksum holds, or -1.
 * Recovery only, and only after a bad record: it tries every offset (parseRecord checks the length
 * before the checksum).
 */
function findGoodRecord(data: Buffer, from: number, end: number): number {
  for (let at = from; at < end && at + WAL_HEADER_BYTES <= data.byteLength; at++) if (parseRecord(data, at) !== null) return at;
  return -1;
}

function parseRecord(data: Buffer, at: number): WalRecord | null {
  if (data.byteLength - at < WAL_HEADER_BYTES) return null;
  const length = data.readUInt32BE(at);
  const end = at + WAL_HEADER_BYTES + length;
  if (end > data.byteLength) return null;
  const body = data.subarray(at + 8, end);
  if (crc32(body) >>> 0 !== data.readUInt32BE(at + 4)) return null;
  const seq = data.readUInt32BE(at + 8) * TWO_POW_32 + data.readUInt32BE(at + 12);
  if (seq === 0 && length === 0) return null; // zero bytes are never a record
  return { seq, payload: Buffer.from(data.subarray(at + WAL_HEADER_BYTES, end)) };
}

function listSegments(dir: string): { path: string; firstSeq: number }[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []; // no log yet
    throw error; // an unreadable log must not pass for an empty one
  }
  return names
    .filter((name) => name.endsWith(SEGMENT_SUFFIX))
    .map((name) => ({ path: join(dir, name), firstSeq: Number(name.slice(0, -SEGMENT_SUFFIX.length)) }))
    .filter((s) => Number.isSafeInteger(s.firstSeq))
    .sort((a, b) => a.firstSeq - b.firstSeq);
}

function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * The appending side. One write is in flight at a time; records appended meanwhile go out together
 * in the next write (group commit), so the file order is the sequence order.
 */
export class Wal {
  private readonly segments: Segment[] = [];
  private fd: number;
  private queued: Buffer[] = [];
  private queuedWaiters: Waiter[] = [];
  private writing = false;
  private failure: unknown = null;
  private closed = false;
  private idle: (() => void)[] = [];

  /** Starts a new, empty log in `options.dir` whose first batch will be `nextSeq`; the directory must hold no segments. */
  constructor(
    private readonly options: WalOptions,
    nextSeq: number,
  ) {
    assert(options.segmentBytes > 0, 'wal: segmentBytes must be positive');
    if (!existsSync(options.dir)) {
      mkdirSync(options.dir, { recursive: true });
      if (options.sync) syncDir(dirname(options.dir)); // the directory's name must survive a power loss too
    }
    assert(listSegments(options.dir).length === 0, () => `wal: ${options.dir} still holds segments`);
    this.fd = this.openSegment(nextSeq);
  }

  /** Bytes in segments not yet released. */
  get bytes(): number {
    return this.segments.reduce((sum, s) => sum + s.bytes, 0);
  }

  get segmentCount(): number {
    return this.segments.length;
  }

  /** Appends batch `seq` (one more than the last one appended); resolves once it is durable. */
  append(seq: number, payload: Uint8Array): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    assert(!this.closed, 'wal: append after close');
    const record = encodeRecord(seq, payload);
    return new Promise<void>((resolve, reject) => {
      this.queued.push(record);
      this.queuedWaiters.push({ seq, resolve, reject });
      if (!this.writing) this.writeQueued();
    });
  }

  /** Batches up to `seq` are durable in LMDB: deletes the segments that hold nothing newer. */
  release(seq: number): void {
    while (this.segments.length > 1 && this.segments[0].lastSeq <= seq) {
      const [old] = this.segments.splice(0, 1);
      try {
        unlinkSync(old.path);
      } catch {
        // already gone: nothing to release
      }
    }
  }

  /** Waits for the write in flight, then closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.writing) await new Promise<void>((resolve) => this.idle.push(resolve));
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  /** Removes the whole log (everything it held is durable in LMDB). */
  async destroy(): Promise<void> {
    await this.close();
    rmSync(this.options.dir, { recursive: true, force: true });
    if (this.options.sync) syncDir(dirname(this.options.dir));
  }

  /** Nothing more can be written: rejects `waiters` and everything queued, and every later append. */
  private fail(error: unknown, waiters: Waiter[]): void {
    this.failure = error;
    for (const waiter of [...waiters, ...this.queuedWaiters]) waiter.reject(error);
    this.queued = [];
    this.queuedWaiters = [];
    for (const wake of this.idle.splice(0)) wake();
  }

  /**
   * Creates segment `firstSeq`; with `sync` on, at its full size (a sparse file: see the top of this
   * file; without O_DSYNC there is no journal commit to save). Records go at explicit offsets
   * (Segment.bytes) either way.
   */
  private openSegment(firstSeq: number): number {
    const path = join(this.options.dir, `${String(firstSeq).padStart(16, '0')}${SEGMENT_SUFFIX}`);
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (this.options.sync ? constants.O_DSYNC : 0);
    const fd = openSync(path, flags, 0o600);
    if (this.options.sync) {
      try {
        ftruncateSync(fd, this.options.segmentBytes);
      } catch (error) {
        closeSync(fd);
        throw error;
      }
    }
    if (this.options.sync) syncDir(this.options.dir); // the new file's name must survive a power loss too
    this.segments.push({ path, firstSeq, lastSeq: firstSeq - 1, bytes: 0 });
    return fd;
  }

  private writeQueued(): void {
    const current = this.segments[this.segments.length - 1];
    if (current.bytes >= this.options.segmentBytes) {
      try {
        const old = this.fd;
        this.fd = -1; // never closed twice (the number may belong to another file by then)
        closeSync(old);
        this.fd = this.openSegment(this.queuedWaiters[0].seq);
      } catch (error) {
        // No new segment (a full disk, say): fail what waits, as a failed write does.
        this.fail(error, []);
        return;
      }
    }
    const writing = this.segments[this.segments.length - 1];
    const take = Math.min(this.queued.length, MAX_IOVECS);
    const buffers = this.queued.splice(0, take);
    const waiters = this.queuedWaiters.splice(0, take);
    const bytes = buffers.reduce((sum, b) => sum + b.byteLength, 0);
    this.writing = true;
    trace('wal.write');
    writev(this.fd, buffers, writing.bytes, (error, written) => {
      trace('wal.written');
      this.writing = false;
      if (error === null && written !== bytes) error = Object.assign(new Error(`wal: short write of ${written} of ${bytes} bytes`), { code: 'EIO' });
      if (error !== null) {
        this.fail(error, waiters);
      } else {
        writing.bytes += bytes;
        writing.lastSeq = waiters[waiters.length - 1].seq;
        for (const waiter of waiters) waiter.resolve();
        if (this.queued.length > 0) {
          this.writeQueued();
          return;
        }
      }
      for (const wake of this.idle.splice(0)) wake();
    });
  }
}
