// The Raft core's vocabulary: log entries, persistent state, messages, Ready, configuration.
// Everything here is plain data, so drivers can encode it (msgpackr) and simulators can copy it.

/** A member of one Raft group. Positive safe integer; 0 (`NONE`) means "nobody". */
export type NodeId = number;
export const NONE: NodeId = 0;

/** `normal` entries carry opaque application bytes; `conf` entries carry an encoded ConfChange. */
export type EntryType = 'normal' | 'conf';

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  /** Opaque to the core for `normal`; `encodeConfChange` output for `conf`. Empty = no-op. */
  data: Uint8Array;
}

/** What must survive a crash, besides the log: current term, vote in that term, commit index. */
export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/** Volatile state that the driver may want to observe (who leads, what we are). */
export interface SoftState {
  leader: NodeId;
  role: Role;
}

/** Group membership. During joint consensus `votersOutgoing` is the old voter set. */
export interface ConfState {
  voters: NodeId[];
  votersOutgoing: NodeId[];
  learners: NodeId[];
  /** Learners that were voters in the outgoing config and become learners once the joint config is left. */
  learnersNext: NodeId[];
  /** Leave the joint config automatically once it commits (etcd's AutoLeave). */
  autoLeave: boolean;
}

export interface SnapshotMetadata {
  index: number;
  term: number;
  confState: ConfState;
}

export interface Snapshot {
  metadata: SnapshotMetadata;
  /** Opaque state-machine image. The core never looks inside. */
  data: Uint8Array;
}

export type ConfChangeType = 'addNode' | 'removeNode' | 'addLearner';

export interface ConfChangeSingle {
  type: ConfChangeType;
  nodeId: NodeId;
}

/**
 * etcd's ConfChangeV2. One change with transition `auto` is applied directly (simple change);
 * several changes (or transition `explicit`/`implicit`) go through a joint configuration.
 * An empty `changes` list leaves the joint configuration.
 */
export interface ConfChange {
  transition: 'auto' | 'implicit' | 'explicit';
  changes: ConfChangeSingle[];
  /** Opaque to the core; the application may use it (e.g. the new member's address). */
  context: Uint8Array;
}

/** Returned with ReadIndex: once `applied >= index`, a read tagged `context` is linearizable. */
export interface ReadState {
  index: number;
  context: Uint8Array;
}

interface MessageBase {
  from: NodeId;
  to: NodeId;
  /** Sender's term; 0 for messages that carry no term (forwarded proposals, forwarded reads). */
  term: number;
}

/** Leader → follower: entries after (logTerm, index); `commit` is the leader's commit index. */
export interface AppendMsg extends MessageBase {
  type: 'app';
  logTerm: number;
  index: number;
  entries: Entry[];
  commit: number;
}

/** Follower → leader. On reject, `rejectHint`/`logTerm` let the leader skip a whole term (fast backtracking). */
export interface AppendRespMsg extends MessageBase {
  type: 'appResp';
  index: number;
  reject: boolean;
  rejectHint: number;
  logTerm: number;
}

/** (Pre)candidate → voter. `transfer` marks a campaign started by leadership transfer (skips lease check). */
export interface VoteMsg extends MessageBase {
  type: 'vote' | 'preVote';
  logTerm: number;
  index: number;
  transfer: boolean;
}

export interface VoteRespMsg extends MessageBase {
  type: 'voteResp' | 'preVoteResp';
  reject: boolean;
}

/** Leader → follower. `context` non-empty when the heartbeat confirms leadership for ReadIndex. */
export interface HeartbeatMsg extends MessageBase {
  type: 'heartbeat';
  commit: number;
  context: Uint8Array;
}

export interface HeartbeatRespMsg extends MessageBase {
  type: 'heartbeatResp';
  context: Uint8Array;
}

/**
 * Leader → follower, sent once the leader's own log is durable through `index` while the commit
 * still waits for a follower's acknowledgement (a Tessera addition to Raft, no reply). With at most
 * three voters the leader and one follower are a quorum, so a follower whose own log is durable
 * through an entry of this term knows that entry is committed a network hop before the leader's
 * commit index could tell it (raft.ts, commitByLeaderDurable).
 */
export interface DurableMsg extends MessageBase {
  type: 'durable';
  index: number;
}

/** Leader → follower that is too far behind: install this snapshot. */
export interface SnapshotMsg extends MessageBase {
  type: 'snap';
  snapshot: Snapshot;
}

/** Leader → transfer target: campaign now, ignoring the election timeout. */
export interface TimeoutNowMsg extends MessageBase {
  type: 'timeoutNow';
}

/** Follower → leader: proposals forwarded (unless forwarding is disabled). */
export interface ProposeMsg extends MessageBase {
  type: 'prop';
  entries: Entry[];
}

/** Follower → leader: a read forwarded for a ReadIndex. */
export interface ReadIndexMsg extends MessageBase {
  type: 'readIndex';
  context: Uint8Array;
}

export interface ReadIndexRespMsg extends MessageBase {
  type: 'readIndexResp';
  index: number;
  context: Uint8Array;
}

/** Follower → leader: a leadership transfer request forwarded to the leader. */
export interface TransferLeaderMsg extends MessageBase {
  type: 'transferLeader';
  transferee: NodeId;
}

/** Every message that crosses the network between members of one group. */
export type Message =
  | AppendMsg
  | AppendRespMsg
  | VoteMsg
  | VoteRespMsg
  | HeartbeatMsg
  | HeartbeatRespMsg
  | DurableMsg
  | SnapshotMsg
  | TimeoutNowMsg
  | ProposeMsg
  | ReadIndexMsg
  | ReadIndexRespMsg
  | TransferLeaderMsg;

export type MessageType = Message['type'];

/**
 * What the driver must do, in this order:
 * 1. persist `snapshot` (if any), `entries` and `hardState` (fsync when `mustSync`);
 * 2. send `messages`;
 * 3. apply `snapshot` then `committedEntries` to the state machine, serve `readStates`;
 * 4. call `advance()`.
 */
export interface Ready {
  softState: SoftState | null;
  hardState: HardState | null;
  readStates: ReadState[];
  entries: Entry[];
  snapshot: Snapshot | null;
  committedEntries: Entry[];
  messages: Message[];
  mustSync: boolean;
}

/** Injected randomness: the only source the core uses (randomized election timeouts). */
export interface Rng {
  /** Uniform integer in [0, maxExclusive). */
  nextInt(maxExclusive: number): number;
}

export type ReadOnlyOption = 'safe' | 'leaseBased';

export interface RaftConfig {
  id: NodeId;
  /** Ticks without hearing from a leader before campaigning; randomized in [electionTicks, 2*electionTicks). */
  electionTicks: number;
  heartbeatTicks: number;
  /** Last index applied by the state machine before this restart. */
  applied: number;
  /** Upper bound on the bytes of entries in one append message. */
  maxSizePerMsg: number;
  /** Max append messages in flight to one follower in the replicate state. */
  maxInflightMsgs: number;
  /** Max bytes of entries in flight to one follower (0 = unlimited). */
  maxInflightBytes: number;
  /** Max bytes of proposed-but-uncommitted entries on the leader (0 = unlimited); past it proposals are dropped. */
  maxUncommittedEntriesSize: number;
  /** Max bytes of committed entries handed out in one Ready (0 = unlimited). */
  maxCommittedSizePerReady: number;
  checkQuorum: boolean;
  preVote: boolean;
  /** `leaseBased` is only honoured with `checkQuorum`. */
  readOnlyOption: ReadOnlyOption;
  disableProposalForwarding: boolean;
  /**
   * Leader: once its own log is durable while the commit still waits for a follower, tell the
   * followers whose forwarded proposals are not yet committed ('durable' messages, a Tessera
   * addition; off by default, as etcd's Raft does not send them). With at most three voters they
   * then learn the commit a network hop sooner. Followers act on the messages either way.
   */
  leaderDurableNotices?: boolean;
  rng: Rng;
  /**
   * Deliberately broken behaviour, so tests can prove that the simulator's invariant checks catch
   * real bugs. Never set outside tests.
   * - `commitOldTermByCounting`: the leader commits entries of earlier terms by counting replicas
   *   (the bug of Figure 8 in the Raft paper).
   * - `grantEveryVote`: grant every (pre-)vote request, ignoring the earlier vote and log freshness.
   * - `skipAppendConsistencyCheck`: accept appended entries even when the entry before them does
   *   not match (`logTerm` differs), breaking the log matching property.
   * - `readBelowDurableNotices`: send 'durable' messages (as `leaderDurableNotices`) but serve reads
   *   at the commit index alone, below writes a follower may already have acknowledged.
   */
  testingFault?: 'commitOldTermByCounting' | 'grantEveryVote' | 'skipAppendConsistencyCheck' | 'readBelowDurableNotices';
}

/**
 * The narrow read-only view of durable Raft state the core needs. The driver writes to it
 * (append, snapshot, compaction) as it handles Ready; the core only reads.
 */
export interface LogStorage {
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries in [lo, hi), at least one if any exist, at most `maxBytes` in total otherwise. Throws CompactedError / UnavailableError. */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /** Term of entry `index`; valid for firstIndex()-1 ..= lastIndex(). Throws CompactedError / UnavailableError. */
  term(index: number): number;
  firstIndex(): number;
  lastIndex(): number;
  /** The most recent snapshot. Throws SnapshotTemporarilyUnavailableError if it is being built. */
  snapshot(): Snapshot;
}
