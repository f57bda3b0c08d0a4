import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatHgrm, parseHgrm } from '../../src/bench/hgrm.js';
import { createLatencyHistogram, recordMicros } from '../../src/bench/latency-histogram.js';

describe('.hgrm percentile distribution', () => {
  // 1..100 ms recorded in microseconds, written in milliseconds.
  const histogram = createLatencyHistogram();
  for (let millis = 1; millis <= 100; millis++) recordMicros(histogram, millis * 1000);
  const text = formatHgrm(histogram);
  const lines = text.split('\n');

  it('starts with HdrHistogram\'s column header', () => {
    assert.match(lines[0] ?? '', /^\s+Value\s+Percentile\s+TotalCount\s+1\/\(1-Percentile\)$/);
    assert.equal(lines[1], '');
  });

  it('writes rows as value (ms, 3 decimals), percentile (12 decimals), count, 1/(1-p)', () => {
    assert.match(lines[2] ?? '', /^\s+1\.000 0\.000000000000\s+1\s+1\.00$/);
    const median = lines.find((line) => / 0\.500000000000 /.test(line));
    assert.match(median ?? '', /^\s+50\.015 0\.500000000000\s+50\s+2\.00$/);
  });

  it('ends the rows at percentile 1 with a blank 1/(1-p), then the three footer lines', () => {
    const footerStart = lines.findIndex((line) => line.startsWith('#[Mean'));
    assert.match(lines[footerStart - 1] ?? '', /^\s+100\.031 1\.000000000000\s+100$/);
    assert.match(lines[footerStart] ?? '', /^#\[Mean {4}= +50\.504, StdDeviation {3}= +28\.866\]$/);
    assert.match(lines[footerStart + 1] ?? '', /^#\[Max {5}= +100\.000, Total count {4}= +100\]$/);
    assert.match(lines[footerStart + 2] ?? '', /^#\[Buckets = +\d+, SubBuckets {5}= +2048\]$/);
  });

  it('parses back to rows whose percentiles and counts never decrease', () => {
    const parsed = parseHgrm(text);
    assert.equal(parsed.totalCount, 100);
    assert.equal(parsed.maxMillis, 100);
    assert.equal(parsed.meanMillis, 50.504);
    assert.ok(parsed.rows.length > 20);
    for (let index = 1; index < parsed.rows.length; index++) {
      const previous = parsed.rows[index - 1];
      const row = parsed.rows[index];
      assert.ok(previous !== undefined && row !== undefined);
      assert.ok(row.percentile >= previous.percentile && row.totalCount >= previous.totalCount && row.valueMillis >= previous.valueMillis);
    }
    const last = parsed.rows.at(-1);
    assert.equal(last?.percentile, 1);
    assert.equal(last?.inverseTail, Number.POSITIVE_INFINITY);
    assert.equal(last?.totalCount, 100);
  });

  it('gives 5 rows per halving of the distance to 100%', () => {
    const percentiles = parseHgrm(text).rows.map((row) => row.percentile);
    assert.deepEqual(percentiles.slice(0, 8), [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.55, 0.6]);
  });

  it('writes an empty histogram as header and footer only', () => {
    const parsed = parseHgrm(formatHgrm(createLatencyHistogram()));
    assert.equal(parsed.rows.length, 0);
    assert.equal(parsed.totalCount, 0);
  });

  it('refuses text that is not .hgrm', () => {
    assert.throws(() => parseHgrm('hello\nworld\n'), /not an .hgrm/);
    assert.throws(() => parseHgrm('       Value     Percentile TotalCount 1/(1-Percentile)\n\nbanana 1 2\n'), /not an .hgrm line 3/);
  });
});
