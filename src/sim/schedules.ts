// Targeted fault schedules: scripted adversaries that drive the cluster into situations random
// search rarely reaches, checked by the same invariants. The adversary only ever drops messages,
// crashes and restarts nodes and asks nodes to campaign: nothing a real network and operator cannot do.
import type { AppendMsg, Message, NodeId, RaftConfig } from '../raft/index.ts';
import { InvariantViolation } from './checker.ts';
import type { Cluster, SimNode } from './cluster.ts';
import { PERFECT_NETWORK } from './network.ts';

export type Schedule = 'random' | 'figure8';
export const SCHEDULES: readonly Schedule[] = ['random', 'figure8'];

/** Elections only when the script asks (no ticks, no pre-vote), and one entry per append message. */
export const FIGURE8_RAFT: Partial<RaftConfig> = {
  electionTicks: 10,
  heartbeatTicks: 1,
  preVote: false,
  checkQuorum: false,
  readOnlyOption: 'safe',
  maxSizePerMsg: 1,
  maxInflightMsgs: 256,
  maxInflightBytes: 0,
  maxUncommittedEntriesSize: 0,
  maxCommittedSizePerReady: 0,
  disableProposalForwarding: false,
};
export const FIGURE8_NODES = 5;

/** Bound on ticks to settle one exchange; the script's exchanges take a handful. */
const SETTLE_TICKS = 200;
/** Campaigns tried before the script gives up on electing a node. */
const MAX_CAMPAIGNS = 4;
/** Crashed by the script: restarted only by the script or by the calm phase. */
const UNTIL_RESTARTED = 1_000_000;

function member(cluster: Cluster, id: NodeId): SimNode {
  const node = cluster.nodes.get(id);
  if (node === undefined) throw new InvariantViolation('sim error', `schedule needs n${id}`);
  return node;
}

function elect(cluster: Cluster, id: NodeId): number {
  const node = member(cluster, id);
  for (let attempt = 0; attempt < MAX_CAMPAIGNS; attempt++) {
    cluster.campaign(node);
    cluster.settle(SETTLE_TICKS);
    if (node.role === 'leader') return node.leaderTerm;
  }
  throw new InvariantViolation('sim error', `schedule could not elect n${id}`);
}

/** Whether the target's log reaches the append's previous index (so it could accept the entries). */
function reaches(cluster: Cluster, msg: AppendMsg): boolean {
  const target = cluster.nodes.get(msg.to);
  return target !== undefined && target.storage.lastIndex() >= msg.index;
}

/**
 * Figure 8 of the Raft paper, on five nodes. Each step's comment says what a correct core does;
 * a core that commits an earlier term's entry by counting replicas breaks leader completeness at
 * step (d), and one that skips the append consistency check breaks log matching there.
 */
export function runFigure8(cluster: Cluster): void {
  const network = cluster.network;
  network.faults = { ...PERFECT_NETWORK };
  cluster.recordEvent('phase', 'figure 8 (a): n1 leads, its new entry reaches n2 only');
  const firstTerm = elect(cluster, 1);
  network.adversary = (m: Message) => m.type === 'app' && m.from === 1 && m.to !== 2 && m.entries.length > 0;
  cluster.propose(member(cluster, 1), 1, 0);
  cluster.settle(SETTLE_TICKS);

  cluster.recordEvent(
    'phase',
    'figure 8 (b): n1 crashes; n5 wins with n3, n4 and keeps its own entry at the same index',
  );
  cluster.crash(member(cluster, 1), UNTIL_RESTARTED);
  network.adversary = (m: Message) => m.type === 'app' && m.from === 5 && m.entries.length > 0;
  elect(cluster, 5);

  cluster.recordEvent(
    'phase',
    'figure 8 (c): n5 crashes; n1 wins again and re-replicates its old entry; its new-term entries are lost',
  );
  cluster.crash(member(cluster, 5), UNTIL_RESTARTED);
  cluster.restart(member(cluster, 1));
  network.adversary = (m: Message) =>
    m.type === 'app' &&
    m.from === 1 &&
    m.entries.some((entry) => entry.term > firstTerm) &&
    reaches(cluster, m);
  elect(cluster, 1);
  cluster.settle(SETTLE_TICKS);

  cluster.recordEvent(
    'phase',
    'figure 8 (d): n1 crashes; n5 wins with n2, n3, n4 and overwrites the old entry (legal only if it never committed)',
  );
  cluster.crash(member(cluster, 1), UNTIL_RESTARTED);
  network.adversary = null;
  cluster.restart(member(cluster, 5));
  elect(cluster, 5);
  cluster.settle(SETTLE_TICKS);
}
