// Keys and values for the workloads: fixed-size keys `<prefix><zero-padded index>` over a key
// space, chosen uniformly, sequentially, or by YCSB's zipfian distribution.
import { assert } from '../util/index.ts';

export type KeyDistribution = 'uniform' | 'zipfian' | 'sequential';

/** The shortest key-size that can hold `keySpace` distinct keys after `prefix`. */
export function minKeySize(prefix: string, keySpace: number): number {
  return Buffer.byteLength(prefix) + String(Math.max(0, keySpace - 1)).length;
}

export class KeySpace {
  private readonly prefix: Buffer;
  private readonly digits: number;

  constructor(
    prefix: string,
    readonly keySize: number,
    readonly size: number,
  ) {
    assert(Number.isSafeInteger(size) && size > 0, 'key space is a positive integer');
    this.prefix = Buffer.from(prefix);
    this.digits = keySize - this.prefix.length;
    assert(keySize >= minKeySize(prefix, size), `key-size ${keySize} cannot hold ${size} keys after "${prefix}"`);
  }

  /** The key with index i (0 <= i < size), exactly keySize bytes. */
  key(index: number): Buffer {
    assert(index >= 0 && index < this.size, 'key index within the key space');
    const key = Buffer.allocUnsafe(this.keySize);
    this.prefix.copy(key, 0);
    key.write(String(index).padStart(this.digits, '0'), this.prefix.length, 'latin1');
    return key;
  }
}

/** Picks key indexes; each worker thread owns one, so no coordination is needed. */
export interface KeyChooser {
  next(): number;
}

export function keyChooser(distribution: KeyDistribution, size: number, start: number, stride: number): KeyChooser {
  switch (distribution) {
    case 'uniform':
      return { next: () => Math.floor(Math.random() * size) };
    case 'sequential': {
      // Worker w of W writes w, w+W, w+2W, ... so together they cover the key space once per lap.
      let index = start % size;
      return {
        next: () => {
          const current = index;
          index = (index + stride) % size;
          return current;
        },
      };
    }
    case 'zipfian':
      return new ZipfianChooser(size);
  }
}

/**
 * YCSB's ZipfianGenerator (Gray et al., "Quickly generating billion-record synthetic databases")
 * with the constant 0.99, scrambled by a multiplicative hash so the hot keys spread over the space
 * (YCSB's ScrambledZipfian) instead of all sitting at the front.
 */
class ZipfianChooser implements KeyChooser {
  private static readonly theta = 0.99;
  private readonly alpha: number;
  private readonly zetaN: number;
  private readonly eta: number;

  constructor(private readonly size: number) {
    assert(size <= 100_000_000, 'zipfian key space is at most 1e8 keys (zeta is computed by a loop)');
    const theta = ZipfianChooser.theta;
    let zetaN = 0;
    for (let i = 1; i <= size; i++) zetaN += 1 / Math.pow(i, theta);
    const zeta2 = 1 + 1 / Math.pow(2, theta);
    this.zetaN = zetaN;
    this.alpha = 1 / (1 - theta);
    this.eta = (1 - Math.pow(2 / size, 1 - theta)) / (1 - zeta2 / zetaN);
  }

  next(): number {
    const u = Math.random();
    const uz = u * this.zetaN;
    let rank: number;
    if (uz < 1) rank = 0;
    else if (uz < 1 + Math.pow(0.5, ZipfianChooser.theta)) rank = 1;
    else rank = Math.floor(this.size * Math.pow(this.eta * u - this.eta + 1, this.alpha));
    rank = Math.min(rank, this.size - 1);
    // Fibonacci hashing of the rank scatters hot ranks across the key space.
    return Number((BigInt(rank) * 11400714819323198485n) % BigInt(this.size));
  }
}

/** A value of `size` bytes; the watch workload overwrites its first 8 bytes with a send time. */
export function makeValue(size: number): Buffer {
  const value = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) value[i] = 97 + (i % 26);
  return value;
}
