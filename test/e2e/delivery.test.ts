/**
 * Delivery guarantees with amqplib: unacked messages go back to their queue, in their place
 * and with redelivered=true, when their channel or connection closes (or the socket drops);
 * messages from one channel to one queue keep their order; consumers see queue order.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { waitFor, type TestBroker } from '../helpers/broker.js';
import { Inbox, getOne, startE2eBroker, within } from '../helpers/amqp-expect.js';

describe('delivery', () => {
  let broker: TestBroker;
  let conn: amqp.ChannelModel;
  let ch: amqp.Channel;
  before(async () => {
    broker = await startE2eBroker();
    conn = await amqp.connect(broker.url);
    ch = await conn.createChannel();
  });
  after(async () => {
    await conn.close();
    assert.equal(await broker.stop(), 0);
  });

  async function ready(queue: string): Promise<number> {
    return (await ch.checkQueue(queue)).messageCount;
  }

  /** A named, non-exclusive queue (other connections use it) holding bodies. */
  async function queueWith(name: string, bodies: string[]): Promise<string> {
    await ch.deleteQueue(name);
    await ch.assertQueue(name, { durable: false });
    const c = await conn.createConfirmChannel();
    for (const b of bodies) c.sendToQueue(name, Buffer.from(b));
    await within(c.waitForConfirms(), 'confirms');
    await c.close();
    return name;
  }

  /** Everything ready in the queue, in order, with its redelivered flag. */
  async function drain(queue: string, n: number): Promise<[string, boolean][]> {
    const out: [string, boolean][] = [];
    for (let i = 0; i < n; i++) {
      const m = await getOne(ch, queue, { noAck: true });
      out.push([m.content.toString(), m.fields.redelivered]);
    }
    assert.equal(await ch.get(queue, { noAck: true }), false, 'nothing more in the queue');
    return out;
  }

  test('unacked deliveries return in their place with redelivered=true when their channel closes', async () => {
    const queue = await queueWith('dl.channel-close', ['1', '2', '3', '4', '5']);
    const c = await conn.createChannel();
    await c.prefetch(3);
    const inbox = new Inbox<amqp.ConsumeMessage>();
    await c.consume(queue, (m) => m !== null && inbox.push(m));
    await inbox.atLeast(3);
    c.ack(inbox.items[1] as amqp.Message); // 2 acked; 1 and 3 unacked, and 4 is then delivered too
    await inbox.atLeast(4);
    await c.close();
    await waitFor(async () => (await ready(queue)) === 4, 'the unacked messages back');
    assert.deepEqual(await drain(queue, 4), [['1', true], ['3', true], ['4', true], ['5', false]]);
  });

  test('basic.get deliveries not acked return when the channel closes', async () => {
    const queue = await queueWith('dl.get-close', ['a', 'b']);
    const c = await conn.createChannel();
    await getOne(c, queue);
    await c.close();
    await waitFor(async () => (await ready(queue)) === 2, 'the got message back');
    assert.deepEqual(await drain(queue, 2), [['a', true], ['b', false]]);
  });

  test('unacked deliveries return when their connection closes', async () => {
    const queue = await queueWith('dl.conn-close', ['x', 'y', 'z']);
    const other = await amqp.connect(broker.url);
    const oc = await other.createChannel();
    const inbox = new Inbox<amqp.ConsumeMessage>();
    await oc.consume(queue, (m) => m !== null && inbox.push(m));
    await inbox.atLeast(3);
    await other.close();
    await waitFor(async () => (await ready(queue)) === 3, 'all three back');
    assert.deepEqual(await drain(queue, 3), [['x', true], ['y', true], ['z', true]]);
  });

  test('unacked deliveries return when the socket drops without a close', async () => {
    const queue = await queueWith('dl.socket-drop', ['p', 'q']);
    const other = await amqp.connect(broker.url);
    other.on('error', () => {});
    const oc = await other.createChannel();
    const inbox = new Inbox<amqp.ConsumeMessage>();
    await oc.consume(queue, (m) => m !== null && inbox.push(m));
    await inbox.atLeast(2);
    (other.connection as unknown as { stream: { destroy(err: Error): void } }).stream.destroy(new Error('dropped by the test'));
    await waitFor(async () => (await ready(queue)) === 2, 'both back');
    assert.deepEqual(await drain(queue, 2), [['p', true], ['q', true]]);
  });

  test('a redelivered message goes to the next consumer first, ahead of newer messages', async () => {
    const queue = await queueWith('dl.redeliver-first', ['first', 'second', 'third']);
    const c1 = await conn.createChannel();
    await c1.prefetch(1);
    const got1 = new Inbox<amqp.ConsumeMessage>();
    await c1.consume(queue, (m) => m !== null && got1.push(m));
    await got1.atLeast(1);
    await c1.close(); // 'first' goes back to the head
    const c2 = await conn.createChannel();
    const got2 = new Inbox<amqp.ConsumeMessage>();
    await c2.consume(queue, (m) => m !== null && got2.push(m), { noAck: true });
    const all = await got2.atLeast(3);
    assert.deepEqual(all.map((m) => [m.content.toString(), m.fields.redelivered]), [['first', true], ['second', false], ['third', false]]);
    await c2.close();
  });

  test('10 000 messages from one channel to one queue arrive in publish order', async () => {
    const { queue } = await ch.assertQueue('', { exclusive: true });
    const n = 10_000;
    const pub = await conn.createChannel();
    for (let i = 0; i < n; i++) {
      const b = Buffer.allocUnsafe(4);
      b.writeUInt32BE(i);
      if (!pub.sendToQueue(queue, b)) await new Promise((resolve) => pub.once('drain', resolve));
    }
    const c = await conn.createChannel();
    await c.prefetch(1000);
    let next = 0;
    let outOfOrder = '';
    const done = new Promise<void>((resolve) => {
      void c.consume(queue, (m) => {
        if (m === null) return;
        const v = m.content.readUInt32BE(0);
        if (v !== next && outOfOrder === '') outOfOrder = `expected ${next}, got ${v}`;
        next = v + 1;
        if (v % 500 === 499) c.ack(m, true);
        if (v === n - 1) resolve();
      });
    });
    await within(done, `${n} messages`, 30_000);
    assert.equal(outOfOrder, '');
    await c.close();
    await pub.close();
  });

  test('competing consumers each see the queue order, and between them get every message once', async () => {
    const { queue } = await ch.assertQueue('', { exclusive: true });
    const seen: number[][] = [[], [], []];
    const all = new Inbox<number>();
    for (let k = 0; k < 3; k++) {
      const c = await conn.createChannel();
      await c.prefetch(5);
      await c.consume(queue, (m) => {
        if (m === null) return;
        const v = m.content.readUInt32BE(0);
        (seen[k] as number[]).push(v);
        all.push(v);
        c.ack(m);
      });
    }
    const n = 900;
    for (let i = 0; i < n; i++) {
      const b = Buffer.allocUnsafe(4);
      b.writeUInt32BE(i);
      ch.sendToQueue(queue, b);
    }
    await all.atLeast(n, `${n} messages`, 15_000);
    for (const s of seen) {
      assert.ok(s.length > 0, 'every consumer gets a share');
      assert.deepEqual(s, [...s].sort((a, b) => a - b), 'each consumer sees increasing order');
    }
    assert.deepEqual([...all.items].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i));
  });
});
