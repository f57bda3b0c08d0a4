/**
 * Dead-lettering: the message as it leaves its queue for the dead-letter exchange, with the
 * `x-death` header composed as RabbitMQ composes it — one entry per {queue, reason}, most
 * recent first, whose count grows when the pair repeats; `x-first-death-*` set once and
 * `x-last-death-*` on every death; the per-message expiration moved into the entry as
 * `original-expiration` so the copy does not expire again.
 */
import { peekExpiration, peekHeaders, withHeaders, withoutExpiration } from '../amqp/content-header.js';
import type { FieldTable, FieldValue } from '../amqp/field-table.js';
import { buildPayload, deadLetterReasonName, payloadExchange, payloadLayout, payloadRoutingKey } from '../ring/shard-records.js';
import type { QueueConfig } from './queue-config.js';

const longstr = (value: string): FieldValue => ({ type: 'S', value });

/** Returns the new message payload: exchange = the DLX, routing key = x-dead-letter-routing-key or the original. */
export function composeDeadLetter(payload: Buffer, queue: QueueConfig, reason: number, nowMs: number): Buffer {
  const layout = payloadLayout(payload);
  let props = payload.subarray(layout.propsStart, layout.propsEnd);
  const body = payload.subarray(layout.propsEnd);
  const exchange = payloadExchange(payload);
  const routingKey = payloadRoutingKey(payload);
  const reasonName = deadLetterReasonName[reason] ?? 'rejected';
  const headers: FieldTable = Object.assign(Object.create(null) as FieldTable, peekHeaders(props) ?? {});

  const routingKeys: FieldValue[] = [longstr(routingKey)];
  const cc = headers['CC'];
  if (cc?.type === 'A') for (const k of cc.value) if (k.type === 'S') routingKeys.push(k);
  delete headers['BCC'];

  const entry: FieldTable = Object.create(null) as FieldTable;
  entry['count'] = { type: 'l', value: 1 };
  entry['reason'] = longstr(reasonName);
  entry['queue'] = longstr(queue.name);
  entry['time'] = { type: 'T', value: Math.floor(nowMs / 1000) };
  entry['exchange'] = longstr(exchange);
  entry['routing-keys'] = { type: 'A', value: routingKeys };
  const expiration = peekExpiration(props);
  if (expiration !== undefined) {
    entry['original-expiration'] = longstr(expiration);
    props = withoutExpiration(props);
  }

  // A repeat of {queue, reason} moves that entry to the head with count + 1; its time,
  // exchange and routing keys stay those of the first such death (RabbitMQ 3.12+).
  let head: FieldTable = entry;
  const deaths: FieldValue[] = [];
  const prior = headers['x-death'];
  if (prior?.type === 'A') {
    for (const d of prior.value) {
      if (d.type === 'F' && sameDeath(d.value, queue.name, reasonName)) {
        const count = d.value['count'];
        const n = count !== undefined && (count.type === 'l' || count.type === 'I' || count.type === 'i') ? Number(count.value) : 1;
        head = Object.assign(Object.create(null) as FieldTable, d.value, { count: { type: 'l', value: n + 1 } });
      } else {
        deaths.push(d);
      }
    }
  }
  headers['x-death'] = { type: 'A', value: [{ type: 'F', value: head }, ...deaths] };
  // rabbit_dead_letter sets x-first-death-* on a message with no x-death array yet, and only then
  // (an x-death a publisher wrote counts).
  if (prior?.type !== 'A') {
    headers['x-first-death-reason'] = longstr(reasonName);
    headers['x-first-death-queue'] = longstr(queue.name);
    headers['x-first-death-exchange'] = longstr(exchange);
  }
  headers['x-last-death-reason'] = longstr(reasonName);
  headers['x-last-death-queue'] = longstr(queue.name);
  headers['x-last-death-exchange'] = longstr(exchange);

  const newProps = withHeaders(props, headers);
  const dlx = queue.deadLetterExchange ?? '';
  return buildPayload(dlx, queue.deadLetterRoutingKey ?? routingKey, newProps, body);
}

function sameDeath(t: FieldTable, queueName: string, reasonName: string): boolean {
  const q = t['queue'];
  const r = t['reason'];
  return q?.type === 'S' && q.value === queueName && r?.type === 'S' && r.value === reasonName;
}

/**
 * Whether routing a dead letter (its x-death already records the death that sends it) to
 * targetQueue closes a fully automatic cycle, which RabbitMQ drops (mc:is_death_cycle, v2):
 * the deaths newer than the target queue's most recent one, and that one, are all other
 * than `rejected`. A rejection anywhere in the cycle means a consumer decided, so it stays.
 */
export function isDeathCycle(headers: FieldTable | undefined, targetQueue: string): boolean {
  const deaths = headers?.['x-death'];
  if (deaths?.type !== 'A') return false;
  for (const d of deaths.value) {
    // Anything but a table was put there by a client: not a cycle RabbitMQ made.
    if (d.type !== 'F') return false;
    const reason = d.value['reason'];
    if (reason?.type === 'S' && reason.value === 'rejected') return false;
    const q = d.value['queue'];
    if (q?.type === 'S' && q.value === targetQueue) return true;
  }
  return false;
}
