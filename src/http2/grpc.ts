// gRPC over HTTP/2, the parts both ends need (PROTOCOL-HTTP2.md of grpc/grpc): length-prefixed
// messages, the grpc-timeout header, grpc-message percent-encoding. Used by the lean server
// (src/api/lean-server.ts) and the bench client (src/bench/h2.ts).
import { GrpcCode } from '../util/index.ts';
import type { GrpcCodeValue } from '../util/index.ts';

/** Compressed flag (1 byte) + message length (4 bytes, big-endian). */
export const MESSAGE_PREFIX_BYTES = 5;

/** A failure of the gRPC framing itself, answered with its status and the stream reset. */
export class GrpcWireError extends Error {
  override name = 'GrpcWireError';
  constructor(
    readonly code: GrpcCodeValue,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A response whose protobuf body the handler encoded itself (the watch service splices shared
 * event bytes): both servers send it as is instead of serializing (lean-call.ts, and protos.ts's
 * responseSerialize for grpc-js).
 */
export class EncodedMessage {
  constructor(readonly bytes: Buffer) {}
}

/** One uncompressed message with its prefix, ready to write. */
export function frameMessage(message: Uint8Array): Buffer {
  const framed = Buffer.allocUnsafe(MESSAGE_PREFIX_BYTES + message.length);
  framed[0] = 0;
  framed.writeUInt32BE(message.length, 1);
  framed.set(message, MESSAGE_PREFIX_BYTES);
  return framed;
}

/**
 * Reassembles length-prefixed messages from DATA chunks. A message longer than `maxMessageBytes`
 * is refused from its prefix, before any of it is buffered (RESOURCE_EXHAUSTED, as grpc-go words it).
 * A message inside one chunk is handed out as a view of that chunk, without a copy.
 */
export class MessageDeframer {
  private readonly prefix = Buffer.alloc(MESSAGE_PREFIX_BYTES);
  private prefixBytes = 0;
  private compressed = false;
  /** The message being collected across chunks, or null while reading a prefix. */
  private body: Buffer | null = null;
  private bodyBytes = 0;

  constructor(private readonly maxMessageBytes: number) {}

  /** True between messages (nothing partial buffered). */
  get idle(): boolean {
    return this.prefixBytes === 0 && this.body === null;
  }

  push(chunk: Buffer, onMessage: (message: Buffer, compressed: boolean) => void): void {
    let offset = 0;
    const length = chunk.length;
    while (offset < length) {
      const body = this.body;
      if (body !== null) {
        const take = Math.min(body.length - this.bodyBytes, length - offset);
        chunk.copy(body, this.bodyBytes, offset, offset + take);
        this.bodyBytes += take;
        offset += take;
        if (this.bodyBytes < body.length) return;
        this.body = null;
        onMessage(body, this.compressed);
        continue;
      }
      let messageBytes: number;
      if (this.prefixBytes === 0 && length - offset >= MESSAGE_PREFIX_BYTES) {
        messageBytes = this.startMessage(chunk[offset], chunk.readUInt32BE(offset + 1));
        offset += MESSAGE_PREFIX_BYTES;
      } else {
        const take = Math.min(MESSAGE_PREFIX_BYTES - this.prefixBytes, length - offset);
        chunk.copy(this.prefix, this.prefixBytes, offset, offset + take);
        this.prefixBytes += take;
        offset += take;
        if (this.prefixBytes < MESSAGE_PREFIX_BYTES) return;
        this.prefixBytes = 0;
        messageBytes = this.startMessage(this.prefix[0], this.prefix.readUInt32BE(1));
      }
      if (length - offset >= messageBytes) {
        onMessage(chunk.subarray(offset, offset + messageBytes), this.compressed);
        offset += messageBytes;
      } else {
        this.body = Buffer.allocUnsafe(messageBytes);
        this.bodyBytes = 0;
      }
    }
  }

  private startMessage(flag: number, messageBytes: number): number {
    if (flag !== 0 && flag !== 1) throw new GrpcWireError(GrpcCode.INTERNAL, `grpc: invalid compressed flag ${flag}`);
    if (messageBytes > this.maxMessageBytes) {
      throw new GrpcWireError(
        GrpcCode.RESOURCE_EXHAUSTED,
        `grpc: received message larger than max (${messageBytes} vs. ${this.maxMessageBytes})`,
      );
    }
    this.compressed = flag === 1;
    return messageBytes;
  }
}

/** Milliseconds per grpc-timeout unit, by the unit's character code. */
const TIMEOUT_UNIT_MS = new Map<number, number>([
  [0x48 /* H */, 3_600_000],
  [0x4d /* M */, 60_000],
  [0x53 /* S */, 1000],
  [0x6d /* m */, 1],
  [0x75 /* u */, 1e-3],
  [0x6e /* n */, 1e-6],
]);

/**
 * grpc-timeout (`<1..8 digits><H|M|S|m|u|n>`) in milliseconds; null when absent; NaN when malformed.
 * Parsed by hand: every call of a client with deadlines carries one.
 */
export function parseGrpcTimeout(value: string | string[] | undefined): number | null {
  if (value === undefined) return null;
  if (typeof value !== 'string' || value.length < 2 || value.length > 9) return Number.NaN;
  const unit = TIMEOUT_UNIT_MS.get(value.charCodeAt(value.length - 1));
  if (unit === undefined) return Number.NaN;
  let amount = 0;
  for (let i = 0; i < value.length - 1; i++) {
    const digit = value.charCodeAt(i) - 0x30;
    if (digit < 0 || digit > 9) return Number.NaN;
    amount = amount * 10 + digit;
  }
  return amount * unit;
}

/** The grpc-timeout header for a deadline `ms` away (milliseconds, at most 8 digits). */
export function formatGrpcTimeout(ms: number): string {
  const rounded = Math.max(1, Math.ceil(ms));
  return rounded < 100_000_000 ? `${rounded}m` : `${Math.min(99_999_999, Math.ceil(rounded / 1000))}S`;
}

const PLAIN_MESSAGE = /^[\x20-\x24\x26-\x7e]*$/;

/** grpc-message: printable ASCII except '%' as is, every other UTF-8 byte as %XX. */
export function encodeGrpcMessage(message: string): string {
  if (PLAIN_MESSAGE.test(message)) return message;
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    if (byte >= 0x20 && byte <= 0x7e && byte !== 0x25) out += String.fromCharCode(byte);
    else out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The inverse of encodeGrpcMessage; a malformed escape is kept as it is (the spec asks for leniency). */
export function decodeGrpcMessage(value: string): string {
  if (!value.includes('%')) return value;
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    const hex = c === 0x25 && i + 2 < value.length ? value.slice(i + 1, i + 3) : '';
    if (/^[0-9a-fA-F]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(value[i], 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** `application/grpc`, `application/grpc+proto`, `application/grpc;...`: gRPC; anything else is not. */
export function isGrpcContentType(value: string | undefined): boolean {
  if (value === undefined || !value.startsWith('application/grpc')) return false;
  const rest = value.charCodeAt(16);
  return value.length === 16 || rest === 0x2b /* + */ || rest === 0x3b /* ; */;
}
