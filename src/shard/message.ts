/** One message as a shard holds it: the payload bytes the front built, plus queue bookkeeping. */
export interface Message {
  /** Per-shard monotonic id: queue order is id order, and requeued messages go back to their place by it. */
  readonly id: number;
  /** exchange+routing key, properties and body, exactly as the front encoded them (see ring/shard-records.ts). */
  payload: Buffer;
  /** Body size in bytes (x-max-length-bytes counts bodies, as RabbitMQ does). */
  readonly bodyBytes: number;
  redelivered: boolean;
  /** How many times it was handed to a consumer or basic.get. */
  deliveryCount: number;
  readonly priority: number;
  readonly persistent: boolean;
  /** Absolute expiry in ms (Date.now() clock), or 0 when it never expires. */
  expiresAtMs: number;
  /** Written to the shard log (a persistent message in a durable queue): its settle must be logged too. */
  persisted: boolean;
  /** When the queue accepted it (performance.now() ms), for enqueue→deliver latency. */
  readonly enqueuedAtMs: number;
}
