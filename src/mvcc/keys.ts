// Keys inside the store are "binary strings": one char per byte (latin1). JavaScript compares
// strings by UTF-16 code unit, and every code unit here is 0..255, so `<` on these strings is
// exactly byte-wise order (Buffer.compare / Go bytes.Compare), and natively fast; the same string
// is the key of every Map and Set that is indexed by key.

import BTreeModule from 'sorted-btree';

export const BTree = BTreeModule.default;
export type BTree<K, V> = InstanceType<typeof BTreeModule.default<K, V>>;

export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

/** Keys up to this long are turned into strings in JavaScript; longer ones by Buffer's latin1 decoder. */
const SHORT_KEY_BYTES = 32;

/**
 * Byte string of `bytes` (latin1: one char per byte, bijective), made flat at once: the keyspace
 * keeps it as the key's id, and a string built by `+=` past 12 chars is a chain of cons strings
 * that V8 copies into a flat one anyway the first time it is hashed or compared.
 */
export function toKeyString(bytes: Uint8Array): string {
  if (bytes.length <= SHORT_KEY_BYTES) {
    // fromCharCode reads its arguments as char codes; a Uint8Array is a valid array-like for apply.
    return String.fromCharCode.apply(null, bytes as unknown as number[]);
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

/**
 * Copies of up to this many bytes share slabs of `SLAB_BYTES` (as Node's Buffer pool does): one
 * ArrayBuffer per slab instead of one per key and value. V8 keeps the backing store of every
 * typed array over 64 bytes outside its heap and sweeps each one separately; with a buffer per
 * value, a snapshot restore of 300k keys spent 36% of its time in GC and 18% allocating.
 * The cost: a slab stays alive while any copy in it does (at most SLAB_BYTES per live copy).
 */
const SLAB_COPY_MAX_BYTES = 1024;
const SLAB_BYTES = 16 * 1024;
let slab = new ArrayBuffer(SLAB_BYTES);
let slabUsed = 0;

/** A plain Uint8Array holding a copy of `bytes` (never a view of the caller's buffer; maybe a view of a slab). */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  const n = bytes.length;
  if (n === 0) return EMPTY_BYTES;
  if (n > SLAB_COPY_MAX_BYTES) return new Uint8Array(bytes);
  if (slabUsed + n > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    slabUsed = 0;
  }
  const copy = new Uint8Array(slab, slabUsed, n);
  copy.set(bytes);
  slabUsed += (n + 7) & ~7; // 8-byte aligned, like Node's pool
  return copy;
}

export function compareKeyStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Byte-wise comparison of two byte arrays (Go's bytes.Compare). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i] - b[i];
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/**
 * A key interval in etcd's encoding: `single` is one key; otherwise [lo, hi), where hi = null is
 * unbounded (range_end "\0"). An interval with hi <= lo is empty.
 */
export interface KeyBounds {
  readonly single: boolean;
  readonly lo: string;
  readonly hi: string | null;
}

/** etcd's range_end rules: empty = the single key; [0x00] = every key >= key; else [key, rangeEnd). */
export function toBounds(key: Uint8Array, rangeEnd: Uint8Array): KeyBounds {
  const lo = toKeyString(key);
  if (rangeEnd.length === 0) return { single: true, lo, hi: null };
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return { single: false, lo, hi: null };
  return { single: false, lo, hi: toKeyString(rangeEnd) };
}

export function boundsContain(bounds: KeyBounds, id: string): boolean {
  if (bounds.single) return id === bounds.lo;
  return id >= bounds.lo && (bounds.hi === null || id < bounds.hi);
}

export function boundsEmpty(bounds: KeyBounds): boolean {
  return !bounds.single && bounds.hi !== null && bounds.hi <= bounds.lo;
}
