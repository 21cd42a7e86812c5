// The two kinds of auth token (etcd's --auth-token): `simple`, random strings kept in the memory of
// the member that issued them, and `jwt`, signed tokens every member holding the key verifies.
// Both stop working when their user's password changes, a role is taken from the user, or the user
// is deleted: the user's epoch (auth-store.ts) moves past the token's.
import { randomBytes } from 'node:crypto';
import type { CallIdentity } from '../api/index.ts';
import { ApiErrors } from '../api/index.ts';
import { JwtVerifyOnlyError } from '../security/index.ts';
import type { JwtTokenKeeper, JwtVerdict } from '../security/index.ts';
import { assert } from '../util/index.ts';
import type { AuthStore, AuthUser } from './auth-store.ts';

/** Why a token was refused (for the audit line), and whose it claimed to be if known. */
export interface TokenRefusal {
  reason: string;
  user?: string;
}

export interface TokenProvider {
  readonly kind: 'simple' | 'jwt';
  /** Fails fast (before a password hash) when this member cannot issue tokens. */
  checkCanIssue(): void;
  /** A token for `user` (just authenticated) as of auth revision `authRevision`. */
  issue(user: AuthUser, authRevision: number): Promise<string>;
  /** JWT: verifies the call's token ahead of its checks; a promise only when a signature must be checked. */
  prepare(identity: CallIdentity): Promise<void> | undefined;
  /** The user behind the call's token, or why it is refused. */
  resolve(identity: CallIdentity & { token: string }, store: AuthStore): string | TokenRefusal;
  /** Forgets this member's tokens of `user` (others fail on the epoch check anyway). */
  dropUser(user: string): void;
  /** Auth was disabled: as etcd, simple tokens are dropped; JWTs live on until they expire. */
  clear(): void;
}

interface SimpleEntry {
  user: string;
  /** The user's epoch when issued: a password change or role revocation moves it. */
  epoch: number;
  expiresAtMs: number;
}

const SIMPLE_TOKEN_BYTES = 16;

/** etcd's simple tokens: 32 random hex characters, a TTL renewed on every use, this member only. */
export class SimpleTokens implements TokenProvider {
  readonly kind = 'simple';
  private readonly tokens = new Map<string, SimpleEntry>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxTokens: number,
    private readonly now: () => number,
  ) {
    assert(Number.isSafeInteger(ttlMs) && ttlMs > 0, 'token TTL is positive');
  }

  checkCanIssue(): void {}

  async issue(user: AuthUser): Promise<string> {
    if (this.tokens.size >= this.maxTokens) {
      const now = this.now();
      for (const [token, entry] of this.tokens) if (entry.expiresAtMs <= now) this.tokens.delete(token);
      if (this.tokens.size >= this.maxTokens) throw ApiErrors.authStoreFull();
    }
    const token = randomBytes(SIMPLE_TOKEN_BYTES).toString('hex');
    this.tokens.set(token, { user: user.name, epoch: user.epoch, expiresAtMs: this.now() + this.ttlMs });
    return token;
  }

  prepare(): undefined {
    return undefined;
  }

  resolve(identity: CallIdentity & { token: string }, store: AuthStore): string | TokenRefusal {
    const entry = this.tokens.get(identity.token);
    if (entry === undefined) return { reason: 'unknown token' };
    const user = store.user(entry.user);
    const now = this.now();
    const refusal = user === undefined || user.epoch !== entry.epoch ? 'credentials changed' : entry.expiresAtMs <= now ? 'expired' : null;
    if (refusal !== null) {
      this.tokens.delete(identity.token);
      return { reason: refusal, user: entry.user };
    }
    entry.expiresAtMs = now + this.ttlMs;
    return entry.user;
  }

  dropUser(user: string): void {
    for (const [token, entry] of this.tokens) if (entry.user === user) this.tokens.delete(token);
  }

  clear(): void {
    this.tokens.clear();
  }
}

/**
 * etcd's JWTs: claims `username`, `revision` (the auth revision at issue) and `exp`. Verified
 * once per token per member (JwtTokenKeeper's cache); a call's verdict is kept with its identity,
 * so a long-lived stream keeps it even if the cache forgets the token.
 */
export class JwtTokens implements TokenProvider {
  readonly kind = 'jwt';
  private readonly verdicts = new WeakMap<CallIdentity, JwtVerdict>();

  constructor(
    private readonly keeper: JwtTokenKeeper,
    private readonly now: () => number,
  ) {}

  checkCanIssue(): void {
    if (this.keeper.verifyOnly) throw ApiErrors.jwtVerifyOnly();
  }

  async issue(user: AuthUser, authRevision: number): Promise<string> {
    // A token is good while the user's epoch (the revision before its last credential change) is below its revision.
    assert(authRevision > user.epoch, () => `auth revision ${authRevision} is past the user's epoch ${user.epoch}`);
    try {
      return await this.keeper.sign(user.name, authRevision);
    } catch (error) {
      if (error instanceof JwtVerifyOnlyError) throw ApiErrors.jwtVerifyOnly();
      throw error;
    }
  }

  prepare(identity: CallIdentity): Promise<void> | undefined {
    if (identity.token === null) return undefined;
    const verdict = this.keeper.verify(identity.token);
    if (!(verdict instanceof Promise)) {
      this.verdicts.set(identity, verdict);
      return undefined;
    }
    return verdict.then((settled) => void this.verdicts.set(identity, settled));
  }

  resolve(identity: CallIdentity & { token: string }, store: AuthStore): string | TokenRefusal {
    const verdict = this.verdicts.get(identity) ?? this.keeper.cached(identity.token);
    if (verdict === undefined) return { reason: 'not verified' };
    if (!verdict.ok) return { reason: verdict.reason };
    const { username, revision, expiresAtMs } = verdict.claims;
    if (expiresAtMs <= this.now()) return { reason: 'ERR_JWT_EXPIRED', user: username };
    const user = store.user(username);
    // Issued before the user's password changed, a role was taken or the user was re-created.
    if (user === undefined || user.epoch >= revision) return { reason: 'credentials changed', user: username };
    return username;
  }

  dropUser(): void {}

  clear(): void {}
}
