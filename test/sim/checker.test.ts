// The simulator's invariant checks on hand-made histories: each check fires on the violation it
// names and stays silent on the legal history next to it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Checker, InvariantViolation } from '../../src/sim/index.ts';
import type { Invariant, LogView } from '../../src/sim/index.ts';
import type { Entry } from '../../src/raft/index.ts';

/** A persisted log: terms of entries firstIndex.., with the snapshot (firstIndex-1) term first. */
class FakeLog implements LogView {
  constructor(
    private readonly snapshotIndex: number,
    private readonly terms: number[],
  ) {}
  firstIndex(): number {
    return this.snapshotIndex + 1;
  }
  lastIndex(): number {
    return this.snapshotIndex + this.terms.length - 1;
  }
  term(index: number): number {
    const term = this.terms[index - this.snapshotIndex];
    if (term === undefined) throw new Error(`term(${index}) out of range`);
    return term;
  }
}

/** Log with entries 1..terms.length at the given terms (index 0 has term 0). */
function log(...terms: number[]): FakeLog {
  return new FakeLog(0, [0, ...terms]);
}

function entry(index: number, term: number, payload = index * 100 + term): Entry {
  return { index, term, type: 'normal', data: new Uint8Array([payload & 0xff, payload >> 8]) };
}

function expectViolation(invariant: Invariant, action: () => void): void {
  assert.throws(action, (error: unknown) => {
    assert.ok(error instanceof InvariantViolation, `expected InvariantViolation, got ${String(error)}`);
    assert.equal(error.invariant, invariant);
    return true;
  });
}

describe('sim checker', () => {
  it('election safety: one leader per term', () => {
    const checker = new Checker();
    checker.leaderElected(1, 2, log(1, 2));
    checker.leaderElected(1, 2, log(1, 2)); // the same leader seen again is fine
    checker.leaderElected(2, 3, log(1, 2, 3));
    expectViolation('election safety', () => checker.leaderElected(3, 3, log(1, 2, 3)));
  });

  it('vote safety: at most one vote per term, terms never go back', () => {
    const checker = new Checker();
    checker.hardStatePersisted(1, { term: 1, vote: 0, commit: 0 }, { term: 1, vote: 2, commit: 0 });
    checker.hardStatePersisted(1, { term: 1, vote: 2, commit: 0 }, { term: 2, vote: 3, commit: 0 });
    expectViolation('vote safety', () =>
      checker.hardStatePersisted(1, { term: 2, vote: 3, commit: 0 }, { term: 2, vote: 1, commit: 0 }),
    );
    expectViolation('vote safety', () =>
      checker.hardStatePersisted(1, { term: 2, vote: 3, commit: 0 }, { term: 1, vote: 0, commit: 0 }),
    );
    expectViolation('ready contract', () =>
      checker.hardStatePersisted(1, { term: 2, vote: 3, commit: 5 }, { term: 2, vote: 3, commit: 4 }),
    );
  });

  it('log matching: same (index, term) means same entry and same history', () => {
    const checker = new Checker();
    checker.entriesPersisted(1, log(1, 1, 2), [entry(1, 1), entry(2, 1), entry(3, 2)]);
    checker.entriesPersisted(2, log(1, 1, 2), [entry(1, 1), entry(2, 1), entry(3, 2)]);
    // n3 holds (3, t2) after a different entry at index 2: the logs agree at 3 but not before.
    checker.entriesPersisted(3, log(1, 3), [entry(1, 1), entry(2, 3)]);
    expectViolation('log matching', () => checker.entriesPersisted(3, log(1, 3, 2), [entry(3, 2)]));
  });

  it('log matching: one entry per (index, term), terms never decrease along a log', () => {
    const checker = new Checker();
    checker.entriesPersisted(1, log(1, 1), [entry(1, 1), entry(2, 1)]);
    expectViolation('log matching', () =>
      checker.entriesPersisted(2, log(1, 1), [entry(1, 1), entry(2, 1, 999)]),
    );
    expectViolation('log matching', () => checker.entriesPersisted(4, log(2, 1), [entry(1, 2), entry(2, 1)]));
  });

  it('log matching: entries right after a snapshot are checked against the snapshot term', () => {
    const checker = new Checker();
    checker.entriesPersisted(1, log(1, 1, 2), [entry(1, 1), entry(2, 1), entry(3, 2)]);
    checker.entriesPersisted(2, new FakeLog(2, [1, 2]), [entry(3, 2)]);
    expectViolation('log matching', () => checker.entriesPersisted(3, new FakeLog(2, [2, 2]), [entry(3, 2)]));
  });

  it('log matching: the pairwise cross-check of whole logs', () => {
    const checker = new Checker();
    const agree = new Map([
      [1, log(1, 1, 2, 3)],
      [2, log(1, 1, 2)],
      [3, new FakeLog(2, [1, 2, 4])],
    ]);
    checker.crossCheckLogs(agree);
    const disagree = new Map([
      [1, log(1, 1, 2, 3)],
      [2, log(1, 2, 2, 3)],
    ]);
    expectViolation('log matching', () => checker.crossCheckLogs(disagree));
  });

  it('leader completeness: a new leader holds every committed entry', () => {
    const checker = new Checker();
    checker.commitAdvanced(1, 2, log(1, 2, 2), 0, 3);
    checker.leaderElected(1, 3, log(1, 2, 2, 3));
    expectViolation('leader completeness', () => checker.leaderElected(2, 4, log(1, 2)));
    expectViolation('leader completeness', () => checker.leaderElected(3, 5, log(1, 4, 4, 5)));
  });

  it('leader completeness: a later-term leader already elected must hold entries committed afterwards', () => {
    const checker = new Checker();
    // n5 leads term 3 without index 2; then n1, at term 2, reports index 2 (term 2) committed.
    checker.leaderElected(5, 3, log(1, 3));
    expectViolation('leader completeness', () => checker.commitAdvanced(1, 2, log(1, 2), 0, 2));
  });

  it('leader completeness: a leader of an older term elected late need not hold later commits', () => {
    const checker = new Checker();
    checker.commitAdvanced(1, 5, log(1, 2, 5), 0, 3); // committed by term 5
    checker.leaderElected(2, 4, log(1, 2)); // delayed votes of term 4: legal, it cannot commit
    expectViolation('leader completeness', () => checker.leaderElected(3, 6, log(1, 2)));
  });

  it('leader completeness: a compacted log is checked from its snapshot on', () => {
    const checker = new Checker();
    checker.commitAdvanced(1, 2, log(1, 1, 2, 2), 0, 4);
    checker.leaderElected(2, 3, new FakeLog(3, [2, 2, 3]));
    expectViolation('leader completeness', () => checker.leaderElected(3, 4, new FakeLog(3, [2, 3])));
  });

  it('state machine safety: nodes commit and apply the same entry at each index', () => {
    const checker = new Checker();
    checker.commitAdvanced(1, 1, log(1, 1), 0, 2);
    expectViolation('state machine safety', () => checker.commitAdvanced(2, 2, log(1, 2), 0, 2));
    checker.entryApplied(1, entry(1, 1));
    checker.entryApplied(2, entry(1, 1));
    expectViolation('state machine safety', () => checker.entryApplied(3, entry(1, 1, 4242)));
    expectViolation('state machine safety', () => checker.entryApplied(3, entry(2, 7)));
  });

  it('state machine safety: every applied sequence is a prefix of the longest', () => {
    const checker = new Checker();
    checker.writeApplied(1, 0, 10);
    checker.writeApplied(1, 1, 11);
    checker.writeApplied(2, 0, 10);
    expectViolation('state machine safety', () => checker.writeApplied(2, 1, 12));
    checker.stateRestored(3, [10]);
    checker.stateRestored(3, [10, 11]);
    expectViolation('state machine safety', () => checker.stateRestored(3, [11]));
    expectViolation('state machine safety', () => checker.stateRestored(3, [10, 11, 12]));
  });

  it('read linearizability: a read sees every write acknowledged before it began', () => {
    const checker = new Checker();
    checker.readStarted(1, 1, 0); // before any write: may observe nothing
    checker.writeApplied(1, 0, 10); // w10 acknowledged
    checker.readStarted(2, 2, 5);
    checker.readServed(1, 1, 1, 0);
    checker.readServed(2, 2, 1, 1);
    checker.readStarted(3, 3, 6);
    expectViolation('read linearizability', () => checker.readServed(3, 3, 1, 0));
    assert.equal(checker.readsServed, 3);
  });
});
