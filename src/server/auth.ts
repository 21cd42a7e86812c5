// The node's side of etcd's Auth service and of authorizing every call: the replicated auth store
// (auth-store.ts, on the first range's replica) plus this node's simple tokens, which live only in
// its memory as etcd's do. Passwords are hashed here, before anything is proposed.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { ApiErrors } from '../api/index.ts';
import type { AuthBackend, AuthNeed, AuthPermissionInfo, CallIdentity } from '../api/index.ts';
import { hashPassword, verifyPassword } from '../security/index.ts';
import { assert } from '../util/index.ts';
import type { AuthCommand, AuthStore } from './auth-store.ts';
import type { TesseraNode } from './node.ts';

/** etcd's default --auth-token-ttl (seconds). */
export const DEFAULT_AUTH_TOKEN_TTL_SECONDS = 300;
/** Live tokens this node keeps; past it (after dropping expired ones) Authenticate answers "too many requests". */
export const MAX_AUTH_TOKENS = 100_000;
const TOKEN_BYTES = 16;

interface TokenEntry {
  user: string;
  /** The user's epoch when issued: a password change or role revocation bumps it. */
  epoch: number;
  expiresAtMs: number;
}

export interface AuthServiceOptions {
  tokenTtlMs: number;
  /** Audit lines go here (component 'audit'); never passwords or tokens. */
  logger: Logger;
  now?: () => number;
  maxTokens?: number;
}

export class AuthService implements AuthBackend {
  private readonly tokens = new Map<string, TokenEntry>();
  private readonly audit: Logger;
  private readonly now: () => number;
  private readonly maxTokens: number;
  private readonly tokenTtlMs: number;

  constructor(
    private readonly node: TesseraNode,
    options: AuthServiceOptions,
  ) {
    assert(Number.isSafeInteger(options.tokenTtlMs) && options.tokenTtlMs > 0, 'token TTL is positive');
    this.tokenTtlMs = options.tokenTtlMs;
    this.audit = options.logger.child({ component: 'audit' });
    this.now = options.now ?? Date.now;
    this.maxTokens = options.maxTokens ?? MAX_AUTH_TOKENS;
  }

  private get store(): AuthStore {
    return this.node.firstReplica().auth;
  }

  enabled(): boolean {
    return this.store.enabled;
  }

  currentRevision(): number {
    return this.node.firstReplica().store.currentRevision;
  }

  authorize(identity: CallIdentity, needs: readonly AuthNeed[], method: string): string {
    const store = this.store;
    if (!store.enabled) return '';
    const user = this.resolve(store, identity, method);
    for (const need of needs) {
      if (!permits(store, user, need)) {
        this.audit.warn({ event: 'permission_denied', user, method, need: describeNeed(need) }, 'audit');
        throw ApiErrors.permissionDenied();
      }
    }
    return user;
  }

  /** The user behind a token (renewing its TTL, as etcd's simple tokens), else the certificate CN. */
  private resolve(store: AuthStore, identity: CallIdentity, method: string): string {
    if (identity.token !== null) {
      const entry = this.tokens.get(identity.token);
      const user = entry === undefined ? undefined : store.user(entry.user);
      if (entry === undefined || user === undefined || user.epoch !== entry.epoch || entry.expiresAtMs <= this.now()) {
        if (entry !== undefined) this.tokens.delete(identity.token);
        this.audit.warn({ event: 'invalid_token', method, user: entry?.user }, 'audit');
        throw ApiErrors.invalidAuthToken();
      }
      entry.expiresAtMs = this.now() + this.tokenTtlMs;
      return entry.user;
    }
    if (identity.commonName !== null) return identity.commonName;
    this.audit.warn({ event: 'no_identity', method }, 'audit');
    throw ApiErrors.userEmpty();
  }

  async authenticate(name: string, password: string): Promise<string> {
    if (!this.store.enabled) throw ApiErrors.authNotEnabled();
    const before = this.store.user(name);
    // An unknown user costs a hash too, so timing does not tell which names exist.
    const matches =
      before !== undefined && !before.noPassword
        ? await verifyPassword(password, before.passwordHash)
        : (await hashPassword(password), false);
    const after = this.store.user(name);
    if (!matches || after === undefined || before === undefined || after.epoch !== before.epoch) {
      this.audit.warn({ event: 'authentication_failed', user: name }, 'audit');
      throw ApiErrors.authFailed();
    }
    const token = this.issue(name, after.epoch);
    this.audit.info({ event: 'authenticated', user: name }, 'audit');
    return token;
  }

  private issue(user: string, epoch: number): string {
    if (this.tokens.size >= this.maxTokens) {
      const now = this.now();
      for (const [token, entry] of this.tokens) if (entry.expiresAtMs <= now) this.tokens.delete(token);
      if (this.tokens.size >= this.maxTokens) throw ApiErrors.authStoreFull();
    }
    const token = randomBytes(TOKEN_BYTES).toString('hex');
    this.tokens.set(token, { user, epoch, expiresAtMs: this.now() + this.tokenTtlMs });
    return token;
  }

  /** Proposes one auth change and waits for it to apply on this node; audits the outcome. */
  private async change(cmd: AuthCommand, subject: Record<string, string>): Promise<void> {
    const replica = this.node.firstReplica();
    const pending = replica.propose({ op: 'auth', req: cmd });
    this.node.schedule();
    try {
      await pending;
    } catch (error) {
      this.audit.info({ event: cmd.action, ...subject, result: (error as Error).message }, 'audit');
      throw error;
    }
    this.audit.info({ event: cmd.action, ...subject, result: 'ok' }, 'audit');
  }

  private read<T>(run: (store: AuthStore) => T): Promise<T> {
    const replica = this.node.firstReplica();
    const pending = replica.linearizableRead(() => run(replica.auth));
    this.node.schedule();
    return pending;
  }

  async authEnable(): Promise<void> {
    await this.change({ action: 'enable' }, {});
  }

  async authDisable(): Promise<void> {
    await this.change({ action: 'disable' }, {});
    // As etcd: disabling drops the simple tokens (this node's; others' fail once auth is back on only if expired).
    this.tokens.clear();
  }

  authStatus(): Promise<{ enabled: boolean; authRevision: number }> {
    return this.read((store) => ({ enabled: store.enabled, authRevision: store.revision }));
  }

  async userAdd(req: { name: string; password: string; noPassword: boolean }): Promise<void> {
    const passwordHash = req.noPassword ? '' : await hashPassword(req.password);
    await this.change({ action: 'userAdd', name: req.name, passwordHash, noPassword: req.noPassword }, { user: req.name });
  }

  userGet(name: string): Promise<{ roles: string[] }> {
    return this.read((store) => {
      const user = store.user(name);
      if (user === undefined) throw ApiErrors.userNotFound();
      return { roles: [...user.roles] };
    });
  }

  userList(): Promise<string[]> {
    return this.read((store) => store.userNames());
  }

  async userDelete(name: string): Promise<void> {
    await this.change({ action: 'userDelete', name }, { user: name });
    this.dropTokens(name);
  }

  async userChangePassword(req: { name: string; password: string }): Promise<void> {
    const passwordHash = await hashPassword(req.password);
    await this.change({ action: 'userChangePassword', name: req.name, passwordHash }, { user: req.name });
    this.dropTokens(req.name);
  }

  async userGrantRole(req: { user: string; role: string }): Promise<void> {
    await this.change({ action: 'userGrantRole', user: req.user, role: req.role }, { user: req.user, role: req.role });
  }

  async userRevokeRole(req: { name: string; role: string }): Promise<void> {
    await this.change({ action: 'userRevokeRole', name: req.name, role: req.role }, { user: req.name, role: req.role });
    this.dropTokens(req.name);
  }

  async roleAdd(name: string): Promise<void> {
    await this.change({ action: 'roleAdd', name }, { role: name });
  }

  roleGet(role: string): Promise<{ perms: AuthPermissionInfo[] }> {
    return this.read((store) => {
      const found = store.role(role);
      // etcd answers for the root role even before it is added.
      if (found === undefined) {
        if (role === 'root') return { perms: [] };
        throw ApiErrors.roleNotFound();
      }
      return { perms: found.perms.map((p) => ({ permType: p.permType, key: p.key, rangeEnd: p.rangeEnd })) };
    });
  }

  roleList(): Promise<string[]> {
    return this.read((store) => store.roleNames());
  }

  async roleDelete(role: string): Promise<void> {
    await this.change({ action: 'roleDelete', role }, { role });
  }

  async roleGrantPermission(req: { name: string; perm: AuthPermissionInfo }): Promise<void> {
    const perm = { permType: req.perm.permType, key: req.perm.key, rangeEnd: req.perm.rangeEnd };
    await this.change({ action: 'roleGrantPermission', name: req.name, perm }, { role: req.name, permission: describePerm(perm) });
  }

  async roleRevokePermission(req: { role: string; key: Uint8Array; rangeEnd: Uint8Array }): Promise<void> {
    await this.change(
      { action: 'roleRevokePermission', role: req.role, key: req.key, rangeEnd: req.rangeEnd },
      { role: req.role, permission: describePerm({ permType: 2, key: req.key, rangeEnd: req.rangeEnd }) },
    );
  }

  /** This node's tokens for `user` (others' fail on the epoch check). */
  private dropTokens(user: string): void {
    for (const [token, entry] of this.tokens) if (entry.user === user) this.tokens.delete(token);
  }
}

function permits(store: AuthStore, user: string, need: AuthNeed): boolean {
  switch (need.kind) {
    case 'read':
    case 'write':
      return store.isPermitted(user, need.kind, need.key, need.rangeEnd);
    case 'root':
      return store.isRoot(user);
    case 'user':
      return store.user(user) !== undefined;
    case 'self':
      return need.user === user || store.isRoot(user);
    case 'role':
      return store.isRoot(user) || (store.user(user)?.roles.includes(need.role) ?? false);
  }
}

const printable = (bytes: Uint8Array) => Buffer.from(bytes).toString('utf8').slice(0, 256);

function describeNeed(need: AuthNeed): string {
  if (need.kind === 'read' || need.kind === 'write') return `${need.kind} [${printable(need.key)}, ${printable(need.rangeEnd)})`;
  if (need.kind === 'self') return `self ${need.user}`;
  if (need.kind === 'role') return `role ${need.role}`;
  return need.kind;
}

function describePerm(perm: AuthPermissionInfo): string {
  return `${['READ', 'WRITE', 'READWRITE'][perm.permType]} [${printable(perm.key)}, ${printable(perm.rangeEnd)})`;
}
