// The --json document: everything the text report shows, in a form scripts (and
// scripts/bench-doc.ts, which writes docs/benchmarks.md) can read.
import { cpus, loadavg, release, totalmem, type as osType } from 'node:os';
import type { Comparison } from './compare.js';
import { summarize } from './latency-histogram.js';
import type { LatencySummary } from './latency-histogram.js';
import type { BenchOptions } from './options.js';
import type { RunResult } from './run-result.js';
import { redactUrl } from './run-result.js';

export const JSON_FORMAT_VERSION = 1;

export interface MachineDescription {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryBytes: number;
  readonly os: string;
  readonly node: string;
  /** 1-minute load average when the bench started and when it ended: how busy the machine was besides. */
  readonly loadAverageAtStart: number;
  readonly loadAverageAtEnd: number;
}

export function describeMachine(loadAverageAtStart: number): MachineDescription {
  const cpuList = cpus();
  return {
    cpuModel: cpuList[0]?.model.trim() ?? 'unknown',
    cores: cpuList.length,
    memoryBytes: totalmem(),
    os: `${osType()} ${release()}`,
    node: process.version,
    loadAverageAtStart,
    loadAverageAtEnd: loadavg()[0] ?? 0,
  };
}

export interface RunJson {
  readonly label: string;
  readonly url: string;
  readonly round: number;
  readonly broker: RunResult['broker'];
  readonly threads: number;
  readonly connections: number;
  readonly windowSeconds: number;
  readonly totalSeconds: number;
  readonly publishedPerSecond: number;
  readonly consumedPerSecond: number;
  readonly publishedInWindow: number;
  readonly consumedInWindow: number;
  readonly confirmed: number;
  readonly nacked: number;
  readonly unconfirmed: number;
  readonly accounting: Omit<RunResult['accounting'], 'inQueues'> & { readonly inQueues: number | null };
  readonly generatorCpu: RunResult['cpu'];
  readonly latencyMicros: { readonly deliver: LatencySummary; readonly confirm: LatencySummary };
  readonly errors: readonly string[];
}

export interface BenchJson {
  readonly format: 'warren-bench';
  readonly formatVersion: number;
  readonly startedAt: string;
  readonly command: string;
  readonly machine: MachineDescription;
  /** url and compareUrl are the redacted URL lists joined with ',' (one URL for a single node), as bench-doc reads them. */
  readonly workload: Omit<BenchOptions, 'urls' | 'compareUrls'> & {
    readonly url: string;
    readonly compareUrl: string | null;
    readonly urls: readonly string[];
    readonly compareUrls: readonly string[] | null;
  };
  readonly runs: readonly RunJson[];
  /** Why the rounds ended early (a run could not start), or null. */
  readonly error: string | null;
  readonly comparison: { readonly metrics: readonly { key: string; title: string; higherIsBetter: boolean }[]; readonly rows: Comparison['rows'] } | null;
}

export function runToJson(run: RunResult): RunJson {
  return {
    label: run.label,
    url: run.url,
    round: run.round,
    broker: run.broker,
    threads: run.threads,
    connections: run.connections,
    windowSeconds: run.windowSeconds,
    totalSeconds: run.totalSeconds,
    publishedPerSecond: run.publishedPerSecond,
    consumedPerSecond: run.consumedPerSecond,
    publishedInWindow: run.publishedInWindow,
    consumedInWindow: run.consumedInWindow,
    confirmed: run.confirmed,
    nacked: run.nacked,
    unconfirmed: run.unconfirmed,
    accounting: { ...run.accounting, inQueues: run.accounting.inQueues ?? null },
    generatorCpu: run.cpu,
    latencyMicros: { deliver: summarize(run.deliverLatency), confirm: summarize(run.confirmLatency) },
    errors: run.errors,
  };
}

export interface RunStart {
  readonly at: Date;
  readonly loadAverage: number;
}

export function buildJson(
  argv: readonly string[],
  start: RunStart,
  options: BenchOptions,
  runs: readonly RunResult[],
  comparison: Comparison | undefined,
  error: string | undefined,
): BenchJson {
  return {
    format: 'warren-bench',
    formatVersion: JSON_FORMAT_VERSION,
    startedAt: start.at.toISOString(),
    command: ['bench', ...argv.map(redactArg)].join(' '),
    machine: describeMachine(start.loadAverage),
    workload: workloadJson(options),
    runs: runs.map(runToJson),
    error: error ?? null,
    comparison:
      comparison === undefined
        ? null
        : { metrics: comparison.metrics.map(({ key, title, higherIsBetter }) => ({ key, title, higherIsBetter })), rows: comparison.rows },
  };
}

function workloadJson(options: BenchOptions): BenchJson['workload'] {
  const urls = options.urls.map(redactUrl);
  const compareUrls = options.compareUrls?.map(redactUrl) ?? null;
  // The CA file's text is public but long: the JSON says whether one was given.
  const tlsCa = options.tlsCa === undefined ? undefined : '(PEM given with --tls-ca)';
  return { ...options, tlsCa, url: urls.join(','), compareUrl: compareUrls === null ? null : compareUrls.join(','), urls, compareUrls };
}

function redactArg(arg: string): string {
  return arg.replace(/amqps?:\/\/\S+/g, (url) => redactUrl(url));
}
