import { test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { startBroker } from './helpers/broker.js';

test('a node starts on port 0, serves a publish/consume round trip, and stops cleanly on SIGTERM', async () => {
  const broker = await startBroker();
  try {
    const conn = await amqp.connect(broker.url);
    const ch = await conn.createChannel();
    const { queue } = await ch.assertQueue('', { exclusive: true });
    assert.match(queue, /^amq\.gen-/);
    ch.sendToQueue(queue, Buffer.from('hello'), { contentType: 'text/plain' });
    const msg = await new Promise<amqp.ConsumeMessage>((resolve) => {
      void ch.consume(queue, (m) => m && resolve(m));
    });
    assert.equal(msg.content.toString(), 'hello');
    assert.equal(msg.properties.contentType, 'text/plain');
    assert.equal(msg.fields.redelivered, false);
    ch.ack(msg);
    await conn.close();
  } finally {
    assert.equal(await broker.stop(), 0);
  }
});
