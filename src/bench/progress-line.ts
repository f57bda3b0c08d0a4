// The line printed once a second while a run goes.
import { formatCount, formatMillis, padLeft } from './format.js';
import type { LatencyHistogram } from './latency-histogram.js';

export interface ProgressSample {
  readonly prefix: string;
  readonly elapsedSeconds: number;
  readonly sentPerSecond: number;
  readonly receivedPerSecond: number;
  /** undefined without confirms. */
  readonly unconfirmed: number | undefined;
  readonly deliver: LatencyHistogram;
  readonly confirm: LatencyHistogram | undefined;
}

export function formatProgressLine(sample: ProgressSample): string {
  const parts = [
    `${sample.prefix}${padLeft(sample.elapsedSeconds.toFixed(0), 3)} s`,
    `sent ${padLeft(formatCount(sample.sentPerSecond), 9)} msg/s`,
    `received ${padLeft(formatCount(sample.receivedPerSecond), 9)} msg/s`,
  ];
  if (sample.unconfirmed !== undefined) parts.push(`unconfirmed ${padLeft(formatCount(sample.unconfirmed), 7)}`);
  parts.push(`deliver ${percentilePair(sample.deliver)}`);
  if (sample.confirm !== undefined) parts.push(`confirm ${percentilePair(sample.confirm)}`);
  return parts.join('  ');
}

function percentilePair(histogram: LatencyHistogram): string {
  if (histogram.totalCount === 0) return 'p50 -  p99 -';
  return `p50 ${formatMillis(histogram.getValueAtPercentile(50))}  p99 ${formatMillis(histogram.getValueAtPercentile(99))} ms`;
}
