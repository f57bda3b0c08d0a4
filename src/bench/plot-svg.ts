// Latency by percentile as an SVG, drawn the way HdrHistogram's plotter draws .hgrm files:
// x is log10(1/(1-percentile)), so 90%, 99%, 99.9% … sit one decade apart and the tail is visible.
import type { HgrmRow } from './hgrm.js';

export interface PlotSeries {
  readonly label: string;
  readonly rows: readonly HgrmRow[];
}

const WIDTH_PX = 900;
const HEIGHT_PX = 520;
const MARGIN_LEFT_PX = 80;
const MARGIN_RIGHT_PX = 30;
const MARGIN_TOP_PX = 50;
const MARGIN_BOTTOM_PX = 60;
/** Always show at least up to 99.9%, so short runs still get a readable axis. */
const MIN_DECADES = 3;
/** The legend sits inside the plot, top left, where latency-by-percentile curves are lowest. */
const LEGEND_ROW_PX = 20;
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

/** The x position of a percentile (0..1) in decades: 0.9 → 1, 0.99 → 2. */
export function percentileDecades(percentile: number): number {
  return Math.log10(1 / (1 - percentile));
}

export function plotLatencySvg(title: string, series: readonly PlotSeries[]): string {
  // The 100% row has no finite position; HdrHistogram's plotter leaves it out as well.
  const finite = series.map((entry) => ({ label: entry.label, rows: entry.rows.filter((row) => row.percentile < 1) }));
  const maxDecades = Math.max(MIN_DECADES, Math.ceil(Math.max(0, ...finite.flatMap((entry) => entry.rows.map((row) => percentileDecades(row.percentile))))));
  const maxValueMillis = niceCeiling(Math.max(0, ...finite.flatMap((entry) => entry.rows.map((row) => row.valueMillis))));
  const plotWidthPx = WIDTH_PX - MARGIN_LEFT_PX - MARGIN_RIGHT_PX;
  const plotHeightPx = HEIGHT_PX - MARGIN_TOP_PX - MARGIN_BOTTOM_PX;
  const xOf = (percentile: number): number => MARGIN_LEFT_PX + (percentileDecades(percentile) / maxDecades) * plotWidthPx;
  const yOf = (valueMillis: number): number => MARGIN_TOP_PX + plotHeightPx - (valueMillis / maxValueMillis) * plotHeightPx;

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH_PX}" height="${HEIGHT_PX}" viewBox="0 0 ${WIDTH_PX} ${HEIGHT_PX}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH_PX}" height="${HEIGHT_PX}" fill="white"/>`,
    `<text x="${WIDTH_PX / 2}" y="24" text-anchor="middle" font-size="16">${escapeXml(title)}</text>`,
  ];
  for (let decade = 0; decade <= maxDecades; decade++) {
    const x = fixed(MARGIN_LEFT_PX + (decade / maxDecades) * plotWidthPx);
    parts.push(`<line x1="${x}" y1="${MARGIN_TOP_PX}" x2="${x}" y2="${MARGIN_TOP_PX + plotHeightPx}" stroke="#ddd"/>`);
    parts.push(`<text x="${x}" y="${MARGIN_TOP_PX + plotHeightPx + 18}" text-anchor="middle">${decadeLabel(decade)}</text>`);
  }
  const yTicks = 5;
  for (let tick = 0; tick <= yTicks; tick++) {
    const valueMillis = (maxValueMillis * tick) / yTicks;
    const y = fixed(yOf(valueMillis));
    parts.push(`<line x1="${MARGIN_LEFT_PX}" y1="${y}" x2="${MARGIN_LEFT_PX + plotWidthPx}" y2="${y}" stroke="#ddd"/>`);
    parts.push(`<text x="${MARGIN_LEFT_PX - 8}" y="${y}" text-anchor="end" dominant-baseline="middle">${formatAxisMillis(valueMillis)}</text>`);
  }
  parts.push(`<rect x="${MARGIN_LEFT_PX}" y="${MARGIN_TOP_PX}" width="${plotWidthPx}" height="${plotHeightPx}" fill="none" stroke="#444"/>`);
  parts.push(`<text x="${MARGIN_LEFT_PX + plotWidthPx / 2}" y="${HEIGHT_PX - 16}" text-anchor="middle">Percentile</text>`);
  parts.push(`<text transform="translate(20 ${MARGIN_TOP_PX + plotHeightPx / 2}) rotate(-90)" text-anchor="middle">Latency (milliseconds)</text>`);
  finite.forEach((entry, index) => {
    const points = entry.rows.map((row) => `${fixed(xOf(row.percentile))},${fixed(yOf(row.valueMillis))}`).join(' ');
    if (points !== '') parts.push(`<polyline fill="none" stroke="${colorOf(index)}" stroke-width="2" points="${points}"><title>${escapeXml(entry.label)}</title></polyline>`);
  });
  const legendWidthPx = Math.min(plotWidthPx - 20, 40 + 7 * Math.max(0, ...finite.map((entry) => entry.label.length)));
  parts.push(`<rect x="${MARGIN_LEFT_PX + 10}" y="${MARGIN_TOP_PX + 10}" width="${legendWidthPx}" height="${finite.length * LEGEND_ROW_PX + 10}" fill="white" fill-opacity="0.9" stroke="#ccc"/>`);
  finite.forEach((entry, index) => {
    const legendY = MARGIN_TOP_PX + 25 + index * LEGEND_ROW_PX;
    const legendX = MARGIN_LEFT_PX + 20;
    parts.push(`<line x1="${legendX}" y1="${legendY}" x2="${legendX + 24}" y2="${legendY}" stroke="${colorOf(index)}" stroke-width="3"/>`);
    parts.push(`<text x="${legendX + 30}" y="${legendY}" dominant-baseline="middle">${escapeXml(entry.label)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

function colorOf(index: number): string {
  return COLORS[index % COLORS.length] ?? '#000';
}

/** 0 → "0%", 1 → "90%", 2 → "99%", 3 → "99.9%" … */
export function decadeLabel(decade: number): string {
  if (decade === 0) return '0%';
  return `${(100 - 100 / 10 ** decade).toFixed(Math.max(0, decade - 2))}%`;
}

/** Axis tops, × 10^k: fine enough that the curves fill most of the height, round enough for five ticks. */
const NICE_STEPS = [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10];

/** The next nice number at or above the value, so axis ticks land on round numbers. */
export function niceCeiling(value: number): number {
  if (!(value > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of NICE_STEPS) if (step * magnitude >= value) return step * magnitude;
  return 10 * magnitude;
}

function formatAxisMillis(valueMillis: number): string {
  return Number(valueMillis.toPrecision(3)).toString();
}

function fixed(pixels: number): string {
  return pixels.toFixed(1);
}

export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (char) => `&#${char.charCodeAt(0)};`);
}
