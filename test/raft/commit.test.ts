// The commit rule: only entries of the leader's term commit by counting replicas (Raft §5.4.2,
// Figure 8); earlier entries commit indirectly. Also the commit index a leader hands to followers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStorage, type Message, type RaftConfig } from '../../src/raft/index.ts';
import { Network, confState, dec, enc } from './helpers.ts';

function storageWith(terms: number[], texts: string[], term: number): MemoryStorage {
  const storage = new MemoryStorage(confState([1, 2, 3]));
  storage.append(terms.map((t, i) => ({ index: i + 1, term: t, type: 'normal' as const, data: enc(texts[i]) })));
  storage.setHardState({ term, vote: 0, commit: 1 });
  return storage;
}

/**
 * Figure 8: S1 (log t1 t2) leads term 4 and copies its term-2 entry to S2, so a majority holds
 * index 2 — but S3 (log t1 t3) can still be elected and overwrite it.
 */
function figure8(fault?: RaftConfig['testingFault']): Network {
  const logs: Record<number, [number[], string[]]> = {
    1: [[1, 2], ['base', 'old-t2']],
    2: [[1], ['base']],
    3: [[1, 3], ['base', 'new-t3']],
  };
  const net = new Network([1, 2, 3], {
    config: { checkQuorum: false, preVote: false, maxSizePerMsg: 1, testingFault: fault },
    storage: (id) => storageWith(logs[id][0], logs[id][1], 3),
  });
  let firstToS2 = true;
  net.drop = (m: Message): boolean => {
    if (m.type !== 'app') return false;
    if (m.to === 3) return true;
    if (m.to !== 2) return false;
    if (firstToS2) {
      firstToS2 = false; // rejected by S2 anyway: it lacks index 2
      return false;
    }
    return m.entries.some((e) => e.index === 3) || m.commit >= 2; // S2 gets index 2 only
  };
  net.node(1).raw.campaign();
  net.deliver();
  assert.equal(net.role(1), 'leader');
  assert.equal(net.term(1), 4);
  assert.equal(net.node(2).storage.lastIndex(), 2, 'a majority (S1, S2) now holds index 2 of term 2');
  return net;
}

test('a leader does not commit an entry of an earlier term by counting replicas', () => {
  const net = figure8();
  assert.equal(net.node(1).raw.status().hardState.commit, 1);
  // S3 may still win (its last term 3 beats S2's 2) and overwrite index 2 — which is allowed.
  net.heal();
  net.isolate(1);
  net.node(3).raw.campaign();
  net.deliver();
  assert.equal(net.role(3), 'leader');
  assert.equal(dec(net.node(2).storage.entries(2, 3, 1000)[0].data), 'new-t3');
  net.heal();
  net.tick(3);
  net.deliver();
  for (const id of [1, 2, 3]) assert.deepEqual(net.node(id).applied.slice(0, 2), ['base', 'new-t3']);
});

test('an earlier-term entry commits once an entry of the current term is replicated', () => {
  const net = figure8();
  net.heal();
  net.tick(1);
  net.deliver();
  assert.equal(net.node(1).raw.status().hardState.commit, 3);
  for (const id of [1, 2, 3]) assert.deepEqual(net.node(id).applied.slice(0, 2), ['base', 'old-t2']);
});

test('testing fault commitOldTermByCounting commits the Figure 8 entry (and breaks safety)', () => {
  const net = figure8('commitOldTermByCounting');
  assert.equal(net.node(1).raw.status().hardState.commit, 2, 'the fault commits by counting');
  assert.deepEqual(net.node(1).applied, ['base', 'old-t2'], 'and applies an entry that can still be overwritten');
  net.heal();
  net.isolate(1);
  net.node(3).raw.campaign();
  net.deliver();
  assert.equal(net.role(3), 'leader', 'S3 wins and overwrites the "committed" entry');
  net.tick(3);
  net.deliver();
  assert.deepEqual(net.node(3).applied.slice(0, 2), ['base', 'new-t3'], 'state machines diverge at index 2');
});

test('followers learn the commit index from appends and heartbeats, never beyond their match', () => {
  const net = new Network([1, 2, 3]);
  net.campaign(1);
  net.isolate(3);
  net.node(1).raw.propose(enc('a'));
  net.deliver();
  assert.equal(net.node(1).raw.status().hardState.commit, 2);
  net.heal();
  net.trace = [];
  net.tick(1);
  net.deliver();
  const heartbeatTo3 = net.trace.find((m) => m.type === 'heartbeat' && m.to === 3);
  assert.ok(heartbeatTo3 !== undefined && heartbeatTo3.type === 'heartbeat');
  assert.equal(heartbeatTo3.commit, 1, 'heartbeat commit is capped by the follower match');
  assert.equal(net.node(3).raw.status().hardState.commit, 2);
  assert.deepEqual(net.node(3).applied, ['a']);
});
