// MemoryStorage: etcd semantics for entries, term, append truncation, snapshots, compaction, clone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStorage, CompactedError, UnavailableError, SnapshotOutOfDateError, RaftError, type Entry } from '../../src/raft/index.ts';
import { confState } from './helpers.ts';

const ent = (index: number, term: number): Entry => ({ index, term, type: 'normal', data: new Uint8Array(8) });
const ents = (from: number, terms: number[]): Entry[] => terms.map((term, i) => ent(from + i, term));

function storageWith(terms: number[]): MemoryStorage {
  const s = new MemoryStorage(confState([1]));
  s.append(ents(1, terms));
  return s;
}

test('fresh storage reports the bootstrap conf state and an empty log at index 0', () => {
  const s = new MemoryStorage(confState([1, 2, 3]));
  assert.deepEqual(s.initialState().confState.voters, [1, 2, 3]);
  assert.deepEqual(s.initialState().hardState, { term: 0, vote: 0, commit: 0 });
  assert.equal(s.firstIndex(), 1);
  assert.equal(s.lastIndex(), 0);
  assert.equal(s.term(0), 0);
  assert.throws(() => s.term(1), UnavailableError);
  assert.throws(() => s.entries(1, 1, 100), UnavailableError);
});

test('entries and term honour bounds and the size limit (at least one entry)', () => {
  const s = storageWith([1, 1, 2, 3]);
  assert.deepEqual(s.entries(2, 5, 1_000_000).map((e) => e.index), [2, 3, 4]);
  assert.deepEqual(s.entries(2, 5, 0).map((e) => e.index), [2]);
  assert.deepEqual(s.entries(2, 5, 64).map((e) => e.index), [2, 3], 'each entry counts 8 bytes + 24 overhead');
  assert.throws(() => s.entries(2, 6, 100), UnavailableError);
  assert.equal(s.term(3), 2);
  assert.throws(() => s.term(5), UnavailableError);
});

test('append truncates a conflicting suffix and skips compacted entries', () => {
  const s = storageWith([1, 1, 1, 1]);
  s.append(ents(3, [2, 2, 2]));
  assert.deepEqual([1, 2, 3, 4, 5].map((i) => s.term(i)), [1, 1, 2, 2, 2]);
  assert.equal(s.lastIndex(), 5);
  s.append(ents(2, [1])); // shorter overlapping append truncates after it (etcd semantics)
  assert.equal(s.lastIndex(), 2);
  assert.throws(() => s.append(ents(5, [3])), /missing log entry/);
  s.createSnapshot(2, confState([1]), new Uint8Array());
  s.compact(2);
  s.append(ents(1, [1, 1, 4]));
  assert.equal(s.lastIndex(), 3);
  assert.equal(s.term(3), 4);
});

test('compact discards entries before the index; compacted reads throw CompactedError', () => {
  const s = storageWith([1, 1, 2, 2, 3]);
  s.compact(3);
  assert.equal(s.firstIndex(), 4);
  assert.equal(s.term(3), 2, 'the compaction point keeps its term');
  assert.throws(() => s.term(2), CompactedError);
  assert.throws(() => s.entries(3, 5, 100), CompactedError);
  assert.throws(() => s.compact(3), CompactedError);
  assert.throws(() => s.compact(9), /out of bound/);
  const e = new CompactedError();
  assert.ok(e instanceof RaftError);
  assert.equal(e.message, 'requested index is unavailable due to compaction');
});

test('snapshots: create, apply replaces the log, older ones are refused', () => {
  const s = storageWith([1, 1, 2]);
  const snap = s.createSnapshot(2, confState([1, 2]), new Uint8Array([7]));
  assert.equal(snap.metadata.term, 1);
  assert.deepEqual(s.snapshot().data, new Uint8Array([7]));
  assert.throws(() => s.createSnapshot(2, confState([1]), new Uint8Array()), SnapshotOutOfDateError);
  const other = new MemoryStorage();
  other.append(ents(1, [1, 1, 1, 1, 1]));
  other.applySnapshot({ metadata: { index: 3, term: 2, confState: confState([1, 2]) }, data: new Uint8Array() });
  assert.equal(other.firstIndex(), 4);
  assert.equal(other.lastIndex(), 3);
  assert.equal(other.term(3), 2);
  assert.deepEqual(other.initialState().confState.voters, [1, 2]);
  assert.throws(() => other.applySnapshot({ metadata: { index: 3, term: 2, confState: confState([1]) }, data: new Uint8Array() }), SnapshotOutOfDateError);
});

test('clone is independent of the original', () => {
  const s = storageWith([1, 1]);
  s.setHardState({ term: 1, vote: 1, commit: 2 });
  const copy = s.clone();
  s.append(ents(3, [2]));
  s.setHardState({ term: 2, vote: 0, commit: 3 });
  s.setConfState(confState([1, 2]));
  assert.equal(copy.lastIndex(), 2);
  assert.deepEqual(copy.initialState().hardState, { term: 1, vote: 1, commit: 2 });
  assert.deepEqual(copy.initialState().confState.voters, [1]);
  copy.compact(2);
  assert.equal(s.firstIndex(), 1);
});
