// Security primitives on their own: AES-256-GCM envelopes and key files, the allowed-peer-name
// check, ALPN selection, certificate loading errors, and the node's security flags.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { selectClientAlpn } from '../../src/api/listener.ts';
import {
  addKeyToFile,
  checkPeerName,
  CertificateError,
  DecryptionError,
  envelopeKeyId,
  Keyring,
  KeyFileError,
  loadTlsMaterial,
  parseKeyFile,
  readKeyFile,
  reseal,
} from '../../src/security/index.ts';
import { ConfigError, parseNodeConfig } from '../../src/server/index.ts';
import { hasOpenssl, makeFixtures } from './support.ts';
import type { Fixtures } from './support.ts';

const aad = Buffer.from('where/1');
const key = (id: string) => ({ id, key: randomBytes(32) });

function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-keys-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

describe('envelopes', () => {
  it('seal under the newest key, open under any key of the ring, and hide the plaintext', () => {
    const k1 = key('k1');
    const old = new Keyring([k1]);
    const sealedOld = old.seal(Buffer.from('value-one'), aad);
    assert.equal(envelopeKeyId(sealedOld), 'k1');
    assert.ok(!sealedOld.includes(Buffer.from('value-one')));
    const rotated = new Keyring([k1, key('k2')]);
    const sealedNew = rotated.seal(Buffer.from('value-two'), aad);
    assert.equal(envelopeKeyId(sealedNew), 'k2');
    assert.equal(rotated.open(sealedOld, aad).toString(), 'value-one');
    assert.equal(rotated.open(sealedNew, aad).toString(), 'value-two');
    assert.notDeepEqual(rotated.seal(Buffer.from('same'), aad), rotated.seal(Buffer.from('same'), aad), 'random nonces');
    const resealed = reseal(rotated, sealedOld, aad);
    assert.equal(envelopeKeyId(resealed), 'k2');
    assert.equal(new Keyring([rotated.keys[1]]).open(resealed, aad).toString(), 'value-one');
  });

  it('refuse another place, altered bytes, a wrong key and an unknown key id', () => {
    const ring = new Keyring([key('k1')]);
    const sealed = ring.seal(Buffer.from('v'), aad);
    assert.throws(() => ring.open(sealed, Buffer.from('where/2')), DecryptionError);
    const altered = Buffer.from(sealed);
    altered[altered.length - 20] ^= 1;
    assert.throws(() => ring.open(altered, aad), /does not open this data/);
    assert.throws(() => new Keyring([key('k1')]).open(sealed, aad), /key "k1" does not open/);
    assert.throws(() => new Keyring([key('k9')]).open(sealed, aad), /sealed under key "k1", which the key file does not hold/);
    assert.throws(() => ring.open(Buffer.from('plaintext'), aad), /not an encryption envelope/);
  });
});

describe('key files', () => {
  it('parse id:base64 lines oldest first, with comments', () => {
    const a = randomBytes(32).toString('base64');
    const b = randomBytes(32).toString('base64');
    const ring = parseKeyFile(`# keys\n\nold:${a}\nnew: ${b}\n`);
    assert.deepEqual(ring.ids, ['old', 'new']);
    assert.equal(ring.newest.id, 'new');
  });

  it('reject malformed files with the line number', () => {
    assert.throws(() => parseKeyFile(''), /holds no keys/);
    assert.throws(() => parseKeyFile('k1'), /line 1: expected/);
    assert.throws(() => parseKeyFile(`k1:${randomBytes(16).toString('base64')}`), /16 bytes, expected 32/);
    assert.throws(() => parseKeyFile('k1:not base64!'), /not base64/);
    const k = randomBytes(32).toString('base64');
    assert.throws(() => parseKeyFile(`k1:${k}\nk1:${k}`), /appears twice/);
    assert.throws(() => parseKeyFile(`bad id:${k}`), /bad key id/);
  });

  it('are created private, grow by new-key, and are refused when group/other can read them', () => {
    const { dir, cleanup } = tempDir();
    try {
      const path = join(dir, 'keys');
      assert.equal(addKeyToFile(path), 'key-1');
      assert.equal(addKeyToFile(path, 'second'), 'second');
      assert.deepEqual(readKeyFile(path).ids, ['key-1', 'second']);
      assert.throws(() => addKeyToFile(path, 'second'), /already has a key "second"/);
      chmodSync(path, 0o644);
      assert.throws(() => readKeyFile(path), (e: unknown) => e instanceof KeyFileError && /chmod 600/.test(e.message));
      assert.throws(() => readKeyFile(join(dir, 'missing')), /cannot read key file/);
    } finally {
      cleanup();
    }
  });
});

describe('names and protocols', () => {
  it('ALPN: gRPC clients (h2 only) get h2; HTTP clients that offer http/1.1 get the gateway', () => {
    assert.equal(selectClientAlpn(['h2']), 'h2');
    assert.equal(selectClientAlpn(['grpc-exp', 'h2']), 'h2');
    assert.equal(selectClientAlpn(['h2', 'http/1.1']), 'http/1.1');
    assert.equal(selectClientAlpn(['spdy/3']), undefined);
  });
});

describe('certificates', { skip: hasOpenssl ? false : 'openssl not installed' }, () => {
  let fx: Fixtures;
  before(() => {
    fx = makeFixtures();
  });
  after(() => fx.cleanup());

  it('are made by openssl with loopback SANs, both usages for nodes, and an expired one on request', () => {
    const node = new X509Certificate(readFileSync(fx.certs.nodes.get('node1')!.certFile));
    const ca = new X509Certificate(readFileSync(fx.certs.ca.certFile));
    assert.ok(node.checkIssued(ca) && node.verify(ca.publicKey));
    assert.equal(node.subjectAltName, 'IP Address:127.0.0.1, DNS:localhost');
    assert.deepEqual(node.keyUsage, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    assert.ok(Date.parse(new X509Certificate(readFileSync(fx.expired.certFile)).validTo) < Date.now());
    assert.ok(!new X509Certificate(readFileSync(fx.rogue.certFile)).checkIssued(ca));
  });

  it('load with a clear error when the key does not match', () => {
    const node1 = fx.certs.nodes.get('node1')!;
    const node2 = fx.certs.nodes.get('node2')!;
    assert.equal(loadTlsMaterial({ ...node1, trustedCaFile: fx.certs.ca.certFile }).ca !== undefined, true);
    assert.throws(() => loadTlsMaterial({ certFile: node1.certFile, keyFile: node2.keyFile }), (e: unknown) => e instanceof CertificateError && e.message.includes(node1.certFile));
    assert.throws(() => loadTlsMaterial({ certFile: join(fx.dir, 'nope.crt'), keyFile: node1.keyFile }), /cannot read certificate/);
  });

  it('allowed peer names: CN and hostname', () => {
    const peer = (pair: { certFile: string }) => new X509Certificate(readFileSync(pair.certFile)).toLegacyObject();
    const node1 = fx.certs.nodes.get('node1')!;
    assert.equal(checkPeerName(peer(node1), {}), null);
    assert.equal(checkPeerName(peer(node1), { allowedCn: 'node1' }), null);
    assert.match(checkPeerName(peer(fx.intruder), { allowedCn: 'node1' }) ?? '', /CN "intruder" is not the allowed CN "node1"/);
    assert.equal(checkPeerName(peer(node1), { allowedHostname: 'localhost' }), null);
    assert.match(checkPeerName(peer(node1), { allowedHostname: 'node1.example.com' }) ?? '', /not valid for allowed hostname/);
    assert.match(checkPeerName(null, { allowedCn: 'node1' }) ?? '', /no certificate/);
  });

  it('security flags: checked together, as etcd names them', () => {
    const node1 = fx.certs.nodes.get('node1')!;
    const ok = parseNodeConfig({
      listenClientUrls: 'https://127.0.0.1:2379',
      certFile: node1.certFile,
      keyFile: node1.keyFile,
      clientCertAuth: true,
      trustedCaFile: fx.certs.ca.certFile,
    });
    assert.equal(ok.clientCertAuth, true);
    assert.equal(ok.tlsMinVersion, 'TLS1.2');
    const bad = (input: Record<string, unknown>, pattern: RegExp) => assert.throws(() => parseNodeConfig(input), (e: unknown) => e instanceof ConfigError && pattern.test(e.message));
    bad({ listenClientUrls: 'https://127.0.0.1:2379' }, /https:\/\/ client URLs need --cert-file/);
    bad({ listenPeerUrls: 'https://127.0.0.1:2380' }, /https:\/\/ peer URLs need --peer-cert-file/);
    bad({ certFile: 'a.crt' }, /--cert-file and --key-file go together/);
    bad({ clientCertAuth: true }, /--client-cert-auth needs --trusted-ca-file/);
    bad({ peerCertAllowedCn: 'x', peerCertAllowedHostname: 'y' }, /not both/);
    bad({ peerCertAllowedCn: 'x' }, /need --peer-client-cert-auth/);
  });
});

describe('key file written by hand', () => {
  it('with a short key is refused with a hint', () => {
    const { dir, cleanup } = tempDir();
    try {
      const path = join(dir, 'k');
      writeFileSync(path, 'a:AAAA\n', { mode: 0o600 });
      assert.throws(() => readKeyFile(path), /openssl rand -base64 32/);
    } finally {
      cleanup();
    }
  });
});
