// Snapshot encoding: the whole state as a sequence of independent chunks, each compressed with zlib
// (or, when it does not compress, stored as is followed by its CRC-32), so a chunk can be stored,
// sent and decoded on its own. Chunk kinds, in order:
//   ['header', format, currentRevision, compactedRevision, logBase]   (compactedRevision -1 = never;
//      format 1 wrote 0 for never, as the store had no compact(0) then)
//   ['leases', id, ttl, remainingTtl, id, ttl, remainingTtl, ...]                 (zero or more)
//   versions chunks                                                               (zero or more)
//   ['end', keyCount, versionCount, leaseCount]
// The tagged arrays are msgpack. A versions chunk is binary since format 3: the byte 0x01, then per
// key version (key order, then revision order)
//   flags u8 (1 = a new key, 2 = a lease, 4 = the lease is negative, 8 = a sub-revision)
//   [uvarint key length, key bytes if flags & 1]  uvarint modRevision, createRevision, version
//   [uvarint |lease| if flags & 2]  [uvarint sub if flags & 8]  uvarint value length, value bytes
// with unsigned LEB128 varints of at most 8 bytes (safe integers). Formats 1 and 2 held versions as
// msgpack ['versions', key|null, modRev, createRev, version, lease, value, sub, ...] (null = the key
// of the previous version in the chunk); they are still read. The binary form is written because
// building and packing those arrays was most of the time a snapshot took, and a node takes one
// every --snapshot-count writes.
// Derived state (prev links, the revision log, lease attachments) is rebuilt on restore.

import { crc32, deflateSync, inflateSync } from 'node:zlib';
import { Packr, Unpackr } from 'msgpackr';
import { ByteReader, EtcdError, GrpcCode, assert, invalidArgument, writeUvarint } from '../util/index.ts';
import { copyBytes, toKeyString } from './keys.ts';
import { KeyEntry, Keyspace } from './keyspace.ts';
import type { KeyValue } from './types.ts';

const FORMAT = 3;
/** Versions as msgpack arrays; otherwise as format 3. */
const FORMAT_MSGPACK_VERSIONS = 2;
/** As format 2, but for compactedRevision 0 meaning "never compacted". */
const FORMAT_ZERO_COMPACTED = 1;
const VERSION_FIELDS = 7;
const LEASE_FIELDS = 3;
/** More than one version's encoding takes beyond its key and value (1 + 5 + 3 × 8 + 8 + 8 + 5 = 51). */
const VERSION_OVERHEAD_BYTES = 80;
const LEASE_BYTES = 30;
const CHUNK_OVERHEAD_BYTES = 64;
export const MIN_SNAPSHOT_CHUNK_BYTES = 4096;
/** A chunk whose deflated size is not below this share of its packed size is stored packed. */
const INCOMPRESSIBLE_RATIO = 0.9;
/** After an incompressible chunk, deflate is tried again on every this-many-th chunk, */
const COMPRESSION_PROBE_CHUNKS = 16;
/** on this many bytes of it first. */
const PROBE_SAMPLE_BYTES = 4096;
/** First byte of a zlib stream with a 32 KiB window (every deflated chunk); a packed chunk, a msgpack array, starts with 0x9X, 0xdc or 0xdd. */
const ZLIB_FIRST_BYTE = 0x78;
/** First byte of a binary versions chunk's body: not the first byte of any msgpack array. */
const BINARY_VERSIONS = 0x01;
const CRC_BYTES = 4;
const FLAG_NEW_KEY = 1;
const FLAG_LEASE = 2;
const FLAG_NEGATIVE_LEASE = 4;
const FLAG_SUB = 8;

const packr = new Packr({ useRecords: false, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false, moreTypes: false });

export interface SnapshotSource {
  readonly currentRevision: number;
  readonly compactedRevision: number;
  readonly oldestLoggedRevision: number;
  entries(): Iterable<[string, KeyEntry]>;
  /** How many of the entry's oldest versions belong to the snapshot (later ones were written after it). */
  versionsIn(entry: KeyEntry): number;
  readonly leases: readonly RestoredLease[];
}

export interface RestoredLease {
  id: number;
  ttl: number;
  remainingTtl: number;
}

/** A lazily read snapshot can no longer be completed (a compaction or a restore ran); start a new one. */
export class SnapshotInvalidatedError extends Error {
  override name = 'SnapshotInvalidatedError';
}

export function corruptSnapshot(why: string): EtcdError {
  return new EtcdError(GrpcCode.DATA_LOSS, `tessera: mvcc: corrupt snapshot: ${why}`);
}

/**
 * Encodes lazily, one chunk per `next()`. A chunk exceeds `maxChunkBytes` only when a single key
 * version alone is larger. `checkStillValid` runs whenever the consumer comes back for the next
 * chunk, and throws if the source can no longer describe its state (see MvccStore.snapshotChunks).
 */
export function* encodeSnapshot(src: SnapshotSource, maxChunkBytes: number, checkStillValid: () => void): Generator<Uint8Array> {
  if (!Number.isSafeInteger(maxChunkBytes) || maxChunkBytes < MIN_SNAPSHOT_CHUNK_BYTES) {
    throw invalidArgument(`mvcc: snapshot chunk size must be an integer >= ${MIN_SNAPSHOT_CHUNK_BYTES}`);
  }
  // deflate's worst case adds < 1/1024 plus a few bytes (zlib's deflateBound).
  const budget = maxChunkBytes - (maxChunkBytes >> 10) - CHUNK_OVERHEAD_BYTES;
  const sealer = new ChunkSealer();
  yield sealer.sealPacked(['header', FORMAT, src.currentRevision, src.compactedRevision, src.oldestLoggedRevision]);
  checkStillValid();
  for (const items of leaseChunks(src.leases, budget)) {
    yield sealer.sealPacked(items);
    checkStillValid();
  }
  const writer = new VersionsWriter(src, budget);
  for (let body = writer.next(); body !== null; body = writer.next()) {
    yield sealer.seal(body.buffer, body.bytes);
    checkStillValid();
  }
  yield sealer.sealPacked(['end', writer.keyCount, writer.versionCount, src.leases.length]);
}

/**
 * Turns chunk bodies into chunks: deflated, or stored with their CRC-32 (big-endian; deflate has
 * its own checksum). Chunks that do not compress (random or already-compressed values) are stored,
 * and compression is tried again only every COMPRESSION_PROBE_CHUNKS chunks: deflating them cost
 * the encoding most of its time and saved nothing. chunkBody tells the two apart by the first byte.
 */
class ChunkSealer {
  private compressing = true;
  private sinceProbe = 0;

  /** A msgpack chunk (copied: packr reuses its buffer). */
  sealPacked(items: unknown[]): Uint8Array {
    const packed = packr.pack(items);
    const buffer = Buffer.allocUnsafe(packed.length + CRC_BYTES);
    buffer.set(packed);
    return this.seal(buffer, packed.length);
  }

  /** The chunk of the first `bytes` bytes of `buffer`, which has CRC_BYTES to spare after them. */
  seal(buffer: Buffer, bytes: number): Uint8Array {
    const body = buffer.subarray(0, bytes);
    if (bytes < PROBE_SAMPLE_BYTES) {
      // A small chunk (the header, the end) says nothing about the data: deflated if that helps,
      // and the verdict on the chunks around it left as it is.
      const deflated = deflateSync(body, { level: 1 });
      if (deflated.length < bytes) return new Uint8Array(deflated.buffer, deflated.byteOffset, deflated.byteLength);
    } else if (this.compressing || ++this.sinceProbe >= COMPRESSION_PROBE_CHUNKS) {
      this.sinceProbe = 0;
      // Level 1: snapshots are taken on the serving loop, so speed matters more than the last few
      // percent. After an incompressible chunk the probe deflates a sample, not the whole chunk:
      // deflating 256 KiB of random bytes took as long as encoding 4 MiB of them.
      const probe = this.compressing ? null : deflateSync(body.subarray(0, PROBE_SAMPLE_BYTES), { level: 1 });
      if (probe === null || probe.length < PROBE_SAMPLE_BYTES * INCOMPRESSIBLE_RATIO) {
        const deflated = deflateSync(body, { level: 1 });
        this.compressing = deflated.length < body.length * INCOMPRESSIBLE_RATIO;
        if (this.compressing) return new Uint8Array(deflated.buffer, deflated.byteOffset, deflated.byteLength);
      }
    }
    buffer.writeUInt32BE(crc32(body), bytes);
    const stored = buffer.subarray(0, bytes + CRC_BYTES);
    // A chunk much smaller than its buffer (the last one) gets a buffer of its own.
    const exact = stored.length * 2 < buffer.length ? Buffer.from(stored) : stored;
    return new Uint8Array(exact.buffer, exact.byteOffset, exact.byteLength);
  }
}

function* leaseChunks(leases: readonly RestoredLease[], budget: number): Generator<unknown[]> {
  let items: unknown[] = ['leases'];
  for (const lease of leases) {
    if ((items.length / LEASE_FIELDS + 1) * LEASE_BYTES > budget) {
      yield items;
      items = ['leases'];
    }
    items.push(lease.id, lease.ttl, lease.remainingTtl);
  }
  if (items.length > 1) yield items;
}

/** Writes the versions chunks' bodies straight into their buffers, a chunk per next(). */
class VersionsWriter {
  keyCount = 0;
  versionCount = 0;
  private readonly entries: Iterator<[string, KeyEntry]>;
  /** The entry being written and its next version (a key may span chunks). */
  private entry: KeyEntry | null = null;
  private versionIndex = 0;
  private versionEnd = 0;

  constructor(
    private readonly src: SnapshotSource,
    private readonly budget: number,
  ) {
    this.entries = src.entries()[Symbol.iterator]();
  }

  /** The next chunk's body (the first `bytes` of `buffer`, with CRC_BYTES to spare), or null after the last. */
  next(): { buffer: Buffer; bytes: number } | null {
    let buffer: Buffer | null = null;
    let at = 0;
    let accounted = 0;
    let chunkKey: KeyEntry | null = null;
    for (;;) {
      if (this.entry === null || this.versionIndex === this.versionEnd) {
        if (!this.nextEntry()) break;
      }
      const entry = this.entry as KeyEntry;
      const kv = entry.kvAt(this.versionIndex);
      const size = kv.key.length + kv.value.length + VERSION_OVERHEAD_BYTES;
      if (buffer === null) {
        buffer = Buffer.allocUnsafe(1 + Math.max(this.budget, size) + CRC_BYTES);
        buffer[0] = BINARY_VERSIONS;
        at = 1;
      } else if (accounted + size > this.budget) {
        break;
      }
      at = writeVersion(buffer, at, kv, entry.subAt(this.versionIndex), chunkKey !== entry);
      chunkKey = entry;
      accounted += size;
      this.versionIndex += 1;
      this.versionCount += 1;
    }
    return buffer === null ? null : { buffer, bytes: at };
  }

  private nextEntry(): boolean {
    for (;;) {
      const step = this.entries.next();
      if (step.done === true) {
        this.entry = null;
        return false;
      }
      const entry = step.value[1];
      const count = this.src.versionsIn(entry);
      if (count === 0) continue;
      this.entry = entry;
      this.versionIndex = 0;
      this.versionEnd = count;
      this.keyCount += 1;
      return true;
    }
  }
}

function writeVersion(buffer: Buffer, start: number, kv: KeyValue, sub: number, newKey: boolean): number {
  const lease = kv.lease;
  const flags = (newKey ? FLAG_NEW_KEY : 0) | (lease !== 0 ? FLAG_LEASE : 0) | (lease < 0 ? FLAG_NEGATIVE_LEASE : 0) | (sub !== 0 ? FLAG_SUB : 0);
  let at = start;
  buffer[at++] = flags;
  if (newKey) {
    at = writeUvarint(buffer, at, kv.key.length);
    buffer.set(kv.key, at);
    at += kv.key.length;
  }
  at = writeUvarint(buffer, at, kv.modRevision);
  at = writeUvarint(buffer, at, kv.createRevision);
  at = writeUvarint(buffer, at, kv.version);
  if (lease !== 0) at = writeUvarint(buffer, at, Math.abs(lease));
  if (sub !== 0) at = writeUvarint(buffer, at, sub);
  at = writeUvarint(buffer, at, kv.value.length);
  buffer.set(kv.value, at);
  return at + kv.value.length;
}

/** The msgpack bytes of a chunk: inflated, or a stored chunk's body once its CRC-32 checks out. */
function chunkBody(chunk: Uint8Array): Uint8Array {
  if (chunk[0] === ZLIB_FIRST_BYTE) return inflateSync(chunk);
  if (chunk.length < 5) throw new Error('stored chunk too short');
  const body = chunk.subarray(0, chunk.length - 4);
  const view = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (crc32(body) !== view.readUInt32BE(chunk.length - 4)) throw new Error('stored chunk fails its CRC-32');
  return body;
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value);
}

/** A chunk's contents: a tagged msgpack array, or the body of a binary versions chunk. */
function decodeChunk(chunk: Uint8Array): unknown[] | ByteReader {
  let items: unknown;
  try {
    const body = chunkBody(chunk);
    if (body[0] === BINARY_VERSIONS) return new ByteReader(body, 1, (why) => corruptSnapshot(`versions chunk: ${why}`));
    items = unpackr.unpack(body);
  } catch (error) {
    throw corruptSnapshot(`undecodable chunk (${(error as Error).message})`);
  }
  if (!Array.isArray(items) || typeof items[0] !== 'string') throw corruptSnapshot('chunk is not a tagged array');
  return items;
}

export interface DecodedSnapshot {
  ks: Keyspace;
  leases: RestoredLease[];
}

/**
 * Collects decoded versions into key entries, a key at a time (prev links are derived from the
 * history, see keyspace.ts; fromEntries checks the order).
 */
class EntryCollector {
  readonly entries: KeyEntry[] = [];
  versionCount = 0;
  /** The key being decoded: its entry grows a version at a time. */
  private open: KeyEntry | null = null;
  /** Whether the current chunk has named its key yet. */
  private chunkKey = false;

  startChunk(): void {
    this.chunkKey = false;
  }

  /** One version; `rawKey` null = the key of the version before it in this chunk. */
  add(rawKey: Uint8Array | null, modRevision: number, createRevision: number, version: number, lease: number, value: Uint8Array, sub: number): void {
    let id: string | null = null;
    if (rawKey !== null) {
      if (rawKey.length === 0) throw corruptSnapshot('bad key');
      this.chunkKey = true;
      id = toKeyString(rawKey);
      if (this.open !== null && this.open.id === id) id = null; // the same key continued in a new chunk
      else if (this.open !== null) this.entries.push(this.open);
    }
    if (!this.chunkKey) throw corruptSnapshot('version without a key');
    if (id !== null) {
      const key = copyBytes(rawKey as Uint8Array);
      this.open = new KeyEntry(id, { key, createRevision, modRevision, version, value: copyBytes(value), lease }, sub);
    } else {
      const entry = this.open as KeyEntry;
      entry.push({ key: entry.key, createRevision, modRevision, version, value: copyBytes(value), lease }, sub);
    }
    this.versionCount += 1;
  }

  finish(): void {
    if (this.open !== null) this.entries.push(this.open);
    this.open = null;
  }
}

function readBinaryVersions(reader: ByteReader, into: EntryCollector): void {
  into.startChunk();
  while (!reader.done) {
    const flags = reader.byte();
    if (flags > (FLAG_NEW_KEY | FLAG_LEASE | FLAG_NEGATIVE_LEASE | FLAG_SUB) || (flags & (FLAG_LEASE | FLAG_NEGATIVE_LEASE)) === FLAG_NEGATIVE_LEASE) {
      throw corruptSnapshot(`bad version flags ${flags}`);
    }
    const key = (flags & FLAG_NEW_KEY) !== 0 ? reader.lengthPrefixed() : null;
    const modRevision = reader.uvarint();
    const createRevision = reader.uvarint();
    const version = reader.uvarint();
    const leaseMagnitude = (flags & FLAG_LEASE) !== 0 ? reader.uvarint() : 0;
    if ((flags & FLAG_LEASE) !== 0 && leaseMagnitude === 0) throw corruptSnapshot('lease flag with lease 0');
    const lease = (flags & FLAG_NEGATIVE_LEASE) !== 0 ? -leaseMagnitude : leaseMagnitude;
    const sub = (flags & FLAG_SUB) !== 0 ? reader.uvarint() : 0;
    const value = reader.lengthPrefixed();
    into.add(key, modRevision, createRevision, version, lease, value, sub);
  }
}

function readPackedVersions(items: unknown[], into: EntryCollector): void {
  if ((items.length - 1) % VERSION_FIELDS !== 0) throw corruptSnapshot('bad versions chunk');
  into.startChunk();
  for (let i = 1; i < items.length; i += VERSION_FIELDS) {
    const rawKey = items[i];
    const modRevision = items[i + 1];
    const createRevision = items[i + 2];
    const version = items[i + 3];
    const lease = items[i + 4];
    const value = items[i + 5];
    const sub = items[i + 6];
    if (!isCount(modRevision) || !isCount(createRevision) || !isCount(version) || !isInt(lease) || !isCount(sub)) {
      throw corruptSnapshot('bad version numbers');
    }
    if (!(value instanceof Uint8Array)) throw corruptSnapshot('bad value');
    if (rawKey !== null && !(rawKey instanceof Uint8Array)) throw corruptSnapshot('bad key');
    into.add(rawKey, modRevision, createRevision, version, lease, value, sub);
  }
}

/** Decodes chunks produced by encodeSnapshot (any format); throws DATA_LOSS on anything malformed. */
export function decodeSnapshot(chunks: Iterable<Uint8Array>): DecodedSnapshot {
  const iterator = chunks[Symbol.iterator]();
  const next = (): unknown[] | ByteReader | null => {
    const step = iterator.next();
    if (step.done === true) return null;
    if (!(step.value instanceof Uint8Array)) throw corruptSnapshot('chunk is not bytes');
    return decodeChunk(step.value);
  };
  const header = next();
  if (header === null || header instanceof ByteReader || header[0] !== 'header' || (header[1] !== FORMAT && header[1] !== FORMAT_MSGPACK_VERSIONS && header[1] !== FORMAT_ZERO_COMPACTED)) {
    throw corruptSnapshot('missing or unknown header');
  }
  const [, format, current, storedCompacted, logBase] = header;
  if (!isCount(current) || !isInt(storedCompacted) || storedCompacted < -1 || !isCount(logBase)) throw corruptSnapshot('bad header revisions');
  const compacted = format === FORMAT_ZERO_COMPACTED && storedCompacted === 0 ? -1 : storedCompacted;

  const leases: RestoredLease[] = [];
  const collector = new EntryCollector();
  for (let items = next(); ; items = next()) {
    if (items === null) throw corruptSnapshot('missing end chunk');
    if (items instanceof ByteReader) {
      if (format !== FORMAT) throw corruptSnapshot(`a binary versions chunk in a format ${String(format)} snapshot`);
      readBinaryVersions(items, collector);
    } else if (items[0] === 'leases') {
      if ((items.length - 1) % LEASE_FIELDS !== 0) throw corruptSnapshot('bad lease chunk');
      for (let i = 1; i < items.length; i += LEASE_FIELDS) {
        const id = items[i];
        const ttl = items[i + 1];
        const remainingTtl = items[i + 2];
        if (!isInt(id) || !isInt(ttl) || !isInt(remainingTtl)) throw corruptSnapshot('bad lease');
        leases.push({ id, ttl, remainingTtl });
      }
    } else if (items[0] === 'versions') {
      if (format === FORMAT) throw corruptSnapshot('a msgpack versions chunk in a format 3 snapshot');
      readPackedVersions(items, collector);
    } else if (items[0] === 'end') {
      collector.finish();
      if (items[1] !== collector.entries.length || items[2] !== collector.versionCount || items[3] !== leases.length) {
        throw corruptSnapshot('counts do not match the end chunk');
      }
      if (!iterator.next().done) throw corruptSnapshot('chunks after the end chunk');
      break;
    } else {
      throw corruptSnapshot(`unknown chunk kind ${JSON.stringify(items[0])}`);
    }
  }
  const entries = collector.entries;
  let ks: Keyspace;
  try {
    ks = Keyspace.fromEntries(entries, current, compacted, logBase);
  } catch (error) {
    throw corruptSnapshot(`inconsistent state (${(error as Error).message})`);
  }
  assert(ks.keyCount === entries.length, 'every decoded key is indexed');
  return { ks, leases };
}
