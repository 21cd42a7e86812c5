// Encryption at rest: log entry payloads and snapshot chunks sealed in AES-256-GCM envelopes
// (security/keyring.ts) under the newest key of the node's key file. Each envelope is bound to
// where it lives (group, index, entry header / snapshot index, chunk) through its associated data,
// so sealed values cannot be swapped around on disk. Terms stay in clear: recovery reads them
// without the key, and they reveal nothing about values.
import { DecryptionError } from '../security/index.ts';
import type { Keyring } from '../security/index.ts';
import type { Entry } from '../raft/index.ts';
import { assert } from '../util/index.ts';
import {
  ENTRY_HEADER_BYTES,
  decodeEntry,
  decodeEntryTerm,
  decodeEntryType,
  encodeEntry,
  encodedEntryBytes,
  isSealedEntry,
  writeEntryHeader,
} from './codec.ts';
import type { StorageDbs } from './dbs.ts';
import { StorageCorruptionError, StorageEncryptionError } from './errors.ts';

/** Where the node records which keys sealed its data: `[{ id, check }]`, `check` a sealed canary. */
export const ENCRYPTION_RECORD_KEY = ['node', 'encryptionKeys'];
const CHECK_PLAINTEXT = Buffer.from('tessera encryption key check v1');

export interface KeyRecord {
  id: string;
  check: Uint8Array;
}

function u64(value: number): Buffer {
  const out = Buffer.allocUnsafe(8);
  out.writeUInt32BE(Math.floor(value / 2 ** 32), 0);
  out.writeUInt32BE(value % 2 ** 32, 4);
  return out;
}

function entryAad(groupId: number, index: number, header: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from('tessera/log/v1'), u64(groupId), u64(index), header]);
}

function chunkAad(groupId: number, snapshotIndex: number, chunk: number): Buffer {
  return Buffer.concat([Buffer.from('tessera/snapshot/v1'), u64(groupId), u64(snapshotIndex), u64(chunk)]);
}

function checkAad(id: string): Buffer {
  return Buffer.from(`tessera/key-check/v1/${id}`);
}

/** Seals what storage writes when a key ring is set, and opens what it reads (sealed or not). */
export class AtRestCodec {
  /** Replaced (never set or cleared) when the key file is reloaded: NodeStorage.setKeyring. */
  constructor(public keyring: Keyring | null) {}

  /** True when new writes are sealed. */
  get sealing(): boolean {
    return this.keyring !== null;
  }

  /** Bytes encodeEntry() produces. */
  entryBytes(entry: Entry): number {
    const plain = encodedEntryBytes(entry);
    return this.keyring === null ? plain : ENTRY_HEADER_BYTES + this.keyring.sealedBytes(entry.data.byteLength);
  }

  encodeEntry(groupId: number, entry: Entry): Buffer {
    if (this.keyring === null) return encodeEntry(entry);
    const header = Buffer.allocUnsafe(ENTRY_HEADER_BYTES);
    writeEntryHeader(header, entry, true);
    const envelope = this.keyring.seal(entry.data, entryAad(groupId, entry.index, header));
    return Buffer.concat([header, envelope]);
  }

  /** Decodes a stored entry; a sealed payload is decrypted (a copy), a plain one is a view. */
  decodeEntry(groupId: number, index: number, value: Uint8Array): Entry {
    if (!isSealedEntry(index, value)) return decodeEntry(index, value);
    const header = value.subarray(0, ENTRY_HEADER_BYTES);
    const data = this.open(value.subarray(ENTRY_HEADER_BYTES), entryAad(groupId, index, header), `log entry ${index} of group ${groupId}`);
    return { index, term: decodeEntryTerm(index, value), type: decodeEntryType(index, value), data };
  }

  sealChunk(groupId: number, snapshotIndex: number, chunk: number, bytes: Uint8Array): Uint8Array {
    if (this.keyring === null) return bytes;
    return this.keyring.seal(bytes, chunkAad(groupId, snapshotIndex, chunk));
  }

  openChunk(groupId: number, snapshotIndex: number, chunk: number, value: Uint8Array, sealed: boolean): Uint8Array {
    if (!sealed) return value;
    return this.open(value, chunkAad(groupId, snapshotIndex, chunk), `snapshot ${snapshotIndex} chunk ${chunk} of group ${groupId}`);
  }

  private open(envelope: Uint8Array, aad: Uint8Array, what: string): Uint8Array {
    if (this.keyring === null) {
      throw new StorageEncryptionError(`${what} is encrypted at rest; open the data directory with its key file (--encryption-key-file)`);
    }
    try {
      return this.keyring.open(envelope, aad);
    } catch (error) {
      if (error instanceof DecryptionError) throw new StorageEncryptionError(`cannot decrypt ${what}: ${error.message}`);
      throw error;
    }
  }
}

/** The keys recorded as having sealed data in this environment. */
export function readKeyRecords(dbs: StorageDbs): KeyRecord[] {
  const value: unknown = dbs.state.get(ENCRYPTION_RECORD_KEY);
  if (value === undefined) return [];
  const ok =
    Array.isArray(value) &&
    value.every((r: unknown) => typeof r === 'object' && r !== null && typeof (r as KeyRecord).id === 'string' && (r as KeyRecord).check instanceof Uint8Array);
  if (!ok) throw new StorageCorruptionError(`bad encryption key record ${JSON.stringify(value)}`);
  return value as KeyRecord[];
}

/** A record proving later that a key file holds the same key under `id`. */
export function keyRecord(keyring: Keyring): KeyRecord {
  return { id: keyring.newest.id, check: keyring.seal(CHECK_PLAINTEXT, checkAad(keyring.newest.id)) };
}

/**
 * Checks at open that the key ring can read everything this environment holds: an encrypted
 * environment needs a key ring, and every key that ever sealed data here must be in it, and be the
 * same key (its check record opens). Returns the records, plus the newest key's when it is new.
 */
export function verifyKeys(dbs: StorageDbs, keyring: Keyring | null): { records: KeyRecord[]; addNewest: boolean } {
  const records = readKeyRecords(dbs);
  if (keyring === null) {
    if (records.length > 0) {
      throw new StorageEncryptionError(
        `this data directory is encrypted at rest (keys: ${records.map((r) => r.id).join(', ')}); start with --encryption-key-file naming a key file that holds them`,
      );
    }
    return { records, addNewest: false };
  }
  for (const record of records) {
    if (!keyring.has(record.id)) {
      throw new StorageEncryptionError(
        `data here was sealed under key "${record.id}", which the key file does not hold (it has: ${keyring.ids.join(', ')}); keep old keys in the file until \`tessera storage re-encrypt\` has run`,
      );
    }
    try {
      const opened = keyring.open(record.check, checkAad(record.id));
      assert(opened.equals(CHECK_PLAINTEXT), 'key check plaintext');
    } catch (error) {
      if (!(error instanceof DecryptionError)) throw error;
      throw new StorageEncryptionError(`key "${record.id}" in the key file is not the key that sealed this data directory (wrong key under that id)`);
    }
  }
  return { records, addNewest: !records.some((r) => r.id === keyring.newest.id) };
}
