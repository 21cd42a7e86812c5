// Peer links over mutual TLS: messages and snapshots flow between nodes holding certificates
// signed by the cluster CA; a node without a client certificate is refused at the handshake.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TransportTlsOptions } from '../../src/transport/index.ts';
import { connectAll, startNode, waitConnected, waitFor } from './helpers.ts';
import type { Node } from './helpers.ts';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

function openssl(dir: string, ...args: string[]): void {
  const result = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
}

/** A throwaway CA and one peer certificate for 127.0.0.1, usable for both server and client auth. */
function makeCertificates(dir: string): { ca: Buffer; cert: Buffer; key: Buffer } {
  openssl(
    dir,
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=tessera-test-ca',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
  );
  openssl(
    dir,
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-subj',
    '/CN=peer',
    '-keyout',
    'peer.key',
    '-out',
    'peer.csr',
  );
  writeFileSync(
    join(dir, 'ext.cnf'),
    'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n',
  );
  openssl(
    dir,
    'x509',
    '-req',
    '-in',
    'peer.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '1',
    '-extfile',
    'ext.cnf',
    '-out',
    'peer.crt',
  );
  const read = (name: string): Buffer => readFileSync(join(dir, name));
  return { ca: read('ca.crt'), cert: read('peer.crt'), key: read('peer.key') };
}

describe('transport over mutual TLS', { skip: hasOpenssl ? false : 'openssl not installed' }, () => {
  let dir = '';
  let tls: TransportTlsOptions;
  const open: Node[] = [];
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-tls-'));
    const { ca, cert, key } = makeCertificates(dir);
    tls = {
      server: { ca, cert, key, requestCert: true, rejectUnauthorized: true },
      client: { ca, cert, key },
    };
  });
  after(async () => {
    await Promise.all(open.map((n) => n.transport.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('carries messages and snapshots between nodes with certificates', async () => {
    const [a, b] = [await startNode(1, { tls }), await startNode(2, { tls })];
    open.push(a, b);
    connectAll([a, b]);
    await waitConnected(a, 1);
    a.transport.send(1, {
      type: 'heartbeat',
      from: 1,
      to: 2,
      term: 1,
      commit: 3,
      context: new Uint8Array([9]),
    });
    a.transport.send(1, {
      type: 'snap',
      from: 1,
      to: 2,
      term: 1,
      snapshot: {
        metadata: {
          index: 9,
          term: 1,
          confState: { voters: [1, 2], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false },
        },
        data: new Uint8Array(3 * 1024 * 1024).fill(7),
      },
    });
    await waitFor('both delivered', () => b.received.length === 2);
    await waitFor('snapshot finished', () => a.snapshotStatus.length === 1);
    assert.equal(a.snapshotStatus[0].status, 'finish');
    const snap = b.received.find((r) => r.msg.type === 'snap')!.msg;
    assert.ok(
      snap.type === 'snap' &&
        snap.snapshot.data.length === 3 * 1024 * 1024 &&
        snap.snapshot.data[12345] === 7,
    );
  });

  it('refuses a peer without a client certificate', async () => {
    const server = await startNode(11, { tls });
    const anonymous = await startNode(12, { tls: { server: tls.server, client: { ca: tls.client.ca } } });
    open.push(server, anonymous);
    anonymous.transport.setPeers([{ id: 11, host: '127.0.0.1', port: server.transport.port }]);
    await waitFor('unreachable', () => anonymous.unreachable.includes(11));
    assert.equal(anonymous.transport.stats().connectedPeers, 0);
    await waitFor('server logged it', () => server.logs.events().includes('tls_handshake_failed'));
  });
});
