// The node's monotonic clock, with a rate that fault injection can skew (chaos tests only): at
// rate 2 the node's Raft ticks, lease clock and request deadlines run twice as fast as real time.
import { assert } from '../util/index.ts';

/** Bounds on the skew rate: past them a node is not slow or fast but stopped or spinning. */
export const MIN_CLOCK_RATE = 0.1;
export const MAX_CLOCK_RATE = 10;

export class NodeClock {
  private currentRate = 1;
  /** Real and skewed time at the last rate change: skewed time is continuous and monotonic. */
  private anchorRealMs: number;
  private anchorMs: number;
  private readonly listeners: (() => void)[] = [];

  constructor(private readonly realNow: () => number = () => performance.now()) {
    this.anchorRealMs = realNow();
    this.anchorMs = this.anchorRealMs;
  }

  /** Milliseconds on this node's (possibly skewed) monotonic clock. */
  now(): number {
    return this.anchorMs + (this.realNow() - this.anchorRealMs) * this.currentRate;
  }

  get rate(): number {
    return this.currentRate;
  }

  /** Runs the clock at `rate` times real time from now on (1 = undo the skew). */
  setRate(rate: number): void {
    if (!Number.isFinite(rate) || rate < MIN_CLOCK_RATE || rate > MAX_CLOCK_RATE) {
      throw new RangeError(`clock rate must be in [${MIN_CLOCK_RATE}, ${MAX_CLOCK_RATE}], got ${rate}`);
    }
    const before = this.now();
    this.anchorRealMs = this.realNow();
    this.anchorMs = before;
    this.currentRate = rate;
    assert(this.now() >= before, 'the skewed clock went backwards');
    for (const listener of this.listeners) listener();
  }

  /** Called after every rate change (the node re-arms its tick timer). */
  onRateChange(listener: () => void): void {
    this.listeners.push(listener);
  }
}
