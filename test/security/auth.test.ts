// Authentication and role-based access on a real 3-process cluster: etcd's errors and codes for a
// missing, wrong, expired or revoked credential with no data returned or changed; a role limited to
// /app/ cannot read, write, watch or txn outside it (failure branches and ranged compares
// included); admin RPCs need root; the gateway takes the Authorization header; and no password or
// token ever reaches a log line, the LMDB files (Raft log) or a snapshot.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ProcessCluster } from '../support/cluster.ts';
import { AuthTestClient, failure } from './auth-client.ts';
import { sleep } from './support.ts';

const TOKEN_TTL_SECONDS = 3;
const secret = (label: string) => `${label}-${randomBytes(12).toString('hex')}`;
const rootPassword = secret('rootpw');
const alicePassword = secret('alicepw');
const aliceNewPassword = secret('alicenew');
const bobPassword = secret('bobpw');
const b = (s: string) => Buffer.from(s);
/** Every token any node issued during the test: none may be found on disk or in a log. */
const tokens: string[] = [];

/** Every file under `dir`, concatenated. */
function allBytes(dir: string): Buffer {
  const parts: Buffer[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) parts.push(allBytes(path));
    else parts.push(readFileSync(path));
  }
  return Buffer.concat(parts);
}

describe('auth and RBAC (real processes)', { timeout: 240_000 }, () => {
  let cluster: ProcessCluster;
  let root: AuthTestClient;
  let alice: AuthTestClient;
  let anonymous: AuthTestClient;

  const login = async (client: AuthTestClient, name: string, password: string) => tokens.push(await client.login(name, password));
  /**
   * Each node checks calls against its own applied auth store (docs/SECURITY.md): AuthStatus is a
   * linearizable read, so once every node answered it, every node has applied the last change.
   */
  const settle = () => Promise.all([root, alice, anonymous].map((client) => client.call('Auth', 'authStatus', {})));
  const rootGet = async (key: string) => (await root.call('KV', 'range', { key: b(key) })).kvs as { value: Buffer }[];

  before(async () => {
    // A small snapshot count makes every node write state-machine snapshots (with the auth store) to LMDB.
    cluster = await ProcessCluster.start({ nodes: 3, extraArgs: ['--auth-token-ttl', String(TOKEN_TTL_SECONDS), '--snapshot-count', '20'] });
    root = new AuthTestClient(cluster.endpoint(0));
    alice = new AuthTestClient(cluster.endpoint(1));
    anonymous = new AuthTestClient(cluster.endpoint(2));
    await root.call('KV', 'put', { key: b('/secret/x'), value: b('top') });
    await root.call('Auth', 'userAdd', { name: 'root', password: rootPassword });
    await root.call('Auth', 'userGrantRole', { user: 'root', role: 'root' });
    await root.call('Auth', 'roleAdd', { name: 'app' });
    await root.call('Auth', 'roleGrantPermission', {
      name: 'app',
      perm: { permType: 'READWRITE', key: b('/app/'), rangeEnd: b('/app0') },
    });
    await root.call('Auth', 'userAdd', { name: 'alice', password: alicePassword });
    await root.call('Auth', 'userGrantRole', { user: 'alice', role: 'app' });
    await root.call('Auth', 'authEnable', {});
    await settle();
    await login(root, 'root', rootPassword);
  });
  after(async () => {
    root?.close();
    alice?.close();
    anonymous?.close();
    await cluster?.stop();
  });

  it('AuthStatus reports enabled and the auth revision', async () => {
    const status = await root.call('Auth', 'authStatus', {});
    assert.equal(status.enabled, true);
    assert.ok(Number(status.authRevision) >= 8);
  });

  it('no token: "user name is empty" (INVALID_ARGUMENT); nothing read or written', async () => {
    const read = await failure(anonymous.call('KV', 'range', { key: b('/secret/x') }));
    assert.equal(read.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(read.details, 'etcdserver: user name is empty');
    const write = await failure(anonymous.call('KV', 'put', { key: b('/app/anon'), value: b('x') }));
    assert.equal(write.details, 'etcdserver: user name is empty');
    assert.equal((await rootGet('/app/anon')).length, 0);
  });

  it('wrong password or unknown user: etcd\'s "authentication failed" (INVALID_ARGUMENT)', async () => {
    for (const [name, password] of [['alice', 'not-the-password'], ['nobody', alicePassword]]) {
      const error = await failure(anonymous.call('Auth', 'authenticate', { name, password }));
      assert.equal(error.code, grpc.status.INVALID_ARGUMENT);
      assert.equal(error.details, 'etcdserver: authentication failed, invalid user ID or password');
    }
  });

  it('a made-up token: "invalid auth token" (UNAUTHENTICATED)', async () => {
    const forger = new AuthTestClient(cluster.endpoint(0));
    forger.token = randomBytes(16).toString('hex');
    const error = await failure(forger.call('KV', 'range', { key: b('/app/a') }));
    assert.equal(error.code, grpc.status.UNAUTHENTICATED);
    assert.equal(error.details, 'etcdserver: invalid auth token');
    forger.close();
  });

  it('a /app/ role reads and writes under /app/ and nowhere else', async () => {
    await login(alice, 'alice', alicePassword);
    await alice.call('KV', 'put', { key: b('/app/a'), value: b('1') });
    assert.equal((await alice.call('KV', 'range', { key: b('/app/a') })).kvs[0].value.toString(), '1');
    const prefix = await alice.call('KV', 'range', { key: b('/app/'), rangeEnd: b('/app0') });
    assert.equal(prefix.kvs.length, 1);

    const denied = [
      alice.call('KV', 'range', { key: b('/secret/x') }),
      alice.call('KV', 'range', { key: b('/app/'), rangeEnd: b('/b') }),
      alice.call('KV', 'range', { key: b('\0'), rangeEnd: b('\0') }),
      alice.call('KV', 'put', { key: b('/secret/x'), value: b('pwned') }),
      alice.call('KV', 'deleteRange', { key: b('/secret/'), rangeEnd: b('/secret0') }),
    ];
    for (const pending of denied) {
      const error = await failure(pending);
      assert.equal(error.code, grpc.status.PERMISSION_DENIED);
      assert.equal(error.details, 'etcdserver: permission denied');
    }
    assert.equal((await rootGet('/secret/x'))[0].value.toString(), 'top');
  });

  it('Txn: every op of both branches and every compare is checked, nested txns too', async () => {
    await login(alice, 'alice', alicePassword);
    const put = (key: string) => ({ requestPut: { key: b(key), value: b('txn') } });
    const cases = [
      // The failure branch writes outside /app/ (the compare fails, so it would run).
      { compare: [{ key: b('/app/a'), target: 'VALUE', result: 'EQUAL', value: b('nope') }], success: [put('/app/t')], failure: [put('/secret/t')] },
      // A read outside /app/ in the success branch.
      { compare: [], success: [{ requestRange: { key: b('/secret/x') } }], failure: [] },
      // A ranged compare reaching outside /app/.
      { compare: [{ key: b('/app/'), rangeEnd: b('/b'), target: 'VERSION', result: 'GREATER', version: '0' }], success: [put('/app/t')], failure: [] },
      // A compare on a key outside.
      { compare: [{ key: b('/secret/x'), target: 'VALUE', result: 'EQUAL', value: b('top') }], success: [put('/app/t')], failure: [] },
      // Nested, in the failure branch.
      { compare: [], success: [], failure: [{ requestTxn: { compare: [], success: [put('/secret/nested')], failure: [] } }] },
    ];
    for (const request of cases) {
      const error = await failure(alice.call('KV', 'txn', request));
      assert.equal(error.code, grpc.status.PERMISSION_DENIED, JSON.stringify(request));
    }
    assert.equal((await rootGet('/secret/t')).length, 0);
    assert.equal((await rootGet('/secret/nested')).length, 0);
    assert.equal((await rootGet('/app/t')).length, 0);
    const ok = await alice.call('KV', 'txn', {
      compare: [{ key: b('/app/a'), target: 'VALUE', result: 'EQUAL', value: b('1') }],
      success: [put('/app/t')],
      failure: [put('/app/u')],
    });
    assert.equal(ok.succeeded, true);
  });

  it('Watch: created and canceled with "permission denied" outside /app/, served inside', async () => {
    await login(alice, 'alice', alicePassword);
    const outside = await alice.watchOnce('/secret/', '/secret0');
    assert.equal(outside.created, true);
    assert.equal(outside.canceled, true);
    assert.match(outside.cancelReason, /etcdserver: permission denied/);
    const inside = await alice.watchOnce('/app/', '/app0');
    assert.equal(inside.created, true);
    assert.equal(inside.canceled, false);
  });

  it('admin RPCs need root: Compact, MemberAdd, Snapshot hash, AuthDisable, UserAdd', async () => {
    await login(alice, 'alice', alicePassword);
    const calls = [
      () => alice.call('KV', 'Compact', { revision: '1' }),
      () => alice.call('Cluster', 'MemberAdd', { peerURLs: ['http://127.0.0.1:1'] }),
      () => alice.call('Maintenance', 'HashKV', { revision: '0' }),
      () => alice.call('Auth', 'AuthDisable', {}),
      () => alice.call('Auth', 'UserAdd', { name: 'mallory', password: 'x' }),
      () => alice.call('Auth', 'UserGrantRole', { user: 'alice', role: 'root' }),
    ];
    for (const call of calls) assert.equal((await failure(call())).code, grpc.status.PERMISSION_DENIED);
    assert.equal((await root.call('Auth', 'authStatus', {})).enabled, true);
    assert.deepEqual((await root.call('Auth', 'userGet', { name: 'alice' })).roles, ['app']);
    // MemberList and Status stay open to any client (etcd's).
    assert.equal((await anonymous.call('Cluster', 'memberList', {})).members.length, 3);
  });

  it('LeaseRevoke needs WRITE on every key attached to the lease', async () => {
    await login(alice, 'alice', alicePassword);
    const lease = await alice.call('Lease', 'leaseGrant', { TTL: '60' });
    await login(root, 'root', rootPassword);
    await root.call('KV', 'put', { key: b('/secret/leased'), value: b('v'), lease: lease.ID });
    const error = await failure(alice.call('Lease', 'leaseRevoke', { ID: lease.ID }));
    assert.equal(error.code, grpc.status.PERMISSION_DENIED);
    assert.equal((await rootGet('/secret/leased')).length, 1);
  });

  it('a Lock waiting while its permission is revoked is refused when it would be granted (each step is checked again)', async () => {
    await login(root, 'root', rootPassword);
    await root.call('Auth', 'roleAdd', { name: 'locker' });
    await root.call('Auth', 'roleGrantPermission', { name: 'locker', perm: { permType: 'READWRITE', key: b('/locks/'), rangeEnd: b('/locks0') } });
    await root.call('Auth', 'userGrantRole', { user: 'alice', role: 'locker' });
    await settle();
    await login(alice, 'alice', alicePassword); // her old token went stale with her own change
    const held = await root.call('Lock', 'lock', { name: b('/locks/m') });
    const waiting = failure(alice.call('Lock', 'lock', { name: b('/locks/m') }));
    // alice's waiter key is in, behind root's
    const waiters = async () => (await root.call('KV', 'range', { key: b('/locks/m/'), rangeEnd: b('/locks/m0') })).kvs.length;
    for (let i = 0; i < 50 && (await waiters()) < 2; i++) await sleep(100);
    assert.equal(await waiters(), 2);
    await root.call('Auth', 'roleRevokePermission', { role: 'locker', key: b('/locks/'), rangeEnd: b('/locks0') });
    await settle();
    await root.call('Lock', 'unlock', { key: held.key });
    const error = await waiting;
    assert.equal(error.code, grpc.status.PERMISSION_DENIED, error.message);
    assert.match(error.message, /permission denied/);
  });

  it('a password change invalidates tokens; the old password no longer authenticates', async () => {
    await login(alice, 'alice', alicePassword);
    const old = alice.token;
    await alice.call('KV', 'range', { key: b('/app/a') });
    await root.call('Auth', 'userChangePassword', { name: 'alice', password: aliceNewPassword });
    await settle();
    const onOtherNode = new AuthTestClient(cluster.endpoint(1));
    onOtherNode.token = old;
    const error = await failure(onOtherNode.call('KV', 'range', { key: b('/app/a') }));
    assert.equal(error.code, grpc.status.UNAUTHENTICATED);
    assert.equal(error.details, 'etcdserver: invalid auth token');
    onOtherNode.close();
    assert.equal((await failure(alice.login('alice', alicePassword))).code, grpc.status.INVALID_ARGUMENT);
    await login(alice, 'alice', aliceNewPassword);
    await alice.call('KV', 'range', { key: b('/app/a') });
  });

  it('revoking a role invalidates the user\'s tokens; deleting a user does too', async () => {
    await root.call('Auth', 'userAdd', { name: 'bob', password: bobPassword });
    await root.call('Auth', 'userGrantRole', { user: 'bob', role: 'app' });
    await settle();
    const bob = new AuthTestClient(cluster.endpoint(2));
    await login(bob, 'bob', bobPassword);
    await bob.call('KV', 'range', { key: b('/app/a') });
    await root.call('Auth', 'userRevokeRole', { name: 'bob', role: 'app' });
    await settle();
    assert.equal((await failure(bob.call('KV', 'range', { key: b('/app/a') }))).code, grpc.status.UNAUTHENTICATED);
    await login(bob, 'bob', bobPassword);
    assert.equal((await failure(bob.call('KV', 'range', { key: b('/app/a') }))).code, grpc.status.PERMISSION_DENIED);
    await root.call('Auth', 'userDelete', { name: 'bob' });
    await settle();
    assert.equal((await failure(bob.call('KV', 'range', { key: b('/app/a') }))).code, grpc.status.UNAUTHENTICATED);
    bob.close();
  });

  it('an unused token expires after --auth-token-ttl', async () => {
    const carol = new AuthTestClient(cluster.endpoint(0));
    await login(carol, 'alice', aliceNewPassword);
    await carol.call('KV', 'range', { key: b('/app/a') });
    await sleep((TOKEN_TTL_SECONDS + 1) * 1000);
    const error = await failure(carol.call('KV', 'range', { key: b('/app/a') }));
    assert.equal(error.code, grpc.status.UNAUTHENTICATED);
    carol.close();
  });

  it('the JSON gateway passes the Authorization header as the token', async () => {
    await login(alice, 'alice', aliceNewPassword);
    const post = (path: string, body: object, token?: string) =>
      fetch(`http://${cluster.endpoint(1)}${path}`, {
        method: 'POST',
        headers: token === undefined ? {} : { Authorization: token },
        body: JSON.stringify(body),
      });
    const key = (s: string) => Buffer.from(s).toString('base64');
    const ok = await post('/v3/kv/range', { key: key('/app/a') }, alice.token ?? '');
    assert.equal(ok.status, 200);
    assert.equal(((await ok.json()) as { kvs: unknown[] }).kvs.length, 1);
    const denied = await post('/v3/kv/range', { key: key('/secret/x') }, alice.token ?? '');
    assert.equal(denied.status, 403);
    const anonymousRead = await post('/v3/kv/range', { key: key('/app/a') });
    assert.equal(anonymousRead.status, 400);
    assert.doesNotMatch(await anonymousRead.text(), /"kvs"/);
  });

  it('AuthDisable by root turns checks off again; no password or token is in a log, LMDB file or snapshot', async () => {
    await login(root, 'root', rootPassword);
    // Enough writes for every node to take a state-machine snapshot (--snapshot-count 20).
    for (let i = 0; i < 30; i++) await root.call('KV', 'put', { key: b(`/app/fill/${i}`), value: b('x') });
    await root.call('Auth', 'authDisable', {});
    await settle();
    await anonymous.call('KV', 'range', { key: b('/secret/x') });
    await root.call('Auth', 'authEnable', {});
    await sleep(500);
    const snapshot = await root.call('Maintenance', 'status', {});
    assert.ok(Number(snapshot.raftAppliedIndex) > 20);
    await cluster.stop({ keepData: true });
    const everything = allBytes(cluster.root);
    assert.ok(everything.includes(b('/secret/x')), 'the scan reads the data files (no encryption at rest here)');
    assert.ok(everything.includes(b('scrypt$')), 'password hashes are stored');
    assert.ok(everything.includes(b('"component":"audit"')), 'the audit log is written');
    for (const needle of [rootPassword, alicePassword, aliceNewPassword, bobPassword, ...tokens]) {
      assert.equal(everything.includes(b(needle)), false, `a secret leaked: ${needle.slice(0, 6)}...`);
    }
  });
});
