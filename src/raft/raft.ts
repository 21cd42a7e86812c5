// The Raft state machine: term/vote/role, elections, and the step dispatch to the role's handler
// (stepLeader / stepCandidate / stepFollower). No I/O: output is queued in `msgs` and `readStates`.
import { assert } from '../util/index.ts';
import { MAX_OUTBOX_MESSAGES, MAX_PENDING_READ_STATES, validateRaftConfig } from './config.ts';
import { Changer, encodeConfChange, enterJointOf, isLeaveJoint, restoreConfState, type ChangeResult } from './confchange.ts';
import { payloadSizeBytes } from './entries.ts';
import { ConfigError, ProposalDroppedError } from './errors.ts';
import { Inflights } from './inflights.ts';
import { NO_LIMIT, RaftLog } from './log.ts';
import { Progress } from './progress.ts';
import { maybeCommit, maybeSendAppend, onCommitAdvanced, stepLeader } from './raft-leader.ts';
import { stepCandidate, stepFollower } from './raft-follower.ts';
import { ReadOnlyQueue, type ReadRequest } from './read-only.ts';
import { ProgressTracker } from './tracker.ts';
import {
  NONE,
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type LogStorage,
  type Message,
  type NodeId,
  type RaftConfig,
  type ReadOnlyOption,
  type ReadState,
  type Role,
  type Snapshot,
  type SoftState,
  type VoteMsg,
} from './types.ts';

/** Entries a follower checks for conf changes before committing by the leader's durable index; past it, it waits for the commit index. */
const MAX_DURABLE_COMMIT_SPAN = 1024;

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
/** A message as built by the core: `from` is filled in; `term` only for votes (others get ours). */
export type OutgoingMessage = DistributiveOmit<Message, 'from' | 'term'> & { term?: number };

export type StepFn = (r: Raft, m: Message) => void;
export type CampaignKind = 'preElection' | 'election' | 'transfer';

export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = NONE;
  lead: NodeId = NONE;
  role: Role = 'follower';
  readonly log: RaftLog;
  tracker: ProgressTracker;
  isLearner = false;
  /** Output for the next Ready, bounded by MAX_OUTBOX_MESSAGES. */
  msgs: Message[] = [];
  readStates: ReadState[] = [];
  droppedMessages = 0;
  readOnly = new ReadOnlyQueue();
  /** Reads that arrived before the leader committed an entry in its term (etcd semantics). */
  pendingReadsBeforeCommit: ReadRequest[] = [];
  leadTransferee: NodeId = NONE;
  /** Index of the latest conf entry this leader appended; no new conf change until it is applied. */
  pendingConfIndex = 0;
  /** Payload bytes appended by this leader and not yet applied. */
  uncommittedSize = 0;
  /** Follower: how far the leader of this term said its own log is durable ('durable' messages). */
  leaderDurable = 0;
  /**
   * Leader: the highest index it sent in a 'durable' message this term. A follower may commit and
   * acknowledge writes up to it before this leader's commit index gets there, so reads are served
   * at no lower index (readIndexFloor).
   */
  durableNoticed = 0;
  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;

  readonly electionTimeout: number;
  readonly heartbeatTimeout: number;
  readonly checkQuorum: boolean;
  readonly preVote: boolean;
  readonly readOnlyOption: ReadOnlyOption;
  readonly maxMsgSize: number;
  readonly maxUncommittedSize: number;
  readonly disableProposalForwarding: boolean;
  readonly leaderDurableNotices: boolean;
  readonly testingFault: RaftConfig['testingFault'];
  private readonly config: RaftConfig;
  private stepFn: StepFn = stepFollower;
  private tickFn: () => void = () => this.tickElection();

  constructor(config: RaftConfig, storage: LogStorage) {
    validateRaftConfig(config);
    this.config = config;
    this.id = config.id;
    this.electionTimeout = config.electionTicks;
    this.heartbeatTimeout = config.heartbeatTicks;
    this.checkQuorum = config.checkQuorum;
    this.preVote = config.preVote;
    // Lease reads are only safe when the leader steps down on losing its quorum.
    this.readOnlyOption = config.readOnlyOption === 'leaseBased' && config.checkQuorum ? 'leaseBased' : 'safe';
    this.maxMsgSize = config.maxSizePerMsg;
    this.maxUncommittedSize = config.maxUncommittedEntriesSize === 0 ? NO_LIMIT : config.maxUncommittedEntriesSize;
    this.disableProposalForwarding = config.disableProposalForwarding;
    this.leaderDurableNotices = (config.leaderDurableNotices ?? false) || config.testingFault === 'readBelowDurableNotices';
    this.testingFault = config.testingFault;
    const maxApplyingBytes = config.maxCommittedSizePerReady === 0 ? NO_LIMIT : config.maxCommittedSizePerReady;
    this.log = new RaftLog(storage, maxApplyingBytes);
    this.tracker = new ProgressTracker(config.maxInflightMsgs, config.maxInflightBytes);
    const { hardState, confState } = storage.initialState();
    this.switchToConfig(restoreConfState(this.tracker, this.log.lastIndex(), confState));
    this.loadHardState(hardState);
    if (config.applied > this.log.committed) {
      throw new ConfigError(`applied ${config.applied} is beyond the commit index ${this.log.committed}`);
    }
    if (config.applied > this.log.applied) this.log.appliedTo(config.applied);
    this.becomeFollower(this.term, NONE);
  }

  private loadHardState(hs: HardState): void {
    if (hs.term === 0 && hs.vote === NONE && hs.commit === 0) return;
    const lastIndex = this.log.lastIndex();
    if (hs.commit < this.log.committed || hs.commit > lastIndex) {
      throw new ConfigError(`hard state commit ${hs.commit} is out of range [${this.log.committed}, ${lastIndex}]`);
    }
    this.log.commitTo(hs.commit);
    this.term = hs.term;
    this.vote = hs.vote;
    assert(this.log.committed === hs.commit);
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  softState(): SoftState {
    return { leader: this.lead, role: this.role };
  }

  // ---- output ----

  /** Queues a message. Past MAX_OUTBOX_MESSAGES it is dropped (Raft tolerates loss) and counted. */
  send(m: OutgoingMessage): void {
    // Plain checks and an in-place completion: every caller passes a fresh literal, and copying it
    // with a spread (whose shape differs per message type) was a third of the core's CPU.
    if (m.to === this.id || m.to === NONE) assert(false, `message ${m.type} to ${m.to} from ${this.id}`);
    const isVote = m.type === 'vote' || m.type === 'preVote' || m.type === 'voteResp' || m.type === 'preVoteResp';
    if (isVote) {
      if (m.term === undefined || m.term <= 0) assert(false, 'vote messages carry an explicit term');
    } else if (m.term !== undefined) assert(false, `${m.type} must not set term`);
    if (this.msgs.length >= MAX_OUTBOX_MESSAGES) {
      this.droppedMessages++;
      return;
    }
    const msg = m as Message;
    msg.from = this.id;
    if (!isVote) msg.term = m.type === 'prop' || m.type === 'readIndex' ? 0 : this.term;
    this.msgs.push(msg);
  }

  outboxFull(): boolean {
    return this.msgs.length >= MAX_OUTBOX_MESSAGES;
  }

  /** Adds a read state for the next Ready; false when the bound is reached. */
  pushReadState(state: ReadState): boolean {
    if (this.readStates.length >= MAX_PENDING_READ_STATES) return false;
    this.readStates.push(state);
    return true;
  }

  // ---- roles ----

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.leadTransferee = NONE;
    this.tracker.resetVotes();
    const lastIndex = this.log.lastIndex();
    // Our own match counts only what the driver has persisted (self-acked in advance()).
    const persisted = Math.min(lastIndex, this.log.persistedLastIndex());
    this.tracker.visit((id, pr) => {
      const inflights = new Inflights(this.tracker.maxInflightMsgs, this.tracker.maxInflightBytes);
      const match = id === this.id ? persisted : 0;
      this.tracker.progress.set(id, new Progress(match, lastIndex + 1, inflights, pr.isLearner));
    });
    this.pendingConfIndex = 0;
    this.uncommittedSize = 0;
    this.leaderDurable = 0;
    this.durableNoticed = 0;
    this.readOnly = new ReadOnlyQueue();
    this.pendingReadsBeforeCommit = [];
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.stepFn = stepFollower;
    this.reset(term);
    this.tickFn = () => this.tickElection();
    this.lead = lead;
    this.role = 'follower';
  }

  becomeCandidate(): void {
    assert(this.role !== 'leader', 'invalid transition [leader -> candidate]');
    this.stepFn = stepCandidate;
    this.reset(this.term + 1);
    this.tickFn = () => this.tickElection();
    this.vote = this.id;
    this.role = 'candidate';
  }

  becomePreCandidate(): void {
    assert(this.role !== 'leader', 'invalid transition [leader -> pre-candidate]');
    // Neither the term nor the vote changes: a pre-election is invisible in the hard state.
    this.stepFn = stepCandidate;
    this.tracker.resetVotes();
    this.tickFn = () => this.tickElection();
    this.lead = NONE;
    this.role = 'preCandidate';
  }

  becomeLeader(): void {
    assert(this.role === 'candidate' || this.role === 'preCandidate', `invalid transition [${this.role} -> leader]`);
    this.stepFn = stepLeader;
    this.reset(this.term);
    this.tickFn = () => this.tickHeartbeat();
    this.lead = this.id;
    this.role = 'leader';
    const self = this.tracker.progress.get(this.id);
    if (self !== undefined) {
      self.becomeReplicate();
      self.recentActive = true;
    }
    // Conservatively treat any entry not yet applied as a possible conf change.
    this.pendingConfIndex = this.log.lastIndex();
    const accepted = this.appendEntries([{ term: 0, index: 0, type: 'normal', data: new Uint8Array(0) }]);
    assert(accepted, 'empty entry was dropped');
  }

  // ---- ticks ----

  tick(): void {
    this.tickFn();
  }

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.electionTimeout + this.config.rng.nextInt(this.electionTimeout);
    assert(this.randomizedElectionTimeout >= this.electionTimeout && this.randomizedElectionTimeout < 2 * this.electionTimeout);
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(this.preVote ? 'preElection' : 'election');
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum && this.role === 'leader') this.checkQuorumActive();
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.role === 'leader' && this.leadTransferee !== NONE) this.leadTransferee = NONE;
    }
    if (this.role !== 'leader') return;
    this.maybeAutoLeave();
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat();
    }
  }

  private checkQuorumActive(): void {
    const active = this.tracker.quorumActive();
    this.tracker.visit((id, pr) => {
      if (id !== this.id) pr.recentActive = false;
    });
    if (!active) this.becomeFollower(this.term, NONE);
  }

  bcastHeartbeat(): void {
    this.bcastHeartbeatWithContext(this.readOnly.lastPendingContext() ?? new Uint8Array(0));
  }

  bcastHeartbeatWithContext(context: Uint8Array): void {
    this.tracker.visit((id, pr) => {
      if (id === this.id) return;
      // Never tell a follower to commit past what it is known to hold.
      const commit = Math.min(pr.match, this.log.committed);
      this.send({ type: 'heartbeat', to: id, commit, context });
    });
  }

  // ---- elections ----

  /** Whether this node may campaign: a voter, not waiting for a snapshot to be persisted. */
  promotable(): boolean {
    const pr = this.tracker.progress.get(this.id);
    return pr !== undefined && !pr.isLearner && !this.log.hasNextOrInProgressSnapshot();
  }

  hup(kind: CampaignKind): void {
    if (this.role === 'leader') return;
    if (!this.promotable()) return;
    // A committed but unapplied conf change may remove us or change the quorum: wait for it.
    if (this.hasUnappliedConfChanges()) return;
    this.campaign(kind);
  }

  private hasUnappliedConfChanges(): boolean {
    if (this.log.applied >= this.log.committed) return false;
    let lo = this.log.applied + 1;
    const hi = this.log.committed + 1;
    while (lo < hi) {
      const page = this.log.slice(lo, hi, this.maxMsgSize);
      assert(page.length > 0, 'empty page while scanning for conf changes');
      if (page.some((entry) => entry.type === 'conf')) return true;
      lo = page[page.length - 1].index + 1;
    }
    return false;
  }

  campaign(kind: CampaignKind): void {
    assert(this.promotable(), 'campaign by a non-promotable node');
    let voteTerm: number;
    if (kind === 'preElection') {
      this.becomePreCandidate();
      voteTerm = this.term + 1; // pre-votes ask for the next term without moving to it
    } else {
      this.becomeCandidate();
      voteTerm = this.term;
    }
    if (this.poll(this.id, true) === 'won') {
      // A single voter wins at once.
      if (kind === 'preElection') this.campaign('election');
      else this.becomeLeader();
      return;
    }
    const last = this.log.lastEntryId();
    const type = kind === 'preElection' ? 'preVote' : 'vote';
    for (const id of this.tracker.voterIds()) {
      if (id === this.id) continue;
      this.send({ type, to: id, term: voteTerm, index: last.index, logTerm: last.term, transfer: kind === 'transfer' });
    }
  }

  poll(id: NodeId, granted: boolean): 'won' | 'lost' | 'pending' {
    this.tracker.recordVote(id, granted);
    return this.tracker.tallyVotes().result;
  }

  // ---- step ----

  /** Handles one message (network, or local with term 0). Throws ProposalDroppedError for refused proposals. */
  step(m: Message): void {
    if (m.term === 0) {
      if (m.type !== 'prop' && m.type !== 'readIndex') return; // only proposals and reads travel termless
    } else if (m.term > this.term) {
      if (!this.stepHigherTerm(m)) return;
    } else if (m.term < this.term) {
      this.stepLowerTerm(m);
      return;
    }
    if (m.type === 'vote' || m.type === 'preVote') {
      this.handleVoteRequest(m);
      return;
    }
    this.stepFn(this, m);
  }

  /** A message from a later term; returns false if it must be ignored. */
  private stepHigherTerm(m: Message): boolean {
    if (m.type === 'vote' || m.type === 'preVote') {
      // Within the lease of a live leader, disruptive candidates are ignored (unless transferring).
      const inLease = this.checkQuorum && this.lead !== NONE && this.electionElapsed < this.electionTimeout;
      if (!m.transfer && inLease && this.testingFault !== 'grantEveryVote') return false;
    }
    if (m.type === 'preVote') return true; // never change term because of a pre-vote
    if (m.type === 'preVoteResp' && !m.reject) return true; // granted pre-votes carry our future term
    const leader = m.type === 'app' || m.type === 'heartbeat' || m.type === 'snap' || m.type === 'durable' ? m.from : NONE;
    this.becomeFollower(m.term, leader);
    return true;
  }

  private stepLowerTerm(m: Message): void {
    if ((this.checkQuorum || this.preVote) && (m.type === 'heartbeat' || m.type === 'app')) {
      // A stale leader (e.g. after a partition) learns our term from this response and steps down.
      this.send({ type: 'appResp', to: m.from, index: 0, reject: false, rejectHint: 0, logTerm: 0 });
    } else if (m.type === 'preVote') {
      this.send({ type: 'preVoteResp', to: m.from, term: this.term, reject: true });
    }
  }

  private handleVoteRequest(m: VoteMsg): void {
    const canVote =
      this.vote === m.from || (this.vote === NONE && this.lead === NONE) || (m.type === 'preVote' && m.term > this.term);
    const upToDate = this.log.isUpToDate({ index: m.index, term: m.logTerm });
    const grant = this.testingFault === 'grantEveryVote' || (canVote && upToDate);
    const type = m.type === 'vote' ? 'voteResp' : 'preVoteResp';
    if (grant) {
      this.send({ type, to: m.from, term: m.term, reject: false });
      if (m.type === 'vote') {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type, to: m.from, term: this.term, reject: true });
    }
  }

  // ---- local requests ----

  /** Proposes entries (local). Throws ProposalDroppedError. */
  propose(entries: Entry[]): void {
    assert(entries.length > 0, 'empty proposal');
    this.step({ type: 'prop', from: this.id, to: this.id, term: 0, entries });
  }

  /** Local ReadIndex; silently dropped without a leader. Throws when the bounded queues are full. */
  readIndex(context: Uint8Array): void {
    this.step({ type: 'readIndex', from: this.id, to: this.id, term: 0, context });
  }

  transferLeader(transferee: NodeId): void {
    if (this.role === 'leader') {
      this.stepFn(this, { type: 'transferLeader', from: this.id, to: this.id, term: this.term, transferee });
    } else if (this.lead !== NONE) {
      this.send({ type: 'transferLeader', to: this.lead, transferee });
    }
  }

  // ---- appending ----

  /** Leader: stamps and appends entries; false (nothing appended) past maxUncommittedEntriesSize. */
  appendEntries(entries: Entry[]): boolean {
    const lastIndex = this.log.lastIndex();
    const stamped = entries.map((entry, i) => ({ term: this.term, index: lastIndex + 1 + i, type: entry.type, data: entry.data }));
    if (!this.increaseUncommittedSize(stamped)) return false;
    const newLast = this.log.append(stamped);
    assert(newLast === lastIndex + stamped.length);
    for (const entry of stamped) if (entry.type === 'conf') this.pendingConfIndex = entry.index;
    return true;
  }

  private increaseUncommittedSize(entries: Entry[]): boolean {
    const size = payloadSizeBytes(entries);
    // Like etcd, a proposal is always accepted when nothing is outstanding, so any one entry fits.
    if (this.uncommittedSize > 0 && size > 0 && this.uncommittedSize + size > this.maxUncommittedSize) return false;
    this.uncommittedSize += size;
    return true;
  }

  reduceUncommittedSize(size: number): void {
    this.uncommittedSize = size > this.uncommittedSize ? 0 : this.uncommittedSize - size;
  }

  // ---- driver feedback (after a Ready is handled) ----

  /**
   * The driver persisted the log up to the unstable offset: a leader counts its own copy (and may
   * tell followers, leaderDurableNotices); a follower may now commit by the leader's notice.
   */
  onPersisted(): void {
    if (this.role === 'follower') {
      this.commitByLeaderDurable();
      return;
    }
    if (this.role !== 'leader') return;
    const self = this.tracker.progress.get(this.id);
    if (self === undefined) return;
    const persisted = this.log.persistedLastIndex();
    if (!self.maybeUpdate(persisted)) return;
    if (maybeCommit(this)) onCommitAdvanced(this);
    if (this.leaderDurableNotices && persisted > this.log.committed && this.leaderAndOneFollowerAreQuorum()) {
      // The commit waits for a follower's acknowledgement. A follower whose own proposals wait
      // with it, and that has not acknowledged this far, may be durable already: with this it
      // knows they are committed (commitByLeaderDurable).
      const committed = this.log.committed;
      this.tracker.visit((id, pr) => {
        if (id === this.id || pr.isLearner || pr.state !== 'replicate' || pr.match >= persisted || pr.forwardedTo <= committed) return;
        this.send({ type: 'durable', to: id, index: persisted });
        this.durableNoticed = persisted; // only when told: a higher floor would make reads wait for uncommitted entries
      });
    }
  }

  /**
   * Leader: the index a read must wait for. Writes up to the commit index may have been
   * acknowledged, and, through 'durable' messages, up to durableNoticed: a read that began after
   * such an acknowledgement must see the write.
   */
  readIndexFloor(): number {
    if (this.testingFault === 'readBelowDurableNotices') return this.log.committed;
    return Math.max(this.log.committed, this.durableNoticed);
  }

  /**
   * True when the configuration is one of at most three voters, not joint, with this node and the
   * leader among them: then the leader and any one follower are a majority.
   */
  leaderAndOneFollowerAreQuorum(): boolean {
    const voters = this.tracker.config.voters;
    if (voters.outgoing.size > 0 || voters.incoming.size > 3) return false;
    const leader = this.role === 'leader' ? this.id : this.lead;
    return voters.incoming.has(this.id) && voters.incoming.has(leader);
  }

  /**
   * Follower: commits what both the leader ('durable' messages) and this node hold durably, when
   * the two are a quorum. An entry of the current term came from this term's leader, so the two
   * logs agree up to it (log matching); durable on a majority, an entry of the leader's own term is
   * committed (Raft §5.4.2, the rule the leader itself counts by). Conf entries change what a
   * majority is, so none may lie between what is applied and the new commit index (this node's
   * configuration is then the one those entries were replicated under; with single changes the
   * leader's is this one or the one before, and the majorities of two such configurations meet).
   */
  commitByLeaderDurable(): void {
    if (this.leaderDurable <= this.log.committed || this.lead === NONE) return;
    const index = Math.min(this.leaderDurable, this.log.persistedLastIndex());
    if (index <= this.log.committed || index - this.log.applied > MAX_DURABLE_COMMIT_SPAN) return;
    if (this.log.termOrNull(index) !== this.term || !this.leaderAndOneFollowerAreQuorum()) return;
    for (const entry of this.log.slice(this.log.applied + 1, index + 1, NO_LIMIT)) if (entry.type === 'conf') return;
    this.log.commitTo(index);
  }

  /** Entries up to `index` were applied; may trigger the automatic leave of a joint config. */
  appliedTo(index: number, payloadBytes: number): void {
    this.log.appliedTo(index);
    this.reduceUncommittedSize(payloadBytes);
    this.maybeAutoLeave();
  }

  /** Leader: once an autoLeave joint config is applied, propose leaving it (etcd's AutoLeave). */
  maybeAutoLeave(): void {
    if (!this.tracker.config.autoLeave || this.role !== 'leader' || this.log.applied < this.pendingConfIndex) return;
    assert(this.tracker.isJoint(), 'autoLeave outside a joint config');
    try {
      // Empty data decodes to the leave-joint change and weighs nothing against the uncommitted limit.
      this.propose([{ term: 0, index: 0, type: 'conf', data: new Uint8Array(0) }]);
    } catch (error) {
      // Dropped during a leadership transfer: retried on the next apply or heartbeat tick.
      if (!(error instanceof ProposalDroppedError)) throw error;
    }
  }

  proposeConfChangeEntry(change: ConfChange): void {
    const data = isLeaveJoint(change) && change.context.length === 0 ? new Uint8Array(0) : encodeConfChange(change);
    this.propose([{ term: 0, index: 0, type: 'conf', data }]);
  }

  // ---- configuration ----

  /** Computes the configuration after `change` without installing it. Throws ConfChangeError. */
  computeConfChange(change: ConfChange): ChangeResult {
    const changer = new Changer(this.tracker, this.log.lastIndex());
    if (isLeaveJoint(change)) return changer.leaveJoint();
    const enter = enterJointOf(change);
    if (enter !== null) return changer.enterJoint(enter.autoLeave, change.changes);
    return changer.simple(change.changes);
  }

  applyConfChange(change: ConfChange): ConfState {
    return this.switchToConfig(this.computeConfChange(change));
  }

  switchToConfig(result: ChangeResult): ConfState {
    this.tracker.config = result.config;
    this.tracker.progress = result.progress;
    this.tracker.assertInvariants();
    const cs = this.tracker.confState();
    const self = this.tracker.progress.get(this.id);
    this.isLearner = self !== undefined && self.isLearner;
    if ((self === undefined || this.isLearner) && this.role === 'leader') {
      // Removed (or demoted) leader: the config excluding it is applied, so it stops leading.
      this.becomeFollower(this.term, NONE);
      return cs;
    }
    if (this.role !== 'leader' || cs.voters.length === 0) return cs;
    if (maybeCommit(this)) {
      onCommitAdvanced(this);
    } else {
      // Probe newly added peers now instead of waiting for the next heartbeat or proposal.
      this.tracker.visit((id) => {
        if (id !== this.id) maybeSendAppend(this, id, false);
      });
    }
    if (this.leadTransferee !== NONE && !this.tracker.isVoter(this.leadTransferee)) this.leadTransferee = NONE;
    return cs;
  }

  /** Replaces log and configuration with a snapshot from the leader; false if it is not useful. */
  restore(snapshot: Snapshot): boolean {
    const { index, term, confState } = snapshot.metadata;
    if (index <= this.log.committed) return false;
    if (this.role !== 'follower') {
      // Defense in depth: only followers install snapshots.
      this.becomeFollower(this.term + 1, NONE);
      return false;
    }
    const member = [...confState.voters, ...confState.learners, ...confState.votersOutgoing].includes(this.id);
    if (!member) return false;
    if (this.log.matchTerm(index, term)) {
      this.log.commitTo(index); // we already hold it: just fast-forward the commit index
      return false;
    }
    this.log.restore(snapshot);
    this.tracker = new ProgressTracker(this.tracker.maxInflightMsgs, this.tracker.maxInflightBytes);
    this.switchToConfig(restoreConfState(this.tracker, this.log.lastIndex(), confState));
    assert(this.log.lastIndex() === index);
    return true;
  }
}
