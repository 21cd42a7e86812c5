// WatchResponses as gRPC messages built by splicing: each event is encoded once per loop turn and
// shared by every watcher that receives it, and a watcher's response is the header's bytes, its
// watch_id and the events' bytes copied into its stream's batch, written once per turn
// (watch-service.ts). Protobuf allows it: a repeated field is its entries' tag+length+bytes in a row.
import type { KeyValue, WatchEvent } from '../mvcc/index.ts';
import { assert, AssertionError } from '../util/index.ts';
import type { HeaderInfo } from './backend.ts';
import { encodeHeader } from './codec.ts';
import { encodeResponseHeaderField, encodeWatchEventField, GRPC_PREFIX_BYTES } from './fast-codec.ts';
import { int64FieldSize, writeBytes, writeInt64Field } from './proto-wire.ts';

/**
 * Encoded events live until the end of the loop turn, within this many bytes (past it, events are
 * encoded for each response, as before). A turn's live fan-out of one revision, and the replays of
 * watchers that resume together on 'drain', find their events here.
 */
export const MAX_CACHED_EVENT_BYTES = 8 * 1024 * 1024;

const EMPTY: Buffer = Buffer.alloc(0);

/** `fragment = true`: tag 7, varint 1. */
const FRAGMENT_FIELD_BYTES = 2;

interface CachedEvent {
  type: WatchEvent['type'];
  /** The event without prev_kv, once some watcher got it so. */
  bare: Buffer | null;
  /** The prev_kv `withPrev` was encoded with (mvcc may drop an event's prev_kv after compaction). */
  prevKv: KeyValue | null;
  withPrev: Buffer | null;
}

/**
 * Event bytes by the event's kv, which mvcc never mutates (one KeyValue object per version): the
 * live fan-out shares event objects, a replay makes new ones around the same kv.
 */
class EventBytesCache {
  private readonly entries = new Map<KeyValue, CachedEvent>();
  private bytes = 0;
  private clearScheduled = false;
  /** Most watchers of a revision get the same single event: one comparison instead of a lookup. */
  private lastEvent: WatchEvent | null = null;
  private lastBytes: Buffer = EMPTY;

  /** The event as a WatchResponse `events` entry (tag, length, Event). */
  get(event: WatchEvent): Buffer {
    if (event === this.lastEvent) return this.lastBytes;
    const bytes = this.lookup(event);
    this.lastEvent = event;
    this.lastBytes = bytes;
    this.scheduleClear();
    return bytes;
  }

  private lookup(event: WatchEvent): Buffer {
    let entry = this.entries.get(event.kv);
    if (entry !== undefined && entry.type === event.type) {
      if (event.prevKv === null && entry.bare !== null) return entry.bare;
      if (event.prevKv !== null && event.prevKv === entry.prevKv && entry.withPrev !== null) return entry.withPrev;
    }
    const bytes = encodeWatchEventField(event.type === 'delete' ? 1 : 0, event.kv, event.prevKv);
    if (this.bytes + bytes.length > MAX_CACHED_EVENT_BYTES) return bytes;
    if (entry === undefined || entry.type !== event.type) {
      entry = { type: event.type, bare: null, prevKv: null, withPrev: null };
      this.entries.set(event.kv, entry);
    }
    if (event.prevKv === null) {
      entry.bare = bytes;
    } else {
      entry.prevKv = event.prevKv;
      entry.withPrev = bytes;
    }
    this.bytes += bytes.length;
    return bytes;
  }

  private scheduleClear(): void {
    if (this.clearScheduled) return;
    this.clearScheduled = true;
    setImmediate(this.clearLater);
  }

  // Made once: a closure created per call would cost V8 a context allocation per call.
  private readonly clearLater = (): void => this.clear();

  private clear(): void {
    this.entries.clear();
    this.bytes = 0;
    this.clearScheduled = false;
    this.lastEvent = null;
    this.lastBytes = EMPTY;
  }
}

const eventCache = new EventBytesCache();

/** An event's bytes as a WatchResponse `events` entry, encoded once per turn however many watchers get it. */
export function eventField(event: WatchEvent): Buffer {
  return eventCache.get(event);
}

/** The last header encoded: every watcher of a revision gets the same one. */
let headerCache: { revision: number; raftTerm: number; clusterId: string; memberId: string; bytes: Buffer } = {
  revision: -1,
  raftTerm: -1,
  clusterId: '',
  memberId: '',
  bytes: EMPTY,
};

/** The `header` field (tag, length, ResponseHeader) of a response at `revision`. */
export function headerField(revision: number, info: HeaderInfo): Buffer {
  const cached = headerCache;
  if (
    cached.revision === revision &&
    cached.raftTerm === info.raftTerm &&
    cached.clusterId === info.clusterId &&
    cached.memberId === info.memberId
  ) {
    return cached.bytes;
  }
  const bytes = encodeResponseHeaderField(encodeHeader(revision, info));
  headerCache = { revision, raftTerm: info.raftTerm, clusterId: info.clusterId, memberId: info.memberId, bytes };
  return bytes;
}

/** Body bytes of an event response without its events: header, watch_id and the fragment flag. */
export function eventResponseBaseBytes(header: Buffer, watchId: number, fragment: boolean): number {
  return header.length + int64FieldSize(watchId) + (fragment ? FRAGMENT_FIELD_BYTES : 0);
}

/** Smallest and largest first allocation of a turn's batch (the next turn starts from the last one's size). */
const MIN_BATCH_BYTES = 1024;
const MAX_BATCH_HINT_BYTES = 256 * 1024;

/**
 * One stream's responses of the current turn, consecutive gRPC messages in one buffer, for one
 * write. Its size is bounded by the caller, which takes it past a threshold (watch-service.ts).
 */
export class FrameBatch {
  private buffer: Buffer | null = null;
  private pos = 0;
  private sizeHint = MIN_BATCH_BYTES;
  /** The buffer of the last take(), until the writer gives it back (giveBack). */
  private lent: Buffer | null = null;
  /** A buffer the writer is done with, reused by the next turn instead of a new one. */
  private spare: Buffer | null = null;

  /** Bytes held (whole messages, prefixes included). */
  get bytes(): number {
    return this.pos;
  }

  /** Appends a whole gRPC message (prefix included). */
  appendFrame(frame: Buffer): void {
    const buffer = this.reserve(frame.length);
    frame.copy(buffer, this.pos);
    this.pos += frame.length;
  }

  /**
   * Appends a WatchResponse carrying `events[start, end)`: `header`, `watch_id`, `fragment` when set,
   * then each event's cached bytes, in etcd's (gogoproto's) field order. `bodyBytes` is what
   * eventResponseBaseBytes plus the events' eventField lengths came to.
   */
  appendEvents(
    header: Buffer,
    watchId: number,
    fragment: boolean,
    events: readonly WatchEvent[],
    start: number,
    end: number,
    bodyBytes: number,
  ): void {
    assert(start < end && end <= events.length, 'an event response carries events');
    const first = this.pos;
    const buffer = this.reserve(GRPC_PREFIX_BYTES + bodyBytes);
    let pos = first;
    buffer[pos] = 0;
    buffer.writeUInt32BE(bodyBytes, pos + 1);
    pos = writeBytes(buffer, pos + GRPC_PREFIX_BYTES, header);
    pos = writeInt64Field(buffer, pos, 0x10, watchId);
    if (fragment) {
      buffer[pos++] = 0x38;
      buffer[pos++] = 1;
    }
    for (let i = start; i < end; i++) pos = writeBytes(buffer, pos, eventField(events[i]));
    // A wrong size would corrupt every later message of the stream: drop this one and fail loudly.
    if (pos !== first + GRPC_PREFIX_BYTES + bodyBytes) {
      this.pos = first;
      missized(bodyBytes, pos - first - GRPC_PREFIX_BYTES);
    }
    this.pos = pos;
  }

  /** The messages held, for one write; the batch is empty after. Null when there are none. */
  take(): Buffer | null {
    const buffer = this.buffer;
    if (buffer === null || this.pos === 0) return null;
    const frames = buffer.subarray(0, this.pos);
    this.sizeHint = Math.min(MAX_BATCH_HINT_BYTES, Math.max(MIN_BATCH_BYTES, this.pos + (this.pos >>> 2)));
    this.buffer = null;
    this.pos = 0;
    this.lent = buffer;
    return frames;
  }

  /**
   * Nothing reads `frames` (a take() result) any more: the socket has written it or the HTTP/2
   * connection copied it. Its buffer serves the next turn, so a stream under fan-out does not
   * allocate a buffer per turn. Anything but the last take() is ignored.
   */
  giveBack(frames: Buffer): void {
    const lent = this.lent;
    if (lent === null || frames.buffer !== lent.buffer) return;
    this.lent = null;
    if (this.spare === null || this.spare.length < lent.length) this.spare = lent;
  }

  /** Room for `bytes` more: the spare buffer when it is large enough, else a new one. */
  private reserve(bytes: number): Buffer {
    const needed = this.pos + bytes;
    const buffer = this.buffer;
    if (buffer !== null && needed <= buffer.length) return buffer;
    const size = Math.max(needed, buffer === null ? this.sizeHint : buffer.length * 2);
    let grown: Buffer;
    if (this.spare !== null && this.spare.length >= size) {
      grown = this.spare;
      this.spare = null;
    } else {
      // Memory of its own, never a slice of Node's shared pool: giveBack hands it out again.
      grown = Buffer.allocUnsafeSlow(size);
    }
    if (buffer !== null) buffer.copy(grown, 0, 0, this.pos);
    this.buffer = grown;
    return grown;
  }
}

/** Out of line: a message closure in appendEvents would cost a context allocation per response. */
function missized(sized: number, written: number): never {
  throw new AssertionError(`watch response sized ${sized} bytes, wrote ${written}`);
}

/** Splits whole gRPC messages back apart (for grpc-js, which takes one message per write). */
export function forEachMessage(frames: Buffer, visit: (body: Buffer, frameBytes: number) => void): void {
  let pos = 0;
  while (pos < frames.length) {
    assert(pos + GRPC_PREFIX_BYTES <= frames.length && frames[pos] === 0, 'a batch holds whole uncompressed messages');
    const end = pos + GRPC_PREFIX_BYTES + frames.readUInt32BE(pos + 1);
    assert(end <= frames.length, 'a batch holds whole messages');
    visit(frames.subarray(pos + GRPC_PREFIX_BYTES, end), end - pos);
    pos = end;
  }
}
