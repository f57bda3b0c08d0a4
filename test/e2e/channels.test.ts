/**
 * Channel class with real clients: open/close, thousands of channels on one connection,
 * a channel error closing only its channel, and channel.flow as RabbitMQ answers it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { AMQPClient } from '@cloudamqp/amqp-client';
import type { TestBroker } from '../helpers/broker.js';
import { Inbox, expectChannelClose, within, startE2eBroker } from '../helpers/amqp-expect.js';

describe('channels', () => {
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

  test('open, use and close a channel; a closed channel id can be opened again', async () => {
    const ch = await conn.createChannel();
    await ch.checkExchange('amq.fanout');
    await ch.close();
    // amqplib reuses the freed id for the next channel: the server must accept it again.
    const again = await conn.createChannel();
    await again.checkExchange('amq.fanout');
    await again.close();
  });

  test('2000 channels on one connection all open, work and close', async () => {
    const c = await amqp.connect(broker.url);
    try {
      const channels = await within(Promise.all(Array.from({ length: 2000 }, () => c.createChannel())), '2000 channel.open-ok', 20_000);
      await within(Promise.all(channels.map((ch) => ch.checkExchange('amq.direct'))), '2000 round trips', 20_000);
      // The last one carries traffic too.
      const last = channels[channels.length - 1] as amqp.Channel;
      const { queue } = await last.assertQueue('', { exclusive: true });
      last.sendToQueue(queue, Buffer.from('on channel 2000'));
      const m = await within(
        (async () => {
          for (;;) {
            const got = await last.get(queue, { noAck: true });
            if (got !== false) return got;
          }
        })(),
        'the message on the last channel',
      );
      assert.equal(m.content.toString(), 'on channel 2000');
      await within(Promise.all(channels.map((ch) => ch.close())), '2000 channel.close-ok', 20_000);
    } finally {
      await c.close();
    }
  });

  test('a channel error closes only that channel: others keep publishing and consuming', async () => {
    const busy = await conn.createChannel();
    const { queue } = await busy.assertQueue('', { exclusive: true });
    const inbox = new Inbox<string>();
    await busy.consume(queue, (m) => {
      if (m !== null) inbox.push(m.content.toString());
    }, { noAck: true });
    busy.sendToQueue(queue, Buffer.from('before'));
    await inbox.atLeast(1);

    const failing = await conn.createChannel();
    await expectChannelClose(conn, failing, (ch) => ch.checkQueue('no-such-queue-for-channel-test'), { code: 404, method: [50, 10] });

    busy.sendToQueue(queue, Buffer.from('after'));
    assert.deepEqual(await inbox.atLeast(2), ['before', 'after']);
    await busy.close();
  });

  test('channel.flow active=true is confirmed; active=false is refused as RabbitMQ does (540 NOT_IMPLEMENTED, connection close)', async () => {
    const client = new AMQPClient(broker.url);
    await client.connect();
    const ch = await client.channel();
    assert.equal(await ch.basicFlow(true), true);
    await assert.rejects(ch.basicFlow(false), (err: Error) => /NOT_IMPLEMENTED/.test(err.message) && /540/.test(err.message));
    assert.equal(client.closed, true, 'RabbitMQ answers channel.flow active=false with a connection error');
  });
});
