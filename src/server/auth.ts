// The node's side of etcd's Auth service and of authorizing every call: the replicated auth store
// (auth-store.ts, on the first range's replica) plus this node's tokens (auth-tokens.ts: simple ones
// live only in its memory as etcd's do; JWTs are good on every member holding the key). Passwords
// are hashed here, before anything is proposed. Every change is audited with who made it.
import type { Logger } from 'pino';
import { ApiErrors } from '../api/index.ts';
import type { AuthBackend, AuthCaller, AuthNeed, AuthPermissionInfo, AuthStamp, CallIdentity } from '../api/index.ts';
import { hashPassword, verifyPassword } from '../security/index.ts';
import type { JwtTokenKeeper } from '../security/index.ts';
import type { AuthCommand, AuthStore } from './auth-store.ts';
import { JwtTokens, SimpleTokens } from './auth-tokens.ts';
import type { TokenProvider } from './auth-tokens.ts';
import { stamped } from './commands.ts';
import type { TesseraNode } from './node.ts';

/** etcd's default --auth-token-ttl (seconds). */
export const DEFAULT_AUTH_TOKEN_TTL_SECONDS = 300;
/** Live simple tokens this node keeps; past it (after dropping expired ones) Authenticate answers "too many requests". */
export const MAX_AUTH_TOKENS = 100_000;

export interface AuthServiceOptions {
  /** Simple tokens' TTL (renewed on use). */
  tokenTtlMs: number;
  /** `--auth-token jwt,...`: the keys that sign and verify; simple tokens without it. */
  jwt?: JwtTokenKeeper | null;
  /** Audit lines go here (component 'audit'); never passwords or tokens. */
  logger: Logger;
  /** Wall-clock milliseconds (JWT expiry is absolute time). */
  now?: () => number;
  maxTokens?: number;
}

export class AuthService implements AuthBackend {
  private readonly tokens: TokenProvider;
  private readonly audit: Logger;

  constructor(
    private readonly node: TesseraNode,
    options: AuthServiceOptions,
  ) {
    const now = options.now ?? Date.now;
    this.audit = options.logger.child({ component: 'audit' });
    this.tokens =
      options.jwt === undefined || options.jwt === null
        ? new SimpleTokens(options.tokenTtlMs, options.maxTokens ?? MAX_AUTH_TOKENS, now)
        : new JwtTokens(options.jwt, now);
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

  prepare(identity: CallIdentity): Promise<void> | undefined {
    return this.tokens.prepare(identity);
  }

  authorize(identity: CallIdentity, needs: readonly AuthNeed[], method: string): AuthStamp {
    const store = this.store;
    const stamp = this.resolve(store, identity, method);
    for (const need of needs) {
      if (!store.permits(stamp.user, need)) {
        this.audit.warn({ event: 'permission_denied', user: stamp.user, method, need: describeNeed(need) }, 'audit');
        throw ApiErrors.permissionDenied();
      }
    }
    return stamp;
  }

  /** The user behind a token, else the certificate CN, with the auth revision checked against. */
  private resolve(store: AuthStore, identity: CallIdentity, method: string): AuthStamp {
    const token = identity.token;
    if (token !== null) {
      const user = this.tokens.resolve(identity as CallIdentity & { token: string }, store);
      if (typeof user !== 'string') {
        this.audit.warn({ event: 'invalid_token', method, user: user.user, reason: user.reason }, 'audit');
        throw ApiErrors.invalidAuthToken();
      }
      return { user, revision: store.revision };
    }
    if (identity.commonName !== null) return { user: identity.commonName, revision: store.revision, cert: true };
    this.audit.warn({ event: 'no_identity', method }, 'audit');
    throw ApiErrors.userEmpty();
  }

  async authenticate(name: string, password: string): Promise<string> {
    if (!this.store.enabled) throw ApiErrors.authNotEnabled();
    this.tokens.checkCanIssue();
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
    const token = await this.tokens.issue(after, this.store.revision);
    this.audit.info({ event: 'authenticated', user: name, tokenKind: this.tokens.kind }, 'audit');
    return token;
  }

  /**
   * Proposes one auth change (stamped, so the applying replica checks root again if the auth store
   * moved meanwhile) and waits for it to apply on this node; audits who did what, and the outcome.
   */
  private async change(cmd: AuthCommand, subject: Record<string, string>, caller: AuthCaller): Promise<void> {
    const replica = this.node.firstReplica();
    const pending = replica.propose(stamped({ op: 'auth', req: cmd }, caller.stamp));
    this.node.schedule();
    const line = { event: cmd.action, actor: caller.actor, ...subject };
    try {
      await pending;
    } catch (error) {
      this.audit.warn({ ...line, result: (error as Error).message }, 'audit');
      throw error;
    }
    this.audit.info({ ...line, result: 'ok' }, 'audit');
  }

  private read<T>(run: (store: AuthStore) => T): Promise<T> {
    const replica = this.node.firstReplica();
    const pending = replica.linearizableRead(() => run(replica.auth));
    this.node.schedule();
    return pending;
  }

  async authEnable(caller: AuthCaller): Promise<void> {
    await this.change({ action: 'enable' }, {}, caller);
  }

  async authDisable(caller: AuthCaller): Promise<void> {
    await this.change({ action: 'disable' }, {}, caller);
    // As etcd: disabling drops the simple tokens (this node's; others' fail once auth is back on only if expired).
    this.tokens.clear();
  }

  authStatus(): Promise<{ enabled: boolean; authRevision: number }> {
    return this.read((store) => ({ enabled: store.enabled, authRevision: store.revision }));
  }

  async userAdd(req: { name: string; password: string; noPassword: boolean }, caller: AuthCaller): Promise<void> {
    const passwordHash = req.noPassword ? '' : await hashPassword(req.password);
    await this.change({ action: 'userAdd', name: req.name, passwordHash, noPassword: req.noPassword }, { user: req.name }, caller);
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

  async userDelete(name: string, caller: AuthCaller): Promise<void> {
    await this.change({ action: 'userDelete', name }, { user: name }, caller);
    this.tokens.dropUser(name);
  }

  async userChangePassword(req: { name: string; password: string }, caller: AuthCaller): Promise<void> {
    const passwordHash = await hashPassword(req.password);
    await this.change({ action: 'userChangePassword', name: req.name, passwordHash }, { user: req.name }, caller);
    this.tokens.dropUser(req.name);
  }

  async userGrantRole(req: { user: string; role: string }, caller: AuthCaller): Promise<void> {
    await this.change({ action: 'userGrantRole', user: req.user, role: req.role }, { user: req.user, role: req.role }, caller);
  }

  async userRevokeRole(req: { name: string; role: string }, caller: AuthCaller): Promise<void> {
    await this.change({ action: 'userRevokeRole', name: req.name, role: req.role }, { user: req.name, role: req.role }, caller);
    this.tokens.dropUser(req.name);
  }

  async roleAdd(name: string, caller: AuthCaller): Promise<void> {
    await this.change({ action: 'roleAdd', name }, { role: name }, caller);
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

  async roleDelete(role: string, caller: AuthCaller): Promise<void> {
    await this.change({ action: 'roleDelete', role }, { role }, caller);
  }

  async roleGrantPermission(req: { name: string; perm: AuthPermissionInfo }, caller: AuthCaller): Promise<void> {
    const perm = { permType: req.perm.permType, key: req.perm.key, rangeEnd: req.perm.rangeEnd };
    await this.change({ action: 'roleGrantPermission', name: req.name, perm }, { role: req.name, permission: describePerm(perm) }, caller);
  }

  async roleRevokePermission(req: { role: string; key: Uint8Array; rangeEnd: Uint8Array }, caller: AuthCaller): Promise<void> {
    await this.change(
      { action: 'roleRevokePermission', role: req.role, key: req.key, rangeEnd: req.rangeEnd },
      { role: req.role, permission: describeRange(req.key, req.rangeEnd) },
      caller,
    );
  }
}

const printable = (bytes: Uint8Array) => Buffer.from(bytes).toString('utf8').slice(0, 256);

function describeNeed(need: AuthNeed): string {
  if (need.kind === 'read' || need.kind === 'write') return `${need.kind} [${printable(need.key)}, ${printable(need.rangeEnd)})`;
  if (need.kind === 'self') return `self ${need.user}`;
  if (need.kind === 'role') return `role ${need.role}`;
  return need.kind;
}

function describeRange(key: Uint8Array, rangeEnd: Uint8Array): string {
  return `[${printable(key)}, ${printable(rangeEnd)})`;
}

function describePerm(perm: AuthPermissionInfo): string {
  return `${['READ', 'WRITE', 'READWRITE'][perm.permType]} ${describeRange(perm.key, perm.rangeEnd)}`;
}
