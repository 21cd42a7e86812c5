// On-disk layout: log keys (group, index) as fixed-width big-endian bytes so LMDB's byte order is
// index order, and the log entry value format (type and term in a fixed header, then the payload).
import { assert } from '../util/index.ts';
import type { Entry, EntryType } from '../raft/index.ts';
import { StorageCorruptionError } from './errors.ts';

const TWO_POW_32 = 2 ** 32;

/** Bytes of a log key: group id (u64 BE) then index (u64 BE). */
export const LOG_KEY_BYTES = 16;

/** Bytes before the payload in a log value: type (u8) then term (u64 BE). */
export const ENTRY_HEADER_BYTES = 9;

const TYPE_NORMAL = 0;
const TYPE_CONF = 1;
/** Set in the type byte when the payload is an encryption envelope (encryption.ts). */
export const ENTRY_SEALED_FLAG = 0x80;

function writeU64(target: Buffer, value: number, offset: number): void {
  target.writeUInt32BE(Math.floor(value / TWO_POW_32), offset);
  target.writeUInt32BE(value % TWO_POW_32, offset + 4);
}

function readU64(source: Uint8Array, offset: number): number {
  const view = Buffer.from(source.buffer, source.byteOffset, source.byteLength);
  return view.readUInt32BE(offset) * TWO_POW_32 + view.readUInt32BE(offset + 4);
}

export function logKey(groupId: number, index: number): Buffer {
  const key = Buffer.allocUnsafe(LOG_KEY_BYTES);
  writeU64(key, groupId, 0);
  writeU64(key, index, 8);
  return key;
}

export function logKeyGroup(key: Uint8Array): number {
  assert(key.byteLength === LOG_KEY_BYTES, () => `log key of ${key.byteLength} bytes`);
  return readU64(key, 0);
}

export function logKeyIndex(key: Uint8Array): number {
  assert(key.byteLength === LOG_KEY_BYTES, () => `log key of ${key.byteLength} bytes`);
  return readU64(key, 8);
}

/** Bytes `encodeEntry` produces for `entry`. */
export function encodedEntryBytes(entry: Entry): number {
  return ENTRY_HEADER_BYTES + entry.data.byteLength;
}

/** The index lives in the key, so only type, term and payload are stored. */
export function encodeEntry(entry: Entry): Buffer {
  const value = Buffer.allocUnsafeSlow(encodedEntryBytes(entry));
  writeEntryHeader(value, entry, false);
  value.set(entry.data, ENTRY_HEADER_BYTES);
  return value;
}

/** Writes the header (type, term) of `entry` into `target`; `sealed` marks an encrypted payload. */
export function writeEntryHeader(target: Buffer, entry: Entry, sealed: boolean): void {
  assert(target.byteLength >= ENTRY_HEADER_BYTES, 'entry header room');
  target[0] = (entry.type === 'conf' ? TYPE_CONF : TYPE_NORMAL) | (sealed ? ENTRY_SEALED_FLAG : 0);
  writeU64(target, entry.term, 1);
}

/** True when the stored entry's payload is an encryption envelope. */
export function isSealedEntry(index: number, value: Uint8Array): boolean {
  if (value.byteLength < ENTRY_HEADER_BYTES) throw new StorageCorruptionError(`log entry ${index} is ${value.byteLength} bytes`);
  return (value[0] & ENTRY_SEALED_FLAG) !== 0;
}

/** The entry's type from its stored type byte (the sealed flag ignored). */
export function decodeEntryType(index: number, value: Uint8Array): EntryType {
  return decodeType(index, value[0] & ~ENTRY_SEALED_FLAG);
}

/** Decodes a plaintext entry without copying the payload: `data` is a view into `value`. */
export function decodeEntry(index: number, value: Uint8Array): Entry {
  if (value.byteLength < ENTRY_HEADER_BYTES) throw new StorageCorruptionError(`log entry ${index} is ${value.byteLength} bytes`);
  assert(!isSealedEntry(index, value), () => `log entry ${index} is encrypted; decode it through AtRestCodec`);
  const type = decodeType(index, value[0]);
  const term = readU64(value, 1);
  const data = new Uint8Array(value.buffer, value.byteOffset + ENTRY_HEADER_BYTES, value.byteLength - ENTRY_HEADER_BYTES);
  return { term, index, type, data };
}

/** The term of an encoded entry, without touching its payload. */
export function decodeEntryTerm(index: number, value: Uint8Array): number {
  if (value.byteLength < ENTRY_HEADER_BYTES) throw new StorageCorruptionError(`log entry ${index} is ${value.byteLength} bytes`);
  return readU64(value, 1);
}

function decodeType(index: number, code: number): EntryType {
  if (code === TYPE_NORMAL) return 'normal';
  if (code === TYPE_CONF) return 'conf';
  throw new StorageCorruptionError(`log entry ${index} has unknown type ${code}`);
}
