// --listen-metrics-urls https://...: /metrics and /health over TLS with the client port's
// certificate and client-certificate rules (as etcd serves them), on an in-process node with
// openssl-made certificates; no plaintext answer on that port; an https URL without certificates
// is a configuration error.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { probeEndpoint } from '../../src/cli/index.ts';
import { generateDevCertificates } from '../../src/security/index.ts';
import type { DevCertificates } from '../../src/security/index.ts';
import { ConfigError, parseNodeConfig, TesseraNode } from '../../src/server/index.ts';
import { freePort } from '../support/cluster.ts';
import { hasOpenssl } from './support.ts';

interface Answer {
  status: number;
  body: string;
}

function get(url: string, tls: { ca?: Buffer; cert?: Buffer; key?: Buffer } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const parsed = new URL(url);
    const options = { host: parsed.hostname, port: parsed.port, path: parsed.pathname, method: 'GET', timeout: 5_000, servername: 'localhost', ...tls };
    const req = (parsed.protocol === 'https:' ? httpsRequest : httpRequest)(options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

describe('metrics and health over TLS', { skip: !hasOpenssl && 'openssl not installed', timeout: 120_000 }, () => {
  let dir: string;
  let certs: DevCertificates;
  let node: TesseraNode;
  let metricsUrl: string;
  const read = (path: string) => readFileSync(path);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-metrics-tls-'));
    certs = generateDevCertificates(join(dir, 'certs'), ['node1']);
    const [clientPort, peerPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
    const pair = certs.nodes.get('node1')!;
    metricsUrl = `https://127.0.0.1:${metricsPort}`;
    const config = parseNodeConfig({
      name: 'node1',
      dataDir: join(dir, 'node1'),
      listenClientUrls: `https://127.0.0.1:${clientPort}`,
      listenPeerUrls: `http://127.0.0.1:${peerPort}`,
      initialCluster: `node1=http://127.0.0.1:${peerPort}`,
      listenMetricsUrls: metricsUrl,
      certFile: pair.certFile,
      keyFile: pair.keyFile,
      trustedCaFile: certs.ca.certFile,
      clientCertAuth: true,
      unsafeNoFsync: true,
    });
    node = await TesseraNode.start(config, pino({ level: 'silent' }));
    await probeEndpoint(`127.0.0.1:${clientPort}`, 20_000, {
      caFile: certs.ca.certFile, certFile: certs.client.certFile, keyFile: certs.client.keyFile, serverName: 'localhost',
    });
  });
  after(async () => {
    await node?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves /metrics and /health to a client with a certificate from the trusted CA', async () => {
    const tls = { ca: read(certs.ca.certFile), cert: read(certs.client.certFile), key: read(certs.client.keyFile) };
    const metrics = await get(`${metricsUrl}/metrics`, tls);
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /^etcd_server_has_leader 1$/m);
    const health = await get(`${metricsUrl}/health`, tls);
    assert.equal(health.status, 200);
    assert.deepEqual(JSON.parse(health.body), { health: 'true', reason: '' });
  });

  it('refuses a client without a certificate (as the client port does) and answers no plaintext', async () => {
    await assert.rejects(get(`${metricsUrl}/metrics`, { ca: read(certs.ca.certFile) }));
    await assert.rejects(get(`${metricsUrl.replace('https:', 'http:')}/metrics`));
    // A client that does not trust our CA refuses the server.
    await assert.rejects(
      get(`${metricsUrl}/metrics`, { cert: read(certs.client.certFile), key: read(certs.client.keyFile) }),
      /self[- ]signed|unable to verify|certificate/i,
    );
  });

  it('an https:// metrics URL without --cert-file is a configuration error', () => {
    assert.throws(
      () => parseNodeConfig({ name: 'x', listenMetricsUrls: 'https://127.0.0.1:1' }),
      (error: Error) => error instanceof ConfigError && /https:\/\/ metrics URLs need --cert-file/.test(error.message),
    );
  });
});
