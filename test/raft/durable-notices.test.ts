// The leader's 'durable' notices (RaftConfig.leaderDurableNotices): a follower whose forwarded
// proposal is durable on itself and on the leader learns it is committed without waiting for the
// leader's commit index, only where the two are a quorum, never across a conf change, and reads at
// the leader stay above what a follower acknowledged that way.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Message, RaftConfig } from '../../src/raft/index.ts';
import { Network, electLeader, enc } from './helpers.ts';

/** A leader (1) whose followers' append acknowledgements are all lost: its commit index cannot move. */
function ackless(ids: number[], config: Partial<RaftConfig>): Network {
  const net = new Network(ids, { config: { checkQuorum: false, preVote: false, ...config } });
  electLeader(net, 1);
  net.trace = [];
  net.drop = (m: Message) => m.type === 'appResp';
  return net;
}

const durableNotices = (net: Network): Message[] => net.trace.filter((m) => m.type === 'durable');

describe('leader durable notices', () => {
  it("commit a follower's forwarded proposal on the leader's durability, before the leader's commit index gets there", () => {
    const net = ackless([1, 2, 3], { leaderDurableNotices: true });
    const committedBefore = net.node(1).raw.status().hardState.commit;
    net.node(2).raw.propose(enc('x'));
    net.deliver();
    assert.deepEqual(net.node(2).applied, ['x'], 'the forwarding follower applied its write');
    assert.deepEqual(net.node(1).applied, [], 'the leader has not committed it');
    assert.equal(net.node(1).raw.status().hardState.commit, committedBefore);
    assert.deepEqual(net.node(3).applied, [], 'the other follower was not told');
    assert.deepEqual(
      durableNotices(net).map((m) => [m.from, m.to]),
      [[1, 2]],
      'one notice, to the follower that forwarded',
    );
  });

  it('are not sent by default (etcd Raft), nor in a group of five voters', () => {
    for (const [ids, config] of [
      [[1, 2, 3], {}],
      [[1, 2, 3, 4, 5], { leaderDurableNotices: true }],
    ] as const) {
      const net = ackless([...ids], config);
      net.node(2).raw.propose(enc('x'));
      net.deliver();
      assert.deepEqual(net.node(2).applied, [], `${ids.length} voters: no commit without the leader`);
      assert.deepEqual(durableNotices(net), [], `${ids.length} voters: no notices`);
    }
  });

  it('do not commit across a conf change entry', () => {
    const net = ackless([1, 2, 3], { leaderDurableNotices: true });
    net.node(2).raw.proposeConfChange({ transition: 'auto', changes: [{ type: 'addLearner', nodeId: 4 }], context: new Uint8Array(0) });
    net.node(2).raw.propose(enc('after-conf'));
    net.deliver();
    assert.ok(durableNotices(net).length > 0, 'the leader sent notices');
    assert.deepEqual(net.node(2).applied, [], 'nothing committed past the conf entry');
    assert.equal(net.node(2).raw.status().hardState.commit, net.node(1).raw.status().hardState.commit);
  });

  for (const fault of [undefined, 'readBelowDurableNotices'] as const) {
    it(`keep a read at the leader above a write acknowledged on a notice${fault ? ' (unless readBelowDurableNotices)' : ''}`, () => {
      const net = ackless([1, 2, 3], { leaderDurableNotices: true, testingFault: fault });
      net.node(2).raw.propose(enc('w'));
      net.deliver();
      const acknowledgedAt = net.node(2).appliedIndex;
      assert.deepEqual(net.node(2).applied, ['w']);
      net.node(1).raw.readIndex(enc('r'));
      net.deliver();
      const read = net.node(1).readStates.at(-1);
      assert.ok(read !== undefined, 'the read was confirmed by heartbeats');
      if (fault === undefined) assert.ok(read.index >= acknowledgedAt, `read index ${read.index} >= ${acknowledgedAt}`);
      else assert.ok(read.index < acknowledgedAt, `the fault reads at ${read.index}, below ${acknowledgedAt}`);
    });
  }
});
