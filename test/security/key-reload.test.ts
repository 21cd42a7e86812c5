// Encryption key rotation without a restart: a node given a new key in its key file (SIGHUP, or the
// periodic check) seals new writes under it, and a key file that lacks a key the data needs is
// refused while the node keeps its current keys. Real process, real LMDB files.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addKeyToFile, Keyring, readKeyFile } from '../../src/security/index.ts';
import { NodeStorage, StorageEncryptionError } from '../../src/storage/index.ts';
import { ProcessCluster } from '../support/cluster.ts';
import { AuthTestClient } from './auth-client.ts';
import { sleep } from './support.ts';

const b = (s: string) => Buffer.from(s);

/** Waits until `condition` holds (the node reacts to SIGHUP asynchronously), at most 10 s. */
async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !condition(); i++) await sleep(100);
  assert.ok(condition(), 'timed out waiting for the node');
}

describe('encryption key file reload (real process)', { timeout: 120_000 }, () => {
  let dir: string;
  let keyFile: string;
  let cluster: ProcessCluster;
  let client: AuthTestClient;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-key-reload-'));
    keyFile = join(dir, 'keys');
    addKeyToFile(keyFile, 'k1');
    cluster = await ProcessCluster.start({ nodes: 1, logLevel: 'info', extraArgs: ['--encryption-key-file', keyFile] });
    client = new AuthTestClient(cluster.endpoint(0));
  });
  after(async () => {
    client?.close();
    await cluster?.stop({ keepData: true });
    rmSync(dir, { recursive: true, force: true });
  });

  it('a key added to the file seals new writes after SIGHUP; a file missing an old key is refused, the node keeps serving', async () => {
    await client.call('KV', 'put', { key: b('before'), value: b('k1') });
    // A file without k1 (which sealed the data): refused, k1 stays in use.
    const original = readFileSync(keyFile, 'utf8');
    const strayFile = join(dir, 'stray-keys');
    addKeyToFile(strayFile, 'stray');
    writeFileSync(keyFile, readFileSync(strayFile), { mode: 0o600 });
    cluster.nodes[0].proc!.kill('SIGHUP');
    await until(() => /the new encryption key file is not usable/.test(cluster.log(0)));
    assert.match(cluster.log(0), /does not hold/);
    await client.call('KV', 'put', { key: b('still'), value: b('k1') });
    // Now k1 plus a new k2: accepted, and the newest key seals from here on.
    writeFileSync(keyFile, original, { mode: 0o600 });
    addKeyToFile(keyFile, 'k2');
    cluster.nodes[0].proc!.kill('SIGHUP');
    await until(() => /encryption key file reloaded/.test(cluster.log(0)));
    await client.call('KV', 'put', { key: b('after'), value: b('k2') });
    assert.equal((await client.call('KV', 'range', { key: b('after') })).kvs.length, 1);
    await cluster.stop({ keepData: true });
    // On disk: data sealed under k2 exists now, so a key ring of k1 alone can no longer open it.
    const dataDir = cluster.nodes[0].dataDir;
    const onlyK1 = new Keyring(readKeyFile(keyFile).keys.filter((k) => k.id === 'k1'));
    assert.throws(() => NodeStorage.open({ dataDir, encryption: onlyK1 }), (error: unknown) => error instanceof StorageEncryptionError && /"k2"/.test(error.message));
    const storage = NodeStorage.open({ dataDir, encryption: readKeyFile(keyFile) });
    await storage.close();
  });
});
