/**
 * The node's latency histograms as people read them: one summary row per stage (and per
 * queue for enqueue→deliver), or one histogram's full percentile distribution. Shared by
 * `warrenctl latency` and the management API.
 */
import type { Broker } from '../front/broker.js';
import { mergeLatency, percentileDistribution, summarize, type LatencyStage } from '../metrics/latency.js';

export const latencyColumns = ['stage', 'queue', 'count', 'min_us', 'mean_us', 'p50_us', 'p90_us', 'p99_us', 'p999_us', 'max_us'];

export interface LatencyRow {
  stage: LatencyStage;
  queue: string;
  count: number;
  min_us: number;
  mean_us: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
  p999_us: number;
  max_us: number;
  /** The HdrHistogram percentile distribution (values in ms), when asked for. */
  distribution?: string;
}

const stageOrder: LatencyStage[] = ['publish_to_confirm', 'enqueue_to_deliver', 'ring_transit', 'fsync', 'replication_rtt'];

/** Summary rows, optionally only one queue's; with distributions, each row carries its percentile table. */
export async function latencyRows(b: Broker, opts: { queue?: string; distributions?: boolean } = {}): Promise<LatencyRow[]> {
  const merged = mergeLatency(await b.collectLatency());
  const rows: LatencyRow[] = [];
  for (const { stage, queue, histogram } of merged.values()) {
    if (opts.queue !== undefined && queue !== opts.queue) continue;
    const s = summarize(histogram);
    const row: LatencyRow = {
      stage,
      queue: queue ?? '',
      count: s.count,
      min_us: s.minUs,
      mean_us: s.meanUs,
      p50_us: s.p50Us,
      p90_us: s.p90Us,
      p99_us: s.p99Us,
      p999_us: s.p999Us,
      max_us: s.maxUs,
    };
    if (opts.distributions === true) row.distribution = percentileDistribution(histogram);
    rows.push(row);
  }
  rows.sort((x, y) => stageOrder.indexOf(x.stage) - stageOrder.indexOf(y.stage) || x.queue.localeCompare(y.queue));
  return rows;
}
