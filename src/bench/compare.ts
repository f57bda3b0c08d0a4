// Side-by-side figures of the same workload on two brokers: per round, A/B ratios, medians.
import type { RunResult } from './run-result.js';
import { median } from './format.js';

export interface ComparedMetric {
  readonly key: string;
  readonly title: string;
  readonly higherIsBetter: boolean;
  readonly of: (run: RunResult) => number | undefined;
}

function percentileMillis(run: RunResult, which: 'deliverLatency' | 'confirmLatency', percentile: number): number | undefined {
  const histogram = run[which];
  return histogram.totalCount === 0 ? undefined : histogram.getValueAtPercentile(percentile) / 1000;
}

export const COMPARED_METRICS: readonly ComparedMetric[] = [
  { key: 'publishedPerSecond', title: 'sent msg/s', higherIsBetter: true, of: (run) => run.publishedPerSecond },
  { key: 'consumedPerSecond', title: 'received msg/s', higherIsBetter: true, of: (run) => run.consumedPerSecond },
  { key: 'deliverP50Millis', title: 'deliver p50 ms', higherIsBetter: false, of: (run) => percentileMillis(run, 'deliverLatency', 50) },
  { key: 'deliverP99Millis', title: 'deliver p99 ms', higherIsBetter: false, of: (run) => percentileMillis(run, 'deliverLatency', 99) },
  { key: 'confirmP50Millis', title: 'confirm p50 ms', higherIsBetter: false, of: (run) => percentileMillis(run, 'confirmLatency', 50) },
  { key: 'confirmP99Millis', title: 'confirm p99 ms', higherIsBetter: false, of: (run) => percentileMillis(run, 'confirmLatency', 99) },
  { key: 'generatorCpuPercent', title: 'bench CPU % of a core', higherIsBetter: false, of: (run) => run.cpu.percentOfOneCore },
  // Near 100 the generator, not the broker, set the pace of that run.
  { key: 'busiestThreadPercent', title: 'busiest client thread %', higherIsBetter: false, of: (run) => Math.max(0, ...run.cpu.threadBusy) * 100 },
];

export interface ComparedValue {
  readonly a: number | undefined;
  readonly b: number | undefined;
  /** a / b; undefined when either side has no figure. */
  readonly ratio: number | undefined;
}

export interface ComparisonRow {
  /** 1-based round, or 'median' for the summary row. */
  readonly round: number | 'median';
  readonly values: Readonly<Record<string, ComparedValue>>;
}

export interface Comparison {
  readonly metrics: readonly ComparedMetric[];
  readonly rows: readonly ComparisonRow[];
}

/** Pairs A's and B's runs round by round; the median row takes the median of each column, ratios included. */
export function compareRuns(runsA: readonly RunResult[], runsB: readonly RunResult[]): Comparison {
  const metrics = COMPARED_METRICS.filter((metric) => [...runsA, ...runsB].some((run) => metric.of(run) !== undefined));
  const rows: ComparisonRow[] = [];
  const rounds = Math.min(runsA.length, runsB.length);
  for (let index = 0; index < rounds; index++) {
    const a = runsA[index];
    const b = runsB[index];
    if (a === undefined || b === undefined) continue;
    const values: Record<string, ComparedValue> = {};
    for (const metric of metrics) values[metric.key] = pair(metric.of(a), metric.of(b));
    rows.push({ round: a.round, values });
  }
  const medians: Record<string, ComparedValue> = {};
  for (const metric of metrics) {
    const column = rows.map((row) => row.values[metric.key]);
    medians[metric.key] = {
      a: medianOf(column.map((value) => value?.a)),
      b: medianOf(column.map((value) => value?.b)),
      ratio: medianOf(column.map((value) => value?.ratio)),
    };
  }
  if (rows.length > 0) rows.push({ round: 'median', values: medians });
  return { metrics, rows };
}

function pair(a: number | undefined, b: number | undefined): ComparedValue {
  return { a, b, ratio: a !== undefined && b !== undefined && b > 0 ? a / b : undefined };
}

function medianOf(values: readonly (number | undefined)[]): number | undefined {
  const present = values.filter((value): value is number => value !== undefined);
  return present.length === 0 ? undefined : median(present);
}
