// Leader election: randomized timeouts, one vote per term, log freshness, higher terms, single node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStorage, RawNode, defaultRaftConfig, seededRng, type Message, type VoteMsg } from '../../src/raft/index.ts';
import { Network, confState, electLeader } from './helpers.ts';

test('election timeouts are randomized within [electionTicks, 2*electionTicks) using the rng', () => {
  const seen = new Set<number>();
  for (let seed = 1; seed <= 60; seed++) {
    const node = new RawNode(defaultRaftConfig(1, seededRng(seed), { preVote: false }), new MemoryStorage(confState([1, 2, 3])));
    let ticks = 0;
    while (node.status().softState.role === 'follower' && ticks < 100) {
      node.tick();
      ticks++;
    }
    assert.ok(ticks >= 10 && ticks < 20, `timeout ${ticks}`);
    seen.add(ticks);
  }
  assert.ok(seen.size >= 5, 'timeouts spread out');
  const a = new RawNode(defaultRaftConfig(1, seededRng(5)), new MemoryStorage(confState([1, 2, 3])));
  const b = new RawNode(defaultRaftConfig(1, seededRng(5)), new MemoryStorage(confState([1, 2, 3])));
  for (let i = 0; i < 30; i++) {
    a.tick();
    b.tick();
    assert.equal(a.status().softState.role, b.status().softState.role, 'same seed, same behaviour');
  }
});

test('a candidate with a majority of votes becomes leader and appends an empty entry', () => {
  const net = new Network([1, 2, 3], { config: { preVote: false } });
  electLeader(net, 1);
  assert.equal(net.term(1), 1);
  for (const id of [2, 3]) {
    assert.equal(net.role(id), 'follower');
    assert.equal(net.node(id).raw.status().softState.leader, 1);
    assert.equal(net.node(id).raw.status().hardState.vote, 1);
  }
  const s = net.node(1).raw.status();
  assert.equal(s.lastIndex, 1);
  assert.equal(s.hardState.commit, 1, 'the empty entry of the new term commits');
  assert.equal(net.node(2).storage.term(1), 1);
});

test('elections happen by ticking alone', () => {
  const net = new Network([1, 2, 3, 4, 5], { seed: 9 });
  net.tickUntil(() => net.leaderId() !== null);
  const leader = net.leaderId()!;
  for (const id of [1, 2, 3, 4, 5]) assert.equal(net.node(id).raw.status().softState.leader, leader);
});

test('a node grants at most one vote per term', () => {
  const node = new RawNode(defaultRaftConfig(1, seededRng(1), { preVote: false, checkQuorum: false }), new MemoryStorage(confState([1, 2, 3])));
  const vote = (from: number): VoteMsg => ({ type: 'vote', from, to: 1, term: 1, logTerm: 0, index: 0, transfer: false });
  node.step(vote(2));
  node.step(vote(3));
  node.step(vote(2)); // a repeat of the vote already cast is granted again
  const replies = node.ready().messages;
  assert.deepEqual(
    replies.map((m) => [m.to, m.type, 'reject' in m ? m.reject : null]),
    [[2, 'voteResp', false], [3, 'voteResp', true], [2, 'voteResp', false]],
  );
  assert.equal(node.status().hardState.vote, 2);
});

test('a candidate whose log is behind is refused', () => {
  const net = new Network([1, 2, 3], { config: { preVote: false, checkQuorum: false } });
  electLeader(net, 1);
  net.isolate(3);
  net.node(1).raw.propose(new TextEncoder().encode('x'));
  net.deliver();
  net.heal();
  // 3 missed entry 2; its campaign at a higher term must fail on log freshness.
  net.node(3).raw.campaign();
  net.deliver();
  assert.notEqual(net.role(3), 'leader');
  const rejections = net.trace.filter((m) => m.type === 'voteResp' && m.to === 3 && m.reject);
  assert.equal(rejections.length, 2);
});

test('a leader steps down on a message from a higher term', () => {
  const net = new Network([1, 2, 3], { config: { preVote: false, checkQuorum: false } });
  electLeader(net, 1);
  net.isolate(1);
  electLeader(net, 2);
  assert.equal(net.term(2), 2);
  net.heal();
  net.tick(2); // heartbeat reaches the old leader
  net.deliver();
  assert.equal(net.role(1), 'follower');
  assert.equal(net.term(1), 2);
  assert.equal(net.node(1).raw.status().softState.leader, 2);
});

test('split votes are resolved by later randomized timeouts', () => {
  const net = new Network([1, 2, 3, 4], { config: { preVote: false }, seed: 3 });
  net.node(1).raw.campaign();
  net.node(2).raw.campaign();
  net.deliver(); // 1 and 2 each vote for themselves; 3/4 split or side with one
  net.tickUntil(() => net.leaderId() !== null, 500);
  assert.ok(net.leaderId() !== null);
});

test('a single voter elects itself and commits only after persisting', () => {
  const storage = new MemoryStorage(confState([1]));
  const node = new RawNode(defaultRaftConfig(1, seededRng(1)), storage);
  node.campaign();
  assert.equal(node.status().softState.role, 'leader');
  const rd = node.ready();
  assert.equal(rd.entries.length, 1);
  assert.equal(rd.committedEntries.length, 0, 'nothing is applied before it is persisted');
  assert.equal(node.hasReady(), false, 'one Ready at a time');
  storage.append(rd.entries);
  storage.setHardState(rd.hardState!);
  node.advance();
  const rd2 = node.ready();
  assert.deepEqual(rd2.committedEntries.map((e) => e.index), [1]);
  assert.equal(rd2.hardState?.commit, 1);
  node.advance();
  assert.equal(node.status().applied, 1);
});

test('messages from unknown peers (responses) and to other nodes are ignored', () => {
  const node = new RawNode(defaultRaftConfig(1, seededRng(1), { preVote: false }), new MemoryStorage(confState([1, 2, 3])));
  node.campaign();
  node.ready();
  node.advance();
  const resp = (from: number, to = 1): Message => ({ type: 'voteResp', from, to, term: 1, reject: false });
  node.step(resp(9));
  node.step(resp(2, 7));
  assert.equal(node.status().softState.role, 'candidate');
  node.step(resp(2));
  assert.equal(node.status().softState.role, 'leader');
});

test('a candidate removed from the configuration mid-campaign does not take the win', () => {
  const node = new RawNode(defaultRaftConfig(1, seededRng(1), { preVote: false }), new MemoryStorage(confState([1, 2, 3])));
  node.campaign();
  node.applyConfChange({ transition: 'auto', changes: [{ type: 'removeNode', nodeId: 1 }], context: new Uint8Array() });
  node.step({ type: 'voteResp', from: 2, to: 1, term: 1, reject: false });
  node.step({ type: 'voteResp', from: 3, to: 1, term: 1, reject: false });
  assert.equal(node.status().softState.role, 'follower');
  for (let i = 0; i < 50; i++) node.tick();
  assert.equal(node.status().hardState.term, 1, 'and never campaigns again');
});
