// The body of a batch frame (since protocol version 4): Raft messages in a binary layout written
// in one pass into a buffer of the exact size, and read back with every field checked, so bytes
// from the network never reach Raft unchecked. It replaced msgpack records, whose packing and
// unpacking of every MsgApp and MsgAppResp was the largest part of the peer transport's CPU.
//
// Body: messages back to back until the frame ends. A message:
//   uvarint groupId, u8 type code (TYPE_CODES), uvarint from, to, term, then by type:
//   app            uvarint logTerm, index, commit, entries
//   appResp        uvarint index, bool reject, uvarint rejectHint, logTerm
//   vote, preVote  uvarint logTerm, index, bool transfer
//   voteResp, preVoteResp  bool reject
//   heartbeat      uvarint commit, bytes context
//   heartbeatResp, readIndex  bytes context
//   readIndexResp  uvarint index, bytes context
//   snap           uvarint index, term, ids voters, votersOutgoing, learners, learnersNext,
//                  bool autoLeave, bytes data
//   timeoutNow     nothing
//   prop           entries
//   transferLeader uvarint transferee
//   durable        uvarint index (since protocol version 5)
// where entries = uvarint count, then per entry uvarint term, index, u8 type (0 normal, 1 conf),
// bytes data; bytes = uvarint length + the bytes; ids = uvarint count + uvarint each; bool = a
// byte 0 or 1. Varints are unsigned LEB128 of safe integers (util/varint.ts).
import type { ConfState, Entry, Message, MessageType } from '../raft/index.ts';
import { ByteReader, unreachable, uvarintSize, writeUvarint } from '../util/index.ts';
import type { BatchItem } from './codec.ts';
import { FRAME_HEADER_BYTES, FrameKind, WireError } from './wire.ts';

const TYPE_CODES: Record<MessageType, number> = {
  app: 1,
  appResp: 2,
  vote: 3,
  preVote: 4,
  voteResp: 5,
  preVoteResp: 6,
  heartbeat: 7,
  heartbeatResp: 8,
  snap: 9,
  timeoutNow: 10,
  prop: 11,
  readIndex: 12,
  readIndexResp: 13,
  transferLeader: 14,
  durable: 15,
};
const TYPES_BY_CODE: (MessageType | undefined)[] = [];
for (const [type, code] of Object.entries(TYPE_CODES)) TYPES_BY_CODE[code] = type as MessageType;

const ENTRY_TYPE_CODES = { normal: 0, conf: 1 } as const;

// ---------------------------------------------------------------- encoding

/** The whole batch frame (header included) for `items`. */
export function encodeBatchFrame(items: readonly BatchItem[]): Buffer {
  let bytes = FRAME_HEADER_BYTES;
  for (const item of items) bytes += uvarintSize(item.groupId) + messageSize(item.msg);
  const frame = Buffer.allocUnsafe(bytes);
  frame.writeUInt32BE(bytes - 4, 0);
  frame[4] = FrameKind.batch;
  let at = FRAME_HEADER_BYTES;
  for (const item of items) {
    at = writeUvarint(frame, at, item.groupId);
    at = writeMessage(frame, at, item.msg);
  }
  if (at !== bytes) throw new Error(`batch frame: wrote ${at} of ${bytes} bytes`);
  return frame;
}

function messageSize(msg: Message): number {
  const head = 1 + uvarintSize(msg.from) + uvarintSize(msg.to) + uvarintSize(msg.term);
  switch (msg.type) {
    case 'app':
      return head + uvarintSize(msg.logTerm) + uvarintSize(msg.index) + uvarintSize(msg.commit) + entriesSize(msg.entries);
    case 'appResp':
      return head + uvarintSize(msg.index) + 1 + uvarintSize(msg.rejectHint) + uvarintSize(msg.logTerm);
    case 'vote':
    case 'preVote':
      return head + uvarintSize(msg.logTerm) + uvarintSize(msg.index) + 1;
    case 'voteResp':
    case 'preVoteResp':
      return head + 1;
    case 'heartbeat':
      return head + uvarintSize(msg.commit) + bytesSize(msg.context);
    case 'heartbeatResp':
    case 'readIndex':
      return head + bytesSize(msg.context);
    case 'readIndexResp':
      return head + uvarintSize(msg.index) + bytesSize(msg.context);
    case 'snap': {
      const { metadata, data } = msg.snapshot;
      const c = metadata.confState;
      const ids = idsSize(c.voters) + idsSize(c.votersOutgoing) + idsSize(c.learners) + idsSize(c.learnersNext);
      return head + uvarintSize(metadata.index) + uvarintSize(metadata.term) + ids + 1 + bytesSize(data);
    }
    case 'timeoutNow':
      return head;
    case 'prop':
      return head + entriesSize(msg.entries);
    case 'transferLeader':
      return head + uvarintSize(msg.transferee);
    case 'durable':
      return head + uvarintSize(msg.index);
    default:
      return unreachable(msg, 'message type');
  }
}

const bytesSize = (bytes: Uint8Array): number => uvarintSize(bytes.length) + bytes.length;

function idsSize(ids: readonly number[]): number {
  let bytes = uvarintSize(ids.length);
  for (const id of ids) bytes += uvarintSize(id);
  return bytes;
}

function entriesSize(entries: readonly Entry[]): number {
  let bytes = uvarintSize(entries.length);
  for (const e of entries) bytes += uvarintSize(e.term) + uvarintSize(e.index) + 1 + bytesSize(e.data);
  return bytes;
}

function writeMessage(out: Buffer, start: number, msg: Message): number {
  out[start] = TYPE_CODES[msg.type];
  let at = writeUvarint(out, start + 1, msg.from);
  at = writeUvarint(out, at, msg.to);
  at = writeUvarint(out, at, msg.term);
  switch (msg.type) {
    case 'app':
      at = writeUvarint(out, at, msg.logTerm);
      at = writeUvarint(out, at, msg.index);
      at = writeUvarint(out, at, msg.commit);
      return writeEntries(out, at, msg.entries);
    case 'appResp':
      at = writeUvarint(out, at, msg.index);
      out[at++] = msg.reject ? 1 : 0;
      at = writeUvarint(out, at, msg.rejectHint);
      return writeUvarint(out, at, msg.logTerm);
    case 'vote':
    case 'preVote':
      at = writeUvarint(out, at, msg.logTerm);
      at = writeUvarint(out, at, msg.index);
      out[at] = msg.transfer ? 1 : 0;
      return at + 1;
    case 'voteResp':
    case 'preVoteResp':
      out[at] = msg.reject ? 1 : 0;
      return at + 1;
    case 'heartbeat':
      at = writeUvarint(out, at, msg.commit);
      return writeBytes(out, at, msg.context);
    case 'heartbeatResp':
    case 'readIndex':
      return writeBytes(out, at, msg.context);
    case 'readIndexResp':
      at = writeUvarint(out, at, msg.index);
      return writeBytes(out, at, msg.context);
    case 'snap': {
      const { metadata, data } = msg.snapshot;
      const c = metadata.confState;
      at = writeUvarint(out, at, metadata.index);
      at = writeUvarint(out, at, metadata.term);
      for (const ids of [c.voters, c.votersOutgoing, c.learners, c.learnersNext]) at = writeIds(out, at, ids);
      out[at++] = c.autoLeave ? 1 : 0;
      return writeBytes(out, at, data);
    }
    case 'timeoutNow':
      return at;
    case 'prop':
      return writeEntries(out, at, msg.entries);
    case 'transferLeader':
      return writeUvarint(out, at, msg.transferee);
    case 'durable':
      return writeUvarint(out, at, msg.index);
    default:
      return unreachable(msg, 'message type');
  }
}

function writeBytes(out: Buffer, start: number, bytes: Uint8Array): number {
  const at = writeUvarint(out, start, bytes.length);
  out.set(bytes, at);
  return at + bytes.length;
}

function writeIds(out: Buffer, start: number, ids: readonly number[]): number {
  let at = writeUvarint(out, start, ids.length);
  for (const id of ids) at = writeUvarint(out, at, id);
  return at;
}

function writeEntries(out: Buffer, start: number, entries: readonly Entry[]): number {
  let at = writeUvarint(out, start, entries.length);
  for (const e of entries) {
    at = writeUvarint(out, at, e.term);
    at = writeUvarint(out, at, e.index);
    out[at++] = ENTRY_TYPE_CODES[e.type];
    at = writeBytes(out, at, e.data);
  }
  return at;
}

// ---------------------------------------------------------------- decoding

const wireError = (why: string): WireError => new WireError(`batch frame: ${why}`);

/**
 * The messages of a batch frame body. Byte fields are views into `body` (no copy). Anything
 * malformed throws WireError, which closes the connection it came on.
 */
export function decodeBatch(body: Uint8Array): BatchItem[] {
  const reader = new ByteReader(body, 0, wireError);
  const items: BatchItem[] = [];
  while (!reader.done) {
    const groupId = reader.uvarint();
    items.push({ groupId, msg: readMessage(reader) });
  }
  return items;
}

function readMessage(r: ByteReader): Message {
  const code = r.byte();
  const type = TYPES_BY_CODE[code];
  if (type === undefined) throw wireError(`unknown message type code ${code}`);
  const from = r.uvarint();
  const to = r.uvarint();
  const term = r.uvarint();
  switch (type) {
    case 'app': {
      const logTerm = r.uvarint();
      const index = r.uvarint();
      const commit = r.uvarint();
      return { type, from, to, term, logTerm, index, entries: readEntries(r), commit };
    }
    case 'appResp': {
      const index = r.uvarint();
      const reject = r.bool();
      const rejectHint = r.uvarint();
      return { type, from, to, term, index, reject, rejectHint, logTerm: r.uvarint() };
    }
    case 'vote':
    case 'preVote': {
      const logTerm = r.uvarint();
      const index = r.uvarint();
      return { type, from, to, term, logTerm, index, transfer: r.bool() };
    }
    case 'voteResp':
    case 'preVoteResp':
      return { type, from, to, term, reject: r.bool() };
    case 'heartbeat': {
      const commit = r.uvarint();
      return { type, from, to, term, commit, context: r.lengthPrefixed() };
    }
    case 'heartbeatResp':
    case 'readIndex':
      return { type, from, to, term, context: r.lengthPrefixed() };
    case 'readIndexResp': {
      const index = r.uvarint();
      return { type, from, to, term, index, context: r.lengthPrefixed() };
    }
    case 'snap': {
      const index = r.uvarint();
      const snapTerm = r.uvarint();
      const confState: ConfState = {
        voters: readIds(r),
        votersOutgoing: readIds(r),
        learners: readIds(r),
        learnersNext: readIds(r),
        autoLeave: r.bool(),
      };
      return { type, from, to, term, snapshot: { metadata: { index, term: snapTerm, confState }, data: r.lengthPrefixed() } };
    }
    case 'timeoutNow':
      return { type, from, to, term };
    case 'prop':
      return { type, from, to, term, entries: readEntries(r) };
    case 'transferLeader':
      return { type, from, to, term, transferee: r.uvarint() };
    case 'durable':
      return { type, from, to, term, index: r.uvarint() };
    default:
      return unreachable(type, 'message type');
  }
}

function readIds(r: ByteReader): number[] {
  const count = r.uvarint();
  // Each id takes at least a byte: a count beyond what is left is a lie, not an allocation.
  if (count > r.remaining) throw wireError(`${count} ids in ${r.remaining} bytes`);
  const ids: number[] = [];
  for (let i = 0; i < count; i++) ids.push(r.uvarint());
  return ids;
}

function readEntries(r: ByteReader): Entry[] {
  const count = r.uvarint();
  if (count > r.remaining) throw wireError(`${count} entries in ${r.remaining} bytes`);
  const entries: Entry[] = [];
  for (let i = 0; i < count; i++) {
    const term = r.uvarint();
    const index = r.uvarint();
    const typeCode = r.byte();
    if (typeCode > 1) throw wireError(`entry type code ${typeCode}`);
    entries.push({ term, index, type: typeCode === 0 ? 'normal' : 'conf', data: r.lengthPrefixed() });
  }
  return entries;
}
