// One run of the workload against one broker: declare, start the client threads together,
// print a line a second, stop, drain, account for every message, clean up.
import { availableParallelism } from 'node:os';
import { MessageChannel } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import type { Piscina } from 'piscina';
import { BrokerSession } from './broker-session.js';
import { dealClients } from './client-groups.js';
import { nowMicros } from './clock.js';
import type { GroupResult, GroupTask, GroupWorkload, IntervalLatency } from './group-task.js';
import { createLatencyHistogram, decodeHistogram, mergeHistograms } from './latency-histogram.js';
import type { LatencyHistogram } from './latency-histogram.js';
import type { BenchOptions } from './options.js';
import { CONFIRM_SETTLE_MAX_MS, PRODUCER_CLOSE_MAX_MS } from './producer.js';
import { formatProgressLine } from './progress-line.js';
import type { GeneratorCpu, RunResult } from './run-result.js';
import { redactUrl } from './run-result.js';
import { ClientSlot, CounterTotals, createSharedCounters, Phase, SharedCounters } from './shared-counters.js';
import { consumableCopies, planTopology, routedCopies } from './topology.js';
import type { Topology } from './topology.js';
import { sleepMillis, withinMillis } from './wake-signal.js';

/** Main-thread polling period for stop conditions: 20 wake-ups a second cost nothing. */
const POLL_MS = 50;
const PROGRESS_INTERVAL_MICROS = 1_000_000;
/** Connecting hundreds of clients to a loaded broker can take a while; longer is a dead broker. */
const READY_MAX_MS = 30_000;
/** Producers bound their confirm wait and their close themselves; this only adds a margin. */
const PRODUCERS_STOP_MAX_MS = CONFIRM_SETTLE_MAX_MS + PRODUCER_CLOSE_MAX_MS + 10_000;
/** Groups bound each close by 5 s (cancel, then connection close); this leaves room for both. */
const GROUPS_FINISH_MAX_MS = 15_000;
/** Consumers that have taken nothing for this long have drained what they can reach. */
const DRAIN_IDLE_MS = 500;
/** A backlog larger than this drains after the run is reported as left in the queue. */
const DRAIN_MAX_MS = 10_000;

export interface RunContext {
  readonly options: BenchOptions;
  /** This broker's nodes; the control connection uses the first. */
  readonly urls: readonly string[];
  readonly label: string;
  readonly round: number;
  readonly pool: Piscina<GroupTask, GroupResult>;
  readonly log: (line: string) => void;
  readonly stopRequested: () => boolean;
}

/** A run that could not happen or could not finish, e.g. the broker refused a declare. */
export class BenchRunError extends Error {
  override readonly name = 'BenchRunError';
}

export async function runWorkload(context: RunContext): Promise<RunResult> {
  const { options } = context;
  const url = context.urls[0] ?? '';
  const topology = planTopology(options);
  let session: BrokerSession;
  try {
    session = await BrokerSession.open(url, options.tlsCa);
  } catch (error: unknown) {
    throw new BenchRunError(`cannot connect to ${redactUrl(url)}: ${describe(error)}`);
  }
  try {
    let depthsBefore: number[];
    try {
      depthsBefore = await session.declare(topology, options);
    } catch (error: unknown) {
      throw new BenchRunError(`declaring queues on ${redactUrl(url)} failed: ${describe(error)}`);
    }
    const measured = await runClients(context, topology);
    // A failure from here on still reports the run: its figures are measured, only the accounting is unknown.
    const lateErrors: string[] = [];
    let depthsAfter: number | undefined;
    try {
      depthsAfter = sum(await session.queueDepths(topology.queues));
    } catch (error: unknown) {
      lateErrors.push(`reading queue depths: ${describe(error)}`);
    }
    if (!options.keepQueues) {
      try {
        await session.teardown(topology);
      } catch (error: unknown) {
        lateErrors.push(`deleting queues: ${describe(error)}`);
      }
    }
    return assemble(context, topology, session, { ...measured, errors: [...measured.errors, ...lateErrors] }, sum(depthsBefore), depthsAfter);
  } finally {
    await session.close();
  }
}

interface Measured {
  readonly groups: readonly GroupResult[];
  readonly windowSeconds: number;
  readonly totalSeconds: number;
  readonly publishedInWindow: number;
  readonly consumedInWindow: number;
  readonly cpu: Omit<GeneratorCpu, 'threadBusy'>;
  readonly errors: readonly string[];
}

async function runClients(context: RunContext, topology: Topology): Promise<Measured> {
  const { options } = context;
  const counterBuffer = createSharedCounters(options.producers + options.consumers);
  const counters = new SharedCounters(counterBuffer);
  const totals = new CounterTotals(counters);
  const workload: GroupWorkload = {
    size: options.size,
    ratePerProducer: options.ratePerProducer,
    confirmWindow: options.confirmWindow,
    persistent: options.persistent,
    messagesPerProducer: options.messagesPerProducer,
    prefetchCount: options.prefetchCount,
    multiAckEvery: options.multiAckEvery,
    autoAck: options.autoAck,
    nagle: options.nagle,
    tlsCa: options.tlsCa,
  };
  const interval = { deliver: createLatencyHistogram(), confirm: createLatencyHistogram() };
  const ports: MessagePort[] = [];
  const failures: string[] = [];
  const tasks = dealClients(topology, options.threads, context.urls).map((group, index) => {
    const channel = new MessageChannel();
    ports.push(channel.port1);
    channel.port1.on('message', (message: IntervalLatency) => {
      if (message.deliver !== undefined) interval.deliver.add(decodeHistogram(message.deliver));
      if (message.confirm !== undefined) interval.confirm.add(decodeHistogram(message.confirm));
    });
    const task: GroupTask = { group: index, workload, producers: group.producers, consumers: group.consumers, counters: counterBuffer, progressPort: channel.port2 };
    return context.pool.run(task, { transferList: [channel.port2] }).catch((error: unknown) => {
      failures.push(`worker thread: ${describe(error)}`);
      counters.advancePhase(Phase.abort);
      return undefined;
    });
  });
  try {
    await waitUntil(() => counters.readyGroups() === tasks.length || counters.phase() >= Phase.abort, READY_MAX_MS);
    if (counters.readyGroups() < tasks.length && counters.phase() < Phase.abort) failures.push(`clients not connected within ${READY_MAX_MS} ms`);
    if (failures.length > 0) counters.advancePhase(Phase.abort);

    const cpuBefore = process.cpuUsage();
    const startMicros = nowMicros();
    counters.setStartMicros(startMicros);
    counters.advancePhase(Phase.running);
    await publishPhase(context, counters, totals, interval, startMicros);
    const stopPublishMicros = nowMicros();
    // The CPU figure covers the window in which load was offered, like the rates; draining
    // and closing afterwards would only dilute it.
    const cpuUsed = process.cpuUsage(cpuBefore);
    totals.sample();
    const publishedInWindow = totals.sum(ClientSlot.published);
    const consumedInWindow = totals.sum(ClientSlot.consumed);
    counters.advancePhase(Phase.stopPublishing);
    await waitUntil(() => totals.runningCount() === 0 || counters.phase() >= Phase.abort, PRODUCERS_STOP_MAX_MS);
    if (totals.runningCount() > 0 && counters.phase() < Phase.abort) {
      failures.push(`producers still running ${PRODUCERS_STOP_MAX_MS} ms after being told to stop`);
      counters.advancePhase(Phase.abort);
    }
    await drain(counters, totals, topology);
    counters.advancePhase(Phase.stopConsuming);
    const settled = await settleTasks(tasks, counters, failures);
    const endMicros = nowMicros();
    const groups = settled.filter((result): result is GroupResult => result !== undefined);
    return {
      groups,
      windowSeconds: (stopPublishMicros - startMicros) / 1e6,
      totalSeconds: (endMicros - startMicros) / 1e6,
      publishedInWindow,
      consumedInWindow,
      cpu: generatorCpu(cpuUsed, stopPublishMicros - startMicros),
      errors: [...failures, ...groups.flatMap((group) => group.errors)],
    };
  } finally {
    counters.advancePhase(Phase.finished);
    for (const port of ports) port.close();
  }
}

/**
 * Waits for every group to return. Each bounds its own closing, so a group still out after
 * that is stuck: abort the rest, and past a second bound give up on it (the pool's destroy
 * terminates its thread).
 */
async function settleTasks(tasks: readonly Promise<GroupResult | undefined>[], counters: SharedCounters, failures: string[]): Promise<(GroupResult | undefined)[]> {
  const all = Promise.all(tasks);
  if (await withinMillis(all, GROUPS_FINISH_MAX_MS)) return all;
  failures.push(`client threads did not finish within ${GROUPS_FINISH_MAX_MS} ms of the stop`);
  counters.advancePhase(Phase.abort);
  if (await withinMillis(all, GROUPS_FINISH_MAX_MS)) return all;
  return [];
}

/** Until the duration is up, the producers have spent their budget, the user interrupts or a client fails. */
async function publishPhase(
  context: RunContext,
  counters: SharedCounters,
  totals: CounterTotals,
  interval: { deliver: LatencyHistogram; confirm: LatencyHistogram },
  startMicros: number,
): Promise<void> {
  const { options } = context;
  const deadlineMicros = options.durationSeconds === undefined ? Number.POSITIVE_INFINITY : startMicros + options.durationSeconds * 1e6;
  let nextProgressMicros = startMicros + PROGRESS_INTERVAL_MICROS;
  let lastPublished = 0;
  let lastConsumed = 0;
  for (;;) {
    const now = nowMicros();
    if (now >= nextProgressMicros) {
      totals.sample();
      const published = totals.sum(ClientSlot.published);
      const consumed = totals.sum(ClientSlot.consumed);
      const unconfirmed = published - totals.sum(ClientSlot.confirmed) - totals.sum(ClientSlot.nacked);
      context.log(
        formatProgressLine({
          prefix: progressPrefix(context),
          elapsedSeconds: (nextProgressMicros - startMicros) / 1e6,
          sentPerSecond: published - lastPublished,
          receivedPerSecond: consumed - lastConsumed,
          unconfirmed: options.confirmWindow === undefined ? undefined : unconfirmed,
          deliver: interval.deliver,
          confirm: options.confirmWindow === undefined ? undefined : interval.confirm,
        }),
      );
      interval.deliver.reset();
      interval.confirm.reset();
      lastPublished = published;
      lastConsumed = consumed;
      nextProgressMicros += PROGRESS_INTERVAL_MICROS;
    }
    if (now >= deadlineMicros || counters.phase() >= Phase.abort || context.stopRequested()) return;
    if (options.messagesPerProducer !== undefined && totals.runningCount() === 0) return;
    const untilNextMs = (Math.min(deadlineMicros, nextProgressMicros) - now) / 1000;
    await sleepMillis(Math.max(1, Math.min(POLL_MS, Math.ceil(untilNextMs))));
  }
}

/** Round 0 is the warm-up (bench-main.ts), which is always labelled. */
function progressPrefix(context: RunContext): string {
  if (context.round === 0) return `[${context.label} warm-up] `;
  if (context.options.compareUrls === undefined && context.options.rounds === 1) return '';
  return `[${context.label} r${context.round}] `;
}

/** Lets consumers take what was published to their queues, until done, idle or out of time. */
async function drain(counters: SharedCounters, totals: CounterTotals, topology: Topology): Promise<void> {
  const startMs = Date.now();
  let lastConsumed = -1;
  let lastProgressMs = startMs;
  while (counters.phase() < Phase.abort && Date.now() - startMs < DRAIN_MAX_MS && Date.now() - lastProgressMs < DRAIN_IDLE_MS) {
    totals.sample();
    const consumed = totals.sum(ClientSlot.consumed);
    if (consumed >= consumableCopies(topology, (client) => totals.of(client, ClientSlot.published))) return;
    if (consumed !== lastConsumed) {
      lastConsumed = consumed;
      lastProgressMs = Date.now();
    }
    await sleepMillis(POLL_MS);
  }
}

function assemble(context: RunContext, topology: Topology, session: BrokerSession, measured: Measured, depthsBefore: number, depthsAfter: number | undefined): RunResult {
  const producerTotals = measured.groups.flatMap((group) => group.producers);
  const consumerTotals = measured.groups.flatMap((group) => group.consumers);
  const publishedBy = new Map(producerTotals.map((totals) => [totals.client, totals.published]));
  const published = sum(producerTotals.map((totals) => totals.published));
  const routed = routedCopies(topology, (client) => publishedBy.get(client) ?? 0);
  const consumed = sum(consumerTotals.map((totals) => totals.consumed));
  const inQueues = depthsAfter === undefined ? undefined : depthsAfter - depthsBefore;
  const windowSeconds = Math.max(measured.windowSeconds, 1e-6);
  return {
    label: context.label,
    url: context.urls.map(redactUrl).join(','),
    round: context.round,
    broker: session.identity(),
    threads: measured.groups.length,
    connections: context.options.producers + context.options.consumers + 1,
    windowSeconds: measured.windowSeconds,
    totalSeconds: measured.totalSeconds,
    publishedInWindow: measured.publishedInWindow,
    consumedInWindow: measured.consumedInWindow,
    publishedPerSecond: measured.publishedInWindow / windowSeconds,
    consumedPerSecond: measured.consumedInWindow / windowSeconds,
    confirmed: sum(producerTotals.map((totals) => totals.confirmed)),
    nacked: sum(producerTotals.map((totals) => totals.nacked)),
    unconfirmed: sum(producerTotals.map((totals) => totals.unconfirmed)),
    accounting: { published, routed, consumed, inQueues, inQueuesBefore: depthsBefore, balanced: inQueues !== undefined && consumed + inQueues === routed },
    cpu: { ...measured.cpu, threadBusy: measured.groups.map((group) => group.eventLoopUtilization) },
    deliverLatency: mergeHistograms(measured.groups.map((group) => decodeHistogram(group.deliverLatency))),
    confirmLatency: mergeHistograms(measured.groups.map((group) => decodeHistogram(group.confirmLatency))),
    errors: measured.errors,
  };
}

function generatorCpu(used: NodeJS.CpuUsage, wallMicros: number): Omit<GeneratorCpu, 'threadBusy'> {
  const cores = availableParallelism();
  const percentOfOneCore = wallMicros > 0 ? ((used.user + used.system) / wallMicros) * 100 : 0;
  return { userMicros: used.user, systemMicros: used.system, percentOfOneCore, percentOfMachine: percentOfOneCore / cores, cores };
}

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await sleepMillis(POLL_MS);
}

function sum(values: readonly number[]): number {
  return values.reduce((total, value) => total + value, 0);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
