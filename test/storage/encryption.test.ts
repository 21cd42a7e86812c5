// Encryption at rest on real LMDB files: no value readable in the data files, old keys keep
// working after a rotation, a missing or wrong key is a clear error, and re-encrypt leaves only
// the newest key needed. Every "absent" check has a plaintext control that finds the value.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Entry } from '../../src/raft/index.ts';
import { Keyring } from '../../src/security/index.ts';
import {
  NodeStorage,
  StorageEncryptionError,
  StorageLockedError,
  reencryptDataDir,
} from '../../src/storage/index.ts';
import { confState, tempDir } from './support.ts';

const key = (id: string) => ({ id, key: randomBytes(32) });

/** Entries whose payloads carry `marker` (a value a client wrote), terms 1. */
function markedEntries(lo: number, hi: number, marker: string): Entry[] {
  const out: Entry[] = [];
  for (let index = lo; index <= hi; index++) {
    out.push({ index, term: 1, type: 'normal', data: Buffer.from(`put k${index} ${marker}-${index}`) });
  }
  return out;
}

/** Every byte of every file under the data directory (data.mdb, lock.mdb, ...). */
function diskBytes(dir: string): Buffer {
  const files = readdirSync(join(dir, 'db')).map((name) => readFileSync(join(dir, 'db', name)));
  return Buffer.concat(files);
}

async function write(dir: string, keyring: Keyring | undefined, lo: number, hi: number, marker: string, snapshotAt?: number): Promise<void> {
  const storage = NodeStorage.open({ dataDir: dir, encryption: keyring, limits: { snapshotChunkBytes: 1024 } });
  try {
    const group = storage.group(1);
    group.append(markedEntries(lo, hi, marker));
    group.setHardState({ term: 1, vote: 1, commit: hi });
    if (snapshotAt !== undefined) {
      group.createSnapshot(snapshotAt, confState([1]), Buffer.from(`snapshot image ${marker}-snap `.repeat(200)));
    }
    await storage.commit();
  } finally {
    await storage.close();
  }
}

async function readAll(dir: string, keyring: Keyring | undefined): Promise<{ values: string[]; snapshot: string }> {
  // A zero cache bound forces every read through LMDB (and so through decryption).
  const storage = NodeStorage.open({ dataDir: dir, encryption: keyring, limits: { logCacheBytesPerGroup: 0 } });
  try {
    const group = storage.group(1);
    const values = group.entries(group.firstIndex(), group.lastIndex() + 1, Infinity).map((e) => Buffer.from(e.data).toString());
    return { values, snapshot: Buffer.from(group.snapshot().data).toString() };
  } finally {
    await storage.close();
  }
}

describe('encryption at rest', () => {
  it('keeps every value out of the LMDB files (and a plaintext store shows them)', async () => {
    const marker = `secret-${randomBytes(8).toString('hex')}`;
    const plain = tempDir();
    const sealed = tempDir();
    try {
      await write(plain.dir, undefined, 1, 20, marker, 10);
      assert.ok(diskBytes(plain.dir).includes(`${marker}-7`), 'control: a plaintext store holds the value');
      assert.ok(diskBytes(plain.dir).includes(`${marker}-snap`), 'control: a plaintext snapshot holds the value');

      const keyring = new Keyring([key('k1')]);
      await write(sealed.dir, keyring, 1, 20, marker, 10);
      assert.ok(!diskBytes(sealed.dir).includes(marker), 'no value or snapshot text in the encrypted files');
      const back = await readAll(sealed.dir, keyring);
      assert.equal(back.values.length, 20);
      assert.equal(back.values[6], `put k7 ${marker}-7`);
      assert.match(back.snapshot, new RegExp(`^snapshot image ${marker}-snap`));
    } finally {
      plain.cleanup();
      sealed.cleanup();
    }
  });

  it('seals a snapshot written a piece per commit, and reads it back in order', async () => {
    const marker = `piece-${randomBytes(8).toString('hex')}`;
    const { dir, cleanup } = tempDir();
    try {
      const keyring = new Keyring([key('k1')]);
      const pieces = [0, 1, 2].map((i) => Buffer.from(`${marker}-${i} `.repeat(50 + i * 30)));
      const storage = NodeStorage.open({ dataDir: dir, encryption: keyring });
      try {
        const group = storage.group(1);
        group.append(markedEntries(1, 10, 'v'));
        for (let i = 0; i < pieces.length; i++) {
          group.writeSnapshotPiece(8, i, pieces[i]);
          await storage.commit();
        }
        group.createSnapshotFromPieces(8, confState([1]), pieces.length, Buffer.concat(pieces).length);
        await storage.commit();
      } finally {
        await storage.close();
      }
      assert.ok(!diskBytes(dir).includes(marker), 'no piece is on disk in the clear');
      assert.equal((await readAll(dir, keyring)).snapshot, Buffer.concat(pieces).toString());
    } finally {
      cleanup();
    }
  });

  it('refuses to open encrypted data without the key, or with a wrong key, with a clear error', async () => {
    const { dir, cleanup } = tempDir();
    try {
      await write(dir, new Keyring([key('k1')]), 1, 5, 'v');
      assert.throws(() => NodeStorage.open({ dataDir: dir }), (error: unknown) => {
        assert.ok(error instanceof StorageEncryptionError);
        assert.match(error.message, /encrypted at rest \(keys: k1\).*--encryption-key-file/);
        return true;
      });
      assert.throws(() => NodeStorage.open({ dataDir: dir, encryption: new Keyring([key('k1')]) }), /key "k1" in the key file is not the key that sealed/);
      assert.throws(() => NodeStorage.open({ dataDir: dir, encryption: new Keyring([key('k2')]) }), /sealed under key "k1", which the key file does not hold/);
      // A failed open releases the directory: the right key still opens it.
    } finally {
      cleanup();
    }
  });

  it('rotation: new writes use the newest key, old data stays readable; re-encrypt retires the old key', async () => {
    const { dir, cleanup } = tempDir();
    const k1 = key('k1');
    const k2 = key('k2');
    try {
      await write(dir, new Keyring([k1]), 1, 5, 'old', 3);
      await write(dir, new Keyring([k1, k2]), 6, 10, 'new');
      const both = await readAll(dir, new Keyring([k1, k2]));
      assert.deepEqual(both.values.slice(0, 2), ['put k1 old-1', 'put k2 old-2']);
      assert.equal(both.values.at(-1), 'put k10 new-10');
      assert.throws(() => NodeStorage.open({ dataDir: dir, encryption: new Keyring([k2]) }), /key "k1"/);

      const result = await reencryptDataDir({ dataDir: dir, keyring: new Keyring([k1, k2]) });
      assert.equal(result.keyId, 'k2');
      assert.equal(result.entries, 10);
      assert.equal(result.chunks, 5); // 4.8 KB image in 1 KiB chunks
      const after = await readAll(dir, new Keyring([k2]));
      assert.deepEqual(after.values, both.values);
      assert.equal(after.snapshot, both.snapshot);
    } finally {
      cleanup();
    }
  });

  it('re-encrypt seals a plaintext store, and refuses while a node holds the directory', async () => {
    const { dir, cleanup } = tempDir();
    const marker = `plain-${randomBytes(8).toString('hex')}`;
    try {
      await write(dir, undefined, 1, 8, marker, 4);
      assert.ok(diskBytes(dir).includes(marker), 'control: plaintext before');
      const keyring = new Keyring([key('k1')]);
      const open = NodeStorage.open({ dataDir: dir });
      await assert.rejects(reencryptDataDir({ dataDir: dir, keyring }), StorageLockedError);
      await open.close();
      await reencryptDataDir({ dataDir: dir, keyring });
      assert.ok(!diskBytes(dir).includes(marker), 'no plaintext left after re-encrypt');
      assert.throws(() => NodeStorage.open({ dataDir: dir }), StorageEncryptionError);
      const back = await readAll(dir, keyring);
      assert.equal(back.values.at(-1), `put k8 ${marker}-8`);
    } finally {
      cleanup();
    }
  });
});
