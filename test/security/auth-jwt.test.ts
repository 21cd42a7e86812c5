// JWT auth tokens (--auth-token jwt,...) on a real 3-process cluster with openssl-made ES256 keys:
// a token issued by one member works on every member (n3 holds only the public key: it verifies
// but cannot issue); an expired, tampered or foreign-key token is etcd's "invalid auth token"; a
// password change invalidates earlier tokens on every member while an unrelated auth change does
// not; etcdctl --user works; no token reaches a log.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { probeEndpoint } from '../../src/cli/index.ts';
import { generateJwtKeyPair } from '../../src/security/index.ts';
import type { JwtKeyPair } from '../../src/security/index.ts';
import { freePort, ProcessCluster } from '../support/cluster.ts';
import { AuthTestClient, failure } from './auth-client.ts';
import { hasEtcdctl, hasOpenssl, sleep, spawnNode } from './support.ts';

const TTL_SECONDS = 4;
const b = (s: string) => Buffer.from(s);
const rootPassword = `root-${randomBytes(8).toString('hex')}`;
const alicePassword = `alice-${randomBytes(8).toString('hex')}`;
const aliceNewPassword = `alice-new-${randomBytes(8).toString('hex')}`;
const tokens: string[] = [];

interface Member {
  name: string;
  clientPort: number;
  peerPort: number;
  logPath: string;
  proc: ChildProcess | null;
}

/** Three plaintext members; n1 and n2 sign and verify, n3 only verifies (pub-key alone). */
async function startCluster(root: string, keys: JwtKeyPair): Promise<Member[]> {
  const members: Member[] = [];
  for (const name of ['n1', 'n2', 'n3']) {
    members.push({ name, clientPort: await freePort(), peerPort: await freePort(), logPath: join(root, `${name}.log`), proc: null });
  }
  const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(',');
  for (const m of members) {
    const keyOptions = m.name === 'n3' ? `pub-key=${keys.pubKeyFile}` : `pub-key=${keys.pubKeyFile},priv-key=${keys.privKeyFile}`;
    m.proc = spawnNode([
      '--name', m.name, '--data-dir', join(root, m.name),
      '--listen-client-urls', `http://127.0.0.1:${m.clientPort}`, '--listen-peer-urls', `http://127.0.0.1:${m.peerPort}`,
      '--initial-cluster', initialCluster, '--log-level', 'debug', '--unsafe-no-fsync',
      '--auth-token', `jwt,${keyOptions},sign-method=ES256,ttl=${TTL_SECONDS}s`,
    ], m.logPath);
  }
  await Promise.all(members.map((m) => probeEndpoint(`127.0.0.1:${m.clientPort}`, 60_000)));
  return members;
}

/** A JWT with the same claims, signed by a key the cluster does not know. */
function forge(token: string, foreignKeyFile: string): string {
  const [header, payload] = token.split('.');
  const signed = spawnSync('openssl', ['dgst', '-sha256', '-sign', foreignKeyFile], { input: `${header}.${payload}` });
  // openssl writes a DER ECDSA signature; JWS wants r||s. The cluster refuses either way, which is the point.
  return `${header}.${payload}.${Buffer.from(signed.stdout).toString('base64url')}`;
}

function tamper(token: string): string {
  const [header, payload, signature] = token.split('.');
  const flipped = signature[5] === 'A' ? 'B' : 'A';
  return `${header}.${payload}.${signature.slice(0, 5)}${flipped}${signature.slice(6)}`;
}

describe('JWT auth tokens (real processes)', { skip: !hasOpenssl && 'openssl not installed', timeout: 240_000 }, () => {
  let root: string;
  let members: Member[];
  let admin: AuthTestClient;
  let foreign: JwtKeyPair;
  const clients: AuthTestClient[] = [];
  const endpoint = (i: number) => `127.0.0.1:${members[i].clientPort}`;
  const clientOn = (i: number, token: string | null = null) => {
    const client = new AuthTestClient(endpoint(i));
    client.token = token;
    clients.push(client);
    return client;
  };
  const login = async (client: AuthTestClient, name: string, password: string) => {
    const token = await client.login(name, password);
    tokens.push(token);
    return token;
  };
  /** AuthStatus is a linearizable read: once each member answered, each applied every earlier change. */
  const settle = () => Promise.all(members.map((_, i) => clientOn(i).call('Auth', 'authStatus', {})));

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'tessera-jwt-cluster-'));
    const keys = generateJwtKeyPair(join(root, 'keys'), 'jwt', 'ec-p256');
    foreign = generateJwtKeyPair(join(root, 'keys'), 'foreign', 'ec-p256');
    members = await startCluster(root, keys);
    admin = clientOn(0);
    await admin.call('Auth', 'userAdd', { name: 'root', password: rootPassword });
    await admin.call('Auth', 'userGrantRole', { user: 'root', role: 'root' });
    await admin.call('Auth', 'roleAdd', { name: 'app' });
    await admin.call('Auth', 'roleGrantPermission', { name: 'app', perm: { permType: 'READWRITE', key: b('/app/'), rangeEnd: b('/app0') } });
    await admin.call('Auth', 'userAdd', { name: 'alice', password: alicePassword });
    await admin.call('Auth', 'userGrantRole', { user: 'alice', role: 'app' });
    await admin.call('Auth', 'authEnable', {});
    await settle();
    await login(admin, 'root', rootPassword);
  });
  after(async () => {
    for (const client of clients) client.close();
    for (const m of members ?? []) m.proc?.kill('SIGKILL');
    await sleep(200);
    rmSync(root, { recursive: true, force: true });
  });

  it('a token from n1 works on n2 and on the verify-only n3; n3 cannot issue one', async () => {
    const alice = clientOn(0);
    const token = await login(alice, 'alice', alicePassword);
    assert.equal(token.split('.').length, 3, 'a JWT');
    const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
    assert.equal(claims.username, 'alice');
    assert.ok(Number.isSafeInteger(claims.revision) && claims.exp > Date.now() / 1000);
    await alice.call('KV', 'put', { key: b('/app/a'), value: b('1') });
    for (const i of [1, 2]) {
      const other = clientOn(i, token);
      await other.call('KV', 'put', { key: b(`/app/from-n${i + 1}`), value: b('x') });
      assert.equal((await other.call('KV', 'range', { key: b('/app/a') })).kvs[0].value.toString(), '1');
      assert.equal((await failure(other.call('KV', 'range', { key: b('/secret') }))).code, grpc.status.PERMISSION_DENIED);
      other.close();
    }
    const onVerifyOnly = await failure(clientOn(2).call('Auth', 'authenticate', { name: 'alice', password: alicePassword }));
    assert.equal(onVerifyOnly.code, grpc.status.UNKNOWN);
    assert.equal(onVerifyOnly.details, 'auth: token signing attempted with verify-only key');
    alice.close();
  });

  it('a tampered signature or a token signed by another key: "invalid auth token" on every member', async () => {
    const token = await login(clientOn(1), 'alice', alicePassword);
    for (const bad of [tamper(token), forge(token, foreign.privKeyFile), `${token.split('.')[0]}.${token.split('.')[1]}.`]) {
      for (const i of [0, 1, 2]) {
        const error = await failure(clientOn(i, bad).call('KV', 'range', { key: b('/app/a') }));
        assert.equal(error.code, grpc.status.UNAUTHENTICATED);
        assert.equal(error.details, 'etcdserver: invalid auth token');
      }
    }
  });

  it('a password change invalidates earlier tokens everywhere; an unrelated auth change does not', async () => {
    const before = await login(clientOn(0), 'alice', alicePassword);
    await admin.call('Auth', 'roleAdd', { name: 'unrelated' });
    await settle();
    await clientOn(2, before).call('KV', 'range', { key: b('/app/a') });
    await admin.call('Auth', 'userChangePassword', { name: 'alice', password: aliceNewPassword });
    await settle();
    for (const i of [0, 1, 2]) {
      const error = await failure(clientOn(i, before).call('KV', 'range', { key: b('/app/a') }));
      assert.equal(error.code, grpc.status.UNAUTHENTICATED, `member ${i + 1}`);
      assert.equal(error.details, 'etcdserver: invalid auth token');
    }
    const after = await login(clientOn(1), 'alice', aliceNewPassword);
    await clientOn(0, after).call('KV', 'range', { key: b('/app/a') });
  });

  it('an expired token is "invalid auth token"', async () => {
    const token = await login(clientOn(0), 'alice', aliceNewPassword);
    await clientOn(1, token).call('KV', 'range', { key: b('/app/a') });
    await sleep((TTL_SECONDS + 1.5) * 1000);
    for (const i of [0, 1]) {
      const error = await failure(clientOn(i, token).call('KV', 'range', { key: b('/app/a') }));
      assert.equal(error.code, grpc.status.UNAUTHENTICATED);
      assert.equal(error.details, 'etcdserver: invalid auth token');
    }
  });

  it('etcdctl --user works against the JWT cluster', (t) => {
    if (!hasEtcdctl) {
      t.diagnostic('SKIP: etcdctl not installed');
      console.log('SKIP: etcdctl not installed');
      return;
    }
    const etcdctl = (...args: string[]) => {
      const result = spawnSync('etcdctl', [`--endpoints=${endpoint(0)},${endpoint(1)}`, '--dial-timeout=3s', '--command-timeout=10s', ...args], {
        encoding: 'utf8',
        env: { ...process.env, ETCDCTL_API: '3' },
        timeout: 30_000,
      });
      return { status: result.status, out: `${result.stdout}${result.stderr}` };
    };
    const put = etcdctl(`--user=alice:${aliceNewPassword}`, 'put', '/app/etcdctl', 'jwt');
    assert.equal(put.status, 0, put.out);
    const get = etcdctl(`--user=root:${rootPassword}`, 'get', '/app/etcdctl', '--print-value-only');
    assert.equal(get.status, 0, get.out);
    assert.equal(get.out.trim(), 'jwt');
    const denied = etcdctl(`--user=alice:${aliceNewPassword}`, 'get', '/secret');
    assert.notEqual(denied.status, 0);
    assert.match(denied.out, /permission denied/);
  });

  it('no token is written to any member log', () => {
    const logs = members.map((m) => readFileSync(m.logPath, 'utf8')).join('\n');
    assert.ok(logs.includes('"component":"audit"'), 'the logs are read');
    for (const token of tokens) assert.equal(logs.includes(token), false, 'a token leaked into a log');
    for (const secret of [rootPassword, alicePassword, aliceNewPassword]) assert.equal(logs.includes(secret), false);
  });
});

describe('JWT auth tokens with a shared HS256 secret (real processes)', { timeout: 120_000 }, () => {
  let cluster: ProcessCluster;
  let dir: string;
  let secretFile: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-jwt-hs-'));
    secretFile = join(dir, 'jwt.secret');
    writeFileSync(secretFile, randomBytes(64), { mode: 0o600 });
    cluster = await ProcessCluster.start({ nodes: 2, logLevel: 'info', extraArgs: ['--auth-token', `jwt,priv-key=${secretFile},sign-method=HS256,ttl=1m`] });
  });
  after(async () => {
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a token issued by one member works on the other; one made with another secret is "invalid auth token"', async () => {
    const n1 = new AuthTestClient(cluster.endpoint(0));
    const n2 = new AuthTestClient(cluster.endpoint(1));
    try {
      await n1.call('Auth', 'userAdd', { name: 'root', password: rootPassword });
      await n1.call('Auth', 'userGrantRole', { user: 'root', role: 'root' });
      await n1.call('Auth', 'authEnable', {});
      await n2.call('Auth', 'authStatus', {}).catch(() => undefined); // n2 has applied the enable
      n2.token = await n1.login('root', rootPassword);
      assert.equal(JSON.parse(Buffer.from(n2.token.split('.')[0], 'base64url').toString()).alg, 'HS256');
      await n2.call('KV', 'put', { key: b('/hs/k'), value: b('v') });
      assert.equal((await n2.call('KV', 'range', { key: b('/hs/k') })).kvs.length, 1);
      const [header, payload] = n2.token.split('.');
      const foreign = createHmac('sha256', randomBytes(64)).update(`${header}.${payload}`).digest('base64url');
      n2.token = `${header}.${payload}.${foreign}`;
      const error = await failure(n2.call('KV', 'range', { key: b('/hs/k') }));
      assert.equal(error.details, 'etcdserver: invalid auth token');
    } finally {
      n1.close();
      n2.close();
    }
  });
});
