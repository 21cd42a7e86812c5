// `tessera snapshot restore --encryption-key-file`: the restored directory is sealed at rest from its
// first byte (no plaintext step before `tessera storage re-encrypt`), and serves the backup's data.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MvccStore, rangeRequest } from '../../src/mvcc/index.ts';
import { addKeyToFile, readKeyFile } from '../../src/security/index.ts';
import { AuthStore } from '../../src/server/auth-store.ts';
import { encodeBackup } from '../../src/server/backup.ts';
import { parseNodeConfig, restoreBackup } from '../../src/server/index.ts';
import { decodeSnapshotData, encodeSnapshotData } from '../../src/server/snapshots.ts';
import { NodeStorage, StorageEncryptionError } from '../../src/storage/index.ts';

describe('snapshot restore with encryption at rest', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-restore-enc-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('seals the restored data under the key file; without the key the directory does not open', async () => {
    const store = new MvccStore();
    store.put({ key: Buffer.from('secret/k'), value: Buffer.from('hunter2'), lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false });
    const data = encodeSnapshotData({ store, alarms: new Set(), members: new Map(), removed: new Set(), auth: new AuthStore(), leaseRenewedAt: new Map() });
    const confState = { voters: [1], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false };
    const file = join(dir, 'backup.db');
    writeFileSync(file, encodeBackup({ index: 20, term: 3, confState, data }));
    const keyFile = join(dir, 'at-rest.key');
    addKeyToFile(keyFile, 'k1');
    const dataDir = join(dir, 'r1');
    const config = parseNodeConfig({ name: 'r1', dataDir, initialCluster: 'r1=http://127.0.0.1:2380', encryptionKeyFile: keyFile });
    const result = await restoreBackup(file, config);
    assert.equal(result.index, 20);

    assert.throws(() => NodeStorage.open({ dataDir }), StorageEncryptionError);
    const storage = NodeStorage.open({ dataDir, encryption: readKeyFile(keyFile) });
    try {
      const snapshot = storage.group(1).snapshot();
      assert.equal(snapshot.metadata.index, 20);
      const restored = decodeSnapshotData(snapshot.data).store;
      const range = restored.range(rangeRequest(Buffer.from('secret/k')));
      assert.equal(Buffer.from(range.kvs[0].value).toString(), 'hunter2');
    } finally {
      await storage.close();
    }
  });
});
