// A read-only snapshot of a Raft node's state for monitoring, tests and the simulator's checks.
import type { ConfState, HardState, NodeId, SoftState } from './types.ts';

export interface ProgressStatus {
  match: number;
  next: number;
  state: 'probe' | 'replicate' | 'snapshot';
  recentActive: boolean;
  /** Append messages in flight. */
  inflight: number;
  isLearner: boolean;
  pendingSnapshot: number;
}

export interface RaftStatus {
  id: NodeId;
  hardState: HardState;
  softState: SoftState;
  applied: number;
  lastIndex: number;
  leadTransferee: NodeId;
  confState: ConfState;
  /** Per-peer replication progress; only on the leader. */
  progress: Map<NodeId, ProgressStatus> | null;
}
