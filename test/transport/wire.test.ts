// The frame format and message codecs without sockets: framing across chunk boundaries, length
// checks, binary batch round trips of every message type, msgpack shapes, and hostile input.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Packr } from 'msgpackr';
import { decodeBatch, encodeBatchFrame } from '../../src/transport/batch.ts';
import { readHello, readMessage, wireSnapshotHead } from '../../src/transport/codec.ts';
import {
  FrameDecoder,
  FrameKind,
  PROTOCOL_VERSION,
  WireError,
  decodeBody,
  encodeFrame,
  wireCodec,
} from '../../src/transport/wire.ts';
import { everyMessageType, plain } from './helpers.ts';

function collect(decoder: FrameDecoder, chunks: Buffer[]): { kind: number; body: Buffer }[] {
  const frames: { kind: number; body: Buffer }[] = [];
  for (const chunk of chunks)
    decoder.push(chunk, (kind, body) => (frames.push({ kind, body: Buffer.from(body) }), true));
  return frames;
}

describe('frames', () => {
  it('parses frames split at every byte boundary and frames packed together', () => {
    const a = encodeBatchFrame([{ groupId: 1, msg: { type: 'timeoutNow', from: 1, to: 2, term: 3 } }]);
    const b = encodeFrame(FrameKind.hello, { version: 1, clusterId: 'c', nodeId: 1, stream: 'message' });
    const stream = Buffer.concat([a, b, a]);
    for (let cut = 1; cut < stream.length; cut++) {
      const frames = collect(new FrameDecoder(1024), [stream.subarray(0, cut), stream.subarray(cut)]);
      assert.deepEqual(
        frames.map((f) => f.kind),
        [FrameKind.batch, FrameKind.hello, FrameKind.batch],
        `cut at ${cut}`,
      );
      assert.deepEqual(frames[1].body, b.subarray(5));
    }
    const byteByByte = collect(
      new FrameDecoder(1024),
      [...stream].map((x) => Buffer.from([x])),
    );
    assert.equal(byteByByte.length, 3);
  });

  it('rejects an oversize length header before its body arrives', () => {
    const decoder = new FrameDecoder(1000);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1001);
    assert.throws(() => collect(decoder, [header]), WireError);
    // Also when the bad header follows a good frame in the same chunk, or arrives in pieces.
    const good = encodeFrame(FrameKind.hello, {});
    assert.throws(
      () =>
        collect(new FrameDecoder(1000), [Buffer.concat([good, header.subarray(0, 2)]), header.subarray(2)]),
      /exceeds maxFrameBytes/,
    );
  });

  it('rejects a zero-length frame', () => {
    assert.throws(() => collect(new FrameDecoder(1000), [Buffer.alloc(4)]), /empty frame/);
  });

  it('undecodable bodies become WireError', () => {
    assert.throws(() => decodeBody(Buffer.from([0x92, 0x01])), WireError); // truncated array
    assert.throws(() => decodeBody(Buffer.from([0xa5, 0x41])), WireError); // truncated string
    assert.throws(() => decodeBody(Buffer.from([0x01, 0x02])), WireError); // trailing bytes
  });
});

describe('batch frames', () => {
  it('round-trip every message type, byte fields as views into the frame', () => {
    const messages = everyMessageType(1, 2);
    const frame = encodeBatchFrame(messages.map((msg, i) => ({ groupId: i * 1000, msg })));
    assert.equal(frame.readUInt32BE(0), frame.length - 4);
    assert.equal(frame[4], FrameKind.batch);
    const items = decodeBatch(frame.subarray(5));
    assert.equal(items.length, messages.length);
    for (const [i, item] of items.entries()) {
      assert.equal(item.groupId, i * 1000);
      assert.deepEqual(plain(item.msg), plain(messages[i]), messages[i].type);
    }
    const app = items[0].msg;
    assert.ok(app.type === 'app' && app.entries[2].data.length === 5000);
    assert.equal(app.type === 'app' && app.entries[2].data.buffer, frame.buffer, 'no copy of entry data');
  });

  it('carry numbers up to 2^53 - 1 exactly, and only the fields of the type', () => {
    const big = Number.MAX_SAFE_INTEGER;
    const msg = { type: 'appResp', from: big, to: 2 ** 32, term: 2 ** 31, index: big - 1, reject: false, rejectHint: 0, logTerm: 127, extra: 'x' } as never;
    const [item] = decodeBatch(encodeBatchFrame([{ groupId: big, msg }]).subarray(5));
    assert.equal(item.groupId, big);
    assert.deepEqual(item.msg, { type: 'appResp', from: big, to: 2 ** 32, term: 2 ** 31, index: big - 1, reject: false, rejectHint: 0, logTerm: 127 });
  });

  it('an empty batch is an empty body', () => {
    assert.deepEqual(decodeBatch(encodeBatchFrame([]).subarray(5)), []);
  });

  it('refuse malformed bodies with WireError, whatever the bytes', () => {
    const body = encodeBatchFrame(everyMessageType(1, 2).map((msg) => ({ groupId: 1, msg }))).subarray(5);
    // Every truncation either ends between two messages or is refused.
    let cleanCuts = 0;
    for (let cut = 1; cut < body.length; cut += cut < 200 ? 1 : 97) {
      try {
        decodeBatch(body.subarray(0, cut));
        cleanCuts += 1;
      } catch (error) {
        assert.ok(error instanceof WireError, `cut at ${cut}: ${String(error)}`);
      }
    }
    assert.ok(cleanCuts < 14, `${cleanCuts} clean cuts`);
    const hostile: [string, number[], RegExp][] = [
      ['unknown type code', [1, 99, 1, 2, 3], /unknown message type code 99/],
      ['type code 0', [1, 0, 1, 2, 3], /unknown message type code 0/],
      ['boolean not 0 or 1', [1, 5, 1, 2, 3, 2], /boolean byte 2/],
      ['varint of 9 bytes', [1, 10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], /varint longer/],
      ['beyond 2^53', [1, 10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 2, 3], /safe integers/],
      ['entry count beyond the bytes', [1, 11, 1, 2, 0, 0xff, 0xff, 0x03], /entries in/],
      ['entry type code 2', [1, 11, 1, 2, 0, 1, 1, 1, 2, 0], /entry type code 2/],
      ['context longer than the frame', [1, 8, 1, 2, 3, 9, 1], /ends inside a byte run/],
      ['id count beyond the bytes', [1, 9, 1, 2, 3, 1, 1, 0xff, 0x01], /ids in/],
    ];
    for (const [what, bytes, message] of hostile) {
      assert.throws(() => decodeBatch(Buffer.from(bytes)), (error) => error instanceof WireError && message.test(error.message), what);
    }
    // Random bytes: WireError or a batch, never another exception (seeded, so a failure replays).
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 2000; i++) {
      const junk = Buffer.from(Array.from({ length: 1 + Math.floor(random() * 40) }, () => Math.floor(random() * 256)));
      try {
        decodeBatch(junk);
      } catch (error) {
        assert.ok(error instanceof WireError, `junk ${junk.toString('hex')}: ${String(error)}`);
      }
    }
  });
});

describe('msgpack frames', () => {
  it('use the shared record structures (smaller than plain maps), which never grow', () => {
    const snap = everyMessageType(1, 2).find((m) => m.type === 'snap');
    assert.ok(snap?.type === 'snap');
    const heads = [wireSnapshotHead(1, snap), wireSnapshotHead(2, snap)];
    const shared = wireCodec.pack(heads).length;
    const inline = new Packr({ useRecords: true }).pack(heads).length;
    assert.ok(shared < inline, `shared ${shared} < inline ${inline}`);
    const structures = (wireCodec as unknown as { structures: unknown[] }).structures;
    const before = structures.length;
    wireCodec.pack({ some: 1, newShape: 2 });
    wireCodec.unpack(new Packr({ useRecords: true }).pack([{ hostile: 1 }, { hostile: 2 }]));
    assert.equal(structures.length, before, 'shared structures never grow');
    assert.deepEqual(plain(wireCodec.unpack(wireCodec.pack(heads[0]))), plain(heads[0]));
  });

  it('rejects wrong shapes', () => {
    const good = { type: 'heartbeat', from: 1, to: 2, term: 3, commit: 4, context: new Uint8Array() };
    assert.doesNotThrow(() => readMessage(good));
    const bad: [string, unknown][] = [
      ['not an object', 42],
      ['unknown type', { ...good, type: 'nope' }],
      ['inherited type name', { ...good, type: 'toString' }],
      ['string term', { ...good, term: '3' }],
      ['negative from', { ...good, from: -1 }],
      ['fractional to', { ...good, to: 1.5 }],
      ['unsafe term', { ...good, term: 2 ** 53 }],
      ['missing commit', { ...good, commit: undefined }],
      ['context not bytes', { ...good, context: 'abc' }],
      [
        'entries not array',
        { type: 'app', from: 1, to: 2, term: 3, logTerm: 1, index: 1, commit: 1, entries: {} },
      ],
      [
        'entry without data',
        { type: 'prop', from: 1, to: 2, term: 0, entries: [{ term: 1, index: 1, type: 'normal' }] },
      ],
      [
        'bad entry type',
        {
          type: 'prop',
          from: 1,
          to: 2,
          term: 0,
          entries: [{ term: 1, index: 1, type: 'x', data: new Uint8Array() }],
        },
      ],
      [
        'snapshot without confState',
        {
          type: 'snap',
          from: 1,
          to: 2,
          term: 1,
          snapshot: { metadata: { index: 1, term: 1 }, data: new Uint8Array() },
        },
      ],
    ];
    for (const [what, value] of bad) assert.throws(() => readMessage(value), WireError, what);
  });

  it('checks the hello', () => {
    const hello = { version: PROTOCOL_VERSION, clusterId: 'c', nodeId: 3, stream: 'snapshot' };
    assert.deepEqual(readHello(hello), hello);
    assert.throws(() => readHello({ ...hello, version: PROTOCOL_VERSION + 1 }), /protocol version/);
    assert.throws(() => readHello({ ...hello, nodeId: 0 }), /nodeId/);
    assert.throws(() => readHello({ ...hello, stream: 'other' }), /stream/);
  });
});
