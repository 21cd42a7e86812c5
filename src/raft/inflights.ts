// Flow control: the append messages sent to one follower and not yet acknowledged (etcd's Inflights).
import { assert } from '../util/index.ts';

/**
 * A ring of (last index, bytes) per in-flight append message. Full when it holds `capacity`
 * messages or, if `maxBytes` > 0, at least `maxBytes` bytes.
 */
export class Inflights {
  readonly capacity: number;
  readonly maxBytes: number;
  private start = 0;
  private countMsgs = 0;
  private totalBytes = 0;
  private readonly indexes: number[];
  private readonly sizes: number[];

  constructor(capacity: number, maxBytes: number) {
    assert(Number.isSafeInteger(capacity) && capacity > 0, 'inflights capacity must be > 0');
    assert(maxBytes >= 0, 'inflights maxBytes must be >= 0');
    this.capacity = capacity;
    this.maxBytes = maxBytes;
    this.indexes = new Array<number>(capacity).fill(0);
    this.sizes = new Array<number>(capacity).fill(0);
  }

  get count(): number {
    return this.countMsgs;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  /** Records a message whose last entry is `index`; indexes must increase. */
  add(index: number, bytes: number): void {
    assert(!this.full(), 'cannot add into a full inflights');
    if (this.countMsgs > 0) {
      const lastSlot = (this.start + this.countMsgs - 1) % this.capacity;
      assert(this.indexes[lastSlot] < index, () => `inflight index ${index} not increasing`);
    }
    const slot = (this.start + this.countMsgs) % this.capacity;
    this.indexes[slot] = index;
    this.sizes[slot] = bytes;
    this.countMsgs++;
    this.totalBytes += bytes;
  }

  /** Frees every message whose last index is <= `index` (they were acknowledged). */
  freeLE(index: number): void {
    let freed = 0;
    while (freed < this.countMsgs) {
      const slot = (this.start + freed) % this.capacity;
      if (this.indexes[slot] > index) break;
      this.totalBytes -= this.sizes[slot];
      freed++;
    }
    this.countMsgs -= freed;
    this.start = this.countMsgs === 0 ? 0 : (this.start + freed) % this.capacity;
    assert(this.countMsgs >= 0 && this.totalBytes >= 0, 'inflights accounting underflow');
  }

  /** Frees the oldest message (used when a heartbeat response shows the follower is alive but stuck). */
  freeFirstOne(): void {
    if (this.countMsgs === 0) return;
    this.freeLE(this.indexes[this.start]);
  }

  full(): boolean {
    return this.countMsgs === this.capacity || (this.maxBytes !== 0 && this.totalBytes >= this.maxBytes);
  }

  reset(): void {
    this.start = 0;
    this.countMsgs = 0;
    this.totalBytes = 0;
  }
}
