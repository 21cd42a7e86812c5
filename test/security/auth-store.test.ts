// The replicated auth store alone: etcd's errors for each change, root semantics, permission
// intervals (single keys, ranges, prefixes, open ends, merged grants) and the snapshot image.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AuthStore, PermType } from '../../src/server/auth-store.ts';
import type { AuthCommand } from '../../src/server/auth-store.ts';
import { decodeSnapshotData, encodeSnapshotData } from '../../src/server/snapshots.ts';
import { MvccStore } from '../../src/mvcc/index.ts';

const b = (s: string) => new Uint8Array(Buffer.from(s));
const none = new Uint8Array(0);
const hash = 'scrypt$14$8$1$c2FsdA==$aGFzaA==';

function storeWith(commands: AuthCommand[]): AuthStore {
  const store = new AuthStore();
  for (const cmd of commands) store.apply(cmd);
  return store;
}

const messageOf = (run: () => unknown) => {
  try {
    run();
  } catch (error) {
    return (error as Error).message;
  }
  return 'no error';
};

describe('AuthStore', () => {
  it('AuthEnable needs a root user with the root role, with etcd\'s errors', () => {
    const store = new AuthStore();
    assert.equal(messageOf(() => store.apply({ action: 'enable' })), 'etcdserver: root user does not exist');
    store.apply({ action: 'userAdd', name: 'root', passwordHash: hash, noPassword: false });
    assert.equal(messageOf(() => store.apply({ action: 'enable' })), 'etcdserver: root user does not have root role');
    store.apply({ action: 'userGrantRole', user: 'root', role: 'root' });
    store.apply({ action: 'enable' });
    assert.equal(store.enabled, true);
    assert.equal(messageOf(() => store.apply({ action: 'userDelete', name: 'root' })), 'etcdserver: invalid auth management');
    assert.equal(messageOf(() => store.apply({ action: 'userRevokeRole', name: 'root', role: 'root' })), 'etcdserver: invalid auth management');
  });

  it('answers etcd\'s errors for duplicates and unknown names, and a failed change leaves the revision alone', () => {
    const store = storeWith([{ action: 'userAdd', name: 'a', passwordHash: hash, noPassword: false }, { action: 'roleAdd', name: 'r' }]);
    const revision = store.revision;
    assert.equal(messageOf(() => store.apply({ action: 'userAdd', name: 'a', passwordHash: hash, noPassword: false })), 'etcdserver: user name already exists');
    assert.equal(messageOf(() => store.apply({ action: 'userAdd', name: '', passwordHash: hash, noPassword: false })), 'etcdserver: user name is empty');
    assert.equal(messageOf(() => store.apply({ action: 'roleAdd', name: 'r' })), 'etcdserver: role name already exists');
    assert.equal(messageOf(() => store.apply({ action: 'userGrantRole', user: 'a', role: 'nope' })), 'etcdserver: role name not found');
    assert.equal(messageOf(() => store.apply({ action: 'userGrantRole', user: 'x', role: 'r' })), 'etcdserver: user name not found');
    assert.equal(messageOf(() => store.apply({ action: 'userRevokeRole', name: 'a', role: 'r' })), 'etcdserver: role is not granted to the user');
    assert.equal(
      messageOf(() => store.apply({ action: 'roleRevokePermission', role: 'r', key: b('k'), rangeEnd: none })),
      'etcdserver: permission is not granted to the role',
    );
    assert.equal(store.revision, revision);
  });

  it('checks ranges against the union of a user\'s grants', () => {
    const store = storeWith([
      { action: 'userAdd', name: 'u', passwordHash: hash, noPassword: false },
      { action: 'roleAdd', name: 'app' },
      { action: 'roleAdd', name: 'more' },
      { action: 'roleGrantPermission', name: 'app', perm: { permType: PermType.READWRITE, key: b('/app/'), rangeEnd: b('/app0') } },
      { action: 'roleGrantPermission', name: 'app', perm: { permType: PermType.READ, key: b('/cfg'), rangeEnd: none } },
      { action: 'roleGrantPermission', name: 'more', perm: { permType: PermType.READ, key: b('/app0'), rangeEnd: b('/b') } },
      { action: 'userGrantRole', user: 'u', role: 'app' },
    ]);
    assert.equal(store.isPermitted('u', 'write', b('/app/x'), none), true);
    assert.equal(store.isPermitted('u', 'read', b('/app/'), b('/app0')), true);
    assert.equal(store.isPermitted('u', 'read', b('/app/'), b('/b')), false);
    assert.equal(store.isPermitted('u', 'read', b('/cfg'), none), true);
    assert.equal(store.isPermitted('u', 'write', b('/cfg'), none), false);
    assert.equal(store.isPermitted('u', 'read', b('/cfg/x'), none), false);
    assert.equal(store.isPermitted('u', 'read', b('\0'), b('\0')), false);
    assert.equal(store.isPermitted('u', 'read', b('/app/'), new Uint8Array([0])), false);
    store.apply({ action: 'userGrantRole', user: 'u', role: 'more' });
    // Two adjacent grants cover one range together.
    assert.equal(store.isPermitted('u', 'read', b('/app/'), b('/b')), true);
    assert.equal(store.isPermitted('u', 'write', b('/app/'), b('/b')), false);
    store.apply({ action: 'roleDelete', role: 'app' });
    assert.equal(store.isPermitted('u', 'write', b('/app/x'), none), false);
    assert.equal(store.isPermitted('nobody', 'read', b('/app/x'), none), false);
  });

  it('the root role may do everything; changes bump the user epoch that tokens carry', () => {
    const store = storeWith([
      { action: 'userAdd', name: 'root', passwordHash: hash, noPassword: false },
      { action: 'userGrantRole', user: 'root', role: 'root' },
    ]);
    assert.equal(store.isPermitted('root', 'write', b('\0'), b('\0')), true);
    assert.equal(store.isRoot('root'), true);
    const epoch = store.user('root')?.epoch;
    store.apply({ action: 'userChangePassword', name: 'root', passwordHash: hash });
    assert.notEqual(store.user('root')?.epoch, epoch);
  });

  it('travels in the snapshot image, and images without it decode to an empty store', () => {
    const auth = storeWith([
      { action: 'userAdd', name: 'root', passwordHash: hash, noPassword: false },
      { action: 'userGrantRole', user: 'root', role: 'root' },
      { action: 'enable' },
    ]);
    const state = { store: new MvccStore(), alarms: new Set<string>(), members: new Map(), removed: new Set<number>(), auth, leaseRenewedAt: new Map<number, number>() };
    const decoded = decodeSnapshotData(encodeSnapshotData(state)).auth;
    assert.equal(decoded.enabled, true);
    assert.equal(decoded.revision, auth.revision);
    assert.deepEqual(decoded.user('root')?.roles, ['root']);
    assert.equal(decodeSnapshotData(new Uint8Array(0)).auth.enabled, false);
  });
});
