import type { QueueConfig } from '../shard/queue-config.js';
import type { QueueIdentity } from './queue-args.js';
import type { QueueLink } from './queue-link.js';
import type { Connection } from './connection.js';

/**
 * Where a consumer's deliveries go: a client's channel, or (on a queue's leader node) the
 * proxy of a channel on another node (front/peer-session.ts).
 */
export interface ConsumerChannel {
  readonly key: number;
  /** The AMQP channel number (for listings). */
  readonly id: number;
  readonly conn: { readonly name: string };
  readonly state: 'open' | 'closing' | 'closed';
  prefetchCount: number;
  /** basic.qos global (0: none). */
  readonly globalPrefetch: number;
  readonly consumers: Map<string, ConsumerRef>;
  /** Hands over one message a queue delivered to consumer c. */
  deliver(c: ConsumerRef, link: QueueLink, queueId: number, msgId: number, redelivered: boolean, payload: Buffer): void;
  /** The queue side cancelled c (queue deleted, its node gone): tell whoever can hear it. */
  consumerCancelledByServer(c: ConsumerRef): void;
}

/** What receives a link's publisher confirms for one channel key. */
export interface ConfirmTarget {
  readonly key: number;
  onShardConfirm(seq: number, ok: boolean): void;
  flushConfirms(): void;
}

/** A consumer as the front knows it: where its deliveries go. */
export interface ConsumerRef {
  readonly id: number;
  readonly tag: string;
  /** The tag as an AMQP shortstr, written verbatim into every basic.deliver. */
  readonly tagShortstr: Buffer;
  readonly channel: ConsumerChannel;
  readonly queue: QueueMeta;
  readonly noAck: boolean;
  readonly exclusive: boolean;
  /** The consumer timeout of its deliveries (ms, 0 never): the consumer's x-consumer-timeout, else its queue's, else the node's. */
  readonly timeoutMs: number;
}

/** What the front keeps about a queue: identity, placement, owner and consumers — never its messages. */
export interface QueueMeta extends QueueIdentity {
  /** Where the queue lives: a local shard or the node that leads it (changes when its leader moves). */
  shard: QueueLink;
  /** The declaring connection of an exclusive queue. */
  owner: Connection | undefined;
  readonly consumers: Set<ConsumerRef>;
  /** auto-delete applies only after a queue has had a consumer. */
  hadConsumer: boolean;
  config: QueueConfig;
  deleted: boolean;
}
