import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compareRuns } from '../../src/bench/compare.js';
import { formatComparison } from '../../src/bench/report-text.js';
import { formatTable, median } from '../../src/bench/format.js';
import { createLatencyHistogram, recordMicros } from '../../src/bench/latency-histogram.js';
import type { RunResult } from '../../src/bench/run-result.js';
import { redactUrl } from '../../src/bench/run-result.js';

/** Latencies below 2048 µs are stored exactly, so the ratios below are exact. */
function run(label: string, round: number, publishedPerSecond: number, deliverMicros: number): RunResult {
  const deliverLatency = createLatencyHistogram();
  recordMicros(deliverLatency, deliverMicros);
  return {
    label,
    url: `amqp://${label}`,
    round,
    broker: { product: label, version: '1' },
    threads: 2,
    connections: 3,
    windowSeconds: 1,
    totalSeconds: 1,
    publishedInWindow: publishedPerSecond,
    consumedInWindow: publishedPerSecond,
    publishedPerSecond,
    consumedPerSecond: publishedPerSecond / 2,
    confirmed: 0,
    nacked: 0,
    unconfirmed: 0,
    accounting: { published: 1, routed: 1, consumed: 1, inQueues: 0, inQueuesBefore: 0, balanced: true },
    cpu: { userMicros: 0, systemMicros: 0, percentOfOneCore: 50, percentOfMachine: 25, cores: 2, threadBusy: [0.5, 0.5] },
    deliverLatency,
    confirmLatency: createLatencyHistogram(),
    errors: [],
  };
}

describe('comparison of two brokers', () => {
  const comparison = compareRuns(
    [run('A', 1, 3000, 250), run('A', 2, 1000, 500), run('A', 3, 2000, 1000)],
    [run('B', 1, 1000, 250), run('B', 2, 1000, 250), run('B', 3, 4000, 250)],
  );

  it('gives A/B per round and the median of each column', () => {
    const sent = comparison.rows.map((row) => row.values.publishedPerSecond);
    assert.deepEqual(sent.map((value) => value?.ratio), [3, 1, 0.5, 1]);
    assert.deepEqual(comparison.rows.at(-1)?.round, 'median');
    assert.equal(sent.at(-1)?.a, 2000);
    assert.equal(sent.at(-1)?.b, 1000);
    const p50 = comparison.rows.map((row) => row.values.deliverP50Millis?.ratio);
    assert.deepEqual(p50, [1, 2, 4, 2]);
  });

  it('leaves out metrics neither side measured (no confirms here)', () => {
    const keys = comparison.metrics.map((metric) => metric.key);
    assert.ok(keys.includes('publishedPerSecond'));
    assert.ok(!keys.includes('confirmP50Millis'));
  });

  it('prints A, B and A/B rows per round and for the medians', () => {
    const lines = formatComparison(comparison).split('\n');
    assert.match(lines[1] ?? '', /^round\s+sent msg\/s\s+received msg\/s\s+deliver p50 ms/);
    assert.match(lines[2] ?? '', /^1       A    \s+3,000\s+1,500\s+0\.250/);
    assert.match(lines[3] ?? '', /^1\s+B\s+1,000\s+500\s+0\.250/);
    assert.match(lines[4] ?? '', /^1\s+A\/B\s+3\.00\s+3\.00\s+1\.00/);
    assert.equal(lines.length, 2 + 4 * 3);
    assert.match(lines.at(-3) ?? '', /^median\s+A\s+2,000/);
    assert.match(lines.at(-1) ?? '', /^median\s+A\/B\s+1\.00\s+1\.00\s+2\.00/);
  });
});

describe('formatting helpers', () => {
  it('takes medians of odd and even counts', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.ok(Number.isNaN(median([])));
  });

  it('aligns tables: first column left, the rest right', () => {
    assert.equal(formatTable([['a', 'bb'], ['ccc', 'd']]), 'a    bb\nccc   d');
  });

  it('hides passwords in URLs', () => {
    assert.equal(redactUrl('amqp://guest:secret@host:5672/vh'), 'amqp://guest:***@host:5672/vh');
    assert.equal(redactUrl('amqp://host'), 'amqp://host');
  });
});
