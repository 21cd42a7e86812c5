// Follower and (pre-)candidate behaviour: accepting appends, heartbeats and snapshots, counting votes.
import { assert } from '../util/index.ts';
import { ProposalDroppedError } from './errors.ts';
import { bcastAppend } from './raft-leader.ts';
import type { Raft } from './raft.ts';
import { NONE, type AppendMsg, type DurableMsg, type HeartbeatMsg, type Message, type SnapshotMsg } from './types.ts';

export function stepFollower(r: Raft, m: Message): void {
  assert(r.role === 'follower', () => `stepFollower in role ${r.role}`);
  // (A late granted pre-vote response carries the term we once asked for.)
  assert(m.term === 0 || m.term === r.term || m.type === 'preVoteResp', 'stepFollower sees only current-term or termless messages');
  switch (m.type) {
    case 'prop':
      if (r.lead === NONE) throw new ProposalDroppedError('noLeader');
      if (r.disableProposalForwarding) throw new ProposalDroppedError('forwardingDisabled');
      if (r.outboxFull()) throw new ProposalDroppedError('outboxFull');
      r.send({ type: 'prop', to: r.lead, entries: m.entries });
      return;
    case 'app':
      r.electionElapsed = 0;
      r.lead = m.from;
      handleAppendEntries(r, m);
      return;
    case 'heartbeat':
      r.electionElapsed = 0;
      r.lead = m.from;
      handleHeartbeat(r, m);
      return;
    case 'durable':
      r.electionElapsed = 0;
      r.lead = m.from;
      handleDurable(r, m);
      return;
    case 'snap':
      r.electionElapsed = 0;
      r.lead = m.from;
      handleSnapshot(r, m);
      return;
    case 'transferLeader':
      if (r.lead !== NONE) r.send({ type: 'transferLeader', to: r.lead, transferee: m.transferee });
      return;
    case 'timeoutNow':
      // Campaign at once, skipping the pre-vote: the leader asked us to take over.
      r.hup('transfer');
      return;
    case 'readIndex':
      if (r.lead === NONE) return; // dropped silently: the caller retries after its timeout
      if (m.from === r.id && r.outboxFull()) throw new ProposalDroppedError('outboxFull');
      r.send({ type: 'readIndex', to: r.lead, context: m.context });
      return;
    case 'readIndexResp':
      r.pushReadState({ index: m.index, context: m.context });
      return;
    default:
      return;
  }
}

export function stepCandidate(r: Raft, m: Message): void {
  assert(r.role === 'candidate' || r.role === 'preCandidate', () => `stepCandidate in role ${r.role}`);
  // Granted pre-vote responses carry the term we are asking for (ours + 1); all else our term.
  assert(m.term === 0 || m.term === r.term || (m.type === 'preVoteResp' && m.term === r.term + 1), 'stale term in stepCandidate');
  const myVoteResp = r.role === 'preCandidate' ? 'preVoteResp' : 'voteResp';
  switch (m.type) {
    case 'prop':
      throw new ProposalDroppedError('noLeader');
    case 'app':
      r.becomeFollower(m.term, m.from); // same term: someone else won
      handleAppendEntries(r, m);
      return;
    case 'heartbeat':
      r.becomeFollower(m.term, m.from);
      handleHeartbeat(r, m);
      return;
    case 'durable':
      r.becomeFollower(m.term, m.from);
      handleDurable(r, m);
      return;
    case 'snap':
      r.becomeFollower(m.term, m.from);
      handleSnapshot(r, m);
      return;
    case 'voteResp':
    case 'preVoteResp':
      if (m.type === myVoteResp) countVote(r, m.from, !m.reject);
      return;
    default:
      return; // reads without a leader are dropped; timeoutNow is ignored while campaigning
  }
}

function countVote(r: Raft, from: number, granted: boolean): void {
  const result = r.poll(from, granted);
  assert(r.tracker.votes.has(from), 'vote not recorded');
  if (result === 'won' && !r.promotable()) {
    // Removed or demoted (conf change applied) while campaigning: give up the win.
    r.becomeFollower(r.term, NONE);
  } else if (result === 'won') {
    if (r.role === 'preCandidate') {
      r.campaign('election');
    } else {
      r.becomeLeader();
      bcastAppend(r);
    }
  } else if (result === 'lost') {
    // A rejecting pre-vote response may carry a later term; keep ours.
    r.becomeFollower(r.term, NONE);
  }
}

function handleAppendEntries(r: Raft, m: AppendMsg): void {
  assert(r.lead === m.from && m.term === r.term, 'append from someone other than the current leader');
  if (m.index < r.log.committed) {
    r.send({ type: 'appResp', to: m.from, index: r.log.committed, reject: false, rejectHint: 0, logTerm: 0 });
    return;
  }
  const skipCheck = r.testingFault === 'skipAppendConsistencyCheck';
  const lastNewIndex = r.log.maybeAppend({ index: m.index, term: m.logTerm }, m.commit, m.entries, skipCheck);
  if (lastNewIndex !== null) {
    r.send({ type: 'appResp', to: m.from, index: lastNewIndex, reject: false, rejectHint: 0, logTerm: 0 });
    return;
  }
  // Hint the largest (index, term) that may match: the leader can skip a whole term per round trip.
  const hintIndex = Math.min(m.index, r.log.lastIndex());
  const hint = r.log.findConflictByTerm(hintIndex, m.logTerm);
  r.send({ type: 'appResp', to: m.from, index: m.index, reject: true, rejectHint: hint.index, logTerm: hint.term });
}

function handleHeartbeat(r: Raft, m: HeartbeatMsg): void {
  assert(r.lead === m.from && m.term === r.term, 'heartbeat from someone other than the current leader');
  r.log.commitTo(m.commit);
  r.send({ type: 'heartbeatResp', to: m.from, context: m.context });
}

function handleDurable(r: Raft, m: DurableMsg): void {
  assert(r.lead === m.from && m.term === r.term, 'durable notice from someone other than the current leader');
  r.leaderDurable = Math.max(r.leaderDurable, m.index);
  r.commitByLeaderDurable();
}

function handleSnapshot(r: Raft, m: SnapshotMsg): void {
  const index = r.restore(m.snapshot) ? r.log.lastIndex() : r.log.committed;
  r.send({ type: 'appResp', to: m.from, index, reject: false, rejectHint: 0, logTerm: 0 });
}
