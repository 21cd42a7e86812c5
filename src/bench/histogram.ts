// A small HDR-style latency histogram: log-bucketed counts of microseconds with 128 linear
// sub-buckets per power of two (relative error under 0.8%), cheap to record and to merge across
// worker threads (a plain array of counts crosses postMessage).
import { assert } from '../util/index.ts';

/** Sub-buckets per power of two: 2^7 = 128, so a recorded value is within 1/128 of the truth. */
const SUB_BITS = 7;
const SUB_COUNT = 1 << SUB_BITS;
/** Largest value tracked exactly enough: 2^31 - 1 µs (about 36 minutes); larger values are clamped. */
const MAX_VALUE_US = 2 ** 31 - 1;
const BUCKET_COUNT = SUB_COUNT + (31 - SUB_BITS) * SUB_COUNT;

/** What a histogram looks like after it crosses a thread boundary. */
export interface HistogramSnapshot {
  counts: number[];
  total: number;
  sumUs: number;
  minUs: number;
  maxUs: number;
}

export interface LatencySummary {
  count: number;
  meanMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

function bucketOf(valueUs: number): number {
  if (valueUs < SUB_COUNT) return valueUs;
  const exponent = 31 - Math.clz32(valueUs);
  const sub = valueUs >>> (exponent - SUB_BITS);
  return SUB_COUNT + (exponent - SUB_BITS) * SUB_COUNT + (sub - SUB_COUNT);
}

/** The middle of a bucket's value range, in microseconds. */
function bucketMiddleUs(bucket: number): number {
  if (bucket < SUB_COUNT) return bucket;
  const exponent = Math.floor((bucket - SUB_COUNT) / SUB_COUNT) + SUB_BITS;
  const sub = ((bucket - SUB_COUNT) % SUB_COUNT) + SUB_COUNT;
  const width = 2 ** (exponent - SUB_BITS);
  return sub * width + (width - 1) / 2;
}

export class Histogram {
  private readonly counts = new Float64Array(BUCKET_COUNT);
  private total = 0;
  private sumUs = 0;
  private minUs = Number.POSITIVE_INFINITY;
  private maxUs = 0;

  /** Records one value in microseconds (fractions are rounded; negatives count as 0). */
  record(valueUs: number): void {
    const us = Math.min(MAX_VALUE_US, Math.max(0, Math.round(valueUs)));
    this.counts[bucketOf(us)]++;
    this.total++;
    this.sumUs += us;
    if (us < this.minUs) this.minUs = us;
    if (us > this.maxUs) this.maxUs = us;
  }

  get count(): number {
    return this.total;
  }

  /** The value at quantile q (0..1) in microseconds: exact for min/max, within 0.8% otherwise. */
  quantileUs(q: number): number {
    assert(q >= 0 && q <= 1, `quantile ${q} is outside 0..1`);
    if (this.total === 0) return 0;
    if (q === 1) return this.maxUs;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let bucket = 0; bucket < BUCKET_COUNT; bucket++) {
      seen += this.counts[bucket];
      if (seen >= rank) return Math.min(this.maxUs, Math.max(this.minUs, bucketMiddleUs(bucket)));
    }
    return this.maxUs;
  }

  merge(other: HistogramSnapshot): void {
    assert(other.counts.length === BUCKET_COUNT, 'histogram snapshots have the same bucket layout');
    for (let bucket = 0; bucket < BUCKET_COUNT; bucket++) this.counts[bucket] += other.counts[bucket];
    this.total += other.total;
    this.sumUs += other.sumUs;
    if (other.total > 0) {
      this.minUs = Math.min(this.minUs, other.minUs);
      this.maxUs = Math.max(this.maxUs, other.maxUs);
    }
  }

  snapshot(): HistogramSnapshot {
    return {
      counts: Array.from(this.counts),
      total: this.total,
      sumUs: this.sumUs,
      minUs: this.total > 0 ? this.minUs : 0,
      maxUs: this.maxUs,
    };
  }

  static from(snapshot: HistogramSnapshot): Histogram {
    const histogram = new Histogram();
    histogram.merge(snapshot);
    return histogram;
  }

  summary(): LatencySummary {
    const ms = (us: number) => Math.round(us) / 1000;
    return {
      count: this.total,
      meanMs: this.total > 0 ? ms(this.sumUs / this.total) : 0,
      p50Ms: ms(this.quantileUs(0.5)),
      p90Ms: ms(this.quantileUs(0.9)),
      p99Ms: ms(this.quantileUs(0.99)),
      p999Ms: ms(this.quantileUs(0.999)),
      maxMs: ms(this.maxUs),
    };
  }
}
