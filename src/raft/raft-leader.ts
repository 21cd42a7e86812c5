// Leader behaviour: proposals, replication with flow control, commit, ReadIndex, transfer, snapshots.
import { assert } from '../util/index.ts';
import { decodeConfChange } from './confchange.ts';
import { entriesSizeBytes } from './entries.ts';
import { CompactedError, ConfChangeError, ProposalDroppedError, SnapshotTemporarilyUnavailableError } from './errors.ts';
import type { Progress } from './progress.ts';
import { jointVoteResult } from './quorum.ts';
import { MAX_PENDING_READS_BEFORE_COMMIT } from './config.ts';
import type { Raft } from './raft.ts';
import type { ReadRequest } from './read-only.ts';
import { NONE, type AppendRespMsg, type Entry, type HeartbeatRespMsg, type Message, type NodeId, type ProposeMsg, type Snapshot } from './types.ts';

export function stepLeader(r: Raft, m: Message): void {
  assert(r.role === 'leader' && r.lead === r.id, () => `stepLeader in role ${r.role}`);
  assert(m.term === 0 || m.term === r.term || m.type === 'preVoteResp', 'stepLeader sees only current-term or termless messages');
  switch (m.type) {
    case 'prop':
      leaderPropose(r, m);
      return;
    case 'readIndex':
      leaderReadIndex(r, { from: m.from, context: m.context }, m.from === r.id);
      return;
    case 'transferLeader':
      handleTransferLeader(r, m.transferee);
      return;
    default:
      break;
  }
  const pr = r.tracker.progress.get(m.from);
  if (pr === undefined) return; // not (or no longer) a member
  switch (m.type) {
    case 'appResp':
      handleAppendResponse(r, m, pr);
      return;
    case 'heartbeatResp':
      handleHeartbeatResponse(r, m, pr);
      return;
    default:
      return; // stale vote responses, read responses etc. mean nothing to a leader
  }
}

function leaderPropose(r: Raft, m: ProposeMsg): void {
  assert(m.entries.length > 0, 'empty proposal');
  const local = m.from === r.id;
  if (!r.tracker.progress.has(r.id)) throw new ProposalDroppedError('removedFromConfig');
  if (r.leadTransferee !== NONE) throw new ProposalDroppedError('transferInProgress', `transferring to ${r.leadTransferee}`);
  const entries = m.entries.map((entry) => {
    if (entry.type !== 'conf') return entry;
    const failure = checkConfChangeEntry(r, entry);
    if (failure === null) return entry;
    if (local) throw failure;
    return { ...entry, type: 'normal' as const, data: new Uint8Array(0) }; // etcd: forwarded invalid change becomes a no-op
  });
  if (!r.appendEntries(entries)) throw new ProposalDroppedError('uncommittedSizeLimit');
  const forwarder = local ? undefined : r.tracker.progress.get(m.from);
  if (forwarder !== undefined) forwarder.forwardedTo = r.log.lastIndex();
  bcastAppend(r);
}

/** Why a conf change may not be proposed now (etcd's rules plus a dry run), or null. */
function checkConfChangeEntry(r: Raft, entry: Entry): ProposalDroppedError | null {
  if (r.pendingConfIndex > r.log.applied) {
    return new ProposalDroppedError('confChangePending', `unapplied conf change at ${r.pendingConfIndex} (applied ${r.log.applied})`);
  }
  try {
    const change = decodeConfChange(entry.data);
    const joint = r.tracker.isJoint();
    const leave = change.changes.length === 0;
    if (joint && !leave) return new ProposalDroppedError('confChangeInvalid', 'must transition out of joint config first');
    if (!joint && leave) return new ProposalDroppedError('confChangeInvalid', 'not in joint state; refusing empty conf change');
    r.computeConfChange(change); // the config cannot change before this entry applies, so this is exact
    return null;
  } catch (error) {
    if (error instanceof ConfChangeError) return new ProposalDroppedError('confChangeInvalid', error.message);
    throw error;
  }
}

// ---- replication ----

export function bcastAppend(r: Raft): void {
  r.tracker.visit((id) => {
    if (id !== r.id) sendAppend(r, id);
  });
}

export function sendAppend(r: Raft, to: NodeId): void {
  maybeSendAppend(r, to, true);
}

/**
 * Sends the next append (or a snapshot if the entries are compacted) to `to`, unless flow control
 * pauses it or (without `sendIfEmpty`) there is nothing new. Returns whether something was sent.
 */
export function maybeSendAppend(r: Raft, to: NodeId, sendIfEmpty: boolean): boolean {
  const pr = r.tracker.progress.get(to);
  assert(pr !== undefined, () => `no progress for ${to}`);
  if (pr.isPaused()) return false;
  const prevIndex = pr.next - 1;
  assert(prevIndex <= r.log.lastIndex(), () => `progress next ${pr.next} beyond last ${r.log.lastIndex()}`);
  const prevTerm = r.log.termOrNull(prevIndex);
  const entries = prevTerm === null ? null : entriesOrNull(r, pr.next);
  if (prevTerm === null || entries === null) return maybeSendSnapshot(r, to, pr);
  if (entries.length === 0 && !sendIfEmpty) return false;
  pr.sentEntries(entries.length, entriesSizeBytes(entries));
  r.send({ type: 'app', to, index: prevIndex, logTerm: prevTerm, entries, commit: r.log.committed });
  return true;
}

function entriesOrNull(r: Raft, lo: number): Entry[] | null {
  try {
    return r.log.entries(lo, r.maxMsgSize);
  } catch (error) {
    if (error instanceof CompactedError) return null;
    throw error;
  }
}

function maybeSendSnapshot(r: Raft, to: NodeId, pr: Progress): boolean {
  if (!pr.recentActive) return false; // don't ship a snapshot to a peer that may be down
  let snapshot: Snapshot;
  try {
    snapshot = r.log.snapshot();
  } catch (error) {
    if (error instanceof SnapshotTemporarilyUnavailableError) return false;
    throw error;
  }
  assert(snapshot.metadata.index > 0, 'need non-empty snapshot');
  pr.becomeSnapshot(snapshot.metadata.index);
  r.send({ type: 'snap', to, snapshot });
  return true;
}

/** Advances the commit index to what a (joint) quorum holds, if that entry is from our term. */
export function maybeCommit(r: Raft): boolean {
  const index = r.tracker.committed();
  return r.log.maybeCommit(index, r.term, r.testingFault === 'commitOldTermByCounting');
}

/** After the commit index moved: serve reads that waited for a commit in this term, tell followers. */
export function onCommitAdvanced(r: Raft): void {
  releasePendingReads(r);
  bcastAppend(r);
}

function handleAppendResponse(r: Raft, m: AppendRespMsg, pr: Progress): void {
  assert(m.from !== r.id, 'append response from self (self-acks go through advance)');
  pr.recentActive = true;
  if (m.reject) {
    handleAppendReject(r, m, pr);
    return;
  }
  const wasPaused = pr.isPaused();
  // A probe answered at the current match also moves the peer back to replicating.
  if (!pr.maybeUpdate(m.index) && !(pr.match === m.index && pr.state === 'probe')) return;
  if (pr.state === 'probe') {
    pr.becomeReplicate();
  } else if (pr.state === 'snapshot' && pr.match + 1 >= r.log.firstIndex()) {
    pr.becomeProbe(); // the follower can be caught up from the log again
    pr.becomeReplicate();
  } else if (pr.state === 'replicate') {
    pr.inflights.freeLE(m.index);
  }
  if (maybeCommit(r)) onCommitAdvanced(r);
  else if (wasPaused) sendAppend(r, m.from);
  // Flow control may now allow several messages: send as many as it permits.
  for (let i = 0; i <= r.tracker.maxInflightMsgs && maybeSendAppend(r, m.from, false); i++);
  if (m.from === r.leadTransferee && pr.match === r.log.lastIndex()) sendTimeoutNow(r, m.from);
}

function handleAppendReject(r: Raft, m: AppendRespMsg, pr: Progress): void {
  // Fast backtracking: skip every entry of ours whose term cannot match the follower's hint.
  let nextProbeIndex = m.rejectHint;
  if (m.logTerm > 0) {
    nextProbeIndex = r.log.findConflictByTerm(Math.min(m.rejectHint, r.log.lastIndex()), m.logTerm).index;
  }
  if (!pr.maybeDecrTo(m.index, nextProbeIndex)) return;
  if (pr.state === 'replicate') pr.becomeProbe();
  sendAppend(r, m.from);
}

function handleHeartbeatResponse(r: Raft, m: HeartbeatRespMsg, pr: Progress): void {
  assert(m.from !== r.id, 'heartbeat response from self');
  pr.recentActive = true;
  // The follower is alive: let one more message through even if all in-flight ones were lost.
  if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirstOne();
  if (pr.state !== 'snapshot') pr.msgAppFlowPaused = pr.state === 'replicate' && pr.inflights.full();
  if (pr.match < r.log.lastIndex() || pr.state === 'probe') sendAppend(r, m.from);
  if (r.readOnlyOption !== 'safe' || m.context.length === 0) return;
  const acks = r.readOnly.recvAck(m.from, m.context);
  if (acks === null || jointVoteResult(r.tracker.config.voters, acks) !== 'won') return;
  for (const status of r.readOnly.advance(m.context)) respondToRead(r, status.request, status.index);
}

// ---- ReadIndex ----

function leaderReadIndex(r: Raft, request: ReadRequest, local: boolean): void {
  if (r.tracker.isSingleton()) {
    respondToRead(r, request, r.log.committed);
    return;
  }
  if (!committedEntryInCurrentTerm(r)) {
    // The commit index of a new leader may be stale until it commits its own empty entry.
    if (r.pendingReadsBeforeCommit.length >= MAX_PENDING_READS_BEFORE_COMMIT) {
      if (local) throw new ProposalDroppedError('tooManyPendingReads');
      return;
    }
    r.pendingReadsBeforeCommit.push(request);
    return;
  }
  serveRead(r, request, local);
}

function committedEntryInCurrentTerm(r: Raft): boolean {
  return r.log.termOrNull(r.log.committed) === r.term;
}

function serveRead(r: Raft, request: ReadRequest, local: boolean): void {
  if (r.readOnlyOption === 'leaseBased') {
    respondToRead(r, request, r.readIndexFloor());
    return;
  }
  if (r.readOnly.isFull()) {
    if (local) throw new ProposalDroppedError('tooManyPendingReads');
    return;
  }
  if (r.readOnly.addRequest(r.readIndexFloor(), request)) {
    r.readOnly.recvAck(r.id, request.context);
    r.bcastHeartbeatWithContext(request.context);
  }
}

function releasePendingReads(r: Raft): void {
  if (r.pendingReadsBeforeCommit.length === 0 || !committedEntryInCurrentTerm(r)) return;
  const pending = r.pendingReadsBeforeCommit;
  r.pendingReadsBeforeCommit = [];
  for (const request of pending) serveRead(r, request, false);
}

function respondToRead(r: Raft, request: ReadRequest, index: number): void {
  if (request.from === NONE || request.from === r.id) {
    r.pushReadState({ index, context: request.context });
    return;
  }
  r.send({ type: 'readIndexResp', to: request.from, index, context: request.context });
}

// ---- leadership transfer ----

function handleTransferLeader(r: Raft, transferee: NodeId): void {
  const pr = r.tracker.progress.get(transferee);
  if (pr === undefined || pr.isLearner) return;
  if (r.leadTransferee !== NONE) {
    if (r.leadTransferee === transferee) return;
    r.leadTransferee = NONE;
  }
  if (transferee === r.id) return;
  // The transfer must finish within an election timeout, counted from now.
  r.electionElapsed = 0;
  r.leadTransferee = transferee;
  if (pr.match === r.log.lastIndex()) sendTimeoutNow(r, transferee);
  else sendAppend(r, transferee);
}

function sendTimeoutNow(r: Raft, to: NodeId): void {
  r.send({ type: 'timeoutNow', to });
}

// ---- driver reports ----

export function reportUnreachable(r: Raft, id: NodeId): void {
  if (r.role !== 'leader') return;
  const pr = r.tracker.progress.get(id);
  // An optimistic append was probably lost: probe again.
  if (pr !== undefined && pr.state === 'replicate') pr.becomeProbe();
}

export function reportSnapshot(r: Raft, id: NodeId, status: 'finish' | 'failure'): void {
  if (r.role !== 'leader') return;
  const pr = r.tracker.progress.get(id);
  if (pr === undefined || pr.state !== 'snapshot') return;
  // On failure forget the snapshot index first, so probing does not start past it.
  if (status === 'failure') pr.pendingSnapshot = 0;
  pr.becomeProbe();
  // finish: wait for the follower's append response; failure: retry after a heartbeat.
  pr.msgAppFlowPaused = true;
}
