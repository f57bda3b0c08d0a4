/**
 * Latency histograms (HDR, microseconds) shared by the broker, warrenctl, the management
 * API and the bench: recording, shipping between threads (compressed base64), merging,
 * and the summaries and percentile distributions people read.
 */
import hdr from 'hdr-histogram-js';
import type { Histogram } from 'hdr-histogram-js';

/** One hour in µs: anything slower is clamped rather than dropped. */
export const latencyMaxUs = 3_600_000_000;
const significantDigits = 3;

/** The broker's measured stages (publish→confirm, enqueue→deliver per queue, ring transit, fsync, replication round trip). */
export type LatencyStage = 'publish_to_confirm' | 'enqueue_to_deliver' | 'ring_transit' | 'fsync' | 'replication_rtt';

export function newHistogram(): Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: latencyMaxUs, numberOfSignificantValueDigits: significantDigits });
}

export function recordUs(h: Histogram, us: number): void {
  h.recordValue(Math.min(latencyMaxUs, Math.max(1, Math.round(us))));
}

export function encodeHistogram(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

export function decodeHistogram(s: string): Histogram {
  return hdr.decodeFromCompressedBase64(s);
}

export interface LatencySummary {
  count: number;
  minUs: number;
  meanUs: number;
  p50Us: number;
  p75Us: number;
  p90Us: number;
  p95Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
}

export function summarize(h: Histogram): LatencySummary {
  const empty = h.totalCount === 0;
  const at = (p: number): number => (empty ? 0 : h.getValueAtPercentile(p));
  return {
    count: h.totalCount,
    minUs: empty ? 0 : h.minNonZeroValue,
    meanUs: empty ? 0 : Math.round(h.mean),
    p50Us: at(50),
    p75Us: at(75),
    p90Us: at(90),
    p95Us: at(95),
    p99Us: at(99),
    p999Us: at(99.9),
    maxUs: empty ? 0 : h.maxValue,
  };
}

/** HdrHistogram's percentile distribution text (the .hgrm format), values in milliseconds. */
export function percentileDistribution(h: Histogram): string {
  return h.outputPercentileDistribution(5, 1000);
}

/** A set of named histograms (stage, optionally per queue) that can be shipped as one JSON object. */
export class LatencyRecorder {
  private readonly histograms = new Map<string, Histogram>();

  get(stage: LatencyStage, queue?: string): Histogram {
    const key = queue === undefined ? stage : `${stage}\u0000${queue}`;
    let h = this.histograms.get(key);
    if (h === undefined) {
      h = newHistogram();
      this.histograms.set(key, h);
    }
    return h;
  }

  forget(stage: LatencyStage, queue: string): void {
    this.histograms.delete(`${stage}\u0000${queue}`);
  }

  /** [{stage, queue?, histogram (compressed base64)}] */
  export(): LatencyExport[] {
    return [...this.histograms].map(([key, h]) => {
      const [stage, queue] = key.split('\u0000') as [LatencyStage, string | undefined];
      return queue === undefined ? { stage, histogram: encodeHistogram(h) } : { stage, queue, histogram: encodeHistogram(h) };
    });
  }
}

export interface LatencyExport {
  stage: LatencyStage;
  queue?: string;
  histogram: string;
}

/** Merges exports (e.g. from every shard and the front) by stage and queue. */
export function mergeLatency(exports: LatencyExport[]): Map<string, { stage: LatencyStage; queue?: string; histogram: Histogram }> {
  const out = new Map<string, { stage: LatencyStage; queue?: string; histogram: Histogram }>();
  for (const e of exports) {
    const key = e.queue === undefined ? e.stage : `${e.stage}\u0000${e.queue}`;
    const h = decodeHistogram(e.histogram);
    const cur = out.get(key);
    if (cur === undefined) out.set(key, e.queue === undefined ? { stage: e.stage, histogram: h } : { stage: e.stage, queue: e.queue, histogram: h });
    else cur.histogram.add(h);
  }
  return out;
}
