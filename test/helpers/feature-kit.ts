/**
 * Small helpers for the queue-feature tests: consuming into an Inbox, draining a queue with
 * basic.get, reading the x-death header amqplib decoded, and publishing with confirms.
 */
import type { Channel, ConfirmChannel, ConsumeMessage, GetMessage, MessageProperties, Options } from 'amqplib';
import { Inbox, within } from './amqp-expect.js';

/** Consumes a queue (no-ack unless told) into an Inbox of messages. */
export async function consumeInto(ch: Channel, queue: string, opts: Options.Consume = { noAck: true }): Promise<{ inbox: Inbox<ConsumeMessage>; tag: string }> {
  const inbox = new Inbox<ConsumeMessage>();
  const { consumerTag } = await ch.consume(queue, (m) => {
    if (m !== null) inbox.push(m);
  }, opts);
  return { inbox, tag: consumerTag };
}

/** Every message basic.get returns until the queue answers get-empty (no-ack). */
export async function drain(ch: Channel, queue: string): Promise<GetMessage[]> {
  const out: GetMessage[] = [];
  for (;;) {
    const m = await ch.get(queue, { noAck: true });
    if (m === false) return out;
    out.push(m);
  }
}

export function bodies(msgs: readonly { content: Buffer }[]): string[] {
  return msgs.map((m) => m.content.toString());
}

/** Publishes on a confirm channel and resolves with the broker's verdict: 'ack' or 'nack'. */
export function publishConfirmed(ch: ConfirmChannel, exchange: string, routingKey: string, body: string, opts: Options.Publish = {}): Promise<'ack' | 'nack'> {
  return within(
    new Promise((resolve) => {
      ch.publish(exchange, routingKey, Buffer.from(body), opts, (err) => resolve(err === null || err === undefined ? 'ack' : 'nack'));
    }),
    `the confirm of '${body}'`,
  );
}

export interface Death {
  count: unknown;
  reason: unknown;
  queue: unknown;
  exchange: unknown;
  'routing-keys': unknown;
  time: unknown;
  'original-expiration'?: unknown;
}

/** The x-death entries of a message, as amqplib decoded them (most recent first). */
export function deaths(m: { properties: MessageProperties }): Death[] {
  const d: unknown = m.properties.headers?.['x-death'];
  if (!Array.isArray(d)) throw new Error(`no x-death header in ${JSON.stringify(m.properties.headers)}`);
  return d as Death[];
}

/** An AMQP timestamp as amqplib decodes it. */
export function timestampSeconds(v: unknown): number {
  const t = v as { '!'?: unknown; value?: unknown };
  if (t?.['!'] !== 'timestamp' || typeof t.value !== 'number') throw new Error(`not a timestamp: ${JSON.stringify(v)}`);
  return t.value;
}

/** A unique name per test run, so tests on one broker never share queues by accident. */
let counter = 0;
export function unique(prefix: string): string {
  counter++;
  return `${prefix}-${process.pid}-${counter}`;
}
