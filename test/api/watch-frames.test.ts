// Watch responses spliced from once-encoded event bytes (src/api/watch-frames.ts) against the
// reference encoders: byte for byte against fast-codec's WatchResponse encoder, and decoded with
// protobufjs to exactly what protobufjs's own encoding of the same response decodes to. Then the
// watch service over a fake call: one write per stream per turn, the same bytes for grpc-js.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { pino } from 'pino';
import { encodeHeader } from '../../src/api/codec.ts';
import { encodeWatchResponseFrame, GRPC_PREFIX_BYTES } from '../../src/api/fast-codec.ts';
import { EncodedMessage, frameMessage } from '../../src/http2/index.ts';
import { OpenStreams } from '../../src/api/handlers.ts';
import { serverServiceDefinition } from '../../src/api/protos.ts';
import {
  eventField,
  eventResponseBaseBytes,
  forEachMessage,
  FrameBatch,
  headerField,
  MAX_CACHED_EVENT_BYTES,
} from '../../src/api/watch-frames.ts';
import { DEFAULT_WATCH_LIMITS, toWireEvent, watchServiceHandlers } from '../../src/api/watch-service.ts';
import type { WireWatchRequest, WireWatchResponse } from '../../src/api/wire.ts';
import { MvccStore } from '../../src/mvcc/index.ts';
import type { KeyValue, WatchEvent } from '../../src/mvcc/index.ts';
import { TEST_HEADER } from './backends.ts';
import { EtcdClient } from './client.ts';
import { StoreWatch } from './fakes.ts';

function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

const client = new EtcdClient('127.0.0.1:1');
const decodeWatchResponse = client.service('Watch').watch.responseDeserialize as (bytes: Buffer) => unknown;
const protobufjsEncode = serverServiceDefinition('etcdserverpb.Watch').Watch.responseSerialize as (m: object) => Buffer;

function bytes(random: () => number, length: number): Buffer {
  return Buffer.from(Array.from({ length }, () => Math.floor(random() * 256)));
}

function kv(random: () => number, valueBytes = Math.floor(random() * 300)): KeyValue {
  const rev = 1 + Math.floor(random() * 2 ** 40);
  return {
    key: bytes(random, 1 + Math.floor(random() * 20)),
    createRevision: rev,
    modRevision: rev + Math.floor(random() * 1000),
    version: 1 + Math.floor(random() * 5),
    value: bytes(random, valueBytes),
    lease: random() < 0.5 ? 0 : 2 ** 53 - 1,
  };
}

/** A tombstone as mvcc keeps it: key and mod_revision only. */
const tombstone = (key: Uint8Array, modRevision: number): KeyValue => ({
  key,
  createRevision: 0,
  modRevision,
  version: 0,
  value: new Uint8Array(0),
  lease: 0,
});

function event(random: () => number, valueBytes?: number): WatchEvent {
  const prev = kv(random, valueBytes);
  switch (Math.floor(random() * 4)) {
    case 0:
      return { type: 'put', kv: kv(random, valueBytes), prevKv: null };
    case 1:
      return { type: 'put', kv: kv(random, valueBytes), prevKv: prev };
    case 2:
      return { type: 'delete', kv: tombstone(prev.key, prev.modRevision + 1), prevKv: null };
    default:
      return { type: 'delete', kv: tombstone(prev.key, prev.modRevision + 1), prevKv: prev };
  }
}

interface Case {
  revision: number;
  raftTerm: number;
  watchId: number;
  fragment: boolean;
  events: WatchEvent[];
}

function reference(c: Case): WireWatchResponse {
  return {
    header: encodeHeader(c.revision, { ...TEST_HEADER, raftTerm: c.raftTerm }),
    watchId: c.watchId,
    created: false,
    canceled: false,
    compactRevision: 0,
    cancelReason: '',
    fragment: c.fragment,
    events: c.events.map(toWireEvent),
  };
}

function append(batch: FrameBatch, c: Case): void {
  const header = headerField(c.revision, { ...TEST_HEADER, raftTerm: c.raftTerm });
  let bodyBytes = eventResponseBaseBytes(header, c.watchId, c.fragment);
  for (const e of c.events) bodyBytes += eventField(e).length;
  batch.appendEvents(header, c.watchId, c.fragment, c.events, 0, c.events.length, bodyBytes);
}

/** The spliced message matches both reference encoders. */
function assertSameResponse(frame: Buffer, c: Case): void {
  const want = reference(c);
  assert.deepEqual(frame, encodeWatchResponseFrame(want), 'byte for byte the fast encoder');
  assert.equal(frame.readUInt32BE(1), frame.length - GRPC_PREFIX_BYTES);
  const spliced = decodeWatchResponse(frame.subarray(GRPC_PREFIX_BYTES)) as { watchId: string; events: { type: string; prevKv: unknown }[] };
  const viaProtobufjs = decodeWatchResponse(protobufjsEncode(want));
  assert.deepEqual(spliced, viaProtobufjs);
  assert.equal(spliced.watchId, String(c.watchId));
  assert.deepEqual(
    spliced.events.map((e) => `${e.type} ${e.prevKv === null ? 'bare' : 'prev'}`),
    c.events.map((e) => `${e.type.toUpperCase()} ${e.prevKv === null ? 'bare' : 'prev'}`),
  );
}

const WATCH_IDS = [0, 1, 7, 127, 128, 300, 16_384, 2 ** 40, 2 ** 53 - 1];

test('a spliced response is the reference encoding: puts, deletes, with and without prev_kv, fragment flag', () => {
  const random = lcg(11);
  for (let i = 0; i < 300; i++) {
    const c: Case = {
      revision: 1 + Math.floor(random() * 2 ** 45),
      raftTerm: Math.floor(random() * 300),
      watchId: WATCH_IDS[i % WATCH_IDS.length],
      fragment: random() < 0.3,
      events: Array.from({ length: 1 + Math.floor(random() * 6) }, () => event(random)),
    };
    const batch = new FrameBatch();
    append(batch, c);
    const frame = batch.take();
    assert.ok(frame !== null);
    assertSameResponse(frame, c);
    assert.equal(batch.take(), null, 'take empties the batch');
  }
});

test('large values (multi-byte lengths) and many events in one response', () => {
  const random = lcg(12);
  const cases: Case[] = [
    { revision: 9, raftTerm: 2, watchId: 3, fragment: false, events: [event(random, 300 * 1024), event(random, 70_000)] },
    { revision: 10, raftTerm: 2, watchId: 4, fragment: true, events: [event(random, 2 * 1024 * 1024)] },
    { revision: 11, raftTerm: 2, watchId: 5, fragment: false, events: Array.from({ length: 2_000 }, () => event(random, 40)) },
  ];
  for (const c of cases) {
    const batch = new FrameBatch();
    append(batch, c);
    const frame = batch.take();
    assert.ok(frame !== null);
    assertSameResponse(frame, c);
  }
});

test('one batch holds consecutive whole messages: responses of several watchers, events shared', () => {
  const random = lcg(13);
  const shared = Array.from({ length: 5 }, () => event(random));
  const cases: Case[] = [];
  const batch = new FrameBatch();
  for (let i = 0; i < 400; i++) {
    // A revision's fan-out: every watcher gets a slice of the same event objects.
    const start = Math.floor(random() * shared.length);
    const c: Case = { revision: 77, raftTerm: 5, watchId: i, fragment: false, events: shared.slice(start) };
    cases.push(c);
    append(batch, c);
  }
  const frames = batch.take();
  assert.ok(frames !== null);
  assert.deepEqual(frames, Buffer.concat(cases.map((c) => encodeWatchResponseFrame(reference(c)))));
  const seen: Buffer[] = [];
  forEachMessage(frames, (body, frameBytes) => {
    assert.equal(frameBytes, body.length + GRPC_PREFIX_BYTES);
    seen.push(frameMessage(body));
  });
  assert.equal(seen.length, cases.length);
  for (let i = 0; i < cases.length; i++) assertSameResponse(seen[i], cases[i]);
});

test('an event is encoded once per turn: shared objects and replays of the same kv reuse its bytes', async () => {
  const random = lcg(14);
  const prev = kv(random);
  const current = kv(random);
  const withPrev: WatchEvent = { type: 'put', kv: current, prevKv: prev };
  const bare: WatchEvent = { type: 'put', kv: current, prevKv: null };
  const first = eventField(withPrev);
  assert.equal(eventField(withPrev), first, 'the same object: the same bytes, not a new encoding');
  assert.equal(eventField({ ...withPrev }), first, 'a replay builds a new event around the same kv');
  const bareBytes = eventField(bare);
  assert.notDeepEqual(bareBytes, first, 'without prev_kv it is another encoding');
  assert.equal(eventField({ ...bare }), bareBytes);
  assert.equal(eventField(withPrev), first, 'both variants stay cached');
  // A different prev_kv around the same kv is never served another event's bytes.
  const otherPrev: WatchEvent = { type: 'put', kv: current, prevKv: kv(random) };
  assert.notDeepEqual(eventField(otherPrev), first);
  const batch = new FrameBatch();
  const c: Case = { revision: 3, raftTerm: 1, watchId: 9, fragment: false, events: [withPrev, otherPrev, bare, withPrev] };
  append(batch, c);
  assertSameResponse(batch.take() ?? Buffer.alloc(0), c);
  // The cache lives for the turn only.
  await new Promise((resolve) => setImmediate(resolve));
  assert.notEqual(eventField({ ...withPrev }), first, 'a new turn encodes again');
  assert.deepEqual(eventField({ ...withPrev }), first);
  assert.ok(MAX_CACHED_EVENT_BYTES >= 1024 * 1024, 'the cache is bounded, and holds a large revision');
});

test('the header is cached per revision and term', () => {
  const a = headerField(5, TEST_HEADER);
  assert.equal(headerField(5, { ...TEST_HEADER }), a);
  const b = headerField(5, { ...TEST_HEADER, raftTerm: TEST_HEADER.raftTerm + 1 });
  assert.notDeepEqual(b, a);
  assert.notDeepEqual(headerField(6, TEST_HEADER), a);
});

/** A call of the lean server (writeFrames) or of grpc-js (write of one message object), recording writes. */
class FakeCall extends EventEmitter {
  readonly writes: Buffer[] = [];
  destroyed = false;
  writableEnded = false;

  constructor(readonly lean: boolean) {
    super();
    if (lean) {
      Object.assign(this, {
        writeFrames: (frames: Buffer, callback: () => void) => {
          this.writes.push(Buffer.from(frames));
          setImmediate(callback);
          return true;
        },
      });
    }
  }

  write(message: unknown, callback: () => void): boolean {
    assert.ok(!this.lean, 'the lean call gets whole batches through writeFrames');
    assert.ok(message instanceof EncodedMessage, 'grpc-js gets the pre-encoded body');
    this.writes.push(Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), message.bytes]));
    this.writes.at(-1)?.writeUInt32BE(message.bytes.length, 1);
    setImmediate(callback);
    return true;
  }

  request(request: WireWatchRequest): void {
    this.emit('data', { message: request, bytes: 0 });
  }
}

interface Decoded {
  watchId: string;
  created: boolean;
  header: { revision: string };
  events: { type: string; kv: { value: Buffer }; prevKv: { value: Buffer } | null }[];
}

function messages(writes: readonly Buffer[]): Decoded[] {
  const out: Decoded[] = [];
  for (const frames of writes) forEachMessage(frames, (body) => out.push(decodeWatchResponse(body) as Decoded));
  return out;
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

for (const lean of [true, false]) {
  test(`the watch service writes a stream's responses of one turn together (${lean ? 'lean' : 'grpc-js'})`, async () => {
    const store = new MvccStore();
    const handlers = watchServiceHandlers({
      backend: new StoreWatch(store),
      headerInfo: () => TEST_HEADER,
      logger: pino({ level: 'silent' }),
      limits: { ...DEFAULT_WATCH_LIMITS, progressNotifyIntervalMs: 0 },
      streams: new OpenStreams(),
    });
    const call = new FakeCall(lean);
    (handlers.Watch as unknown as (call: FakeCall) => void)(call);
    const watchers = 50;
    for (let i = 0; i < watchers; i++) {
      call.request({
        requestUnion: 'createRequest',
        createRequest: {
          key: Buffer.from('k/'),
          rangeEnd: Buffer.from('k0'),
          startRevision: 0,
          progressNotify: false,
          filters: i % 5 === 0 ? [0] : [], // NOPUT
          prevKv: i % 2 === 0,
          watchId: 0,
          fragment: false,
        },
      });
    }
    await turn();
    assert.equal(call.writes.length, lean ? 1 : watchers, 'one write for all the creates of the turn');
    assert.equal(messages(call.writes).filter((m) => m.created === true).length, watchers);

    call.writes.length = 0;
    const revisions: Record<string, number> = {};
    const put = (value: string) => {
      store.put({ key: Buffer.from('k/a'), value: Buffer.from(value), lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false });
      revisions[value] = store.currentRevision;
    };
    put('1');
    put('2');
    await turn();
    const puts = watchers - watchers / 5;
    assert.equal(call.writes.length, lean ? 1 : 2 * puts, 'two revisions to 40 watchers in one write');
    const responses = messages(call.writes);
    assert.equal(responses.length, 2 * puts);
    for (const response of responses) {
      const id = Number(response.watchId);
      assert.notEqual(id % 5, 0, 'NOPUT watchers get no put');
      assert.equal(response.events.length, 1);
      const [e] = response.events;
      const value = Buffer.from(e.kv.value).toString();
      assert.equal(e.type, 'PUT');
      assert.equal(response.header.revision, String(revisions[value]));
      if (value === '2' && id % 2 === 0) assert.equal(Buffer.from(e.prevKv?.value ?? '').toString(), '1');
      else assert.equal(e.prevKv, null);
    }
    call.emit('close');
  });
}

test('a batch reuses the buffer its writer gave back, and only that one', () => {
  const frame = frameMessage(Buffer.alloc(3000, 7));
  const batch = new FrameBatch();
  batch.appendFrame(frame);
  const first = batch.take()!;
  batch.appendFrame(frame);
  const second = batch.take()!;
  assert.notEqual(second.buffer, first.buffer, 'not given back: a new buffer');
  batch.giveBack(first); // not the last take: ignored
  batch.appendFrame(frame);
  const third = batch.take()!;
  assert.notEqual(third.buffer, first.buffer);
  batch.giveBack(third);
  batch.appendFrame(frame);
  const fourth = batch.take()!;
  assert.equal(fourth.buffer, third.buffer, 'given back: the next turn writes into it');
  assert.ok(fourth.equals(frame));
});
