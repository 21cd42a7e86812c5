// A Map for entries that come and go by the thousand a second: requests in flight, open HTTP/2
// streams. V8 keeps each hash table a Map rehashes away, with the entries it held, until the next
// full GC. Once such a table is in the old generation, whatever its entries reach stays alive
// through every young-generation GC, which then promotes it: on the node clients talk to, finished
// requests (promise, call, stream, headers) were promoted at 2.3 kB per put, against 0.2 kB on a
// follower, and that node's young-generation GC cost three times a follower's. Here each value
// sits in a box that delete() empties, so a discarded table holds empty boxes. In a test of a
// long-lived Map with ~100 live entries of ~2 kB each: 2 GB promoted with plain values, 30 MB with
// boxes (docs/BENCHMARKS.md, session 9).

interface Box<V> {
  value: V | undefined;
}

/** The subset of Map the hot paths use; iteration is in insertion order, as Map's. */
export class ChurnMap<K, V> {
  private readonly map = new Map<K, Box<V>>();

  get size(): number {
    return this.map.size;
  }

  get(key: K): V | undefined {
    return this.map.get(key)?.value;
  }

  has(key: K): boolean {
    return this.map.has(key);
  }

  set(key: K, value: V): this {
    const box = this.map.get(key);
    if (box !== undefined) box.value = value;
    else this.map.set(key, { value });
    return this;
  }

  delete(key: K): boolean {
    const box = this.map.get(key);
    if (box === undefined) return false;
    box.value = undefined;
    return this.map.delete(key);
  }

  clear(): void {
    for (const box of this.map.values()) box.value = undefined;
    this.map.clear();
  }

  *entries(): IterableIterator<[K, V]> {
    for (const [key, box] of this.map) yield [key, box.value as V];
  }

  *values(): IterableIterator<V> {
    for (const box of this.map.values()) yield box.value as V;
  }

  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries();
  }
}
