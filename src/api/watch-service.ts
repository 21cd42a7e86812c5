// The etcdserverpb.Watch service: one bidirectional stream multiplexes many watchers (etcd's
// v3rpc/watch.go). Events reach the stream synchronously from the backend's sink; the stream's
// memory is bounded by pausing watchers while the client is slow and cancelling past a byte budget.
// Responses are spliced from bytes encoded once per event (watch-frames.ts) and a stream's
// responses of one loop turn go out in one write.
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { WatchCompactedError } from '../mvcc/index.ts';
import type { WatchEvent, WatchHandle, WatchOptions } from '../mvcc/index.ts';
import { assert, EtcdError, GrpcCode, invalidArgument, unreachable } from '../util/index.ts';
import type { AuthGate } from './auth-gate.ts';
import type { HeaderInfo, WatchBackend } from './backend.ts';
import { encodeHeader, parseInt64 } from './codec.ts';
import { encodeWatchResponseFrame, GRPC_PREFIX_BYTES } from './fast-codec.ts';
import { EncodedMessage } from '../http2/index.ts';
import { endWithStatus, SERVER_STOPPED } from './handlers.ts';
import type { OpenStreams } from './handlers.ts';
import { isFramesWriter } from './lean-call.ts';
import type { FramesWriter } from './lean-call.ts';
import type { Received } from './protos.ts';
import { INTERNAL_ERROR_MESSAGE } from './status.ts';
import { eventField, eventResponseBaseBytes, forEachMessage, FrameBatch, headerField } from './watch-frames.ts';
import type {
  WireEvent,
  WireInt64,
  WireWatchCreateRequest,
  WireWatchRequest,
  WireWatchResponse,
} from './wire.ts';

/** clientv3.InvalidWatchID: the watch_id of refused creates and of stream-wide progress responses. */
export const INVALID_WATCH_ID = -1;
const FILTER_NOPUT = 0;
const FILTER_NODELETE = 1;

// etcd's mvcc watch stream errors, sent as cancel_reason of a refused create.
export const EMPTY_WATCHER_RANGE = 'mvcc: watcher range is empty';
export const DUPLICATE_WATCH_ID = 'mvcc: duplicate watch ID provided on the WatchStream';

/**
 * A stream's batch is written once it holds this many bytes, without waiting for the end of the
 * turn: the write's answer (client behind or not) then comes at most this late, and a turn's
 * batch stays this size plus one response.
 */
export const STREAM_FLUSH_BYTES = 64 * 1024;

type WatchCall = grpc.ServerDuplexStream<Received<WireWatchRequest>, EncodedMessage>;

export interface WatchLimits {
  /** etcd splits a `fragment` watcher's response that reaches this size (its max request bytes + gRPC overhead). */
  maxResponseBytes: number;
  /** Watchers one stream may hold; a create past it is refused (created + canceled, with a reason). */
  maxWatchersPerStream: number;
  /**
   * Response bytes written to one stream and not yet flushed to the client. Watchers pause while
   * the client is behind; a batch that would cross this budget cancels its watcher instead of
   * queuing (one batch is always accepted onto an empty buffer, so a single large revision passes).
   */
  maxBufferedBytesPerStream: number;
  /** How often progress_notify watchers with no recent events get an empty response (etcd: 10 min). 0 = never. */
  progressNotifyIntervalMs: number;
}

export const DEFAULT_WATCH_LIMITS: Readonly<WatchLimits> = Object.freeze({
  maxResponseBytes: 1_572_864 + 512 * 1024,
  maxWatchersPerStream: 10_000,
  maxBufferedBytesPerStream: 32 * 1024 * 1024,
  progressNotifyIntervalMs: 10 * 60 * 1000,
});

export interface WatchServiceOptions {
  backend: WatchBackend;
  headerInfo: () => HeaderInfo;
  logger: Logger;
  limits: Readonly<WatchLimits>;
  streams: OpenStreams;
  /** With auth enabled, a watch needs READ on its range when created (auth-gate.ts). */
  gate?: AuthGate;
}

/** etcd's cancel reason for a watch the caller may not read (the gRPC error's text). */
export const WATCH_PERMISSION_DENIED = 'rpc error: code = PermissionDenied desc = etcdserver: permission denied';

export function watchServiceHandlers(options: WatchServiceOptions): grpc.UntypedServiceImplementation {
  const { limits } = options;
  assert(
    Number.isSafeInteger(limits.maxResponseBytes) && limits.maxResponseBytes > 0,
    'maxResponseBytes is positive',
  );
  assert(
    Number.isSafeInteger(limits.maxWatchersPerStream) && limits.maxWatchersPerStream > 0,
    'maxWatchersPerStream is positive',
  );
  assert(
    Number.isSafeInteger(limits.maxBufferedBytesPerStream) && limits.maxBufferedBytesPerStream > 0,
    'buffer budget is positive',
  );
  assert(
    Number.isSafeInteger(limits.progressNotifyIntervalMs) && limits.progressNotifyIntervalMs >= 0,
    'progress interval is >= 0',
  );
  return {
    Watch: (call: WatchCall) => {
      new WatchStream(call, options).start();
    },
  };
}

interface CreateRequest {
  options: WatchOptions;
  /** 0 = let the stream choose (clientv3.AutoWatchID). */
  watchId: number;
  progressNotify: boolean;
  fragment: boolean;
}

/** Decodes a create as etcd's recvLoop does; throws an EtcdError whose message becomes the cancel_reason. */
export function decodeCreateRequest(wire: WireWatchCreateRequest): CreateRequest {
  const key = wire.key.length === 0 ? new Uint8Array([0]) : new Uint8Array(wire.key);
  const rangeEnd = new Uint8Array(wire.rangeEnd);
  const fromKey = rangeEnd.length === 1 && rangeEnd[0] === 0;
  if (rangeEnd.length > 0 && !fromKey && Buffer.compare(key, rangeEnd) >= 0)
    throw invalidArgument(EMPTY_WATCHER_RANGE);
  const watchId = parseInt64(wire.watchId, 'watch_id');
  if (watchId < 0) throw invalidArgument('tessera: watch_id must not be negative');
  return {
    options: {
      key,
      rangeEnd,
      startRevision: parseInt64(wire.startRevision, 'start_revision'),
      noPut: wire.filters.includes(FILTER_NOPUT),
      noDelete: wire.filters.includes(FILTER_NODELETE),
      prevKv: wire.prevKv,
    },
    watchId,
    progressNotify: wire.progressNotify,
    fragment: wire.fragment,
  };
}

/** The reference shape of an event (watch-frames.ts splices the same bytes). */
export function toWireEvent(event: WatchEvent): WireEvent {
  return { type: event.type === 'delete' ? 1 : 0, kv: event.kv, prevKv: event.prevKv };
}

class Watcher {
  handle: WatchHandle | null = null;
  /** While the backend's watch() runs, replayed batches wait here (the sink pauses after the first). */
  early: { events: WatchEvent[]; revision: number }[] | null = [];
  /** etcd's progress map: true when no events went out since the last progress tick. */
  progressDue = true;

  constructor(
    readonly id: number,
    readonly fragment: boolean,
    readonly progressNotify: boolean,
  ) {}
}

/** Part of a fragmented event response: events [start, end) and its body size. */
interface Fragment {
  start: number;
  end: number;
  bodyBytes: number;
  fragment: boolean;
}

class WatchStream {
  private readonly watchers = new Map<number, Watcher>();
  /** Watchers this stream paused because the client was behind, in pause order (resumed FIFO). */
  private readonly paused = new Set<Watcher>();
  private nextAutoId = 0;
  /** Response bytes (gRPC messages) appended to the batch or written and not yet flushed to the client. */
  private bufferedBytes = 0;
  /** This turn's responses, written at the end of the turn (or once STREAM_FLUSH_BYTES are held). */
  private readonly batch = new FrameBatch();
  private flushScheduled = false;
  /** The node's header fields, read once per turn (a response takes its revision from the event or request). */
  private turnHeaderInfo: HeaderInfo | null = null;
  /** The lean server's call (several messages per write), or null for grpc-js (one message object per write). */
  private readonly framesWriter: FramesWriter | null;
  /** A write returned false: the client is behind until grpc-js emits 'drain'. */
  private congested = false;
  /** A progress_request arrived while some watcher was behind: answer once all are synced. */
  private progressPending = false;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private unregister: () => void = () => {};
  private readonly backend: WatchBackend;
  private readonly limits: Readonly<WatchLimits>;
  private readonly logger: Logger;

  constructor(
    private readonly call: WatchCall,
    private readonly options: WatchServiceOptions,
  ) {
    this.backend = options.backend;
    this.limits = options.limits;
    this.logger = options.logger;
    this.framesWriter = isFramesWriter(call) ? call : null;
  }

  start(): void {
    this.unregister = this.options.streams.add(() => {
      this.flush();
      endWithStatus(this.call, SERVER_STOPPED);
      this.close();
    });
    this.call.on('data', (request: Received<WireWatchRequest>) => this.onRequest(request.message));
    this.call.on('drain', () => this.onDrain());
    // A client half-close ends nothing: like etcd, the stream keeps sending until the client leaves.
    this.call.on('end', () => {});
    this.call.on('cancelled', () => this.close());
    this.call.on('close', () => this.close());
    this.call.on('error', () => this.close());
    const interval = this.limits.progressNotifyIntervalMs;
    if (interval > 0) {
      // etcd adds up to 10% jitter so that watchers created together do not all report at once.
      this.timer = setInterval(
        () => this.onProgressTick(),
        interval + Math.floor(Math.random() * (interval / 10)),
      );
      this.timer.unref();
    }
  }

  private onRequest(request: WireWatchRequest): void {
    if (this.closed) return;
    try {
      switch (request.requestUnion) {
        case 'createRequest':
          return this.create(present(request.createRequest));
        case 'cancelRequest':
          return this.cancel(present(request.cancelRequest).watchId);
        case 'progressRequest':
          return this.requestProgress();
        case undefined:
          return; // etcd ignores a request with nothing set
        default:
          return unreachable(request.requestUnion, 'WatchRequest member');
      }
    } catch (error) {
      this.logger.error({ err: error }, 'watch request failed');
      this.flush();
      endWithStatus(this.call, { code: GrpcCode.INTERNAL, details: INTERNAL_ERROR_MESSAGE });
      this.close();
    }
  }

  private create(wire: WireWatchCreateRequest): void {
    const revision = this.backend.currentRevision();
    let request: CreateRequest;
    try {
      request = decodeCreateRequest(wire);
    } catch (error) {
      if (!(error instanceof EtcdError)) throw error;
      return this.refuseCreate(revision, error.message);
    }
    const gate = this.options.gate;
    if (gate?.active === true) {
      try {
        gate.check(this.call, [{ kind: 'read', key: request.options.key, rangeEnd: request.options.rangeEnd }], 'Watch');
      } catch (error) {
        if (!(error instanceof EtcdError)) throw error;
        return this.refuseCreate(revision, WATCH_PERMISSION_DENIED);
      }
    }
    if (request.watchId !== 0 && this.watchers.has(request.watchId))
      return this.refuseCreate(revision, DUPLICATE_WATCH_ID);
    if (this.watchers.size >= this.limits.maxWatchersPerStream) {
      return this.refuseCreate(
        revision,
        `tessera: too many watchers on one stream (limit ${this.limits.maxWatchersPerStream})`,
      );
    }
    const watcher = new Watcher(
      request.watchId === 0 ? this.autoId() : request.watchId,
      request.fragment,
      request.progressNotify,
    );
    this.watchers.set(watcher.id, watcher);
    try {
      watcher.handle = this.backend.watch(request.options, (events, rev) => this.sink(watcher, events, rev));
    } catch (error) {
      // etcd acknowledges the watch first and cancels it when the store refuses it. A watcher
      // "compacted at revision 0" (a negative start after compact(0)) is not canceled by etcd:
      // it stays on the stream, silent, its ID taken until the client cancels it.
      if (!(error instanceof WatchCompactedError && error.compactRevision === 0)) this.watchers.delete(watcher.id);
      this.sendResponse(revision, { watchId: watcher.id, created: true });
      return this.sendCancel(watcher.id, error);
    }
    this.sendResponse(revision, { watchId: watcher.id, created: true });
    const early = watcher.early ?? [];
    watcher.early = null;
    for (const batch of early) this.deliver(watcher, batch.events, batch.revision);
    if (watcher.handle.state === 'paused' && this.watchers.has(watcher.id)) {
      this.paused.add(watcher);
      if (!this.congested) this.resumePaused();
    }
  }

  /** etcd's answer to a create it cannot serve: created and canceled at once, watch_id -1. */
  private refuseCreate(revision: number, reason: string): void {
    this.sendResponse(revision, {
      watchId: INVALID_WATCH_ID,
      created: true,
      canceled: true,
      cancelReason: reason,
    });
  }

  /** etcd's watchStream picks the lowest unused ID at or above its counter, starting at 0. */
  private autoId(): number {
    while (this.watchers.has(this.nextAutoId)) this.nextAutoId += 1;
    const id = this.nextAutoId;
    this.nextAutoId += 1;
    return id;
  }

  private cancel(wireId: WireInt64): void {
    let id: number;
    try {
      id = parseInt64(wireId, 'watch_id');
    } catch {
      return; // no watcher can have that ID; etcd ignores cancels of unknown watchers
    }
    const watcher = this.watchers.get(id);
    if (watcher === undefined) return;
    this.forget(watcher);
    this.sendResponse(this.backend.currentRevision(), { watchId: id, canceled: true });
  }

  private forget(watcher: Watcher): void {
    watcher.handle?.cancel();
    this.watchers.delete(watcher.id);
    this.paused.delete(watcher);
  }

  /** The backend's sink: must not throw (a failure cancels just this watcher). */
  private sink(watcher: Watcher, events: WatchEvent[], revision: number): boolean {
    if (this.closed) return false;
    if (watcher.early !== null) {
      watcher.early.push({ events, revision });
      return false;
    }
    try {
      return this.deliver(watcher, events, revision);
    } catch (error) {
      this.logger.error({ err: error, watchId: watcher.id }, 'watch delivery failed');
      this.forget(watcher);
      this.sendResponse(this.backend.currentRevision(), {
        watchId: watcher.id,
        canceled: true,
        cancelReason: INTERNAL_ERROR_MESSAGE,
      });
      return false;
    }
  }

  /**
   * Queues one batch as a response spliced from the events' shared bytes (watch-frames.ts); false
   * when the watcher must pause (the client is behind) or was cancelled.
   */
  private deliver(watcher: Watcher, events: WatchEvent[], revision: number): boolean {
    assert(events.length > 0, 'the store delivers non-empty batches');
    const header = headerField(revision, this.headerInfo());
    let eventBytes = 0;
    for (let i = 0; i < events.length; i++) eventBytes += eventField(events[i]).length;
    const bodyBytes = eventResponseBaseBytes(header, watcher.id, false) + eventBytes;
    const fragments =
      watcher.fragment && bodyBytes >= this.limits.maxResponseBytes && events.length >= 2
        ? this.fragments(header, watcher.id, events)
        : null;
    const frameBytes =
      fragments === null
        ? GRPC_PREFIX_BYTES + bodyBytes
        : fragments.reduce((sum, part) => sum + GRPC_PREFIX_BYTES + part.bodyBytes, 0);
    if (this.bufferedBytes > 0 && this.bufferedBytes + frameBytes > this.limits.maxBufferedBytesPerStream) {
      this.forget(watcher);
      const reason =
        `tessera: watch stream buffer full (limit ${this.limits.maxBufferedBytesPerStream} bytes, client reading too slowly); ` +
        `watcher canceled, re-watch from revision ${events[0].kv.modRevision}`;
      this.sendResponse(this.backend.currentRevision(), { watchId: watcher.id, canceled: true, cancelReason: reason });
      return false;
    }
    if (fragments === null) {
      this.batch.appendEvents(header, watcher.id, false, events, 0, events.length, bodyBytes);
    } else {
      for (const part of fragments) {
        this.batch.appendEvents(header, watcher.id, part.fragment, events, part.start, part.end, part.bodyBytes);
      }
    }
    this.queued(frameBytes);
    watcher.progressDue = false;
    if (!this.congested) return true;
    this.paused.add(watcher);
    return false;
  }

  /**
   * etcd's sendFragments for a `fragment` watcher whose response reaches maxResponseBytes: fill
   * each fragment until the next event would reach the limit; a fragment holds at least one event.
   */
  private fragments(header: Buffer, watchId: number, events: readonly WatchEvent[]): Fragment[] {
    const maxBytes = this.limits.maxResponseBytes;
    const wholeBytes = eventResponseBaseBytes(header, watchId, false);
    const fragmentBytes = eventResponseBaseBytes(header, watchId, true);
    const parts: Fragment[] = [];
    let start = 0;
    let bytes = fragmentBytes;
    for (let i = 0; i < events.length; i++) {
      const size = eventField(events[i]).length;
      if (i > start && bytes + size >= maxBytes) {
        parts.push({ start, end: i, bodyBytes: bytes, fragment: true });
        start = i;
        bytes = fragmentBytes;
      }
      bytes += size;
    }
    parts.push({ start, end: events.length, bodyBytes: bytes - fragmentBytes + wholeBytes, fragment: false });
    assert(parts.length >= 2, 'a fragmented response has several parts');
    return parts;
  }

  /** Resumes paused watchers in pause order until the client is behind again. */
  private resumePaused(): void {
    for (const watcher of this.paused) {
      if (this.congested || this.closed) return;
      this.paused.delete(watcher);
      const handle = watcher.handle;
      assert(handle !== null, 'a paused watcher has a handle');
      try {
        handle.resume();
      } catch (error) {
        this.watchers.delete(watcher.id);
        this.sendCancel(watcher.id, error);
      }
    }
    if (this.progressPending && this.paused.size === 0 && !this.closed) {
      this.progressPending = false;
      this.sendStreamProgress();
    }
  }

  private onDrain(): void {
    this.congested = false;
    this.resumePaused();
  }

  /** A watcher the store refused or dropped: compaction as etcd reports it, anything else with its reason. */
  private sendCancel(watchId: number, error: unknown): void {
    if (error instanceof WatchCompactedError) {
      // etcd's compacted response: header revision 0, compact_revision set, and canceled exactly
      // when compact_revision is not 0 (-1 before any compaction; 0 after compact(0), when etcd
      // sends an empty, uncanceled response). Tessera adds the reason, which clientv3 ignores (it
      // checks compact_revision first) and other clients can show.
      const canceled = error.compactRevision !== 0;
      return this.sendResponse(0, {
        watchId,
        canceled,
        compactRevision: error.compactRevision,
        cancelReason: canceled ? error.message : '',
      });
    }
    const reason = error instanceof EtcdError ? error.message : INTERNAL_ERROR_MESSAGE;
    if (!(error instanceof EtcdError)) this.logger.error({ err: error, watchId }, 'watch failed');
    this.sendResponse(this.backend.currentRevision(), { watchId, canceled: true, cancelReason: reason });
  }

  /**
   * etcd 3.4 answers a progress_request at once with the store's revision and watch_id -1. Tessera
   * waits until every watcher of the stream is synced (as etcd 3.5 does), so the revision never
   * claims events a paused watcher has not been sent yet.
   */
  private requestProgress(): void {
    if (this.paused.size > 0) {
      this.progressPending = true;
      return;
    }
    this.sendStreamProgress();
  }

  private sendStreamProgress(): void {
    this.sendResponse(this.backend.currentRevision(), { watchId: INVALID_WATCH_ID });
  }

  /** etcd's progress ticker: a synced progress_notify watcher with no events since the last tick gets an empty response. */
  private onProgressTick(): void {
    if (this.closed) return;
    for (const watcher of this.watchers.values()) {
      if (!watcher.progressNotify) continue;
      if (watcher.progressDue && watcher.handle?.state === 'synced') {
        this.sendResponse(this.backend.currentRevision(), { watchId: watcher.id });
      }
      watcher.progressDue = true;
    }
  }

  /** A response without events (created, canceled, compacted, progress), through the stream's batch. */
  private sendResponse(revision: number, fields: Partial<WireWatchResponse> & { watchId: number }): void {
    if (this.closed) return;
    const frame = encodeWatchResponseFrame({
      header: encodeHeader(revision, this.headerInfo()),
      watchId: fields.watchId,
      created: fields.created ?? false,
      canceled: fields.canceled ?? false,
      compactRevision: fields.compactRevision ?? 0,
      cancelReason: fields.cancelReason ?? '',
      fragment: false,
      events: [],
    });
    this.batch.appendFrame(frame);
    this.queued(frame.length);
  }

  /** The node's header fields, read once per turn (the flush at the end of the turn forgets them). */
  private headerInfo(): HeaderInfo {
    if (this.turnHeaderInfo === null) {
      this.turnHeaderInfo = this.options.headerInfo();
      this.scheduleFlush();
    }
    return this.turnHeaderInfo;
  }

  /** Accounts `bytes` just appended to the batch; writes the batch now past STREAM_FLUSH_BYTES, else at the end of the turn. */
  private queued(bytes: number): void {
    this.bufferedBytes += bytes;
    if (this.batch.bytes >= STREAM_FLUSH_BYTES) this.flush();
    else this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(this.flushLater);
  }

  // Made once: a closure created in scheduleFlush would make V8 allocate a context per call (per watcher).
  private readonly flushLater = (): void => {
    this.flushScheduled = false;
    this.flush();
  };

  /** Writes the batch: one stream write on the lean server, one message per write on grpc-js. */
  private flush(): void {
    this.turnHeaderInfo = null;
    const frames = this.batch.take();
    if (frames === null || this.closed) return;
    const writer = this.framesWriter;
    let accepted: boolean;
    if (writer !== null) {
      const bytes = frames.length;
      accepted = writer.writeFrames(
        frames,
        () => {
          this.bufferedBytes -= bytes;
        },
        () => this.batch.giveBack(frames),
      );
    } else {
      accepted = true;
      forEachMessage(frames, (body, bytes) => {
        accepted = this.call.write(new EncodedMessage(body), () => {
          this.bufferedBytes -= bytes;
        });
      });
    }
    if (!accepted) this.congested = true;
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.batch.take();
    for (const watcher of this.watchers.values()) watcher.handle?.cancel();
    this.watchers.clear();
    this.paused.clear();
    this.unregister();
  }
}

function present<T>(value: T | undefined | null): T {
  assert(value !== undefined && value !== null, 'the oneof names a member that is not set');
  return value;
}
