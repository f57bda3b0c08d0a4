// The main thread's own connection to a broker: declares the topology before the clients
// start, reads queue depths (passive declare) for the accounting, and cleans up after.
import { connect } from 'amqplib';
import type { Channel, ChannelModel } from 'amqplib';
import type { BenchOptions } from './options.js';
import type { Topology } from './topology.js';
import { withinMillis } from './wake-signal.js';

export interface BrokerIdentity {
  readonly product: string;
  readonly version: string;
}

/** A TCP connect or AMQP handshake slower than this is a broker that is not there. */
const CONNECT_TIMEOUT_MS = 10_000;
/** A declare, delete or passive declare unanswered this long means the broker is wedged. */
const REPLY_MAX_MS = 15_000;
/** Queue types RabbitMQ only accepts as durable. */
const DURABLE_ONLY_QUEUE_TYPES = new Set(['quorum', 'stream']);

export class BrokerSession {
  private constructor(
    private readonly connection: ChannelModel,
    private readonly channel: Channel,
  ) {}

  static async open(url: string, tlsCa: string | undefined): Promise<BrokerSession> {
    const connection = await connect(url, { timeout: CONNECT_TIMEOUT_MS, clientProperties: { connection_name: 'warren-bench control' }, ...(tlsCa === undefined ? {} : { ca: [tlsCa] }) });
    connection.on('error', () => undefined);
    const opening = connection.createChannel();
    if (!(await withinMillis(opening, REPLY_MAX_MS))) {
      await withinMillis(connection.close().catch(() => undefined), REPLY_MAX_MS);
      throw new Error(`no reply to channel.open within ${REPLY_MAX_MS} ms`);
    }
    const session = new BrokerSession(connection, await opening);
    session.watch();
    return session;
  }

  identity(): BrokerIdentity {
    const properties = this.connection.connection.serverProperties;
    return { product: String(properties.product ?? 'unknown'), version: String(properties.version ?? '?') };
  }

  /** Declares exchange, queues and bindings; returns each queue's depth before the run. */
  async declare(topology: Topology, options: BenchOptions): Promise<number[]> {
    const durable = options.persistent || DURABLE_ONLY_QUEUE_TYPES.has(String(options.queueArgs['x-queue-type'] ?? ''));
    if (topology.exchange !== '' && !topology.exchange.startsWith('amq.')) {
      await this.reply(`exchange.declare ${topology.exchange}`, this.channel.assertExchange(topology.exchange, topology.exchangeType, { durable, autoDelete: false }));
    }
    const depths: number[] = [];
    for (const queue of topology.queues) {
      const declared = this.channel.assertQueue(queue, { durable, autoDelete: false, exclusive: false, arguments: { ...options.queueArgs } });
      depths.push((await this.reply(`queue.declare ${queue}`, declared)).messageCount);
    }
    for (const binding of topology.bindings) {
      await this.reply(`queue.bind ${binding.queue}`, this.channel.bindQueue(binding.queue, topology.exchange, binding.bindingKey));
    }
    return depths;
  }

  /** Ready messages per queue, by passive declare. */
  async queueDepths(queues: readonly string[]): Promise<number[]> {
    const depths: number[] = [];
    for (const queue of queues) depths.push((await this.reply(`passive queue.declare ${queue}`, this.channel.checkQueue(queue))).messageCount);
    return depths;
  }

  async teardown(topology: Topology): Promise<void> {
    for (const queue of topology.queues) await this.reply(`queue.delete ${queue}`, this.channel.deleteQueue(queue));
    if (topology.ownsExchange) await this.reply(`exchange.delete ${topology.exchange}`, this.channel.deleteExchange(topology.exchange));
  }

  private async reply<T>(what: string, pending: Promise<T>): Promise<T> {
    if (!(await withinMillis(pending, REPLY_MAX_MS))) throw new Error(`no reply to ${what} within ${REPLY_MAX_MS} ms`);
    return pending;
  }

  async close(): Promise<void> {
    await withinMillis(this.connection.close().catch(() => undefined), REPLY_MAX_MS);
  }

  /**
   * A channel-level error (404, 406 …) also rejects the call that caused it, which is where it
   * is reported; without a listener amqplib's 'error' event would crash the process instead.
   */
  private watch(): void {
    this.channel.on('error', () => undefined);
  }
}
