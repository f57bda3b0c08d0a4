/**
 * Queue length limits (x-max-length, x-max-length-bytes) and the three overflow modes:
 * drop-head (the oldest go, dead-lettered as maxlen), reject-publish (the publisher's confirm
 * is a nack and the message is discarded), reject-publish-dlx (nack, and the rejected message
 * is dead-lettered).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { bodies, consumeInto, deaths, drain, publishConfirmed, unique } from '../helpers/feature-kit.js';

describe('queue length limits', () => {
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

  test('x-max-length with drop-head (the default) keeps the newest messages', async () => {
    const ch = await conn.createConfirmChannel();
    const q = unique('maxlen');
    await ch.assertQueue(q, { exclusive: true, maxLength: 3 });
    for (const b of ['1', '2', '3', '4', '5']) assert.equal(await publishConfirmed(ch, '', q, b), 'ack');
    assert.equal((await ch.checkQueue(q)).messageCount, 3);
    assert.deepEqual(bodies(await drain(ch, q)), ['3', '4', '5']);
    await ch.close();
  });

  test('x-max-length-bytes counts body bytes only', async () => {
    const ch = await conn.createConfirmChannel();
    const q = unique('maxbytes');
    await ch.assertQueue(q, { exclusive: true, arguments: { 'x-max-length-bytes': 25, 'x-overflow': 'drop-head' } });
    // Ten-byte bodies with large headers: only the bodies count, so two fit and a third does not.
    const headers = { padding: 'x'.repeat(200) };
    for (const b of ['aaaaaaaaaa', 'bbbbbbbbbb', 'cccccccccc']) await publishConfirmed(ch, '', q, b, { headers });
    assert.deepEqual(bodies(await drain(ch, q)), ['bbbbbbbbbb', 'cccccccccc']);
    await ch.close();
  });

  test('x-max-length 0 keeps nothing', async () => {
    const ch = await conn.createConfirmChannel();
    const q = unique('maxlen0');
    await ch.assertQueue(q, { exclusive: true, maxLength: 0 });
    await publishConfirmed(ch, '', q, 'gone');
    assert.deepEqual(await drain(ch, q), []);
    await ch.close();
  });

  test('reject-publish: the publish past the limit is nacked and discarded; a freed slot takes the next', async () => {
    const ch = await conn.createConfirmChannel();
    const dlx = unique('rp-dlx');
    await ch.assertExchange(dlx, 'fanout', { autoDelete: true });
    const sink = unique('rp-sink');
    await ch.assertQueue(sink, { exclusive: true });
    await ch.bindQueue(sink, dlx, '');
    const q = unique('reject-publish');
    await ch.assertQueue(q, { exclusive: true, maxLength: 2, deadLetterExchange: dlx, arguments: { 'x-overflow': 'reject-publish' } });
    assert.equal(await publishConfirmed(ch, '', q, 'a'), 'ack');
    assert.equal(await publishConfirmed(ch, '', q, 'b'), 'ack');
    assert.equal(await publishConfirmed(ch, '', q, 'c'), 'nack');
    assert.equal((await ch.checkQueue(q)).messageCount, 2);
    // reject-publish does not dead-letter the refused message.
    assert.equal((await ch.checkQueue(sink)).messageCount, 0);
    const head = await ch.get(q, { noAck: true });
    assert.ok(head !== false && head.content.toString() === 'a');
    assert.equal(await publishConfirmed(ch, '', q, 'd'), 'ack');
    assert.deepEqual(bodies(await drain(ch, q)), ['b', 'd']);
    await ch.close();
  });

  test('reject-publish with x-max-length-bytes', async () => {
    const ch = await conn.createConfirmChannel();
    const q = unique('reject-publish-bytes');
    await ch.assertQueue(q, { exclusive: true, arguments: { 'x-max-length-bytes': 10, 'x-overflow': 'reject-publish' } });
    assert.equal(await publishConfirmed(ch, '', q, '12345'), 'ack');
    assert.equal(await publishConfirmed(ch, '', q, '67890'), 'ack');
    assert.equal(await publishConfirmed(ch, '', q, 'x'), 'nack');
    assert.deepEqual(bodies(await drain(ch, q)), ['12345', '67890']);
    await ch.close();
  });

  test('reject-publish-dlx: nacked, and the refused message is dead-lettered as maxlen', async () => {
    const ch = await conn.createConfirmChannel();
    const dlx = unique('rpd-dlx');
    await ch.assertExchange(dlx, 'fanout', { autoDelete: true });
    const sink = unique('rpd-sink');
    await ch.assertQueue(sink, { exclusive: true });
    await ch.bindQueue(sink, dlx, '');
    const { inbox } = await consumeInto(ch, sink);
    const q = unique('reject-publish-dlx');
    await ch.assertQueue(q, { exclusive: true, maxLength: 1, deadLetterExchange: dlx, arguments: { 'x-overflow': 'reject-publish-dlx' } });
    assert.equal(await publishConfirmed(ch, '', q, 'kept'), 'ack');
    assert.equal(await publishConfirmed(ch, '', q, 'refused'), 'nack');
    const [d] = await inbox.atLeast(1, 'the refused message at the DLX');
    assert.equal((d as amqp.ConsumeMessage).content.toString(), 'refused');
    const [entry] = deaths(d as amqp.ConsumeMessage);
    assert.deepEqual([entry?.reason, entry?.queue, entry?.count], ['maxlen', q, 1]);
    assert.deepEqual(bodies(await drain(ch, q)), ['kept']);
    await ch.close();
  });

  test('a publish routed to two queues is nacked if one of them refuses it', async () => {
    const ch = await conn.createConfirmChannel();
    const fan = unique('rp-fan');
    await ch.assertExchange(fan, 'fanout', { autoDelete: true });
    const full = unique('rp-full');
    const open = unique('rp-open');
    await ch.assertQueue(full, { exclusive: true, maxLength: 0, arguments: { 'x-overflow': 'reject-publish' } });
    await ch.assertQueue(open, { exclusive: true });
    await ch.bindQueue(full, fan, '');
    await ch.bindQueue(open, fan, '');
    assert.equal(await publishConfirmed(ch, fan, '', 'both'), 'nack');
    // The queue with room still took it, as in RabbitMQ.
    assert.deepEqual(bodies(await drain(ch, open)), ['both']);
    await ch.close();
  });
});
