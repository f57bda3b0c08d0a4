// One producer: its own connection and channel, publishing on the schedule the workload asks
// for, within the confirm window, and pausing whenever amqplib's write buffer is full.
import { once } from 'node:events';
import type { Channel, ChannelModel, ConfirmChannel, Options } from 'amqplib';
import { writeSendTime } from './body-layout.js';
import { nowMicros } from './clock.js';
import type { GroupLatency } from './group-latency.js';
import type { GroupWorkload, ProducerSpec, ProducerTotals } from './group-task.js';
import { ClientSlot, Phase } from './shared-counters.js';
import type { SharedCounters } from './shared-counters.js';
import { Gate, sleepMillis, unlessStopped, withinMillis, yieldToEventLoop } from './wake-signal.js';

/** Publishes between yields to the event loop, so amqplib's muxer and same-thread consumers get turns. */
const PUBLISH_BATCH_MESSAGES = 200;
/** How long a stopped producer waits for the broker's last confirms before reporting them missing. */
export const CONFIRM_SETTLE_MAX_MS = 30_000;
/**
 * channel.close-ok comes only after the broker has taken every publish sent before it; at an
 * unlimited rate without confirms that can be tens of MB of backlog on a busy 2-core machine.
 */
export const PRODUCER_CLOSE_MAX_MS = 60_000;

export class Producer {
  private published = 0;
  private confirmed = 0;
  private nacked = 0;
  private channelClosed = false;
  /** Opened on every confirm, so a full window or the final settle can wait for progress. */
  private readonly confirmProgress = new Gate();
  private readonly publishOptions: Options.Publish;

  private constructor(
    private readonly spec: ProducerSpec,
    private readonly workload: GroupWorkload,
    private readonly channel: Channel,
    private readonly confirmChannel: ConfirmChannel | undefined,
    private readonly counters: SharedCounters,
    private readonly latency: GroupLatency,
  ) {
    this.publishOptions = { persistent: workload.persistent };
    channel.on('close', () => {
      this.channelClosed = true;
      this.confirmProgress.open();
    });
  }

  static async open(connection: ChannelModel, spec: ProducerSpec, workload: GroupWorkload, counters: SharedCounters, latency: GroupLatency): Promise<Producer> {
    if (workload.confirmWindow === undefined) {
      return new Producer(spec, workload, await connection.createChannel(), undefined, counters, latency);
    }
    const confirmChannel = await connection.createConfirmChannel();
    return new Producer(spec, workload, confirmChannel, confirmChannel, counters, latency);
  }

  get channelHandle(): Channel {
    return this.channel;
  }

  totals(): ProducerTotals {
    const unconfirmed = this.confirmChannel === undefined ? 0 : this.outstanding();
    return { client: this.spec.client, published: this.published, confirmed: this.confirmed, nacked: this.nacked, unconfirmed };
  }

  /** Publishes until the run stops or the message budget is spent, then settles and closes. */
  async runToEnd(): Promise<void> {
    this.counters.set(this.spec.client, ClientSlot.running, 1);
    try {
      await this.counters.waitForPhase(Phase.running);
      await this.publishLoop(this.counters.waitForPhase(Phase.stopPublishing), this.counters.startMicros());
      await this.settle();
      if (this.counters.phase() < Phase.abort && !this.channelClosed) {
        // close-ok also tells us the broker has taken every publish sent before it.
        if (!(await withinMillis(this.channel.close(), PRODUCER_CLOSE_MAX_MS))) throw new Error(`no channel.close-ok within ${PRODUCER_CLOSE_MAX_MS} ms`);
      }
    } finally {
      this.counters.set(this.spec.client, ClientSlot.running, 0);
    }
  }

  private outstanding(): number {
    return this.published - this.confirmed - this.nacked;
  }

  private async publishLoop(stop: Promise<void>, startMicros: number): Promise<void> {
    const { ratePerProducer, confirmWindow, messagesPerProducer } = this.workload;
    const intervalMicros = ratePerProducer === undefined ? 0 : 1_000_000 / ratePerProducer;
    const budget = messagesPerProducer ?? Number.POSITIVE_INFINITY;
    let sinceYield = 0;
    while (this.published < budget && this.counters.phase() < Phase.stopPublishing && !this.channelClosed) {
      if (confirmWindow !== undefined && this.outstanding() >= confirmWindow) {
        await unlessStopped(this.confirmProgress.wait(), stop);
        continue;
      }
      let sendTimeMicros = nowMicros();
      if (ratePerProducer !== undefined) {
        // The scheduled time, not the actual one, is stamped: a late send shows as latency.
        const dueMicros = startMicros + (this.published + this.spec.scheduleOffset) * intervalMicros;
        if (dueMicros > sendTimeMicros) {
          await unlessStopped(sleepMillis(Math.max(1, Math.floor((dueMicros - sendTimeMicros) / 1000))), stop);
          continue;
        }
        sendTimeMicros = dueMicros;
      }
      if (!this.publishOne(sendTimeMicros)) {
        await unlessStopped(once(this.channel, 'drain'), stop);
        sinceYield = 0;
      } else if (++sinceYield >= PUBLISH_BATCH_MESSAGES) {
        sinceYield = 0;
        await yieldToEventLoop();
      }
    }
  }

  private publishOne(sendTimeMicros: number): boolean {
    const { minBytes, maxBytes } = this.workload.size;
    const bodyBytes = minBytes === maxBytes ? minBytes : minBytes + Math.floor(Math.random() * (maxBytes - minBytes + 1));
    // A fresh body each time: amqplib keeps references to large bodies until they are written.
    const body = Buffer.alloc(bodyBytes);
    writeSendTime(body, sendTimeMicros);
    const { exchange, routingKey } = this.spec;
    const writable =
      this.confirmChannel === undefined
        ? this.channel.publish(exchange, routingKey, body, this.publishOptions)
        : this.confirmChannel.publish(exchange, routingKey, body, this.publishOptions, (error: unknown) => this.onConfirm(error, sendTimeMicros));
    this.published++;
    this.counters.add(this.spec.client, ClientSlot.published, 1);
    return writable;
  }

  private onConfirm(error: unknown, sendTimeMicros: number): void {
    // amqplib fails every pending callback when the channel closes; those were not nacked.
    if (error !== null && error !== undefined && this.channelClosed) return;
    this.latency.recordConfirm(nowMicros() - sendTimeMicros);
    if (error === null || error === undefined) {
      this.confirmed++;
      this.counters.add(this.spec.client, ClientSlot.confirmed, 1);
    } else {
      this.nacked++;
      this.counters.add(this.spec.client, ClientSlot.nacked, 1);
    }
    this.confirmProgress.open();
  }

  private async settle(): Promise<void> {
    if (this.confirmChannel === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, CONFIRM_SETTLE_MAX_MS);
    });
    const giveUp = Promise.race([deadline, this.counters.waitForPhase(Phase.abort)]);
    try {
      while (this.outstanding() > 0 && !this.channelClosed) {
        if (!(await unlessStopped(this.confirmProgress.wait(), giveUp))) break;
      }
    } finally {
      clearTimeout(timer);
    }
  }
}
