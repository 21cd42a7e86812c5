// Quorum arithmetic: majority and joint (two-majority) configurations, for commit and elections.
import { assert } from '../util/index.ts';
import type { NodeId } from './types.ts';

export type VoteResult = 'pending' | 'lost' | 'won';

/** Committed index of an empty configuration: it never holds anything back in a joint config. */
export const EMPTY_CONFIG_COMMIT = Number.MAX_SAFE_INTEGER;

/** The highest index acknowledged by a majority of `voters`; `match(id)` is 0 when unknown. */
export function majorityCommittedIndex(voters: ReadonlySet<NodeId>, match: (id: NodeId) => number): number {
  if (voters.size === 0) return EMPTY_CONFIG_COMMIT;
  const indexes: number[] = [];
  for (const id of voters) indexes.push(match(id));
  indexes.sort((a, b) => b - a);
  const quorum = Math.floor(voters.size / 2) + 1;
  const committed = indexes[quorum - 1];
  assert(committed !== undefined && committed >= 0, 'majority commit index missing');
  return committed;
}

/** Outcome of an election among `voters`; `votes` maps voter -> granted. Empty config wins. */
export function majorityVoteResult(voters: ReadonlySet<NodeId>, votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  if (voters.size === 0) return 'won';
  let granted = 0;
  let missing = 0;
  for (const id of voters) {
    const vote = votes.get(id);
    if (vote === undefined) missing++;
    else if (vote) granted++;
  }
  const quorum = Math.floor(voters.size / 2) + 1;
  if (granted >= quorum) return 'won';
  if (granted + missing >= quorum) return 'pending';
  return 'lost';
}

/** Voters of the incoming and (during joint consensus) outgoing configurations. */
export interface JointConfig {
  incoming: Set<NodeId>;
  outgoing: Set<NodeId>;
}

/** Joint commit: an index is committed only when both majorities have it. */
export function jointCommittedIndex(config: JointConfig, match: (id: NodeId) => number): number {
  const incoming = majorityCommittedIndex(config.incoming, match);
  const outgoing = majorityCommittedIndex(config.outgoing, match);
  return Math.min(incoming, outgoing);
}

/** Joint election: won when both majorities win, lost when either loses. */
export function jointVoteResult(config: JointConfig, votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  const incoming = majorityVoteResult(config.incoming, votes);
  const outgoing = majorityVoteResult(config.outgoing, votes);
  if (incoming === outgoing) return incoming;
  if (incoming === 'lost' || outgoing === 'lost') return 'lost';
  return 'pending';
}

/** Every voter of either half, sorted (deterministic iteration). */
export function jointVoterIds(config: JointConfig): NodeId[] {
  const ids = new Set<NodeId>([...config.incoming, ...config.outgoing]);
  return [...ids].sort((a, b) => a - b);
}
