/**
 * Direct reply-to (amq.rabbitmq.reply-to): RPC replies go straight to the requester's channel
 * without a reply queue. Runs against warren, or against RabbitMQ with
 * WARREN_E2E_REFERENCE_URL set, with the same expectations.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import type { TestBroker } from '../helpers/broker.js';
import { Inbox, expectChannelClose, roundTrip, startE2eBroker, within } from '../helpers/amqp-expect.js';
import { publishConfirmed, unique } from '../helpers/feature-kit.js';

const pseudoQueue = 'amq.rabbitmq.reply-to';

/** An RPC server on its own channel: answers each request on `queue` with "re:" + the body, to the request's reply-to. */
async function startResponder(conn: amqp.ChannelModel, queue: string): Promise<{ ch: amqp.ConfirmChannel; replyTos: string[] }> {
  const ch = await conn.createConfirmChannel();
  await ch.assertQueue(queue, { exclusive: true });
  const replyTos: string[] = [];
  await ch.consume(queue, (m) => {
    if (m === null) return;
    const replyTo = String(m.properties.replyTo);
    replyTos.push(replyTo);
    ch.sendToQueue(replyTo, Buffer.from(`re:${m.content.toString()}`), { correlationId: m.properties.correlationId });
    ch.ack(m);
  });
  return { ch, replyTos };
}

describe('direct reply-to', () => {
  let broker: TestBroker;
  let conn: amqp.ChannelModel;
  before(async () => {
    broker = await startE2eBroker();
    conn = await amqp.connect(broker.url);
  });
  after(async () => {
    await conn.close();
    assert.equal(await broker.stop(), 0);
  });

  test('the capability is advertised', () => {
    const capabilities = (conn.connection as unknown as { serverProperties: { capabilities: Record<string, unknown> } }).serverProperties.capabilities;
    assert.equal(capabilities['direct_reply_to'], true);
  });

  test('requests carry a reply name of the channel; replies come back to the no-ack consumer, in order', async () => {
    const requests = unique('drt-rpc');
    const responder = await startResponder(conn, requests);
    const client = await conn.createChannel();
    const replies = new Inbox<amqp.ConsumeMessage>();
    const { consumerTag } = await client.consume(pseudoQueue, (m) => m !== null && replies.push(m), { noAck: true });
    const count = 50;
    for (let i = 0; i < count; i++) client.sendToQueue(requests, Buffer.from(`q${i}`), { replyTo: pseudoQueue, correlationId: `c${i}` });
    const got = await replies.atLeast(count, `${count} replies`);
    assert.deepEqual(got.map((m) => m.content.toString()), Array.from({ length: count }, (_, i) => `re:q${i}`));
    assert.deepEqual(got.map((m) => m.properties.correlationId), Array.from({ length: count }, (_, i) => `c${i}`));
    const name = responder.replyTos[0] ?? '';
    assert.ok(name.startsWith(`${pseudoQueue}.`) && name.length > pseudoQueue.length + 1, `the responder sees a generated name, got '${name}'`);
    assert.deepEqual(new Set(responder.replyTos), new Set([name]), 'one name for the channel');
    for (const m of got) {
      assert.equal(m.fields.consumerTag, consumerTag);
      assert.equal(m.fields.exchange, '');
      assert.equal(m.fields.routingKey, name);
      assert.equal(m.fields.redelivered, false);
      // RabbitMQ hands a reply the channel's next delivery tag without using it up.
      assert.equal(m.fields.deliveryTag, 1);
    }
    // A second requester channel gets a name of its own.
    const other = await conn.createChannel();
    const otherReplies = new Inbox<amqp.ConsumeMessage>();
    await other.consume(pseudoQueue, (m) => m !== null && otherReplies.push(m), { noAck: true });
    other.sendToQueue(requests, Buffer.from('other'), { replyTo: pseudoQueue });
    const [otherReply] = await otherReplies.atLeast(1, 'the reply on the second channel');
    assert.equal(otherReply?.content.toString(), 're:other');
    assert.notEqual(otherReply?.fields.routingKey, name);
    assert.equal(replies.items.length, count, 'nothing crossed to the first channel');
    // Replies leave the tags of acked deliveries contiguous.
    const queue = unique('drt-tags');
    await other.assertQueue(queue, { exclusive: true });
    const queued = new Inbox<amqp.ConsumeMessage>();
    await other.consume(queue, (m) => m !== null && queued.push(m));
    other.sendToQueue(queue, Buffer.from('queued'));
    const [delivery] = await queued.atLeast(1, 'a delivery from a queue');
    assert.equal(delivery?.fields.deliveryTag, 1);
    if (delivery !== undefined) other.ack(delivery);
    other.sendToQueue(requests, Buffer.from('after'), { replyTo: pseudoQueue });
    const afterReply = (await otherReplies.atLeast(2, 'a reply after a queue delivery'))[1];
    assert.equal(afterReply?.fields.deliveryTag, 2);
    await other.close();
    await client.close();
    await responder.ch.close();
  });

  test('declaring the pseudo-queue, passively or not, answers 0 messages and 1 consumer', async () => {
    const ch = await conn.createChannel();
    assert.deepEqual(await ch.checkQueue(pseudoQueue), { queue: pseudoQueue, messageCount: 0, consumerCount: 1 });
    assert.deepEqual(await ch.assertQueue(pseudoQueue, { durable: false }), { queue: pseudoQueue, messageCount: 0, consumerCount: 1 });
    await ch.close();
  });

  test("declaring a reply name answers declare-ok while its requester is there, 404 once it has gone (a responder's liveness check)", async () => {
    const requests = unique('drt-live');
    const responder = await startResponder(conn, requests);
    const client = await conn.createChannel();
    const replies = new Inbox<amqp.ConsumeMessage>();
    await client.consume(pseudoQueue, (m) => m !== null && replies.push(m), { noAck: true });
    client.sendToQueue(requests, Buffer.from('one'), { replyTo: pseudoQueue });
    await replies.atLeast(1, 'the reply');
    const name = responder.replyTos[0] ?? '';
    const probe = await conn.createChannel();
    assert.deepEqual(await probe.checkQueue(name), { queue: name, messageCount: 0, consumerCount: 1 });
    assert.deepEqual(await probe.assertQueue(name, { durable: false }), { queue: name, messageCount: 0, consumerCount: 1 });
    await client.close();
    await expectChannelClose(conn, probe, (ch) => ch.checkQueue(name), { code: 404, method: [50, 10], text: /NOT_FOUND - no queue 'amq\.rabbitmq\.reply-to\./ });
    await responder.ch.close();
  });

  test('a reply for a requester that has gone, or for a name nobody made, is returned to a mandatory publisher and still confirmed', async () => {
    const requests = unique('drt-gone');
    const responder = await startResponder(conn, requests);
    const client = await conn.createChannel();
    const replies = new Inbox<amqp.ConsumeMessage>();
    await client.consume(pseudoQueue, (m) => m !== null && replies.push(m), { noAck: true });
    client.sendToQueue(requests, Buffer.from('one'), { replyTo: pseudoQueue });
    await replies.atLeast(1, 'the first reply');
    const name = responder.replyTos[0] ?? '';
    await client.close();
    const returns = new Inbox<amqp.Message>();
    responder.ch.on('return', returns.push);
    assert.equal(await publishConfirmed(responder.ch, '', name, 'late', { mandatory: true }), 'ack');
    assert.equal(await publishConfirmed(responder.ch, '', `${pseudoQueue}.nobody-made-this`, 'stray', { mandatory: true }), 'ack');
    assert.equal(await publishConfirmed(responder.ch, '', name, 'late, not mandatory'), 'ack');
    const got = await returns.atLeast(2, 'two basic.returns');
    assert.deepEqual(
      got.map((m) => { const f = m.fields as unknown as { replyCode: number; replyText: string; exchange: string; routingKey: string }; return [m.content.toString(), f.replyCode, f.replyText, f.exchange, f.routingKey]; }),
      [
        ['late', 312, 'NO_ROUTE', '', name],
        ['stray', 312, 'NO_ROUTE', '', `${pseudoQueue}.nobody-made-this`],
      ],
    );
    await roundTrip(responder.ch);
    assert.equal(returns.items.length, 2, 'no return without mandatory');
    await responder.ch.close();
  });

  test('after basic.cancel the name is unroutable and a new request needs a new consumer', async () => {
    const requests = unique('drt-cancel');
    const responder = await startResponder(conn, requests);
    const client = await conn.createChannel();
    const replies = new Inbox<amqp.ConsumeMessage>();
    const { consumerTag } = await client.consume(pseudoQueue, (m) => m !== null && replies.push(m), { noAck: true });
    client.sendToQueue(requests, Buffer.from('before'), { replyTo: pseudoQueue });
    await replies.atLeast(1, 'the reply before the cancel');
    const firstName = responder.replyTos[0] ?? '';
    assert.deepEqual(await client.cancel(consumerTag), { consumerTag });
    const returns = new Inbox<amqp.Message>();
    responder.ch.on('return', returns.push);
    await publishConfirmed(responder.ch, '', firstName, 'after cancel', { mandatory: true });
    await returns.atLeast(1, 'the return of a reply to a cancelled consumer');
    // Consuming again works, under a new name.
    await client.consume(pseudoQueue, (m) => m !== null && replies.push(m), { noAck: true });
    client.sendToQueue(requests, Buffer.from('again'), { replyTo: pseudoQueue });
    await replies.atLeast(2, 'the reply to the new consumer');
    assert.equal(replies.items[1]?.content.toString(), 're:again');
    assert.notEqual(responder.replyTos[1], firstName);
    await client.close();
    await responder.ch.close();
  });

  describe('refusals, as RabbitMQ words them', () => {
    test('a reply consumer that would ack', async () => {
      await expectChannelClose(conn, await conn.createChannel(), (ch) => ch.consume(pseudoQueue, () => undefined, { noAck: false }), {
        code: 406,
        method: [60, 20],
        text: /PRECONDITION_FAILED - reply consumer cannot acknowledge/,
      });
    });

    test('a second reply consumer on the channel', async () => {
      const ch = await conn.createChannel();
      await ch.consume(pseudoQueue, () => undefined, { noAck: true });
      await expectChannelClose(conn, ch, (c) => c.consume(pseudoQueue, () => undefined, { noAck: true }), {
        code: 406,
        method: [60, 20],
        text: /PRECONDITION_FAILED - reply consumer already set/,
      });
    });

    test('a request with reply-to amq.rabbitmq.reply-to on a channel that does not consume it', async () => {
      await expectChannelClose(
        conn,
        await conn.createChannel(),
        async (ch) => {
          ch.sendToQueue(unique('drt-nowhere'), Buffer.from('x'), { replyTo: pseudoQueue });
          await within(ch.checkQueue(pseudoQueue), 'a round trip after the publish');
        },
        { code: 406, method: [60, 40], text: /PRECONDITION_FAILED - fast reply consumer does not exist/ },
      );
    });

    test('basic.get from the pseudo-queue', async () => {
      await expectChannelClose(conn, await conn.createChannel(), (ch) => ch.get(pseudoQueue, { noAck: true }), {
        code: 404,
        method: [60, 70],
        text: /NOT_FOUND - no queue 'amq\.rabbitmq\.reply-to' in vhost '\/'/,
      });
    });
  });
});
