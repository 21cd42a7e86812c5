// Unit tests of the building blocks: quorum, inflights, progress, unstable log, raft log, rng, config.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { majorityCommittedIndex, majorityVoteResult, jointCommittedIndex, jointVoteResult } from '../../src/raft/quorum.ts';
import { Inflights } from '../../src/raft/inflights.ts';
import { Progress } from '../../src/raft/progress.ts';
import { UnstableLog } from '../../src/raft/log-unstable.ts';
import { RaftLog, NO_LIMIT } from '../../src/raft/log.ts';
import { MemoryStorage, seededRng, defaultRaftConfig, ConfigError, CompactedError } from '../../src/raft/index.ts';
import type { Entry } from '../../src/raft/index.ts';

const ent = (index: number, term: number, data = ''): Entry => ({ index, term, type: 'normal', data: new TextEncoder().encode(data) });
const ents = (from: number, terms: number[]): Entry[] => terms.map((term, i) => ent(from + i, term));

test('majority commit index is the highest index held by a majority', () => {
  const match = new Map([[1, 5], [2, 3], [3, 9]]);
  assert.equal(majorityCommittedIndex(new Set([1, 2, 3]), (id) => match.get(id) ?? 0), 5);
  assert.equal(majorityCommittedIndex(new Set([1, 2, 3, 4]), (id) => match.get(id) ?? 0), 3);
  assert.equal(majorityCommittedIndex(new Set([3]), (id) => match.get(id) ?? 0), 9);
});

test('joint commit index is the minimum of both majorities', () => {
  const match = new Map([[1, 5], [2, 5], [3, 1], [4, 2], [5, 2]]);
  const m = (id: number): number => match.get(id) ?? 0;
  assert.equal(jointCommittedIndex({ incoming: new Set([1, 2, 3]), outgoing: new Set([3, 4, 5]) }, m), 2);
  assert.equal(jointCommittedIndex({ incoming: new Set([1, 2, 3]), outgoing: new Set() }, m), 5);
});

test('vote results: won, pending, lost; joint needs both', () => {
  const voters = new Set([1, 2, 3]);
  assert.equal(majorityVoteResult(voters, new Map([[1, true]])), 'pending');
  assert.equal(majorityVoteResult(voters, new Map([[1, true], [2, true]])), 'won');
  assert.equal(majorityVoteResult(voters, new Map([[1, false], [2, false]])), 'lost');
  assert.equal(majorityVoteResult(new Set(), new Map()), 'won');
  const joint = { incoming: new Set([1, 2, 3]), outgoing: new Set([4, 5, 6]) };
  assert.equal(jointVoteResult(joint, new Map([[1, true], [2, true]])), 'pending');
  assert.equal(jointVoteResult(joint, new Map([[1, true], [2, true], [4, true], [5, true]])), 'won');
  assert.equal(jointVoteResult(joint, new Map([[1, true], [2, true], [4, false], [5, false]])), 'lost');
});

test('inflights are bounded by count and by bytes, freed by acknowledgement', () => {
  const byCount = new Inflights(3, 0);
  byCount.add(1, 10);
  byCount.add(2, 10);
  assert.equal(byCount.full(), false);
  byCount.add(3, 10);
  assert.equal(byCount.full(), true);
  assert.throws(() => byCount.add(4, 10));
  byCount.freeLE(2);
  assert.equal(byCount.count, 1);
  assert.equal(byCount.full(), false);
  byCount.add(4, 10);
  byCount.add(5, 10); // wraps around the ring
  byCount.freeFirstOne();
  assert.equal(byCount.count, 2);
  assert.equal(byCount.bytes, 20);
  const byBytes = new Inflights(100, 25);
  byBytes.add(1, 10);
  byBytes.add(2, 10);
  assert.equal(byBytes.full(), false);
  byBytes.add(3, 10);
  assert.equal(byBytes.full(), true);
  byBytes.freeLE(1);
  assert.equal(byBytes.full(), false);
});

test('progress state machine: probe pauses after one send, replicate pipelines, decrement on reject', () => {
  const pr = new Progress(0, 6, new Inflights(2, 0), false);
  pr.sentEntries(3, 30);
  assert.equal(pr.isPaused(), true, 'probe sends one message at a time');
  assert.equal(pr.maybeUpdate(5), true);
  pr.becomeReplicate();
  assert.equal(pr.next, 6);
  pr.sentEntries(2, 20);
  assert.equal(pr.next, 8);
  assert.equal(pr.isPaused(), false);
  pr.sentEntries(2, 20);
  assert.equal(pr.isPaused(), true, 'two messages in flight fill the window');
  assert.equal(pr.maybeDecrTo(4, 4), false, 'stale rejection below match is ignored');
  assert.equal(pr.maybeDecrTo(7, 5), true);
  assert.equal(pr.next, 6);
  pr.becomeSnapshot(20);
  assert.equal(pr.isPaused(), true);
  pr.becomeProbe();
  assert.equal(pr.next, 21, 'probing resumes after the pending snapshot');
  const probe = new Progress(3, 10, new Inflights(2, 0), false);
  assert.equal(probe.maybeDecrTo(8, 2), false, 'probe ignores rejections of other indexes');
  assert.equal(probe.maybeDecrTo(9, 2), true);
  assert.equal(probe.next, 4, 'never below match + 1');
});

test('unstable log: truncate and append, stableTo ignores replaced entries', () => {
  const u = new UnstableLog(5);
  u.truncateAndAppend(ents(5, [1, 1, 1]));
  assert.equal(u.maybeLastIndex(), 7);
  u.acceptInProgress();
  assert.deepEqual(u.nextEntries(), []);
  u.truncateAndAppend(ents(6, [2, 2, 2]));
  assert.deepEqual(u.nextEntries().map((e) => e.index), [6, 7, 8], 'replaced entries are handed out again');
  u.stableTo(7, 1);
  assert.equal(u.offset, 5, 'stableTo with a replaced term is ignored');
  u.stableTo(6, 2);
  assert.equal(u.offset, 7);
  assert.deepEqual(u.entries.map((e) => e.term), [2, 2]);
});

test('raft log: maybeAppend checks the previous entry and truncates conflicts', () => {
  const storage = new MemoryStorage();
  storage.append(ents(1, [1, 1, 2]));
  const log = new RaftLog(storage, NO_LIMIT);
  assert.equal(log.maybeAppend({ index: 3, term: 1 }, 0, ents(4, [3]), false), null, 'mismatching prev is refused');
  assert.equal(log.maybeAppend({ index: 2, term: 1 }, 2, ents(3, [3, 3]), false), 4);
  assert.equal(log.term(3), 3);
  assert.equal(log.committed, 2);
  assert.equal(log.maybeAppend({ index: 1, term: 1 }, 3, ents(2, [1]), false), 2, 'a stale append keeps the tail');
  assert.equal(log.lastIndex(), 4);
  assert.throws(() => log.maybeAppend({ index: 1, term: 1 }, 4, ents(2, [9]), false), /conflicts with committed/);
});

test('raft log: findConflictByTerm skips entries with larger terms', () => {
  const storage = new MemoryStorage();
  storage.append(ents(1, [1, 1, 2, 2, 5, 5, 5]));
  const log = new RaftLog(storage, NO_LIMIT);
  assert.deepEqual(log.findConflictByTerm(7, 4), { index: 4, term: 2 });
  assert.deepEqual(log.findConflictByTerm(7, 1), { index: 2, term: 1 });
  assert.deepEqual(log.findConflictByTerm(7, 0), { index: 0, term: 0 });
  storage.createSnapshot(3, { voters: [1], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false }, new Uint8Array());
  storage.compact(3);
  const compacted = new RaftLog(storage, NO_LIMIT);
  assert.deepEqual(compacted.findConflictByTerm(7, 1), { index: 2, term: 0 }, 'compacted entries are a possible match');
});

test('raft log: slice spans storage and unstable, respects maxBytes, throws when compacted', () => {
  const storage = new MemoryStorage();
  storage.append(ents(1, [1, 1, 1]));
  const log = new RaftLog(storage, NO_LIMIT);
  log.append(ents(4, [2, 2]));
  assert.deepEqual(log.slice(2, 6, NO_LIMIT).map((e) => e.index), [2, 3, 4, 5]);
  assert.deepEqual(log.slice(2, 6, 1).map((e) => e.index), [2], 'at least one entry');
  assert.deepEqual(log.slice(2, 6, 24 * 3).map((e) => e.index), [2, 3, 4]);
  storage.createSnapshot(2, { voters: [1], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false }, new Uint8Array());
  storage.compact(2);
  assert.throws(() => log.slice(2, 4, NO_LIMIT), CompactedError);
});

test('raft log: only persisted committed entries are handed out for applying', () => {
  const storage = new MemoryStorage();
  storage.append(ents(1, [1, 1]));
  const log = new RaftLog(storage, NO_LIMIT);
  log.append(ents(3, [1, 1]));
  log.commitTo(4);
  assert.deepEqual(log.nextCommittedEntries().map((e) => e.index), [1, 2]);
  storage.append(ents(3, [1, 1])); // the driver persists, then acknowledges
  log.unstable.stableTo(4, 1);
  assert.deepEqual(log.nextCommittedEntries().map((e) => e.index), [1, 2, 3, 4]);
  const limited = new RaftLog(storage, 30);
  limited.commitTo(2);
  assert.deepEqual(limited.nextCommittedEntries().map((e) => e.index), [1], 'maxCommittedSizePerReady bounds a Ready');
});

test('seeded rng is deterministic and in range', () => {
  const a = seededRng(42);
  const b = seededRng(42);
  const seqA = Array.from({ length: 50 }, () => a.nextInt(10));
  const seqB = Array.from({ length: 50 }, () => b.nextInt(10));
  assert.deepEqual(seqA, seqB);
  assert.ok(seqA.every((v) => v >= 0 && v < 10));
  assert.ok(new Set(seqA).size > 5, 'values spread');
  assert.notDeepEqual(Array.from({ length: 20 }, () => seededRng(7).nextInt(1000)), seqA.slice(0, 20));
});

test('default config is etcd-like and validated', () => {
  const config = defaultRaftConfig(1, seededRng(1));
  assert.equal(config.electionTicks, 10);
  assert.equal(config.heartbeatTicks, 1);
  assert.equal(config.maxSizePerMsg, 1024 * 1024);
  assert.equal(config.maxInflightMsgs, 256);
  assert.equal(config.checkQuorum, true);
  assert.equal(config.preVote, true);
  assert.equal(config.readOnlyOption, 'safe');
  assert.equal(defaultRaftConfig(1, seededRng(1), { electionTicks: 5 }).electionTicks, 5);
  assert.throws(() => defaultRaftConfig(0, seededRng(1)), ConfigError);
  assert.throws(() => defaultRaftConfig(1, seededRng(1), { electionTicks: 1, heartbeatTicks: 1 }), ConfigError);
});
