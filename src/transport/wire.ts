// The peer wire format: frames of [u32 BE length][u8 kind][body], bodies in msgpack with shared
// record structures (or raw bytes for snapshot chunks), and a streaming frame parser.
import { Packr, RESERVE_START_SPACE } from 'msgpackr';
import { assert } from '../util/index.ts';

/**
 * Bumped whenever frames, kinds or RECORD_STRUCTURES change, or what the messages carry changes so
 * that an older node could not use it; peers with another version are refused. 3: log entries hold
 * binary command batches and snapshots the framed image format 2, which version-2 nodes cannot
 * decode (they would stop at the first such entry). 4: batch frames are binary (batch.ts) and
 * snapshots hold MVCC chunks of format 3 (binary versions), neither of which version 3 can read.
 * 5: the leader sends 'durable' messages (batch type code 15), which version 4 refuses.
 */
export const PROTOCOL_VERSION = 5;

/** Bytes before the body: the u32 length and the kind byte. The length counts kind + body. */
export const FRAME_HEADER_BYTES = 5;

export const FrameKind = {
  /** Both directions, first frame of every connection: who I am. */
  hello: 1,
  /** Dialer → acceptor on a message stream: a batch of `{ groupId, msg }`. */
  batch: 2,
  /** Dialer → acceptor on a snapshot stream: the snap message with empty data, and the data size. */
  snapshotHead: 3,
  /** Dialer → acceptor on a snapshot stream: raw bytes of `snapshot.data`, in order. */
  snapshotChunk: 4,
  /** Acceptor → dialer on a snapshot stream: the snapshot was delivered (or not). */
  snapshotAck: 5,
  /** Dialer → acceptor on a message stream: a request to the peer (`{ id, method, body }`); since version 2. */
  call: 6,
  /** Dialer → acceptor on a message stream: the answer to a call the acceptor made (`{ id, ok, body }`). */
  reply: 7,
} as const;
export type FrameKindValue = (typeof FrameKind)[keyof typeof FrameKind];

/**
 * Record structures known to both ends, so frames carry 1-byte record ids instead of key names
 * and decoding skips key parsing. Encoders emit objects with exactly these keys in this order
 * (see codec.ts); any other shape still works as an inline record. Append only, with a
 * PROTOCOL_VERSION bump: the ids are positions, and the hello must keep its id so that a node of
 * another version gets a clear "protocol version" refusal. (Since version 4 the message shapes
 * before the hello's are unused: batch bodies are binary, batch.ts.)
 */
const RECORD_STRUCTURES: string[][] = [
  ['groupId', 'msg'],
  ['type', 'from', 'to', 'term', 'logTerm', 'index', 'entries', 'commit'],
  ['type', 'from', 'to', 'term', 'index', 'reject', 'rejectHint', 'logTerm'],
  ['type', 'from', 'to', 'term', 'logTerm', 'index', 'transfer'],
  ['type', 'from', 'to', 'term', 'reject'],
  ['type', 'from', 'to', 'term', 'commit', 'context'],
  ['type', 'from', 'to', 'term', 'context'],
  ['type', 'from', 'to', 'term', 'snapshot'],
  ['type', 'from', 'to', 'term'],
  ['type', 'from', 'to', 'term', 'entries'],
  ['type', 'from', 'to', 'term', 'index', 'context'],
  ['type', 'from', 'to', 'term', 'transferee'],
  ['term', 'index', 'type', 'data'],
  ['metadata', 'data'],
  ['index', 'term', 'confState'],
  ['voters', 'votersOutgoing', 'learners', 'learnersNext', 'autoLeave'],
  ['version', 'clusterId', 'nodeId', 'stream'],
  ['groupId', 'msg', 'bytes'],
  ['ok', 'reason'],
];

/**
 * One codec for every connection. Stateless per frame (each frame decodes on its own), so a
 * garbage frame cannot poison the structures other connections rely on: msgpackr restores
 * shared structures after each unpack, and `maxSharedStructures` stops it learning new ones.
 * Binary fields decode as Buffer views into the received frame (no copy).
 */
export const wireCodec = new Packr({
  useRecords: true,
  structures: RECORD_STRUCTURES.map((keys) => [...keys]),
  maxSharedStructures: RECORD_STRUCTURES.length,
  int64AsType: 'number',
});

/** A peer sent bytes that are not a valid frame; the connection carrying them is closed. */
export class WireError extends Error {
  override name = 'WireError';
}

/** Encodes one frame with a msgpack body; the returned buffer is the whole frame, header included. */
export function encodeFrame(kind: FrameKindValue, body: unknown): Buffer {
  const frame = wireCodec.pack(body, RESERVE_START_SPACE | FRAME_HEADER_BYTES);
  assert(frame.length >= FRAME_HEADER_BYTES, 'packed frame shorter than its header');
  frame.writeUInt32BE(frame.length - 4, 0);
  frame[4] = kind;
  return frame;
}

/** The header of a frame whose body is written separately (snapshot chunks: no copy of the data). */
export function encodeFrameHeader(kind: FrameKindValue, bodyBytes: number): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  header.writeUInt32BE(bodyBytes + 1, 0);
  header[4] = kind;
  return header;
}

/** Decodes a msgpack frame body; undecodable bytes become a WireError. */
export function decodeBody(body: Buffer): unknown {
  try {
    return wireCodec.unpack(body);
  } catch (error) {
    throw new WireError(
      `undecodable msgpack body: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

/**
 * Splits a byte stream into frame payloads (kind byte + body). Holds at most one partial frame
 * (≤ maxFrameBytes + 4 bytes); a header announcing an empty or oversize frame throws WireError
 * before any of its body is buffered.
 */
export class FrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes needed in `pending` before parsing can make progress: a header, or a whole frame. */
  private neededBytes = 4;

  constructor(private readonly maxFrameBytes: number) {
    assert(maxFrameBytes > 0, 'maxFrameBytes must be positive');
  }

  /** Calls `onFrame(kind, body)` for each complete frame; stops early when it returns false. */
  push(chunk: Buffer, onFrame: (kind: number, body: Buffer) => boolean): void {
    let data = chunk;
    if (this.pendingBytes > 0) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.pendingBytes < this.neededBytes) return;
      data = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
    }
    let offset = 0;
    while (data.length - offset >= 4) {
      const frameBytes = this.checkedLength(data.readUInt32BE(offset));
      const end = offset + 4 + frameBytes;
      if (end > data.length) break;
      const keepGoing = onFrame(data[offset + 4], data.subarray(offset + 5, end));
      offset = end;
      if (!keepGoing) return;
    }
    this.keepRest(data, offset);
  }

  private checkedLength(frameBytes: number): number {
    if (frameBytes < 1) throw new WireError('empty frame (length 0)');
    if (frameBytes > this.maxFrameBytes) {
      throw new WireError(`frame of ${frameBytes} bytes exceeds maxFrameBytes ${this.maxFrameBytes}`);
    }
    return frameBytes;
  }

  private keepRest(data: Buffer, offset: number): void {
    const rest = data.length - offset;
    if (rest === 0) {
      this.neededBytes = 4;
      return;
    }
    this.pending = [data.subarray(offset)];
    this.pendingBytes = rest;
    this.neededBytes = rest >= 4 ? 4 + this.checkedLength(data.readUInt32BE(offset)) : 4;
    assert(this.neededBytes > rest, 'a complete frame was left unparsed');
  }
}
