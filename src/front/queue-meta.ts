import type { QueueConfig } from '../shard/queue-config.js';
import type { QueueIdentity } from './queue-args.js';
import type { ShardLink } from './shard-link.js';
import type { Channel } from './channel.js';
import type { Connection } from './connection.js';

/** A consumer as the front knows it: where its deliveries go. */
export interface ConsumerRef {
  readonly id: number;
  readonly tag: string;
  /** The tag as an AMQP shortstr, written verbatim into every basic.deliver. */
  readonly tagShortstr: Buffer;
  readonly channel: Channel;
  readonly queue: QueueMeta;
  readonly noAck: boolean;
  readonly exclusive: boolean;
}

/** What the front keeps about a queue: identity, placement, owner and consumers — never its messages. */
export interface QueueMeta extends QueueIdentity {
  readonly shard: ShardLink;
  /** The declaring connection of an exclusive queue. */
  owner: Connection | undefined;
  readonly consumers: Set<ConsumerRef>;
  /** auto-delete applies only after a queue has had a consumer. */
  hadConsumer: boolean;
  config: QueueConfig;
  deleted: boolean;
}
