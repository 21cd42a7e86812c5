// The configuration changer (etcd's confchange semantics) and the ConfChange encoding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Changer, restoreConfState } from '../../src/raft/confchange.ts';
import { ProgressTracker } from '../../src/raft/tracker.ts';
import { encodeConfChange, decodeConfChange, ConfChangeError, type ConfChange, type ConfChangeSingle, type ConfState } from '../../src/raft/index.ts';

const add = (nodeId: number): ConfChangeSingle => ({ type: 'addNode', nodeId });
const remove = (nodeId: number): ConfChangeSingle => ({ type: 'removeNode', nodeId });
const learner = (nodeId: number): ConfChangeSingle => ({ type: 'addLearner', nodeId });

function trackerWith(voters: number[], learners: number[] = []): ProgressTracker {
  const tracker = new ProgressTracker(16, 0);
  restoreConfState(tracker, 10, { voters, votersOutgoing: [], learners, learnersNext: [], autoLeave: false });
  return tracker;
}

function install(tracker: ProgressTracker, result: ReturnType<Changer['simple']>): ConfState {
  tracker.config = result.config;
  tracker.progress = result.progress;
  tracker.assertInvariants();
  return tracker.confState();
}

test('simple changes: one voter at a time, any learners', () => {
  const tracker = trackerWith([1, 2, 3]);
  const changer = new Changer(tracker, 10);
  assert.deepEqual(install(tracker, changer.simple([add(4)])).voters, [1, 2, 3, 4]);
  assert.throws(() => new Changer(tracker, 10).simple([add(5), add(6)]), /more than one voter changed/);
  assert.throws(() => new Changer(tracker, 10).simple([remove(1), add(5)]), /more than one voter changed/);
  const cs = install(tracker, new Changer(tracker, 10).simple([learner(5), learner(6), remove(4)]));
  assert.deepEqual(cs.voters, [1, 2, 3]);
  assert.deepEqual(cs.learners, [5, 6]);
  assert.equal(tracker.progress.has(4), false);
  const promoted = install(tracker, new Changer(tracker, 10).simple([add(5)]));
  assert.deepEqual(promoted.voters, [1, 2, 3, 5]);
  assert.deepEqual(promoted.learners, [6]);
  assert.throws(() => new Changer(trackerWith([1]), 10).simple([remove(1)]), /removed all voters/);
});

test('the changer never mutates the tracker it reads', () => {
  const tracker = trackerWith([1, 2, 3]);
  new Changer(tracker, 10).simple([learner(3)]);
  assert.deepEqual(tracker.confState().voters, [1, 2, 3]);
  assert.equal(tracker.progress.get(3)?.isLearner, false);
});

test('joint consensus: enter, demote into learnersNext, leave', () => {
  const tracker = trackerWith([1, 2, 3]);
  const joint = install(tracker, new Changer(tracker, 10).enterJoint(true, [add(4), learner(3), remove(2)]));
  assert.deepEqual(joint.voters, [1, 4]);
  assert.deepEqual(joint.votersOutgoing, [1, 2, 3]);
  assert.deepEqual(joint.learnersNext, [3], 'an outgoing voter becomes a learner only after leaving');
  assert.deepEqual(joint.learners, []);
  assert.equal(joint.autoLeave, true);
  assert.equal(tracker.progress.has(2), true, 'outgoing voters keep their progress');
  assert.throws(() => new Changer(tracker, 10).enterJoint(false, [add(5)]), /already joint/);
  assert.throws(() => new Changer(tracker, 10).simple([add(5)]), /in joint config/);
  const left = install(tracker, new Changer(tracker, 10).leaveJoint());
  assert.deepEqual(left, { voters: [1, 4], votersOutgoing: [], learners: [3], learnersNext: [], autoLeave: false });
  assert.equal(tracker.progress.has(2), false);
  assert.equal(tracker.progress.get(3)?.isLearner, true);
  assert.throws(() => new Changer(tracker, 10).leaveJoint(), /non-joint/);
});

test('restoring a joint ConfState reproduces it exactly', () => {
  const cs: ConfState = { voters: [1, 2, 3], votersOutgoing: [1, 2, 4, 6], learners: [5], learnersNext: [4], autoLeave: true };
  const tracker = new ProgressTracker(16, 0);
  restoreConfState(tracker, 7, cs);
  assert.deepEqual(tracker.confState(), cs);
  const simple: ConfState = { voters: [3, 1], votersOutgoing: [], learners: [9], learnersNext: [], autoLeave: false };
  const t2 = new ProgressTracker(16, 0);
  restoreConfState(t2, 7, simple);
  assert.deepEqual(t2.confState().voters, [1, 3]);
  assert.deepEqual(t2.confState().learners, [9]);
});

test('ConfChange encoding round-trips deterministically and rejects garbage', () => {
  const change: ConfChange = { transition: 'explicit', changes: [add(4), learner(5), remove(2)], context: new Uint8Array([0, 255, 16]) };
  const encoded = encodeConfChange(change);
  assert.deepEqual(decodeConfChange(encoded), change);
  assert.deepEqual(encodeConfChange(decodeConfChange(encoded)), encoded);
  assert.throws(() => decodeConfChange(new TextEncoder().encode('{"transition":"auto"}')), ConfChangeError);
  assert.throws(() => decodeConfChange(new Uint8Array([1, 2, 3])), ConfChangeError);
  assert.deepEqual(decodeConfChange(new Uint8Array()), { transition: 'auto', changes: [], context: new Uint8Array() }, 'empty data leaves a joint config');
  assert.throws(
    () => decodeConfChange(new TextEncoder().encode('{"transition":"auto","changes":[{"type":"addNode","nodeId":-1}],"context":""}')),
    ConfChangeError,
  );
});
