// The leader's view of one follower: match/next, the probe/replicate/snapshot state machine, inflights.
import { assert } from '../util/index.ts';
import { Inflights } from './inflights.ts';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/**
 * probe: one append per heartbeat until the follower's position is found;
 * replicate: optimistic pipelining, bounded by `inflights`;
 * snapshot: waiting for a snapshot to be installed, nothing else is sent.
 */
export class Progress {
  match: number;
  next: number;
  state: ProgressState = 'probe';
  /** Index of the snapshot in flight (snapshot state), else 0. */
  pendingSnapshot = 0;
  /** Heard from since the last CheckQuorum round. */
  recentActive = false;
  /** Probe state: an append was sent since the last response. Replicate: inflights are full. */
  msgAppFlowPaused = false;
  inflights: Inflights;
  isLearner: boolean;
  /** Last index of the entries this follower forwarded to this leader ('durable' messages go to it while they are uncommitted). */
  forwardedTo = 0;

  constructor(match: number, next: number, inflights: Inflights, isLearner: boolean) {
    assert(match < next, () => `progress needs match ${match} < next ${next}`);
    this.match = match;
    this.next = next;
    this.inflights = inflights;
    this.isLearner = isLearner;
  }

  private resetState(state: ProgressState): void {
    this.msgAppFlowPaused = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    if (this.state === 'snapshot') {
      const pendingSnapshot = this.pendingSnapshot;
      this.resetState('probe');
      this.next = Math.max(this.match + 1, pendingSnapshot + 1);
    } else {
      this.resetState('probe');
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    assert(snapshotIndex > 0, 'snapshot index must be > 0');
    this.resetState('snapshot');
    this.pendingSnapshot = snapshotIndex;
    this.next = snapshotIndex + 1;
  }

  /** Accounts for an append of `count` entries (`bytes` in total) just sent. */
  sentEntries(count: number, bytes: number): void {
    assert(this.state !== 'snapshot', 'sending entries in snapshot state');
    if (this.state === 'replicate') {
      if (count > 0) {
        this.next += count;
        this.inflights.add(this.next - 1, bytes);
      }
      this.msgAppFlowPaused = this.inflights.full();
    } else if (count > 0) {
      this.msgAppFlowPaused = true;
    }
  }

  /** Follower acknowledged up to `index`; false if that was no news. */
  maybeUpdate(index: number): boolean {
    if (index <= this.match) return false;
    this.match = index;
    this.next = Math.max(this.next, index + 1);
    this.msgAppFlowPaused = false;
    assert(this.match < this.next);
    return true;
  }

  /**
   * Follower rejected an append at `rejected`; `matchHint` is the highest index that may match.
   * False if the rejection is stale.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.msgAppFlowPaused = false;
    assert(this.next >= 1 && this.match < this.next);
    return true;
  }

  isPaused(): boolean {
    if (this.state === 'snapshot') return true;
    // A stale ack (reordered network) can clear the flag without freeing a slot: check the window too.
    if (this.state === 'replicate' && this.inflights.full()) return true;
    return this.msgAppFlowPaused;
  }
}
