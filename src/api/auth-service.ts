// The etcdserverpb.Auth service: users, roles, permissions and tokens, mapped onto an AuthBackend.
// Access as etcd's authApplierV3: Authenticate and AuthStatus are open, UserGet is open to the user
// itself, RoleGet to holders of the role, everything else needs root once auth is enabled.
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { invalidArgument } from '../util/index.ts';
import type { AuthGate } from './auth-gate.ts';
import type { AuthBackend, AuthCaller, AuthNeed, AuthPermissionInfo, HeaderInfo } from './backend.ts';
import { encodeHeader } from './codec.ts';
import { ApiErrors } from './errors.ts';
import { unaryHandler } from './handlers.ts';
import type { Received } from './protos.ts';
import type { WireResponseHeader } from './wire.ts';

interface WireAuthName {
  name: string;
}
interface WireAuthRole {
  role: string;
}
interface WireUserAdd {
  name: string;
  password: string;
  options: { noPassword: boolean } | null;
  hashedPassword: string;
}
interface WireChangePassword {
  name: string;
  password: string;
  hashedPassword: string;
}
interface WireGrantRole {
  user: string;
  role: string;
}
interface WireRevokeRole {
  name: string;
  role: string;
}
interface WireAuthenticate {
  name: string;
  password: string;
}
interface WirePermission {
  permType: number;
  key: Buffer;
  rangeEnd: Buffer;
}
interface WireGrantPermission {
  name: string;
  perm: WirePermission | null;
}
interface WireRevokePermission {
  role: string;
  key: Buffer;
  rangeEnd: Buffer;
}

export interface AuthServiceOptions {
  backend: AuthBackend;
  gate: AuthGate;
  headerInfo: () => HeaderInfo;
  logger: Logger;
}

/** Longest user or role name, and password, accepted (etcd has no limit; the Raft entry does). */
const MAX_NAME_CHARS = 1024;
const MAX_PASSWORD_CHARS = 4096;

const ROOT: readonly AuthNeed[] = [{ kind: 'root' }];
/** The caller of an open method (Authenticate, AuthStatus): nothing is changed, nobody to name. */
const OPEN_CALLER: AuthCaller = { actor: 'anonymous' };

export function authServiceHandlers(options: AuthServiceOptions): grpc.UntypedServiceImplementation {
  const { backend, gate, headerInfo, logger } = options;
  const header = (): WireResponseHeader => encodeHeader(backend.currentRevision(), headerInfo());
  /**
   * A handler that checks `needs` (computed from the request) first, then answers with a header and
   * `run`'s fields. `run` gets the caller: the stamp to re-check at apply and the actor to audit.
   */
  const method = <Wire>(
    name: string,
    needs: (message: Wire) => readonly AuthNeed[],
    run: (message: Wire, caller: AuthCaller) => Promise<object | void>,
  ) =>
    unaryHandler(name, logger, async (request: Received<Wire>) => {
      const required = needs(request.message);
      const caller = required.length > 0 ? gate.caller(request, required, name) : OPEN_CALLER;
      const fields = await run(request.message, caller);
      return { header: header(), ...(fields ?? {}) };
    });
  const open = () => [];
  const root = () => ROOT;

  return {
    AuthEnable: method('AuthEnable', root, (_, caller) => backend.authEnable(caller)),
    AuthDisable: method('AuthDisable', root, (_, caller) => backend.authDisable(caller)),
    AuthStatus: method('AuthStatus', open, async () => {
      const status = await backend.authStatus();
      return { enabled: status.enabled, authRevision: String(status.authRevision) };
    }),
    Authenticate: method('Authenticate', open, async (m: WireAuthenticate) => {
      checkName(m.name, 'user');
      checkPassword(m.password);
      return { token: await backend.authenticate(m.name, m.password) };
    }),
    UserAdd: method('UserAdd', root, (m: WireUserAdd, caller) => {
      checkName(m.name, 'user');
      checkPassword(m.password);
      const noPassword = m.options?.noPassword ?? false;
      // etcd 3.5 clients may send a bcrypt hash; Tessera keeps scrypt hashes it makes itself.
      if (m.password === '' && m.hashedPassword !== '' && !noPassword) {
        throw invalidArgument('etcdserver: hashed passwords are not supported, send the password');
      }
      return backend.userAdd({ name: m.name, password: m.password, noPassword }, caller);
    }),
    UserGet: method('UserGet', (m: WireAuthName) => [{ kind: 'self', user: m.name }], async (m: WireAuthName) => {
      const user = await backend.userGet(m.name);
      return { roles: user.roles };
    }),
    UserList: method('UserList', root, async () => ({ users: await backend.userList() })),
    UserDelete: method('UserDelete', root, (m: WireAuthName, caller) => backend.userDelete(m.name, caller)),
    UserChangePassword: method('UserChangePassword', root, (m: WireChangePassword, caller) => {
      checkPassword(m.password);
      if (m.password === '' && m.hashedPassword !== '') {
        throw invalidArgument('etcdserver: hashed passwords are not supported, send the password');
      }
      return backend.userChangePassword({ name: m.name, password: m.password }, caller);
    }),
    UserGrantRole: method('UserGrantRole', root, (m: WireGrantRole, caller) => backend.userGrantRole({ user: m.user, role: m.role }, caller)),
    UserRevokeRole: method('UserRevokeRole', root, (m: WireRevokeRole, caller) => backend.userRevokeRole({ name: m.name, role: m.role }, caller)),
    RoleAdd: method('RoleAdd', root, (m: WireAuthName, caller) => {
      checkName(m.name, 'role');
      return backend.roleAdd(m.name, caller);
    }),
    RoleGet: method('RoleGet', (m: WireAuthRole) => [{ kind: 'role', role: m.role }], async (m: WireAuthRole) => {
      const role = await backend.roleGet(m.role);
      return { perm: role.perms.map(encodePermission) };
    }),
    RoleList: method('RoleList', root, async () => ({ roles: await backend.roleList() })),
    RoleDelete: method('RoleDelete', root, (m: WireAuthRole, caller) => backend.roleDelete(m.role, caller)),
    RoleGrantPermission: method('RoleGrantPermission', root, (m: WireGrantPermission, caller) => {
      if (m.perm === null) throw ApiErrors.permissionNotGiven();
      const permType = m.perm.permType;
      if (permType !== 0 && permType !== 1 && permType !== 2) throw invalidArgument('etcdserver: invalid permission type');
      const perm: AuthPermissionInfo = { permType, key: new Uint8Array(m.perm.key), rangeEnd: new Uint8Array(m.perm.rangeEnd) };
      return backend.roleGrantPermission({ name: m.name, perm }, caller);
    }),
    RoleRevokePermission: method('RoleRevokePermission', root, (m: WireRevokePermission, caller) =>
      backend.roleRevokePermission({ role: m.role, key: new Uint8Array(m.key), rangeEnd: new Uint8Array(m.rangeEnd) }, caller),
    ),
  };
}

function encodePermission(perm: AuthPermissionInfo): WirePermission {
  return { permType: perm.permType, key: Buffer.from(perm.key), rangeEnd: Buffer.from(perm.rangeEnd) };
}

function checkName(name: string, what: 'user' | 'role'): void {
  if (name.length > MAX_NAME_CHARS) throw invalidArgument(`etcdserver: ${what} name is too long (at most ${MAX_NAME_CHARS})`);
}

function checkPassword(password: string): void {
  if (password.length > MAX_PASSWORD_CHARS) {
    throw invalidArgument(`etcdserver: password is too long (at most ${MAX_PASSWORD_CHARS})`);
  }
}
