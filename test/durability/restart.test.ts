/**
 * Clean restart (SIGTERM, start on the same data directory): durable definitions — vhost,
 * user and permissions, exchanges, exchange-to-exchange and queue bindings, queues — come
 * back and route again; exactly the persistent messages in durable queues that were not
 * settled come back, in order, with their properties and headers, and redelivered=true
 * exactly for those that had been delivered; transient messages and non-durable objects are gone.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { Inbox, expectChannelClose, within } from '../helpers/amqp-expect.js';
import { connect, drainQueue, makeDataDir, publishConfirmed, removeDataDir, warrenctl } from './durability-kit.js';

/** Publish i is persistent unless i % 3 === 2 (those are transient). */
const publishCount = 12;
const isPersistent = (i: number): boolean => i % 3 !== 2;

function propsOf(i: number): amqp.Options.Publish {
  return {
    persistent: isPersistent(i),
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    headers: { seq: i, 'x-text': 'héllo wörld', nested: { a: 1, b: 'two' }, list: [1, 'two', true], big: 2 ** 40 },
    correlationId: `corr-${i}`,
    replyTo: 'replies',
    messageId: `msg-${i}`,
    timestamp: 1_700_000_000 + i,
    type: 'test.event',
    appId: 'durability-suite',
    priority: 3,
    ...(i === 4 ? { expiration: '3600000' } : {}),
  };
}

function bodyOf(i: number): Buffer {
  return Buffer.from(JSON.stringify({ seq: i, pad: 'x'.repeat(i * 37) }));
}

describe('restart on the same data directory', () => {
  const dataDir = makeDataDir();
  let broker: TestBroker;

  before(async () => {
    broker = await startBroker({ dataDir });
  });
  after(async () => {
    await broker.stop();
    removeDataDir(dataDir);
  });

  test('definitions and exactly the unsettled persistent messages come back, in order, with their properties', async () => {
    // ---- before: users, vhost and permissions through warrenctl ---------------------------
    await warrenctl(dataDir, ['add_vhost', 'app']);
    await warrenctl(dataDir, ['add_user', 'alice', 'wonder-land']);
    await warrenctl(dataDir, ['set_permissions', '-p', 'app', 'alice', '^app-', '^(app-|amq\\.default$)', '^app-']);

    const conn = await connect(broker.url);
    conn.on('error', () => {}); // the SIGTERM below closes it with connection-forced
    const ch = await conn.createConfirmChannel();
    ch.on('error', () => {});

    await ch.assertExchange('durable-x', 'direct', { durable: true });
    await ch.assertExchange('durable-fan', 'fanout', { durable: true });
    await ch.assertExchange('transient-x', 'fanout', { durable: false });
    await ch.assertQueue('durable-q', { durable: true });
    await ch.assertQueue('routed-q', { durable: true });
    await ch.assertQueue('consumed-q', { durable: true });
    await ch.assertQueue('transient-q', { durable: false });
    await ch.bindQueue('routed-q', 'durable-x', 'k1');
    await ch.bindExchange('durable-fan', 'durable-x', 'k2');
    await ch.bindQueue('routed-q', 'durable-fan', '');
    await ch.bindQueue('durable-q', 'transient-x', '');
    await ch.bindQueue('transient-q', 'durable-x', 'k1');

    for (let i = 0; i < publishCount; i++) await publishConfirmed(ch, '', 'durable-q', bodyOf(i), propsOf(i));
    await publishConfirmed(ch, '', 'transient-q', Buffer.from('persistent, but in a non-durable queue'), { persistent: true });
    // Through the exchange graph: routed-q gets one copy per route.
    await publishConfirmed(ch, 'durable-x', 'k1', Buffer.from('via k1'), { persistent: true });
    await publishConfirmed(ch, 'durable-x', 'k2', Buffer.from('via k2 and durable-fan'), { persistent: true });
    for (let i = 0; i < 5; i++) await publishConfirmed(ch, '', 'consumed-q', Buffer.from(`c${i}`), { persistent: true });
    // Purged and deleted: their logged messages must not come back.
    await ch.assertQueue('purged-q', { durable: true });
    await ch.assertQueue('deleted-q', { durable: true });
    for (let i = 0; i < 3; i++) {
      await publishConfirmed(ch, '', 'purged-q', Buffer.from(`purged ${i}`), { persistent: true });
      await publishConfirmed(ch, '', 'deleted-q', Buffer.from(`deleted ${i}`), { persistent: true });
    }
    assert.equal((await ch.purgeQueue('purged-q')).messageCount, 3);
    assert.equal((await ch.deleteQueue('deleted-q')).messageCount, 3);

    const alice = await connect(`amqp://alice:wonder-land@${broker.host}:${broker.port}/app`);
    alice.on('error', () => {});
    const aliceCh = await alice.createConfirmChannel();
    aliceCh.on('error', () => {});
    await aliceCh.assertQueue('app-q', { durable: true });
    await publishConfirmed(aliceCh, '', 'app-q', Buffer.from('in vhost app'), { persistent: true });

    // ---- consume some, settle some, leave some unacked --------------------------------------
    const got = new Map<number, amqp.GetMessage>();
    for (let n = 0; n < 8; n++) {
      const m = await ch.get('durable-q', { noAck: false });
      assert.ok(m !== false, `get #${n}`);
      got.set((m.properties.headers as { seq: number }).seq, m);
    }
    // Delivered so far: 0 1 2 3 4 5 6 7 (2 and 5 transient).
    assert.deepEqual([...got.keys()], [0, 1, 2, 3, 4, 5, 6, 7]);
    const take = (seq: number): amqp.GetMessage => {
      const m = got.get(seq);
      assert.ok(m !== undefined);
      return m;
    };
    ch.ack(take(0));
    ch.ack(take(2));
    ch.reject(take(3), false); // settled: gone for good
    ch.nack(take(1), false, true); // back in the queue, redelivered
    // 4, 5, 6, 7 stay unacked until the broker stops.

    const inbox = new Inbox<amqp.ConsumeMessage>();
    const consumer = await conn.createChannel();
    consumer.on('error', () => {});
    await consumer.prefetch(3);
    await consumer.consume('consumed-q', (m) => {
      if (m !== null) inbox.push(m);
    });
    const consumed = await inbox.atLeast(3, 'three deliveries from consumed-q');
    assert.deepEqual(
      consumed.map((m) => m.content.toString()),
      ['c0', 'c1', 'c2'],
    );
    consumer.ack(consumed[0] as amqp.ConsumeMessage);
    // The ack frees a prefetch slot: c3 is delivered too, c4 never is.
    assert.deepEqual(
      (await inbox.atLeast(4, 'c3 after the ack')).map((m) => m.content.toString()),
      ['c0', 'c1', 'c2', 'c3'],
    );
    // Sync points: every ack above has reached the shard before the round trips return
    // (same channel, same shard ring, processed in order).
    await ch.checkQueue('durable-q');
    await consumer.checkQueue('consumed-q');

    assert.equal(await broker.stop({ keepData: true }), 0, `clean stop:\n${broker.log()}`);

    // ---- after ------------------------------------------------------------------------------
    broker = await startBroker({ dataDir });
    const conn2 = await connect(broker.url);
    const ch2 = await conn2.createConfirmChannel();

    // Unacked for now: part of them is acked below and the rest must survive a second restart.
    const back = await drainQueue(ch2, 'durable-q', { ack: false });
    const expected = [
      { seq: 1, redelivered: true }, // nacked with requeue
      { seq: 4, redelivered: true }, // delivered, unacked at the stop
      { seq: 6, redelivered: true },
      { seq: 7, redelivered: true },
      { seq: 8, redelivered: false }, // never delivered
      { seq: 9, redelivered: false },
      { seq: 10, redelivered: false },
      { seq: 11, redelivered: false },
    ].filter((e) => isPersistent(e.seq));
    assert.deepEqual(
      back.map((m) => ({ seq: (m.properties.headers as { seq: number }).seq, redelivered: m.fields.redelivered })),
      expected,
      'persistent, unsettled messages of durable-q, in publish order, redelivered exactly where delivered',
    );
    for (const m of back) {
      const seq = (m.properties.headers as { seq: number }).seq;
      const want = propsOf(seq);
      assert.deepEqual(m.content, bodyOf(seq), `body of ${seq}`);
      const p = m.properties;
      assert.equal(p.deliveryMode, 2);
      assert.equal(p.contentType, want.contentType);
      assert.equal(p.contentEncoding, want.contentEncoding);
      assert.deepEqual(p.headers, want.headers, `headers of ${seq}`);
      assert.equal(p.correlationId, want.correlationId);
      assert.equal(p.replyTo, want.replyTo);
      assert.equal(p.messageId, want.messageId);
      assert.equal(p.timestamp, want.timestamp);
      assert.equal(p.type, want.type);
      assert.equal(p.appId, want.appId);
      assert.equal(p.priority, want.priority);
      assert.equal(p.expiration, want.expiration);
    }

    // Recovered messages settle like any other: ack 1 and 9; 4, 6, 7 and 10 stay unacked.
    for (const m of back) if ([1, 9].includes((m.properties.headers as { seq: number }).seq)) ch2.ack(m);
    // Ids go on after the recovered ones: this one sorts after them in the third run.
    await publishConfirmed(ch2, '', 'durable-q', bodyOf(100), propsOf(100));

    assert.deepEqual(await drainQueue(ch2, 'purged-q'), [], 'purged messages stay purged');
    await expectChannelClose(conn2, await conn2.createChannel(), (c) => c.checkQueue('deleted-q'), { code: 404 });
    assert.deepEqual(
      (await drainQueue(ch2, 'consumed-q')).map((m) => [m.content.toString(), m.fields.redelivered]),
      [
        ['c1', true],
        ['c2', true],
        ['c3', true],
        ['c4', false],
      ],
    );
    assert.deepEqual(
      (await drainQueue(ch2, 'routed-q')).map((m) => m.content.toString()),
      ['via k1', 'via k2 and durable-fan'],
    );

    // Durable exchanges and bindings (queue and exchange-to-exchange) route again.
    await publishConfirmed(ch2, 'durable-x', 'k1', Buffer.from('again k1'), { persistent: true });
    await publishConfirmed(ch2, 'durable-x', 'k2', Buffer.from('again k2'), { persistent: true });
    assert.deepEqual(
      (await drainQueue(ch2, 'routed-q')).map((m) => m.content.toString()),
      ['again k1', 'again k2'],
    );

    // Non-durable queue and exchange are gone.
    await expectChannelClose(conn2, await conn2.createChannel(), (c) => c.checkQueue('transient-q'), { code: 404 });
    await expectChannelClose(conn2, await conn2.createChannel(), (c) => c.checkExchange('transient-x'), { code: 404 });

    // The user, the vhost and the permissions: alice works in 'app' and nowhere else.
    const alice2 = await connect(`amqp://alice:wonder-land@${broker.host}:${broker.port}/app`);
    const aliceCh2 = await alice2.createChannel();
    assert.deepEqual(
      (await drainQueue(aliceCh2, 'app-q')).map((m) => [m.content.toString(), m.fields.redelivered]),
      [['in vhost app', false]],
    );
    await expectChannelClose(alice2, await alice2.createChannel(), (c) => c.assertQueue('not-app-q', { durable: true }), { code: 403 });
    await alice2.close();
    await assert.rejects(
      within(connect(`amqp://alice:wrong-password@${broker.host}:${broker.port}/app`), 'a refused login'),
      'a wrong password is still refused',
    );
    await ch2.checkQueue('durable-q'); // the acks have reached the shard
    conn2.on('error', () => {});
    assert.equal(await broker.stop({ keepData: true }), 0, `clean stop:\n${broker.log()}`);

    // ---- a third run: what the second one acked stays gone, the rest is back once more ----------
    broker = await startBroker({ dataDir });
    const conn3 = await connect(broker.url);
    const third = await drainQueue(await conn3.createChannel(), 'durable-q');
    assert.deepEqual(
      third.map((m) => ({ seq: (m.properties.headers as { seq: number }).seq, redelivered: m.fields.redelivered })),
      [
        { seq: 4, redelivered: true },
        { seq: 6, redelivered: true },
        { seq: 7, redelivered: true },
        { seq: 10, redelivered: true },
        { seq: 100, redelivered: false },
      ],
    );
    await conn3.close();
  });
});
