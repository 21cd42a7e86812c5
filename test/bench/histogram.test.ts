// The bench histogram: quantiles within its stated 1/128 relative error, exact max, merge = union.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Histogram } from '../../src/bench/index.ts';

function exactQuantile(sorted: number[], q: number): number {
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)];
}

test('quantiles are within 1/128 of the exact values over a wide range', () => {
  const values = Array.from({ length: 20_000 }, (_, i) => Math.round(Math.exp((i % 997) / 60) * 3));
  const histogram = new Histogram();
  for (const v of values) histogram.record(v);
  const sorted = [...values].sort((a, b) => a - b);
  for (const q of [0.5, 0.9, 0.99, 0.999]) {
    const exact = exactQuantile(sorted, q);
    const got = histogram.quantileUs(q);
    assert.ok(Math.abs(got - exact) <= Math.max(1, exact / 128), `q=${q}: ${got} vs ${exact}`);
  }
  assert.equal(histogram.quantileUs(1), sorted[sorted.length - 1]);
  assert.equal(histogram.count, values.length);
});

test('merging snapshots equals recording everything in one histogram', () => {
  const a = new Histogram();
  const b = new Histogram();
  const all = new Histogram();
  for (let i = 1; i <= 5_000; i++) {
    (i % 3 === 0 ? a : b).record(i * 17);
    all.record(i * 17);
  }
  const merged = Histogram.from(a.snapshot());
  merged.merge(b.snapshot());
  assert.deepEqual(merged.summary(), all.summary());
  assert.equal(merged.summary().maxMs, 85);
});

test('summary reports milliseconds, and an empty histogram is all zeros', () => {
  const h = new Histogram();
  assert.deepEqual(h.summary(), { count: 0, meanMs: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, p999Ms: 0, maxMs: 0 });
  h.record(1_500);
  h.record(2_500);
  const s = h.summary();
  assert.equal(s.count, 2);
  assert.equal(s.meanMs, 2);
  assert.ok(Math.abs(s.p50Ms - 1.5) < 0.015);
  assert.equal(s.maxMs, 2.5);
});
