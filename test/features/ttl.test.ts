/**
 * Message TTL (x-message-ttl, the expiration property), TTL 0, and queue expiry (x-expires),
 * as RabbitMQ's classic queues behave: expired messages are never delivered and leave from
 * the head of the queue only; a TTL-0 message reaches a consumer only if one can take it at
 * once; an unused queue with x-expires is deleted.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { startBroker, waitFor, type TestBroker } from '../helpers/broker.js';
import { within } from '../helpers/amqp-expect.js';
import { bodies, consumeInto, deaths, drain, publishConfirmed, unique } from '../helpers/feature-kit.js';
import { queueCounts } from '../helpers/warrenctl.js';

describe('message TTL and queue expiry', () => {
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

  /** A queue bound to a fresh fanout DLX, collecting what is dead-lettered to it. */
  async function deadLetterSink(ch: amqp.Channel): Promise<{ dlx: string; inbox: Awaited<ReturnType<typeof consumeInto>>['inbox'] }> {
    const dlx = unique('ttl-dlx');
    await ch.assertExchange(dlx, 'fanout', { autoDelete: false });
    const { queue } = await ch.assertQueue('', { exclusive: true });
    await ch.bindQueue(queue, dlx, '');
    const { inbox } = await consumeInto(ch, queue);
    return { dlx, inbox };
  }

  test('x-message-ttl: an expired message is never delivered; without a DLX it is dropped', async () => {
    const ch = await conn.createConfirmChannel();
    const q = unique('ttl-queue');
    await ch.assertQueue(q, { exclusive: true, arguments: { 'x-message-ttl': 50 } });
    assert.equal(await publishConfirmed(ch, '', q, 'old'), 'ack');
    // The node drops it at the head once its TTL is over, with nobody consuming.
    await waitFor(async () => (await queueCounts(broker.dataDir, q))?.messages === 0, 'the expired message to be dropped');
    // A consumer that arrives afterwards sees only what comes next (handed to it at once,
    // well inside the TTL however slow this machine is).
    const { inbox } = await consumeInto(ch, q);
    assert.equal(await publishConfirmed(ch, '', q, 'new'), 'ack');
    await inbox.atLeast(1);
    assert.deepEqual(bodies(inbox.items), ['new']);
    await ch.close();
  });

  test('per-message expiration: the expired message is dead-lettered as expired, the others stay', async () => {
    const ch = await conn.createConfirmChannel();
    const { dlx, inbox } = await deadLetterSink(ch);
    const q = unique('exp-queue');
    await ch.assertQueue(q, { exclusive: true, deadLetterExchange: dlx });
    await publishConfirmed(ch, '', q, 'short', { expiration: '30' });
    await publishConfirmed(ch, '', q, 'forever');
    const [dead] = await inbox.atLeast(1, 'the expired message at the DLX');
    assert.ok(dead !== undefined);
    assert.equal(dead.content.toString(), 'short');
    assert.equal(deaths(dead)[0]?.reason, 'expired');
    assert.equal(deaths(dead)[0]?.['original-expiration'], '30');
    // The copy does not carry the expiration any more (it would expire again).
    assert.equal(dead.properties.expiration, undefined);
    assert.deepEqual(bodies(await drain(ch, q)), ['forever']);
    await ch.close();
  });

  test('expired messages leave from the head only: one behind a live message waits until it is the head', async () => {
    const ch = await conn.createConfirmChannel();
    const { dlx, inbox } = await deadLetterSink(ch);
    const q = unique('head-queue');
    await ch.assertQueue(q, { exclusive: true, deadLetterExchange: dlx });
    await publishConfirmed(ch, '', q, 'head');
    await publishConfirmed(ch, '', q, 'behind', { expiration: '10' });
    // A marker that dead-letters well after 'behind' expired: had 'behind' been dropped out
    // of the middle of the queue, it would reach the DLX long before the marker.
    const marker = unique('marker-queue');
    await ch.assertQueue(marker, { exclusive: true, deadLetterExchange: dlx, messageTtl: 300 });
    await publishConfirmed(ch, '', marker, 'marker');
    await inbox.atLeast(1, 'the marker at the DLX');
    assert.deepEqual(bodies(inbox.items), ['marker']);
    // Taking the head makes the expired message the head: now it goes.
    const head = await ch.get(q, { noAck: true });
    assert.ok(head !== false && head.content.toString() === 'head');
    await inbox.atLeast(2, 'the expired message once it reached the head');
    assert.deepEqual(bodies(inbox.items), ['marker', 'behind']);
    assert.equal(deaths(inbox.items[1] as amqp.ConsumeMessage)[0]?.reason, 'expired');
    assert.deepEqual(await drain(ch, q), []);
    await ch.close();
  });

  test('TTL 0: delivered when a consumer can take it at once', async () => {
    const ch = await conn.createConfirmChannel();
    const q = unique('ttl0-consumer');
    await ch.assertQueue(q, { exclusive: true, messageTtl: 0 });
    const { inbox } = await consumeInto(ch, q);
    await publishConfirmed(ch, '', q, 'a');
    await publishConfirmed(ch, '', q, 'b', { expiration: '0' });
    await inbox.atLeast(2);
    assert.deepEqual(bodies(inbox.items), ['a', 'b']);
    await ch.close();
  });

  test('TTL 0: expired at once without a consumer, dead-lettered as expired', async () => {
    const ch = await conn.createConfirmChannel();
    const { dlx, inbox } = await deadLetterSink(ch);
    const q = unique('ttl0-none');
    await ch.assertQueue(q, { exclusive: true, messageTtl: 0, deadLetterExchange: dlx });
    await publishConfirmed(ch, '', q, 'x');
    const [dead] = await inbox.atLeast(1, 'the TTL-0 message at the DLX');
    assert.equal(deaths(dead as amqp.ConsumeMessage)[0]?.reason, 'expired');
    assert.deepEqual(await drain(ch, q), []);
    // Per-message expiration 0 on a queue without TTL: the same.
    const q2 = unique('exp0-none');
    await ch.assertQueue(q2, { exclusive: true });
    await publishConfirmed(ch, '', q2, 'y', { expiration: '0' });
    assert.deepEqual(await drain(ch, q2), []);
    await ch.close();
  });

  test('TTL 0: a consumer with no credit left does not save it', async () => {
    const ch = await conn.createConfirmChannel();
    const { dlx, inbox: dead } = await deadLetterSink(ch);
    const q = unique('ttl0-busy');
    await ch.assertQueue(q, { exclusive: true, messageTtl: 0, deadLetterExchange: dlx });
    const consumerCh = await conn.createChannel();
    await consumerCh.prefetch(1);
    const { inbox } = await consumeInto(consumerCh, q, { noAck: false });
    await publishConfirmed(ch, '', q, 'first');
    await inbox.atLeast(1);
    // The consumer holds 'first' unacked: its one credit is used up.
    await publishConfirmed(ch, '', q, 'second');
    const [d] = await dead.atLeast(1, "'second' at the DLX");
    assert.equal((d as amqp.ConsumeMessage).content.toString(), 'second');
    consumerCh.ack(inbox.items[0] as amqp.ConsumeMessage);
    await publishConfirmed(ch, '', q, 'third');
    await inbox.atLeast(2, "'third' once the consumer has credit again");
    assert.deepEqual(bodies(inbox.items), ['first', 'third']);
    await consumerCh.close();
    await ch.close();
  });

  test('x-expires: an unused queue is deleted; one with a consumer is kept', async () => {
    const ch = await conn.createChannel();
    // 'kept' gets a consumer well within its x-expires (a loaded machine may be slow) ...
    const kept = unique('expires-kept');
    await ch.assertQueue(kept, { expires: 1000 });
    await ch.consume(kept, () => {}, { noAck: true });
    // ... and 'gone', declared after that with a longer x-expires, has none.
    const gone = unique('expires-gone');
    await ch.assertQueue(gone, { expires: 1500 });
    // Watch through the admin socket: queue.declare would count as use and renew the lease.
    await waitFor(async () => (await queueCounts(broker.dataDir, gone)) === undefined, 'the unused queue to expire', 10_000);
    // 'kept' has the shorter x-expires and was declared first: only its consumer kept it.
    assert.notEqual(await queueCounts(broker.dataDir, kept), undefined);
    // The deleted queue is gone for clients too.
    const probe = await conn.createChannel();
    const closed = new Promise<unknown>((resolve) => probe.once('error', resolve));
    await assert.rejects(probe.checkQueue(gone), /404/);
    await within(closed, 'the 404 channel close');
    await ch.deleteQueue(kept);
    await ch.close();
  });
});
