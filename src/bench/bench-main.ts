// `npm run bench` as a function: parse, run every round against every broker, report.
// Returns the exit code so tests can run it in-process.
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { Piscina } from 'piscina';
import { compareRuns } from './compare.js';
import type { Comparison } from './compare.js';
import type { GroupResult, GroupTask } from './group-task.js';
import { formatHgrm, parseHgrm } from './hgrm.js';
import { HELP_TEXT } from './help-text.js';
import { mergeHistograms } from './latency-histogram.js';
import type { LatencyHistogram } from './latency-histogram.js';
import type { BenchOptions } from './options.js';
import { BenchUsageError, parseBenchArgs } from './parse-args.js';
import { plotLatencySvg } from './plot-svg.js';
import { buildJson } from './report-json.js';
import { brokerLines, describeWorkload, formatComparison, formatDistribution, formatRunSummary, formatWarmup, latencyTable } from './report-text.js';
import type { RunResult } from './run-result.js';
import { BenchRunError, runWorkload } from './run-workload.js';

export const ExitCode = { ok: 0, failed: 1, usage: 2, unaccounted: 3 } as const;

export interface BenchIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Set by the CLI's SIGINT handler: finish the current run, skip the rest. */
  readonly stopRequested?: () => boolean;
}

/** Worker threads idle between rounds are kept; a run starts every few seconds at most. */
const POOL_IDLE_TIMEOUT_MS = 60_000;

export async function runBench(argv: readonly string[], io: BenchIo): Promise<number> {
  let options: BenchOptions;
  try {
    const command = parseBenchArgs(argv);
    if (command.kind === 'help') {
      io.stdout(HELP_TEXT);
      return ExitCode.ok;
    }
    options = command.options;
  } catch (error: unknown) {
    if (!(error instanceof BenchUsageError)) throw error;
    io.stderr(`bench: ${error.message}\nRun with --help to see the flags.\n`);
    return ExitCode.usage;
  }
  const start = { at: new Date(), loadAverage: loadavg()[0] ?? 0 };
  const say = (text: string): void => (options.json ? io.stderr : io.stdout)(`${text}\n`);
  say(`${brokerLines(options)}\n${describeWorkload(options)}`);

  const pool = new Piscina<GroupTask, GroupResult>({
    filename: new URL('./group-worker.js', import.meta.url).href,
    minThreads: options.threads,
    maxThreads: options.threads,
    concurrentTasksPerWorker: 1,
    idleTimeout: POOL_IDLE_TIMEOUT_MS,
    // Between tasks a worker must keep its event loop, not block in Atomics.wait.
    atomics: 'disabled',
  });
  const runs: RunResult[] = [];
  const warmups: RunResult[] = [];
  // A run that cannot start (broker refuses a declare, is gone) ends the rounds, but what the
  // earlier runs measured is still reported.
  let fatal: string | undefined;
  try {
    const brokers = [{ label: 'A', urls: options.urls }, ...(options.compareUrls === undefined ? [] : [{ label: 'B', urls: options.compareUrls }])];
    if (options.warmupSeconds > 0) {
      const warmup: BenchOptions = { ...options, durationSeconds: options.warmupSeconds, messagesPerProducer: undefined };
      for (const broker of brokers) {
        if (io.stopRequested?.() === true) break;
        const run = await runWorkload({ options: warmup, urls: broker.urls, label: broker.label, round: 0, pool, log: say, stopRequested: io.stopRequested ?? (() => false) });
        warmups.push(run);
        say(formatWarmup(run));
        if (run.errors.length > 0) throw new BenchRunError(`the warm-up against ${broker.label} failed: ${run.errors.join('; ')}`);
      }
    }
    rounds: for (let round = 1; round <= options.rounds; round++) {
      for (const broker of brokers) {
        if (io.stopRequested?.() === true) break rounds;
        const run = await runWorkload({ options, urls: broker.urls, label: broker.label, round, pool, log: say, stopRequested: io.stopRequested ?? (() => false) });
        runs.push(run);
        say(formatRunSummary(run));
      }
    }
  } catch (error: unknown) {
    if (!(error instanceof BenchRunError)) throw error;
    fatal = error.message;
  } finally {
    await pool.destroy();
  }

  const comparison = options.compareUrls === undefined ? undefined : compareRuns(runsOf(runs, 'A'), runsOf(runs, 'B'));
  if (runs.length > 0) {
    say(finalReport(options, runs, comparison));
    await writeArtifacts(options, runs);
  }
  if (fatal !== undefined) io.stderr(`bench: ${fatal}\n`);
  if (options.json) io.stdout(`${JSON.stringify(buildJson(argv, start, options, runs, comparison, fatal), null, 2)}\n`);
  if (fatal !== undefined || runs.some((run) => run.errors.length > 0)) return ExitCode.failed;
  // A warm-up that lost messages is a broker fault like any other, though its figures are not reported.
  if ([...warmups, ...runs].some((run) => !run.accounting.balanced)) return ExitCode.unaccounted;
  return ExitCode.ok;
}

function runsOf(runs: readonly RunResult[], label: string): RunResult[] {
  return runs.filter((run) => run.label === label);
}

interface MergedLatency {
  readonly label: string;
  readonly title: string;
  readonly deliver: LatencyHistogram;
  readonly confirm: LatencyHistogram;
}

/** Each broker's latency over all its rounds. */
function mergedLatency(runs: readonly RunResult[]): MergedLatency[] {
  const labels = [...new Set(runs.map((run) => run.label))];
  return labels.map((label) => {
    const own = runsOf(runs, label);
    const first = own[0];
    return {
      label,
      title: first === undefined ? label : `${label} ${first.broker.product} ${first.broker.version}`,
      deliver: mergeHistograms(own.map((run) => run.deliverLatency)),
      confirm: mergeHistograms(own.map((run) => run.confirmLatency)),
    };
  });
}

function finalReport(options: BenchOptions, runs: readonly RunResult[], comparison: Comparison | undefined): string {
  const sections: string[] = [];
  const merged = mergedLatency(runs);
  if (comparison !== undefined) sections.push(formatComparison(comparison));
  if (runs.length > 1) {
    sections.push(
      `latency over all rounds\n${latencyTable(merged.flatMap((entry) => [[`${entry.label} publish→deliver`, entry.deliver] as const, [`${entry.label} publish→confirm`, entry.confirm] as const]))}`,
    );
  }
  for (const entry of merged) {
    const prefix = options.compareUrls === undefined ? '' : `${entry.title}, `;
    if (entry.deliver.totalCount > 0) sections.push(formatDistribution(`${prefix}publish→deliver`, entry.deliver));
    if (entry.confirm.totalCount > 0) sections.push(formatDistribution(`${prefix}publish→confirm`, entry.confirm));
  }
  return sections.join('\n\n');
}

async function writeArtifacts(options: BenchOptions, runs: readonly RunResult[]): Promise<void> {
  const merged = mergedLatency(runs);
  const single = options.compareUrls === undefined;
  if (options.hgrmDir !== undefined) {
    await mkdir(options.hgrmDir, { recursive: true });
    for (const entry of merged) {
      const prefix = single ? '' : `${entry.label}-`;
      if (entry.deliver.totalCount > 0) await writeFile(join(options.hgrmDir, `${prefix}publish-deliver.hgrm`), formatHgrm(entry.deliver));
      if (entry.confirm.totalCount > 0) await writeFile(join(options.hgrmDir, `${prefix}publish-confirm.hgrm`), formatHgrm(entry.confirm));
    }
  }
  if (options.plotFile !== undefined) {
    const series = merged.flatMap((entry) => [
      ...(entry.deliver.totalCount > 0 ? [{ label: `${entry.title} publish→deliver`, rows: parseHgrm(formatHgrm(entry.deliver)).rows }] : []),
      ...(entry.confirm.totalCount > 0 ? [{ label: `${entry.title} publish→confirm`, rows: parseHgrm(formatHgrm(entry.confirm)).rows }] : []),
    ]);
    const title = `Latency by percentile distribution${runs.length > merged.length ? ', all rounds' : ''}`;
    await writeFile(options.plotFile, plotLatencySvg(title, series));
  }
}
