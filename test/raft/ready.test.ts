// Ready/advance semantics: one Ready at a time, mustSync, soft/hard state only on change,
// committed entries only once persisted, messages held until the Ready is taken.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStorage, RawNode, defaultRaftConfig, seededRng } from '../../src/raft/index.ts';
import { confState, enc } from './helpers.ts';

function follower(): { node: RawNode; storage: MemoryStorage } {
  const storage = new MemoryStorage(confState([1, 2, 3]));
  return { node: new RawNode(defaultRaftConfig(2, seededRng(1)), storage), storage };
}

test('a fresh node has no Ready; an append produces entries, hard state, soft state and a response', () => {
  const { node, storage } = follower();
  assert.equal(node.hasReady(), false);
  node.step({ type: 'app', from: 1, to: 2, term: 1, index: 0, logTerm: 0, commit: 1, entries: [{ index: 1, term: 1, type: 'normal', data: enc('a') }] });
  assert.equal(node.hasReady(), true);
  const rd = node.ready();
  assert.deepEqual(rd.softState, { leader: 1, role: 'follower' });
  assert.deepEqual(rd.hardState, { term: 1, vote: 0, commit: 1 });
  assert.deepEqual(rd.entries.map((e) => e.index), [1]);
  assert.deepEqual(rd.committedEntries, [], 'committed but not yet persisted: not applied');
  assert.equal(rd.mustSync, true);
  assert.deepEqual(rd.messages.map((m) => m.type), ['appResp']);
  assert.throws(() => node.ready(), /before advance/);
  storage.append(rd.entries);
  storage.setHardState(rd.hardState!);
  node.advance();
  const rd2 = node.ready();
  assert.deepEqual(rd2.committedEntries.map((e) => e.index), [1]);
  assert.equal(rd2.softState, null);
  assert.equal(rd2.hardState, null);
  assert.equal(rd2.mustSync, false);
  node.advance();
  assert.equal(node.hasReady(), false);
});

test('a commit-only change does not require fsync', () => {
  const { node, storage } = follower();
  node.step({ type: 'app', from: 1, to: 2, term: 1, index: 0, logTerm: 0, commit: 0, entries: [{ index: 1, term: 1, type: 'normal', data: enc('a') }] });
  const rd = node.ready();
  storage.append(rd.entries);
  node.advance();
  node.step({ type: 'heartbeat', from: 1, to: 2, term: 1, commit: 1, context: new Uint8Array() });
  const rd2 = node.ready();
  assert.deepEqual(rd2.hardState, { term: 1, vote: 0, commit: 1 });
  assert.equal(rd2.mustSync, false);
  node.advance();
});

test('inputs between ready() and advance() wait for the next Ready', () => {
  const { node, storage } = follower();
  node.step({ type: 'app', from: 1, to: 2, term: 1, index: 0, logTerm: 0, commit: 0, entries: [{ index: 1, term: 1, type: 'normal', data: enc('a') }] });
  const rd = node.ready();
  node.step({ type: 'app', from: 1, to: 2, term: 1, index: 1, logTerm: 1, commit: 0, entries: [{ index: 2, term: 1, type: 'normal', data: enc('b') }] });
  assert.equal(node.hasReady(), false, 'one Ready at a time');
  storage.append(rd.entries);
  node.advance();
  const rd2 = node.ready();
  assert.deepEqual(rd2.entries.map((e) => e.index), [2], 'only the new entry');
  assert.equal(rd2.messages.length, 1);
  storage.append(rd2.entries);
  node.advance();
  assert.equal(node.status().lastIndex, 2);
});

test('advance() without persisting the entries is caught', () => {
  const { node } = follower();
  node.step({ type: 'app', from: 1, to: 2, term: 1, index: 0, logTerm: 0, commit: 0, entries: [{ index: 1, term: 1, type: 'normal', data: enc('a') }] });
  node.ready();
  assert.throws(() => node.advance(), /not in storage/);
});
