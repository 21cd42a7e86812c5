// The test-only faults do exactly the wrong thing they name (so the simulator can prove it catches bugs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStorage, RawNode, defaultRaftConfig, seededRng, type RaftConfig, type VoteMsg } from '../../src/raft/index.ts';
import { Network, confState, enc } from './helpers.ts';

function follower(fault?: RaftConfig['testingFault']): { node: RawNode; storage: MemoryStorage } {
  const storage = new MemoryStorage(confState([1, 2, 3]));
  storage.append([1, 2].map((index) => ({ index, term: 1, type: 'normal' as const, data: enc('') })));
  storage.setHardState({ term: 1, vote: 0, commit: 1 });
  const config = defaultRaftConfig(3, seededRng(1), { preVote: false, checkQuorum: false, testingFault: fault });
  return { node: new RawNode(config, storage), storage };
}

test('grantEveryVote: votes twice in one term and for stale logs', () => {
  const vote = (from: number, logTerm: number, index: number): VoteMsg => ({ type: 'vote', from, to: 3, term: 2, logTerm, index, transfer: false });
  for (const fault of [undefined, 'grantEveryVote'] as const) {
    const { node } = follower(fault);
    node.step(vote(1, 1, 2));
    node.step(vote(2, 1, 2)); // second candidate, same term
    node.step({ ...vote(2, 0, 0), term: 3 }); // stale log
    const grants = node.ready().messages.map((m) => m.type === 'voteResp' && !m.reject);
    assert.deepEqual(grants, fault === undefined ? [true, false, false] : [true, true, true]);
  }
});

test('grantEveryVote: two leaders in the same term', () => {
  const net = new Network([1, 2, 3], { config: { preVote: false, checkQuorum: false, testingFault: 'grantEveryVote' } });
  net.node(1).raw.campaign();
  net.node(2).raw.campaign();
  net.deliver();
  assert.equal(net.role(1), 'leader');
  assert.equal(net.role(2), 'leader');
  assert.equal(net.term(1), net.term(2));
  const healthy = new Network([1, 2, 3], { config: { preVote: false, checkQuorum: false } });
  healthy.node(1).raw.campaign();
  healthy.node(2).raw.campaign();
  healthy.deliver();
  assert.ok(!(healthy.role(1) === 'leader' && healthy.role(2) === 'leader'));
});

test('skipAppendConsistencyCheck: appends after a mismatching entry', () => {
  for (const fault of [undefined, 'skipAppendConsistencyCheck'] as const) {
    const { node, storage } = follower(fault);
    // The leader's entry 2 is from term 2; ours is from term 1.
    node.step({ type: 'app', from: 1, to: 3, term: 2, index: 2, logTerm: 2, commit: 1, entries: [{ index: 3, term: 2, type: 'normal', data: enc('x') }] });
    const rd = node.ready();
    storage.append(rd.entries);
    node.advance();
    const resp = rd.messages.find((m) => m.type === 'appResp');
    if (fault === undefined) {
      assert.equal(resp?.type === 'appResp' && resp.reject, true);
      assert.equal(storage.lastIndex(), 2);
    } else {
      assert.equal(resp?.type === 'appResp' && resp.reject, false);
      assert.deepEqual([storage.term(2), storage.term(3)], [1, 2], 'log matching is broken');
    }
  }
});
