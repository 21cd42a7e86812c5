// Raft's safety properties, checked incrementally while the simulated cluster runs. The cluster
// reports what each node persisted, applied and served; any contradiction throws InvariantViolation.
import { NONE } from '../raft/index.ts';
import type { Entry, EntryType, HardState, NodeId, SnapshotMetadata } from '../raft/index.ts';
import { assert } from '../util/index.ts';

export type Invariant =
  | 'election safety'
  | 'vote safety'
  | 'log matching'
  | 'leader completeness'
  | 'state machine safety'
  | 'read linearizability'
  | 'liveness'
  | 'ready contract'
  | 'core error'
  | 'sim error';

export class InvariantViolation extends Error {
  override name = 'InvariantViolation';
  readonly invariant: Invariant;
  constructor(invariant: Invariant, message: string) {
    super(`${invariant}: ${message}`);
    this.invariant = invariant;
  }
}

/** The part of a persisted log the checks read (MemoryStorage satisfies it). */
export interface LogView {
  firstIndex(): number;
  lastIndex(): number;
  /** Valid for firstIndex()-1 ..= lastIndex(). */
  term(index: number): number;
}

interface EntryRecord {
  type: EntryType;
  data: Uint8Array;
  /** Term of the entry before it in the first log that held it. */
  prevTerm: number;
  node: NodeId;
}

interface ReadRecord {
  node: NodeId;
  startStep: number;
  /** Writes acknowledged before the read began: the read must observe at least this many. */
  requiredWrites: number;
}

interface LeaderRecord {
  term: number;
  log: LogView;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class Checker {
  private readonly ignored: ReadonlySet<Invariant>;
  /** Every leader ever observed, by term. */
  private readonly leaderByTerm = new Map<number, NodeId>();
  /** Nodes that are leaders now (as far as the driver has seen), for commits that arrive after the election. */
  private readonly leaders = new Map<NodeId, LeaderRecord>();
  /** Every (index, term) ever persisted by any node: index → term → the entry. */
  private readonly persisted: Array<Map<number, EntryRecord> | undefined> = [];
  /** Term of the committed entry at each index (0 or undefined = not known). */
  private readonly committedTerm: number[] = [];
  /** The lowest term in which a node was seen holding each index as committed: it was committed by then. */
  private readonly commitTerm: number[] = [];
  private committedMax = 0;
  /** The entry applied at each index, by whichever node applied it first. */
  private readonly appliedAt: Array<Entry | undefined> = [];
  /** The canonical sequence of applied writes (ids); every node's sequence is a prefix of it. */
  readonly writes: number[] = [];
  private readonly reads = new Map<number, ReadRecord>();
  readsServed = 0;

  /** `ignore`: invariants not enforced (tests use it to show a later check also catches a bug). */
  constructor(ignore: readonly Invariant[] = []) {
    this.ignored = new Set(ignore);
  }

  private violation(invariant: Invariant, message: string): void {
    if (!this.ignored.has(invariant)) throw new InvariantViolation(invariant, message);
  }

  get highestCommitted(): number {
    return this.committedMax;
  }

  // ---- election safety and leader completeness ----

  leaderElected(node: NodeId, term: number, log: LogView): void {
    assert(term > 0, () => `leader n${node} with term 0`);
    const previous = this.leaderByTerm.get(term);
    if (previous !== undefined && previous !== node) {
      this.violation('election safety', `term ${term} has two leaders: n${previous} and n${node}`);
    }
    this.leaderByTerm.set(term, node);
    this.leaders.set(node, { term, log });
    this.checkLeaderHolds(node, term, log, 1, this.committedMax);
  }

  leaderLost(node: NodeId): void {
    this.leaders.delete(node);
  }

  leaderCount(): number {
    return this.leaderByTerm.size;
  }

  /**
   * The leader of `term` must hold, in its persisted log, every entry in [lo, hi] committed in an
   * earlier term. (A leader of an older term can still emerge late, from delayed votes: it need not
   * hold entries committed after its term, and it cannot commit anything itself.)
   */
  private checkLeaderHolds(node: NodeId, term: number, log: LogView, lo: number, hi: number): void {
    let top = hi;
    while (top >= lo && !((this.commitTerm[top] ?? Infinity) < term)) top--;
    if (top < lo) return;
    const last = log.lastIndex();
    if (last < top) {
      this.violation(
        'leader completeness',
        `n${node} leads term ${term} but its log ends at ${last}; index ${top} (term ${this.committedTerm[top] ?? '?'}) was committed by term ${this.commitTerm[top]}`,
      );
      return;
    }
    for (let index = Math.max(lo, log.firstIndex() - 1); index <= top; index++) {
      const want = this.committedTerm[index];
      if (want === undefined || want === 0 || !((this.commitTerm[index] ?? Infinity) < term)) continue;
      const got = log.term(index);
      if (got !== want) {
        this.violation(
          'leader completeness',
          `n${node} leads term ${term} with term ${got} at index ${index}, but the entry committed there (by term ${this.commitTerm[index]}) has term ${want}`,
        );
      }
    }
  }

  // ---- persisted state: votes, log matching, commit knowledge ----

  /** Call before the new hard state replaces `previous` in storage. */
  hardStatePersisted(node: NodeId, previous: HardState, next: HardState): void {
    if (next.term < previous.term) {
      this.violation('vote safety', `n${node} persisted term ${next.term} after term ${previous.term}`);
    }
    if (next.term === previous.term && previous.vote !== NONE && next.vote !== previous.vote) {
      this.violation(
        'vote safety',
        `n${node} voted for n${previous.vote} and then n${next.vote} in term ${next.term}`,
      );
    }
    if (next.commit < previous.commit) {
      this.violation(
        'ready contract',
        `n${node} persisted commit ${next.commit} after commit ${previous.commit}`,
      );
    }
  }

  /**
   * Entries just appended to `node`'s persisted log. Log matching, checked incrementally: each
   * (index, term) names one entry, and every log holding it agrees on the term just before it —
   * by induction, logs that share an (index, term) are identical up to there.
   */
  entriesPersisted(node: NodeId, log: LogView, entries: readonly Entry[]): void {
    const first = log.firstIndex();
    for (const entry of entries) {
      if (entry.index < first) continue;
      const prevTerm = log.term(entry.index - 1);
      if (log.term(entry.index) !== entry.term) {
        this.violation(
          'ready contract',
          `n${node} persisted entry ${entry.index}@t${entry.term} but storage holds term ${log.term(entry.index)}`,
        );
      }
      if (entry.term < prevTerm) {
        this.violation(
          'log matching',
          `n${node}'s log has term ${entry.term} at index ${entry.index} after term ${prevTerm}`,
        );
      }
      this.recordPersisted(node, entry, prevTerm);
    }
  }

  private recordPersisted(node: NodeId, entry: Entry, prevTerm: number): void {
    let byTerm = this.persisted[entry.index];
    if (byTerm === undefined) {
      byTerm = new Map();
      this.persisted[entry.index] = byTerm;
    }
    const known = byTerm.get(entry.term);
    if (known === undefined) {
      byTerm.set(entry.term, { type: entry.type, data: entry.data, prevTerm, node });
      return;
    }
    if (known.type !== entry.type || !sameBytes(known.data, entry.data)) {
      this.violation(
        'log matching',
        `n${known.node} and n${node} hold different entries at index ${entry.index} term ${entry.term}`,
      );
    }
    if (known.prevTerm !== prevTerm) {
      this.violation(
        'log matching',
        `n${known.node} and n${node} agree on index ${entry.index} term ${entry.term} but differ before it ` +
          `(term ${known.prevTerm} vs ${prevTerm} at index ${entry.index - 1})`,
      );
    }
  }

  snapshotPersisted(node: NodeId, metadata: SnapshotMetadata): void {
    const want = this.committedTerm[metadata.index];
    if (want !== undefined && want !== 0 && want !== metadata.term) {
      this.violation(
        'state machine safety',
        `n${node} installed a snapshot at ${metadata.index}@t${metadata.term} but the committed entry there has term ${want}`,
      );
    }
  }

  /**
   * `node` persisted commit index `commit` (previously `previousCommit`) while at `term`. The
   * entries up to it in its log are committed: they must agree with every other node's committed
   * entries, and leaders of later terms must hold them.
   */
  commitAdvanced(node: NodeId, term: number, log: LogView, previousCommit: number, commit: number): void {
    const last = log.lastIndex();
    if (commit > last)
      this.violation('ready contract', `n${node} persisted commit ${commit} beyond its last index ${last}`);
    const from = Math.max(previousCommit + 1, log.firstIndex() - 1);
    for (let index = from; index <= commit; index++) {
      const got = log.term(index);
      const want = this.committedTerm[index];
      if ((this.commitTerm[index] ?? Infinity) > term) this.commitTerm[index] = term;
      if (want === undefined || want === 0) this.committedTerm[index] = got;
      else if (want !== got) {
        this.violation(
          'state machine safety',
          `n${node} committed term ${got} at index ${index}, another node committed term ${want}`,
        );
      }
    }
    if (commit <= this.committedMax) return;
    const newLo = this.committedMax + 1;
    this.committedMax = commit;
    for (const [leader, record] of this.leaders) {
      if (record.term > term) this.checkLeaderHolds(leader, record.term, record.log, newLo, commit);
    }
  }

  /**
   * Log matching, checked directly on every pair of persisted logs (a cross-check of the
   * incremental check above): below the highest index where two logs hold the same term, every
   * index both still hold has the same term.
   */
  crossCheckLogs(logs: ReadonlyMap<NodeId, LogView>): void {
    const entries = [...logs];
    for (let i = 0; i < entries.length; i++) {
      for (let j = i + 1; j < entries.length; j++)
        this.crossCheckPair(entries[i][0], entries[i][1], entries[j][0], entries[j][1]);
    }
  }

  private crossCheckPair(a: NodeId, logA: LogView, b: NodeId, logB: LogView): void {
    const floor = Math.max(logA.firstIndex(), logB.firstIndex()) - 1;
    let index = Math.min(logA.lastIndex(), logB.lastIndex());
    while (index > floor && logA.term(index) !== logB.term(index)) index--;
    for (let lower = index - 1; lower >= floor; lower--) {
      if (logA.term(lower) !== logB.term(lower)) {
        this.violation(
          'log matching',
          `n${a} and n${b} both hold term ${logA.term(index)} at index ${index} but differ at index ${lower} ` +
            `(term ${logA.term(lower)} vs ${logB.term(lower)})`,
        );
        return;
      }
    }
  }

  // ---- state machine safety ----

  entryApplied(node: NodeId, entry: Entry): void {
    const first = this.appliedAt[entry.index];
    if (first === undefined) this.appliedAt[entry.index] = entry;
    else if (first.term !== entry.term || first.type !== entry.type || !sameBytes(first.data, entry.data)) {
      this.violation(
        'state machine safety',
        `n${node} applied ${entry.type} ${entry.index}@t${entry.term}, another node applied ${first.type} ${first.index}@t${first.term} there`,
      );
    }
    const committed = this.committedTerm[entry.index];
    if (committed !== undefined && committed !== 0 && committed !== entry.term) {
      this.violation(
        'state machine safety',
        `n${node} applied ${entry.index}@t${entry.term} but the committed entry there has term ${committed}`,
      );
    }
  }

  /** `node` applied write `writeId` as the `position`-th write of its state machine. */
  writeApplied(node: NodeId, position: number, writeId: number): void {
    assert(
      position <= this.writes.length,
      () => `n${node} applied write #${position} past the canonical ${this.writes.length}`,
    );
    if (position === this.writes.length) {
      this.writes.push(writeId);
      return;
    }
    if (this.writes[position] !== writeId) {
      this.violation(
        'state machine safety',
        `n${node} applied write w${writeId} as write #${position}, another node applied w${this.writes[position]} there`,
      );
    }
  }

  /** `node` rebuilt its state machine from a snapshot: its writes must be a prefix of the canonical ones. */
  stateRestored(node: NodeId, writes: readonly number[]): void {
    if (writes.length > this.writes.length) {
      this.violation(
        'state machine safety',
        `n${node} restored ${writes.length} writes, only ${this.writes.length} were ever applied`,
      );
    }
    for (let i = 0; i < writes.length; i++) {
      if (writes[i] !== this.writes[i]) {
        this.violation(
          'state machine safety',
          `n${node} restored w${writes[i]} as write #${i}, the applied sequence has w${this.writes[i]}`,
        );
      }
    }
  }

  // ---- linearizable reads ----

  /** A client asked `node` for a read. Every write acknowledged so far (applied anywhere) must be visible to it. */
  readStarted(readId: number, node: NodeId, step: number): void {
    assert(!this.reads.has(readId), () => `read r${readId} started twice`);
    this.reads.set(readId, { node, startStep: step, requiredWrites: this.writes.length });
  }

  /** The read was served from a state machine holding `observedWrites` writes (a prefix of the canonical sequence). */
  readServed(readId: number, node: NodeId, readIndex: number, observedWrites: number): void {
    const read = this.reads.get(readId);
    assert(read !== undefined, () => `read r${readId} served but never started`);
    this.reads.delete(readId);
    this.readsServed++;
    if (observedWrites < read.requiredWrites) {
      const missing = this.writes[observedWrites];
      this.violation(
        'read linearizability',
        `read r${readId} (started at step ${read.startStep} on n${read.node}) served by n${node} at read index ${readIndex} ` +
          `observes ${observedWrites} writes, but ${read.requiredWrites} were acknowledged before it began (w${missing} is missing)`,
      );
    }
  }

  /** A read that will never be served (its node crashed). */
  readAbandoned(readId: number): void {
    this.reads.delete(readId);
  }
}
