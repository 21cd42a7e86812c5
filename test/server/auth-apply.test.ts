// Authorization re-checked at apply time, on the real ReplicaHost and Replica over memory storage:
// a write checked at auth revision r whose permission is revoked before it applies is refused (as
// etcd's authApplierV3 does), on every replica alike, also when the log is replayed; an auth change
// that does not concern the write does not refuse it; a password change after the check answers
// etcd's "revision of auth store is old"; and without auth a command carries no stamp at all.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { MemoryStorage } from '../../src/raft/index.ts';
import type { AuthStamp } from '../../src/api/index.ts';
import type { AuthCommand } from '../../src/server/auth-store.ts';
import { decodeBatch, stamped } from '../../src/server/commands.ts';
import type { Command } from '../../src/server/commands.ts';
import type { ReplicaHost } from '../../src/server/host.ts';
import type { Replica } from '../../src/server/replica.ts';
import { bootstrappedStorage, settle as settleTurns, singleNodeHost } from './single-node.ts';

const b = (s: string) => new Uint8Array(Buffer.from(s));
const none = new Uint8Array(0);
const hash = 'scrypt$14$8$1$c2FsdA==$aGFzaA==';

const putRequest = (key: string, value: string) => ({ key: b(key), value: b(value), lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false });
const put = (key: string, value: string, stamp?: AuthStamp): Command => stamped({ op: 'put', req: putRequest(key, value) }, stamp);

const newStorage = bootstrappedStorage;
const settle = (host: ReplicaHost) => settleTurns(host, 30);

/** root, a role "app" with READWRITE on [/app/, /app0), alice holding it, carol holding "other"; auth on. */
const SETUP: AuthCommand[] = [
  { action: 'userAdd', name: 'root', passwordHash: hash, noPassword: false },
  { action: 'userGrantRole', user: 'root', role: 'root' },
  { action: 'roleAdd', name: 'app' },
  { action: 'roleGrantPermission', name: 'app', perm: { permType: 2, key: b('/app/'), rangeEnd: b('/app0') } },
  { action: 'roleAdd', name: 'other' },
  { action: 'userAdd', name: 'alice', passwordHash: hash, noPassword: false },
  { action: 'userGrantRole', user: 'alice', role: 'app' },
  { action: 'userAdd', name: 'carol', passwordHash: hash, noPassword: false },
  { action: 'userGrantRole', user: 'carol', role: 'other' },
  { action: 'enable' },
];

async function authedHost(): Promise<{ host: ReplicaHost; replica: Replica; storage: MemoryStorage }> {
  const storage = newStorage();
  const host = singleNodeHost(storage, 1);
  await settle(host);
  const replica = host.replicas.get(1)!;
  const setup = SETUP.map((req) => replica.propose({ op: 'auth', req }));
  await settle(host);
  await Promise.all(setup);
  assert.equal(replica.auth.enabled, true);
  return { host, replica, storage };
}

/** What the API's check returns for alice now, after verifying she may write /app/x (as auth.ts does). */
function checkAlice(replica: Replica, cert = false): AuthStamp {
  assert.equal(replica.auth.permits('alice', { kind: 'write', key: b('/app/x'), rangeEnd: none }), true);
  return cert ? { user: 'alice', revision: replica.auth.revision, cert: true } : { user: 'alice', revision: replica.auth.revision };
}

const get = (replica: Replica, key: string) =>
  replica.store.range({
    key: b(key), rangeEnd: none, limit: 0, revision: 0, sortOrder: 'none', sortTarget: 'key', serializable: true,
    keysOnly: false, countOnly: false, minModRevision: 0, maxModRevision: 0, minCreateRevision: 0, maxCreateRevision: 0,
  }).kvs;

const outcome = (pending: Promise<unknown>) =>
  pending.then(
    () => 'applied',
    (error: Error) => error.message,
  );

describe('authorization re-checked at apply time', () => {
  it('a write checked before a revoke that applies first is refused, on replay too', async () => {
    const { host, replica, storage } = await authedHost();
    const stamp = checkAlice(replica);
    // The revoke is proposed (by another node, in reality) before alice's write reaches the log.
    const revoke = replica.propose({ op: 'auth', req: { action: 'roleRevokePermission', role: 'app', key: b('/app/'), rangeEnd: b('/app0') } });
    const write = replica.propose(put('/app/x', 'after-revoke', stamp));
    await settle(host);
    await revoke;
    assert.equal(await outcome(write), 'etcdserver: permission denied');
    assert.equal(get(replica, '/app/x').length, 0, 'nothing was written');
    const revision = replica.store.currentRevision;

    // Every replica decides alike: replaying the same log reaches the same state.
    const replayed = singleNodeHost(storage, 2);
    await settle(replayed);
    assert.equal(get(replayed.replicas.get(1)!, '/app/x').length, 0);
    assert.equal(replayed.replicas.get(1)!.store.currentRevision, revision);
  });

  it('txn, delete and compact are re-checked the same way; a root stamp still passes', async () => {
    const { host, replica } = await authedHost();
    const stamp = checkAlice(replica);
    const rootStamp: AuthStamp = { user: 'root', revision: replica.auth.revision };
    const revoke = replica.propose({ op: 'auth', req: { action: 'userRevokeRole', name: 'alice', role: 'app' } });
    const txn = replica.propose(stamped({ op: 'txn', req: { compare: [], success: [{ type: 'put', put: putRequest('/app/t', 'v') }], failure: [] } }, stamp));
    const del = replica.propose(stamped({ op: 'deleteRange', req: { key: b('/app/'), rangeEnd: b('/app0'), prevKv: false } }, stamp));
    const compact = replica.propose(stamped({ op: 'compact', req: { revision: 1, physical: false } }, stamp));
    const rootWrite = replica.propose(put('/app/r', 'root', rootStamp));
    await settle(host);
    await revoke;
    // Her role was taken after the check: her token is invalid now (etcd: the request's auth revision is old).
    assert.equal(await outcome(txn), 'etcdserver: revision of auth store is old');
    assert.equal(await outcome(del), 'etcdserver: revision of auth store is old');
    assert.equal(await outcome(compact), 'etcdserver: revision of auth store is old');
    assert.equal(await outcome(rootWrite), 'applied');
  });

  it('an auth change that does not concern the write lets it apply (no spurious refusals)', async () => {
    const { host, replica } = await authedHost();
    const stamp = checkAlice(replica);
    const unrelated = replica.propose({ op: 'auth', req: { action: 'userRevokeRole', name: 'carol', role: 'other' } });
    const write = replica.propose(put('/app/x', 'v', stamp));
    await settle(host);
    await unrelated;
    assert.ok(replica.auth.revision > stamp.revision, 'the auth store did move');
    assert.equal(await outcome(write), 'applied');
    assert.equal(get(replica, '/app/x').length, 1);
  });

  it('a password change after the check: "revision of auth store is old" for a token, not for a certificate', async () => {
    const { host, replica } = await authedHost();
    const byToken = checkAlice(replica);
    const byCert = checkAlice(replica, true);
    const change = replica.propose({ op: 'auth', req: { action: 'userChangePassword', name: 'alice', passwordHash: hash } });
    const tokenWrite = replica.propose(put('/app/token', 'v', byToken));
    const certWrite = replica.propose(put('/app/cert', 'v', byCert));
    await settle(host);
    await change;
    assert.equal(await outcome(tokenWrite), 'etcdserver: revision of auth store is old');
    assert.equal(await outcome(certWrite), 'applied', 'a certificate identity is not invalidated by a password');
  });

  it('auth changes need root at apply too; disabling auth in between lets stamped writes through', async () => {
    const { host, replica } = await authedHost();
    const grant = replica.propose({ op: 'auth', req: { action: 'userGrantRole', user: 'carol', role: 'root' } });
    await settle(host);
    await grant;
    // carol (a client certificate's CN) is checked as root; her root role is taken before her change applies.
    const carolAsRoot: AuthStamp = { user: 'carol', revision: replica.auth.revision, cert: true };
    const demote = replica.propose({ op: 'auth', req: { action: 'userRevokeRole', name: 'carol', role: 'root' } });
    const escalate = replica.propose(stamped({ op: 'auth', req: { action: 'userGrantRole', user: 'alice', role: 'root' } }, carolAsRoot));
    await settle(host);
    await demote;
    assert.equal(await outcome(escalate), 'etcdserver: permission denied');
    assert.equal(replica.auth.isRoot('alice'), false);

    const stamp = checkAlice(replica);
    const revoke = replica.propose({ op: 'auth', req: { action: 'roleRevokePermission', role: 'app', key: b('/app/'), rangeEnd: b('/app0') } });
    const disable = replica.propose({ op: 'auth', req: { action: 'disable' } });
    const write = replica.propose(put('/app/x', 'v', stamp));
    await settle(host);
    await Promise.all([revoke, disable]);
    assert.equal(await outcome(write), 'applied', 'as etcd: with auth disabled nothing is checked');
  });

  it('with auth disabled commands carry no stamp field (zero overhead)', async () => {
    const storage = newStorage();
    const host = singleNodeHost(storage, 1);
    await settle(host);
    const write = host.replicas.get(1)!.propose(put('k', 'v', undefined));
    await settle(host);
    await write;
    const last = storage.entries(storage.lastIndex(), storage.lastIndex() + 1, Infinity)[0];
    const batch = decodeBatch(last.data);
    assert.deepEqual(Object.keys(batch.commands[0].cmd).sort(), ['op', 'req']);
  });
});
