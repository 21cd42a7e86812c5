// JWT auth tokens below the server: etcd's --auth-token syntax, openssl-made keys of every kind,
// signing and verifying (tampered, foreign-key, expired, wrong-method and claim-less tokens refused),
// the cache that spares repeated signature checks, verify-only keepers, and key reload for rotation.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createPrivateKey, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import {
  DEFAULT_JWT_TTL_MS,
  generateJwtKeyPair,
  JwtKeyError,
  JwtTokenKeeper,
  JwtVerifyOnlyError,
  parseAuthTokenSpec,
  parseGoDuration,
  SecurityError,
} from '../../src/security/index.ts';
import type { JwtKeyPair, JwtOptions, JwtSignMethod, JwtVerdict } from '../../src/security/index.ts';
import { hasOpenssl } from './support.ts';

const messageOf = (run: () => unknown): string => {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof SecurityError, `a SecurityError, got ${String(error)}`);
    return error.message;
  }
  return 'no error';
};

/** A clock the test moves by hand (JWT exp is wall-clock time). */
function clock(startMs = Date.UTC(2030, 0, 1)) {
  let nowMs = startMs;
  return { now: () => nowMs, advance: (ms: number) => void (nowMs += ms) };
}

async function settled(verdict: JwtVerdict | Promise<JwtVerdict>): Promise<JwtVerdict> {
  return verdict instanceof Promise ? verdict : verdict;
}

/** Flips one character of the signature (the third dot-separated part). */
function tamper(token: string): string {
  const [header, payload, signature] = token.split('.');
  const middle = Math.floor(signature.length / 2);
  const flipped = signature[middle] === 'A' ? 'B' : 'A';
  return `${header}.${payload}.${signature.slice(0, middle)}${flipped}${signature.slice(middle + 1)}`;
}

describe('--auth-token parsing (etcd syntax)', () => {
  it('simple, and jwt with every option; ttl defaults to 5m', () => {
    assert.deepEqual(parseAuthTokenSpec('simple'), { kind: 'simple' });
    assert.deepEqual(parseAuthTokenSpec('jwt,pub-key=/k.pub,priv-key=/k.key,sign-method=RS512,ttl=10m'), {
      kind: 'jwt', signMethod: 'RS512', pubKeyFile: '/k.pub', privKeyFile: '/k.key', ttlMs: 600_000,
    });
    const verifyOnly = parseAuthTokenSpec('jwt,pub-key=/k.pub,sign-method=ES256');
    assert.deepEqual(verifyOnly, { kind: 'jwt', signMethod: 'ES256', pubKeyFile: '/k.pub', privKeyFile: undefined, ttlMs: DEFAULT_JWT_TTL_MS });
  });

  it('refuses what etcd refuses, and typos etcd would only warn about', () => {
    assert.match(messageOf(() => parseAuthTokenSpec('jwt,pub-key=/k.pub')), /sign-method is required/);
    assert.match(messageOf(() => parseAuthTokenSpec('jwt,sign-method=ES256')), /give pub-key, priv-key or both/);
    assert.match(messageOf(() => parseAuthTokenSpec('jwt,priv_key=/k,sign-method=ES256')), /unknown option priv_key/);
    assert.match(messageOf(() => parseAuthTokenSpec('jwt,priv-key=/k,sign-method=none')), /none is not supported/);
    assert.match(messageOf(() => parseAuthTokenSpec('jwt,priv-key=/k,priv-key=/j,sign-method=ES256')), /given twice/);
    assert.match(messageOf(() => parseAuthTokenSpec('jwt,priv-key,sign-method=ES256')), /is not name=value/);
    assert.match(messageOf(() => parseAuthTokenSpec('jwt,priv-key=/k,sign-method=ES256,ttl=5 minutes')), /not a duration/);
    assert.match(messageOf(() => parseAuthTokenSpec('jwt,priv-key=/k,sign-method=ES256,ttl=0s')), /between 1s and 24h/);
    assert.match(messageOf(() => parseAuthTokenSpec('oauth')), /unknown token type "oauth"/);
    assert.match(messageOf(() => parseAuthTokenSpec('simple,ttl=5m')), /simple takes no options/);
  });

  it('reads Go durations', () => {
    assert.equal(parseGoDuration('5m'), 300_000);
    assert.equal(parseGoDuration('1h30m'), 5_400_000);
    assert.equal(parseGoDuration('1.5h'), 5_400_000);
    assert.equal(parseGoDuration('10m0s'), 600_000);
    assert.equal(parseGoDuration('250ms'), 250);
    assert.equal(parseGoDuration('0'), 0);
    for (const bad of ['', '5', 'm', '5x', '5m ', '-5m']) assert.throws(() => parseGoDuration(bad), SecurityError, bad);
  });
});

describe('JWT tokens with a shared secret (HS256, HS384, HS512)', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-jwt-hmac-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const secretFile = (name: string, bytes: Buffer) => {
    const path = join(dir, name);
    writeFileSync(path, bytes, { mode: 0o600 });
    return path;
  };
  const hmacKeeper = (method: JwtSignMethod, privKeyFile: string, now = clock().now) =>
    new JwtTokenKeeper({ signMethod: method, pubKeyFile: undefined, privKeyFile, ttlMs: 60_000 }, { now, reloadIntervalMs: 0 });

  for (const method of ['HS256', 'HS384', 'HS512'] as const) {
    it(`${method}: members with the same secret accept each other's tokens; another secret, a tampered one and etcd's own are judged right`, async () => {
      const time = clock();
      const shared = secretFile(`${method}.key`, randomBytes(64));
      const signer = hmacKeeper(method, shared, time.now);
      const verifier = hmacKeeper(method, shared, time.now);
      const token = await signer.sign('alice', 7);
      assert.equal(JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString()).alg, method);
      assert.equal((await settled(verifier.verify(token))).ok, true);
      assert.equal((await settled(verifier.verify(tamper(token)))).ok, false);
      const other = hmacKeeper(method, secretFile(`${method}-other.key`, randomBytes(64)), time.now);
      assert.equal((await settled(other.verify(token))).ok, false, 'a token made with another secret');
      // As etcd makes them: the file's bytes are the HMAC key, no kid.
      const exp = Math.floor(time.now() / 1000) + 60;
      const etcdStyle = await new SignJWT({ username: 'root', revision: 3 })
        .setProtectedHeader({ alg: method })
        .setExpirationTime(exp)
        .sign(readFileSync(shared));
      assert.equal((await settled(verifier.verify(etcdStyle))).ok, true);
    });
  }

  it('needs priv-key and a secret of at least 32 bytes; an asymmetric member refuses HS tokens', async () => {
    assert.match(messageOf(() => parseAuthTokenSpec('jwt,pub-key=a.pem,sign-method=HS256')), /shared secret in priv-key/);
    assert.equal(parseAuthTokenSpec('jwt,priv-key=s.key,sign-method=HS512').kind, 'jwt');
    assert.throws(() => hmacKeeper('HS256', secretFile('short.key', randomBytes(16))), (error: unknown) => error instanceof JwtKeyError && /at least 32 bytes/.test(error.message));
    const token = await hmacKeeper('HS256', secretFile('ok.key', randomBytes(32))).sign('root', 1);
    const decoded = JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString());
    assert.equal(decoded.alg, 'HS256');
    assert.ok(typeof decoded.kid === 'string' && !readFileSync(join(dir, 'ok.key')).toString('base64url').includes(decoded.kid), 'the kid does not reveal the secret');
  });
});

describe('JWT tokens (openssl keys)', { skip: !hasOpenssl && 'openssl not installed' }, () => {
  let dir: string;
  const pairs = new Map<string, JwtKeyPair>();
  const keeper = (method: JwtSignMethod, files: Partial<JwtOptions>, now = clock().now, ttlMs = 60_000) =>
    new JwtTokenKeeper({ signMethod: method, pubKeyFile: undefined, privKeyFile: undefined, ttlMs, ...files }, { now, reloadIntervalMs: 0 });

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-jwt-'));
    for (const kind of ['rsa', 'ec-p256', 'ec-p384', 'ed25519'] as const) pairs.set(kind, generateJwtKeyPair(dir, kind, kind));
    pairs.set('ec-p256-other', generateJwtKeyPair(dir, 'ec-p256-other', 'ec-p256'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const methods: [JwtSignMethod, string][] = [['RS256', 'rsa'], ['PS384', 'rsa'], ['ES256', 'ec-p256'], ['ES384', 'ec-p384'], ['EdDSA', 'ed25519']];
  for (const [method, kind] of methods) {
    it(`${method}: signs etcd's claims; another member with the keys accepts it; a tampered signature is refused`, async () => {
      const time = clock();
      const signer = keeper(method, pairs.get(kind)!, time.now);
      const verifier = keeper(method, pairs.get(kind)!, time.now);
      const token = await signer.sign('alice', 7);
      const payload = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
      assert.deepEqual(Object.keys(payload).sort(), ['exp', 'revision', 'username']);
      assert.equal(payload.exp, Math.floor((time.now() + 60_000) / 1000));
      const verdict = await settled(verifier.verify(token));
      assert.deepEqual(verdict, { ok: true, claims: { username: 'alice', revision: 7, expiresAtMs: payload.exp * 1000 } });
      const forged = await settled(verifier.verify(tamper(token)));
      assert.equal(forged.ok, false);
    });
  }

  it('refuses a token signed by another key, one with another method, one past exp, and one without etcd\'s claims', async () => {
    const time = clock();
    const ours = keeper('ES256', pairs.get('ec-p256')!, time.now);
    const theirs = keeper('ES256', pairs.get('ec-p256-other')!, time.now);
    const foreign = await theirs.sign('root', 3);
    assert.equal((await settled(ours.verify(foreign))).ok, false, 'a token from another key');
    // Made as etcd makes them: no kid in the header.
    const key = createPrivateKey(readFileSync(pairs.get('ec-p256')!.privKeyFile));
    const exp = Math.floor(time.now() / 1000) + 60;
    const etcdStyle = await new SignJWT({ username: 'root', revision: 3 }).setProtectedHeader({ alg: 'ES256' }).setExpirationTime(exp).sign(key);
    assert.equal((await settled(ours.verify(etcdStyle))).ok, true, 'etcd-made tokens carry no kid: every key is tried');
    // A member configured for another method refuses it before any key is tried.
    const edKeeper = keeper('EdDSA', pairs.get('ed25519')!, time.now);
    assert.deepEqual(await settled(edKeeper.verify(etcdStyle)), { ok: false, reason: 'sign method ES256' });
    const noRevision = await new SignJWT({ username: 'root' }).setProtectedHeader({ alg: 'ES256' }).setExpirationTime(exp).sign(key);
    assert.deepEqual(await settled(ours.verify(noRevision)), { ok: false, reason: 'no revision claim' });
    const noExp = await new SignJWT({ username: 'root', revision: 3 }).setProtectedHeader({ alg: 'ES256' }).sign(key);
    assert.equal((await settled(ours.verify(noExp))).ok, false, 'a token that never expires');
    assert.deepEqual(await settled(ours.verify('not.a.jwt')), { ok: false, reason: 'malformed' });

    const token = await ours.sign('alice', 9);
    time.advance(61_000);
    assert.deepEqual(ours.cached(token), { ok: false, reason: 'ERR_JWT_EXPIRED' }, 'a cached token expires too');
    const fresh = keeper('ES256', pairs.get('ec-p256')!, time.now);
    assert.deepEqual(await settled(fresh.verify(token)), { ok: false, reason: 'ERR_JWT_EXPIRED' });
  });

  it('checks a signature once: later verifications are answered from the bounded cache, synchronously', async () => {
    const time = clock();
    const signer = keeper('ES256', pairs.get('ec-p256')!, time.now);
    const verifier = new JwtTokenKeeper(
      { signMethod: 'ES256', pubKeyFile: pairs.get('ec-p256')!.pubKeyFile, privKeyFile: undefined, ttlMs: 60_000 },
      { now: time.now, reloadIntervalMs: 0, maxCachedTokens: 2 },
    );
    const tokens = [await signer.sign('a', 1), await signer.sign('b', 1), await signer.sign('c', 1)];
    assert.ok(signer.verify(tokens[0]) instanceof Promise === false, 'the issuer caches what it signs');
    const first = verifier.verify(tokens[0]);
    assert.ok(first instanceof Promise, 'an unseen token costs a signature check');
    const concurrent = verifier.verify(tokens[0]);
    assert.equal(concurrent, first, 'two calls with the same new token share one check');
    await first;
    const again = verifier.verify(tokens[0]);
    assert.ok(!(again instanceof Promise), 'a seen token is answered at once');
    assert.equal(again.ok, true);
    await verifier.verify(tokens[1]);
    await verifier.verify(tokens[2]);
    assert.equal(verifier.cached(tokens[0]), undefined, 'the oldest entry left the full cache');
    assert.equal(verifier.cached(tokens[2])?.ok, true);
    const bad = tamper(tokens[1]);
    await verifier.verify(bad);
    assert.equal(verifier.cached(bad)?.ok, false, 'a refused token is remembered for a while');
    time.advance(11_000);
    assert.equal(verifier.cached(bad), undefined, 'and forgotten after that');
  });

  it('verify-only (pub-key alone) accepts tokens and refuses to sign; mismatched or wrong-type keys fail at start', async () => {
    const time = clock();
    const signer = keeper('RS256', pairs.get('rsa')!, time.now);
    const verifyOnly = keeper('RS256', { pubKeyFile: pairs.get('rsa')!.pubKeyFile }, time.now);
    assert.equal(verifyOnly.verifyOnly, true);
    assert.equal((await settled(verifyOnly.verify(await signer.sign('alice', 2)))).ok, true);
    await assert.rejects(verifyOnly.sign('alice', 2), JwtVerifyOnlyError);
    assert.throws(
      () => keeper('ES256', { privKeyFile: pairs.get('ec-p256')!.privKeyFile, pubKeyFile: pairs.get('ec-p256-other')!.pubKeyFile }),
      (error: Error) => error instanceof JwtKeyError && /public and private keys don't match/.test(error.message),
    );
    assert.throws(() => keeper('ES256', pairs.get('rsa')!), (error: Error) => error instanceof JwtKeyError && /cannot ES256/.test(error.message));
    assert.throws(() => keeper('ES256', pairs.get('ec-p384')!), /EC secp384r1 key, which cannot ES256/);
    assert.throws(() => keeper('ES256', { pubKeyFile: join(dir, 'missing.pub') }), /cannot read JWT public key/);
  });

  it('rotates keys: a bundle of public keys verifies old and new tokens; dropping the old key refuses its tokens', async () => {
    const time = clock();
    const live = { privKeyFile: join(dir, 'live.key'), pubKeyFile: join(dir, 'live.pub') };
    const old = pairs.get('ec-p256')!;
    const next = pairs.get('ec-p256-other')!;
    copyFileSync(old.privKeyFile, live.privKeyFile);
    copyFileSync(old.pubKeyFile, live.pubKeyFile);
    const member = keeper('ES256', live, time.now);
    const oldToken = await member.sign('alice', 4);
    // Step 1: every member trusts both public keys.
    writeFileSync(live.pubKeyFile, readFileSync(old.pubKeyFile, 'utf8') + readFileSync(next.pubKeyFile, 'utf8'));
    assert.equal(member.reload(), true);
    assert.equal(member.keyIds.length, 2);
    assert.equal((await settled(member.verify(oldToken))).ok, true);
    // Step 2: members sign with the new key.
    copyFileSync(next.privKeyFile, live.privKeyFile);
    assert.equal(member.reload(), true);
    const newToken = await member.sign('alice', 4);
    assert.notEqual(JSON.parse(Buffer.from(newToken.split('.')[0], 'base64url').toString()).kid, JSON.parse(Buffer.from(oldToken.split('.')[0], 'base64url').toString()).kid);
    // A half-written file is refused and the keys in use stay.
    writeFileSync(live.pubKeyFile, '-----BEGIN PUBLIC KEY-----\nAAAA');
    assert.equal(member.reload(), false);
    assert.equal((await settled(member.verify(newToken))).ok, true);
    // Step 3: the old public key goes; its tokens stop working at once.
    copyFileSync(next.pubKeyFile, live.pubKeyFile);
    assert.equal(member.reload(), true);
    assert.equal((await settled(member.verify(oldToken))).ok, false);
    assert.equal((await settled(member.verify(newToken))).ok, true);
    assert.equal(member.checkFiles(), false, 'nothing changed since the last load');
  });
});
