// Cuts a byte stream into length-prefixed units (HTTP/2 frames, gRPC messages) without copying
// whole reads: a unit inside one chunk is handed on as a view, and only a unit split across chunks
// is copied, once, when its last byte arrives. (Joining the unfinished tail of one read to the next
// read, as the simple way does, copies every read: ~7% of the bench client's CPU on watch fan-out.)

/** A unit's whole size (header included) from its header at `at`; throws when it is too large. */
export type UnitLength = (buffer: Buffer, at: number) => number;

export class Reassembler {
  /** Chunks of the unit split across reads, oldest first. */
  private parts: Buffer[] = [];
  private partsBytes = 0;
  /** The split unit's whole size once its header is complete, else 0. */
  private unitBytes = 0;

  constructor(
    private readonly headerBytes: number,
    private readonly unitLength: UnitLength,
  ) {}

  /** Nothing partial is held. */
  get idle(): boolean {
    return this.partsBytes === 0;
  }

  /** Calls `onUnit(buffer, start, end)` for each whole unit, in order. */
  push(chunk: Buffer, onUnit: (buffer: Buffer, start: number, end: number) => void): void {
    let data = chunk;
    if (this.partsBytes > 0) {
      if (this.unitBytes === 0) {
        const take = Math.min(this.headerBytes - this.partsBytes, data.length);
        this.parts.push(data.subarray(0, take));
        this.partsBytes += take;
        data = data.subarray(take);
        if (this.partsBytes < this.headerBytes) return;
        const head = Buffer.concat(this.parts, this.partsBytes);
        this.parts = [head];
        this.unitBytes = this.unitLength(head, 0);
      }
      const missing = this.unitBytes - this.partsBytes;
      if (data.length < missing) {
        this.parts.push(data);
        this.partsBytes += data.length;
        return;
      }
      if (missing > 0) this.parts.push(data.subarray(0, missing));
      const unit = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.unitBytes);
      this.parts = [];
      this.partsBytes = 0;
      this.unitBytes = 0;
      data = data.subarray(missing);
      onUnit(unit, 0, unit.length);
    }
    let at = 0;
    while (data.length - at >= this.headerBytes) {
      const total = this.unitLength(data, at);
      if (data.length - at < total) break;
      onUnit(data, at, at + total);
      at += total;
    }
    if (at < data.length) {
      const rest = data.subarray(at);
      this.parts = [rest];
      this.partsBytes = rest.length;
      if (rest.length >= this.headerBytes) this.unitBytes = this.unitLength(rest, 0);
    }
  }

  /** Drops anything partial. */
  reset(): void {
    this.parts = [];
    this.partsBytes = 0;
    this.unitBytes = 0;
  }
}
