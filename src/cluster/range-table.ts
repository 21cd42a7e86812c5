// The range table: which Raft group owns which slice of the keyspace. Every request finds its
// group here, so splitting a range later changes only this table, never the request path.
import { assert, invalidArgument } from '../util/index.ts';

export interface RangeDescriptor {
  groupId: number;
  /** Inclusive start key. Empty = the beginning of the keyspace. */
  startKey: Uint8Array;
  /** Exclusive end key. Empty = the end of the keyspace. */
  endKey: Uint8Array;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

function isUnbounded(endKey: Uint8Array): boolean {
  return endKey.length === 0;
}

export class RangeTable {
  /** Sorted by startKey, contiguous, covering the whole keyspace. */
  private ranges: RangeDescriptor[];

  constructor(ranges: RangeDescriptor[] = [{ groupId: 1, startKey: new Uint8Array(0), endKey: new Uint8Array(0) }]) {
    this.ranges = [...ranges].sort((a, b) => compareBytes(a.startKey, b.startKey));
    this.checkCoverage();
  }

  all(): readonly RangeDescriptor[] {
    return this.ranges;
  }

  /** The range holding `key`. */
  lookup(key: Uint8Array): RangeDescriptor {
    let lo = 0;
    let hi = this.ranges.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (compareBytes(this.ranges[mid].startKey, key) <= 0) lo = mid;
      else hi = mid - 1;
    }
    const range = this.ranges[lo];
    assert(compareBytes(range.startKey, key) <= 0, 'range table lookup: start key above key');
    return range;
  }

  /**
   * The single group serving the etcd key span [key, rangeEnd) (rangeEnd empty = one key,
   * [0] = to the end). Spans that cross ranges need cross-range reads, which arrive with sharding.
   */
  groupForSpan(key: Uint8Array, rangeEnd: Uint8Array): number {
    const range = this.lookup(key);
    if (rangeEnd.length === 0) return range.groupId;
    const toEnd = rangeEnd.length === 1 && rangeEnd[0] === 0;
    const fits = isUnbounded(range.endKey) || (!toEnd && compareBytes(rangeEnd, range.endKey) <= 0);
    if (!fits) throw invalidArgument('etcdserver: request spans several ranges, which is not supported yet');
    return range.groupId;
  }

  private checkCoverage(): void {
    assert(this.ranges.length > 0, 'range table is empty');
    assert(this.ranges[0].startKey.length === 0, 'range table must start at the empty key');
    for (let i = 1; i < this.ranges.length; i++) {
      const previous = this.ranges[i - 1];
      assert(compareBytes(previous.endKey, this.ranges[i].startKey) === 0, 'range table has a gap or overlap');
    }
    assert(isUnbounded(this.ranges[this.ranges.length - 1].endKey), 'range table must end unbounded');
  }
}
