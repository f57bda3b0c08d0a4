/**
 * max_message_size with amqplib against a broker started with --max-message-size 1024:
 * a larger body is refused as RabbitMQ refuses it (channel.close 406 PRECONDITION_FAILED),
 * a body of exactly the limit goes through, and the connection is unaffected.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { expectChannelClose, getOne, referenceUrl, within } from '../helpers/amqp-expect.js';

// A reference RabbitMQ cannot be started with this limit; the file runs against warren only.
// (Only when WARREN_E2E_REFERENCE_URL points the e2e files at a reference broker; never in `npm test`.)
describe('max message size', { skip: referenceUrl !== undefined ? 'needs warren\'s --max-message-size; not run against a reference broker' : false }, () => {
  let broker: TestBroker;
  let conn: amqp.ChannelModel;
  before(async () => {
    broker = await startBroker({ args: ['--max-message-size', '1024'] });
    conn = await amqp.connect(broker.url);
  });
  after(async () => {
    await conn.close();
    assert.equal(await broker.stop(), 0);
  });

  test('a body over the limit closes the channel with 406 PRECONDITION_FAILED; nothing is enqueued', async () => {
    const ch = await conn.createChannel();
    const { queue } = await ch.assertQueue('', { exclusive: true });
    await expectChannelClose(conn, await conn.createChannel(), (c) => c.sendToQueue(queue, Buffer.alloc(2000, 1)), {
      code: 406,
      method: [60, 40],
      text: /PRECONDITION_FAILED - message size 2000 is larger than configured max size 1024/,
    });
    assert.equal((await ch.checkQueue(queue)).messageCount, 0);
    await ch.close();
  });

  test('a body of exactly the limit, and an empty one, are accepted', async () => {
    const ch = await conn.createConfirmChannel();
    const { queue } = await ch.assertQueue('', { exclusive: true });
    const body = Buffer.alloc(1024, 2);
    ch.sendToQueue(queue, body);
    ch.sendToQueue(queue, Buffer.alloc(0));
    await within(ch.waitForConfirms(), 'confirms');
    assert.ok((await getOne(ch, queue, { noAck: true })).content.equals(body));
    assert.equal((await getOne(ch, queue, { noAck: true })).content.length, 0);
    await ch.close();
  });

  test('after an oversized publish, the next publish on a new channel of the same connection works', async () => {
    const bad = await conn.createChannel();
    const { queue } = await bad.assertQueue('', { exclusive: true });
    await expectChannelClose(conn, bad, (c) => c.sendToQueue(queue, Buffer.alloc(300_000, 3)), { code: 406, method: [60, 40] });
    const good = await conn.createConfirmChannel();
    good.sendToQueue(queue, Buffer.from('small'));
    await within(good.waitForConfirms(), 'confirm');
    assert.equal((await getOne(good, queue, { noAck: true })).content.toString(), 'small');
    await good.close();
  });
});
