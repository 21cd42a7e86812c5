// At-rest encryption primitives: AES-256-GCM envelopes under named keys read from a key file. The
// newest key (the last line) seals new data; every key in the file opens data sealed under it.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, statSync } from 'node:fs';
import { assert } from '../util/index.ts';
import { DecryptionError, KeyFileError } from './errors.ts';

/** AES-256: 32-byte keys. */
export const KEY_BYTES = 32;
/** GCM's standard 96-bit nonce, random per envelope (2^32 envelopes per key keep collisions negligible). */
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
/** First byte of every envelope: the format (AES-256-GCM, layout below). */
export const ENVELOPE_FORMAT_AES256GCM = 0x01;
/** Most keys in one key file (old keys are dropped after `tessera storage re-encrypt`). */
export const MAX_KEYS = 64;
/** Key ids: 1..64 characters from [A-Za-z0-9._-], stored in every envelope. */
export const KEY_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
/** Envelope bytes beyond the plaintext for a key id of `idLength` characters. */
export function envelopeOverheadBytes(idLength: number): number {
  return 2 + idLength + NONCE_BYTES + TAG_BYTES;
}

export interface EncryptionKey {
  readonly id: string;
  readonly key: Buffer;
}

/**
 * Keys oldest first; the last one seals. Envelope layout:
 * `format u8 (0x01) | id length u8 | id (ASCII) | nonce (12) | ciphertext | GCM tag (16)`.
 * The caller's `aad` (associated data: where the value lives) is authenticated but not stored, so
 * a sealed value moved to another place fails to open.
 */
export class Keyring {
  readonly keys: readonly EncryptionKey[];
  private readonly byId: ReadonlyMap<string, EncryptionKey>;
  private readonly newestIdBytes: Buffer;

  constructor(keys: readonly EncryptionKey[]) {
    if (keys.length === 0) throw new KeyFileError('a key ring needs at least one key');
    if (keys.length > MAX_KEYS) throw new KeyFileError(`at most ${MAX_KEYS} keys, got ${keys.length}`);
    const byId = new Map<string, EncryptionKey>();
    for (const k of keys) {
      if (!KEY_ID_PATTERN.test(k.id)) throw new KeyFileError(`bad key id "${k.id}" (1-64 of A-Z a-z 0-9 . _ -)`);
      if (k.key.length !== KEY_BYTES) throw new KeyFileError(`key "${k.id}" has ${k.key.length} bytes, expected ${KEY_BYTES}`);
      if (byId.has(k.id)) throw new KeyFileError(`key id "${k.id}" appears twice`);
      byId.set(k.id, k);
    }
    this.keys = [...keys];
    this.byId = byId;
    this.newestIdBytes = Buffer.from(this.newest.id, 'ascii');
  }

  /** The key that seals new data. */
  get newest(): EncryptionKey {
    return this.keys[this.keys.length - 1];
  }

  get ids(): string[] {
    return this.keys.map((k) => k.id);
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  /** Envelope bytes for `plainBytes` of plaintext under the newest key. */
  sealedBytes(plainBytes: number): number {
    return plainBytes + envelopeOverheadBytes(this.newestIdBytes.length);
  }

  /** Seals `plain` under the newest key, bound to `aad`. */
  seal(plain: Uint8Array, aad: Uint8Array): Buffer {
    const idBytes = this.newestIdBytes;
    const out = Buffer.allocUnsafe(this.sealedBytes(plain.byteLength));
    out[0] = ENVELOPE_FORMAT_AES256GCM;
    out[1] = idBytes.length;
    idBytes.copy(out, 2);
    const nonceAt = 2 + idBytes.length;
    const nonce = randomBytes(NONCE_BYTES);
    nonce.copy(out, nonceAt);
    const cipher = createCipheriv('aes-256-gcm', this.newest.key, nonce);
    cipher.setAAD(aad);
    const bodyAt = nonceAt + NONCE_BYTES;
    let at = bodyAt + cipher.update(plain).copy(out, bodyAt);
    at += cipher.final().copy(out, at);
    cipher.getAuthTag().copy(out, at);
    assert(at + TAG_BYTES === out.length, 'envelope length');
    return out;
  }

  /** Opens an envelope made by seal() with the same `aad`; throws DecryptionError otherwise. */
  open(envelope: Uint8Array, aad: Uint8Array): Buffer {
    const view = Buffer.from(envelope.buffer, envelope.byteOffset, envelope.byteLength);
    const id = envelopeKeyId(view);
    const key = this.byId.get(id);
    if (key === undefined) {
      throw new DecryptionError(`data is sealed under key "${id}", which the key file does not hold (it has: ${this.ids.join(', ')})`);
    }
    const nonceAt = 2 + view[1];
    const bodyAt = nonceAt + NONCE_BYTES;
    const tagAt = view.length - TAG_BYTES;
    const decipher = createDecipheriv('aes-256-gcm', key.key, view.subarray(nonceAt, bodyAt));
    decipher.setAAD(aad);
    decipher.setAuthTag(view.subarray(tagAt));
    try {
      const head = decipher.update(view.subarray(bodyAt, tagAt));
      const tail = decipher.final();
      return tail.length === 0 ? head : Buffer.concat([head, tail]);
    } catch {
      throw new DecryptionError(`key "${id}" does not open this data (a different key under the same id, or altered bytes)`);
    }
  }
}

/** The key id an envelope names; throws DecryptionError when the bytes are not an envelope. */
export function envelopeKeyId(envelope: Uint8Array): string {
  const view = Buffer.from(envelope.buffer, envelope.byteOffset, envelope.byteLength);
  if (view.length < 2 || view[0] !== ENVELOPE_FORMAT_AES256GCM) {
    throw new DecryptionError(`not an encryption envelope (format byte ${view[0] ?? 'missing'})`);
  }
  const idLength = view[1];
  if (idLength === 0 || view.length < envelopeOverheadBytes(idLength)) throw new DecryptionError('truncated encryption envelope');
  return view.toString('ascii', 2, 2 + idLength);
}

/**
 * Re-seals one envelope under the newest key (the unit of `tessera storage re-encrypt`). An
 * envelope already under the newest key is returned as is.
 */
export function reseal(keyring: Keyring, envelope: Uint8Array, aad: Uint8Array): Uint8Array {
  if (envelopeKeyId(envelope) === keyring.newest.id) {
    keyring.open(envelope, aad); // still proves it opens
    return envelope;
  }
  return keyring.seal(keyring.open(envelope, aad), aad);
}

/**
 * Key file format: one key per line, `<id>:<base64 of 32 bytes>`, oldest first; the last line is
 * the newest key and seals new data. Blank lines and lines starting with `#` are ignored.
 */
export function parseKeyFile(text: string, path = 'key file'): Keyring {
  const keys: EncryptionKey[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    const where = `${path} line ${i + 1}`;
    if (colon <= 0) throw new KeyFileError(`${where}: expected "<id>:<base64 key>"`);
    const id = line.slice(0, colon);
    const encoded = line.slice(colon + 1).trim();
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) throw new KeyFileError(`${where}: the key is not base64`);
    const key = Buffer.from(encoded, 'base64');
    if (key.length !== KEY_BYTES) {
      throw new KeyFileError(`${where}: key "${id}" is ${key.length} bytes, expected ${KEY_BYTES} (make one with: openssl rand -base64 32)`);
    }
    if (!KEY_ID_PATTERN.test(id)) throw new KeyFileError(`${where}: bad key id "${id}" (1-64 of A-Z a-z 0-9 . _ -)`);
    keys.push({ id, key });
  }
  if (keys.length === 0) throw new KeyFileError(`${path} holds no keys`);
  try {
    return new Keyring(keys);
  } catch (error) {
    throw new KeyFileError(`${path}: ${(error as Error).message}`);
  }
}

/** Reads a key file; refuses one that group or others may read (as ssh does for private keys). */
export function readKeyFile(path: string): Keyring {
  let mode: number;
  let text: string;
  try {
    mode = statSync(path).mode;
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new KeyFileError(`cannot read key file ${path}: ${(error as Error).message}`);
  }
  if ((mode & 0o077) !== 0) {
    throw new KeyFileError(`key file ${path} is accessible by group or others (mode ${(mode & 0o777).toString(8)}); run: chmod 600 ${path}`);
  }
  return parseKeyFile(text, path);
}

/**
 * Appends a new random key (it becomes the newest) to `path`, creating the file with mode 0600.
 * Returns its id: `id` if given, else `key-<n>` after the existing keys.
 */
export function addKeyToFile(path: string, id?: string): string {
  const existing = existsSync(path) ? readKeyFile(path) : null;
  const newId = id ?? `key-${(existing?.keys.length ?? 0) + 1}`;
  if (!KEY_ID_PATTERN.test(newId)) throw new KeyFileError(`bad key id "${newId}" (1-64 of A-Z a-z 0-9 . _ -)`);
  if (existing?.has(newId)) throw new KeyFileError(`${path} already has a key "${newId}"`);
  if (existing !== null && existing.keys.length >= MAX_KEYS) {
    throw new KeyFileError(`${path} already holds ${MAX_KEYS} keys; re-encrypt and drop old ones first`);
  }
  const needsNewline = existing !== null && !readFileSync(path, 'utf8').endsWith('\n');
  const header = existing === null ? '# Tessera encryption-at-rest keys: <id>:<base64 32 bytes>, oldest first; the last one seals new data.\n' : '';
  appendFileSync(path, `${needsNewline ? '\n' : ''}${header}${newId}:${randomBytes(KEY_BYTES).toString('base64')}\n`, { mode: 0o600 });
  return newId;
}
