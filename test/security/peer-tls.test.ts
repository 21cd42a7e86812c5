// Peer links with the node's own TLS wiring (NodeSecurity from etcd's --peer-* flags, in process):
// members with cluster certificates exchange messages; a peer with no certificate, with one from
// an unknown CA, or (with --peer-cert-allowed-cn) with another CN cannot connect, so none of its
// messages reach Raft; the members keep talking meanwhile. Reloaded certificates apply to new links.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tls from 'node:tls';
import { pino } from 'pino';
import type { Message } from '../../src/raft/index.ts';
import { parseNodeConfig } from '../../src/server/index.ts';
import { NodeSecurity } from '../../src/server/security.ts';
import type { CertPair } from '../../src/security/index.ts';
import type { TransportTlsOptions } from '../../src/transport/index.ts';
import { connectAll, sleep, startNode, waitConnected, waitFor } from '../transport/helpers.ts';
import type { Node } from '../transport/helpers.ts';
import { hasOpenssl, makeFixtures } from './support.ts';
import type { Fixtures } from './support.ts';

function peerTls(fx: Fixtures, pair: CertPair, extra: Record<string, unknown> = {}, ca = fx.certs.ca.certFile): TransportTlsOptions {
  const config = parseNodeConfig({
    dataDir: fx.dir,
    listenPeerUrls: 'https://127.0.0.1:0',
    peerCertFile: pair.certFile,
    peerKeyFile: pair.keyFile,
    peerTrustedCaFile: ca,
    peerClientCertAuth: true,
    tlsReloadIntervalMs: 0,
    ...extra,
  });
  const options = new NodeSecurity(config, pino({ level: 'silent' })).transportTls();
  assert.ok(options, 'https:// peer URLs turn peer TLS on');
  return options;
}

const heartbeat = (from: number, to: number): Message => ({ type: 'heartbeat', from, to, term: 1, commit: 0, context: new Uint8Array() });

/** A raw TLS connection to a peer port: 'open' if it still stands after 1 s, else the error. */
function rawConnect(port: number, options: tls.ConnectionOptions): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...options });
    let settled = false;
    const done = (result: string) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(result);
    };
    socket.on('error', (error) => done(error.message));
    socket.on('close', () => done('closed'));
    setTimeout(() => done('open'), 1_000);
  });
}

describe('peer TLS', { skip: hasOpenssl ? false : 'openssl not installed', timeout: 60_000 }, () => {
  let fx: Fixtures;
  const open: Node[] = [];
  const start = async (id: number, options: TransportTlsOptions) => {
    const node = await startNode(id, { tls: options, limits: { handshakeTimeoutMs: 3_000 } });
    open.push(node);
    return node;
  };
  before(() => {
    fx = makeFixtures();
  });
  after(async () => {
    await Promise.all(open.map((n) => n.transport.close()));
    fx.cleanup();
  });

  it('members with cluster certificates talk; a raw client without a certificate is refused', async () => {
    const a = await start(1, peerTls(fx, fx.certs.nodes.get('node1')!));
    const b = await start(2, peerTls(fx, fx.certs.nodes.get('node2')!));
    connectAll([a, b]);
    await waitConnected(a, 1);
    a.transport.send(1, heartbeat(1, 2));
    await waitFor('heartbeat delivered', () => b.received.length === 1);
    const ca = fx.ca();
    const member = fx.read(fx.certs.nodes.get('node3')!);
    assert.equal(await rawConnect(a.transport.port, { ca, ...member }), 'open', 'control: a member certificate is accepted');
    assert.notEqual(await rawConnect(a.transport.port, { ca }), 'open', 'no certificate: refused');
    assert.notEqual(await rawConnect(a.transport.port, { ca, ...fx.read(fx.rogue) }), 'open', 'unknown CA: refused');
    assert.notEqual(await rawConnect(a.transport.port, { ca, ...fx.read(fx.expired) }), 'open', 'expired: refused');
  });

  it('a peer with a certificate from an unknown CA cannot send Raft messages; the members carry on', async () => {
    const a = await start(11, peerTls(fx, fx.certs.nodes.get('node1')!));
    const b = await start(12, peerTls(fx, fx.certs.nodes.get('node2')!));
    // The intruder trusts the real CA (so it would accept the members) but holds a rogue certificate.
    const intruder = await start(13, peerTls(fx, fx.rogue));
    connectAll([a, b, intruder]);
    await waitConnected(a, 1);
    for (let i = 0; i < 5; i++) intruder.transport.send(1, heartbeat(13, 11));
    a.transport.send(1, heartbeat(11, 12));
    await waitFor('member heartbeat', () => b.received.length === 1);
    await sleep(500);
    assert.equal(a.received.filter((r) => r.msg.from === 13).length, 0, 'nothing from the intruder reached the node');
    assert.equal(intruder.transport.stats().connectedPeers, 0);
    assert.ok(a.logs.events().includes('tls_handshake_failed'), 'the refusal is logged');
    b.transport.send(1, heartbeat(12, 11));
    await waitFor('members still talk', () => a.received.some((r) => r.msg.from === 12));
  });

  it('--peer-cert-allowed-cn refuses a CA-signed certificate with another CN', async () => {
    const a = await start(21, peerTls(fx, fx.certs.nodes.get('node1')!, { peerCertAllowedCn: 'node2' }));
    const b = await start(22, peerTls(fx, fx.certs.nodes.get('node2')!));
    const other = await start(23, peerTls(fx, fx.intruder));
    connectAll([a, b, other]);
    b.transport.send(1, heartbeat(22, 21));
    other.transport.send(1, heartbeat(23, 21));
    await waitFor('allowed CN delivers', () => a.received.some((r) => r.msg.from === 22));
    await sleep(300);
    assert.equal(a.received.filter((r) => r.msg.from === 23).length, 0);
    assert.ok(a.logs.events().includes('peer_certificate_rejected'));
  });

  it('reloaded certificates are served to new peer connections', async () => {
    const a = await start(31, peerTls(fx, fx.certs.nodes.get('node1')!));
    const cn = () =>
      new Promise<string>((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port: a.transport.port, servername: 'localhost', ca: fx.ca(), ...fx.read(fx.certs.nodes.get('node3')!) });
        socket.once('secureConnect', () => {
          resolve(String(socket.getPeerCertificate().subject.CN));
          socket.destroy();
        });
        socket.once('error', reject);
      });
    assert.equal(await cn(), 'node1');
    a.transport.updateTls(peerTls(fx, fx.certs.nodes.get('node4')!));
    assert.equal(await cn(), 'node4');
  });
});
