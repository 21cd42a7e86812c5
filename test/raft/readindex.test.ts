// ReadIndex: safe reads confirmed by a heartbeat quorum, lease reads, forwarding from followers,
// reads held until the leader commits in its term, and dropped reads without a leader.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HeartbeatMsg } from '../../src/raft/index.ts';
import { Network, dec, electLeader, enc } from './helpers.ts';

test('safe read on the leader: served after a quorum acknowledges a heartbeat carrying the context', () => {
  const net = new Network([1, 2, 3]);
  electLeader(net, 1);
  net.node(1).raw.propose(enc('a'));
  net.deliver();
  net.isolate(2, 3);
  net.node(1).raw.readIndex(enc('r1'));
  net.deliver();
  assert.deepEqual(net.node(1).readStates, [], 'no quorum, no read');
  const hb = net.trace.filter((m): m is HeartbeatMsg => m.type === 'heartbeat' && dec(m.context) === 'r1');
  assert.equal(hb.length, 2, 'the read is confirmed by a heartbeat round with its context');
  net.heal();
  net.tick(1); // the next heartbeat carries the pending context again
  net.deliver();
  assert.deepEqual(net.node(1).readStates.map((rs) => [rs.index, dec(rs.context)]), [[2, 'r1']]);
});

test('one heartbeat ack from a majority confirms every earlier pending read', () => {
  const net = new Network([1, 2, 3]);
  electLeader(net, 1);
  net.isolate(2, 3);
  net.node(1).raw.readIndex(enc('a'));
  net.node(1).raw.readIndex(enc('b'));
  net.deliver();
  net.heal();
  net.tick(1);
  net.deliver();
  assert.deepEqual(net.node(1).readStates.map((rs) => dec(rs.context)), ['a', 'b']);
});

test('a follower forwards reads to the leader and gets the read index back', () => {
  const net = new Network([1, 2, 3]);
  electLeader(net, 1);
  net.node(1).raw.propose(enc('a'));
  net.deliver();
  net.node(3).raw.readIndex(enc('f'));
  net.deliver();
  assert.deepEqual(net.node(3).readStates.map((rs) => [rs.index, dec(rs.context)]), [[2, 'f']]);
  assert.deepEqual(net.node(1).readStates, []);
  assert.ok(net.trace.some((m) => m.type === 'readIndex' && m.from === 3 && m.term === 0));
});

test('reads without a leader are dropped silently', () => {
  const net = new Network([1, 2, 3]);
  net.node(2).raw.readIndex(enc('x'));
  net.deliver();
  assert.deepEqual(net.node(2).readStates, []);
  assert.equal(net.trace.length, 0);
});

test('a new leader holds reads until it has committed an entry in its term', () => {
  const fresh = new Network([1, 2, 3]);
  fresh.node(1).raw.campaign();
  fresh.drop = (m) => m.type === 'app' || m.type === 'appResp';
  fresh.deliver();
  assert.equal(fresh.role(1), 'leader');
  fresh.node(1).raw.readIndex(enc('early'));
  fresh.deliver();
  fresh.tick(1);
  fresh.deliver();
  assert.deepEqual(fresh.node(1).readStates, [], 'held: the commit index may be stale');
  fresh.heal();
  fresh.tick(1);
  fresh.deliver();
  assert.deepEqual(fresh.node(1).readStates.map((rs) => [rs.index, dec(rs.context)]), [[1, 'early']]);
});

test('lease-based reads are served at once with check quorum', () => {
  const net = new Network([1, 2, 3], { config: { readOnlyOption: 'leaseBased' } });
  electLeader(net, 1);
  net.isolate(2, 3);
  net.node(1).raw.readIndex(enc('lease'));
  net.deliver();
  assert.deepEqual(net.node(1).readStates.map((rs) => dec(rs.context)), ['lease']);
});

test('lease-based reads fall back to safe reads without check quorum', () => {
  const net = new Network([1, 2, 3], { config: { readOnlyOption: 'leaseBased', checkQuorum: false } });
  electLeader(net, 1);
  net.isolate(2, 3);
  net.node(1).raw.readIndex(enc('lease'));
  net.deliver();
  assert.deepEqual(net.node(1).readStates, [], 'needs a quorum round like a safe read');
  net.heal();
  net.tick(1);
  net.deliver();
  assert.deepEqual(net.node(1).readStates.map((rs) => dec(rs.context)), ['lease']);
});

test('a single-voter leader serves reads immediately', () => {
  const net = new Network([1]);
  electLeader(net, 1);
  net.deliver();
  net.node(1).raw.readIndex(enc('solo'));
  net.deliver();
  assert.deepEqual(net.node(1).readStates.map((rs) => [rs.index, dec(rs.context)]), [[1, 'solo']]);
});
