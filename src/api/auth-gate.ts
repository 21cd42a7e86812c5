// The one place calls are authorized (docs/SECURITY.md, phase 2): each service's handlers are
// wrapped so a call's identity (etcd's `token` metadata, or the client certificate's CN) is known,
// and every service asks `check(request or call, needs)` after decoding and before its backend,
// passing the stamp it returns on with the request. While auth is disabled nothing is recorded
// (except for the Auth service's audit lines) and check() returns at once.
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { prefixEnd } from '../mvcc/index.ts';
import type { DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest } from '../mvcc/index.ts';
import type { AuthBackend, AuthCaller, AuthNeed, AuthStamp, CallIdentity } from './backend.ts';
import { toStatus } from './status.ts';

/** The surface of grpc-js's (and lean-call's) call objects the gate reads. */
interface IdentifiableCall {
  request?: unknown;
  metadata?: grpc.Metadata;
  getAuthContext?: () => { sslPeerCertificate?: { subject?: Record<string, unknown> } };
  emit?: (event: string, status: unknown) => boolean;
  pause?: () => unknown;
  resume?: () => unknown;
}

/**
 * What each method needs, by method name, checked before the handler runs: fixed, or computed from
 * the decoded request message (unary and server-streaming methods only).
 */
export type StaticPolicy = Readonly<Record<string, readonly AuthNeed[] | ((message: never) => AuthNeed[])>>;

const ROOT: readonly AuthNeed[] = [{ kind: 'root' }];
const USER: readonly AuthNeed[] = [{ kind: 'user' }];

/** As etcd: maintenance is for root, except Status (clients ask every endpoint for it). */
export const MAINTENANCE_POLICY: StaticPolicy = {
  Alarm: ROOT,
  Defragment: ROOT,
  Hash: ROOT,
  HashKV: ROOT,
  MoveLeader: ROOT,
  Snapshot: ROOT,
};
/** As etcd: membership changes are for root; MemberList is open (clients sync endpoints with it). */
export const CLUSTER_POLICY: StaticPolicy = {
  MemberAdd: ROOT,
  MemberRemove: ROOT,
  MemberUpdate: ROOT,
  MemberPromote: ROOT,
};
/** Leases carry no keys until a Put attaches them: any authenticated user (LeaseRevoke also needs its keys, lease-service.ts). */
export const LEASE_POLICY: StaticPolicy = {
  LeaseGrant: USER,
  LeaseRevoke: USER,
  LeaseTimeToLive: USER,
  LeaseLeases: USER,
  LeaseKeepAlive: USER,
};

/** Longest token accepted from metadata (simple tokens are 32 hex characters, JWTs a few hundred). */
const MAX_TOKEN_CHARS = 4096;

const NO_IDENTITY: CallIdentity = { token: null, commonName: null };

export interface WrapOptions {
  /** Record the caller even while auth is disabled (the Auth service names it in audit lines). */
  recordAlways?: boolean;
}

export class AuthGate {
  private readonly identities = new WeakMap<object, CallIdentity>();
  /** The stamp a static policy's check gave each call's request (stampOf). */
  private readonly stamps = new WeakMap<object, AuthStamp>();

  constructor(
    private readonly backend: AuthBackend | undefined,
    private readonly logger: Logger,
  ) {}

  /** True while auth is enabled on this node. */
  get active(): boolean {
    return this.backend !== undefined && this.backend.enabled();
  }

  /**
   * The service's handlers, each recording its call's identity first (only while auth is enabled)
   * and, when its token needs a signature check, holding the call (reading paused) until it is done.
   */
  wrap(handlers: grpc.UntypedServiceImplementation, policy: StaticPolicy = {}, options: WrapOptions = {}): grpc.UntypedServiceImplementation {
    const backend = this.backend;
    if (backend === undefined) return handlers;
    const wrapped: grpc.UntypedServiceImplementation = {};
    for (const [name, handler] of Object.entries(handlers)) {
      const run = handler as (call: IdentifiableCall, callback?: (error: unknown) => void) => void;
      const policyNeeds = policy[name];
      const proceed = (call: IdentifiableCall, callback?: (error: unknown) => void) => {
        if (policyNeeds !== undefined && this.active && !this.checkPolicy(call, name, policyNeeds, callback)) return;
        run(call, callback);
      };
      wrapped[name] = ((call: IdentifiableCall, callback?: (error: unknown) => void) => {
        if (!this.active) {
          if (options.recordAlways === true) this.record(call);
          return run(call, callback);
        }
        const pending = backend.prepare?.(this.record(call));
        if (pending === undefined) return proceed(call, callback);
        // A token seen for the first time: hold the call (client messages wait) until it is verified.
        call.pause?.();
        const go = () => {
          proceed(call, callback);
          call.resume?.();
        };
        // prepare() never rejects; if it did, the check would find no verdict and refuse the token.
        void pending.then(go, go);
      }) as grpc.UntypedHandleCall;
    }
    return wrapped;
  }

  /** Runs a static policy's check; false (the call answered with the refusal) when it fails. */
  private checkPolicy(
    call: IdentifiableCall,
    name: string,
    policyNeeds: readonly AuthNeed[] | ((message: never) => AuthNeed[]),
    callback?: (error: unknown) => void,
  ): boolean {
    try {
      const needs =
        typeof policyNeeds === 'function'
          ? (policyNeeds as (message: unknown) => AuthNeed[])((call.request as { message: unknown }).message)
          : policyNeeds;
      const stamp = this.check(call, needs, name);
      if (stamp !== undefined && typeof call.request === 'object' && call.request !== null) this.stamps.set(call.request, stamp);
      return true;
    } catch (error) {
      const status = toStatus(error, name, this.logger);
      if (callback !== undefined) callback(status);
      else call.emit?.('error', status);
      return false;
    }
  }

  /**
   * Throws etcd's error unless the caller behind `key` (the call, or its decoded unary request) may
   * do every one of `needs`: invalid auth token (UNAUTHENTICATED), user name is empty
   * (INVALID_ARGUMENT), permission denied (PERMISSION_DENIED). Returns the stamp to pass on with
   * the request (who, at which auth revision), undefined when auth is off.
   */
  check(key: object, needs: readonly AuthNeed[], method: string): AuthStamp | undefined {
    const backend = this.backend;
    if (backend === undefined || !backend.enabled()) return undefined;
    const identity = this.identities.get(key) ?? NO_IDENTITY;
    return backend.authorize(identity, needs, method);
  }

  /** The stamp the service's static policy checked `request` at (undefined while auth is disabled). */
  stampOf(request: object): AuthStamp | undefined {
    return this.stamps.get(request);
  }

  /** check(), plus who to name in audit lines: the user, or with auth off the certificate's CN or "anonymous". */
  caller(key: object, needs: readonly AuthNeed[], method: string): AuthCaller {
    const stamp = this.check(key, needs, method);
    if (stamp !== undefined) return { stamp, actor: stamp.user };
    return { actor: this.identities.get(key)?.commonName ?? 'anonymous' };
  }

  private record(call: IdentifiableCall): CallIdentity {
    const identity = readIdentity(call);
    this.identities.set(call, identity);
    if (typeof call.request === 'object' && call.request !== null) this.identities.set(call.request, identity);
    return identity;
  }
}

function readIdentity(call: IdentifiableCall): CallIdentity {
  const value = call.metadata?.get('token')[0];
  const token = typeof value === 'string' && value.length > 0 && value.length <= MAX_TOKEN_CHARS ? value : null;
  let commonName: string | null = null;
  try {
    const cn = call.getAuthContext?.().sslPeerCertificate?.subject?.CN;
    if (typeof cn === 'string' && cn.length > 0) commonName = cn;
  } catch {
    commonName = null;
  }
  return { token, commonName };
}

const EMPTY = new Uint8Array(0);

/** Range: READ on the range. */
export function rangeNeeds(req: RangeRequest): AuthNeed[] {
  return [{ kind: 'read', key: req.key, rangeEnd: req.rangeEnd }];
}

/** Put: WRITE on the key, and READ too when it asks for the previous value (as etcd). */
export function putNeeds(req: PutRequest): AuthNeed[] {
  const write: AuthNeed = { kind: 'write', key: req.key, rangeEnd: EMPTY };
  return req.prevKv ? [write, { kind: 'read', key: req.key, rangeEnd: EMPTY }] : [write];
}

/** DeleteRange: WRITE on the range, READ too with prev_kv. */
export function deleteRangeNeeds(req: DeleteRangeRequest): AuthNeed[] {
  const write: AuthNeed = { kind: 'write', key: req.key, rangeEnd: req.rangeEnd };
  return req.prevKv ? [write, { kind: 'read', key: req.key, rangeEnd: req.rangeEnd }] : [write];
}

/** Txn: READ for every compare, and the needs of every op of both branches, nested txns included. */
export function txnNeeds(req: TxnRequest, into: AuthNeed[] = []): AuthNeed[] {
  for (const compare of req.compare) into.push({ kind: 'read', key: compare.key, rangeEnd: compare.rangeEnd });
  for (const op of [...req.success, ...req.failure]) {
    switch (op.type) {
      case 'range':
        into.push(...rangeNeeds(op.range));
        break;
      case 'put':
        into.push(...putNeeds(op.put));
        break;
      case 'deleteRange':
        into.push(...deleteRangeNeeds(op.deleteRange));
        break;
      case 'txn':
        txnNeeds(op.txn, into);
        break;
    }
  }
  return into;
}

/** Every key under `name` + '/' (the keys etcd's Mutex and Election make for `name`). */
export function namePrefixNeeds(name: Uint8Array, kinds: readonly ('read' | 'write')[]): AuthNeed[] {
  const key = Buffer.concat([name, Buffer.from('/')]);
  const rangeEnd = prefixEnd(key);
  return kinds.map((kind) => ({ kind, key, rangeEnd }));
}

interface WireNamed {
  name: Buffer;
}
interface WireLeaderHolder {
  leader: { name: Buffer } | null;
}
interface WireUnlock {
  key: Buffer;
}

const leaderNameNeeds = (message: WireLeaderHolder, kinds: readonly ('read' | 'write')[]): AuthNeed[] =>
  namePrefixNeeds(message.leader?.name ?? Buffer.alloc(0), kinds);

/** Lock and Election run etcd's Mutex and Election for the client: they read and write under `name/`. */
export const LOCK_POLICY: StaticPolicy = {
  Lock: (message: WireNamed) => namePrefixNeeds(message.name, ['read', 'write']),
  Unlock: (message: WireUnlock) => [{ kind: 'write', key: message.key, rangeEnd: EMPTY }],
};
export const ELECTION_POLICY: StaticPolicy = {
  Campaign: (message: WireNamed) => namePrefixNeeds(message.name, ['read', 'write']),
  Proclaim: (message: WireLeaderHolder) => leaderNameNeeds(message, ['read', 'write']),
  Leader: (message: WireNamed) => namePrefixNeeds(message.name, ['read']),
  Observe: (message: WireNamed) => namePrefixNeeds(message.name, ['read']),
  Resign: (message: WireLeaderHolder) => leaderNameNeeds(message, ['write']),
};
