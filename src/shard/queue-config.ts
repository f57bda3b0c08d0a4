/**
 * A queue's effective settings, computed by the front from its declare arguments and the
 * policy that applies (the front owns that precedence), and sent to the owning shard on
 * create and whenever a policy change alters them.
 */
export type OverflowMode = 'drop-head' | 'reject-publish' | 'reject-publish-dlx';

export interface QueueConfig {
  queueId: number;
  vhost: string;
  name: string;
  durable: boolean;
  exclusive: boolean;
  autoDelete: boolean;
  /** x-message-ttl: per-queue message TTL in ms. */
  messageTtlMs?: number;
  /** x-expires: delete the queue after this long unused. */
  expiresMs?: number;
  maxLength?: number;
  maxLengthBytes?: number;
  overflow: OverflowMode;
  deadLetterExchange?: string;
  deadLetterRoutingKey?: string;
  /** x-max-priority: 0 means not a priority queue. */
  maxPriority: number;
  singleActiveConsumer: boolean;
  /**
   * Quorum queues: a delivery after a return, and every basic.get, carries x-delivery-count
   * (how many times the message went back), as RabbitMQ's quorum queues write it.
   */
  deliveryCountHeader?: boolean;
  /** Quorum queues' x-delivery-limit (dead-letter after this many redeliveries). */
  deliveryLimit?: number;
  /** Set on the leader's shard of a replicated queue (cluster mode): its log continues at nextOffset. */
  replicated?: { nextOffset: number };
}
