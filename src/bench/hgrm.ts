// HdrHistogram's percentile distribution text (.hgrm), as its Java outputPercentileDistribution
// writes it and its plotter (plotFiles.html) reads it. Values are written in milliseconds.
import type { LatencyHistogram } from './latency-histogram.js';

/** Rows per halving of the remaining distance to 100%: HdrHistogram's customary 5. */
export const TICKS_PER_HALF_DISTANCE = 5;
const MICROS_PER_MILLI = 1000;

export function formatHgrm(histogram: LatencyHistogram): string {
  return histogram.outputPercentileDistribution(TICKS_PER_HALF_DISTANCE, MICROS_PER_MILLI);
}

export interface HgrmRow {
  readonly valueMillis: number;
  readonly percentile: number;
  readonly totalCount: number;
  /** 1/(1-percentile); Infinity on the 100% row, which .hgrm leaves blank. */
  readonly inverseTail: number;
}

export interface HgrmFile {
  readonly rows: readonly HgrmRow[];
  readonly meanMillis: number;
  readonly maxMillis: number;
  readonly totalCount: number;
}

const ROW_PATTERN = /^\s*(\d+(?:\.\d+)?)\s+(\d+(?:\.\d+)?)\s+(\d+)(?:\s+(\d+(?:\.\d+)?))?\s*$/;
const HEADER_PATTERN = /^\s*Value\s+Percentile\s+TotalCount\s+1\/\(1-Percentile\)\s*$/;

/** Reads .hgrm text back; throws on a line that is neither header, row, footer nor blank. */
export function parseHgrm(text: string): HgrmFile {
  const rows: HgrmRow[] = [];
  let meanMillis = Number.NaN;
  let maxMillis = Number.NaN;
  let totalCount = Number.NaN;
  let sawHeader = false;
  for (const [lineIndex, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    if (HEADER_PATTERN.test(line)) {
      sawHeader = true;
      continue;
    }
    if (line.startsWith('#[')) {
      meanMillis = footerNumber(line, 'Mean') ?? meanMillis;
      maxMillis = footerNumber(line, 'Max') ?? maxMillis;
      totalCount = footerNumber(line, 'Total count') ?? totalCount;
      continue;
    }
    const match = ROW_PATTERN.exec(line);
    if (match === null || !sawHeader) throw new Error(`not an .hgrm line ${lineIndex + 1}: '${line}'`);
    rows.push({
      valueMillis: Number(match[1]),
      percentile: Number(match[2]),
      totalCount: Number(match[3]),
      inverseTail: match[4] === undefined ? Number.POSITIVE_INFINITY : Number(match[4]),
    });
  }
  if (!sawHeader) throw new Error('not an .hgrm file: no "Value Percentile TotalCount 1/(1-Percentile)" header');
  return { rows, meanMillis, maxMillis, totalCount };
}

function footerNumber(line: string, label: string): number | undefined {
  const match = new RegExp(`${label}\\s*=\\s*(-?\\d+(?:\\.\\d+)?)`).exec(line);
  return match === null ? undefined : Number(match[1]);
}
