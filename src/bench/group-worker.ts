// Piscina worker entry: runs one group of clients as a single long task. It connects them,
// reports ready, waits for the main thread's phases, and returns totals and histograms.
import { performance } from 'node:perf_hooks';
import { connect } from 'amqplib';
import type { ChannelModel } from 'amqplib';
import { Consumer } from './consumer.js';
import { GroupLatency } from './group-latency.js';
import type { GroupResult, GroupTask } from './group-task.js';
import { encodeHistogram } from './latency-histogram.js';
import { Producer } from './producer.js';
import { Phase, SharedCounters } from './shared-counters.js';
import { unlessStopped, withinMillis } from './wake-signal.js';

/** Four posts a second, so the main thread's once-a-second line never misses a whole interval. */
const PROGRESS_INTERVAL_MS = 250;
/** A TCP connect or AMQP handshake slower than this is a broker that is not there. */
const CONNECT_TIMEOUT_MS = 10_000;
/** A broker that does not answer a cancel or close in this long is wedged; stop waiting for it. */
const CLOSE_MAX_MS = 5000;

export default async function runClientGroup(task: GroupTask): Promise<GroupResult> {
  const counters = new SharedCounters(task.counters);
  const latency = new GroupLatency();
  const errors: string[] = [];
  const connections: ChannelModel[] = [];
  let closingDeliberately = false;
  const fail = (what: string, error: unknown): void => {
    errors.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
    counters.advancePhase(Phase.abort);
  };
  const open = async (name: string, url: string): Promise<ChannelModel> => {
    const tls = task.workload.tlsCa === undefined ? {} : { ca: [task.workload.tlsCa] };
    const connection = await connect(url, { timeout: CONNECT_TIMEOUT_MS, noDelay: !task.workload.nagle, clientProperties: { connection_name: `warren-bench ${name}` }, ...tls });
    connections.push(connection);
    let errored = false;
    connection.on('error', (error: Error) => {
      errored = true;
      fail(`${name} connection`, error);
    });
    // A close after an error is the same failure said twice.
    connection.on('close', () => {
      if (!closingDeliberately && !errored) fail(`${name} connection`, new Error('closed by the broker'));
    });
    return connection;
  };
  const watchChannel = (name: string, channel: { on(event: 'error', listener: (error: Error) => void): unknown }): void => {
    channel.on('error', (error: Error) => fail(`${name} channel`, error));
  };

  const reporter = setInterval(() => task.progressPort.postMessage(latency.takeInterval()), PROGRESS_INTERVAL_MS);
  const producers: Producer[] = [];
  const consumers: Consumer[] = [];
  let utilization = 0;
  const resultOf = (): GroupResult => ({
    group: task.group,
    producers: producers.map((producer) => producer.totals()),
    consumers: consumers.map((consumer) => consumer.totals()),
    deliverLatency: encodeHistogram(latency.deliverTotal),
    confirmLatency: encodeHistogram(latency.confirmTotal),
    eventLoopUtilization: utilization,
    errors,
  });
  try {
    // channel.open, basic.qos and basic.consume have no timeout of their own: an abort (the
    // main thread gives up waiting for ready groups) must also end this wait.
    const opening = Promise.all([
      ...task.producers.map(async (spec) => {
        const name = `producer ${spec.client}`;
        const producer = await Producer.open(await open(name, spec.url), spec, task.workload, counters, latency);
        watchChannel(name, producer.channelHandle);
        producers.push(producer);
      }),
      ...task.consumers.map(async (spec) => {
        const name = `consumer ${spec.client}`;
        const consumer = await Consumer.open(await open(name, spec.url), spec, task.workload, counters, latency);
        watchChannel(name, consumer.channelHandle);
        consumers.push(consumer);
      }),
    ]);
    // Aborted while connecting: another group failed and said why; this one only closes.
    if (!(await unlessStopped(opening, counters.waitForPhase(Phase.abort)))) return resultOf();
    // Producers mark themselves running before the group counts as ready, so the main thread
    // never mistakes a group that has not started for one whose producers have finished.
    const producerRuns = producers.map((producer) => producer.runToEnd().catch((error: unknown) => fail('producer', error)));
    counters.markGroupReady();
    await counters.waitForPhase(Phase.running);
    // Over the publishing window, the same span as the rates and the process CPU figure.
    const loopAtStart = performance.eventLoopUtilization();
    await counters.waitForPhase(Phase.stopPublishing);
    utilization = performance.eventLoopUtilization(loopAtStart).utilization;
    await counters.waitForPhase(Phase.stopConsuming);
    await Promise.all(producerRuns);
    if (counters.phase() < Phase.abort) {
      await Promise.all(consumers.map(async (consumer) => {
        if (!(await withinMillis(consumer.stop(), CLOSE_MAX_MS))) fail('consumer', new Error(`no cancel/close reply within ${CLOSE_MAX_MS} ms`));
      }));
    }
    for (const consumer of consumers) if (consumer.wasCancelledByBroker) errors.push('a consumer was cancelled by the broker (queue deleted?)');
  } catch (error: unknown) {
    fail('group', error);
  } finally {
    clearInterval(reporter);
    closingDeliberately = true;
    await Promise.all(connections.map((connection) => withinMillis(connection.close().catch(() => undefined), CLOSE_MAX_MS)));
    task.progressPort.close();
  }
  return resultOf();
}
