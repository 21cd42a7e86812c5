// Leadership transfer: immediate when the transferee is caught up, after catch-up otherwise;
// proposals are dropped meanwhile; aborted after an election timeout; learners cannot take over.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProposalDroppedError } from '../../src/raft/index.ts';
import { Network, electLeader, enc } from './helpers.ts';

test('transfer to an up-to-date follower: timeoutNow, and it wins at once', () => {
  const net = new Network([1, 2, 3]);
  electLeader(net, 1);
  net.node(1).raw.transferLeader(2);
  net.deliver();
  assert.equal(net.leaderId(), 2);
  assert.equal(net.term(2), 2);
  assert.ok(net.trace.some((m) => m.type === 'timeoutNow' && m.to === 2));
  assert.ok(net.trace.some((m) => m.type === 'vote' && m.transfer), 'the campaign skips pre-vote and the lease');
  assert.equal(net.node(1).raw.status().leadTransferee, 0);
});

test('transfer to a lagging follower catches it up first', () => {
  const net = new Network([1, 2, 3]);
  electLeader(net, 1);
  net.isolate(3);
  for (let i = 0; i < 3; i++) net.node(1).raw.propose(enc(`v${i}`));
  net.deliver();
  net.heal();
  net.node(1).raw.transferLeader(3);
  assert.equal(net.node(1).raw.status().leadTransferee, 3);
  assert.throws(() => net.node(1).raw.propose(enc('blocked')), (e: unknown) => e instanceof ProposalDroppedError && e.reason === 'transferInProgress');
  net.deliver();
  assert.equal(net.leaderId(), 3);
  assert.deepEqual(net.node(3).applied, ['v0', 'v1', 'v2']);
});

test('a transfer that does not finish within an election timeout is aborted', () => {
  const net = new Network([1, 2, 3]);
  electLeader(net, 1);
  net.isolate(3);
  net.node(1).raw.transferLeader(3);
  net.deliver();
  assert.equal(net.node(1).raw.status().leadTransferee, 3);
  for (let i = 0; i < 10; i++) {
    net.tick(1);
    net.tick(2);
    net.deliver();
  }
  assert.equal(net.node(1).raw.status().leadTransferee, 0);
  assert.equal(net.role(1), 'leader');
  net.node(1).raw.propose(enc('ok'));
  net.deliver();
  assert.deepEqual(net.node(2).applied, ['ok']);
});

test('a follower forwards a transfer request to the leader', () => {
  const net = new Network([1, 2, 3]);
  electLeader(net, 1);
  net.node(3).raw.transferLeader(3);
  net.deliver();
  assert.equal(net.leaderId(), 3);
});

test('transfer to self, to an unknown node or to a learner is ignored', () => {
  const net = new Network([1, 2, 3, 4], { initial: { voters: [1, 2, 3], votersOutgoing: [], learners: [4], learnersNext: [], autoLeave: false } });
  electLeader(net, 1);
  for (const target of [1, 9, 4]) {
    net.node(1).raw.transferLeader(target);
    net.deliver();
    assert.equal(net.node(1).raw.status().leadTransferee, 0);
    assert.equal(net.leaderId(), 1);
  }
});
