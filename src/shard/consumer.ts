/** A consumer as its queue's shard sees it, and the per-channel state that limits it. */
export interface ShardChannel {
  readonly key: number;
  /** channel.flow / socket backpressure: false stops deliveries to this channel's consumers. */
  flowActive: boolean;
  /** basic.qos with global=true (RabbitMQ reads it as a per-channel limit); 0 = unlimited. */
  globalPrefetch: number;
  /** Unacked deliveries of this channel's ack-mode consumers on this shard. */
  unacked: number;
  consumers: number;
}

export interface Consumer {
  readonly id: number;
  readonly queueId: number;
  readonly channel: ShardChannel;
  /** The consumer tag as an AMQP shortstr (length octet included), echoed in every basic.deliver. */
  readonly tag: Buffer;
  /** Per-consumer prefetch (basic.qos global=false at consume time); 0 = unlimited. */
  readonly prefetch: number;
  readonly noAck: boolean;
  /** x-priority consumer argument. */
  readonly priority: number;
  unacked: number;
}

export function hasCredit(c: Consumer): boolean {
  const ch = c.channel;
  if (!ch.flowActive) return false;
  if (c.noAck) return true;
  if (c.prefetch !== 0 && c.unacked >= c.prefetch) return false;
  return ch.globalPrefetch === 0 || ch.unacked < ch.globalPrefetch;
}
