// PreVote and CheckQuorum: partitioned nodes do not disrupt, leaders without a quorum step down,
// followers ignore campaigns while they hear from a leader (unless it is a leadership transfer).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStorage, RawNode, defaultRaftConfig, seededRng, type VoteMsg } from '../../src/raft/index.ts';
import { Network, confState, electLeader } from './helpers.ts';

test('pre-vote: an isolated node campaigns without raising its term', () => {
  const net = new Network([1, 2, 3]);
  electLeader(net, 1);
  net.isolate(3);
  for (let i = 0; i < 100; i++) {
    net.tickAll();
    net.deliver();
  }
  assert.equal(net.term(3), 1, 'pre-votes never move the term');
  assert.equal(net.role(3), 'preCandidate');
  net.heal();
  net.tickAll();
  net.deliver();
  assert.equal(net.leaderId(), 1, 'the rejoining node does not disrupt the leader');
  assert.equal(net.term(1), 1);
  assert.equal(net.role(3), 'follower');
});

test('without pre-vote an isolated node inflates its term and disrupts the leader on return', () => {
  const net = new Network([1, 2, 3], { config: { preVote: false, checkQuorum: false } });
  electLeader(net, 1);
  net.isolate(3);
  for (let i = 0; i < 100; i++) {
    net.tickAll();
    net.deliver();
  }
  assert.ok(net.term(3) > 3);
  net.heal();
  net.tickUntil(() => net.term(1) > 1);
  assert.ok(net.term(1) > 3, 'the inflated term deposes the leader');
});

test('pre-vote: granted only to an up-to-date candidate; a lost pre-vote changes nothing', () => {
  const net = new Network([1, 2, 3], { config: { checkQuorum: false } });
  electLeader(net, 1);
  net.isolate(3);
  net.node(1).raw.propose(new TextEncoder().encode('x'));
  net.deliver();
  net.isolate(1); // leader gone; 3 is behind, 2 is up to date
  net.node(3).raw.campaign();
  net.deliver();
  assert.equal(net.role(3), 'preCandidate', 'one rejection, one silent voter: still pending');
  assert.equal(net.term(3), 1);
  assert.equal(net.term(2), 1, 'a pre-vote does not move the voter either');
  assert.ok(net.trace.some((m) => m.type === 'preVoteResp' && m.from === 2 && m.reject));
  net.node(2).raw.campaign();
  net.deliver();
  assert.equal(net.role(2), 'leader');
  assert.equal(net.term(2), 2);
});

test('check quorum: a leader that cannot reach a quorum steps down after an election timeout', () => {
  const net = new Network([1, 2, 3]);
  electLeader(net, 1);
  net.isolate(1);
  let ticks = 0;
  while (net.role(1) === 'leader' && ticks < 50) {
    net.tick(1);
    net.deliver();
    ticks++;
  }
  assert.equal(net.role(1), 'follower');
  assert.ok(ticks <= 20, `stepped down after ${ticks} ticks`);
  assert.equal(net.term(1), 1);
});

test('check quorum: a leader with a quorum stays leader', () => {
  const net = new Network([1, 2, 3]);
  electLeader(net, 1);
  net.isolate(3);
  for (let i = 0; i < 50; i++) {
    net.tick(1);
    net.tick(2);
    net.deliver();
  }
  assert.equal(net.role(1), 'leader');
});

test('check quorum: a follower in lease ignores vote requests, but not transfer campaigns', () => {
  const make = (): RawNode => {
    const node = new RawNode(defaultRaftConfig(2, seededRng(1), { preVote: false }), new MemoryStorage(confState([1, 2, 3])));
    node.step({ type: 'heartbeat', from: 1, to: 2, term: 1, commit: 0, context: new Uint8Array() });
    node.ready();
    node.advance();
    return node;
  };
  const vote = (transfer: boolean): VoteMsg => ({ type: 'vote', from: 3, to: 2, term: 2, logTerm: 0, index: 0, transfer });
  const inLease = make();
  inLease.step(vote(false));
  assert.equal(inLease.status().hardState.term, 1, 'ignored: no term change');
  assert.equal(inLease.hasReady(), false, 'and no reply');
  const transfer = make();
  transfer.step(vote(true));
  assert.equal(transfer.status().hardState.term, 2);
  assert.equal(transfer.status().hardState.vote, 3);
  const expired = make();
  for (let i = 0; i < 10; i++) expired.tick();
  expired.step(vote(false));
  assert.equal(expired.status().hardState.term, 2, 'after the lease the request is considered');
});

test('a stale leader learns the new term from the response to its heartbeat', () => {
  const net = new Network([1, 2, 3], { config: { checkQuorum: false } });
  electLeader(net, 1);
  net.isolate(1);
  net.tickUntil(() => net.leaderId() !== null && net.leaderId() !== 1);
  assert.equal(net.role(1), 'leader', 'the isolated leader does not know yet');
  net.heal();
  net.tick(1);
  net.deliver();
  assert.equal(net.role(1), 'follower');
});
