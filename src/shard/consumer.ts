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
  /**
   * basic.qos global=true is one limit for the whole channel, but the channel's queues may
   * live on several shards: the limit and the channel's unacked count then sit in a shared
   * credit table slot (see creditTable below) that every shard updates atomically. -1: none.
   */
  creditSlot: number;
}

/** Shared by the front and every shard: per slot [limit, unacked] as Int32 pairs. */
export const creditTableSlots = 65536;
let creditTable: Int32Array = new Int32Array(2 * creditTableSlots);

export function setCreditTable(t: Int32Array): void {
  creditTable = t;
}

/** Takes one unit of the channel's global credit; false when the channel is at its limit. */
export function acquireChannelCredit(ch: ShardChannel): boolean {
  if (ch.creditSlot < 0) return true;
  const limitAt = 2 * ch.creditSlot;
  for (;;) {
    const limit = Atomics.load(creditTable, limitAt);
    const cur = Atomics.load(creditTable, limitAt + 1);
    if (limit > 0 && cur >= limit) return false;
    if (Atomics.compareExchange(creditTable, limitAt + 1, cur, cur + 1) === cur) return true;
  }
}

export function releaseChannelCredit(ch: ShardChannel): void {
  if (ch.creditSlot >= 0) Atomics.sub(creditTable, 2 * ch.creditSlot + 1, 1);
}

function channelCreditLeft(ch: ShardChannel): boolean {
  const limit = Atomics.load(creditTable, 2 * ch.creditSlot);
  return limit === 0 || Atomics.load(creditTable, 2 * ch.creditSlot + 1) < limit;
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
  if (ch.creditSlot >= 0) return channelCreditLeft(ch);
  return ch.globalPrefetch === 0 || ch.unacked < ch.globalPrefetch;
}
