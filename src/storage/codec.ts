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
  value[0] = entry.type === 'conf' ? TYPE_CONF : TYPE_NORMAL;
  writeU64(value, entry.term, 1);
  value.set(entry.data, ENTRY_HEADER_BYTES);
  return value;
}

/** Decodes without copying the payload: `data` is a view into `value`. */
export function decodeEntry(index: number, value: Uint8Array): Entry {
  if (value.byteLength < ENTRY_HEADER_BYTES) throw new StorageCorruptionError(`log entry ${index} is ${value.byteLength} bytes`);
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
