/**
 * Priority queues (x-max-priority): higher priority first, FIFO within a priority, a priority
 * above the maximum counts as the maximum, no priority counts as 0; a queue without
 * x-max-priority ignores the property.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { bodies, consumeInto, drain, publishConfirmed, unique } from '../helpers/feature-kit.js';

describe('priority queues', () => {
  let broker: TestBroker;
  let conn: amqp.ChannelModel;
  before(async () => {
    broker = await startBroker();
    conn = await amqp.connect(broker.url);
  });
  after(async () => {
    await conn.close();
    assert.equal(await broker.stop(), 0);
  });

  const published: [string, number | undefined][] = [
    ['p1', 1],
    ['p5-a', 5],
    ['none-a', undefined],
    ['p10', 10],
    ['p5-b', 5],
    ['p0', 0],
    ['p200', 200],
    ['none-b', undefined],
  ];

  test('higher priority first, FIFO within a priority, above the maximum counts as the maximum', async () => {
    const ch = await conn.createConfirmChannel();
    const q = unique('prio');
    await ch.assertQueue(q, { exclusive: true, maxPriority: 10 });
    for (const [body, priority] of published) await publishConfirmed(ch, '', q, body, priority === undefined ? {} : { priority });
    assert.deepEqual(bodies(await drain(ch, q)), ['p10', 'p200', 'p5-a', 'p5-b', 'p1', 'none-a', 'p0', 'none-b']);
    await ch.close();
  });

  test('a consumer that arrives later gets the same order', async () => {
    const ch = await conn.createConfirmChannel();
    const q = unique('prio-consume');
    await ch.assertQueue(q, { exclusive: true, maxPriority: 10 });
    for (const [body, priority] of published) await publishConfirmed(ch, '', q, body, priority === undefined ? {} : { priority });
    const { inbox } = await consumeInto(ch, q);
    await inbox.atLeast(published.length);
    assert.deepEqual(bodies(inbox.items), ['p10', 'p200', 'p5-a', 'p5-b', 'p1', 'none-a', 'p0', 'none-b']);
    await ch.close();
  });

  test('a requeued message goes back to its place within its priority', async () => {
    const ch = await conn.createConfirmChannel();
    const q = unique('prio-requeue');
    await ch.assertQueue(q, { exclusive: true, maxPriority: 5 });
    await publishConfirmed(ch, '', q, 'hi-1', { priority: 5 });
    await publishConfirmed(ch, '', q, 'hi-2', { priority: 5 });
    await publishConfirmed(ch, '', q, 'lo', { priority: 1 });
    const first = await ch.get(q, { noAck: false });
    assert.ok(first !== false && first.content.toString() === 'hi-1');
    ch.nack(first, false, true);
    assert.deepEqual(bodies(await drain(ch, q)), ['hi-1', 'hi-2', 'lo']);
    await ch.close();
  });

  test('without x-max-priority the priority property is ignored (FIFO)', async () => {
    const ch = await conn.createConfirmChannel();
    const q = unique('no-prio');
    await ch.assertQueue(q, { exclusive: true });
    for (const [body, priority] of published) await publishConfirmed(ch, '', q, body, priority === undefined ? {} : { priority });
    assert.deepEqual(bodies(await drain(ch, q)), published.map(([b]) => b));
    await ch.close();
  });
});
