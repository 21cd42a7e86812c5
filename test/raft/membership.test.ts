// Membership changes end to end: simple add/remove, joint consensus (auto and explicit leave),
// replacing a node, removing the leader, learners, and the proposal-time rules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStorage, ProposalDroppedError, type ConfChange, type ConfChangeSingle } from '../../src/raft/index.ts';
import { Network, confState, electLeader, enc } from './helpers.ts';

const add = (nodeId: number): ConfChangeSingle => ({ type: 'addNode', nodeId });
const remove = (nodeId: number): ConfChangeSingle => ({ type: 'removeNode', nodeId });
const learner = (nodeId: number): ConfChangeSingle => ({ type: 'addLearner', nodeId });
const change = (changes: ConfChangeSingle[], transition: ConfChange['transition'] = 'auto'): ConfChange => ({ transition, changes, context: new Uint8Array() });
const dropped = (reason: string) => (e: unknown) => e instanceof ProposalDroppedError && e.reason === reason;

function cluster(ids = [1, 2, 3]): Network {
  const net = new Network(ids);
  electLeader(net, 1);
  return net;
}

/** A new member starts from the group's bootstrap conf state and replays the log. */
function join(net: Network, id: number, bootstrap = confState([1, 2, 3])): void {
  net.addNode(id, new MemoryStorage(bootstrap));
}

test('adding a voter: it receives the log and then counts for the quorum', () => {
  const net = cluster();
  join(net, 4);
  net.node(1).raw.proposeConfChange(change([add(4)]));
  net.deliver();
  for (const id of [1, 2, 3, 4]) assert.deepEqual(net.node(id).raw.status().confState.voters, [1, 2, 3, 4]);
  net.isolate(3, 4);
  net.node(1).raw.propose(enc('needs-3-of-4'));
  net.deliver();
  assert.deepEqual(net.node(1).applied, [], '2 of 4 is not a quorum');
  net.heal();
  net.tick(1);
  net.deliver();
  assert.deepEqual(net.node(4).applied, ['needs-3-of-4']);
});

test('removing a voter: the smaller group commits without it', () => {
  const net = cluster();
  net.node(1).raw.proposeConfChange(change([remove(3)]));
  net.deliver();
  assert.deepEqual(net.node(1).raw.status().confState.voters, [1, 2]);
  net.isolate(3);
  net.node(1).raw.propose(enc('two-of-two'));
  net.deliver();
  assert.deepEqual(net.node(2).applied, ['two-of-two']);
  assert.equal(net.node(1).raw.status().progress?.has(3), false);
});

test('replacing a node through a joint config that is left automatically', () => {
  const net = cluster();
  join(net, 4);
  net.node(1).raw.proposeConfChange(change([add(4), remove(3)]));
  net.deliver();
  const cs = net.node(1).raw.status().confState;
  assert.deepEqual(cs, { voters: [1, 2, 4], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false });
  assert.deepEqual(net.node(4).raw.status().confState.voters, [1, 2, 4]);
  const confEntries = net.node(1).storage.entries(1, net.node(1).storage.lastIndex() + 1, 1 << 20).filter((e) => e.type === 'conf');
  assert.equal(confEntries.length, 2, 'enter-joint, then the leader-proposed leave-joint');
});

test('the automatic leave entry carries no payload, so the uncommitted-size limit never blocks it', () => {
  const net = cluster();
  join(net, 4);
  net.node(1).raw.proposeConfChange(change([add(4), remove(3)]));
  net.deliver();
  const log = net.node(1).storage.entries(1, net.node(1).storage.lastIndex() + 1, 1 << 20);
  const confEntries = log.filter((e) => e.type === 'conf');
  assert.equal(confEntries.length, 2);
  assert.equal(confEntries[1].data.length, 0);
});

test('joint config commits only with both majorities', () => {
  const net = cluster();
  join(net, 4);
  join(net, 5);
  net.node(1).raw.proposeConfChange(change([add(4), add(5), remove(2), remove(3)], 'explicit'));
  net.deliver();
  const cs = net.node(1).raw.status().confState;
  assert.deepEqual([cs.voters, cs.votersOutgoing], [[1, 4, 5], [1, 2, 3]]);
  net.isolate(2, 3); // incoming {1,4,5} has a majority, outgoing {1,2,3} does not
  net.node(1).raw.propose(enc('joint'));
  net.deliver();
  assert.deepEqual(net.node(1).applied, []);
  net.heal();
  net.tick(1);
  net.deliver();
  assert.deepEqual(net.node(1).applied, ['joint']);
});

test('explicit joint: stays joint until an empty change; the rules refuse other proposals', () => {
  const net = cluster();
  join(net, 4);
  assert.throws(() => net.node(1).raw.proposeConfChange(change([])), dropped('confChangeInvalid'), 'not joint: empty change refused');
  net.node(1).raw.proposeConfChange(change([add(4), remove(3)], 'explicit'));
  assert.throws(() => net.node(1).raw.proposeConfChange(change([add(5)])), dropped('confChangePending'));
  net.deliver();
  assert.deepEqual(net.node(1).raw.status().confState.votersOutgoing, [1, 2, 3], 'no automatic leave');
  assert.throws(() => net.node(1).raw.proposeConfChange(change([add(5)])), dropped('confChangeInvalid'), 'must leave first');
  net.node(1).raw.proposeConfChange(change([]));
  net.deliver();
  assert.deepEqual(net.node(1).raw.status().confState.votersOutgoing, []);
  assert.deepEqual(net.node(2).raw.status().confState.voters, [1, 2, 4]);
});

test('changes that would leave no voters are refused at proposal time', () => {
  const net = cluster();
  assert.throws(() => net.node(1).raw.proposeConfChange(change([remove(1), remove(2), remove(3)])), dropped('confChangeInvalid'));
  const solo = cluster([1]);
  assert.throws(() => solo.node(1).raw.proposeConfChange(change([remove(1)])), dropped('confChangeInvalid'));
  assert.equal(solo.node(1).raw.status().lastIndex, 1, 'nothing was appended');
});

test('removing the leader: it leads until the change is applied, then steps down and stays out', () => {
  const net = cluster();
  net.isolate(3); // the removal must commit with the leader's own ack: {1, 2} of {1, 2, 3}
  net.node(1).raw.proposeConfChange(change([remove(1)]));
  net.processReady(1);
  assert.equal(net.role(1), 'leader', 'still leading while the removal is uncommitted');
  net.deliver();
  assert.equal(net.role(1), 'follower');
  assert.equal(net.node(2).raw.status().hardState.commit, 2);
  net.heal();
  assert.deepEqual(net.node(2).raw.status().confState.voters, [2, 3]);
  net.tickUntil(() => net.leaderId() !== null);
  const leader = net.leaderId()!;
  assert.ok(leader === 2 || leader === 3);
  for (let i = 0; i < 50; i++) {
    net.tickAll();
    net.deliver();
  }
  assert.equal(net.term(1), 1, 'the removed node never campaigns');
  assert.equal(net.role(1), 'follower');
  net.node(leader).raw.propose(enc('after'));
  net.deliver();
  assert.deepEqual(net.node(leader === 2 ? 3 : 2).applied, ['after']);
});

test('learners receive the log but never vote and are never counted', () => {
  const net = cluster();
  join(net, 4);
  net.node(1).raw.proposeConfChange(change([learner(4)]));
  net.deliver();
  assert.deepEqual(net.node(1).raw.status().confState.learners, [4]);
  net.node(1).raw.propose(enc('to-learner'));
  net.deliver();
  assert.deepEqual(net.node(4).applied, ['to-learner']);
  assert.equal(net.node(1).raw.status().progress?.get(4)?.isLearner, true);
  net.isolate(2, 3);
  net.node(1).raw.propose(enc('leader+learner'));
  net.deliver();
  assert.deepEqual(net.node(1).applied, ['to-learner'], 'a learner ack does not make a quorum');
  net.isolate(1);
  for (let i = 0; i < 60; i++) {
    net.tick(4);
    net.deliver();
  }
  assert.equal(net.role(4), 'follower', 'a learner never campaigns');
  assert.equal(net.term(4), 1);
});

test('promoting a learner, and demoting a voter through a joint config (learnersNext)', () => {
  const net = cluster();
  join(net, 4);
  net.node(1).raw.proposeConfChange(change([learner(4)]));
  net.deliver();
  net.node(1).raw.proposeConfChange(change([add(4)]));
  net.deliver();
  assert.deepEqual(net.node(1).raw.status().confState.voters, [1, 2, 3, 4]);
  net.node(1).raw.proposeConfChange(change([learner(3)], 'explicit'));
  net.deliver();
  const joint = net.node(1).raw.status().confState;
  assert.deepEqual(joint.learnersNext, [3]);
  assert.deepEqual(joint.learners, []);
  net.node(1).raw.proposeConfChange(change([]));
  net.deliver();
  const final = net.node(2).raw.status().confState;
  assert.deepEqual([final.voters, final.learners], [[1, 2, 4], [3]]);
});

test('a forwarded conf change that breaks the rules becomes a no-op entry', () => {
  const net = cluster();
  net.node(1).raw.proposeConfChange(change([add(4)]));
  net.node(2).raw.proposeConfChange(change([add(5)])); // forwarded while 4 is pending
  net.deliver();
  assert.deepEqual(net.node(1).raw.status().confState.voters, [1, 2, 3, 4]);
});
