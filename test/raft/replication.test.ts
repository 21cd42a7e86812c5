// Log replication: pipelining, flow control (inflight messages/bytes, message size), probing,
// recovery from lost messages, fast conflict backtracking.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AppendMsg, Message } from '../../src/raft/index.ts';
import { MemoryStorage } from '../../src/raft/index.ts';
import { Network, confState, electLeader, enc } from './helpers.ts';

const appsTo = (msgs: Message[], to: number): AppendMsg[] => msgs.filter((m): m is AppendMsg => m.type === 'app' && m.to === to);

/** Runs the leader's Ready cycle once and returns (without delivering) the messages it produced. */
function leaderOutput(net: Network, id: number): Message[] {
  net.processReady(id);
  return [...net.queue];
}

test('replicate state pipelines appends without waiting for acknowledgements', () => {
  const net = new Network([1, 2, 3]);
  electLeader(net, 1);
  assert.equal(net.node(1).raw.status().progress?.get(2)?.state, 'replicate');
  for (let i = 0; i < 5; i++) net.node(1).raw.propose(enc(`v${i}`));
  const apps = appsTo(leaderOutput(net, 1), 2);
  assert.equal(apps.length, 5, 'one message per proposal, all in flight');
  assert.deepEqual(apps.map((m) => m.index), [1, 2, 3, 4, 5]);
  assert.equal(net.node(1).raw.status().progress?.get(2)?.inflight, 5);
  net.deliver();
  for (const id of [1, 2, 3]) assert.equal(net.node(id).applied.length, 5);
  assert.equal(net.node(1).raw.status().progress?.get(2)?.inflight, 0);
});

test('maxInflightMsgs bounds the messages in flight; acknowledgements release the rest', () => {
  const net = new Network([1, 2, 3], { config: { maxInflightMsgs: 2 } });
  electLeader(net, 1);
  for (let i = 0; i < 6; i++) net.node(1).raw.propose(enc(`v${i}`));
  const apps = appsTo(leaderOutput(net, 1), 2);
  assert.equal(apps.length, 2);
  assert.equal(net.node(1).raw.status().progress?.get(2)?.inflight, 2);
  net.deliver();
  assert.deepEqual(net.node(2).applied, ['v0', 'v1', 'v2', 'v3', 'v4', 'v5']);
});

test('maxInflightBytes bounds the bytes in flight', () => {
  const net = new Network([1, 2, 3], { config: { maxInflightBytes: 3000, maxSizePerMsg: 1000 } });
  electLeader(net, 1);
  for (let i = 0; i < 6; i++) net.node(1).raw.propose(new Uint8Array(1000));
  const apps = appsTo(leaderOutput(net, 1), 2);
  assert.equal(apps.length, 3, '3 x (1000 + overhead) bytes reach the 3000 byte budget');
  net.deliver();
  assert.equal(net.node(2).applied.length, 6);
  assert.equal(net.node(2).raw.status().applied, 7);
});

test('maxSizePerMsg splits catch-up traffic into several messages', () => {
  const net = new Network([1, 2, 3], { config: { maxSizePerMsg: 2500 } });
  electLeader(net, 1);
  net.isolate(3);
  for (let i = 0; i < 10; i++) net.node(1).raw.propose(new Uint8Array(1000));
  net.deliver();
  net.heal();
  net.trace = [];
  net.tick(1);
  net.deliver();
  const catchUp = appsTo(net.trace, 3).filter((m) => m.entries.length > 0);
  assert.ok(catchUp.length >= 5, `${catchUp.length} messages`);
  for (const m of catchUp) {
    const bytes = m.entries.reduce((sum, e) => sum + e.data.length + 24, 0);
    assert.ok(m.entries.length === 1 || bytes <= 2500, `message of ${bytes} bytes`);
  }
  assert.equal(net.node(3).raw.status().applied, 11);
});

test('probe state sends one append per heartbeat until the follower answers', () => {
  const net = new Network([1, 2, 3]);
  electLeader(net, 1);
  net.node(1).raw.reportUnreachable(2);
  assert.equal(net.node(1).raw.status().progress?.get(2)?.state, 'probe');
  net.isolate(2);
  net.node(1).raw.propose(enc('a'));
  net.node(1).raw.propose(enc('b'));
  const apps = appsTo(leaderOutput(net, 1), 2);
  assert.equal(apps.length, 1, 'probing sends a single message');
  net.deliver();
  net.heal();
  net.tick(1); // heartbeat -> response -> the next probe goes out
  net.deliver();
  assert.equal(net.node(1).raw.status().progress?.get(2)?.state, 'replicate');
  assert.deepEqual(net.node(2).applied, ['a', 'b']);
});

test('lost appends are recovered through heartbeat responses even with a full window', () => {
  const net = new Network([1, 2, 3], { config: { maxInflightMsgs: 2 } });
  electLeader(net, 1);
  net.drop = (m) => m.type === 'app' && m.to === 2;
  for (let i = 0; i < 4; i++) net.node(1).raw.propose(enc(`v${i}`));
  net.deliver();
  assert.equal(net.node(2).applied.length, 0);
  assert.equal(net.node(1).raw.status().progress?.get(2)?.inflight, 2);
  net.heal();
  for (let i = 0; i < 5 && net.node(2).applied.length < 4; i++) {
    net.tick(1);
    net.deliver();
  }
  assert.deepEqual(net.node(2).applied, ['v0', 'v1', 'v2', 'v3']);
});

function storageWithTerms(terms: number[], term: number): MemoryStorage {
  const storage = new MemoryStorage(confState([1, 2, 3]));
  storage.append(terms.map((t, i) => ({ index: i + 1, term: t, type: 'normal' as const, data: new Uint8Array() })));
  storage.setHardState({ term, vote: 0, commit: 0 });
  return storage;
}

test('fast backtracking skips a whole divergent term per round trip', () => {
  // Leader log: terms 1 1 1 4 4 4 4 4 4; follower 2 has a long divergent tail from terms 2 and 3.
  const leaderTerms = [1, 1, 1, 4, 4, 4, 4, 4, 4];
  const followerTerms = [1, 1, 1, ...Array<number>(20).fill(2), ...Array<number>(20).fill(3)];
  const net = new Network([1, 2, 3], {
    config: { checkQuorum: false },
    storage: (id) => (id === 2 ? storageWithTerms(followerTerms, 4) : storageWithTerms(leaderTerms, 4)),
  });
  electLeader(net, 1);
  const rejections = net.trace.filter((m) => m.type === 'appResp' && m.from === 2 && m.reject);
  assert.ok(rejections.length >= 1 && rejections.length <= 2, `${rejections.length} rejections for 40 divergent entries`);
  assert.equal(net.node(2).storage.lastIndex(), 10);
  assert.equal(net.node(2).storage.term(4), 4, 'the divergent tail is replaced');
  assert.equal(net.node(2).raw.status().hardState.commit, 10);
});

test('a follower with a short log is probed back to its last index at once', () => {
  const leaderTerms = Array<number>(30).fill(1);
  const net = new Network([1, 2, 3], {
    config: { checkQuorum: false },
    storage: (id) => (id === 2 ? storageWithTerms([1, 1], 1) : storageWithTerms(leaderTerms, 1)),
  });
  electLeader(net, 1);
  const rejections = net.trace.filter((m) => m.type === 'appResp' && m.from === 2 && m.reject);
  assert.equal(rejections.length, 1);
  assert.equal(rejections[0].type === 'appResp' && rejections[0].rejectHint, 2);
  assert.equal(net.node(2).storage.lastIndex(), 31);
});
