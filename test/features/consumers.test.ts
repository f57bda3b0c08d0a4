/**
 * Who gets a queue's messages: single active consumer (x-single-active-consumer: the first
 * consumer gets everything; the next in line takes over when it cancels or its connection
 * goes, and the unacked messages come back to it) and consumer priorities (x-priority:
 * lower-priority consumers get messages only while the higher ones have no credit).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { within } from '../helpers/amqp-expect.js';
import { bodies, consumeInto, publishConfirmed, unique } from '../helpers/feature-kit.js';
import { ctlRows } from '../helpers/warrenctl.js';

describe('consumers', () => {
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

  test('single active consumer: everything goes to the first; the next takes over after a cancel', async () => {
    const pub = await conn.createConfirmChannel();
    const q = unique('sac');
    await pub.assertQueue(q, { arguments: { 'x-single-active-consumer': true } });
    const chA = await conn.createChannel();
    const chB = await conn.createChannel();
    const a = await consumeInto(chA, q, { noAck: false });
    const b = await consumeInto(chB, q, { noAck: false });
    const status = await ctlRows(broker.dataDir, 'list_consumers', 'queue_name', 'consumer_tag', 'active', 'activity_status');
    assert.deepEqual(
      status.filter((r) => r['queue_name'] === q).map((r) => [r['consumer_tag'], r['active'], r['activity_status']]),
      [
        [a.tag, true, 'single_active'],
        [b.tag, false, 'waiting'],
      ],
    );
    for (const m of ['m1', 'm2', 'm3']) await publishConfirmed(pub, '', q, m);
    await a.inbox.atLeast(3);
    chA.ack(a.inbox.items[0] as amqp.ConsumeMessage);
    await chA.cancel(a.tag);
    await publishConfirmed(pub, '', q, 'm4');
    await b.inbox.atLeast(1, 'm4 at the consumer that took over');
    assert.deepEqual(bodies(b.inbox.items), ['m4']);
    // m2 and m3 stay with A's channel until it closes; then they go to B, redelivered.
    await chA.close();
    await b.inbox.atLeast(3, 'the messages A left unacked');
    assert.deepEqual(bodies(b.inbox.items), ['m4', 'm2', 'm3']);
    assert.deepEqual(b.inbox.items.map((m) => m.fields.redelivered), [false, true, true]);
    assert.deepEqual(bodies(a.inbox.items), ['m1', 'm2', 'm3']);
    await chB.close();
    await pub.deleteQueue(q);
    await pub.close();
  });

  test('single active consumer: the next takes over when the active connection goes', async () => {
    const pub = await conn.createConfirmChannel();
    const q = unique('sac-disconnect');
    await pub.assertQueue(q, { arguments: { 'x-single-active-consumer': true } });
    const connA = await amqp.connect(broker.url);
    const chA = await connA.createChannel();
    const a = await consumeInto(chA, q, { noAck: false });
    const chB = await conn.createChannel();
    const b = await consumeInto(chB, q, { noAck: false });
    const chC = await conn.createChannel();
    const c = await consumeInto(chC, q, { noAck: false });
    await publishConfirmed(pub, '', q, 'x1');
    await a.inbox.atLeast(1);
    await connA.close();
    await b.inbox.atLeast(1, 'x1 redelivered to the next consumer');
    assert.equal(b.inbox.items[0]?.content.toString(), 'x1');
    assert.equal(b.inbox.items[0]?.fields.redelivered, true);
    await publishConfirmed(pub, '', q, 'x2');
    await b.inbox.atLeast(2);
    assert.deepEqual(bodies(b.inbox.items), ['x1', 'x2']);
    // The third in line got nothing.
    assert.equal(c.inbox.items.length, 0);
    await chB.close();
    await chC.close();
    await pub.deleteQueue(q);
    await pub.close();
  });

  test('consumer priorities: the higher-priority consumer gets messages while it has credit', async () => {
    const pub = await conn.createConfirmChannel();
    const q = unique('cprio');
    await pub.assertQueue(q, { exclusive: true });
    const chHigh = await conn.createChannel();
    await chHigh.prefetch(1);
    const chLow = await conn.createChannel();
    await chLow.prefetch(10);
    const low = await consumeInto(chLow, q, { noAck: false, priority: 0 });
    const high = await consumeInto(chHigh, q, { noAck: false, priority: 10 });
    await publishConfirmed(pub, '', q, 'one');
    await high.inbox.atLeast(1);
    // The high-priority consumer is full (prefetch 1): the next two go to the low one.
    await publishConfirmed(pub, '', q, 'two');
    await publishConfirmed(pub, '', q, 'three');
    await low.inbox.atLeast(2);
    assert.deepEqual(bodies(low.inbox.items), ['two', 'three']);
    chHigh.ack(high.inbox.items[0] as amqp.ConsumeMessage);
    await publishConfirmed(pub, '', q, 'four');
    await high.inbox.atLeast(2, "'four' at the high-priority consumer once it has credit again");
    assert.deepEqual(bodies(high.inbox.items), ['one', 'four']);
    assert.deepEqual(bodies(low.inbox.items), ['two', 'three']);
    await chHigh.close();
    await chLow.close();
    await pub.close();
  });

  test('consumers of equal priority share messages round-robin', async () => {
    const pub = await conn.createConfirmChannel();
    const q = unique('cprio-rr');
    await pub.assertQueue(q, { exclusive: true });
    const ch = await conn.createChannel();
    const one = await consumeInto(ch, q, { noAck: true, priority: 5 });
    const two = await consumeInto(ch, q, { noAck: true, priority: 5 });
    for (const m of ['a', 'b', 'c', 'd']) await publishConfirmed(pub, '', q, m);
    await within(
      (async () => {
        await one.inbox.atLeast(2);
        await two.inbox.atLeast(2);
      })(),
      'two messages at each consumer',
    );
    assert.equal(one.inbox.items.length + two.inbox.items.length, 4);
    await ch.close();
    await pub.close();
  });
});
