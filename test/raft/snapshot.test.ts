// Log compaction and snapshots: the leader sends a snapshot when entries are gone, the follower
// installs it, reportSnapshot moves the progress on, and the Ready carries the snapshot first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStorage, RawNode, SnapshotTemporarilyUnavailableError, defaultRaftConfig, seededRng, type SnapshotMsg } from '../../src/raft/index.ts';
import { Network, confState, electLeader, enc, snapshotAndCompact } from './helpers.ts';

function laggingFollower(): Network {
  const net = new Network([1, 2, 3]);
  electLeader(net, 1);
  net.isolate(3);
  for (let i = 0; i < 10; i++) net.node(1).raw.propose(enc(`v${i}`));
  net.deliver();
  const snap = snapshotAndCompact(net.node(1));
  assert.equal(snap.metadata.index, 11);
  assert.equal(net.node(1).storage.firstIndex(), 12);
  return net;
}

test('a follower behind the compacted log gets a snapshot and catches up from it', () => {
  const net = laggingFollower();
  net.heal();
  net.node(1).raw.propose(enc('after'));
  net.tick(1);
  net.deliver();
  const snaps = net.trace.filter((m): m is SnapshotMsg => m.type === 'snap');
  assert.equal(snaps.length, 1);
  assert.equal(snaps[0].snapshot.metadata.index, 11);
  assert.deepEqual(net.node(3).applied, [...Array.from({ length: 10 }, (_, i) => `v${i}`), 'after']);
  assert.equal(net.node(3).storage.firstIndex(), 12);
  assert.equal(net.node(1).raw.status().progress?.get(3)?.state, 'replicate');
});

test('a snapshot the storage cannot hand out yet (temporarily unavailable) is sent at a later heartbeat', () => {
  const net = laggingFollower();
  const storage = net.node(1).storage;
  const real = storage.snapshot.bind(storage);
  let refusals = 2; // as GroupStorage does while it reads a large image a part per call
  storage.snapshot = () => {
    if (refusals > 0) {
      refusals--;
      throw new SnapshotTemporarilyUnavailableError();
    }
    return real();
  };
  net.heal();
  for (let i = 0; i < 10 && net.node(3).storage.firstIndex() !== 12; i++) {
    net.tick(1);
    net.deliver();
  }
  assert.equal(refusals, 0, 'the leader asked again after each refusal');
  assert.equal(net.trace.filter((m) => m.type === 'snap').length, 1);
  assert.equal(net.node(3).storage.firstIndex(), 12, 'the follower installed it');
  assert.deepEqual(net.node(3).applied, Array.from({ length: 10 }, (_, i) => `v${i}`));
});

test('snapshot progress: pendingSnapshot while in flight; failure reverts to probing; retry succeeds', () => {
  const net = laggingFollower();
  net.heal();
  net.drop = (m) => m.type === 'snap';
  net.tick(1);
  net.deliver();
  let pr = net.node(1).raw.status().progress?.get(3);
  assert.equal(pr?.state, 'snapshot');
  assert.equal(pr?.pendingSnapshot, 11);
  net.node(1).raw.reportSnapshot(3, 'failure');
  pr = net.node(1).raw.status().progress?.get(3);
  assert.equal(pr?.state, 'probe');
  assert.equal(pr?.pendingSnapshot, 0);
  net.heal();
  net.tick(1);
  net.deliver();
  assert.equal(net.node(3).raw.status().applied, 11);
  assert.equal(net.node(1).raw.status().progress?.get(3)?.state, 'replicate');
});

test('reportSnapshot finish resumes probing after the snapshot index', () => {
  const net = laggingFollower();
  net.heal();
  net.drop = (m) => m.type === 'snap';
  net.tick(1);
  net.deliver();
  net.node(1).raw.reportSnapshot(3, 'finish');
  const pr = net.node(1).raw.status().progress?.get(3);
  assert.equal(pr?.state, 'probe');
  assert.equal(pr?.next, 12);
});

test('a follower Ready carries the snapshot, and committed entries only after it is applied', () => {
  const storage = new MemoryStorage(confState([1, 2, 3]));
  const node = new RawNode(defaultRaftConfig(2, seededRng(1)), storage);
  const snapshot = { metadata: { index: 20, term: 3, confState: confState([1, 2, 3]) }, data: enc('image') };
  node.step({ type: 'snap', from: 1, to: 2, term: 3, snapshot });
  node.step({ type: 'app', from: 1, to: 2, term: 3, index: 20, logTerm: 3, commit: 21, entries: [{ index: 21, term: 3, type: 'normal', data: enc('x') }] });
  const rd = node.ready();
  assert.equal(rd.snapshot?.metadata.index, 20);
  assert.deepEqual(rd.entries.map((e) => e.index), [21]);
  assert.deepEqual(rd.committedEntries, []);
  assert.deepEqual(rd.messages.map((m) => m.type === 'appResp' && m.index), [20, 21]);
  assert.equal(rd.mustSync, true);
  storage.applySnapshot(rd.snapshot!);
  storage.append(rd.entries);
  storage.setHardState(rd.hardState!);
  node.advance();
  assert.equal(node.status().applied, 20);
  const rd2 = node.ready();
  assert.deepEqual(rd2.committedEntries.map((e) => e.index), [21]);
  node.advance();
});

test('a snapshot that is not newer than the commit index is answered with the commit index', () => {
  const storage = new MemoryStorage(confState([1, 2, 3]));
  const node = new RawNode(defaultRaftConfig(2, seededRng(1)), storage);
  node.step({ type: 'app', from: 1, to: 2, term: 1, index: 0, logTerm: 0, commit: 2, entries: [1, 2].map((index) => ({ index, term: 1, type: 'normal' as const, data: enc('') })) });
  storage.append(node.ready().entries);
  node.advance();
  node.ready();
  node.advance();
  node.step({ type: 'snap', from: 1, to: 2, term: 1, snapshot: { metadata: { index: 1, term: 1, confState: confState([1, 2, 3]) }, data: enc('') } });
  const rd = node.ready();
  assert.equal(rd.snapshot, null);
  assert.deepEqual(rd.messages.map((m) => m.type === 'appResp' && m.index), [2]);
});

test('a snapshot that does not include this node is ignored', () => {
  const node = new RawNode(defaultRaftConfig(4, seededRng(1)), new MemoryStorage());
  node.step({ type: 'snap', from: 1, to: 4, term: 1, snapshot: { metadata: { index: 5, term: 1, confState: confState([1, 2, 3]) }, data: enc('') } });
  const rd = node.ready();
  assert.equal(rd.snapshot, null);
  assert.equal(node.status().lastIndex, 0);
});
