// Protobuf wire primitives for the hand-written codecs (fast-codec.ts): a bounds-checked reader that
// turns int64s straight into numbers, and size/write helpers for a writer that sizes a message first
// and then fills one Buffer. int64 crossing: a value within ±(2^53-1) becomes a number; anything
// beyond becomes its exact decimal string, which parseInt64 (codec.ts) refuses as INVALID_ARGUMENT.
// Unsigned varints are LEB128 as everywhere else in Tessera (util/varint.ts).
import { uvarintSize, writeUvarint } from '../util/index.ts';

export { uvarintSize, writeUvarint };

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_START_GROUP = 3;
export const WIRE_END_GROUP = 4;
export const WIRE_I32 = 5;

/** Nested messages a decoder enters at most: protobufjs's (and protoc's) default recursion limit. */
export const MAX_NESTING_DEPTH = 100;

const TWO_POW_32 = 4_294_967_296;
/** 2^53 / 2^32: a high word at or above this makes an unsigned value unsafe. */
const SAFE_HIGH_LIMIT = 0x20_0000;

/** Bytes that are not a valid message of the expected type; the server answers INTERNAL. */
export class ProtoDecodeError extends Error {
  override name = 'ProtoDecodeError';
}

/**
 * Reads one message (and its nested ones, through `limit`/`restore`) from `buffer[pos, end)`.
 * Every read checks its bounds; nothing reads past `end`.
 */
export class ProtoReader {
  pos: number;
  end: number;
  depth = 0;
  /** High 32 bits of the last varint read by varint64() (the low bits are its return value). */
  private high = 0;

  constructor(
    readonly buffer: Buffer,
    start = 0,
    end = buffer.length,
  ) {
    this.pos = start;
    this.end = end;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** A field key: field number << 3 | wire type. Field 0 and values past 32 bits are malformed. */
  tag(): number {
    const key = this.uint32();
    if (key >>> 3 === 0) throw new ProtoDecodeError('field number 0');
    return key;
  }

  /** A varint's low 32 bits, unsigned (it may be up to 10 bytes long, as negative int32s are). */
  uint32(): number {
    const buffer = this.buffer;
    const pos = this.pos;
    if (pos < this.end && buffer[pos] < 0x80) {
      this.pos = pos + 1;
      this.high = 0;
      return buffer[pos];
    }
    return this.varint64();
  }

  /** Reads a varint of up to 10 bytes; returns the low 32 bits and keeps the high 32 in `high`. */
  private varint64(): number {
    const buffer = this.buffer;
    const end = this.end;
    let pos = this.pos;
    let low = 0;
    let high = 0;
    let byte = 0;
    let i = 0;
    // Bits 0..27 from the first four bytes.
    for (; i < 4; i++) {
      if (pos >= end) throw new ProtoDecodeError('varint runs past the message');
      byte = buffer[pos++];
      low |= (byte & 0x7f) << (i * 7);
      if (byte < 0x80) {
        this.pos = pos;
        this.high = 0;
        return low >>> 0;
      }
    }
    // Fifth byte: bits 28..31 low, 0..2 high.
    if (pos >= end) throw new ProtoDecodeError('varint runs past the message');
    byte = buffer[pos++];
    low |= (byte & 0x0f) << 28;
    high = (byte & 0x7f) >> 4;
    if (byte >= 0x80) {
      for (i = 0; i < 5; i++) {
        if (pos >= end) throw new ProtoDecodeError('varint runs past the message');
        byte = buffer[pos++];
        high |= (byte & 0x7f) << (i * 7 + 3);
        if (byte < 0x80) break;
      }
      if (byte >= 0x80) throw new ProtoDecodeError('varint longer than 10 bytes');
    }
    this.pos = pos;
    this.high = high >>> 0;
    return low >>> 0;
  }

  /** An int64 as a number when it is a safe integer, else its exact decimal string. */
  int64(): number | string {
    const buffer = this.buffer;
    const pos = this.pos;
    if (pos < this.end && buffer[pos] < 0x80) {
      this.pos = pos + 1;
      return buffer[pos];
    }
    const low = this.varint64();
    const high = this.high;
    if (high < SAFE_HIGH_LIMIT) return high * TWO_POW_32 + low;
    if (high >= 0x8000_0000) {
      // Negative: the two's complement magnitude is ~value + 1.
      const magnitudeHigh = ~high >>> 0;
      const magnitudeLow = (~low >>> 0) + 1;
      if (magnitudeHigh < SAFE_HIGH_LIMIT) {
        const magnitude = magnitudeHigh * TWO_POW_32 + magnitudeLow;
        if (Number.isSafeInteger(magnitude)) return -magnitude;
      }
    }
    return BigInt.asIntN(64, (BigInt(high) << 32n) | BigInt(low)).toString();
  }

  /** An int32 (enums): the low 32 bits of the varint, signed, as protobufjs and Go read them. */
  int32(): number {
    return this.uint32() | 0;
  }

  bool(): boolean {
    const low = this.uint32();
    return low !== 0 || this.high !== 0;
  }

  /** A length-delimited field's length, checked against what is left of the message. */
  length(): number {
    const length = this.uint32();
    if (this.high !== 0 || length > this.end - this.pos) throw new ProtoDecodeError('length runs past the message');
    return length;
  }

  /** A bytes field as a view into the request buffer (codec.ts copies what it keeps). */
  bytes(): Buffer {
    const length = this.length();
    const start = this.pos;
    this.pos = start + length;
    return this.buffer.subarray(start, start + length);
  }

  string(): string {
    const length = this.length();
    const start = this.pos;
    this.pos = start + length;
    return this.buffer.toString('utf8', start, start + length);
  }

  /** Enters a nested message: returns the outer end, to hand back to leave(). */
  enter(): number {
    const length = this.length();
    if (++this.depth > MAX_NESTING_DEPTH) throw new ProtoDecodeError('maximum nesting depth exceeded');
    const outer = this.end;
    this.end = this.pos + length;
    return outer;
  }

  leave(outerEnd: number): void {
    if (this.pos !== this.end) throw new ProtoDecodeError('nested message overran');
    this.end = outerEnd;
    this.depth--;
  }

  /** Checks a known field's wire type (a mismatch is malformed, as in Go). */
  expect(key: number, wireType: number): void {
    if ((key & 7) !== wireType) throw new ProtoDecodeError(`field ${key >>> 3}: wire type ${key & 7}, expected ${wireType}`);
  }

  /** Skips an unknown field of the given key. */
  skip(key: number): void {
    switch (key & 7) {
      case WIRE_VARINT:
        this.uint32();
        return;
      case WIRE_I64:
        return this.advance(8);
      case WIRE_LEN:
        return this.advance(this.length());
      case WIRE_I32:
        return this.advance(4);
      case WIRE_START_GROUP:
        return this.skipGroup(key >>> 3);
      default:
        throw new ProtoDecodeError(`invalid wire type ${key & 7}`);
    }
  }

  private advance(bytes: number): void {
    if (bytes > this.end - this.pos) throw new ProtoDecodeError('field runs past the message');
    this.pos += bytes;
  }

  private skipGroup(field: number): void {
    if (++this.depth > MAX_NESTING_DEPTH) throw new ProtoDecodeError('maximum nesting depth exceeded');
    for (;;) {
      if (this.done) throw new ProtoDecodeError('unterminated group');
      const key = this.tag();
      if ((key & 7) === WIRE_END_GROUP) {
        if (key >>> 3 !== field) throw new ProtoDecodeError('mismatched end group');
        this.depth--;
        return;
      }
      this.skip(key);
    }
  }
}

// ---- sizes ----

/** An int64 field's varint: negative values take 10 bytes (two's complement). */
export function int64Size(value: number): number {
  return value < 0 ? 10 : uvarintSize(value);
}

/** A length-delimited field with a one-byte tag (fields 1..15) around `length` bytes. */
export function lenFieldSize(length: number): number {
  return 1 + uvarintSize(length) + length;
}

/** An int64 field with a one-byte tag, omitted (0 bytes) when 0 as proto3 (and gogoproto) do. */
export function int64FieldSize(value: number): number {
  return value === 0 ? 0 : 1 + int64Size(value);
}

/** A bytes field with a one-byte tag, omitted when empty. */
export function bytesFieldSize(length: number): number {
  return length === 0 ? 0 : lenFieldSize(length);
}

// ---- writes (into a buffer sized beforehand; each returns the next position) ----

export function writeInt64(buffer: Buffer, pos: number, value: number): number {
  if (value >= 0) return writeUvarint(buffer, pos, value);
  // Two's complement over 64 bits, 10 bytes; exact for safe integers.
  let low = value >>> 0;
  let high = Math.floor(value / TWO_POW_32) >>> 0;
  for (let i = 0; i < 9; i++) {
    buffer[pos++] = (low & 0x7f) | 0x80;
    low = ((low >>> 7) | (high << 25)) >>> 0;
    high >>>= 7;
  }
  buffer[pos++] = low & 0x01;
  return pos;
}

export function writeBytes(buffer: Buffer, pos: number, bytes: Uint8Array): number {
  const length = bytes.length;
  if (length < 32) {
    for (let i = 0; i < length; i++) buffer[pos + i] = bytes[i];
  } else {
    buffer.set(bytes, pos);
  }
  return pos + length;
}

/** tag + int64, skipped when 0. */
export function writeInt64Field(buffer: Buffer, pos: number, tag: number, value: number): number {
  if (value === 0) return pos;
  buffer[pos++] = tag;
  return writeInt64(buffer, pos, value);
}

/** tag + length + bytes, skipped when empty. */
export function writeBytesField(buffer: Buffer, pos: number, tag: number, bytes: Uint8Array): number {
  if (bytes.length === 0) return pos;
  buffer[pos++] = tag;
  pos = writeUvarint(buffer, pos, bytes.length);
  return writeBytes(buffer, pos, bytes);
}

/** tag + true, skipped when false. */
export function writeBoolField(buffer: Buffer, pos: number, tag: number, value: boolean): number {
  if (!value) return pos;
  buffer[pos] = tag;
  buffer[pos + 1] = 1;
  return pos + 2;
}

/** tag + length of a nested message whose body the caller writes next. */
export function writeLenPrefix(buffer: Buffer, pos: number, tag: number, length: number): number {
  buffer[pos++] = tag;
  return writeUvarint(buffer, pos, length);
}

/** A uint64 given as a decimal string (cluster, member IDs) as varint bytes. */
export function uint64DecimalVarint(decimal: string): Buffer {
  let value = BigInt(decimal);
  const bytes: number[] = [];
  while (value >= 0x80n) {
    bytes.push(Number(value & 0x7fn) | 0x80);
    value >>= 7n;
  }
  bytes.push(Number(value));
  return Buffer.from(bytes);
}

/** The one-byte key of field `field` (1..15) with `wireType`. */
export function key(field: number, wireType: number): number {
  return (field << 3) | wireType;
}
