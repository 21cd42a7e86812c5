// Snapshot encoding: the whole state as a sequence of independent chunks, each one msgpack array
// compressed with zlib (or, when it does not compress, stored as is followed by its CRC-32), so a
// chunk can be stored, sent and decoded on its own. Chunk kinds, in order:
//   ['header', format, currentRevision, compactedRevision, logBase]   (compactedRevision -1 = never;
//      format 1 wrote 0 for never, as the store had no compact(0) then)
//   ['leases', id, ttl, remainingTtl, id, ttl, remainingTtl, ...]                 (zero or more)
//   ['versions', key|null, modRev, createRev, version, lease, value, sub, ...]   (zero or more;
//      key order, then revision order; null = same key as the previous version in this chunk)
//   ['end', keyCount, versionCount, leaseCount]
// Derived state (prev links, the revision log, lease attachments) is rebuilt on restore.

import { crc32, deflateSync, inflateSync } from 'node:zlib';
import { Packr, Unpackr } from 'msgpackr';
import { EtcdError, GrpcCode, assert, invalidArgument } from '../util/index.ts';
import { copyBytes, toKeyString } from './keys.ts';
import { KeyEntry, Keyspace } from './keyspace.ts';

const FORMAT = 2;
/** The previous format: identical but for compactedRevision 0 meaning "never compacted". */
const FORMAT_ZERO_COMPACTED = 1;
const VERSION_FIELDS = 7;
const LEASE_FIELDS = 3;
/** Upper bound of one version's msgpack size beyond its key and value bytes. */
const VERSION_OVERHEAD_BYTES = 80;
const LEASE_BYTES = 30;
const CHUNK_OVERHEAD_BYTES = 64;
export const MIN_SNAPSHOT_CHUNK_BYTES = 4096;
/** A chunk whose deflated size is not below this share of its packed size is stored packed. */
const INCOMPRESSIBLE_RATIO = 0.9;
/** After an incompressible chunk, deflate is tried again on every this-many-th chunk. */
const COMPRESSION_PROBE_CHUNKS = 16;
/** First byte of a zlib stream with a 32 KiB window (every deflated chunk); a packed chunk, a msgpack array, starts with 0x9X, 0xdc or 0xdd. */
const ZLIB_FIRST_BYTE = 0x78;

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
  // Chunks that do not compress (random or already-compressed values) are stored as packed, and
  // compression is tried again only every COMPRESSION_PROBE_CHUNKS chunks: deflating them cost the
  // encoding loop most of its time and saved nothing. decodeChunk tells the two apart by the first byte.
  let compressing = true;
  let sinceProbe = 0;
  for (const items of chunkItems(src, maxChunkBytes)) {
    const packed = packr.pack(items);
    let chunk: Uint8Array | null = null;
    if (compressing || ++sinceProbe >= COMPRESSION_PROBE_CHUNKS) {
      sinceProbe = 0;
      // Level 1: snapshots are taken on the serving loop, so speed matters more than the last few percent.
      const deflated = deflateSync(packed, { level: 1 });
      compressing = deflated.length < packed.length * INCOMPRESSIBLE_RATIO;
      if (compressing) chunk = new Uint8Array(deflated.buffer, deflated.byteOffset, deflated.byteLength);
    }
    yield chunk ?? storedChunk(packed);
    checkStillValid();
  }
}

/** A chunk stored uncompressed: the packed bytes (copied: packr reuses its buffer) and their CRC-32, big-endian (deflate has its own checksum). */
function storedChunk(packed: Uint8Array): Uint8Array {
  const chunk = Buffer.allocUnsafe(packed.length + 4);
  chunk.set(packed);
  chunk.writeUInt32BE(crc32(packed), packed.length);
  return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
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

/** The chunks' contents, each at most `maxChunkBytes` once packed and compressed (see above). */
function* chunkItems(src: SnapshotSource, maxChunkBytes: number): Generator<unknown[]> {
  // deflate's worst case adds < 1/1024 plus a few bytes (zlib's deflateBound).
  const rawBudget = maxChunkBytes - (maxChunkBytes >> 10) - CHUNK_OVERHEAD_BYTES;
  yield ['header', FORMAT, src.currentRevision, src.compactedRevision, src.oldestLoggedRevision];

  let items: unknown[] = ['leases'];
  for (const lease of src.leases) {
    if ((items.length / LEASE_FIELDS + 1) * LEASE_BYTES > rawBudget) {
      yield items;
      items = ['leases'];
    }
    items.push(lease.id, lease.ttl, lease.remainingTtl);
  }
  if (items.length > 1) yield items;

  let keyCount = 0;
  let versionCount = 0;
  let rawBytes = 0;
  let lastId: string | null = null;
  items = ['versions'];
  for (const [id, entry] of src.entries()) {
    const count = src.versionsIn(entry);
    if (count === 0) continue;
    keyCount += 1;
    for (let i = 0; i < count; i++) {
      const kv = entry.kvAt(i);
      const size = kv.key.length + kv.value.length + VERSION_OVERHEAD_BYTES;
      if (items.length > 1 && rawBytes + size > rawBudget) {
        yield items;
        items = ['versions'];
        rawBytes = 0;
        lastId = null;
      }
      items.push(lastId === id ? null : kv.key, kv.modRevision, kv.createRevision, kv.version, kv.lease, kv.value, entry.subAt(i));
      rawBytes += size;
      lastId = id;
      versionCount += 1;
    }
  }
  if (items.length > 1) yield items;
  yield ['end', keyCount, versionCount, src.leases.length];
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value);
}

function decodeChunk(chunk: Uint8Array): unknown[] {
  let items: unknown;
  try {
    items = unpackr.unpack(chunkBody(chunk));
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

/** Decodes chunks produced by encodeSnapshot; throws DATA_LOSS on anything malformed. */
export function decodeSnapshot(chunks: Iterable<Uint8Array>): DecodedSnapshot {
  const iterator = chunks[Symbol.iterator]();
  const next = (): unknown[] | null => {
    const step = iterator.next();
    if (step.done === true) return null;
    if (!(step.value instanceof Uint8Array)) throw corruptSnapshot('chunk is not bytes');
    return decodeChunk(step.value);
  };
  const header = next();
  if (header === null || header[0] !== 'header' || (header[1] !== FORMAT && header[1] !== FORMAT_ZERO_COMPACTED)) {
    throw corruptSnapshot('missing or unknown header');
  }
  const [, format, current, storedCompacted, logBase] = header;
  if (!isCount(current) || !isInt(storedCompacted) || storedCompacted < -1 || !isCount(logBase)) throw corruptSnapshot('bad header revisions');
  const compacted = format === FORMAT_ZERO_COMPACTED && storedCompacted === 0 ? -1 : storedCompacted;

  const leases: RestoredLease[] = [];
  const entries: KeyEntry[] = [];
  let versionCount = 0;
  // The key being decoded: its entry grows a version at a time (prev links are derived from the
  // history, see keyspace.ts; fromEntries checks the order).
  let open: KeyEntry | null = null;
  for (let items = next(); ; items = next()) {
    if (items === null) throw corruptSnapshot('missing end chunk');
    if (items[0] === 'leases') {
      if ((items.length - 1) % LEASE_FIELDS !== 0) throw corruptSnapshot('bad lease chunk');
      for (let i = 1; i < items.length; i += LEASE_FIELDS) {
        const id = items[i];
        const ttl = items[i + 1];
        const remainingTtl = items[i + 2];
        if (!isInt(id) || !isInt(ttl) || !isInt(remainingTtl)) throw corruptSnapshot('bad lease');
        leases.push({ id, ttl, remainingTtl });
      }
    } else if (items[0] === 'versions') {
      if ((items.length - 1) % VERSION_FIELDS !== 0) throw corruptSnapshot('bad versions chunk');
      let chunkKey = false;
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
        let id: string | null = null;
        if (rawKey !== null) {
          if (!(rawKey instanceof Uint8Array) || rawKey.length === 0) throw corruptSnapshot('bad key');
          chunkKey = true;
          id = toKeyString(rawKey);
          if (open !== null && open.id === id) id = null; // the same key continued in a new chunk
          else if (open !== null) entries.push(open);
        }
        if (!chunkKey) throw corruptSnapshot('version without a key');
        if (id !== null) {
          const key = copyBytes(rawKey as Uint8Array);
          open = new KeyEntry(id, { key, createRevision, modRevision, version, value: copyBytes(value), lease }, sub);
        } else {
          const entry = open as KeyEntry;
          entry.push({ key: entry.key, createRevision, modRevision, version, value: copyBytes(value), lease }, sub);
        }
        versionCount += 1;
      }
    } else if (items[0] === 'end') {
      if (open !== null) entries.push(open);
      if (items[1] !== entries.length || items[2] !== versionCount || items[3] !== leases.length) {
        throw corruptSnapshot('counts do not match the end chunk');
      }
      if (!iterator.next().done) throw corruptSnapshot('chunks after the end chunk');
      break;
    } else {
      throw corruptSnapshot(`unknown chunk kind ${JSON.stringify(items[0])}`);
    }
  }
  let ks: Keyspace;
  try {
    ks = Keyspace.fromEntries(entries, current, compacted, logBase);
  } catch (error) {
    throw corruptSnapshot(`inconsistent state (${(error as Error).message})`);
  }
  assert(ks.keyCount === entries.length, 'every decoded key is indexed');
  return { ks, leases };
}
