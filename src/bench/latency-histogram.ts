// HDR histograms of latency in microseconds: recorded in the client threads, shipped to the
// main thread encoded, merged there.
import { build, decodeFromCompressedBase64, encodeIntoCompressedBase64 } from 'hdr-histogram-js';
import type { Histogram } from 'hdr-histogram-js';

/** 1 µs resolution at 3 significant digits; a minute covers any stall a run should survive, and autoResize the rest. */
const LOWEST_DISCERNIBLE_MICROS = 1;
const HIGHEST_TRACKABLE_MICROS = 60_000_000;
const SIGNIFICANT_DIGITS = 3;

export type LatencyHistogram = Histogram;

export function createLatencyHistogram(): LatencyHistogram {
  return build({
    lowestDiscernibleValue: LOWEST_DISCERNIBLE_MICROS,
    highestTrackableValue: HIGHEST_TRACKABLE_MICROS,
    numberOfSignificantValueDigits: SIGNIFICANT_DIGITS,
    autoResize: true,
  });
}

/** Records a latency; a negative one (impossible on a monotonic clock) counts as 0 rather than throwing. */
export function recordMicros(histogram: LatencyHistogram, latencyMicros: number): void {
  histogram.recordValue(latencyMicros > 0 ? Math.round(latencyMicros) : 0);
}

export function encodeHistogram(histogram: LatencyHistogram): string {
  return encodeIntoCompressedBase64(histogram);
}

export function decodeHistogram(encoded: string): LatencyHistogram {
  return decodeFromCompressedBase64(encoded);
}

/** A fresh histogram holding the sum of the given ones. */
export function mergeHistograms(parts: Iterable<LatencyHistogram>): LatencyHistogram {
  const merged = createLatencyHistogram();
  for (const part of parts) merged.add(part);
  return merged;
}

export interface LatencySummary {
  readonly count: number;
  readonly minMicros: number;
  readonly meanMicros: number;
  readonly p50Micros: number;
  readonly p75Micros: number;
  readonly p90Micros: number;
  readonly p95Micros: number;
  readonly p99Micros: number;
  readonly p999Micros: number;
  readonly p9999Micros: number;
  readonly maxMicros: number;
}

export const SUMMARY_PERCENTILES = [
  ['p50', 50],
  ['p75', 75],
  ['p90', 90],
  ['p95', 95],
  ['p99', 99],
  ['p99.9', 99.9],
  ['p99.99', 99.99],
] as const;

export function summarize(histogram: LatencyHistogram): LatencySummary {
  const count = histogram.totalCount;
  const at = (percentile: number): number => (count === 0 ? 0 : histogram.getValueAtPercentile(percentile));
  return {
    count,
    minMicros: count === 0 ? 0 : histogram.minNonZeroValue,
    meanMicros: count === 0 ? 0 : histogram.mean,
    p50Micros: at(50),
    p75Micros: at(75),
    p90Micros: at(90),
    p95Micros: at(95),
    p99Micros: at(99),
    p999Micros: at(99.9),
    p9999Micros: at(99.99),
    maxMicros: count === 0 ? 0 : histogram.maxValue,
  };
}
