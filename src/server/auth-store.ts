// etcd's auth store as replicated state (docs/SECURITY.md, phase 2): users, roles, key-range
// permissions, the enabled flag and the auth revision. Deterministic: it changes only by applying
// commands from the Raft log, and those carry password hashes made before proposing, never passwords.
import { ApiErrors } from '../api/index.ts';
import type { AuthNeed } from '../api/index.ts';
import { assert } from '../util/index.ts';

/** authpb.Permission.Type. */
export const PermType = { READ: 0, WRITE: 1, READWRITE: 2 } as const;
export type PermTypeValue = (typeof PermType)[keyof typeof PermType];

export interface AuthPermission {
  permType: PermTypeValue;
  key: Uint8Array;
  /** Empty = the single key; [0] = every key from `key` on; otherwise [key, rangeEnd). */
  rangeEnd: Uint8Array;
}

export interface AuthUser {
  name: string;
  /** `scrypt$N$r$p$salt$hash` (password.ts); '' for a user added with no_password. */
  passwordHash: string;
  roles: string[];
  noPassword: boolean;
  /**
   * The auth revision of the user's creation, last password change or role taken away: tokens
   * issued under another epoch stop working (also for a deleted and re-added user of the same name).
   */
  epoch: number;
}

export interface AuthRole {
  name: string;
  perms: AuthPermission[];
}

/** What the snapshot image carries. */
export interface AuthImage {
  enabled: boolean;
  revision: number;
  users: AuthUser[];
  roles: AuthRole[];
}

/** One change to the auth store: a Raft command's payload. */
export type AuthCommand =
  | { action: 'enable' }
  | { action: 'disable' }
  | { action: 'userAdd'; name: string; passwordHash: string; noPassword: boolean }
  | { action: 'userDelete'; name: string }
  | { action: 'userChangePassword'; name: string; passwordHash: string }
  | { action: 'userGrantRole'; user: string; role: string }
  | { action: 'userRevokeRole'; name: string; role: string }
  | { action: 'roleAdd'; name: string }
  | { action: 'roleDelete'; role: string }
  | { action: 'roleGrantPermission'; name: string; perm: AuthPermission }
  | { action: 'roleRevokePermission'; role: string; key: Uint8Array; rangeEnd: Uint8Array };

export const ROOT = 'root';
/** Bounds on the store (a command past them fails with etcd's "too many requests"). */
export const MAX_AUTH_USERS = 10_000;
export const MAX_AUTH_ROLES = 10_000;
export const MAX_PERMS_PER_ROLE = 1_000;

/** [lo, hi) over key bytes; hi null = no upper bound. */
interface Interval {
  lo: Buffer;
  hi: Buffer | null;
}

interface UserPerms {
  read: Interval[];
  write: Interval[];
}

export class AuthStore {
  enabled = false;
  /** etcd's auth_revision: bumped by every change. */
  revision = 1;
  private readonly users = new Map<string, AuthUser>();
  private readonly roles = new Map<string, AuthRole>();
  /** Merged permission intervals per user, rebuilt lazily after each change. */
  private readonly permCache = new Map<string, UserPerms>();

  static restore(image: AuthImage | undefined): AuthStore {
    const store = new AuthStore();
    if (image === undefined) return store;
    assert(Array.isArray(image.users) && Array.isArray(image.roles), 'malformed auth image');
    store.enabled = image.enabled;
    store.revision = image.revision;
    for (const user of image.users) store.users.set(user.name, user);
    for (const role of image.roles) store.roles.set(role.name, role);
    return store;
  }

  image(): AuthImage {
    return {
      enabled: this.enabled,
      revision: this.revision,
      users: [...this.users.values()],
      roles: [...this.roles.values()],
    };
  }

  user(name: string): AuthUser | undefined {
    return this.users.get(name);
  }

  role(name: string): AuthRole | undefined {
    return this.roles.get(name);
  }

  userNames(): string[] {
    return [...this.users.keys()].sort();
  }

  roleNames(): string[] {
    return [...this.roles.keys()].sort();
  }

  isRoot(name: string): boolean {
    return this.users.get(name)?.roles.includes(ROOT) ?? false;
  }

  /** Applies one command; returns the auth revision after it. Throws etcd's errors, changing nothing. */
  apply(cmd: AuthCommand): { revision: number } {
    this.execute(cmd);
    this.revision += 1;
    this.permCache.clear();
    return { revision: this.revision };
  }

  private execute(cmd: AuthCommand): void {
    switch (cmd.action) {
      case 'enable': {
        if (this.enabled) return;
        const root = this.users.get(ROOT);
        if (root === undefined) throw ApiErrors.rootUserNotExist();
        if (!root.roles.includes(ROOT)) throw ApiErrors.rootRoleNotExist();
        this.enabled = true;
        return;
      }
      case 'disable':
        this.enabled = false;
        return;
      case 'userAdd': {
        if (cmd.name === '') throw ApiErrors.userEmpty();
        if (this.users.has(cmd.name)) throw ApiErrors.userAlreadyExist();
        if (this.users.size >= MAX_AUTH_USERS) throw ApiErrors.authStoreFull();
        this.users.set(cmd.name, { name: cmd.name, passwordHash: cmd.passwordHash, roles: [], noPassword: cmd.noPassword, epoch: this.revision });
        return;
      }
      case 'userDelete': {
        if (this.enabled && cmd.name === ROOT) throw ApiErrors.invalidAuthMgmt();
        if (!this.users.delete(cmd.name)) throw ApiErrors.userNotFound();
        return;
      }
      case 'userChangePassword': {
        const user = this.mustUser(cmd.name);
        this.users.set(cmd.name, { ...user, passwordHash: cmd.passwordHash, noPassword: false, epoch: this.revision });
        return;
      }
      case 'userGrantRole': {
        const user = this.mustUser(cmd.user);
        if (cmd.role !== ROOT && !this.roles.has(cmd.role)) throw ApiErrors.roleNotFound();
        if (user.roles.includes(cmd.role)) return;
        this.users.set(cmd.user, { ...user, roles: [...user.roles, cmd.role].sort() });
        return;
      }
      case 'userRevokeRole': {
        if (this.enabled && cmd.name === ROOT && cmd.role === ROOT) throw ApiErrors.invalidAuthMgmt();
        const user = this.mustUser(cmd.name);
        if (!user.roles.includes(cmd.role)) throw ApiErrors.roleNotGranted();
        this.users.set(cmd.name, { ...user, roles: user.roles.filter((r) => r !== cmd.role), epoch: this.revision });
        return;
      }
      case 'roleAdd': {
        if (cmd.name === '') throw ApiErrors.roleEmpty();
        if (this.roles.has(cmd.name)) throw ApiErrors.roleAlreadyExist();
        if (this.roles.size >= MAX_AUTH_ROLES) throw ApiErrors.authStoreFull();
        this.roles.set(cmd.name, { name: cmd.name, perms: [] });
        return;
      }
      case 'roleDelete':
        return this.deleteRole(cmd.role);
      case 'roleGrantPermission':
        return this.grantPermission(cmd.name, cmd.perm);
      case 'roleRevokePermission': {
        const role = this.mustRole(cmd.role);
        const perms = role.perms.filter((p) => !(bytesEqual(p.key, cmd.key) && bytesEqual(p.rangeEnd, cmd.rangeEnd)));
        if (perms.length === role.perms.length) throw ApiErrors.permissionNotGranted();
        this.roles.set(role.name, { ...role, perms });
        return;
      }
    }
  }

  private deleteRole(name: string): void {
    if (this.enabled && name === ROOT) throw ApiErrors.invalidAuthMgmt();
    if (!this.roles.delete(name)) throw ApiErrors.roleNotFound();
    // As etcd: the role is taken from every user that had it.
    for (const user of this.users.values()) {
      if (user.roles.includes(name)) {
        this.users.set(user.name, { ...user, roles: user.roles.filter((r) => r !== name), epoch: this.revision });
      }
    }
  }

  /** As etcd: a permission on the same [key, range_end) replaces the old one's type. */
  private grantPermission(roleName: string, perm: AuthPermission): void {
    const role = this.mustRole(roleName);
    const others = role.perms.filter((p) => !(bytesEqual(p.key, perm.key) && bytesEqual(p.rangeEnd, perm.rangeEnd)));
    if (others.length >= MAX_PERMS_PER_ROLE) throw ApiErrors.authStoreFull();
    const perms = [...others, perm].sort((a, b) => Buffer.compare(a.key, b.key) || Buffer.compare(a.rangeEnd, b.rangeEnd));
    this.roles.set(role.name, { ...role, perms });
  }

  private mustUser(name: string): AuthUser {
    const user = this.users.get(name);
    if (user === undefined) throw ApiErrors.userNotFound();
    return user;
  }

  private mustRole(name: string): AuthRole {
    const role = this.roles.get(name);
    if (role === undefined) throw ApiErrors.roleNotFound();
    return role;
  }

  /** True when `userName` may do what `need` asks (the root role may do everything). */
  permits(userName: string, need: AuthNeed): boolean {
    switch (need.kind) {
      case 'read':
      case 'write':
        return this.isPermitted(userName, need.kind, need.key, need.rangeEnd);
      case 'root':
        return this.isRoot(userName);
      case 'user':
        return this.users.has(userName);
      case 'self':
        return need.user === userName || this.isRoot(userName);
      case 'role':
        return this.isRoot(userName) || (this.users.get(userName)?.roles.includes(need.role) ?? false);
    }
  }

  /**
   * True when `userName` may `kind` every key of [key, rangeEnd) (etcd's rangeEnd conventions:
   * empty = one key, [0] = to the end). The root role may do everything.
   */
  isPermitted(userName: string, kind: 'read' | 'write', key: Uint8Array, rangeEnd: Uint8Array): boolean {
    const user = this.users.get(userName);
    if (user === undefined) return false;
    if (user.roles.includes(ROOT)) return true;
    let perms = this.permCache.get(userName);
    if (perms === undefined) {
      perms = this.buildPerms(user);
      this.permCache.set(userName, perms);
    }
    let want = toInterval(key, rangeEnd);
    // A backwards range selects no key; ask for its start key, as etcd does.
    if (want.hi !== null && Buffer.compare(want.hi, want.lo) <= 0) want = toInterval(key, new Uint8Array(0));
    return covers(kind === 'read' ? perms.read : perms.write, want);
  }

  private buildPerms(user: AuthUser): UserPerms {
    const read: Interval[] = [];
    const write: Interval[] = [];
    for (const roleName of user.roles) {
      for (const perm of this.roles.get(roleName)?.perms ?? []) {
        const interval = toInterval(perm.key, perm.rangeEnd);
        if (perm.permType !== PermType.WRITE) read.push(interval);
        if (perm.permType !== PermType.READ) write.push(interval);
      }
    }
    return { read: merge(read), write: merge(write) };
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

function toInterval(key: Uint8Array, rangeEnd: Uint8Array): Interval {
  const lo = Buffer.from(key);
  if (rangeEnd.length === 0) return { lo, hi: Buffer.concat([lo, Buffer.from([0])]) };
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return { lo, hi: null };
  return { lo, hi: Buffer.from(rangeEnd) };
}

/** Sorted, overlapping or touching intervals joined, so a covered range lies inside one of them. */
function merge(intervals: Interval[]): Interval[] {
  const sorted = intervals.filter((i) => i.hi === null || Buffer.compare(i.lo, i.hi) < 0).sort((a, b) => Buffer.compare(a.lo, b.lo));
  const merged: Interval[] = [];
  for (const next of sorted) {
    const last = merged.at(-1);
    if (last !== undefined && (last.hi === null || Buffer.compare(next.lo, last.hi) <= 0)) {
      if (last.hi !== null && (next.hi === null || Buffer.compare(next.hi, last.hi) > 0)) last.hi = next.hi;
    } else {
      merged.push({ lo: next.lo, hi: next.hi });
    }
  }
  return merged;
}

function covers(merged: Interval[], want: Interval): boolean {
  for (const have of merged) {
    if (Buffer.compare(have.lo, want.lo) > 0) return false;
    if (have.hi === null) return true;
    if (Buffer.compare(want.lo, have.hi) < 0) return want.hi !== null && Buffer.compare(want.hi, have.hi) <= 0;
  }
  return false;
}
