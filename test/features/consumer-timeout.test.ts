/**
 * RabbitMQ's consumer timeout (--consumer-timeout-ms, its consumer_timeout): a channel that holds
 * a delivery unacked past the timeout is closed with 406 and RabbitMQ's text (class and method
 * 0: no method caused it), its unacked deliveries go back to the queue, and a channel that acks
 * in time, or consumes with no-ack, is left alone. The text and ids were taken from RabbitMQ
 * 3.10 with consumer_timeout set to 1000 ms.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { startBroker, waitFor, type TestBroker } from '../helpers/broker.js';
import { Inbox, expectChannelClose, nextError, within } from '../helpers/amqp-expect.js';
import { ctlOk } from '../helpers/warrenctl.js';
import { unique } from '../helpers/feature-kit.js';

const timeoutMs = 400;
/** Long enough to see the timeout fire, with the check every quarter of it and a busy machine. */
const closeDeadlineMs = 10_000;

describe('consumer timeout', () => {
  let broker: TestBroker;
  let conn: amqp.ChannelModel;
  before(async () => {
    broker = await startBroker({ args: ['--consumer-timeout-ms', String(timeoutMs)] });
    conn = await amqp.connect(broker.url);
  });
  after(async () => {
    await conn.close();
    assert.equal(await broker.stop(), 0);
  });

  test('a delivery left unacked closes its channel with 406; the message goes back, redelivered', async () => {
    const queue = unique('ct-stuck');
    const setup = await conn.createChannel();
    await setup.assertQueue(queue);
    setup.sendToQueue(queue, Buffer.from('stuck'));
    const ch = await conn.createChannel();
    const error = nextError(ch);
    const deliveries = new Inbox<amqp.ConsumeMessage>();
    await ch.consume(queue, (m) => m !== null && deliveries.push(m));
    await deliveries.atLeast(1, 'the delivery');
    const startedMs = Date.now();
    const closed = await within(error, 'the channel closed by the consumer timeout', closeDeadlineMs);
    assert.ok(Date.now() - startedMs >= timeoutMs - 50, 'not before the timeout');
    assert.equal(closed.code, 406);
    assert.deepEqual([closed.classId, closed.methodId], [0, 0]);
    assert.match(
      closed.message,
      new RegExp(`PRECONDITION_FAILED - delivery acknowledgement on channel \\d+ timed out\\. Timeout value used: ${timeoutMs} ms\\. This timeout value can be configured, see consumers doc guide to learn more`),
    );
    const again = await waitFor(async () => {
      const m = await setup.get(queue);
      return m === false ? undefined : m;
    }, 'the message back in the queue');
    assert.equal(again.content.toString(), 'stuck');
    assert.equal(again.fields.redelivered, true);
    setup.ack(again);
    await setup.deleteQueue(queue);
    await setup.close();
  });

  test('basic.get without ack counts too', async () => {
    const queue = unique('ct-get');
    const setup = await conn.createChannel();
    await setup.assertQueue(queue);
    setup.sendToQueue(queue, Buffer.from('got'));
    const ch = await conn.createChannel();
    const error = nextError(ch);
    await waitFor(async () => (await ch.get(queue)) || undefined, 'the basic.get-ok');
    assert.equal((await within(error, 'the close of the channel holding a got message', closeDeadlineMs)).code, 406);
    await setup.deleteQueue(queue);
    await setup.close();
  });

  test('a consumer that acks in time and a no-ack consumer keep their channels, past several timeouts', async () => {
    const queue = unique('ct-ok');
    const setup = await conn.createChannel();
    await setup.assertQueue(queue);
    const acking = await conn.createChannel();
    const noAck = await conn.createChannel();
    let errors = 0;
    for (const ch of [acking, noAck]) ch.on('error', () => errors++);
    const acked = new Inbox<amqp.ConsumeMessage>();
    await acking.consume(queue, (m) => {
      if (m === null) return;
      acking.ack(m);
      acked.push(m);
    });
    const quiet = unique('ct-noack');
    await setup.assertQueue(quiet);
    const unackedFree = new Inbox<amqp.ConsumeMessage>();
    await noAck.consume(quiet, (m) => m !== null && unackedFree.push(m), { noAck: true });
    // Messages trickle in over several timeouts: each is acked at once.
    const rounds = 4;
    for (let i = 0; i < rounds; i++) {
      setup.sendToQueue(queue, Buffer.from(`m${i}`));
      setup.sendToQueue(quiet, Buffer.from(`n${i}`));
      await acked.atLeast(i + 1, `delivery ${i}`);
      await unackedFree.atLeast(i + 1, `no-ack delivery ${i}`);
      // Wait on the broker's clock, not a sleep: a message published now is due after the timeout.
      const marker = unique('ct-marker');
      await setup.assertQueue(marker, { arguments: { 'x-message-ttl': timeoutMs } });
      setup.sendToQueue(marker, Buffer.from('tick'));
      await waitFor(async () => ((await setup.checkQueue(marker)).messageCount === 0 ? true : undefined), 'one timeout to pass', closeDeadlineMs);
      await setup.deleteQueue(marker);
    }
    await within(acking.checkQueue(queue), 'the acking channel still answers');
    await within(noAck.checkQueue(quiet), 'the no-ack channel still answers');
    assert.equal(errors, 0);
    await acking.close();
    await noAck.close();
    await setup.deleteQueue(queue);
    await setup.deleteQueue(quiet);
    await setup.close();
  });

  // Per queue and per consumer (RabbitMQ 3.12).
  /** A channel consuming `queue` (declared with queueArgs) that holds one delivery unacked. */
  async function holding(queueArgs: Record<string, unknown>, consumeArgs: Record<string, unknown> = {}): Promise<{ ch: amqp.Channel; errors: { code: number | undefined; message: string }[] }> {
    const queue = unique('ct-own');
    const ch = await conn.createChannel();
    const errors: { code: number | undefined; message: string }[] = [];
    ch.on('error', (e: { code?: number; message: string }) => errors.push({ code: e.code, message: e.message }));
    await ch.assertQueue(queue, { arguments: queueArgs });
    ch.sendToQueue(queue, Buffer.from('held'));
    const got = new Inbox<amqp.ConsumeMessage>();
    await ch.consume(queue, (m) => m !== null && got.push(m), { arguments: consumeArgs });
    await got.atLeast(1, `the delivery from ${queue}`);
    return { ch, errors };
  }

  test('x-consumer-timeout on the queue, a consumer-timeout policy, and x-consumer-timeout on basic.consume each override the node\'s', async () => {
    const longMs = 60_000;
    const policyQueuePrefix = unique('ct-policy');
    await ctlOk(broker.dataDir, 'set_policy', 'long-consumer-timeout', `^${policyQueuePrefix}`, JSON.stringify({ 'consumer-timeout': longMs }), '--apply-to', 'queues');
    const byQueue = await holding({ 'x-consumer-timeout': longMs });
    const byConsumer = await holding({}, { 'x-consumer-timeout': longMs });
    // The policy matches the queue by name: declare it under the policy's prefix.
    const policyCh = await conn.createChannel();
    const policyErrors: unknown[] = [];
    policyCh.on('error', (e: unknown) => policyErrors.push(e));
    const policyQueue = `${policyQueuePrefix}-q`;
    await policyCh.assertQueue(policyQueue);
    policyCh.sendToQueue(policyQueue, Buffer.from('held'));
    const policyGot = new Inbox<amqp.ConsumeMessage>();
    await policyCh.consume(policyQueue, (m) => m !== null && policyGot.push(m));
    await policyGot.atLeast(1, 'the delivery under the policy');
    const shorter = await holding({ 'x-consumer-timeout': 300 });
    const nodeDefault = await holding({});
    // The short ones close; by then several node timeouts have passed for the long ones.
    await waitFor(() => (shorter.errors.length > 0 && nodeDefault.errors.length > 0 ? true : undefined), 'the short timeouts to fire', closeDeadlineMs);
    assert.match(shorter.errors[0]?.message ?? '', /timed out\. Timeout value used: 300 ms/);
    assert.match(nodeDefault.errors[0]?.message ?? '', new RegExp(`timed out\\. Timeout value used: ${timeoutMs} ms`));
    const marker = unique('ct-marker');
    const probe = await conn.createChannel();
    await probe.assertQueue(marker, { arguments: { 'x-message-ttl': 3 * timeoutMs } });
    probe.sendToQueue(marker, Buffer.from('tick'));
    await waitFor(async () => ((await probe.checkQueue(marker)).messageCount === 0 ? true : undefined), 'three node timeouts to pass', closeDeadlineMs);
    assert.deepEqual([byQueue.errors, byConsumer.errors, policyErrors], [[], [], []]);
    for (const ch of [byQueue.ch, byConsumer.ch, policyCh]) await within(ch.checkQueue(marker), 'the channel still answers');
    await ctlOk(broker.dataDir, 'clear_policy', 'long-consumer-timeout');
  });

  test('a malformed x-consumer-timeout is refused on queue.declare and on basic.consume', async () => {
    await expectChannelClose(conn, await conn.createChannel(), (c) => c.assertQueue(unique('ct-bad'), { arguments: { 'x-consumer-timeout': -1 } }), {
      code: 406,
      method: [50, 10],
      text: /invalid arg 'x-consumer-timeout' for queue '.*' in vhost '\/': \{value_negative,-1\}/,
    });
    const queue = unique('ct-bad-consume');
    const setup = await conn.createChannel();
    await setup.assertQueue(queue);
    await expectChannelClose(conn, await conn.createChannel(), (c) => c.consume(queue, () => undefined, { arguments: { 'x-consumer-timeout': 'soon' } }), {
      code: 406,
      method: [60, 20],
      text: /invalid arg 'x-consumer-timeout'/,
    });
    await setup.deleteQueue(queue);
  });
});

describe('consumer timeout 0', () => {
  test('--consumer-timeout-ms 0 never closes a channel for an unacked delivery', async () => {
    const broker = await startBroker({ args: ['--consumer-timeout-ms', '0'] });
    try {
      const conn = await amqp.connect(broker.url);
      const ch = await conn.createChannel();
      let errors = 0;
      ch.on('error', () => errors++);
      const queue = unique('ct-off');
      await ch.assertQueue(queue);
      ch.sendToQueue(queue, Buffer.from('kept'));
      const held = await waitFor(async () => (await ch.get(queue)) || undefined, 'the message');
      // A message with a TTL of several default-test timeouts marks the time passing.
      await ch.assertQueue(`${queue}-marker`, { arguments: { 'x-message-ttl': 4 * timeoutMs } });
      ch.sendToQueue(`${queue}-marker`, Buffer.from('tick'));
      await waitFor(async () => ((await ch.checkQueue(`${queue}-marker`)).messageCount === 0 ? true : undefined), 'the marker to expire', closeDeadlineMs);
      ch.ack(held);
      assert.equal((await ch.checkQueue(queue)).messageCount, 0);
      assert.equal(errors, 0);
      await conn.close();
    } finally {
      assert.equal(await broker.stop(), 0);
    }
  });
});
