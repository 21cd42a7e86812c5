// Unsigned LEB128 varints of safe integers (at most 2^53 - 1, so at most 8 bytes), written into
// buffers the caller sized, and a bounds-checked reader for the binary formats built from them:
// MVCC snapshot chunks (mvcc/snapshot.ts) and peer batch frames (transport/batch.ts).

/** Most bytes one varint takes: 53 bits in 7-bit groups. */
export const MAX_UVARINT_BYTES = 8;

/** Bytes writeUvarint takes for `value` (a non-negative safe integer). */
export function uvarintSize(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x200000) return 3;
  let bytes = 4;
  for (let rest = Math.floor(value / 0x10000000); rest > 0; rest = Math.floor(rest / 0x80)) bytes++;
  return bytes;
}

/** Writes `value` (a non-negative safe integer) at `start`; returns the offset after it. */
export function writeUvarint(buffer: Uint8Array, start: number, value: number): number {
  let at = start;
  let rest = value;
  while (rest >= 0x80000000) {
    buffer[at++] = (rest % 0x80) | 0x80;
    rest = Math.floor(rest / 0x80);
  }
  while (rest >= 0x80) {
    buffer[at++] = (rest & 0x7f) | 0x80;
    rest >>>= 7;
  }
  buffer[at++] = rest;
  return at;
}

/**
 * Reads bytes, varints and byte runs in order. Every read is bounds-checked; what is wrong is
 * thrown as the error `fail` makes, so each format reports in its own terms (DATA_LOSS for a
 * snapshot, a WireError that closes a peer connection).
 */
export class ByteReader {
  constructor(
    private readonly data: Uint8Array,
    public at: number,
    private readonly fail: (why: string) => Error,
  ) {}

  get done(): boolean {
    return this.at >= this.data.length;
  }

  /** Bytes not read yet. */
  get remaining(): number {
    return this.data.length - this.at;
  }

  byte(): number {
    if (this.at >= this.data.length) throw this.fail('ends inside a field');
    return this.data[this.at++];
  }

  /** A byte that must be 0 or 1. */
  bool(): boolean {
    const byte = this.byte();
    if (byte > 1) throw this.fail(`boolean byte ${byte}`);
    return byte === 1;
  }

  uvarint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < MAX_UVARINT_BYTES; i++) {
      const byte = this.byte();
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        if (!Number.isSafeInteger(value)) throw this.fail('number beyond the safe integers');
        return value;
      }
      scale *= 0x80;
    }
    throw this.fail(`varint longer than ${MAX_UVARINT_BYTES} bytes`);
  }

  /** The next `length` bytes, as a view (no copy). */
  bytes(length: number): Uint8Array {
    if (length > this.data.length - this.at) throw this.fail('ends inside a byte run');
    const view = this.data.subarray(this.at, this.at + length);
    this.at += length;
    return view;
  }

  /** A varint length, then that many bytes. */
  lengthPrefixed(): Uint8Array {
    return this.bytes(this.uvarint());
  }
}
