/**
 * Basic class with amqplib (and rabbitmq-client for the one property amqplib cannot send):
 * qos per consumer and per channel, consume options and consumer tags, cancel from either
 * side, mandatory returns, get, ack/nack/reject (multiple, requeue in place), recover,
 * unknown delivery tags, every property and field type, and bodies across frame boundaries.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { Connection as RabbitConnection } from 'rabbitmq-client';
import { waitFor, type TestBroker } from '../helpers/broker.js';
import { Inbox, expectChannelClose, expectConnectionClose, getOne, startE2eBroker, within } from '../helpers/amqp-expect.js';

/** Largest body that fits one frame at frame-max 131072: 7 bytes of frame header, 1 end octet. */
const bodyBytesPerFrame = 131072 - 8;

describe('basic', () => {
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

  async function doomed(): Promise<amqp.Channel> {
    return conn.createChannel();
  }

  /** A fresh exclusive queue holding bodies, published with confirms so they are all in. */
  async function queueWith(bodies: string[]): Promise<string> {
    const { queue } = await ch.assertQueue('', { exclusive: true });
    await publishConfirmed(queue, bodies.map((b) => Buffer.from(b)));
    return queue;
  }

  async function publishConfirmed(queue: string, bodies: Buffer[], opts: amqp.Options.Publish = {}): Promise<void> {
    const c = await conn.createConfirmChannel();
    for (const b of bodies) c.sendToQueue(queue, b, opts);
    await within(c.waitForConfirms(), 'publisher confirms');
    await c.close();
  }

  async function ready(queue: string): Promise<number> {
    return (await ch.checkQueue(queue)).messageCount;
  }

  const bodiesOf = (ms: amqp.Message[]): string[] => ms.map((m) => m.content.toString());

  test('qos per consumer: prefetch N keeps at most N unacked with the consumer; each ack lets exactly one more through', async () => {
    const queue = await queueWith(Array.from({ length: 10 }, (_, i) => `m${i}`));
    const c = await conn.createChannel();
    await c.prefetch(3);
    const inbox = new Inbox<amqp.ConsumeMessage>();
    await c.consume(queue, (m) => m !== null && inbox.push(m));
    await inbox.atLeast(3);
    // The queue gave out exactly 3: had it given more, fewer would be ready.
    assert.equal(await ready(queue), 7);
    assert.equal(inbox.items.length, 3);
    c.ack(inbox.items[0] as amqp.Message);
    await inbox.atLeast(4);
    assert.equal(await ready(queue), 6);
    assert.equal(inbox.items.length, 4);
    c.ack(inbox.items[3] as amqp.Message, true);
    await inbox.atLeast(7);
    assert.equal(await ready(queue), 3);
    assert.equal(inbox.items.length, 7);
    assert.deepEqual(bodiesOf(inbox.items), ['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6']);
    await c.close();
  });

  test('qos per consumer applies to each consumer of the channel separately', async () => {
    const q1 = await queueWith(['a1', 'a2', 'a3', 'a4']);
    const q2 = await queueWith(['b1', 'b2', 'b3', 'b4']);
    const c = await conn.createChannel();
    await c.prefetch(2);
    const inbox = new Inbox<amqp.ConsumeMessage>();
    await c.consume(q1, (m) => m !== null && inbox.push(m));
    await c.consume(q2, (m) => m !== null && inbox.push(m));
    await inbox.atLeast(4);
    assert.deepEqual([await ready(q1), await ready(q2)], [2, 2]);
    assert.equal(inbox.items.length, 4);
    await c.close();
  });

  test('qos global: one limit shared by all consumers of the channel, whichever queues they consume', async () => {
    // Four queues, so that they are spread over the broker's queue shards whatever the placement.
    const queues: string[] = [];
    for (let k = 0; k < 4; k++) queues.push(await queueWith([`q${k}-1`, `q${k}-2`, `q${k}-3`]));
    const totalReady = async (): Promise<number> => {
      let n = 0;
      for (const q of queues) n += await ready(q);
      return n;
    };
    const c = await conn.createChannel();
    await c.prefetch(4, true);
    const inbox = new Inbox<amqp.ConsumeMessage>();
    for (const q of queues) await c.consume(q, (m) => m !== null && inbox.push(m));
    await inbox.atLeast(4);
    assert.equal(await totalReady(), 8, 'exactly 4 of the 12 handed out across all queues');
    assert.equal(inbox.items.length, 4);
    c.ack(inbox.items[0] as amqp.Message);
    await inbox.atLeast(5);
    assert.equal(await totalReady(), 7);
    assert.equal(inbox.items.length, 5);
    await c.close();
  });

  test('qos global: a channel consuming several queues gets the whole limit from the one that has messages', async () => {
    const queues: string[] = [];
    for (let k = 0; k < 4; k++) queues.push(await queueWith(k === 0 ? ['a', 'b', 'c', 'd', 'e', 'f'] : []));
    const c = await conn.createChannel();
    await c.prefetch(4, true);
    const inbox = new Inbox<amqp.ConsumeMessage>();
    for (const q of queues) await c.consume(q, (m) => m !== null && inbox.push(m));
    await inbox.atLeast(4);
    assert.equal(await ready(queues[0] as string), 2);
    assert.deepEqual(bodiesOf(inbox.items), ['a', 'b', 'c', 'd']);
    await c.close();
  });

  test('consume no-ack: everything arrives, nothing stays unacked or comes back', async () => {
    const queue = await queueWith(['1', '2', '3']);
    const c = await conn.createChannel();
    await c.prefetch(1); // ignored for no-ack consumers
    const inbox = new Inbox<amqp.ConsumeMessage>();
    await c.consume(queue, (m) => m !== null && inbox.push(m), { noAck: true });
    assert.deepEqual(bodiesOf(await inbox.atLeast(3)), ['1', '2', '3']);
    await c.close();
    assert.equal(await ready(queue), 0);
  });

  test('a server-generated consumer tag starts amq.ctag-; a client tag is kept', async () => {
    const { queue } = await ch.assertQueue('', { exclusive: true });
    const gen = await ch.consume(queue, () => {});
    assert.match(gen.consumerTag, /^amq\.ctag-[A-Za-z0-9_-]{22}$/);
    const mine = await ch.consume(queue, () => {}, { consumerTag: 'my-tag' });
    assert.equal(mine.consumerTag, 'my-tag');
    await ch.cancel(gen.consumerTag);
    await ch.cancel('my-tag');
  });

  test('an exclusive consumer locks out others (403), and cannot join a queue that has consumers (403)', async () => {
    const { queue } = await ch.assertQueue('', { exclusive: true });
    const excl = await ch.consume(queue, () => {}, { exclusive: true });
    await expectChannelClose(conn, await doomed(), (c) => c.consume(queue, () => {}), {
      code: 403,
      method: [60, 20],
      text: new RegExp(`ACCESS_REFUSED - queue '${queue}' in vhost '/' in exclusive use`),
    });
    await ch.cancel(excl.consumerTag);
    const plain = await ch.consume(queue, () => {});
    await expectChannelClose(conn, await doomed(), (c) => c.consume(queue, () => {}, { exclusive: true }), { code: 403, method: [60, 20] });
    await ch.cancel(plain.consumerTag);
  });

  test('reusing a consumer tag on a channel is 530 NOT_ALLOWED and closes the connection', async () => {
    const c = await amqp.connect(broker.url);
    const cch = await c.createChannel();
    cch.on('error', () => {});
    const { queue } = await cch.assertQueue('', { exclusive: true });
    await cch.consume(queue, () => {}, { consumerTag: 'twice' });
    await expectConnectionClose(c, () => cch.consume(queue, () => {}, { consumerTag: 'twice' }), {
      code: 530,
      text: /NOT_ALLOWED - attempt to reuse consumer tag 'twice'/,
    });
  });

  test('cancel stops deliveries and leaves undelivered messages in the queue; cancelling an unknown tag is ok', async () => {
    const { queue } = await ch.assertQueue('', { exclusive: true });
    const c = await conn.createChannel();
    const inbox = new Inbox<string>();
    const { consumerTag } = await c.consume(queue, (m) => m !== null && inbox.push(m.content.toString()), { noAck: true });
    await publishConfirmed(queue, [Buffer.from('before')]);
    await inbox.atLeast(1);
    assert.deepEqual(await c.cancel(consumerTag), { consumerTag });
    await publishConfirmed(queue, [Buffer.from('after')]);
    assert.equal(await ready(queue), 1);
    assert.deepEqual(inbox.items, ['before']);
    await c.cancel('never-existed');
    await c.close();
  });

  test('deleting a consumed queue sends basic.cancel: amqplib hands null to the consumer callback', async () => {
    const { queue } = await ch.assertQueue('', { exclusive: true });
    const c = await conn.createChannel();
    const cancelled = new Promise<null>((resolve) => {
      void c.consume(queue, (m) => {
        if (m === null) resolve(m);
      });
    });
    await ch.deleteQueue(queue);
    assert.equal(await within(cancelled, 'the server-sent basic.cancel'), null);
    // The channel is still usable.
    await c.checkExchange('amq.direct');
    await c.close();
  });

  test('mandatory publish with no route comes back as basic.return 312 NO_ROUTE, body and properties intact', async () => {
    const returned = new Promise<amqp.Message>((resolve) => ch.once('return', resolve));
    ch.publish('amq.direct', 'nobody-bound-this', Buffer.from('lost?'), { mandatory: true, messageId: 'r-1', headers: { h: 'v' } });
    const m = await within(returned, 'basic.return');
    const fields = m.fields as unknown as { replyCode: number; replyText: string; exchange: string; routingKey: string };
    assert.deepEqual(
      [fields.replyCode, fields.replyText, fields.exchange, fields.routingKey],
      [312, 'NO_ROUTE', 'amq.direct', 'nobody-bound-this'],
    );
    assert.equal(m.content.toString(), 'lost?');
    assert.equal(m.properties.messageId, 'r-1');
    assert.deepEqual(m.properties.headers, { h: 'v' });
    // Without mandatory an unroutable message just goes.
    ch.publish('amq.direct', 'nobody-bound-this', Buffer.from('dropped'));
    await ch.checkExchange('amq.direct');
  });

  test('get: get-ok carries the remaining message count and delivery details; an empty queue answers get-empty', async () => {
    const queue = await queueWith(['one', 'two', 'three']);
    const first = await ch.get(queue, { noAck: true });
    assert.ok(first !== false);
    assert.equal(first.content.toString(), 'one');
    assert.deepEqual(
      [first.fields.messageCount, first.fields.redelivered, first.fields.exchange, first.fields.routingKey],
      [2, false, '', queue],
    );
    const second = await ch.get(queue, { noAck: true });
    assert.ok(second !== false);
    assert.equal(second.fields.messageCount, 1);
    assert.ok(second.fields.deliveryTag > first.fields.deliveryTag);
    await ch.get(queue, { noAck: true });
    assert.equal(await ch.get(queue, { noAck: true }), false);
  });

  test('ack multiple, nack multiple with requeue, reject without requeue', async () => {
    const queue = await queueWith(['1', '2', '3', '4', '5', '6']);
    const c = await conn.createChannel();
    const got: amqp.GetMessage[] = [];
    for (let i = 0; i < 6; i++) got.push(await getOne(c, queue));
    c.ack(got[2] as amqp.Message, true); // 1..3
    c.nack(got[4] as amqp.Message, true, true); // 4, 5 back
    c.reject(got[5] as amqp.Message, false); // 6 gone
    const again = [await getOne(c, queue), await getOne(c, queue)];
    assert.deepEqual(bodiesOf(again), ['4', '5']);
    assert.deepEqual(again.map((m) => m.fields.redelivered), [true, true]);
    assert.equal(await c.get(queue), false);
    c.ackAll();
    await c.close();
    assert.equal(await ready(queue), 0, 'nothing came back when the channel closed: all settled');
  });

  test('a requeued message goes back in its place with redelivered=true', async () => {
    const queue = await queueWith(['1', '2', '3', '4', '5']);
    const c = await conn.createChannel();
    const m1 = await getOne(c, queue);
    const m2 = await getOne(c, queue);
    const m3 = await getOne(c, queue);
    assert.deepEqual(bodiesOf([m1, m2, m3]), ['1', '2', '3']);
    c.nack(m2, false, true);
    const next = [await getOne(c, queue), await getOne(c, queue), await getOne(c, queue)];
    assert.deepEqual(bodiesOf(next), ['2', '4', '5']);
    assert.deepEqual(next.map((m) => m.fields.redelivered), [true, false, false]);
    // Several at once (nack multiple of 1 and 3 after 2 was taken again): back in queue order.
    c.reject(m3, true);
    c.reject(m1, true);
    const last = [await getOne(c, queue), await getOne(c, queue)];
    assert.deepEqual(bodiesOf(last), ['1', '3']);
    assert.deepEqual(last.map((m) => m.fields.redelivered), [true, true]);
    c.ackAll();
    await c.close();
  });

  test('recover redelivers every unacked message with redelivered=true', async () => {
    const queue = await queueWith(['a', 'b', 'c']);
    const c = await conn.createChannel();
    const inbox = new Inbox<amqp.ConsumeMessage>();
    await c.consume(queue, (m) => m !== null && inbox.push(m));
    await inbox.atLeast(3);
    await c.recover();
    const all = await inbox.atLeast(6);
    assert.deepEqual(bodiesOf(all.slice(3, 6)), ['a', 'b', 'c']);
    assert.deepEqual(all.map((m) => m.fields.redelivered), [false, false, false, true, true, true]);
    c.ack(all[5] as amqp.Message, true);
    await c.close();
    assert.equal(await ready(queue), 0);
  });

  test('an unknown delivery tag is 406 PRECONDITION_FAILED on the channel (ack, double ack, nack, reject, ack multiple)', async () => {
    const queue = await queueWith(['x', 'y', 'z']);
    const fake = (tag: number): amqp.Message => ({ fields: { deliveryTag: tag } }) as unknown as amqp.Message;
    await expectChannelClose(conn, await doomed(), (c) => c.ack(fake(99)), { code: 406, method: [60, 80], text: /unknown delivery tag 99/ });
    await expectChannelClose(conn, await doomed(), (c) => c.nack(fake(7)), { code: 406, method: [60, 120], text: /unknown delivery tag 7/ });
    await expectChannelClose(conn, await doomed(), (c) => c.reject(fake(5)), { code: 406, method: [60, 90], text: /unknown delivery tag 5/ });
    await expectChannelClose(
      conn,
      await doomed(),
      async (c) => {
        const m = await getOne(c, queue);
        c.ack(m);
        c.ack(m);
      },
      { code: 406, method: [60, 80], text: /unknown delivery tag 1/ },
    );
    // ack multiple up to a tag that is no longer outstanding (others below it are): RabbitMQ refuses it too.
    await expectChannelClose(
      conn,
      await doomed(),
      async (c) => {
        const a = await getOne(c, queue);
        const b = await getOne(c, queue);
        assert.equal(a.fields.deliveryTag, 1);
        c.ack(b);
        c.ack(b, true);
      },
      { code: 406, method: [60, 80], text: /unknown delivery tag 2/ },
    );
    // x and z were acked before each channel failed; y, unacked on a closed channel, went back.
    await waitFor(async () => (await ready(queue)) === 1, 'the unacked message to return');
    const y = await getOne(ch, queue, { noAck: true });
    assert.deepEqual([y.content.toString(), y.fields.redelivered], ['y', true]);
  });

  test('all basic properties amqplib can send round-trip unchanged, through consume and through get', async () => {
    const { queue } = await ch.assertQueue('', { exclusive: true });
    const props: amqp.Options.Publish = {
      contentType: 'application/json',
      contentEncoding: 'gzip',
      headers: { 'x-app': 'e2e', n: 7 },
      deliveryMode: 2,
      priority: 5,
      correlationId: 'corr-42',
      replyTo: 'reply-queue',
      expiration: '600000',
      messageId: 'msg-1',
      timestamp: 1_700_000_000,
      type: 'order.created',
      userId: 'guest',
      appId: 'warren-e2e',
    };
    const expected = {
      contentType: 'application/json',
      contentEncoding: 'gzip',
      headers: { 'x-app': 'e2e', n: 7 },
      deliveryMode: 2,
      priority: 5,
      correlationId: 'corr-42',
      replyTo: 'reply-queue',
      expiration: '600000',
      messageId: 'msg-1',
      timestamp: 1_700_000_000,
      type: 'order.created',
      userId: 'guest',
      appId: 'warren-e2e',
      clusterId: undefined,
    };
    await publishConfirmed(queue, [Buffer.from('p1'), Buffer.from('p2')], props);
    const viaGet = await getOne(ch, queue, { noAck: true });
    assert.deepEqual(viaGet.properties, expected);
    const viaConsume = await new Promise<amqp.ConsumeMessage>((resolve) => {
      void ch.consume(queue, (m) => m !== null && resolve(m), { noAck: true });
    });
    assert.deepEqual(viaConsume.properties, expected);
    // No properties at all stays no properties.
    const { queue: q2 } = await ch.assertQueue('', { exclusive: true });
    await publishConfirmed(q2, [Buffer.from('bare')]);
    const bare = await getOne(ch, q2, { noAck: true });
    assert.deepEqual(
      Object.entries(bare.properties).filter(([k, v]) => v !== undefined && !(k === 'headers' && isEmptyObject(v))),
      [],
    );
  });

  test('a user-id property that is not the authenticated user is 406 PRECONDITION_FAILED', async () => {
    const { queue } = await ch.assertQueue('', { exclusive: true });
    await expectChannelClose(conn, await doomed(), (c) => c.sendToQueue(queue, Buffer.from('x'), { userId: 'mallory' }), {
      code: 406,
      method: [60, 40],
      text: /user_id property set to 'mallory' but authenticated user was 'guest'/,
    });
    assert.equal(await ready(queue), 0);
  });

  test('an expiration property RabbitMQ cannot read is 406 with its reason; signs and leading zeros are fine', async () => {
    const { queue } = await ch.assertQueue('', { exclusive: true });
    const cases: [string, string][] = [
      ['soon', 'no_integer'],
      ['-1', '{value_negative,-1}'],
      ['12s', '{leftover_string,"s"}'],
      ['315360000001', '{value_too_large,315360000001}'],
    ];
    for (const [expiration, reason] of cases) {
      await expectChannelClose(conn, await doomed(), (c) => c.sendToQueue(queue, Buffer.from('x'), { expiration }), {
        code: 406,
        method: [60, 40],
        text: new RegExp(`PRECONDITION_FAILED - invalid expiration '${expiration}': ${reason.replace(/[{}]/g, '\\$&')}`),
      });
    }
    await publishConfirmed(queue, [Buffer.from('a'), Buffer.from('b')], { expiration: '0600000' });
    await publishConfirmed(queue, [Buffer.from('c')], { expiration: '315360000000' });
    assert.equal(await ready(queue), 3);
  });

  test('all 14 basic properties round-trip with rabbitmq-client (cluster-id included)', async () => {
    const { queue } = await ch.assertQueue('basic.rc-props', { durable: false, autoDelete: false });
    const rc = new RabbitConnection({ url: broker.url, retryLow: 50, retryHigh: 200 });
    try {
      const pub = await rc.acquire();
      await pub.confirmSelect();
      // A Buffer body: for string bodies rabbitmq-client forces text/plain and drops content-encoding.
      const sent = {
        contentType: 'application/octet-stream',
        contentEncoding: 'identity',
        headers: { str: 'v', num: 12, nested: { t: true } },
        durable: true,
        priority: 9,
        correlationId: 'c-9',
        replyTo: 'amq.rabbitmq.reply-to-not-used',
        expiration: '90000',
        messageId: 'id-9',
        timestamp: 1_600_000_000,
        type: 't-9',
        userId: 'guest',
        appId: 'a-9',
        clusterId: 'cluster-9',
      };
      await pub.basicPublish({ routingKey: queue, ...sent }, Buffer.from('rc body'));
      const m = await within(
        (async () => {
          for (;;) {
            const got = await pub.basicGet({ queue, noAck: true });
            if (got !== undefined) return got;
            await new Promise((r) => setTimeout(r, 5));
          }
        })(),
        'the message',
      );
      await pub.close();
      await ch.deleteQueue(queue);
      assert.ok(Buffer.isBuffer(m.body) && m.body.toString() === 'rc body');
      for (const [k, v] of Object.entries(sent)) {
        assert.deepEqual((m as unknown as Record<string, unknown>)[k], v, `property ${k}`);
      }
    } finally {
      await rc.close();
    }
  });

  test('header field tables with every field type amqplib can send round-trip unchanged', async () => {
    const { queue } = await ch.assertQueue('', { exclusive: true });
    const bin = Buffer.from([0, 1, 2, 250, 255]);
    const headers = {
      t: true,
      f: false,
      b: { '!': 'byte', value: -5 },
      B: { '!': 'unsignedbyte', value: 200 },
      s: { '!': 'short', value: -300 },
      u: { '!': 'unsignedshort', value: 60_000 },
      I: { '!': 'int', value: -70_000 },
      i: { '!': 'unsignedint', value: 4_000_000_000 },
      l: { '!': 'long', value: -5_000_000_000 },
      fl: { '!': 'float', value: 0.1 },
      d: { '!': 'double', value: 0.1 },
      D: { '!': 'decimal', value: { places: 2, digits: 12_345 } },
      S: 'héllo ✓',
      empty: '',
      x: bin,
      A: [1, 'two', true, null, [3, [4]], { k: 'v' }],
      T: { '!': 'timestamp', value: 1_700_000_000 },
      F: { nested: { deep: 'x' }, n: 1 },
      V: null,
    };
    await publishConfirmed(queue, [Buffer.from('tables')], { headers });
    const m = await getOne(ch, queue, { noAck: true });
    assert.deepEqual(m.properties.headers, {
      t: true,
      f: false,
      b: -5,
      B: 200,
      s: -300,
      u: 60_000,
      I: -70_000,
      i: 4_000_000_000,
      l: -5_000_000_000,
      fl: Math.fround(0.1),
      d: 0.1,
      D: { '!': 'decimal', value: { places: 2, digits: 12_345 } },
      S: 'héllo ✓',
      empty: '',
      x: bin,
      A: [1, 'two', true, null, [3, [4]], { k: 'v' }],
      T: { '!': 'timestamp', value: 1_700_000_000 },
      F: { nested: { deep: 'x' }, n: 1 },
      V: null,
    });
  });

  test('bodies split across frames arrive whole: empty, 1 byte, exactly one frame, one frame + 1, two frames, 1 MiB', async () => {
    const { queue } = await ch.assertQueue('', { exclusive: true });
    const sizes = [0, 1, bodyBytesPerFrame - 1, bodyBytesPerFrame, bodyBytesPerFrame + 1, 2 * bodyBytesPerFrame, 1024 * 1024];
    const bodies = sizes.map((n, i) => {
      const b = Buffer.alloc(n);
      for (let k = 0; k < n; k++) b[k] = (k * 31 + i) & 0xff;
      return b;
    });
    await publishConfirmed(queue, bodies);
    for (let i = 0; i < 3; i++) {
      const m = await getOne(ch, queue, { noAck: true });
      assert.equal(m.content.length, sizes[i], `get body ${i}`);
      assert.ok(m.content.equals(bodies[i] as Buffer), `get body ${i} bytes`);
    }
    const inbox = new Inbox<amqp.ConsumeMessage>();
    await ch.consume(queue, (m) => m !== null && inbox.push(m), { noAck: true });
    const rest = await inbox.atLeast(sizes.length - 3);
    rest.forEach((m, k) => {
      const i = k + 3;
      assert.equal(m.content.length, sizes[i], `consumed body ${i}`);
      assert.ok(m.content.equals(bodies[i] as Buffer), `consumed body ${i} bytes`);
    });
  });

  test('a 1 MiB body published by a client at frame-max 4096 arrives whole at another client at 131072', async () => {
    const { queue } = await ch.assertQueue('', { exclusive: true });
    const small = await amqp.connect(`${broker.url}?frameMax=4096`);
    try {
      const body = Buffer.alloc(1024 * 1024);
      for (let k = 0; k < body.length; k++) body[k] = (k * 7) & 0xff;
      const c = await small.createConfirmChannel();
      c.sendToQueue(queue, body);
      await within(c.waitForConfirms(), 'confirm');
      const m = await getOne(ch, queue, { noAck: true });
      assert.ok(m.content.equals(body));
    } finally {
      await small.close();
    }
  });
});

function isEmptyObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && Object.keys(v).length === 0;
}
