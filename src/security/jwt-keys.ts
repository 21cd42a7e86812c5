// etcd's `--auth-token` option string (`simple`, or `jwt,pub-key=…,priv-key=…,sign-method=…,ttl=…`)
// and the JWT key files it names: parsed and checked at start (and on every reload), so a wrong
// key type, a mismatched pair or an unreadable file is a clear error naming the file.
import { createHash, createPrivateKey, createPublicKey, createSecretKey, X509Certificate } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { assert } from '../util/index.ts';
import { JwtKeyError, SecurityError } from './errors.ts';

/**
 * The methods etcd's golang-jwt offers: asymmetric ones (pub-key verifies, priv-key signs) and HMAC
 * ones, for which the priv-key file's bytes are the secret every member shares (as in etcd).
 */
export const JWT_SIGN_METHODS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'HS256', 'HS384', 'HS512'] as const;
export type JwtSignMethod = (typeof JWT_SIGN_METHODS)[number];

/** True for the HMAC methods: one shared secret signs and verifies. */
export const isHmacMethod = (method: JwtSignMethod): boolean => method.startsWith('HS');
/**
 * Shortest HMAC secret accepted. etcd takes any length; a short secret can be guessed offline from
 * any token, so Tessera refuses it (docs/COMPATIBILITY.md).
 */
export const MIN_HMAC_SECRET_BYTES = 32;

/** etcd's default `ttl` of a JWT. */
export const DEFAULT_JWT_TTL_MS = 5 * 60_000;
/** Longest `ttl` accepted: a JWT cannot be revoked before it expires except by a credential change. */
export const MAX_JWT_TTL_MS = 24 * 3600_000;
/** Public keys in one pub-key file (several during a key rotation). */
export const MAX_JWT_PUBLIC_KEYS = 8;
/** Smallest RSA modulus accepted (jose's, and NIST's, minimum). */
const MIN_RSA_BITS = 2048;

export interface JwtOptions {
  signMethod: JwtSignMethod;
  /** PEM public keys (or certificates) that verify tokens; the private key's public half when absent. */
  pubKeyFile: string | undefined;
  /** PEM private key that signs tokens; absent = verify-only (Authenticate fails on this member). */
  privKeyFile: string | undefined;
  ttlMs: number;
}

export type AuthTokenSpec = { kind: 'simple' } | ({ kind: 'jwt' } & JwtOptions);

const SYNTAX = 'jwt,pub-key=<path>,priv-key=<path>,sign-method=<method>[,ttl=<duration>]';
const KNOWN_OPTIONS = new Set(['pub-key', 'priv-key', 'sign-method', 'ttl']);

/** Parses etcd's --auth-token value; throws SecurityError saying what is wrong. */
export function parseAuthTokenSpec(spec: string): AuthTokenSpec {
  const [kind, ...parts] = spec.split(',');
  const options = new Map<string, string>();
  for (const part of parts) {
    const pair = part.split('=');
    if (pair.length !== 2 || pair[0] === '') throw new SecurityError(`--auth-token: "${part}" is not name=value (${SYNTAX})`);
    if (options.has(pair[0])) throw new SecurityError(`--auth-token: ${pair[0]} is given twice`);
    options.set(pair[0], pair[1]);
  }
  if (kind === 'simple') {
    if (options.size > 0) throw new SecurityError('--auth-token: simple takes no options');
    return { kind: 'simple' };
  }
  if (kind !== 'jwt') throw new SecurityError(`--auth-token: unknown token type "${kind}" (simple, or ${SYNTAX})`);
  // etcd only warns about unknown options; a typo here (priv_key) would silently make the member verify-only.
  const unknown = [...options.keys()].filter((name) => !KNOWN_OPTIONS.has(name));
  if (unknown.length > 0) throw new SecurityError(`--auth-token: unknown option ${unknown.join(', ')} (${SYNTAX})`);
  const method = options.get('sign-method');
  if (method === undefined) throw new SecurityError(`--auth-token: sign-method is required (${SYNTAX})`);
  if (!(JWT_SIGN_METHODS as readonly string[]).includes(method)) {
    throw new SecurityError(`--auth-token: sign-method ${method} is not supported (one of ${JWT_SIGN_METHODS.join(', ')})`);
  }
  const pubKeyFile = nonEmpty(options.get('pub-key'));
  const privKeyFile = nonEmpty(options.get('priv-key'));
  if (pubKeyFile === undefined && privKeyFile === undefined) throw new SecurityError(`--auth-token: give pub-key, priv-key or both (${SYNTAX})`);
  if (isHmacMethod(method as JwtSignMethod) && privKeyFile === undefined) {
    throw new SecurityError(`--auth-token: ${method} signs and verifies with the shared secret in priv-key (every member needs the same file)`);
  }
  const ttl = options.get('ttl');
  const ttlMs = ttl === undefined || ttl === '' ? DEFAULT_JWT_TTL_MS : parseGoDuration(ttl, '--auth-token ttl');
  if (ttlMs < 1000 || ttlMs > MAX_JWT_TTL_MS) throw new SecurityError(`--auth-token: ttl ${ttl} must be between 1s and 24h`);
  return { kind: 'jwt', signMethod: method as JwtSignMethod, pubKeyFile, privKeyFile, ttlMs };
}

const nonEmpty = (value: string | undefined) => (value === undefined || value === '' ? undefined : value);

const DURATION_UNITS_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, μs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3600_000 };

/** Go's time.ParseDuration ("5m", "1h30m", "90s", "1.5h"), in whole milliseconds. */
export function parseGoDuration(text: string, what = 'duration'): number {
  const pattern = /(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  let total = 0;
  let at = 0;
  while (at < text.length) {
    pattern.lastIndex = at;
    const match = pattern.exec(text);
    if (match === null) break;
    total += Number(match[1]) * DURATION_UNITS_MS[match[2]];
    at = pattern.lastIndex;
  }
  if (text === '0') return 0;
  if (at === 0 || at !== text.length || !Number.isFinite(total)) {
    throw new SecurityError(`${what}: "${text}" is not a duration (Go's syntax: 300s, 5m, 1h30m)`);
  }
  return Math.round(total);
}

/** One key that verifies tokens; `kid` is the first 16 characters of the SPKI's SHA-256, base64url. */
export interface JwtVerifyKey {
  kid: string;
  key: KeyObject;
}

/** What the key files hold, checked: every key fits the sign method, the private key's public half is among the public keys. */
export interface JwtKeySet {
  signing: JwtVerifyKey | null;
  verifying: readonly JwtVerifyKey[];
  /** Things to tell the operator (a private key readable by others). */
  warnings: string[];
}

/** Reads and checks the key files; throws JwtKeyError naming the file on any problem. */
export function loadJwtKeys(options: JwtOptions): JwtKeySet {
  if (isHmacMethod(options.signMethod)) return loadHmacSecret(options);
  const warnings: string[] = [];
  let signing: JwtVerifyKey | null = null;
  if (options.privKeyFile !== undefined) {
    const key = readPrivateKey(options.privKeyFile);
    checkKeyType(key, options.signMethod, options.privKeyFile);
    signing = { kid: keyId(createPublicKey(key)), key };
    if ((fileMode(options.privKeyFile) & 0o077) !== 0) warnings.push(`JWT private key ${options.privKeyFile} is readable by group or others (chmod 600 it)`);
  }
  let verifying: JwtVerifyKey[];
  if (options.pubKeyFile === undefined) {
    assert(signing !== null, 'a JWT key set has a private or a public key');
    verifying = [{ kid: signing.kid, key: createPublicKey(signing.key) }];
  } else {
    verifying = readPublicKeys(options.pubKeyFile).map((key) => {
      checkKeyType(key, options.signMethod, options.pubKeyFile!);
      return { kid: keyId(key), key };
    });
  }
  if (signing !== null && !verifying.some((k) => k.kid === signing.kid)) {
    throw new JwtKeyError(`public and private keys don't match: ${options.privKeyFile} is not the private half of a key in ${options.pubKeyFile}`);
  }
  assert(verifying.length > 0, 'a JWT key set verifies with at least one key');
  return { signing, verifying, warnings };
}

/** HS256/384/512: the priv-key file's bytes, as they are, are the secret (etcd's hmacKey); pub-key is not used. */
function loadHmacSecret(options: JwtOptions): JwtKeySet {
  const path = options.privKeyFile;
  assert(path !== undefined, 'an HMAC method has a priv-key file');
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new JwtKeyError(`cannot read JWT secret ${path}: ${(error as Error).message}`);
  }
  if (bytes.length < MIN_HMAC_SECRET_BYTES) {
    throw new JwtKeyError(`${path}: an ${options.signMethod} secret needs at least ${MIN_HMAC_SECRET_BYTES} bytes, it has ${bytes.length} (openssl rand -out ${path} 64)`);
  }
  const warnings: string[] = [];
  if ((fileMode(path) & 0o077) !== 0) warnings.push(`JWT secret ${path} is readable by group or others (chmod 600 it)`);
  if (options.pubKeyFile !== undefined) warnings.push(`pub-key ${options.pubKeyFile} is not used with ${options.signMethod} (the priv-key secret verifies too)`);
  // The key id names the secret without revealing it: a hash under a label of its own.
  const kid = createHash('sha256').update('tessera-jwt-hmac-kid\0').update(bytes).digest('base64url').slice(0, 16);
  const key = { kid, key: createSecretKey(bytes) };
  return { signing: key, verifying: [key], warnings };
}

function readFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new JwtKeyError(`cannot read JWT ${what} ${path}: ${(error as Error).message}`);
  }
}

function fileMode(path: string): number {
  try {
    return statSync(path).mode;
  } catch {
    return 0;
  }
}

function readPrivateKey(path: string): KeyObject {
  const pem = readFile(path, 'private key');
  try {
    // PKCS#8, PKCS#1 (RSA PRIVATE KEY) and SEC1 (EC PRIVATE KEY), as golang-jwt reads them.
    const key = createPrivateKey(pem);
    if (key.type !== 'private') throw new Error('not a private key');
    return key;
  } catch (error) {
    throw new JwtKeyError(`${path} is not a PEM private key (unencrypted PKCS#8, PKCS#1 or SEC1): ${(error as Error).message}`);
  }
}

/** Every PEM public key or certificate in the file (a bundle while keys rotate). */
function readPublicKeys(path: string): KeyObject[] {
  const pem = readFile(path, 'public key');
  const blocks = [...pem.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----/g)];
  if (blocks.length === 0) throw new JwtKeyError(`${path} holds no PEM public key or certificate`);
  if (blocks.length > MAX_JWT_PUBLIC_KEYS) throw new JwtKeyError(`${path} holds ${blocks.length} keys; at most ${MAX_JWT_PUBLIC_KEYS}`);
  return blocks.map(([block, label]) => {
    try {
      if (label === 'CERTIFICATE') return new X509Certificate(block).publicKey;
      if (label.includes('PRIVATE')) throw new Error('a private key in the public key file');
      return createPublicKey(block);
    } catch (error) {
      throw new JwtKeyError(`${path}: cannot read a ${label}: ${(error as Error).message}`);
    }
  });
}

const CURVES: Partial<Record<JwtSignMethod, string>> = { ES256: 'prime256v1', ES384: 'secp384r1', ES512: 'secp521r1' };

/** The key's type must be the sign method's (jose would refuse it later, with a vaguer message). */
function checkKeyType(key: KeyObject, method: JwtSignMethod, path: string): void {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  let fits: boolean;
  if (method.startsWith('RS')) fits = type === 'rsa';
  else if (method.startsWith('PS')) fits = type === 'rsa' || type === 'rsa-pss';
  else if (method.startsWith('ES')) fits = type === 'ec' && details.namedCurve === CURVES[method];
  else fits = type === 'ed25519';
  if (!fits) {
    const has = type === 'ec' ? `an EC ${details.namedCurve} key` : `a key of type ${type}`;
    throw new JwtKeyError(`${path} holds ${has}, which cannot ${method} (RS*/PS*: RSA; ES256/384/512: EC P-256/P-384/P-521; EdDSA: Ed25519)`);
  }
  if ((type === 'rsa' || type === 'rsa-pss') && (details.modulusLength ?? 0) < MIN_RSA_BITS) {
    throw new JwtKeyError(`${path}: RSA keys need at least ${MIN_RSA_BITS} bits, this one has ${details.modulusLength}`);
  }
}

function keyId(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64url').slice(0, 16);
}
