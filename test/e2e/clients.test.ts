/**
 * The core flows — declare, bind, publish with confirms, consume, ack, get, cancel — with
 * rabbitmq-client and @cloudamqp/amqp-client, and messages crossing between the three clients.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { AMQPClient, type AMQPMessage } from '@cloudamqp/amqp-client';
import { Connection as RabbitConnection, ConsumerStatus, type AsyncMessage, type Channel as RabbitChannel, type SyncMessage } from 'rabbitmq-client';
import type { TestBroker } from '../helpers/broker.js';
import { Inbox, eventDeadlineMs, getOne, startE2eBroker, within } from '../helpers/amqp-expect.js';

describe('other clients', () => {
  let broker: TestBroker;
  let rc: RabbitConnection;
  let cloud: AMQPClient;
  before(async () => {
    broker = await startE2eBroker();
    rc = new RabbitConnection({ url: broker.url, retryLow: 50, retryHigh: 200, connectionTimeout: 5_000 });
    await within(rc.onConnect(5_000), 'rabbitmq-client connection');
    cloud = new AMQPClient(broker.url);
    await cloud.connect();
  });
  after(async () => {
    await cloud.close();
    await rc.close();
    assert.equal(await broker.stop(), 0);
  });

  describe('rabbitmq-client', () => {
    test('declare, bind, publish with confirms, consume with acks', async () => {
      const queue = 'cl.rc.orders';
      const pub = rc.createPublisher({
        confirm: true,
        exchanges: [{ exchange: 'cl.rc.ex', type: 'topic', durable: false }],
        queues: [{ queue, durable: false }],
        queueBindings: [{ exchange: 'cl.rc.ex', queue, routingKey: 'order.*' }],
      });
      for (let i = 0; i < 20; i++) await pub.send({ exchange: 'cl.rc.ex', routingKey: 'order.new', messageId: `o${i}` }, { n: i });
      await pub.send({ exchange: 'cl.rc.ex', routingKey: 'invoice.new' }, { n: -1 }); // unrouted, still confirmed
      const inbox = new Inbox<AsyncMessage>();
      const sub = rc.createConsumer({ queue, queueOptions: { durable: false }, qos: { prefetchCount: 5 } }, (msg) => {
        inbox.push(msg);
        return ConsumerStatus.ACK;
      });
      const got = await inbox.atLeast(20);
      assert.deepEqual(got.map((m) => (m.body as { n: number }).n), Array.from({ length: 20 }, (_, i) => i));
      assert.equal(got[0]?.messageId, 'o0');
      assert.equal(got[0]?.routingKey, 'order.new');
      await sub.close();
      await pub.close();
      const ch = await rc.acquire();
      const ok = await ch.queueDeclare({ queue, passive: true });
      assert.deepEqual([ok.messageCount, ok.consumerCount], [0, 0], 'everything acked, consumer gone');
      await ch.queueDelete({ queue });
      await ch.exchangeDelete({ exchange: 'cl.rc.ex' });
      await ch.close();
    });

    test('get, nack with requeue, and the reply codes it reports', async () => {
      const ch = await rc.acquire();
      const { queue } = await ch.queueDeclare({ exclusive: true });
      assert.match(queue, /^amq\.gen-/);
      await ch.basicPublish({ routingKey: queue }, 'hello');
      const m = await rcGet(ch, queue, false);
      assert.equal(m.body, 'hello');
      assert.equal(m.redelivered, false);
      ch.basicNack({ deliveryTag: m.deliveryTag, requeue: true });
      const again = await ch.basicGet({ queue, noAck: true });
      assert.ok(again !== undefined);
      assert.equal(again.redelivered, true);
      await assert.rejects(ch.queueDeclare({ queue: 'cl.rc.missing', passive: true }), (err: { code?: string }) => err.code === 'NOT_FOUND');
      // A connection error (503) on a connection of its own: rabbitmq-client reports it and reconnects.
      const rc2 = new RabbitConnection({ url: broker.url, retryLow: 50, retryHigh: 200 });
      const connErrors: { code?: string }[] = [];
      rc2.on('error', (err: { code?: string }) => connErrors.push(err));
      const ch2 = await rc2.acquire();
      await assert.rejects(ch2.exchangeDeclare({ exchange: 'cl.rc.bad', type: 'no-such-type' }), (err: { code?: string }) => err.code === 'COMMAND_INVALID');
      await within(
        new Promise<void>((resolve) => (connErrors.length > 0 ? resolve() : rc2.once('error', () => resolve()))),
        'the connection error event',
      );
      assert.equal(connErrors[0]?.code, 'COMMAND_INVALID');
      await rc2.close();
    });

    test('a server-sent basic.cancel reaches a rabbitmq-client channel', async () => {
      const ch = await rc.acquire();
      await ch.queueDeclare({ queue: 'cl.rc.cancel', durable: false });
      const cancelled = new Promise<string>((resolve) => ch.once('basic.cancel', (tag: string) => resolve(tag)));
      const { consumerTag } = await ch.basicConsume({ queue: 'cl.rc.cancel' }, () => {});
      const admin = await rc.acquire();
      await admin.queueDelete({ queue: 'cl.rc.cancel' });
      assert.equal(await within(cancelled, 'basic.cancel'), consumerTag);
      await admin.close();
      await ch.close();
    });
  });

  describe('@cloudamqp/amqp-client', () => {
    test('declare, bind, publish with confirms, consume with acks', async () => {
      const ch = await cloud.channel();
      await ch.exchangeDeclare('cl.cloud.ex', 'direct', { durable: false });
      const q = await ch.queueDeclare('', { exclusive: true });
      assert.match(q.name, /^amq\.gen-/);
      await ch.queueBind(q.name, 'cl.cloud.ex', 'k');
      const pub = await cloud.channel();
      await pub.confirmSelect();
      const tags = await Promise.all(Array.from({ length: 50 }, (_, i) => pub.basicPublish('cl.cloud.ex', 'k', `m${i}`, { messageId: String(i) })));
      assert.deepEqual(tags, Array.from({ length: 50 }, (_, i) => i + 1), 'each publish resolved with its confirmed sequence number');
      await ch.basicQos(10);
      const inbox = new Inbox<AMQPMessage>();
      await ch.basicConsume(q.name, { noAck: false }, async (msg) => {
        inbox.push(msg);
        await msg.ack();
      });
      const got = await inbox.atLeast(50);
      assert.deepEqual(got.map((m) => m.bodyToString()), Array.from({ length: 50 }, (_, i) => `m${i}`));
      assert.equal(got[7]?.properties.messageId, '7');
      assert.equal(got[0]?.exchange, 'cl.cloud.ex');
      const ok = await ch.queueDeclare(q.name, { passive: true });
      assert.equal(ok.messageCount, 0);
      await pub.close();
      await ch.close();
      const admin = await cloud.channel();
      await admin.exchangeDelete('cl.cloud.ex');
      await admin.close();
    });

    test('get with message count, reject, get-empty, and a channel error that leaves the connection open', async () => {
      const ch = await cloud.channel();
      const q = await ch.queueDeclare('', { exclusive: true });
      await ch.confirmSelect();
      await ch.basicPublish('', q.name, 'a');
      await ch.basicPublish('', q.name, 'b');
      const first = await ch.basicGet(q.name, { noAck: false });
      assert.ok(first !== null);
      assert.equal(first.bodyToString(), 'a');
      assert.equal(first.messageCount, 1);
      await first.reject(false);
      const second = await ch.basicGet(q.name, { noAck: true });
      assert.equal(second?.bodyToString(), 'b');
      assert.equal(await ch.basicGet(q.name), null);
      const doomed = await cloud.channel();
      await assert.rejects(doomed.queueDeclare('cl.cloud.missing', { passive: true }), /NOT_FOUND/);
      assert.equal(doomed.closed, true);
      assert.equal(cloud.closed, false);
      await ch.close();
    });

    test('an empty queue name means the channel\'s most recently declared queue (get, purge, bind, consume, delete)', async () => {
      const ch = await cloud.channel();
      const q = await ch.queueDeclare('', { exclusive: true });
      await ch.confirmSelect();
      await ch.basicPublish('', q.name, 'one');
      const got = await ch.basicGet('', { noAck: true });
      assert.equal(got?.bodyToString(), 'one');
      await ch.basicPublish('', q.name, 'two');
      assert.deepEqual(await ch.queuePurge(''), { messageCount: 1 });
      // queue.bind with an empty queue and an empty routing key binds with the queue's name as key.
      await ch.queueBind('', 'amq.direct', '');
      await ch.basicPublish('amq.direct', q.name, 'via the binding');
      const viaBinding = await ch.basicGet(q.name, { noAck: true });
      assert.equal(viaBinding?.bodyToString(), 'via the binding');
      const consumer = await ch.basicConsume('', { noAck: true }, () => {});
      await consumer.cancel();
      // @cloudamqp/amqp-client's queueDelete() with no name relies on this shortcut.
      await ch.queueDelete();
      const probe = await cloud.channel();
      await assert.rejects(probe.queueDeclare(q.name, { passive: true }), /NOT_FOUND/);
      const fresh = await cloud.channel();
      await assert.rejects(fresh.basicGet(''), /NOT_FOUND - no previously declared queue/);
      await ch.close();
    });

    test('immediate=true, prefetch-size and basic.recover requeue=false are 540 NOT_IMPLEMENTED connection errors, as in RabbitMQ', async () => {
      const cases: [string, (ch: Awaited<ReturnType<AMQPClient['channel']>>) => Promise<unknown>][] = [
        ['immediate=true', async (ch) => {
          await ch.basicPublish('amq.direct', 'x', 'i', {}, false, true);
          return ch.queueDeclare('', { exclusive: true });
        }],
        ['prefetch_size!=0 \\(100\\)', (ch) => ch.basicQos(10, 100)],
        ['requeue=false', (ch) => ch.basicRecover(false)],
      ];
      for (const [text, op] of cases) {
        const c = new AMQPClient(broker.url);
        await c.connect();
        const ch = await c.channel();
        await assert.rejects(op(ch), (err: Error) => new RegExp(`NOT_IMPLEMENTED - ${text}`).test(err.message) && /540/.test(err.message));
        assert.equal(c.closed, true, `${text}: the connection is closed`);
      }
    });

    test('publish with mandatory to no route: the return reaches onReturn with 312', async () => {
      const ch = await cloud.channel();
      const returned = new Promise<AMQPMessage>((resolve) => {
        ch.onReturn = resolve;
      });
      await ch.basicPublish('amq.direct', 'cl.nobody', 'r', {}, true);
      const m = await within(returned, 'basic.return');
      assert.deepEqual([m.replyCode, m.replyText, m.routingKey, m.bodyToString()], [312, 'NO_ROUTE', 'cl.nobody', 'r']);
      await ch.close();
    });
  });

  test('a message crosses all three clients unchanged', async () => {
    const amqplibConn = await amqp.connect(broker.url);
    try {
      const ach = await amqplibConn.createChannel();
      await ach.assertQueue('cl.cross', { durable: false });
      const cch = await cloud.channel();
      await cch.confirmSelect();
      await cch.basicPublish('', 'cl.cross', 'from cloudamqp', { headers: { hop: 1 }, correlationId: 'x-1' });
      const m1 = await getOne(ach, 'cl.cross', { noAck: true });
      assert.equal(m1.content.toString(), 'from cloudamqp');
      assert.deepEqual([m1.properties.headers, m1.properties.correlationId], [{ hop: 1 }, 'x-1']);
      ach.sendToQueue('cl.cross', m1.content, m1.properties);
      const rch = await rc.acquire();
      const m2 = await rcGet(rch, 'cl.cross', true);
      assert.ok(Buffer.isBuffer(m2.body) && m2.body.toString() === 'from cloudamqp');
      assert.deepEqual([m2.headers, m2.correlationId], [{ hop: 1 }, 'x-1']);
      await rch.queueDelete({ queue: 'cl.cross' });
      await rch.close();
      await cch.close();
    } finally {
      await amqplibConn.close();
    }
  });
});

/** rabbitmq-client basic.get until a message is there (a publish from another client may still be on its way). */
async function rcGet(ch: RabbitChannel, queue: string, noAck: boolean): Promise<SyncMessage> {
  const start = Date.now();
  for (;;) {
    const m = await ch.basicGet({ queue, noAck });
    if (m !== undefined) return m;
    if (Date.now() - start > eventDeadlineMs) throw new Error(`timed out waiting for a message in '${queue}'`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
