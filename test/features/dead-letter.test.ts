/**
 * Dead-lettering as RabbitMQ does it: rejected, expired and maxlen messages go to the
 * queue's DLX with the x-death header RabbitMQ composes (count, reason, queue, exchange,
 * routing-keys, time; original-expiration), x-first-death-* set once, x-last-death-* on every
 * death, repeats of {queue, reason} counted in one entry moved to the front, the routing
 * key replaced by x-dead-letter-routing-key, and fully automatic cycles dropped.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { Inbox } from '../helpers/amqp-expect.js';
import { bodies, consumeInto, deaths, drain, publishConfirmed, timestampSeconds, unique } from '../helpers/feature-kit.js';

describe('dead-lettering', () => {
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

  /** source exchange → queue q (with DLX = a direct exchange) and a 'dead' queue bound to the DLX with key. */
  async function topology(ch: amqp.Channel, qArgs: amqp.Options.AssertQueue, deadKey: string) {
    const src = unique('dl-src');
    const dlx = unique('dl-dlx');
    const q = unique('dl-q');
    const dead = unique('dl-dead');
    await ch.assertExchange(src, 'direct', { autoDelete: true });
    await ch.assertExchange(dlx, 'direct', { autoDelete: true });
    await ch.assertQueue(q, { exclusive: true, deadLetterExchange: dlx, ...qArgs });
    await ch.bindQueue(q, src, 'k1');
    await ch.assertQueue(dead, { exclusive: true });
    await ch.bindQueue(dead, dlx, deadKey);
    const { inbox } = await consumeInto(ch, dead);
    return { src, dlx, q, dead, inbox };
  }

  test('a rejected message carries x-death, x-first-death-* and x-last-death-* as RabbitMQ writes them', async () => {
    const ch = await conn.createConfirmChannel();
    const t = await topology(ch, {}, 'k1');
    const beforeS = Math.floor(Date.now() / 1000);
    assert.equal(await publishConfirmed(ch, t.src, 'k1', 'payload', { headers: { app: 'kept' }, messageId: 'm-1' }), 'ack');
    const consumer = await conn.createChannel();
    const { inbox } = await consumeInto(consumer, t.q, { noAck: false });
    const [m] = await inbox.atLeast(1);
    consumer.reject(m as amqp.ConsumeMessage, false);
    const [d] = await t.inbox.atLeast(1, 'the rejected message at the dead queue');
    const dead = d as amqp.ConsumeMessage;
    const afterS = Math.ceil(Date.now() / 1000);
    assert.equal(dead.content.toString(), 'payload');
    // Delivered from the DLX with the original routing key.
    assert.equal(dead.fields.exchange, t.dlx);
    assert.equal(dead.fields.routingKey, 'k1');
    assert.equal(dead.properties.messageId, 'm-1');
    const h = dead.properties.headers ?? {};
    assert.equal(h['app'], 'kept');
    const [entry, ...rest] = deaths(dead);
    assert.equal(rest.length, 0);
    assert.ok(entry !== undefined);
    assert.deepEqual(
      { count: entry.count, reason: entry.reason, queue: entry.queue, exchange: entry.exchange, 'routing-keys': entry['routing-keys'] },
      { count: 1, reason: 'rejected', queue: t.q, exchange: t.src, 'routing-keys': ['k1'] },
    );
    const time = timestampSeconds(entry.time);
    assert.ok(time >= beforeS && time <= afterS, `x-death time ${time} within [${beforeS}, ${afterS}]`);
    assert.equal(entry['original-expiration'], undefined);
    assert.deepEqual(
      [h['x-first-death-reason'], h['x-first-death-queue'], h['x-first-death-exchange']],
      ['rejected', t.q, t.src],
    );
    assert.deepEqual([h['x-last-death-reason'], h['x-last-death-queue'], h['x-last-death-exchange']], ['rejected', t.q, t.src]);
    await consumer.close();
    await ch.close();
  });

  test('nack with requeue=false dead-letters too; requeue=true does not', async () => {
    const ch = await conn.createConfirmChannel();
    const t = await topology(ch, {}, 'k1');
    await publishConfirmed(ch, t.src, 'k1', 'n');
    const consumer = await conn.createChannel();
    const { inbox } = await consumeInto(consumer, t.q, { noAck: false });
    await inbox.atLeast(1);
    consumer.nack(inbox.items[0] as amqp.ConsumeMessage, false, true);
    await inbox.atLeast(2, 'the requeued redelivery');
    assert.equal(inbox.items[1]?.fields.redelivered, true);
    assert.equal(t.inbox.items.length, 0);
    consumer.nack(inbox.items[1] as amqp.ConsumeMessage, false, false);
    const [d] = await t.inbox.atLeast(1);
    assert.equal(deaths(d as amqp.ConsumeMessage)[0]?.reason, 'rejected');
    await consumer.close();
    await ch.close();
  });

  test('expired: original-expiration holds the per-message TTL and the copy has no expiration', async () => {
    const ch = await conn.createConfirmChannel();
    const t = await topology(ch, {}, 'k1');
    await publishConfirmed(ch, t.src, 'k1', 'short-lived', { expiration: '25' });
    const [d] = await t.inbox.atLeast(1);
    const dead = d as amqp.ConsumeMessage;
    assert.equal(dead.properties.expiration, undefined);
    const [entry] = deaths(dead);
    assert.equal(entry?.reason, 'expired');
    assert.equal(entry?.['original-expiration'], '25');
    assert.equal(entry?.count, 1);
    assert.equal(dead.properties.headers?.['x-first-death-reason'], 'expired');
    await ch.close();
  });

  test('a queue TTL (x-message-ttl) expiry is dead-lettered without original-expiration', async () => {
    const ch = await conn.createConfirmChannel();
    const t = await topology(ch, { messageTtl: 20 }, 'k1');
    await publishConfirmed(ch, t.src, 'k1', 'queue-ttl');
    const [d] = await t.inbox.atLeast(1);
    const [entry] = deaths(d as amqp.ConsumeMessage);
    assert.equal(entry?.reason, 'expired');
    assert.equal(entry?.['original-expiration'], undefined);
    await ch.close();
  });

  test('maxlen: drop-head dead-letters the oldest with reason maxlen', async () => {
    const ch = await conn.createConfirmChannel();
    const t = await topology(ch, { maxLength: 1 }, 'k1');
    await publishConfirmed(ch, t.src, 'k1', 'first');
    await publishConfirmed(ch, t.src, 'k1', 'second');
    const [d] = await t.inbox.atLeast(1);
    assert.equal((d as amqp.ConsumeMessage).content.toString(), 'first');
    assert.equal(deaths(d as amqp.ConsumeMessage)[0]?.reason, 'maxlen');
    assert.deepEqual(bodies(await drain(ch, t.q)), ['second']);
    await ch.close();
  });

  test('x-dead-letter-routing-key replaces the routing key; CC keys are recorded in routing-keys', async () => {
    const ch = await conn.createConfirmChannel();
    const t = await topology(ch, { deadLetterRoutingKey: 'to-dead' }, 'to-dead');
    await ch.bindQueue(t.q, t.src, 'cc-key');
    await publishConfirmed(ch, t.src, 'k1', 'with-cc', { expiration: '5', CC: ['cc-key'] });
    const [d] = await t.inbox.atLeast(1);
    const dead = d as amqp.ConsumeMessage;
    assert.equal(dead.fields.routingKey, 'to-dead');
    const [entry] = deaths(dead);
    assert.deepEqual(entry?.['routing-keys'], ['k1', 'cc-key']);
    await ch.close();
  });

  test('repeated deaths: one entry per {queue, reason}, counted, most recent first; first-death kept, last-death updated', async () => {
    const ch = await conn.createConfirmChannel();
    // work → (rejected) → retry (TTL 10) → (expired) → work, via the default exchange.
    const work = unique('dl-work');
    const retry = unique('dl-retry');
    await ch.assertQueue(work, { exclusive: true, deadLetterExchange: '', deadLetterRoutingKey: retry });
    await ch.assertQueue(retry, { exclusive: true, deadLetterExchange: '', deadLetterRoutingKey: work, messageTtl: 10 });
    const consumer = await conn.createChannel();
    const seen = new Inbox<amqp.ConsumeMessage>();
    await consumer.consume(work, (m) => {
      if (m === null) return;
      seen.push(m);
      // Rejected three times (so the loop is not automatic), then acked.
      if (seen.items.length <= 3) consumer.reject(m, false);
      else consumer.ack(m);
    });
    await publishConfirmed(ch, '', work, 'job');
    await seen.atLeast(4, 'the fourth delivery after three retries', 10_000);
    const last = seen.items[3] as amqp.ConsumeMessage;
    const d = deaths(last);
    assert.deepEqual(
      d.map((e) => [e.queue, e.reason, e.count, e.exchange, e['routing-keys']]),
      [
        [retry, 'expired', 3, '', [retry]],
        [work, 'rejected', 3, '', [work]],
      ],
    );
    const h = last.properties.headers ?? {};
    assert.deepEqual([h['x-first-death-reason'], h['x-first-death-queue'], h['x-first-death-exchange']], ['rejected', work, '']);
    assert.deepEqual([h['x-last-death-reason'], h['x-last-death-queue'], h['x-last-death-exchange']], ['expired', retry, '']);
    // The entry's time is that of the first such death (RabbitMQ keeps it when counting).
    const firstWork = deaths(seen.items[1] as amqp.ConsumeMessage).find((e) => e.queue === work);
    assert.deepEqual(d.find((e) => e.queue === work)?.time, firstWork?.time);
    await consumer.close();
    await ch.close();
  });

  test('a fully automatic cycle (expired back into the same queue) is dropped; other targets still get it', async () => {
    const ch = await conn.createConfirmChannel();
    const fan = unique('dl-cycle-fan');
    const loop = unique('dl-loop');
    const observer = unique('dl-observer');
    await ch.assertExchange(fan, 'fanout', { autoDelete: true });
    await ch.assertQueue(loop, { exclusive: true, deadLetterExchange: fan, messageTtl: 10 });
    await ch.assertQueue(observer, { exclusive: true });
    await ch.bindQueue(loop, fan, '');
    await ch.bindQueue(observer, fan, '');
    const { inbox } = await consumeInto(ch, observer);
    await publishConfirmed(ch, '', loop, 'cycling');
    const [d] = await inbox.atLeast(1);
    assert.deepEqual(
      deaths(d as amqp.ConsumeMessage).map((e) => [e.queue, e.reason, e.count]),
      [[loop, 'expired', 1]],
    );
    // The copy for 'loop' itself was dropped in the same routing step that fed the observer.
    const { messageCount } = await ch.checkQueue(loop);
    assert.equal(messageCount, 0);
    await ch.close();
  });

  test('a dead letter to an exchange that does not exist is dropped', async () => {
    const ch = await conn.createConfirmChannel();
    const q = unique('dl-nowhere');
    await ch.assertQueue(q, { exclusive: true, deadLetterExchange: unique('missing-exchange') });
    await publishConfirmed(ch, '', q, 'lost', { expiration: '0' });
    assert.deepEqual(await drain(ch, q), []);
    await ch.close();
  });
});
