// One consumer: its own connection and channel, measuring publish→deliver from the send time
// in each body and acking as the workload asks (each, every N with multiple, or no-ack).
import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import { readSendTime } from './body-layout.js';
import { nowMicros } from './clock.js';
import type { GroupLatency } from './group-latency.js';
import type { ConsumerSpec, ConsumerTotals, GroupWorkload } from './group-task.js';
import { ClientSlot } from './shared-counters.js';
import type { SharedCounters } from './shared-counters.js';

export class Consumer {
  private consumed = 0;
  private unackedCount = 0;
  private lastUnacked: ConsumeMessage | undefined;
  private consumerTag: string | undefined;
  private cancelledByBroker = false;

  private constructor(
    private readonly spec: ConsumerSpec,
    private readonly workload: GroupWorkload,
    private readonly channel: Channel,
    private readonly counters: SharedCounters,
    private readonly latency: GroupLatency,
  ) {}

  /** Opens the channel and starts consuming: deliveries may arrive before the run starts only if the queue held messages. */
  static async open(connection: ChannelModel, spec: ConsumerSpec, workload: GroupWorkload, counters: SharedCounters, latency: GroupLatency): Promise<Consumer> {
    const channel = await connection.createChannel();
    if (!workload.autoAck && workload.prefetchCount > 0) await channel.prefetch(workload.prefetchCount, false);
    const consumer = new Consumer(spec, workload, channel, counters, latency);
    const reply = await channel.consume(spec.queue, (message) => consumer.onDelivery(message), { noAck: workload.autoAck });
    consumer.consumerTag = reply.consumerTag;
    return consumer;
  }

  get channelHandle(): Channel {
    return this.channel;
  }

  get wasCancelledByBroker(): boolean {
    return this.cancelledByBroker;
  }

  totals(): ConsumerTotals {
    return { client: this.spec.client, consumed: this.consumed };
  }

  private onDelivery(message: ConsumeMessage | null): void {
    if (message === null) {
      // basic.cancel from the broker: the queue was deleted or failed over.
      this.cancelledByBroker = true;
      return;
    }
    const sendTimeMicros = readSendTime(message.content);
    if (sendTimeMicros !== undefined) this.latency.recordDeliver(nowMicros() - sendTimeMicros);
    this.consumed++;
    this.counters.add(this.spec.client, ClientSlot.consumed, 1);
    if (this.workload.autoAck) return;
    this.unackedCount++;
    if (this.unackedCount >= this.workload.multiAckEvery) {
      this.channel.ack(message, this.workload.multiAckEvery > 1);
      this.unackedCount = 0;
      this.lastUnacked = undefined;
    } else {
      this.lastUnacked = message;
    }
  }

  /**
   * Cancels, then acks whatever it still holds, then closes: every message it counted is
   * acked, and every message it did not count is still in the queue.
   */
  async stop(): Promise<void> {
    if (this.consumerTag !== undefined && !this.cancelledByBroker) await this.channel.cancel(this.consumerTag);
    if (this.lastUnacked !== undefined) {
      this.channel.ack(this.lastUnacked, true);
      this.lastUnacked = undefined;
      this.unackedCount = 0;
    }
    await this.channel.close();
  }
}
