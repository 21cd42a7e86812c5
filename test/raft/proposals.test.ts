// Proposals: forwarding from followers (and switching it off), drops without a leader, the
// uncommitted-size limit, and the per-Ready committed-size limit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProposalDroppedError } from '../../src/raft/index.ts';
import { Network, electLeader, enc } from './helpers.ts';

const dropped = (reason: string) => (e: unknown) => e instanceof ProposalDroppedError && e.reason === reason;

test('a follower forwards proposals to the leader', () => {
  const net = new Network([1, 2, 3]);
  electLeader(net, 1);
  net.node(3).raw.propose(enc('via-3'));
  net.deliver();
  for (const id of [1, 2, 3]) assert.deepEqual(net.node(id).applied, ['via-3']);
  const forwarded = net.trace.find((m) => m.type === 'prop');
  assert.deepEqual([forwarded?.from, forwarded?.to, forwarded?.term], [3, 1, 0]);
});

test('with forwarding disabled a follower refuses proposals', () => {
  const net = new Network([1, 2, 3], { config: { disableProposalForwarding: true } });
  electLeader(net, 1);
  assert.throws(() => net.node(3).raw.propose(enc('x')), dropped('forwardingDisabled'));
  net.node(1).raw.propose(enc('at-leader'));
  net.deliver();
  assert.deepEqual(net.node(3).applied, ['at-leader']);
});

test('proposals without a leader, or at a candidate, are refused', () => {
  const net = new Network([1, 2, 3], { config: { preVote: false } });
  assert.throws(() => net.node(1).raw.propose(enc('x')), dropped('noLeader'));
  net.node(1).raw.campaign();
  assert.throws(() => net.node(1).raw.propose(enc('x')), dropped('noLeader'));
});

test('maxUncommittedEntriesSize drops proposals past the limit until entries apply', () => {
  const net = new Network([1, 2, 3], { config: { maxUncommittedEntriesSize: 1000 } });
  electLeader(net, 1);
  net.isolate(2, 3);
  net.node(1).raw.propose(new Uint8Array(600));
  assert.throws(() => net.node(1).raw.propose(new Uint8Array(600)), dropped('uncommittedSizeLimit'));
  net.node(1).raw.propose(new Uint8Array(400));
  assert.throws(() => net.node(1).raw.propose(new Uint8Array(1)), dropped('uncommittedSizeLimit'));
  net.node(1).raw.propose(new Uint8Array(0)); // empty entries always fit
  net.heal();
  net.deliver();
  net.tick(1);
  net.deliver();
  net.node(1).raw.propose(new Uint8Array(900));
  assert.throws(() => net.node(1).raw.propose(new Uint8Array(200)), dropped('uncommittedSizeLimit'));
});

test('a single proposal larger than the limit is accepted when nothing is outstanding (etcd)', () => {
  const net = new Network([1], { config: { maxUncommittedEntriesSize: 100 } });
  electLeader(net, 1);
  net.deliver();
  net.node(1).raw.propose(new Uint8Array(500));
  net.deliver();
  assert.equal(net.node(1).raw.status().applied, 2);
});

test('maxCommittedSizePerReady splits application into several Readies', () => {
  const net = new Network([1], { config: { maxCommittedSizePerReady: 2000 } });
  electLeader(net, 1);
  net.deliver();
  for (let i = 0; i < 10; i++) net.node(1).raw.propose(new Uint8Array(700));
  const node = net.node(1);
  const sizes: number[] = [];
  for (let i = 0; i < 20 && node.raw.hasReady(); i++) {
    const rd = node.raw.ready();
    node.storage.append(rd.entries);
    if (rd.hardState) node.storage.setHardState(rd.hardState);
    if (rd.committedEntries.length > 0) sizes.push(rd.committedEntries.length);
    node.raw.advance();
  }
  assert.deepEqual(sizes, [2, 2, 2, 2, 2]);
  assert.equal(node.raw.status().applied, 11);
});
