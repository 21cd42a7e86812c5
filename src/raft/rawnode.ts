// RawNode: the driver-facing API of one Raft group. Inputs (tick, step, propose, ...) change state;
// ready() hands out what to persist, send and apply; advance() acknowledges it.
import { assert } from '../util/index.ts';
import { copyHardState, hardStateEqual, isEmptyHardState, payloadSizeBytes } from './entries.ts';
import { ProposalDroppedError } from './errors.ts';
import type { EntryId } from './log.ts';
import { Raft } from './raft.ts';
import { reportSnapshot, reportUnreachable } from './raft-leader.ts';
import type { ProgressStatus, RaftStatus } from './status.ts';
import { NONE, type ConfChange, type ConfState, type HardState, type LogStorage, type Message, type MessageType, type NodeId, type RaftConfig, type Ready, type SoftState } from './types.ts';

/** Responses from peers we do not track are ignored (etcd's ErrStepPeerNotFound). */
const RESPONSE_TYPES: ReadonlySet<MessageType> = new Set<MessageType>(['appResp', 'voteResp', 'preVoteResp', 'heartbeatResp']);

/** What advance() must acknowledge about the Ready handed out last. */
interface Outstanding {
  lastEntry: EntryId | null;
  snapshotIndex: number | null;
  appliedIndex: number | null;
  appliedPayloadBytes: number;
}

/**
 * The driver loop:
 *   while (node.hasReady()) {
 *     const rd = node.ready();
 *     persist rd.snapshot, rd.entries (storage.append truncates conflicts), rd.hardState (fsync if mustSync);
 *     send rd.messages;
 *     apply rd.snapshot, then rd.committedEntries (call applyConfChange for 'conf' entries);
 *     serve rd.readStates once applied >= index;
 *     node.advance();
 *   }
 * One Ready at a time: after ready(), hasReady() is false and ready() may not be called until
 * advance(). Inputs (step, tick, propose, ...) may still arrive in between; their output waits
 * for the next Ready. Committed entries are only handed out once persisted (acknowledged by an
 * earlier advance()), and the leader counts its own log only once persisted.
 */
export class RawNode {
  private readonly raft: Raft;
  private readonly storage: LogStorage;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  private outstanding: Outstanding | null = null;
  /** Network messages refused by the core (dropped forwarded proposals). */
  droppedProposals = 0;

  constructor(config: RaftConfig, storage: LogStorage) {
    this.raft = new Raft(config, storage);
    this.storage = storage;
    this.prevSoftState = this.raft.softState();
    this.prevHardState = this.raft.hardState();
  }

  tick(): void {
    this.raft.tick();
  }

  /** Starts an election now (with a pre-vote first when enabled). */
  campaign(): void {
    this.raft.hup(this.raft.preVote ? 'preElection' : 'election');
  }

  /** Delivers a network message. Messages for other nodes, from unknown peers (responses) or stale terms are ignored. */
  step(msg: Message): void {
    if (msg.to !== this.raft.id || msg.from === this.raft.id || msg.from === NONE) return;
    if (RESPONSE_TYPES.has(msg.type) && !this.raft.tracker.progress.has(msg.from)) return;
    try {
      this.raft.step(msg);
    } catch (error) {
      if (!(error instanceof ProposalDroppedError)) throw error;
      this.droppedProposals++; // a forwarded proposal we cannot take; the proposer times out
    }
  }

  /** Proposes application data. Throws ProposalDroppedError. */
  propose(data: Uint8Array): void {
    this.raft.propose([{ term: 0, index: 0, type: 'normal', data }]);
  }

  /** Proposes a membership change. Throws ProposalDroppedError (also when one is pending or joint rules forbid it). */
  proposeConfChange(change: ConfChange): void {
    this.raft.proposeConfChangeEntry(change);
  }

  /** Installs a committed conf change; call when applying its entry. Throws ConfChangeError if it cannot apply. */
  applyConfChange(change: ConfChange): ConfState {
    return this.raft.applyConfChange(change);
  }

  /** Requests a linearizable read point; the answer arrives as a ReadState tagged `context`. */
  readIndex(context: Uint8Array): void {
    this.raft.readIndex(context);
  }

  transferLeader(transferee: NodeId): void {
    this.raft.transferLeader(transferee);
  }

  reportUnreachable(id: NodeId): void {
    reportUnreachable(this.raft, id);
  }

  reportSnapshot(id: NodeId, status: 'finish' | 'failure'): void {
    reportSnapshot(this.raft, id, status);
  }

  hasReady(): boolean {
    if (this.outstanding !== null) return false;
    const r = this.raft;
    if (!softStateEqual(r.softState(), this.prevSoftState)) return true;
    const hs = r.hardState();
    if (!isEmptyHardState(hs) && !hardStateEqual(hs, this.prevHardState)) return true;
    if (r.log.unstable.nextSnapshot() !== null) return true;
    if (r.log.unstable.offsetInProgress < r.log.unstable.offset + r.log.unstable.entries.length) return true;
    if (r.msgs.length > 0 || r.readStates.length > 0) return true;
    return r.log.hasNextCommittedEntries();
  }

  ready(): Ready {
    assert(this.outstanding === null, 'ready() called again before advance()');
    const r = this.raft;
    const softState = r.softState();
    const hardState = r.hardState();
    const softChanged = !softStateEqual(softState, this.prevSoftState);
    const hardChanged = !isEmptyHardState(hardState) && !hardStateEqual(hardState, this.prevHardState);
    const entries = r.log.unstable.nextEntries();
    const snapshot = r.log.unstable.nextSnapshot();
    const committedEntries = r.log.nextCommittedEntries();
    const rd: Ready = {
      softState: softChanged ? softState : null,
      hardState: hardChanged ? copyHardState(hardState) : null,
      readStates: r.readStates,
      entries,
      snapshot,
      committedEntries,
      messages: r.msgs,
      mustSync: entries.length > 0 || snapshot !== null || hardState.term !== this.prevHardState.term || hardState.vote !== this.prevHardState.vote,
    };
    r.readStates = [];
    r.msgs = [];
    r.log.unstable.acceptInProgress();
    const lastCommitted = committedEntries.length > 0 ? committedEntries[committedEntries.length - 1].index : null;
    if (lastCommitted !== null) r.log.acceptApplying(lastCommitted);
    if (softChanged) this.prevSoftState = softState;
    if (hardChanged) this.prevHardState = copyHardState(hardState);
    const lastEntry = entries.length > 0 ? { index: entries[entries.length - 1].index, term: entries[entries.length - 1].term } : null;
    this.outstanding = {
      lastEntry,
      snapshotIndex: snapshot === null ? null : snapshot.metadata.index,
      appliedIndex: lastCommitted,
      appliedPayloadBytes: payloadSizeBytes(committedEntries),
    };
    return rd;
  }

  /** Acknowledges the last Ready: its entries/snapshot are persisted and its committed entries applied. */
  advance(): void {
    const done = this.outstanding;
    assert(done !== null, 'advance() without an outstanding Ready');
    this.outstanding = null;
    const r = this.raft;
    if (done.lastEntry !== null) {
      const stored = this.storage.lastIndex();
      assert(stored >= done.lastEntry.index, () => `advance(): Ready entries up to ${done.lastEntry?.index} are not in storage (last ${stored})`);
      r.log.unstable.stableTo(done.lastEntry.index, done.lastEntry.term);
    }
    if (done.snapshotIndex !== null) {
      r.log.unstable.stableSnapTo(done.snapshotIndex);
      if (done.snapshotIndex > r.log.applied) r.appliedTo(done.snapshotIndex, 0);
    }
    if (done.appliedIndex !== null) r.appliedTo(done.appliedIndex, done.appliedPayloadBytes);
    r.onPersisted();
  }

  /** The role and the known leader now: what per-request checks need, without status()'s copies. */
  softState(): SoftState {
    return this.raft.softState();
  }

  status(): RaftStatus {
    const r = this.raft;
    let progress: Map<NodeId, ProgressStatus> | null = null;
    if (r.role === 'leader') {
      progress = new Map();
      for (const [id, pr] of [...r.tracker.progress].sort((a, b) => a[0] - b[0])) {
        progress.set(id, {
          match: pr.match,
          next: pr.next,
          state: pr.state,
          recentActive: pr.recentActive,
          inflight: pr.inflights.count,
          isLearner: pr.isLearner,
          pendingSnapshot: pr.pendingSnapshot,
        });
      }
    }
    return {
      id: r.id,
      hardState: r.hardState(),
      softState: r.softState(),
      applied: r.log.applied,
      lastIndex: r.log.lastIndex(),
      leadTransferee: r.leadTransferee,
      confState: r.tracker.confState(),
      progress,
    };
  }
}

function softStateEqual(a: SoftState, b: SoftState): boolean {
  return a.leader === b.leader && a.role === b.role;
}
