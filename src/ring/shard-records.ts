/**
 * The records that cross the rings between the front (main thread) and a shard worker.
 *
 * Every record is `[u8 kind][body]` as the ring frames it; bodies are little-endian and
 * built with RecordWriter. Messages travel as one opaque "message payload" that the
 * front builds once at publish time and gets back unchanged on delivery, so neither side
 * re-encodes properties or bodies on the hot path:
 *
 *   message payload
 *   +-----------+----------+-----------+----------+---------------+-------------+-------+
 *   | u8 exLen  | exchange | u8 rkLen  | rout.key | u32 propsLen  | properties  | body  |
 *   +-----------+----------+-----------+----------+---------------+-------------+-------+
 *   (exchange and routing key are the two AMQP shortstrs that basic.deliver / get-ok /
 *    return carry verbatim; properties are the content header's flags + property list)
 *
 * Ids: queueId, consumerId and channelKey are u32 assigned by the front; msgId is a
 * per-shard safe integer assigned by the shard; reqId correlates a request with its reply.
 */

/** front → shard */
export const ToShard = {
  queueCreate: 1,
  queueDelete: 2,
  queuePurge: 3,
  queueStat: 4,
  publish: 5,
  consume: 6,
  cancel: 7,
  ack: 8,
  nack: 9,
  get: 10,
  channelFlow: 11,
  channelQos: 12,
  queueUpdate: 13,
  queueStats: 14,
  shutdown: 15,
  /** The front has re-created every durable queue: what the log still holds for others can go. */
  recoveryDone: 16,
  latency: 17,
  /** Global channel credit was freed on some shard: channel's queues may deliver again. */
  channelKick: 18,
  /** [u32 queueId] the queue leaves the shard with nothing logged: this node stopped leading it (cluster). */
  queueDrop: 19,
} as const;

/** shard → front */
export const FromShard = {
  deliver: 32,
  getOk: 33,
  getEmpty: 34,
  reply: 35,
  confirms: 36,
  queueExpired: 37,
  deadLetter: 38,
  consumerCancelled: 39,
  queueStats: 40,
  error: 41,
  ready: 42,
  closed: 43,
  latency: 44,
} as const;

/** Flags carried by a publish record. */
export const PublishFlag = {
  /** The publisher's channel is in confirm mode: the shard reports the outcome. */
  confirm: 1,
  /** A transaction commit: confirm once every queue in the record has the message. */
  mandatoryRouted: 2,
} as const;

/** Why a message left a queue without being acknowledged (x-death reason). */
export const DeadLetterReason = { rejected: 1, expired: 2, maxlen: 3, deliveryLimit: 4 } as const;
export const deadLetterReasonName: Record<number, string> = {
  1: 'rejected',
  2: 'expired',
  3: 'maxlen',
  4: 'delivery_limit',
};

/** Offsets within a message payload. */
export interface PayloadLayout {
  /** End of the exchange+routing-key shortstr pair (= start of u32 propsLen). */
  exRkEnd: number;
  propsStart: number;
  propsEnd: number;
}

export function payloadLayout(payload: Buffer): PayloadLayout {
  const exLen = payload[0] ?? 0;
  const rkLen = payload[1 + exLen] ?? 0;
  const exRkEnd = 2 + exLen + rkLen;
  const propsLen = payload.readUInt32LE(exRkEnd);
  const propsStart = exRkEnd + 4;
  return { exRkEnd, propsStart, propsEnd: propsStart + propsLen };
}

export function payloadExchange(payload: Buffer): string {
  const exLen = payload[0] ?? 0;
  return payload.toString('utf8', 1, 1 + exLen);
}

export function payloadRoutingKey(payload: Buffer): string {
  const exLen = payload[0] ?? 0;
  const rkLen = payload[1 + exLen] ?? 0;
  return payload.toString('utf8', 2 + exLen, 2 + exLen + rkLen);
}

/** Builds a payload from its parts (used off the hot path: dead-lettering, mgmt publish). */
export function buildPayload(exchange: string, routingKey: string, props: Uint8Array, body: Uint8Array): Buffer {
  const ex = Buffer.from(exchange);
  const rk = Buffer.from(routingKey);
  const out = Buffer.allocUnsafe(2 + ex.length + rk.length + 4 + props.length + body.length);
  let p = 0;
  out[p++] = ex.length;
  ex.copy(out, p);
  p += ex.length;
  out[p++] = rk.length;
  rk.copy(out, p);
  p += rk.length;
  out.writeUInt32LE(props.length, p);
  p += 4;
  out.set(props, p);
  p += props.length;
  out.set(body, p);
  return out;
}
