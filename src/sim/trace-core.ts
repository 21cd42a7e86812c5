// What both simulators' traces are made of (src/sim/trace.ts, src/simnode/trace.ts): a 64-bit
// fingerprint of every event (the same seed must give the same hash) and a ring of the latest events
// for failure reports.

/** Two 32-bit FNV-style lanes, mixed one number at a time. */
export class TraceHash {
  private lo = 0x811c9dc5;
  private hi = 0x01000193;

  mix(value: number): void {
    const v = value | 0;
    const high = (value / 0x1_0000_0000) | 0;
    this.lo = Math.imul(this.lo ^ v, 0x01000193) >>> 0;
    this.hi = Math.imul(this.hi ^ (v + high + 0x9e3779b9), 0x85ebca6b) >>> 0;
    this.hi = (this.hi ^ (this.hi >>> 13)) >>> 0;
  }

  mixString(text: string): void {
    for (let i = 0; i < text.length; i++) this.mix(text.charCodeAt(i));
  }

  hex(): string {
    return this.hi.toString(16).padStart(8, '0') + this.lo.toString(16).padStart(8, '0');
  }
}

/** The latest `size` items pushed. */
export class Ring<T> {
  private readonly items: T[] = [];
  private next = 0;

  constructor(private readonly size: number) {}

  push(item: T): void {
    if (this.items.length < this.size) this.items.push(item);
    else this.items[this.next] = item;
    this.next = (this.next + 1) % this.size;
  }

  /** Every item kept, oldest first. */
  ordered(): T[] {
    return this.items.length < this.size ? this.items.slice() : [...this.items.slice(this.next), ...this.items.slice(0, this.next)];
  }
}
