// Number formatting shared by the progress line and the reports.

export function formatCount(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

/** Microseconds as milliseconds with three significant digits at least to 0.001 ms. */
export function formatMillis(micros: number): string {
  const millis = micros / 1000;
  if (millis >= 100) return millis.toFixed(0);
  if (millis >= 10) return millis.toFixed(1);
  if (millis >= 1) return millis.toFixed(2);
  return millis.toFixed(3);
}

export function formatRatio(numerator: number, denominator: number): string {
  if (!(denominator > 0)) return '-';
  return (numerator / denominator).toFixed(2);
}

export function padLeft(text: string, width: number): string {
  return text.length >= width ? text : ' '.repeat(width - text.length) + text;
}

export function padRight(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}

/** Rows of cells → aligned text; the first `leftColumns` columns left-aligned, the rest right-aligned. */
export function formatTable(rows: readonly (readonly string[])[], leftColumns = 1): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, index) => (widths[index] = Math.max(widths[index] ?? 0, cell.length)));
  return rows
    .map((row) => row.map((cell, index) => (index < leftColumns ? padRight(cell, widths[index] ?? 0) : padLeft(cell, widths[index] ?? 0))).join('  ').trimEnd())
    .join('\n');
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] ?? Number.NaN) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}
