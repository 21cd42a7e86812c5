// The frame format and message codec without sockets: framing across chunk boundaries, length
// checks, msgpack round trips of every message type, and shape validation of hostile input.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Packr } from 'msgpackr';
import { readBatch, readHello, readMessage, wireMessage } from '../../src/transport/codec.ts';
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
    const a = encodeFrame(FrameKind.batch, [
      { groupId: 1, msg: { type: 'timeoutNow', from: 1, to: 2, term: 3 } },
    ]);
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

describe('message codec', () => {
  it('round-trips every message type with binary fields as Uint8Array', () => {
    const messages = everyMessageType(1, 2);
    const frame = encodeFrame(
      FrameKind.batch,
      messages.map((msg, i) => ({ groupId: i, msg: wireMessage(msg) })),
    );
    const items = readBatch(decodeBody(frame.subarray(5)));
    assert.equal(items.length, messages.length);
    for (const [i, item] of items.entries()) {
      assert.equal(item.groupId, i);
      assert.deepEqual(plain(item.msg), plain(messages[i]), messages[i].type);
    }
    const app = items[0].msg;
    assert.ok(
      app.type === 'app' && app.entries[2].data instanceof Uint8Array && app.entries[2].data.length === 5000,
    );
  });

  it('canonical messages use the shared record structures (smaller than plain maps)', () => {
    const messages = everyMessageType(1, 2).map(wireMessage);
    const shared = wireCodec.pack(messages).length;
    const inline = new Packr({ useRecords: true }).pack(messages).length;
    assert.ok(shared < inline, `shared ${shared} < inline ${inline}`);
    const structures = (wireCodec as unknown as { structures: unknown[] }).structures;
    const before = structures.length;
    wireCodec.pack({ some: 1, newShape: 2 });
    wireCodec.unpack(new Packr({ useRecords: true }).pack([{ hostile: 1 }, { hostile: 2 }]));
    assert.equal(structures.length, before, 'shared structures never grow');
    assert.deepEqual(plain(wireCodec.unpack(wireCodec.pack(messages[4]))), plain(messages[4]));
  });

  it('wireMessage strips fields that are not part of the message', () => {
    const msg = { type: 'voteResp', from: 1, to: 2, term: 3, reject: false, extra: 'x' } as never;
    assert.deepEqual(Object.keys(wireMessage(msg)), ['type', 'from', 'to', 'term', 'reject']);
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
    assert.throws(() => readBatch({ groupId: 1 }), WireError);
    assert.throws(() => readBatch([{ groupId: -1, msg: good }]), WireError);
  });

  it('checks the hello', () => {
    const hello = { version: PROTOCOL_VERSION, clusterId: 'c', nodeId: 3, stream: 'snapshot' };
    assert.deepEqual(readHello(hello), hello);
    assert.throws(() => readHello({ ...hello, version: PROTOCOL_VERSION + 1 }), /protocol version/);
    assert.throws(() => readHello({ ...hello, nodeId: 0 }), /nodeId/);
    assert.throws(() => readHello({ ...hello, stream: 'other' }), /stream/);
  });
});
