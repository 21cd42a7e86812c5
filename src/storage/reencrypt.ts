// `tessera storage re-encrypt`: rewrites a stopped node's whole environment with every log payload
// and snapshot chunk sealed under the newest key (plaintext data gets sealed too). It copies into a
// fresh environment and swaps directories, so pages that held old ciphertext or plaintext leave
// with the old file instead of lingering in LMDB's free list.
import { existsSync, renameSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Key } from 'lmdb';
import type { Keyring } from '../security/index.ts';
import { assert } from '../util/index.ts';
import { logKeyGroup, logKeyIndex } from './codec.ts';
import { openDbs } from './dbs.ts';
import { recoverWal, WAL_DIR } from './wal.ts';
import type { StorageDbs } from './dbs.ts';
import { AtRestCodec, ENCRYPTION_RECORD_KEY, keyRecord, verifyKeys } from './encryption.ts';
import { StorageError } from './errors.ts';
import { acquireLock } from './lock.ts';
import { readSnapshotRecord } from './records.ts';

/** The environment being built, and the old one between the two renames of the swap (no dot: lmdb-js takes a path with an extension for a file, not a directory). */
export const REENCRYPT_NEW_DIR = 'db-reencrypt-new';
export const REENCRYPT_OLD_DIR = 'db-reencrypt-old';
/** Writes per batch (one LMDB transaction each) and bytes per batch: bounds memory while copying. */
const BATCH_WRITES = 10_000;
const BATCH_BYTES = 64 * 1024 * 1024;
const GRPC_FAILED_PRECONDITION = 9;

export interface ReencryptOptions {
  dataDir: string;
  keyring: Keyring;
}

export interface ReencryptResult {
  keyId: string;
  entries: number;
  chunks: number;
  records: number;
}

/**
 * Rewrites `<dataDir>/db` under the newest key. The node must be stopped: the data directory's lock
 * is taken, so a running node makes this fail with StorageLockedError. Safe to run again after an
 * interruption (an unfinished copy is discarded; an unfinished swap is undone first).
 */
export async function reencryptDataDir(options: ReencryptOptions): Promise<ReencryptResult> {
  const dataDir = resolve(options.dataDir);
  if (!existsSync(join(dataDir, 'db')) && !existsSync(join(dataDir, REENCRYPT_OLD_DIR))) {
    throw new StorageError(`storage: no data in ${dataDir} (expected ${join(dataDir, 'db')})`, GRPC_FAILED_PRECONDITION);
  }
  const releaseLock = acquireLock(join(dataDir, 'db.lock'));
  try {
    const dbPath = join(dataDir, 'db');
    const newPath = join(dataDir, REENCRYPT_NEW_DIR);
    const oldPath = join(dataDir, REENCRYPT_OLD_DIR);
    if (!existsSync(dbPath) && existsSync(oldPath)) renameSync(oldPath, dbPath); // undo a half-done swap
    rmSync(oldPath, { recursive: true, force: true });
    rmSync(newPath, { recursive: true, force: true });
    const source = openDbs({ path: dbPath, sync: true });
    let target: StorageDbs | null = null;
    let result: ReencryptResult;
    try {
      recoverWal(source, join(dataDir, WAL_DIR)); // what a crash left in the write-ahead log goes into the copy too
      verifyKeys(source, options.keyring);
      target = openDbs({ path: newPath, sync: true });
      result = await copyAll(source, target, options.keyring);
    } finally {
      await source.env.close();
      if (target !== null) await target.env.close();
    }
    renameSync(dbPath, oldPath);
    renameSync(newPath, dbPath);
    rmSync(oldPath, { recursive: true, force: true });
    return result;
  } finally {
    releaseLock();
  }
}

/** Batches writes so one batch is one LMDB transaction, awaited before the next. */
class BatchWriter {
  private pending: Promise<boolean>[] = [];
  private bytes = 0;

  async add(write: Promise<boolean>, bytes: number): Promise<void> {
    this.pending.push(write);
    this.bytes += bytes;
    if (this.pending.length >= BATCH_WRITES || this.bytes >= BATCH_BYTES) await this.flush();
  }

  async flush(): Promise<void> {
    const writes = this.pending;
    this.pending = [];
    this.bytes = 0;
    const results = await Promise.all(writes);
    assert(results.every((ok) => ok), 'an unconditional LMDB write reports success');
  }
}

async function copyAll(source: StorageDbs, target: StorageDbs, keyring: Keyring): Promise<ReencryptResult> {
  const reader = new AtRestCodec(keyring);
  const writer = new BatchWriter();
  const result: ReencryptResult = { keyId: keyring.newest.id, entries: 0, chunks: 0, records: 0 };
  const snapshots: { group: number; index: number; chunkCount: number; sealed: boolean }[] = [];
  for (const { key, value } of source.state.getRange({})) {
    if (sameKey(key, ENCRYPTION_RECORD_KEY)) continue;
    let copy: unknown = value;
    if (Array.isArray(key) && key[1] === 'snapshot' && typeof key[0] === 'number') {
      const record = readSnapshotRecord(key[0], value);
      snapshots.push({ group: key[0], index: record.index, chunkCount: record.chunkCount, sealed: record.sealed });
      copy = { ...record, sealed: true };
    }
    await writer.add(target.state.put(key as Key[], copy), 256);
    result.records++;
  }
  for (const { key, value } of source.log.getRange({})) {
    const group = logKeyGroup(key);
    const entry = reader.decodeEntry(group, logKeyIndex(key), value);
    const sealed = reader.encodeEntry(group, entry);
    await writer.add(target.log.put(key, sealed), sealed.byteLength);
    result.entries++;
  }
  for (const snap of snapshots) {
    let chunk = 0;
    for (const { value } of source.chunks.getRange({ start: [snap.group, snap.index, 0], end: [snap.group, snap.index, snap.chunkCount] })) {
      const plain = reader.openChunk(snap.group, snap.index, chunk, value, snap.sealed);
      const sealed = reader.sealChunk(snap.group, snap.index, chunk, plain);
      await writer.add(target.chunks.put([snap.group, snap.index, chunk], Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength)), sealed.byteLength);
      chunk++;
      result.chunks++;
    }
  }
  for (const { key, value } of source.meta.getRange({})) await writer.add(target.meta.put(key, value), value.byteLength);
  await writer.add(target.state.put(ENCRYPTION_RECORD_KEY, [keyRecord(keyring)]), 256);
  await writer.flush();
  await target.env.flushed;
  return result;
}

function sameKey(a: unknown, b: readonly unknown[]): boolean {
  return Array.isArray(a) && a.length === b.length && a.every((part, i) => part === b[i]);
}
