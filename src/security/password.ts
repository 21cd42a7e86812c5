// Password hashing for the auth store: scrypt (RFC 7914) from node:crypto with a random salt,
// encoded with its parameters so the cost can rise later without breaking stored hashes.
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

/** N = 2^14, r = 8, p = 1: 16 MiB and tens of milliseconds per hash (scrypt's interactive-login parameters). */
export const SCRYPT_COST_LOG2 = 14;
const SCRYPT_BLOCK_SIZE = 8;
const SCRYPT_PARALLELISM = 1;
const SALT_BYTES = 16;
const HASH_BYTES = 32;
/** Bounds on the parameters a stored hash may name (a corrupt or hostile hash must not exhaust memory). */
const MAX_COST_LOG2 = 20;
const MAX_BLOCK_SIZE = 16;
const MAX_PARALLELISM = 4;

function derive(password: string, salt: Buffer, costLog2: number, blockSize: number, parallelism: number): Promise<Buffer> {
  const N = 2 ** costLog2;
  return new Promise((resolve, reject) =>
    scrypt(
      password.normalize('NFKC'),
      salt,
      HASH_BYTES,
      { N, r: blockSize, p: parallelism, maxmem: 256 * N * blockSize + 1024 * 1024 },
      (error, key) => (error ? reject(error) : resolve(key)),
    ),
  );
}

/** `scrypt$<log2 N>$<r>$<p>$<salt base64>$<hash base64>`. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(password, salt, SCRYPT_COST_LOG2, SCRYPT_BLOCK_SIZE, SCRYPT_PARALLELISM);
  return ['scrypt', SCRYPT_COST_LOG2, SCRYPT_BLOCK_SIZE, SCRYPT_PARALLELISM, salt.toString('base64'), hash.toString('base64')].join('$');
}

/** True when `password` matches `encoded`; false for any malformed hash (never throws for those). */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const parts = encoded.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [costLog2, blockSize, parallelism] = parts.slice(1, 4).map(Number);
  const ok = (v: number, max: number) => Number.isInteger(v) && v >= 1 && v <= max;
  if (!ok(costLog2, MAX_COST_LOG2) || !ok(blockSize, MAX_BLOCK_SIZE) || !ok(parallelism, MAX_PARALLELISM)) return false;
  const salt = Buffer.from(parts[4], 'base64');
  const expected = Buffer.from(parts[5], 'base64');
  if (salt.length === 0 || expected.length !== HASH_BYTES) return false;
  const actual = await derive(password, salt, costLog2, blockSize, parallelism);
  return timingSafeEqual(actual, expected);
}
