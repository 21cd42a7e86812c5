// Restarting from storage: hard state, conf state and applied index survive; unpersisted state does not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, MemoryStorage, RawNode, defaultRaftConfig, seededRng, type ConfChange } from '../../src/raft/index.ts';
import { Network, confState, electLeader, enc } from './helpers.ts';

test('a restarted node resumes with its term, vote, commit and log', () => {
  const net = new Network([1, 2, 3]);
  electLeader(net, 1);
  for (let i = 0; i < 3; i++) net.node(1).raw.propose(enc(`v${i}`));
  net.deliver();
  const storage = net.node(2).storage.clone();
  const restarted = new RawNode(defaultRaftConfig(2, seededRng(7)), storage);
  const s = restarted.status();
  assert.deepEqual(s.hardState, { term: 1, vote: 1, commit: 4 });
  assert.equal(s.lastIndex, 4);
  assert.equal(s.applied, 0);
  assert.equal(s.softState.role, 'follower');
  assert.deepEqual(s.confState.voters, [1, 2, 3]);
  const rd = restarted.ready();
  assert.deepEqual(rd.committedEntries.map((e) => e.index), [1, 2, 3, 4], 'committed entries are re-applied');
  assert.equal(rd.hardState, null, 'nothing new to persist');
});

test('config.applied skips entries the application already applied', () => {
  const net = new Network([1, 2, 3]);
  electLeader(net, 1);
  for (let i = 0; i < 3; i++) net.node(1).raw.propose(enc(`v${i}`));
  net.deliver();
  const restarted = new RawNode(defaultRaftConfig(2, seededRng(7), { applied: 3 }), net.node(2).storage.clone());
  assert.equal(restarted.status().applied, 3);
  assert.deepEqual(restarted.ready().committedEntries.map((e) => e.index), [4]);
  assert.throws(() => new RawNode(defaultRaftConfig(2, seededRng(7), { applied: 9 }), net.node(2).storage.clone()), ConfigError);
});

test('a restarted node rejoins and catches up', () => {
  const net = new Network([1, 2, 3]);
  electLeader(net, 1);
  net.node(1).raw.propose(enc('a'));
  net.deliver();
  const saved = net.node(3).storage.clone();
  net.isolate(3);
  net.node(1).raw.propose(enc('b'));
  net.deliver();
  net.nodes.delete(3);
  const node = net.addNode(3, saved);
  net.heal();
  net.tick(1);
  net.deliver();
  assert.deepEqual(node.applied, ['a', 'b']);
});

test('the conf state and snapshot survive a restart; a restarted node can win an election', () => {
  const net = new Network([1, 2, 3]);
  electLeader(net, 1);
  net.addNode(4, new MemoryStorage(confState([1, 2, 3])));
  const add4: ConfChange = { transition: 'auto', changes: [{ type: 'addNode', nodeId: 4 }], context: new Uint8Array() };
  net.node(1).raw.proposeConfChange(add4);
  net.deliver();
  const n2 = net.node(2);
  n2.storage.createSnapshot(n2.appliedIndex, n2.raw.status().confState, enc('[]'));
  n2.storage.compact(n2.appliedIndex);
  const restarted = new RawNode(defaultRaftConfig(2, seededRng(3), { applied: n2.appliedIndex }), n2.storage.clone());
  assert.deepEqual(restarted.status().confState.voters, [1, 2, 3, 4]);
  assert.equal(restarted.status().applied, n2.appliedIndex);
  net.nodes.delete(2);
  net.addNode(2, n2.storage.clone(), { applied: n2.appliedIndex }).appliedIndex = n2.appliedIndex;
  net.isolate(1);
  net.tickUntil(() => [2, 3, 4].some((id) => net.role(id) === 'leader'));
  const leader = [2, 3, 4].find((id) => net.role(id) === 'leader')!;
  net.node(leader).raw.propose(enc('after-restart'));
  net.deliver();
  assert.deepEqual(net.node(2).applied, ['after-restart'], 'the restarted node replicates in the 4-voter group');
});

test('a hard state whose commit is beyond the log is refused', () => {
  const storage = new MemoryStorage(confState([1]));
  storage.setHardState({ term: 1, vote: 1, commit: 5 });
  assert.throws(() => new RawNode(defaultRaftConfig(1, seededRng(1)), storage), ConfigError);
});
