// etcd's JWT auth tokens: signed with jose under the configured method, claims `username`,
// `revision` (the auth store revision when issued) and `exp`, so a token from any member that holds
// the same keys is good on every member. Verifying costs a signature check (0.2-0.5 ms), so verdicts
// are kept in bounded maps until the token expires; calls after the first pay a map lookup. The key
// files are checked for changes (and reloaded on SIGHUP) the way TLS certificates are.
import type { KeyObject } from 'node:crypto';
import { decodeProtectedHeader, jwtVerify, SignJWT } from 'jose';
import type { Logger } from 'pino';
import { assert } from '../util/index.ts';
import { JwtVerifyOnlyError } from './errors.ts';
import { loadJwtKeys } from './jwt-keys.ts';
import type { JwtKeySet, JwtOptions, JwtSignMethod, JwtVerifyKey } from './jwt-keys.ts';
import { DEFAULT_TLS_RELOAD_INTERVAL_MS, filesStamp } from './reload.ts';

/** Verified tokens kept per member; past it the oldest is forgotten (it is verified again when next seen). */
export const MAX_CACHED_JWTS = 10_000;
/** Refused tokens kept (a client retrying a bad token costs no signature check), and for how long. */
export const MAX_REFUSED_JWTS = 1_000;
export const REFUSED_JWT_CACHE_MS = 10_000;
/** Longest user name a token may carry (the auth service's own bound). */
const MAX_USERNAME_CHARS = 1024;

export interface JwtClaims {
  username: string;
  /** The auth store revision when the token was issued. */
  revision: number;
  expiresAtMs: number;
}

/** A token's verification outcome; `reason` (for audit lines) never contains the token. */
export type JwtVerdict = { readonly ok: true; readonly claims: JwtClaims } | { readonly ok: false; readonly reason: string };

export interface JwtKeeperOptions {
  /** Wall-clock milliseconds (`exp` is absolute time). */
  now?: () => number;
  logger?: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** Period of the key-file check; 0 = only reload() (SIGHUP). */
  reloadIntervalMs?: number;
  maxCachedTokens?: number;
}

export class JwtTokenKeeper {
  private keys: JwtKeySet;
  private stamp: string;
  /** Bumped by each key reload: verifications begun under older keys are not cached. */
  private generation = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly verified = new Map<string, JwtVerdict & { ok: true }>();
  private readonly refused = new Map<string, { verdict: JwtVerdict; untilMs: number }>();
  private readonly inflight = new Map<string, Promise<JwtVerdict>>();
  private readonly now: () => number;
  private readonly maxCached: number;

  /** Loads and checks the key files now; throws JwtKeyError when they are unusable. */
  constructor(
    readonly options: JwtOptions,
    private readonly settings: JwtKeeperOptions = {},
  ) {
    assert(options.ttlMs > 0, 'JWT ttl is positive');
    this.now = settings.now ?? Date.now;
    this.maxCached = settings.maxCachedTokens ?? MAX_CACHED_JWTS;
    this.stamp = filesStamp(this.files);
    this.keys = loadJwtKeys(options);
    for (const warning of this.keys.warnings) settings.logger?.warn({ event: 'jwt_key_warning' }, `security: ${warning}`);
  }

  private get files(): string[] {
    return [this.options.pubKeyFile, this.options.privKeyFile].filter((f): f is string => f !== undefined);
  }

  get signMethod(): JwtSignMethod {
    return this.options.signMethod;
  }

  /** True when only a public key is configured: tokens are verified, never issued. */
  get verifyOnly(): boolean {
    return this.keys.signing === null;
  }

  /** Key ids (hash prefixes of the public keys) that verify, for logs. */
  get keyIds(): string[] {
    return this.keys.verifying.map((k) => k.kid);
  }

  /** A token for `username` as of auth `revision`, expiring after the ttl; throws JwtVerifyOnlyError without a private key. */
  async sign(username: string, revision: number): Promise<string> {
    const signing = this.keys.signing;
    if (signing === null) throw new JwtVerifyOnlyError();
    assert(Number.isSafeInteger(revision) && revision > 0, 'a token carries a positive auth revision');
    const expSeconds = Math.floor((this.now() + this.options.ttlMs) / 1000);
    const token = await new SignJWT({ username, revision })
      .setProtectedHeader({ alg: this.options.signMethod, typ: 'JWT', kid: signing.kid })
      .setExpirationTime(expSeconds)
      .sign(signing.key);
    // The issuing member never checks its own signature again.
    this.remember(token, { ok: true, claims: { username, revision, expiresAtMs: expSeconds * 1000 } }, this.generation);
    return token;
  }

  /** The cached verdict for `token`, if any: no signature check, no allocation on a hit. */
  cached(token: string): JwtVerdict | undefined {
    const hit = this.verified.get(token);
    const now = this.now();
    if (hit !== undefined) {
      if (hit.claims.expiresAtMs > now) return hit;
      this.verified.delete(token);
      return EXPIRED;
    }
    const refusal = this.refused.get(token);
    if (refusal === undefined) return undefined;
    if (refusal.untilMs > now) return refusal.verdict;
    this.refused.delete(token);
    return undefined;
  }

  /** The verdict for `token`: at once when cached, else after checking its signature (once per token, however many callers ask). */
  verify(token: string): JwtVerdict | Promise<JwtVerdict> {
    const cached = this.cached(token);
    if (cached !== undefined) return cached;
    let pending = this.inflight.get(token);
    if (pending === undefined) {
      const generation = this.generation;
      pending = this.check(token).then((verdict) => {
        this.inflight.delete(token);
        this.remember(token, verdict, generation);
        return verdict;
      });
      this.inflight.set(token, pending);
    }
    return pending;
  }

  private async check(token: string): Promise<JwtVerdict> {
    let header: { alg?: string; kid?: string };
    try {
      header = decodeProtectedHeader(token);
    } catch {
      return { ok: false, reason: 'malformed' };
    }
    // As etcd: only the configured method (no "none", no method confusion).
    if (header.alg !== this.options.signMethod) return { ok: false, reason: `sign method ${String(header.alg)}` };
    const candidates = this.candidates(header.kid);
    if (candidates.length === 0) return { ok: false, reason: 'unknown key id' };
    let failure = 'bad signature';
    for (const { key } of candidates) {
      const verdict = await this.verifyWith(token, key);
      if (verdict.ok || verdict.reason !== 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') return verdict;
      failure = verdict.reason;
    }
    return { ok: false, reason: failure };
  }

  /** The key named by `kid`; without one (tokens etcd made) every key is tried. */
  private candidates(kid: string | undefined): readonly JwtVerifyKey[] {
    return kid === undefined ? this.keys.verifying : this.keys.verifying.filter((k) => k.kid === kid);
  }

  private async verifyWith(token: string, key: KeyObject): Promise<JwtVerdict> {
    try {
      const { payload } = await jwtVerify(token, key, {
        algorithms: [this.options.signMethod],
        requiredClaims: ['exp'],
        currentDate: new Date(this.now()),
      });
      const { username, revision, exp } = payload as { username?: unknown; revision?: unknown; exp?: unknown };
      if (typeof username !== 'string' || username.length === 0 || username.length > MAX_USERNAME_CHARS) return { ok: false, reason: 'no username claim' };
      if (typeof revision !== 'number' || !Number.isSafeInteger(revision) || revision <= 0) return { ok: false, reason: 'no revision claim' };
      assert(typeof exp === 'number', 'jose checked the exp claim');
      return { ok: true, claims: { username, revision, expiresAtMs: exp * 1000 } };
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      return { ok: false, reason: typeof code === 'string' ? code : 'invalid' };
    }
  }

  private remember(token: string, verdict: JwtVerdict, generation: number): void {
    if (generation !== this.generation) return;
    if (verdict.ok) {
      if (this.verified.size >= this.maxCached) dropOldest(this.verified);
      this.verified.set(token, verdict);
    } else {
      if (this.refused.size >= MAX_REFUSED_JWTS) dropOldest(this.refused);
      this.refused.set(token, { verdict, untilMs: this.now() + REFUSED_JWT_CACHE_MS });
    }
  }

  /** Starts the periodic key-file check (unref'd). */
  start(): this {
    const intervalMs = this.settings.reloadIntervalMs ?? DEFAULT_TLS_RELOAD_INTERVAL_MS;
    if (this.timer === null && intervalMs > 0) {
      this.timer = setInterval(() => this.checkFiles(), intervalMs);
      this.timer.unref();
    }
    return this;
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Reloads if a key file changed since the last load; true when new keys are in use. */
  checkFiles(): boolean {
    const stamp = filesStamp(this.files);
    return stamp === this.stamp ? false : this.reload(stamp);
  }

  /**
   * Loads the key files again (SIGHUP). New keys are checked before use; a bad or half-copied
   * file keeps the current keys. Every cached verdict is dropped: a token signed by a key no
   * longer listed stops working at once.
   */
  reload(stamp = filesStamp(this.files)): boolean {
    let keys: JwtKeySet;
    try {
      keys = loadJwtKeys(this.options);
    } catch (error) {
      this.settings.logger?.error(
        { event: 'jwt_key_reload_failed', reason: (error as Error).message },
        'security: new JWT key files are not usable; keeping the current keys',
      );
      return false;
    }
    this.stamp = stamp;
    this.keys = keys;
    this.generation++;
    this.verified.clear();
    this.refused.clear();
    for (const warning of keys.warnings) this.settings.logger?.warn({ event: 'jwt_key_warning' }, `security: ${warning}`);
    this.settings.logger?.info(
      { event: 'jwt_keys_reloaded', keyIds: this.keyIds, verifyOnly: this.verifyOnly },
      'security: JWT keys reloaded',
    );
    return true;
  }
}

/** Maps iterate in insertion order: the first key is the oldest. */
function dropOldest(map: Map<string, unknown>): void {
  const oldest = map.keys().next();
  if (oldest.done !== true) map.delete(oldest.value);
}

const EXPIRED: JwtVerdict = Object.freeze({ ok: false, reason: 'ERR_JWT_EXPIRED' });
