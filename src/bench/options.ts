// The workload a bench run offers to a broker, after parsing and validation.

export type ExchangeType = 'direct' | 'fanout' | 'topic' | 'headers';

export const EXCHANGE_TYPES: readonly ExchangeType[] = ['direct', 'fanout', 'topic', 'headers'];

/** What --queue-type accepts; quorum queues are declared durable, never exclusive or auto-delete. */
export type QueueType = 'classic' | 'quorum';

export const QUEUE_TYPES: readonly QueueType[] = ['classic', 'quorum'];

/** A queue argument value as it goes into the queue.declare field table. */
export type QueueArgValue = string | number | boolean;

export interface SizeRange {
  readonly minBytes: number;
  readonly maxBytes: number;
}

export interface BenchOptions {
  /**
   * The broker's nodes, one or more: client k (producers first, then consumers) connects to
   * urls[k mod urls.length]; the control connection (declare, depths, delete) to urls[0].
   */
  readonly urls: readonly string[];
  /** The reference broker's nodes, dealt to clients the same way; undefined runs one broker. */
  readonly compareUrls: readonly string[] | undefined;
  readonly rounds: number;
  /**
   * Seconds of the same workload run against each broker before its first round and not
   * counted: a JIT-compiled broker started moments ago is measured at its speed, not while
   * V8 is still compiling its hot paths (0: none).
   */
  readonly warmupSeconds: number;
  readonly producers: number;
  readonly consumers: number;
  readonly queueCount: number;
  readonly queuePrefix: string;
  /** Declared as given; --queue-type T arrives here as x-queue-type=T. */
  readonly queueArgs: Readonly<Record<string, QueueArgValue>>;
  /** '' is the default exchange: the routing key is the queue name and nothing is bound. */
  readonly exchange: string;
  readonly exchangeType: ExchangeType;
  /** When set, every producer publishes with this key; otherwise with its queue's name. */
  readonly routingKey: string | undefined;
  /** When set, every queue is bound with this key; otherwise with the routing key or its own name. */
  readonly bindingKey: string | undefined;
  readonly size: SizeRange;
  /** Messages per second per producer; undefined publishes as fast as the broker takes them. */
  readonly ratePerProducer: number | undefined;
  /** Unconfirmed messages allowed per producer; undefined publishes without confirms. */
  readonly confirmWindow: number | undefined;
  readonly persistent: boolean;
  /** basic.qos prefetch count per consumer; 0 is unlimited. */
  readonly prefetchCount: number;
  /** Ack with multiple=true once every this many deliveries; 1 acks each message on its own. */
  readonly multiAckEvery: number;
  readonly autoAck: boolean;
  /**
   * Leave Nagle's algorithm on in the client sockets (amqplib's default). Off by default, as in
   * RabbitMQ's Java client and PerfTest: with it on, a publish can wait for the broker's
   * delayed ACK (40 ms on Linux), which measures the client's TCP settings, not the broker.
   */
  readonly nagle: boolean;
  /** PEM text of the CAs to trust for amqps:// URLs (--tls-ca FILE); undefined: the system's. */
  readonly tlsCa: string | undefined;
  readonly durationSeconds: number | undefined;
  /** Messages each producer publishes before it stops. */
  readonly messagesPerProducer: number | undefined;
  readonly threads: number;
  readonly keepQueues: boolean;
  readonly json: boolean;
  readonly hgrmDir: string | undefined;
  readonly plotFile: string | undefined;
}

/** The amqplib message size the bench can stamp: the send time takes the first 8 bytes. */
export const SIZE_MIN_BYTES = 8;
/** RabbitMQ's default max_message_size is 128 MiB; half of it keeps a typo from exhausting memory. */
export const SIZE_MAX_BYTES = 64 * 1024 * 1024;
/** One connection per client: past this a typo opens more sockets than a 2-core machine can serve. */
export const CLIENTS_MAX = 1000;
export const QUEUES_MAX = 1000;
export const THREADS_MAX = 64;
/** basic.qos prefetch-count is an AMQP short. */
export const PREFETCH_MAX = 65535;

/** One per node of a cluster; RabbitMQ allows 3-7 quorum members, this leaves room for a larger test cluster. */
export const URLS_MAX = 16;

export const DEFAULT_URL = 'amqp://guest:guest@localhost:5672';
/** Without --duration or --pmessages a run lasts this long rather than forever. */
export const DEFAULT_DURATION_SECONDS = 10;
