import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLatencyHistogram, decodeHistogram, encodeHistogram, mergeHistograms, recordMicros, summarize } from '../../src/bench/latency-histogram.js';
import type { LatencyHistogram } from '../../src/bench/latency-histogram.js';

function filled(fromMicros: number, toMicros: number): LatencyHistogram {
  const histogram = createLatencyHistogram();
  for (let value = fromMicros; value <= toMicros; value++) recordMicros(histogram, value);
  return histogram;
}

describe('latency histograms', () => {
  it('gives exact percentiles for 1..1000 µs (below 2048, every value has its own bucket)', () => {
    const summary = summarize(filled(1, 1000));
    assert.equal(summary.count, 1000);
    assert.equal(summary.minMicros, 1);
    assert.equal(summary.p50Micros, 500);
    assert.equal(summary.p75Micros, 750);
    assert.equal(summary.p90Micros, 900);
    assert.equal(summary.p95Micros, 950);
    assert.equal(summary.p99Micros, 990);
    assert.equal(summary.p999Micros, 999);
    assert.equal(summary.p9999Micros, 1000);
    assert.equal(summary.maxMicros, 1000);
    assert.equal(summary.meanMicros, 500.5);
  });

  it('keeps three significant digits for large values', () => {
    const histogram = createLatencyHistogram();
    recordMicros(histogram, 1_234_567);
    const p100 = histogram.getValueAtPercentile(100);
    assert.ok(Math.abs(p100 - 1_234_567) / 1_234_567 < 0.001, `p100 ${p100}`);
  });

  it('grows past its initial highest value instead of throwing', () => {
    const histogram = createLatencyHistogram();
    recordMicros(histogram, 600_000_000);
    assert.equal(histogram.totalCount, 1);
    assert.ok(histogram.maxValue >= 600_000_000 * 0.999);
  });

  it('records negative latencies as 0 and rounds fractions', () => {
    const histogram = createLatencyHistogram();
    recordMicros(histogram, -5);
    recordMicros(histogram, 2.6);
    assert.equal(histogram.totalCount, 2);
    assert.equal(histogram.getValueAtPercentile(50), 0);
    assert.equal(histogram.maxValue, 3);
  });

  it('survives encode and decode with every count intact', () => {
    const original = filled(1, 5000);
    recordMicros(original, 250_000);
    const decoded = summarize(decodeHistogram(encodeHistogram(original)));
    const expected = summarize(original);
    // The encoding keeps bucket counts, so a decoded max is its bucket's top: equal within 0.1%.
    assert.ok(Math.abs(decoded.maxMicros - expected.maxMicros) / expected.maxMicros <= 0.001);
    assert.deepEqual({ ...decoded, maxMicros: 0 }, { ...expected, maxMicros: 0 });
  });

  it('merges parts into the distribution of the whole', () => {
    const merged = mergeHistograms([decodeHistogram(encodeHistogram(filled(1, 400))), filled(401, 1000)]);
    // All values are below 2048 µs, where buckets are exact, so even max survives the round trip.
    assert.deepEqual(summarize(merged), summarize(filled(1, 1000)));
  });

  it('summarizes an empty histogram as zeros', () => {
    const summary = summarize(createLatencyHistogram());
    assert.equal(summary.count, 0);
    assert.equal(summary.p99Micros, 0);
    assert.equal(summary.maxMicros, 0);
  });
});
