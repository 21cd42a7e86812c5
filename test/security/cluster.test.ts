// A secure 3-node cluster of real processes (TLS + mutual TLS on client and peer ports, encryption
// at rest): etcdctl works with --cacert/--cert/--key and fails without them, no value is readable
// in the LMDB files, a node with a rogue peer certificate cannot join while the cluster serves,
// and a node started without its encryption key refuses to start with a clear error.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { freePort } from '../support/cluster.ts';
import { hasEtcdctl, hasOpenssl, lmdbBytes, makeFixtures, SecureCluster, sleep, spawnNode } from './support.ts';
import type { Fixtures } from './support.ts';

function etcdctl(endpoints: string[], args: string[], auth: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('etcdctl', [`--endpoints=${endpoints.join(',')}`, '--dial-timeout=3s', '--command-timeout=5s', ...auth, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ETCDCTL_API: '3' },
    timeout: 20_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('secure cluster (real processes)', { skip: hasOpenssl ? false : 'openssl not installed', timeout: 180_000 }, () => {
  let fx: Fixtures;
  let cluster: SecureCluster;
  let client: Etcd3;
  let auth: string[] = [];

  before(async () => {
    fx = makeFixtures();
    cluster = await SecureCluster.start(fx);
    const { cert, key } = fx.read(fx.certs.client);
    client = new Etcd3({
      hosts: cluster.urls(),
      credentials: { rootCertificate: fx.ca(), certChain: cert, privateKey: key },
      grpcOptions: { 'grpc.ssl_target_name_override': 'localhost' },
    });
    auth = [`--cacert=${fx.certs.ca.certFile}`, `--cert=${fx.certs.client.certFile}`, `--key=${fx.certs.client.keyFile}`];
  });
  after(async () => {
    client?.close();
    await cluster?.stop();
    fx?.cleanup();
  });

  it('etcdctl with --cacert, --cert and --key works; without a client certificate or without TLS it fails', (t) => {
    if (!hasEtcdctl) {
      t.diagnostic('SKIP: etcdctl not installed (npm run setup:tools installs it)');
      console.log('SKIP: etcdctl not installed (npm run setup:tools installs it)');
      return;
    }
    const urls = cluster.urls();
    assert.equal(etcdctl([urls[0]], ['put', 'tls/key', 'over-tls'], auth).stdout.trim(), 'OK');
    assert.equal(etcdctl([urls[1]], ['get', 'tls/key', '--print-value-only'], auth).stdout.trim(), 'over-tls');
    const members = etcdctl(urls, ['member', 'list'], auth);
    assert.equal(members.status, 0, members.stderr);
    assert.equal(members.stdout.trim().split('\n').length, 3);
    assert.match(members.stdout, /https:\/\/127\.0\.0\.1:\d+/);
    assert.equal(etcdctl(urls, ['endpoint', 'health'], auth).status, 0);

    const noCert = etcdctl([urls[0]], ['get', 'tls/key'], [`--cacert=${fx.certs.ca.certFile}`]);
    assert.notEqual(noCert.status, 0, 'no client certificate: refused');
    const wrongCa = etcdctl([urls[0]], ['get', 'tls/key'], [`--cacert=${fx.certs.ca.certFile}`, `--cert=${fx.rogue.certFile}`, `--key=${fx.rogue.keyFile}`]);
    assert.notEqual(wrongCa.status, 0, 'client certificate from an unknown CA: refused');
    const plaintext = etcdctl([cluster.endpoint(0)], ['get', 'tls/key'], []);
    assert.notEqual(plaintext.status, 0, 'plaintext client: refused');
    assert.equal(etcdctl([urls[2]], ['get', 'tls/key', '--print-value-only'], auth).stdout.trim(), 'over-tls');
  });

  it('keeps values out of every node\'s LMDB files (encryption at rest)', async () => {
    const marker = `secret-${randomBytes(12).toString('hex')}`;
    await client.put('enc/key').value(marker);
    assert.equal(await client.get('enc/key').string(), marker);
    await sleep(300); // followers apply and fsync the entry
    for (const node of cluster.nodes) {
      assert.ok(lmdbBytes(node.dataDir).length > 0, `${node.name} has data files`);
      assert.ok(!lmdbBytes(node.dataDir).includes(marker), `${node.name}'s data files hold no plaintext value`);
      assert.ok(!lmdbBytes(node.dataDir).includes('enc/key'), `${node.name}'s data files hold no plaintext key`);
    }
  });

  it('a node with a certificate from an unknown CA cannot join; the cluster keeps serving', async () => {
    const peerPort = await freePort();
    const peerUrl = `https://127.0.0.1:${peerPort}`;
    const added = await client.cluster.memberAdd({ peerURLs: [peerUrl], isLearner: true });
    const rogueLog = join(cluster.root, 'node4.log');
    const rogue = spawnNode([
      '--name', 'node4', '--data-dir', join(cluster.root, 'node4'),
      '--listen-client-urls', `https://127.0.0.1:${await freePort()}`, '--listen-peer-urls', peerUrl,
      '--initial-cluster', `${cluster.initialCluster},node4=${peerUrl}`, '--initial-cluster-state', 'existing',
      '--log-level', 'debug', ...SecureCluster.secureArgs(fx, fx.rogue),
    ], rogueLog);
    try {
      for (let i = 0; i < 10; i++) {
        await client.put(`during/${i}`).value(String(i));
        await sleep(400);
      }
      const refused = cluster.nodes.some((_, i) => /"event":"tls_handshake_failed"/.test(cluster.log(i)));
      assert.ok(refused, 'the members refused the rogue node\'s TLS handshakes');
      const members = await client.cluster.memberList({});
      const node4 = members.members.find((m) => m.ID === added.member.ID);
      assert.ok(node4, 'the added member is listed');
      assert.equal(node4.name, '', 'it never published itself (never joined)');
      assert.equal(rogue.exitCode, null, 'the rogue process is still trying');
      for (let i = 0; i < cluster.nodes.length; i++) {
        const one = new Etcd3({
          hosts: cluster.urls()[i],
          credentials: { rootCertificate: fx.ca(), ...certChain(fx) },
          grpcOptions: { 'grpc.ssl_target_name_override': 'localhost' },
        });
        try {
          assert.equal(await one.get('during/9').string(), '9', `node${i + 1} serves`);
        } finally {
          one.close();
        }
      }
    } finally {
      rogue.kill('SIGKILL');
      await client.cluster.memberRemove({ ID: added.member.ID });
    }
  });

  it('a node started without its encryption key refuses to start, with a clear error', async () => {
    await cluster.kill(2);
    const node = cluster.nodes[2];
    const withoutKey = spawnNode([
      '--name', node.name, '--data-dir', node.dataDir,
      '--listen-client-urls', `https://127.0.0.1:${node.clientPort}`, '--listen-peer-urls', `https://127.0.0.1:${node.peerPort}`,
      '--initial-cluster', cluster.initialCluster,
      ...SecureCluster.secureArgs(fx, fx.certs.nodes.get(node.name)!, false),
    ], node.logPath);
    const code = await new Promise<number | null>((resolve) => withoutKey.once('exit', (c) => resolve(c)));
    assert.equal(code, 2);
    assert.match(cluster.log(2), /encrypted at rest \(keys: test-1\); start with --encryption-key-file/);
    cluster.spawn(2);
    await cluster.waitReady();
    await client.put('after/restart').value('ok');
    assert.equal(await client.get('enc/key').exists(), true);
  });
});

function certChain(fx: Fixtures): { certChain: Buffer; privateKey: Buffer } {
  const { cert, key } = fx.read(fx.certs.client);
  return { certChain: cert, privateKey: key };
}
