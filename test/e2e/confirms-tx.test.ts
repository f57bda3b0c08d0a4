/**
 * Publisher confirms (amqplib's ConfirmChannel) and transactions (tx.select/commit/rollback
 * with @cloudamqp/amqp-client, since amqplib has no tx API): what is confirmed and when,
 * nacks, returns before acks, and that a transaction's publishes and acks happen only at commit.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { AMQPClient, type AMQPChannel } from '@cloudamqp/amqp-client';
import { waitFor, type TestBroker } from '../helpers/broker.js';
import { getOne, startE2eBroker, within } from '../helpers/amqp-expect.js';

describe('publisher confirms and transactions', () => {
  let broker: TestBroker;
  let conn: amqp.ChannelModel;
  let ch: amqp.Channel;
  let client: AMQPClient;
  before(async () => {
    broker = await startE2eBroker();
    conn = await amqp.connect(broker.url);
    ch = await conn.createChannel();
    client = new AMQPClient(broker.url);
    await client.connect();
  });
  after(async () => {
    await client.close();
    await conn.close();
    assert.equal(await broker.stop(), 0);
  });

  async function ready(queue: string): Promise<number> {
    return (await ch.checkQueue(queue)).messageCount;
  }

  /** A queue that both clients may use (exclusive queues belong to one connection). */
  async function sharedQueue(name: string, args: Record<string, unknown> = {}): Promise<string> {
    await ch.deleteQueue(name);
    await ch.assertQueue(name, { durable: false, arguments: args });
    return name;
  }

  test('every publish is confirmed; acks may cover many with multiple, and together cover every sequence number once', async () => {
    const { queue } = await ch.assertQueue('', { exclusive: true });
    const c = await conn.createConfirmChannel();
    const acked = new Set<number>();
    let multipleAcks = 0;
    let highest = 0;
    c.on('ack', (f: { deliveryTag: number; multiple: boolean }) => {
      if (f.multiple) {
        multipleAcks++;
        for (let t = highest + 1; t <= f.deliveryTag; t++) acked.add(t);
      } else {
        assert.ok(!acked.has(f.deliveryTag), `tag ${f.deliveryTag} acked twice`);
        acked.add(f.deliveryTag);
      }
      highest = Math.max(highest, f.deliveryTag);
    });
    const nacks: number[] = [];
    c.on('nack', (f: { deliveryTag: number }) => nacks.push(f.deliveryTag));
    const n = 2000;
    const callbacks: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      callbacks.push(
        new Promise<void>((resolve, reject) => {
          c.sendToQueue(queue, Buffer.from(`m${i}`), {}, (err: unknown) => (err === null || err === undefined ? resolve() : reject(new Error(String(err)))));
        }),
      );
    }
    await within(Promise.all(callbacks), `${n} confirms`, 15_000);
    await within(c.waitForConfirms(), 'waitForConfirms');
    assert.equal(acked.size, n);
    assert.equal(Math.max(...acked), n);
    assert.deepEqual(nacks, []);
    assert.ok(multipleAcks > 0, 'a burst of publishes is confirmed with at least one multiple ack');
    assert.equal(await ready(queue), n);
    await c.close();
  });

  test('a message routed to several queues is confirmed once, after all of them have it', async () => {
    await ch.assertExchange('ex.confirm.fan', 'fanout', { durable: false });
    const queues: string[] = [];
    for (let i = 0; i < 4; i++) {
      const { queue } = await ch.assertQueue('', { exclusive: true });
      await ch.bindQueue(queue, 'ex.confirm.fan', '');
      queues.push(queue);
    }
    const c = await conn.createConfirmChannel();
    const tags: number[] = [];
    c.on('ack', (f: { deliveryTag: number }) => tags.push(f.deliveryTag));
    c.publish('ex.confirm.fan', '', Buffer.from('to all'));
    await within(c.waitForConfirms(), 'the confirm');
    assert.deepEqual(tags, [1]);
    for (const q of queues) assert.equal(await ready(q), 1);
    await c.close();
    await ch.deleteExchange('ex.confirm.fan');
  });

  test('an unroutable mandatory publish is returned, then acked (return first)', async () => {
    const c = await conn.createConfirmChannel();
    const events: string[] = [];
    let highestAck = 0;
    c.on('return', () => events.push('return'));
    c.on('ack', (f: { deliveryTag: number }) => {
      events.push('ack');
      highestAck = Math.max(highestAck, f.deliveryTag);
    });
    c.publish('amq.direct', 'no-route-here', Buffer.from('r'), { mandatory: true });
    c.publish('amq.direct', 'no-route-here', Buffer.from('plain'));
    await within(c.waitForConfirms(), 'confirms');
    assert.equal(events[0], 'return', 'basic.return comes before the basic.ack of the same publish');
    assert.equal(highestAck, 2, 'the unroutable non-mandatory publish is acked too');
    await c.close();
  });

  test('a queue that refuses a message (x-overflow reject-publish) makes the broker nack it', async () => {
    const { queue } = await ch.assertQueue('', { exclusive: true, arguments: { 'x-max-length': 1, 'x-overflow': 'reject-publish' } });
    const c = await conn.createConfirmChannel();
    const outcome = (body: string): Promise<string> =>
      new Promise((resolve) => c.sendToQueue(queue, Buffer.from(body), {}, (err: unknown) => resolve(err === null || err === undefined ? 'ack' : 'nack')));
    const first = outcome('fits');
    const second = outcome('does not fit');
    assert.deepEqual(await within(Promise.all([first, second]), 'both confirms'), ['ack', 'nack']);
    assert.equal(await ready(queue), 1);
    c.on('error', () => {}); // waitForConfirms rejects after a nack
    await c.close();
  });

  test('confirm.select on a transactional channel and tx.select on a confirm channel are 406', async () => {
    const c1 = await client.channel();
    await c1.txSelect();
    await assert.rejects(c1.confirmSelect(), /PRECONDITION_FAILED/);
    assert.equal(c1.closed, true);
    const c2 = await client.channel();
    await c2.confirmSelect();
    await assert.rejects(c2.txSelect(), /PRECONDITION_FAILED/);
    assert.equal(c2.closed, true);
    assert.equal(client.closed, false, 'channel errors, not connection errors');
  });

  test('tx.commit and tx.rollback on a non-transactional channel are 406', async () => {
    const c = await client.channel();
    await assert.rejects(c.txCommit(), /PRECONDITION_FAILED - channel is not transactional/);
    const d = await client.channel();
    await assert.rejects(d.txRollback(), /PRECONDITION_FAILED - channel is not transactional/);
    assert.equal(client.closed, false);
  });

  test('transaction: publishes are not delivered before commit; rollback discards them; commit delivers them', async () => {
    const queue = await sharedQueue('tx.publish');
    const c = await client.channel();
    await c.txSelect();
    await c.basicPublish('', queue, 'one');
    await c.basicPublish('', queue, 'two');
    // A round trip on the transactional channel: the publishes are in, but not enqueued.
    await c.queueDeclare(queue, { passive: true });
    assert.equal(await ready(queue), 0);
    await c.txRollback();
    assert.equal(await ready(queue), 0);
    await c.basicPublish('', queue, 'three');
    await c.basicPublish('', queue, 'four');
    await c.queueDeclare(queue, { passive: true });
    assert.equal(await ready(queue), 0);
    await c.txCommit();
    assert.equal(await ready(queue), 2);
    const bodies = [(await getOne(ch, queue, { noAck: true })).content.toString(), (await getOne(ch, queue, { noAck: true })).content.toString()];
    assert.deepEqual(bodies, ['three', 'four']);
    await c.close();
    await ch.deleteQueue(queue);
  });

  test('transaction: rolled-back acks leave the messages unacked; acks take effect at commit', async () => {
    const queue = await sharedQueue('tx.acks');
    for (const b of ['a', 'b', 'c']) ch.sendToQueue(queue, Buffer.from(b));
    await waitFor(async () => (await ready(queue)) === 3, 'three messages');
    const c: AMQPChannel = await client.channel();
    await c.txSelect();
    const got = [];
    for (let i = 0; i < 3; i++) {
      const m = await c.basicGet(queue, { noAck: false });
      assert.ok(m !== null);
      got.push(m);
    }
    await c.basicAck((got[2] as { deliveryTag: number }).deliveryTag, true);
    await c.txRollback();
    // The acks did not happen: all three are still unacked on c (not ready)...
    assert.equal(await ready(queue), 0);
    // ...and may be acked again (their tags are still valid): ack one and commit.
    await c.basicAck((got[0] as { deliveryTag: number }).deliveryTag);
    await c.queueDeclare(queue, { passive: true });
    await c.txCommit();
    await c.close();
    // Closing the channel returns what was not acked by a commit: b and c, redelivered.
    await waitFor(async () => (await ready(queue)) === 2, 'the two uncommitted-ack messages back');
    const back = [await getOne(ch, queue, { noAck: true }), await getOne(ch, queue, { noAck: true })];
    assert.deepEqual(back.map((m) => [m.content.toString(), m.fields.redelivered]), [['b', true], ['c', true]]);
    await ch.deleteQueue(queue);
  });

  test('transaction: a nack with requeue inside a transaction requeues at commit', async () => {
    const queue = await sharedQueue('tx.nack');
    ch.sendToQueue(queue, Buffer.from('n'));
    await waitFor(async () => (await ready(queue)) === 1, 'the message');
    const c = await client.channel();
    await c.txSelect();
    const m = await c.basicGet(queue, { noAck: false });
    assert.ok(m !== null);
    await c.basicNack(m.deliveryTag, true);
    await c.queueDeclare(queue, { passive: true });
    assert.equal(await ready(queue), 0, 'not requeued before commit');
    await c.txCommit();
    assert.equal(await ready(queue), 1);
    await c.close();
    await ch.deleteQueue(queue);
  });
});
