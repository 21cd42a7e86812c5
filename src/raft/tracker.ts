// The leader's progress tracker: the current (possibly joint) configuration, per-peer Progress, votes.
import { assert } from '../util/index.ts';
import { Progress } from './progress.ts';
import { jointCommittedIndex, jointVoteResult, jointVoterIds, type JointConfig, type VoteResult } from './quorum.ts';
import type { ConfState, NodeId } from './types.ts';

export interface TrackerConfig {
  voters: JointConfig;
  /** Learners; disjoint from both voter sets. */
  learners: Set<NodeId>;
  /** Outgoing voters that become learners when the joint configuration is left. */
  learnersNext: Set<NodeId>;
  autoLeave: boolean;
}

export function emptyTrackerConfig(): TrackerConfig {
  return { voters: { incoming: new Set(), outgoing: new Set() }, learners: new Set(), learnersNext: new Set(), autoLeave: false };
}

export function cloneTrackerConfig(config: TrackerConfig): TrackerConfig {
  return {
    voters: { incoming: new Set(config.voters.incoming), outgoing: new Set(config.voters.outgoing) },
    learners: new Set(config.learners),
    learnersNext: new Set(config.learnersNext),
    autoLeave: config.autoLeave,
  };
}

const sortedIds = (ids: Iterable<NodeId>): NodeId[] => [...ids].sort((a, b) => a - b);

export function confStateOf(config: TrackerConfig): ConfState {
  return {
    voters: sortedIds(config.voters.incoming),
    votersOutgoing: sortedIds(config.voters.outgoing),
    learners: sortedIds(config.learners),
    learnersNext: sortedIds(config.learnersNext),
    autoLeave: config.autoLeave,
  };
}

export class ProgressTracker {
  config: TrackerConfig = emptyTrackerConfig();
  progress = new Map<NodeId, Progress>();
  /** Votes received in the current (pre-)election: voter -> granted. */
  votes = new Map<NodeId, boolean>();
  readonly maxInflightMsgs: number;
  readonly maxInflightBytes: number;

  constructor(maxInflightMsgs: number, maxInflightBytes: number) {
    assert(maxInflightMsgs > 0, 'maxInflightMsgs must be > 0');
    this.maxInflightMsgs = maxInflightMsgs;
    this.maxInflightBytes = maxInflightBytes;
  }

  confState(): ConfState {
    return confStateOf(this.config);
  }

  isJoint(): boolean {
    return this.config.voters.outgoing.size > 0;
  }

  /** Exactly one voter and not joint: the leader may act alone (e.g. ReadIndex). */
  isSingleton(): boolean {
    return this.config.voters.incoming.size === 1 && this.config.voters.outgoing.size === 0;
  }

  isVoter(id: NodeId): boolean {
    return this.config.voters.incoming.has(id) || this.config.voters.outgoing.has(id);
  }

  /** Highest index acknowledged by a (joint) quorum of voters. */
  committed(): number {
    return jointCommittedIndex(this.config.voters, (id) => this.progress.get(id)?.match ?? 0);
  }

  /** Calls `fn` for every tracked peer in ascending id order (deterministic output order). */
  visit(fn: (id: NodeId, progress: Progress) => void): void {
    for (const id of sortedIds(this.progress.keys())) {
      const progress = this.progress.get(id);
      assert(progress !== undefined);
      fn(id, progress);
    }
  }

  voterIds(): NodeId[] {
    return jointVoterIds(this.config.voters);
  }

  /** Whether a quorum of voters was heard from since the last CheckQuorum round. */
  quorumActive(): boolean {
    const active = new Map<NodeId, boolean>();
    this.visit((id, progress) => {
      if (!progress.isLearner) active.set(id, progress.recentActive);
    });
    return jointVoteResult(this.config.voters, active) === 'won';
  }

  resetVotes(): void {
    this.votes = new Map();
  }

  /** Records the first vote of `id` in this election; repeats are ignored. */
  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const id of this.voterIds()) {
      const vote = this.votes.get(id);
      if (vote === true) granted++;
      else if (vote === false) rejected++;
    }
    return { granted, rejected, result: jointVoteResult(this.config.voters, this.votes) };
  }

  /** Checks the configuration/progress invariants (etcd's confchange checkInvariants). */
  assertInvariants(): void {
    const { voters, learners, learnersNext, autoLeave } = this.config;
    for (const id of [...voters.incoming, ...voters.outgoing, ...learners, ...learnersNext]) {
      assert(this.progress.has(id), () => `no progress for ${id}`);
    }
    for (const id of learnersNext) {
      assert(voters.outgoing.has(id), () => `${id} is in learnersNext but not an outgoing voter`);
      assert(!learners.has(id), () => `${id} is in learnersNext and learners`);
      assert(this.progress.get(id)?.isLearner === false, () => `${id} is in learnersNext but is marked learner`);
    }
    for (const id of learners) {
      assert(!voters.incoming.has(id) && !voters.outgoing.has(id), () => `${id} is a learner and a voter`);
      assert(this.progress.get(id)?.isLearner === true, () => `${id} is a learner but not marked so`);
    }
    if (voters.outgoing.size === 0) {
      assert(learnersNext.size === 0, 'learnersNext outside a joint config');
      assert(!autoLeave, 'autoLeave outside a joint config');
    }
  }
}
