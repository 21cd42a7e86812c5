// The client port over TLS (in process, an ApiServer over the real MvccStore): etcd clients and the
// JSON gateway work with a client certificate from the cluster CA; a plaintext client, a client
// with no certificate, one from an unknown CA, an expired one and a CBC-only TLS 1.2 client are
// refused, and the server keeps serving. Certificates reload for new connections.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { ApiServer } from '../../src/api/index.ts';
import { probeEndpoint } from '../../src/cli/index.ts';
import { serverTlsOptions, TlsReloader } from '../../src/security/index.ts';
import type { CertPair } from '../../src/security/index.ts';
import { StoreBackend } from '../api/backends.ts';
import { hasOpenssl, makeFixtures } from './support.ts';
import type { Fixtures } from './support.ts';

/** A gRPC read (the readiness probe) with this client identity; rejects when the server refuses. */
function grpcRead(port: number, fx: Fixtures, client: CertPair | null, timeoutMs = 2_500): Promise<void> {
  const files = client === null ? {} : { certFile: client.certFile, keyFile: client.keyFile };
  return probeEndpoint(`127.0.0.1:${port}`, timeoutMs, { caFile: fx.certs.ca.certFile, serverName: 'localhost', ...files });
}

/** POST to the gateway over https with this client identity; resolves to the status and body. */
function gatewayPost(port: number, fx: Fixtures, client: CertPair, path: string, body: object): Promise<{ status: number; body: string }> {
  const { cert, key } = fx.read(client);
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path, method: 'POST', ca: fx.ca(), cert, key, servername: 'localhost' },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

/** A raw TLS connection; resolves to the server certificate's CN, or rejects with the TLS error. */
function handshake(port: number, options: tls.ConnectionOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...options });
    socket.once('error', reject);
    socket.once('secureConnect', () => {
      // TLS 1.3 refuses a client certificate after the client's Finished: give the alert time to arrive.
      setTimeout(() => {
        if (socket.destroyed) return reject(new Error('closed by the server after the handshake (certificate refused)'));
        const cn = String(socket.getPeerCertificate()?.subject?.CN ?? '');
        socket.destroy();
        resolve(cn);
      }, 200);
    });
  });
}

describe('client TLS', { skip: hasOpenssl ? false : 'openssl not installed', timeout: 60_000 }, () => {
  let fx: Fixtures;
  let server: ApiServer;
  let port = 0;
  let reloader: TlsReloader;
  let serving: CertPair;

  before(async () => {
    fx = makeFixtures();
    // The server's files live in a directory of their own so the reload test can overwrite them.
    const live = join(fx.dir, 'live');
    mkdirSync(live);
    const node1 = fx.certs.nodes.get('node1')!;
    serving = { certFile: join(live, 'server.crt'), keyFile: join(live, 'server.key') };
    copyFileSync(node1.certFile, serving.certFile);
    copyFileSync(node1.keyFile, serving.keyFile);
    reloader = new TlsReloader({ ...serving, trustedCaFile: fx.certs.ca.certFile }, { label: 'client', intervalMs: 0 });
    const options = () => serverTlsOptions(reloader.current, { requireClientCert: true });
    server = new ApiServer({ backend: new StoreBackend(), host: '127.0.0.1', port: 0, logger: pino({ level: 'silent' }), tls: options() });
    reloader.onReload(() => server.setSecureContext(options()));
    port = await server.start();
  });
  after(async () => {
    await server.stop();
    fx.cleanup();
  });

  it('serves the etcd3 client over mutual TLS (gRPC, ALPN h2)', async () => {
    const { cert, key } = fx.read(fx.certs.client);
    const client = new Etcd3({
      hosts: `https://127.0.0.1:${port}`,
      credentials: { rootCertificate: fx.ca(), certChain: cert, privateKey: key },
      grpcOptions: { 'grpc.ssl_target_name_override': 'localhost' },
    });
    try {
      await client.put('secure/key').value('v1');
      assert.equal(await client.get('secure/key').string(), 'v1');
    } finally {
      client.close();
    }
  });

  it('serves the JSON gateway over https on the same port (ALPN http/1.1)', async () => {
    const put = await gatewayPost(port, fx, fx.certs.client, '/v3/kv/put', { key: b64('gw'), value: b64('json') });
    assert.equal(put.status, 200, put.body);
    const range = await gatewayPost(port, fx, fx.certs.client, '/v3/kv/range', { key: b64('gw') });
    assert.equal(range.status, 200);
    assert.equal(Buffer.from(JSON.parse(range.body).kvs[0].value, 'base64').toString(), 'json');
  });

  it('refuses a plaintext client on the TLS port, gRPC and HTTP alike', async () => {
    await assert.rejects(probeEndpoint(`127.0.0.1:${port}`, 2_000), /did not serve/);
    await assert.rejects(
      new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, path: '/v3/kv/range', method: 'POST' }, resolve);
        req.on('error', reject);
        req.end('{}');
      }),
      /socket hang up|ECONNRESET/,
    );
    await grpcRead(port, fx, fx.certs.client); // and still serves a proper client
  });

  it('refuses clients without a certificate, with one from an unknown CA, or with an expired one', async () => {
    await assert.rejects(grpcRead(port, fx, null), /did not serve/);
    await assert.rejects(grpcRead(port, fx, fx.rogue), /did not serve/);
    await assert.rejects(grpcRead(port, fx, fx.expired), /did not serve/);
    const withCert = (pair: CertPair) => ({ ca: fx.ca(), ...fx.read(pair), ALPNProtocols: ['h2'] });
    await assert.rejects(handshake(port, withCert(fx.rogue)), /unknown ca|certificate/i);
    await assert.rejects(handshake(port, withCert(fx.expired)), /expired|certificate/i);
    await assert.rejects(handshake(port, { ca: fx.ca(), ALPNProtocols: ['h2'] }), /certificate required|handshake failure|certificate/i);
    await grpcRead(port, fx, fx.certs.client);
  });

  it('offers only AEAD suites with forward secrecy on TLS 1.2', async () => {
    const tls12 = { ca: fx.ca(), ...fx.read(fx.certs.client), maxVersion: 'TLSv1.2' as const };
    assert.equal(await handshake(port, { ...tls12, ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' }), 'node1');
    await assert.rejects(handshake(port, { ...tls12, ciphers: 'ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA' }), /handshake failure|no shared cipher|alert/i);
  });

  it('reloads certificates for new connections; a broken file keeps the old ones', async () => {
    const options = { ca: fx.ca(), ...fx.read(fx.certs.client) };
    assert.equal(await handshake(port, options), 'node1');
    assert.equal(reloader.check(), false, 'unchanged files are not reloaded');
    // A half-done rotation (new certificate, old key) is refused and the old pair stays in use.
    const node2 = fx.certs.nodes.get('node2')!;
    copyFileSync(node2.certFile, serving.certFile);
    assert.equal(reloader.check(), false);
    assert.equal(await handshake(port, options), 'node1');
    copyFileSync(node2.keyFile, serving.keyFile);
    assert.equal(reloader.check(), true);
    assert.equal(await handshake(port, options), 'node2');
    await grpcRead(port, fx, fx.certs.client);
  });
});

function b64(text: string): string {
  return Buffer.from(text).toString('base64');
}
