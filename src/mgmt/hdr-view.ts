/**
 * Reading HDR histograms (src/metrics/latency.ts) for the management face: the percentile
 * curve the dashboard draws, and the cumulative bucket counts Prometheus wants.
 */
import type { Histogram } from 'hdr-histogram-js';
import { mergeLatency, summarize, type LatencyExport, type LatencyStage } from '../metrics/latency.js';

/** Percentile ticks per halving of the remaining tail: 0, 50, 75, 87.5, ... as HdrHistogram's tables. */
const ticksPerHalf = 4;
/** The deepest percentile drawn (99.9999): beyond it a curve says nothing a max does not. */
const deepestHalvings = 20;

/** [percentile, value in µs] pairs along HdrHistogram's tail-stretching scale, ending at the max. */
export function percentileCurve(h: Histogram): { percentile: number; value_us: number }[] {
  if (h.totalCount === 0) return [];
  const out: { percentile: number; value_us: number }[] = [];
  for (let k = 0; k <= deepestHalvings * ticksPerHalf; k++) {
    const p = 100 * (1 - 2 ** (-k / ticksPerHalf));
    out.push({ percentile: Math.round(p * 1e6) / 1e6, value_us: h.getValueAtPercentile(p) });
    // Past the last recorded value every further point is the max.
    if ((1 - p / 100) * h.totalCount < 1) break;
  }
  // The histogram's own reading at 100 (its max's bucket top), so the curve never steps down.
  out.push({ percentile: 100, value_us: h.getValueAtPercentile(100) });
  return out;
}

/**
 * How many recorded values are ≤ boundUs: the largest rank k whose value (as the histogram
 * reports it, at its 3-digit precision) is ≤ boundUs, found by bisection on the rank.
 */
export function countAtOrBelow(h: Histogram, boundUs: number): number {
  const total = h.totalCount;
  if (total === 0) return 0;
  if (h.maxValue <= boundUs) return total;
  let lo = 0;
  let hi = total; // invariant: rank lo fits (0 always does), rank hi does not
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (h.getValueAtPercentile((100 * mid) / total) <= boundUs) lo = mid;
    else hi = mid;
  }
  return lo;
}

export interface LatencyView {
  stage: LatencyStage;
  queue?: string;
  count: number;
  min_us: number;
  mean_us: number;
  p50_us: number;
  p75_us: number;
  p90_us: number;
  p95_us: number;
  p99_us: number;
  p999_us: number;
  max_us: number;
  percentiles: { percentile: number; value_us: number }[];
}

function view(stage: LatencyStage, queue: string | undefined, h: Histogram): LatencyView {
  const s = summarize(h);
  const v: LatencyView = {
    stage,
    count: s.count,
    min_us: s.minUs,
    mean_us: s.meanUs,
    p50_us: s.p50Us,
    p75_us: s.p75Us,
    p90_us: s.p90Us,
    p95_us: s.p95Us,
    p99_us: s.p99Us,
    p999_us: s.p999Us,
    max_us: s.maxUs,
    percentiles: percentileCurve(h),
  };
  if (queue !== undefined) v.queue = queue;
  return v;
}

/** Per stage (every shard and queue merged) and per queue. */
export function latencyViews(exports: LatencyExport[]): { stages: LatencyView[]; queues: LatencyView[] } {
  const byStage = mergeLatency(exports.map((e) => ({ stage: e.stage, histogram: e.histogram })));
  const byQueue = mergeLatency(exports.filter((e) => e.queue !== undefined));
  return {
    stages: [...byStage.values()].map((e) => view(e.stage, undefined, e.histogram)),
    queues: [...byQueue.values()].map((e) => view(e.stage, e.queue, e.histogram)),
  };
}

/** Each stage's merged histogram (for Prometheus). */
export function stageHistograms(exports: LatencyExport[]): Map<LatencyStage, Histogram> {
  const out = new Map<LatencyStage, Histogram>();
  for (const e of mergeLatency(exports.map((x) => ({ stage: x.stage, histogram: x.histogram }))).values()) out.set(e.stage, e.histogram);
  return out;
}
