// The multi-Raft loop over in-memory storage: the real ReplicaHost and Replica code, driven by
// hand, for cases that need exact control (a restart that replays the log under new requests).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { MemoryStorage } from '../../src/raft/index.ts';
import type { Message } from '../../src/raft/index.ts';
import { encodeBatch } from '../../src/server/commands.ts';
import { bootstrapEntries } from '../../src/server/replica.ts';
import type { ReplicaHost } from '../../src/server/host.ts';
import { bootstrappedStorage, memberOneHost, settle, singleNodeHost } from './single-node.ts';

const put = (key: string, value: string) => ({
  op: 'put' as const,
  req: { key: Buffer.from(key), value: Buffer.from(value), lease: 0, prevKv: false, ignoreValue: false, ignoreLease: false },
});

describe('replica host', () => {
  it('a restarted node never answers a new request with the result of a replayed one', async () => {
    const storage = bootstrappedStorage();

    const first = singleNodeHost(storage, 1);
    await settle(first);
    const replica = first.replicas.get(1)!;
    const old = replica.propose(put('a', 'old'));
    await settle(first);
    assert.equal(((await old) as { header: { revision: number } }).header.revision, 2);

    // Restart over the same (durable) storage: the log is replayed while a new request, whose
    // node-local command id is again 1, waits for its own entry.
    const second = singleNodeHost(storage, 2);
    const fresh = second.replicas.get(1)!.propose(put('b', 'new'));
    await settle(second);
    const response = (await fresh) as { header: { revision: number } };
    assert.equal(response.header.revision, 3, 'the new put must get its own revision, not the replayed one');
    const range = second.replicas.get(1)!.store.range({
      key: Buffer.from('b'), rangeEnd: new Uint8Array(0), limit: 0, revision: 0, sortOrder: 'none', sortTarget: 'key',
      serializable: true, keysOnly: false, countOnly: false, minModRevision: 0, maxModRevision: 0, minCreateRevision: 0, maxCreateRevision: 0,
    });
    assert.equal(Buffer.from(range.kvs[0].value).toString(), 'new');
  });

  it('builds a large snapshot over many turns while writes go on, and a restart from it loses nothing', async () => {
    const storage = bootstrappedStorage();
    const host = singleNodeHost(storage, 1, { snapshotCount: 3_000, snapshotCatchupEntries: 0 });
    await settle(host, 5);
    const replica = host.replicas.get(1)!;
    const value = (i: number, round: number) => `${round}:${i}:`.padEnd(600, String.fromCharCode(97 + ((i * 7 + round) % 26)));
    // 2,990 requests: ~1.8 MB of state, so the image takes several 256 KiB chunks.
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 2_990; i++) writes.push(replica.propose(put(`k/${String(i).padStart(5, '0')}`, value(i, 0))));
    await settle(host, 20);
    await Promise.all(writes);
    const bootSnapshot = storage.snapshot().metadata.index; // the founding membership's

    // A few more requests make one due. Keep writing (overwrites, new keys on both sides of the
    // walk) on every turn while it is built.
    let turnsBuilding = 0;
    let round = 1;
    const during: Promise<unknown>[] = [];
    for (let i = 0; i < 20; i++) during.push(replica.propose(put('k/00000', value(i, round))));
    for (; turnsBuilding < 200 && storage.snapshot().metadata.index === bootSnapshot; turnsBuilding++) {
      round += 1;
      during.push(replica.propose(put(`k/${String((round * 97) % 2_999).padStart(5, '0')}`, value(round, round))));
      during.push(replica.propose(put(`a/${round}`, 'before the walk')), replica.propose(put(`z/${round}`, 'after the walk')));
      host.tick();
      await host.turn();
    }
    await settle(host, 5);
    await Promise.all(during);
    const snapIndex = storage.snapshot().metadata.index;
    assert.ok(snapIndex > bootSnapshot, `a snapshot was stored (index ${snapIndex})`);
    assert.ok(turnsBuilding >= 5, `the snapshot took ${turnsBuilding} turns; expected it spread over several`);
    assert.ok(replica.applied > snapIndex, 'writes applied while it was built are after its index');
    assert.ok(storage.firstIndex() > 1, 'the log behind it was truncated');

    // A restart recovers from the snapshot plus the log after it: the same state, every key.
    const all = {
      key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]), limit: 0, revision: 0, sortOrder: 'none' as const, sortTarget: 'key' as const,
      serializable: true, keysOnly: false, countOnly: false, minModRevision: 0, maxModRevision: 0, minCreateRevision: 0, maxCreateRevision: 0,
    };
    const dump = (h: typeof host) => {
      const r = h.replicas.get(1)!.store.range(all);
      return { revision: r.header.revision, kvs: r.kvs.map((kv) => `${Buffer.from(kv.key)}=${Buffer.from(kv.value)}@${kv.modRevision}/${kv.version}`) };
    };
    const before = dump(host);
    assert.ok(before.kvs.length > 3_000);
    const restarted = singleNodeHost(storage, 2, { snapshotCount: 3_000, snapshotCatchupEntries: 0 });
    await settle(restarted, 10);
    assert.deepEqual(dump(restarted), before);
  });

  it('takes a snapshot after --snapshot-count requests only once the log since the last one is as large as it', async () => {
    const storage = bootstrappedStorage();
    const host = singleNodeHost(storage, 1, { snapshotCount: 10, snapshotCatchupEntries: 0, snapshotAmortizeFromBytes: 100_000 });
    await settle(host, 5);
    // Random values: the snapshot's zlib must not shrink them away.
    const write = (count: number, valueBytes: number, round: number) =>
      writeKeys(host, 'k', count, () => `${round}:${randomBytes(valueBytes).toString('base64')}`);
    const snapshot = () => storage.snapshot();
    // Ten large writes: due by count, and the log outweighs the tiny founding snapshot.
    const boot = snapshot().metadata.index;
    await write(10, 15_000, 1);
    const first = snapshot();
    assert.ok(first.metadata.index > boot, 'the first snapshot was taken');
    assert.ok(first.data.byteLength > 150_000, `it holds the state: ${first.data.byteLength} bytes`);
    // Thirty small writes: due by count, but their log is far smaller than the state it would rewrite.
    await write(30, 8, 2);
    assert.equal(snapshot().metadata.index, first.metadata.index, 'no snapshot for a log smaller than the last one');
    // Ten large writes more: now the log since the last snapshot outweighs it.
    await write(10, 15_000, 3);
    const second = snapshot();
    assert.ok(second.metadata.index > first.metadata.index, 'the next snapshot was taken');
    // A state below snapshotAmortizeFromBytes snapshots by count alone.
    const small = singleNodeHost(storage, 2, { snapshotCount: 10, snapshotCatchupEntries: 0, snapshotAmortizeFromBytes: 10_000_000 });
    await settle(small, 10);
    await writeKeys(small, 's', 30, () => 'tiny');
    assert.ok(snapshot().metadata.index > second.metadata.index, 'a snapshot by count alone');
  });

  it('measures a snapshot by the keys and values it encodes, not by its compressed image', async () => {
    const storage = bootstrappedStorage();
    const host = singleNodeHost(storage, 1, { snapshotCount: 10, snapshotCatchupEntries: 0, snapshotAmortizeFromBytes: 100_000 });
    await settle(host, 5);
    const replica = host.replicas.get(1)!;
    const write = (count: number, value: (i: number) => string) => writeKeys(host, 'k', count, value);
    const boot = storage.snapshot().metadata.index;
    // Ten writes of 15 kB that compress to almost nothing: 150 kB to encode, a tiny image.
    await write(10, (i) => `${i}`.padEnd(15_000, 'x'));
    const first = storage.snapshot();
    assert.ok(first.metadata.index > boot, 'the first snapshot was taken');
    assert.ok(first.data.byteLength < 20_000, `its image is small: ${first.data.byteLength} bytes`);
    assert.ok(replica.store.dataBytes > 150_000, `the state is not: ${replica.store.dataBytes} bytes`);
    // Thirty small writes are due by count, but far less log than the 150 kB a snapshot would encode.
    await write(30, (i) => `small ${i}`);
    assert.equal(storage.snapshot().metadata.index, first.metadata.index, 'no snapshot for a log smaller than the state it encodes');
  });

  it('a snapshot build finishes even when a compaction applies on every turn (restarts step faster)', async () => {
    const storage = bootstrappedStorage();
    const host = singleNodeHost(storage, 1, { snapshotCount: 3_000, snapshotCatchupEntries: 0 });
    await settle(host, 5);
    const replica = host.replicas.get(1)!;
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 2_990; i++) writes.push(replica.propose(put(`k/${String(i).padStart(5, '0')}`, `v${i}`.padEnd(600, 'x'))));
    await settle(host, 20);
    await Promise.all(writes);
    const bootSnapshot = storage.snapshot().metadata.index;
    for (let i = 0; i < 20; i++) void replica.propose(put('k/00000', `due ${i}`));
    let turns = 0;
    for (; turns < 300 && storage.snapshot().metadata.index === bootSnapshot; turns++) {
      // A write and a compaction to the latest revision on every turn: each invalidates the build in progress.
      void replica.propose(put('k/00001', `turn ${turns}`));
      void replica.propose({ op: 'compact', req: { revision: replica.store.currentRevision, physical: false } }).catch(() => undefined);
      host.tick();
      await host.turn();
    }
    assert.ok(storage.snapshot().metadata.index > bootSnapshot, `no snapshot after ${turns} turns of compactions`);
    assert.ok(replica.store.compactedRevision > 2_990, 'compactions did apply meanwhile');
  });
});

/**
 * Puts `count` keys `<prefix>/<i>` through the host's replica and waits for them to apply and for
 * the turns after, in which a snapshot they made due is built and stored.
 */
async function writeKeys(host: ReplicaHost, prefix: string, count: number, value: (i: number) => string): Promise<void> {
  const replica = host.replicas.get(1)!;
  const writes = Array.from({ length: count }, (_, i) => replica.propose(put(`${prefix}/${i}`, value(i))));
  await settle(host, 15);
  await Promise.all(writes);
  await settle(host, 5);
}

/** Storage of member 1 of a bootstrapped three-member group, at term 1, nobody voted for. */
function threeMemberStorage(): MemoryStorage {
  const storage = new MemoryStorage();
  const members = [1, 2, 3].map((id) => ({ id, name: `n${id}`, peerUrls: [`http://127.0.0.1:${id}`], clientUrls: [] }));
  const entries = bootstrapEntries(members);
  storage.append(entries);
  storage.setHardState({ term: 1, vote: 0, commit: entries.length });
  return storage;
}

/** Member 1 of three, elected leader by hand; `events` records sends, flushes and WAL writes. */
async function electedLeader() {
  const storage = threeMemberStorage();
  const events: string[] = [];
  const outbox: Message[] = [];
  const host = memberOneHost(storage, 1, {
    commit: async () => void events.push('commit'),
    transport: {
      send: (_group, msg) => {
        outbox.push(msg);
        events.push(`send ${msg.type}${msg.type === 'app' && msg.entries.length > 0 ? ' with entries' : ''}`);
      },
      flush: () => void events.push('flush'),
    },
  });
  const replica = host.replicas.get(1)!;
  /** Members 2 and 3 answer what member 1 sent: grant its (pre-)votes, acknowledge its appends. */
  const answer = () => {
    for (const msg of outbox.splice(0)) {
      if (msg.type === 'preVote' || msg.type === 'vote') {
        host.receive(1, { type: msg.type === 'preVote' ? 'preVoteResp' : 'voteResp', from: msg.to, to: 1, term: msg.term, reject: false });
      } else if (msg.type === 'app') {
        const last = msg.entries.length > 0 ? msg.entries[msg.entries.length - 1].index : msg.index;
        host.receive(1, { type: 'appResp', from: msg.to, to: 1, term: msg.term, index: last, reject: false, rejectHint: 0, logTerm: 0 });
      } else if (msg.type === 'heartbeat') {
        host.receive(1, { type: 'heartbeatResp', from: msg.to, to: 1, term: msg.term, context: msg.context });
      }
    }
  };
  for (let turn = 0; turn < 15; turn++) {
    answer();
    host.tick();
    await host.turn();
  }
  assert.equal(replica.leaderId, 1, 'member 1 leads');
  answer();
  await host.turn();
  return { host, replica, events, answer };
}

describe('replica host: the order of a leader turn', () => {
  it('writes its appends to the followers before it issues the WAL write, and flushes them itself', async () => {
    const { host, replica, events } = await electedLeader();
    events.length = 0;
    void replica.propose(put('k', 'v'));
    await host.turn();
    const firstAppend = events.indexOf('send app with entries');
    assert.ok(firstAppend >= 0, `the turn sent appends: ${events.join(', ')}`);
    assert.equal(events[firstAppend + 1], 'send app with entries', 'to both followers');
    assert.equal(events[firstAppend + 2], 'flush', 'then flushed, before anything else');
    assert.equal(events[firstAppend + 3], 'commit', 'then the WAL write is issued');
  });

  it('flushes a commit index at once when it has nothing to answer, and after its answers when it has', async () => {
    const { host, replica, events, answer } = await electedLeader();
    // A write of its own: the commit index waits for the transport, behind the answer.
    const written = replica.propose(put('mine', 'v'));
    await host.turn();
    answer();
    events.length = 0;
    await host.turn();
    await written;
    assert.deepEqual(events, ['send app', 'send app']);
    // A write a follower forwarded: nobody here waits for it, but the follower's client waits for
    // the commit index, so it is flushed in the turn.
    host.receive(1, { type: 'prop', from: 2, to: 1, term: 0, entries: [{ index: 0, term: 0, type: 'normal', data: encodeBatch({ origin: 2, incarnation: 0, commands: [{ id: 1, cmd: put('theirs', 'v') }] }) }] });
    await host.turn();
    answer();
    events.length = 0;
    await host.turn();
    assert.deepEqual(events, ['send app', 'send app', 'flush']);
  });

  it('a follower flushes its ack of appended entries in the turn, and leaves an ack of a commit index alone to the transport', async () => {
    const storage = threeMemberStorage();
    const events: string[] = [];
    const host = memberOneHost(storage, 1, {
      commit: async () => void events.push('commit'),
      transport: { send: (_group, msg) => void events.push(`send ${msg.type}`), flush: () => void events.push('flush') },
    });
    const last = storage.lastIndex();
    const app = (index: number, newEntries: { index: number; term: number }[], commit: number): Message => ({
      type: 'app',
      from: 2,
      to: 1,
      term: 2,
      logTerm: index === last ? 1 : 2,
      index,
      entries: newEntries.map((e) => ({ ...e, type: 'normal' as const, data: new Uint8Array(0) })),
      commit,
    });
    // Member 2 leads term 2 and appends its empty entry: member 1 persists it, then acks and flushes.
    host.receive(1, app(last, [{ index: last + 1, term: 2 }], last));
    await host.turn();
    assert.equal(events[0], 'commit', 'persisted first');
    assert.deepEqual(events.filter((e) => e !== 'commit'), ['send appResp', 'flush']);
    // Then only the commit index moves: the ack is queued, and the transport's own flush sends it.
    events.length = 0;
    host.receive(1, app(last + 1, [], last + 1));
    await host.turn();
    assert.deepEqual(events.filter((e) => e !== 'commit'), ['send appResp']);
    assert.equal(host.replicas.get(1)!.raft.status().hardState.commit, last + 1);
  });
});
