// HPACK (RFC 7541): the header compression of HTTP/2. The decoder is complete (static and dynamic
// tables, table size updates, Huffman strings, a bound on the decoded list); the encoder never
// indexes and never uses Huffman, so it keeps no state and needs nothing from the peer's
// SETTINGS_HEADER_TABLE_SIZE. Names and values are handled as latin1 so that a string's length is
// its length in octets, which is what the table accounting counts.
import { encode as CODES } from 'hpack.js/lib/hpack/huffman.js';

export class HpackError extends Error {}

/** Thrown after a whole block was decoded (the table stays in step) when its fields exceed the bound. */
export class HeaderListTooLarge extends Error {}

/** RFC 7541 Appendix A, index 1..61. */
const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''],
  ['etag', ''], ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''],
  ['if-modified-since', ''], ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''],
  ['last-modified', ''], ['link', ''], ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''],
  ['proxy-authorization', ''], ['range', ''], ['referer', ''], ['refresh', ''], ['retry-after', ''],
  ['server', ''], ['set-cookie', ''], ['strict-transport-security', ''], ['transfer-encoding', ''],
  ['user-agent', ''], ['vary', ''], ['via', ''], ['www-authenticate', ''],
];

/** The static table, for tests that check it against another implementation. */
export const HPACK_STATIC_TABLE = STATIC_TABLE;

/** Per-entry overhead in the dynamic table's size (RFC 7541 §4.1). */
const ENTRY_OVERHEAD = 32;
/** The default and our advertised SETTINGS_HEADER_TABLE_SIZE. */
export const DEFAULT_HEADER_TABLE_SIZE = 4096;

// ---- Huffman decoding ----
// The code table (RFC 7541 Appendix B) comes from the hpack.js package: `encode[symbol]` is
// [bit length, code]. From it we build the code tree and then a table that consumes 4 bits per step:
// for each tree node and nibble, the node reached, and the symbol completed on the way (codes are at
// least 5 bits long, so a nibble completes at most one).

const EOS = 256;

interface HuffmanTables {
  /** (node << 4 | nibble) → next node. */
  next: Uint16Array;
  /** (node << 4 | nibble) → symbol completed + 1, 0 for none, EOS + 1 is an error. */
  emit: Uint16Array;
  /** Nodes where the input may end: the root, or 1..7 ones into the tree (a prefix of EOS). */
  accepting: Uint8Array;
}

function buildHuffman(): HuffmanTables {
  // Internal nodes get ids from 0 (the root); a child < 0 is the leaf of symbol -child - 1.
  const children: number[][] = [[0, 0]];
  const filled: boolean[][] = [[false, false]];
  for (let symbol = 0; symbol <= EOS; symbol++) {
    const [bits, code] = CODES[symbol];
    let node = 0;
    for (let i = bits - 1; i >= 0; i--) {
      const bit = (code >>> i) & 1;
      if (i === 0) {
        children[node][bit] = -symbol - 1;
        filled[node][bit] = true;
      } else {
        if (!filled[node][bit]) {
          children.push([0, 0]);
          filled.push([false, false]);
          children[node][bit] = children.length - 1;
          filled[node][bit] = true;
        }
        node = children[node][bit];
      }
    }
  }
  const nodes = children.length;
  const next = new Uint16Array(nodes * 16);
  const emit = new Uint16Array(nodes * 16);
  for (let node = 0; node < nodes; node++) {
    for (let nibble = 0; nibble < 16; nibble++) {
      let at = node;
      let emitted = 0;
      for (let i = 3; i >= 0; i--) {
        const child = children[at][(nibble >>> i) & 1];
        if (child < 0) {
          const symbol = -child - 1;
          emitted = symbol === EOS || emitted !== 0 ? EOS + 1 : symbol + 1;
          at = 0;
        } else {
          at = child;
        }
      }
      next[(node << 4) | nibble] = at;
      emit[(node << 4) | nibble] = emitted;
    }
  }
  const accepting = new Uint8Array(nodes);
  accepting[0] = 1;
  let onesPath = 0;
  for (let depth = 1; depth <= 7; depth++) {
    onesPath = children[onesPath][1];
    accepting[onesPath] = 1;
  }
  return { next, emit, accepting };
}

const HUFFMAN = buildHuffman();

function huffmanDecode(input: Buffer, start: number, end: number): string {
  const { next, emit, accepting } = HUFFMAN;
  const out = Buffer.allocUnsafe((end - start) * 2); // ≥ 5 bits per symbol: at most 8/5 symbols per byte
  let length = 0;
  let node = 0;
  for (let i = start; i < end; i++) {
    const byte = input[i];
    let index = (node << 4) | (byte >>> 4);
    let symbol = emit[index];
    if (symbol !== 0) {
      if (symbol === EOS + 1) throw new HpackError('Huffman string contains EOS');
      out[length++] = symbol - 1;
    }
    node = next[index];
    index = (node << 4) | (byte & 0x0f);
    symbol = emit[index];
    if (symbol !== 0) {
      if (symbol === EOS + 1) throw new HpackError('Huffman string contains EOS');
      out[length++] = symbol - 1;
    }
    node = next[index];
  }
  if (accepting[node] !== 1) throw new HpackError('Huffman string has invalid padding');
  return out.toString('latin1', 0, length);
}

// ---- decoding ----

export type HeaderFields = [string, string][];

/** One side's decoding context: the dynamic table the peer's encoder fills. */
export class HpackDecoder {
  /** Newest first. */
  private readonly entries: [string, string][] = [];
  private size = 0;
  private maxSize: number;
  private input: Buffer = Buffer.alloc(0);
  private at = 0;
  private end = 0;

  /** `limit` is the SETTINGS_HEADER_TABLE_SIZE we advertised: the peer may not ask for more. */
  constructor(private readonly limit = DEFAULT_HEADER_TABLE_SIZE) {
    this.maxSize = limit;
  }

  /**
   * Decodes one whole header block. Throws HpackError on malformed input (a connection error:
   * COMPRESSION_ERROR), HeaderListTooLarge when the fields' RFC 7540 size passes `maxListBytes`.
   */
  decode(block: Buffer, maxListBytes: number): HeaderFields {
    this.input = block;
    this.at = 0;
    this.end = block.length;
    const fields: HeaderFields = [];
    let listBytes = 0;
    let tableUpdateAllowed = true;
    while (this.at < this.end) {
      const byte = block[this.at];
      let name: string;
      let value: string;
      if (byte & 0x80) {
        const index = this.integer(7);
        if (index === 0) throw new HpackError('indexed header field with index 0');
        [name, value] = this.lookup(index);
      } else if ((byte & 0xe0) === 0x20) {
        if (!tableUpdateAllowed) throw new HpackError('dynamic table size update after the first field');
        const size = this.integer(5);
        if (size > this.limit) throw new HpackError(`dynamic table size update to ${size} exceeds ${this.limit}`);
        this.maxSize = size;
        this.evict(0);
        continue;
      } else {
        const incremental = (byte & 0xc0) === 0x40;
        const index = this.integer(incremental ? 6 : 4);
        name = index === 0 ? this.string() : this.lookup(index)[0];
        value = this.string();
        if (incremental) this.insert(name, value);
      }
      tableUpdateAllowed = false;
      listBytes += name.length + value.length + ENTRY_OVERHEAD;
      // Past the bound the block is still read to its end (the table must stay in step), unkept.
      if (listBytes <= maxListBytes) fields.push([name, value]);
    }
    this.input = Buffer.alloc(0);
    if (listBytes > maxListBytes) throw new HeaderListTooLarge(`header list of ${listBytes} bytes exceeds ${maxListBytes}`);
    return fields;
  }

  private lookup(index: number): readonly [string, string] {
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1];
    const entry = this.entries[index - STATIC_TABLE.length - 1];
    if (entry === undefined) throw new HpackError(`header index ${index} is past the table`);
    return entry;
  }

  private insert(name: string, value: string): void {
    const entrySize = name.length + value.length + ENTRY_OVERHEAD;
    this.evict(entrySize);
    if (entrySize > this.maxSize) return; // RFC 7541 §4.4: the table is left empty
    this.entries.unshift([name, value]);
    this.size += entrySize;
  }

  /** Drops the oldest entries until `room` more bytes fit. */
  private evict(room: number): void {
    while (this.entries.length > 0 && this.size + room > this.maxSize) {
      const [name, value] = this.entries.pop() as [string, string];
      this.size -= name.length + value.length + ENTRY_OVERHEAD;
    }
  }

  /** RFC 7541 §5.1, with a `prefixBits`-bit prefix in the current byte. */
  private integer(prefixBits: number): number {
    const mask = (1 << prefixBits) - 1;
    let value = this.input[this.at++] & mask;
    if (value < mask) return value;
    let shift = 0;
    for (;;) {
      if (this.at >= this.end) throw new HpackError('truncated integer');
      const byte = this.input[this.at++];
      value += (byte & 0x7f) * 2 ** shift;
      shift += 7;
      if (value > 0x7fffffff) throw new HpackError('integer overflow');
      if ((byte & 0x80) === 0) return value;
    }
  }

  private string(): string {
    if (this.at >= this.end) throw new HpackError('truncated string');
    const huffman = (this.input[this.at] & 0x80) !== 0;
    const length = this.integer(7);
    const start = this.at;
    if (start + length > this.end) throw new HpackError('string runs past the block');
    this.at += length;
    return huffman ? huffmanDecode(this.input, start, start + length) : this.input.toString('latin1', start, start + length);
  }
}

// ---- encoding ----

const STATIC_NAME_INDEX = new Map<string, number>();
const STATIC_FIELD_INDEX = new Map<string, number>();
for (let i = STATIC_TABLE.length - 1; i >= 0; i--) {
  const [name, value] = STATIC_TABLE[i];
  STATIC_NAME_INDEX.set(name, i + 1);
  if (value !== '') STATIC_FIELD_INDEX.set(`${name}\0${value}`, i + 1);
}

function pushInteger(out: number[], value: number, prefixBits: number, firstByte: number): void {
  const mask = (1 << prefixBits) - 1;
  if (value < mask) {
    out.push(firstByte | value);
    return;
  }
  out.push(firstByte | mask);
  let rest = value - mask;
  while (rest >= 0x80) {
    out.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
}

function pushString(out: number[], text: string): void {
  const bytes = Buffer.from(text, 'latin1');
  pushInteger(out, bytes.length, 7, 0);
  for (const byte of bytes) out.push(byte);
}

/**
 * Encodes a header block without touching the dynamic table: static-table matches are indexed,
 * everything else is a literal without indexing (with the static name index where one exists).
 * Stateless, so blocks can be encoded once and reused on every connection.
 */
export function encodeHeaderBlock(fields: Iterable<readonly [string, string]>): Buffer {
  const out: number[] = [];
  for (const [name, value] of fields) {
    const full = STATIC_FIELD_INDEX.get(`${name}\0${value}`);
    if (full !== undefined) {
      pushInteger(out, full, 7, 0x80);
      continue;
    }
    const nameIndex = STATIC_NAME_INDEX.get(name);
    if (nameIndex === undefined) {
      out.push(0);
      pushString(out, name);
    } else {
      pushInteger(out, nameIndex, 4, 0);
    }
    pushString(out, value);
  }
  return Buffer.from(out);
}
