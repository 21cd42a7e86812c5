// What the msgpack frames carry (hello, calls, snapshot heads and acks; batch bodies are binary,
// batch.ts): canonical shapes on the way out, checked shapes on the way in (untrusted bytes never
// reach Raft).
import type { ConfState, Message, MessageType, Snapshot, SnapshotMsg } from '../raft/index.ts';
import { PROTOCOL_VERSION, WireError } from './wire.ts';

export interface BatchItem {
  groupId: number;
  msg: Message;
}

/** A message stream carries batches; a snapshot stream carries one snapshot in chunks. */
export type StreamKind = 'message' | 'snapshot';

export interface Hello {
  version: number;
  clusterId: string;
  nodeId: number;
  stream: StreamKind;
}

export interface SnapshotHead {
  groupId: number;
  /** The snap message with `snapshot.data` empty; the data follows in chunk frames. */
  msg: SnapshotMsg;
  /** Length of `snapshot.data`. */
  bytes: number;
}

export interface SnapshotAck {
  ok: boolean;
  reason: string;
}

const EMPTY = new Uint8Array(0);
/** Per-message overhead counted against the per-peer byte bound (fields, record ids). */
const MESSAGE_OVERHEAD_BYTES = 64;
const ENTRY_OVERHEAD_BYTES = 24;

// ---------------------------------------------------------------- outbound: canonical shapes

function wireSnapshot(snapshot: Snapshot, data: Uint8Array): Snapshot {
  const { index, term, confState: c } = snapshot.metadata;
  const confState: ConfState = {
    voters: c.voters,
    votersOutgoing: c.votersOutgoing,
    learners: c.learners,
    learnersNext: c.learnersNext,
    autoLeave: c.autoLeave,
  };
  return { metadata: { index, term, confState }, data };
}

/** The head frame body of a snapshot stream: the message without its data. */
export function wireSnapshotHead(groupId: number, msg: SnapshotMsg): SnapshotHead {
  const { type, from, to, term } = msg;
  return {
    groupId,
    msg: { type, from, to, term, snapshot: wireSnapshot(msg.snapshot, EMPTY) },
    bytes: msg.snapshot.data.length,
  };
}

/** Bytes a queued message is charged against `maxPeerQueueBytes` (cheap estimate, not exact). */
export function estimateMessageBytes(msg: Message): number {
  switch (msg.type) {
    case 'app':
    case 'prop': {
      let bytes = MESSAGE_OVERHEAD_BYTES;
      for (const entry of msg.entries) bytes += ENTRY_OVERHEAD_BYTES + entry.data.length;
      return bytes;
    }
    case 'heartbeat':
    case 'heartbeatResp':
    case 'readIndex':
    case 'readIndexResp':
      return MESSAGE_OVERHEAD_BYTES + msg.context.length;
    case 'snap':
      return MESSAGE_OVERHEAD_BYTES + msg.snapshot.data.length;
    default:
      return MESSAGE_OVERHEAD_BYTES;
  }
}

// ---------------------------------------------------------------- inbound: checked shapes

type Fields = Record<string, unknown>;

function isFields(value: unknown): value is Fields {
  return (
    typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array)
  );
}

const isIndex = (value: unknown): boolean => Number.isSafeInteger(value) && (value as number) >= 0;
const isBytes = (value: unknown): boolean => value instanceof Uint8Array;
const isBool = (value: unknown): boolean => typeof value === 'boolean';
const isIdList = (value: unknown): boolean => Array.isArray(value) && value.every(isIndex);

function isEntry(value: unknown): boolean {
  return (
    isFields(value) &&
    isIndex(value.term) &&
    isIndex(value.index) &&
    (value.type === 'normal' || value.type === 'conf') &&
    isBytes(value.data)
  );
}

const isEntries = (value: unknown): boolean => Array.isArray(value) && value.every(isEntry);

function isConfState(value: unknown): boolean {
  return (
    isFields(value) &&
    isIdList(value.voters) &&
    isIdList(value.votersOutgoing) &&
    isIdList(value.learners) &&
    isIdList(value.learnersNext) &&
    isBool(value.autoLeave)
  );
}

function isSnapshot(value: unknown): boolean {
  if (!isFields(value) || !isBytes(value.data) || !isFields(value.metadata)) return false;
  const metadata = value.metadata;
  return isIndex(metadata.index) && isIndex(metadata.term) && isConfState(metadata.confState);
}

/** Per-type field checks beyond the common from/to/term; a Record so a new type fails to compile. */
const typeChecks: Record<MessageType, (m: Fields) => boolean> = {
  app: (m) => isIndex(m.logTerm) && isIndex(m.index) && isIndex(m.commit) && isEntries(m.entries),
  appResp: (m) => isIndex(m.index) && isBool(m.reject) && isIndex(m.rejectHint) && isIndex(m.logTerm),
  vote: (m) => isIndex(m.logTerm) && isIndex(m.index) && isBool(m.transfer),
  preVote: (m) => isIndex(m.logTerm) && isIndex(m.index) && isBool(m.transfer),
  voteResp: (m) => isBool(m.reject),
  preVoteResp: (m) => isBool(m.reject),
  heartbeat: (m) => isIndex(m.commit) && isBytes(m.context),
  heartbeatResp: (m) => isBytes(m.context),
  snap: (m) => isSnapshot(m.snapshot),
  timeoutNow: () => true,
  prop: (m) => isEntries(m.entries),
  readIndex: (m) => isBytes(m.context),
  readIndexResp: (m) => isIndex(m.index) && isBytes(m.context),
  transferLeader: (m) => isIndex(m.transferee),
  durable: (m) => isIndex(m.index),
};

/** Narrows a decoded value to a Message, or throws WireError naming what is wrong. */
export function readMessage(value: unknown): Message {
  if (!isFields(value)) throw new WireError('message is not an object');
  const type = value.type;
  if (typeof type !== 'string' || !Object.hasOwn(typeChecks, type)) {
    throw new WireError(`unknown message type ${JSON.stringify(String(type)).slice(0, 40)}`);
  }
  if (!isIndex(value.from) || !isIndex(value.to) || !isIndex(value.term)) {
    throw new WireError(`message ${type}: from/to/term must be non-negative safe integers`);
  }
  if (!typeChecks[type as MessageType](value)) throw new WireError(`message ${type}: malformed fields`);
  return value as unknown as Message;
}

export function readHello(value: unknown): Hello {
  if (!isFields(value)) throw new WireError('hello is not an object');
  const { version, clusterId, nodeId, stream } = value;
  if (version !== PROTOCOL_VERSION)
    throw new WireError(`protocol version ${String(version)}, want ${PROTOCOL_VERSION}`);
  if (typeof clusterId !== 'string' || clusterId.length > 256) throw new WireError('hello: bad clusterId');
  if (!Number.isSafeInteger(nodeId) || (nodeId as number) <= 0) throw new WireError('hello: bad nodeId');
  if (stream !== 'message' && stream !== 'snapshot') throw new WireError('hello: bad stream kind');
  return { version, clusterId, nodeId: nodeId as number, stream };
}

export function readSnapshotHead(value: unknown, maxSnapshotBytes: number): SnapshotHead {
  if (!isFields(value) || !isIndex(value.groupId) || !isIndex(value.bytes))
    throw new WireError('bad snapshot head');
  const msg = readMessage(value.msg);
  if (msg.type !== 'snap') throw new WireError(`snapshot head carries a ${msg.type} message`);
  const bytes = value.bytes as number;
  if (bytes > maxSnapshotBytes)
    throw new WireError(`snapshot of ${bytes} bytes exceeds maxSnapshotBytes ${maxSnapshotBytes}`);
  return { groupId: value.groupId as number, msg, bytes };
}

export function readSnapshotAck(value: unknown): SnapshotAck {
  if (!isFields(value) || !isBool(value.ok) || typeof value.reason !== 'string')
    throw new WireError('bad snapshot ack');
  return { ok: value.ok as boolean, reason: value.reason };
}
