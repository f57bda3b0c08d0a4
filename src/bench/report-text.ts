// The human-readable report: the workload, each run's summary, the comparison and the
// full percentile distributions.
import type { ComparedMetric, Comparison } from './compare.js';
import { formatCount, formatMillis, formatTable } from './format.js';
import { formatHgrm } from './hgrm.js';
import type { LatencyHistogram } from './latency-histogram.js';
import { SUMMARY_PERCENTILES } from './latency-histogram.js';
import type { BenchOptions } from './options.js';
import type { RunResult } from './run-result.js';
import { redactUrl } from './run-result.js';

export function describeWorkload(options: BenchOptions): string {
  const { minBytes, maxBytes } = options.size;
  const size = minBytes === maxBytes ? `${minBytes} B` : `${minBytes}-${maxBytes} B`;
  const rate = options.ratePerProducer === undefined ? 'unlimited rate' : `${options.ratePerProducer} msg/s per producer`;
  const confirms = options.confirmWindow === undefined ? 'no confirms' : `confirms (window ${options.confirmWindow})`;
  const acking = options.autoAck ? 'autoack' : `prefetch ${options.prefetchCount === 0 ? 'unlimited' : options.prefetchCount}, ack ${options.multiAckEvery === 1 ? 'each' : `every ${options.multiAckEvery} (multiple)`}`;
  const exchange = options.exchange === '' ? 'default exchange' : `${options.exchangeType} exchange '${options.exchange}'`;
  const queueArgs = Object.entries(options.queueArgs).map(([key, value]) => `${key}=${String(value)}`).join(',');
  const length = options.durationSeconds !== undefined ? `${options.durationSeconds} s` : `${options.messagesPerProducer ?? 0} msgs per producer`;
  const warmup = options.warmupSeconds > 0 ? `, after a ${options.warmupSeconds} s warm-up per broker (not counted)` : '';
  return [
    `workload: ${options.producers} producer(s) → ${options.consumers} consumer(s) over ${options.queueCount} queue(s), ${exchange}, ${size}, ${rate}, ${confirms}, ${options.persistent ? 'persistent' : 'transient'}, ${acking}, ${length}${warmup}${options.nagle ? ', Nagle on' : ''}${queueArgs === '' ? '' : `, queue args ${queueArgs}`}`,
    `clients: ${options.threads} worker thread(s), ${options.producers + options.consumers + 1} connections per run (one per client + 1 control)`,
  ].join('\n');
}

export function brokerLines(options: BenchOptions): string {
  const lines = [`A = ${options.urls.map(redactUrl).join(', ')}`];
  if (options.compareUrls !== undefined) lines.push(`B = ${options.compareUrls.map(redactUrl).join(', ')}`);
  if (options.urls.length > 1 || (options.compareUrls?.length ?? 0) > 1) {
    lines.push('clients go round-robin over each broker\'s URLs (producers first, then consumers); queues are declared on the first');
  }
  return lines.join('\n');
}

export function formatRunSummary(run: RunResult): string {
  const { accounting } = run;
  const copies = accounting.routed === accounting.published ? '' : ` (routed to ${formatCount(accounting.routed)} queue copies)`;
  const lines = [
    `${run.label} round ${run.round}: ${run.broker.product} ${run.broker.version} at ${run.url}`,
    `  ${run.threads} thread(s), ${run.connections} connections, publishing window ${run.windowSeconds.toFixed(2)} s`,
    `  published  ${formatCount(accounting.published)}${copies}, ${formatCount(run.publishedPerSecond)} msg/s in the window`,
    `  consumed   ${formatCount(accounting.consumed)}, ${formatCount(run.consumedPerSecond)} msg/s in the window`,
  ];
  if (run.confirmed + run.nacked + run.unconfirmed > 0) {
    lines.push(`  confirmed  ${formatCount(run.confirmed)}, nacked ${formatCount(run.nacked)}, never confirmed ${formatCount(run.unconfirmed)}`);
  }
  const before = accounting.inQueuesBefore === 0 ? '' : ` (after ${formatCount(accounting.inQueuesBefore)} already there)`;
  lines.push(
    `  accounting ${accounting.routed === accounting.published ? 'published' : 'routed'} ${formatCount(accounting.routed)} ${accounting.balanced ? '=' : '≠'} consumed ${formatCount(accounting.consumed)} + left in queues ${accounting.inQueues === undefined ? 'unknown' : formatCount(accounting.inQueues)}${before}  ${accounting.balanced ? 'ok' : accounting.inQueues === undefined ? 'UNCHECKED' : 'MISMATCH'}`,
    `  bench CPU  ${run.cpu.percentOfOneCore.toFixed(0)}% of one core = ${run.cpu.percentOfMachine.toFixed(0)}% of the ${run.cpu.cores}-core machine (user ${(run.cpu.userMicros / 1e6).toFixed(2)} s, system ${(run.cpu.systemMicros / 1e6).toFixed(2)} s in the ${run.windowSeconds.toFixed(2)} s window)`,
    `  client threads busy ${run.cpu.threadBusy.map((busy) => `${(busy * 100).toFixed(0)}%`).join(', ')} (event-loop utilization)${saturated(run) ? ' — a client thread was saturated: the generator may have set the pace' : ''}`,
  );
  lines.push(indent(latencyTable([
    ['publish→deliver', run.deliverLatency],
    ['publish→confirm', run.confirmLatency],
  ])));
  for (const error of run.errors) lines.push(`  error: ${error}`);
  return lines.join('\n');
}

/** One line for a warm-up run: enough to see the broker took the load, not a result. */
export function formatWarmup(run: RunResult): string {
  const { accounting } = run;
  const verdict = accounting.balanced ? 'accounting ok' : `accounting ${accounting.inQueues === undefined ? 'UNCHECKED' : 'MISMATCH'}`;
  const errors = run.errors.map((error) => `\n  error: ${error}`).join('');
  return `${run.label} warm-up: ${run.broker.product} ${run.broker.version}, ${run.windowSeconds.toFixed(1)} s, ${formatCount(run.consumedPerSecond)} msg/s consumed, ${verdict} (not counted)${errors}`;
}

/** Above this event-loop utilization a client thread had no slack left. */
const THREAD_SATURATED_FRACTION = 0.9;

function saturated(run: RunResult): boolean {
  return run.cpu.threadBusy.some((busy) => busy > THREAD_SATURATED_FRACTION);
}

export function latencyTable(rows: readonly (readonly [string, LatencyHistogram])[]): string {
  const header = ['latency ms', ...SUMMARY_PERCENTILES.map(([name]) => name), 'max', 'count'];
  const body = rows
    .filter(([, histogram]) => histogram.totalCount > 0)
    .map(([name, histogram]) => [
      name,
      ...SUMMARY_PERCENTILES.map(([, percentile]) => formatMillis(histogram.getValueAtPercentile(percentile))),
      formatMillis(histogram.maxValue),
      formatCount(histogram.totalCount),
    ]);
  if (body.length === 0) return 'latency: nothing recorded';
  return formatTable([header, ...body]);
}

export function formatComparison(comparison: Comparison): string {
  return `comparison (A/B > 1 means A is higher: better for msg/s, worse for latency and CPU)\n${formatTable(comparisonTableRows(comparison, 'A', 'B'), 2)}`;
}

/** Header, then three rows a round (A, B, A/B) and three for the medians; shared with docs/benchmarks.md. */
export function comparisonTableRows(
  comparison: { readonly metrics: readonly Pick<ComparedMetric, 'key' | 'title'>[]; readonly rows: Comparison['rows'] },
  nameA: string,
  nameB: string,
): string[][] {
  const header = ['round', '', ...comparison.metrics.map((metric) => metric.title)];
  const rows: string[][] = [header];
  for (const row of comparison.rows) {
    const round = String(row.round);
    const value = (key: string) => row.values[key];
    rows.push([round, nameA, ...comparison.metrics.map((metric) => formatMetric(metric.key, value(metric.key)?.a))]);
    rows.push([round, nameB, ...comparison.metrics.map((metric) => formatMetric(metric.key, value(metric.key)?.b))]);
    rows.push([round, 'A/B', ...comparison.metrics.map((metric) => formatRatioCell(value(metric.key)?.ratio))]);
  }
  return rows;
}

function formatRatioCell(ratio: number | undefined): string {
  return ratio === undefined ? '-' : ratio.toFixed(2);
}

export function formatMetric(key: string, value: number | undefined): string {
  if (value === undefined) return '-';
  if (key.endsWith('Millis')) return formatMillis(value * 1000);
  return formatCount(value);
}

export function formatDistribution(title: string, histogram: LatencyHistogram): string {
  return `percentile distribution, ${title} (milliseconds, HdrHistogram format)\n${formatHgrm(histogram)}`;
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
}
