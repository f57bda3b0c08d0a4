/**
 * Reading HDR histograms for Prometheus buckets and the dashboard's percentile curves:
 * cumulative counts at a bound match a brute-force count (within HDR's 3-digit precision),
 * and curves are monotonic and end at the max.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { newHistogram, recordUs } from '../../src/metrics/latency.js';
import { countAtOrBelow, percentileCurve } from '../../src/mgmt/hdr-view.js';

describe('hdr-view', () => {
  test('countAtOrBelow agrees with counting the values, at any bound', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 2000 }), { minLength: 1, maxLength: 300 }), fc.integer({ min: 0, max: 2100 }), (values, bound) => {
        const h = newHistogram();
        for (const v of values) recordUs(h, v);
        // Values up to 2048 are exact at 3 significant digits.
        assert.equal(countAtOrBelow(h, bound), values.filter((v) => v <= bound).length);
      }),
    );
  });

  test('countAtOrBelow on wide ranges stays within the histogram precision', () => {
    const h = newHistogram();
    const values = Array.from({ length: 5000 }, (_, i) => Math.round(10 * 1.003 ** i));
    for (const v of values) recordUs(h, v);
    for (const bound of [100, 1_000, 10_000, 100_000, 1_000_000]) {
      const exact = values.filter((v) => v <= bound).length;
      const lo = values.filter((v) => v <= bound * 0.999).length;
      const hi = values.filter((v) => v <= bound * 1.001).length;
      const got = countAtOrBelow(h, bound);
      assert.ok(got >= lo && got <= hi, `bound ${bound}: ${got} not within [${lo}, ${hi}] (exact ${exact})`);
    }
    assert.equal(countAtOrBelow(newHistogram(), 5), 0);
  });

  test('percentile curves rise monotonically from the min to the max', () => {
    const h = newHistogram();
    for (let i = 1; i <= 10_000; i++) recordUs(h, i);
    const curve = percentileCurve(h);
    assert.equal(curve[0]?.percentile, 0);
    assert.equal(curve[curve.length - 1]?.percentile, 100);
    assert.ok((curve[curve.length - 1]?.value_us ?? 0) >= h.maxValue);
    for (let i = 1; i < curve.length; i++) {
      assert.ok((curve[i]?.percentile ?? 0) > (curve[i - 1]?.percentile ?? 0));
      assert.ok((curve[i]?.value_us ?? 0) >= (curve[i - 1]?.value_us ?? 0));
    }
    const p50 = curve.find((p) => p.percentile === 50);
    assert.ok(p50 !== undefined && Math.abs(p50.value_us - 5000) <= 5);
    assert.deepEqual(percentileCurve(newHistogram()), []);
  });
});
