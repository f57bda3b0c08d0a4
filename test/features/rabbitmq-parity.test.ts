/**
 * Behaviours found by differential probing against RabbitMQ 3.10, where warren answered
 * otherwise: single-active-consumer takeover after a cancel, basic.get's message-count
 * behind an expired message, drop-head after a requeue, x-delivery-count on quorum queues,
 * x-first-death-* only on a first death, basic.qos global=false lifting the channel limit,
 * quorum queues' global qos and basic.get with single-active-consumer,
 * and the texts of inequivalent and mistyped arguments; from a second round, a message that
 * arrives already expired (x-message-ttl 0) gone before a count, get or purge, drop-head
 * offering an arrival to consumers before it applies x-max-length, a refused expiration
 * named exactly and laid out as Erlang's ~p does, and no redeclare of a server-named queue.
 * Run with WARREN_E2E_REFERENCE_URL set, the same expectations hold against RabbitMQ. The
 * findings that need admin commands are in rabbitmq-parity-admin.test.ts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import type { TestBroker } from '../helpers/broker.js';
import { expectChannelClose, expectConnectionClose, getOne, startE2eBroker } from '../helpers/amqp-expect.js';
import { bodies, consumeInto, deaths, drain, publishConfirmed, unique } from '../helpers/feature-kit.js';

describe('RabbitMQ 3.10 parity', () => {
  let broker: TestBroker;
  let conn: amqp.ChannelModel;
  let ch: amqp.ConfirmChannel;
  before(async () => {
    broker = await startE2eBroker();
    conn = await amqp.connect(broker.url);
    ch = await conn.createConfirmChannel();
  });
  after(async () => {
    await ch.close();
    await conn.close();
    assert.equal(await broker.stop(), 0);
  });

  /** A channel for an operation the server is expected to refuse. */
  async function doomed(): Promise<amqp.Channel> {
    const c = await conn.createChannel();
    c.on('error', () => {});
    return c;
  }

  test('single active consumer (quorum): when the active consumer cancels, the next one gets the ready messages at once', async () => {
    const q = unique('parity-sac');
    await ch.assertQueue(q, { durable: true, arguments: { 'x-queue-type': 'quorum', 'x-single-active-consumer': true } });
    const chA = await conn.createChannel();
    const chB = await conn.createChannel();
    await chA.prefetch(1);
    const a = await consumeInto(chA, q, { noAck: false });
    const b = await consumeInto(chB, q, { noAck: false });
    for (const m of ['m1', 'm2', 'm3']) assert.equal(await publishConfirmed(ch, '', q, m), 'ack');
    await a.inbox.atLeast(1);
    await chA.cancel(a.tag);
    // No publish after the cancel: B must be handed what is already waiting.
    await b.inbox.atLeast(2, 'the ready messages at the consumer that took over');
    assert.deepEqual(bodies(b.inbox.items), ['m2', 'm3']);
    assert.deepEqual(bodies(a.inbox.items), ['m1']);
    await chA.close();
    await chB.close();
    await ch.deleteQueue(q);
  });

  test('basic.get: an expired message that reaches the head leaves before get-ok counts the rest', async () => {
    const q = unique('parity-get-ttl');
    await ch.assertQueue(q, { exclusive: true });
    assert.equal(await publishConfirmed(ch, '', q, 'a'), 'ack');
    assert.equal(await publishConfirmed(ch, '', q, 'b-expired', { expiration: '0' }), 'ack');
    assert.equal(await publishConfirmed(ch, '', q, 'c'), 'ack');
    const first = await getOne(ch, q, { noAck: true });
    assert.equal(first.content.toString(), 'a');
    assert.equal(first.fields.messageCount, 1, 'only c is left: b expired at the head');
    const second = await getOne(ch, q, { noAck: true });
    assert.equal(second.content.toString(), 'c');
    assert.equal(second.fields.messageCount, 0);
    await ch.deleteQueue(q);
  });

  test('x-overflow drop-head: a requeue that puts the queue over x-max-length drops (dead-letters) the head', async () => {
    const q = unique('parity-dh');
    const dead = unique('parity-dh-dead');
    await ch.assertQueue(dead, { exclusive: true });
    await ch.assertQueue(q, { exclusive: true, arguments: { 'x-max-length': 2, 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': dead } });
    for (const m of ['m1', 'm2']) assert.equal(await publishConfirmed(ch, '', q, m), 'ack');
    const m1 = await getOne(ch, q);
    assert.equal(m1.content.toString(), 'm1');
    assert.equal(await publishConfirmed(ch, '', q, 'm3'), 'ack'); // ready: m2, m3 — within the limit
    ch.nack(m1, false, true); // m1 back at the head makes three
    const d = await getOne(ch, dead, { noAck: true });
    assert.equal(d.content.toString(), 'm1');
    assert.equal(deaths(d)[0]?.reason, 'maxlen');
    const rest = [await getOne(ch, q, { noAck: true }), await getOne(ch, q, { noAck: true })];
    assert.deepEqual(bodies(rest), ['m2', 'm3']);
    assert.equal(rest[1]?.fields.messageCount, 0);
    await ch.deleteQueue(q);
    await ch.deleteQueue(dead);
  });

  test('quorum queues: x-delivery-count counts the returns; basic.get always carries it, a consumer from the first redelivery', async () => {
    const q = unique('parity-dc');
    await ch.assertQueue(q, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    assert.equal(await publishConfirmed(ch, '', q, 'g', { headers: { app: 'kept' } }), 'ack');
    const g0 = await getOne(ch, q);
    assert.deepEqual(g0.properties.headers, { app: 'kept', 'x-delivery-count': 0 });
    ch.nack(g0, false, true);
    const g1 = await getOne(ch, q);
    assert.equal(g1.fields.redelivered, true);
    assert.deepEqual(g1.properties.headers, { app: 'kept', 'x-delivery-count': 1 });
    ch.ack(g1);

    assert.equal(await publishConfirmed(ch, '', q, 'c'), 'ack');
    const cons = await conn.createChannel();
    const { inbox } = await consumeInto(cons, q, { noAck: false });
    const [first] = await inbox.atLeast(1);
    assert.equal(first?.properties.headers?.['x-delivery-count'], undefined, 'no header on a first delivery');
    cons.nack(first as amqp.ConsumeMessage, false, true);
    const [, second] = await inbox.atLeast(2, 'the redelivery');
    assert.equal(second?.fields.redelivered, true);
    assert.equal(second?.properties.headers?.['x-delivery-count'], 1);
    cons.ack(second as amqp.ConsumeMessage);
    await cons.close();
    await ch.deleteQueue(q);
  });

  test('dead-lettering a message that already has x-death (even from its publisher) adds no x-first-death-*', async () => {
    const q = unique('parity-fd');
    const dead = unique('parity-fd-dead');
    await ch.assertQueue(dead, { exclusive: true });
    await ch.assertQueue(q, { exclusive: true, arguments: { 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': dead } });
    const earlier = { count: 1, reason: 'expired', queue: 'elsewhere', exchange: '', 'routing-keys': ['k'], time: { '!': 'timestamp', value: 1 } };
    assert.equal(await publishConfirmed(ch, '', q, 'old', { headers: { 'x-death': [earlier] } }), 'ack');
    ch.reject(await getOne(ch, q), false);
    const d = await getOne(ch, dead, { noAck: true });
    const h = d.properties.headers ?? {};
    assert.deepEqual(deaths(d).map((e) => [e.queue, e.reason]), [[q, 'rejected'], ['elsewhere', 'expired']]);
    assert.equal(h['x-first-death-reason'], undefined);
    assert.equal(h['x-first-death-queue'], undefined);
    await ch.deleteQueue(q);
    await ch.deleteQueue(dead);
  });

  test('basic.qos global=false after global=true lifts the channel-wide limit', async () => {
    const q = unique('parity-qos');
    await ch.assertQueue(q, { exclusive: true });
    for (const m of ['m1', 'm2', 'm3', 'm4']) assert.equal(await publishConfirmed(ch, '', q, m), 'ack');
    const c = await conn.createChannel();
    await c.prefetch(1, true);
    await c.prefetch(3, false);
    const { inbox } = await consumeInto(c, q, { noAck: false });
    // With the global limit of 1 still in force only m1 would come.
    assert.deepEqual(bodies(await inbox.atLeast(3, 'three deliveries under the per-consumer limit')), ['m1', 'm2', 'm3']);
    await c.close();
    await ch.deleteQueue(q);
  });

  test('quorum queues refuse a consumer on a channel with a global prefetch: 540 closes the connection', async () => {
    const q = unique('parity-qgq');
    await ch.assertQueue(q, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    const other = await amqp.connect(broker.url);
    const c = await other.createChannel();
    c.on('error', () => {});
    await c.prefetch(5, true);
    await expectConnectionClose(other, () => c.consume(q, () => {}), {
      code: 540,
      text: new RegExp(`NOT_IMPLEMENTED - queue '${q}' in vhost '/' does not support global qos`),
    });
    await ch.deleteQueue(q);
  });

  test('basic.get on a quorum queue with single-active-consumer is 405 RESOURCE_LOCKED', async () => {
    const q = unique('parity-sac-get');
    await ch.assertQueue(q, { durable: true, arguments: { 'x-queue-type': 'quorum', 'x-single-active-consumer': true } });
    await expectChannelClose(conn, await doomed(), (c) => c.get(q), {
      code: 405,
      method: [60, 70],
      text: new RegExp(`RESOURCE_LOCKED - cannot obtain access to locked queue '${q}' in vhost '/'. basic.get operations are not supported by quorum queues with single active consumer`),
    });
    await ch.deleteQueue(q);
  });

  test('inequivalent arguments present on both sides name the two values only', async () => {
    const q = unique('parity-ineq');
    await ch.assertQueue(q, { exclusive: true, arguments: { 'x-message-ttl': 10 } });
    await expectChannelClose(conn, await doomed(), (c) => c.assertQueue(q, { exclusive: true, arguments: { 'x-message-ttl': 20 } }), {
      code: 406,
      method: [50, 10],
      text: new RegExp(`inequivalent arg 'x-message-ttl' for queue '${q}' in vhost '/': received '20' but current is '10'"`),
    });
    await expectChannelClose(conn, await doomed(), (c) => c.assertQueue(q, { exclusive: true, arguments: {} }), {
      code: 406,
      text: new RegExp(`received none but current is the value '10' of type 'byte'`),
    });
    const x = unique('parity-ae');
    await ch.assertExchange(x, 'direct', { autoDelete: true, alternateExchange: 'ae-one' });
    await expectChannelClose(conn, await doomed(), (c) => c.assertExchange(x, 'direct', { autoDelete: true, alternateExchange: 'ae-two' }), {
      code: 406,
      method: [40, 10],
      text: new RegExp(`inequivalent arg 'alternate-exchange' for exchange '${x}' in vhost '/': received 'ae-two' but current is 'ae-one'`),
    });
    await expectChannelClose(conn, await doomed(), (c) => c.assertExchange(x, 'direct', { autoDelete: true }), {
      code: 406,
      text: /received none but current is the value 'ae-one' of type 'longstr'/,
    });
    await ch.deleteExchange(x);
    await ch.deleteQueue(q);
  });

  test('a new exchange whose alternate-exchange is not a string is 406 invalid type', async () => {
    const x = unique('parity-ae-type');
    await expectChannelClose(conn, await doomed(), (c) => c.assertExchange(x, 'fanout', { autoDelete: true, arguments: { 'alternate-exchange': 70000 } }), {
      code: 406,
      method: [40, 10],
      text: new RegExp(`PRECONDITION_FAILED - invalid type 'signedint' for arg 'alternate-exchange' in exchange '${x}' in vhost '/'`),
    });
    // Nothing was declared.
    await expectChannelClose(conn, await doomed(), (c) => c.checkExchange(x), { code: 404, method: [40, 10] });
  });

  test('x-message-ttl 0: messages published just before a count, a get or a purge are already gone', async () => {
    const q = unique('parity2-ttl0');
    const plain = await conn.createChannel();
    await plain.assertQueue(q, { exclusive: true, arguments: { 'x-message-ttl': 0 } });
    // No confirms: the publishes and what follows them reach the broker back to back.
    plain.sendToQueue(q, Buffer.from('a'));
    plain.sendToQueue(q, Buffer.from('b'));
    assert.equal((await plain.checkQueue(q)).messageCount, 0, 'queue.declare-ok counts no expired message');
    plain.sendToQueue(q, Buffer.from('c'));
    assert.equal(await plain.get(q, { noAck: true }), false, 'basic.get finds nothing');
    plain.sendToQueue(q, Buffer.from('d'));
    assert.equal((await plain.purgeQueue(q)).messageCount, 0, 'purge-ok counts nothing');
    // A consumer that is there when the message arrives still gets it.
    const { inbox, tag } = await consumeInto(plain, q, { noAck: true });
    assert.equal(await publishConfirmed(ch, '', q, 'e'), 'ack');
    assert.deepEqual(bodies(await inbox.atLeast(1, 'the delivery to the consumer')), ['e']);
    await plain.cancel(tag);
    await plain.close();
  });

  test('x-max-length 0 (drop-head): an arriving message goes to a consumer with credit; only what no consumer can take is dropped', async () => {
    const q = unique('parity2-live-only');
    const dead = unique('parity2-live-only-dead');
    await ch.assertQueue(dead, { exclusive: true });
    await ch.assertQueue(q, { exclusive: true, arguments: { 'x-max-length': 0, 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': dead } });
    const cons = await conn.createChannel();
    await cons.prefetch(1);
    const { inbox, tag } = await consumeInto(cons, q, { noAck: false });
    for (const m of ['m0', 'm1', 'm2']) assert.equal(await publishConfirmed(ch, '', q, m), 'ack');
    // m0 fills the consumer's prefetch of 1; m1 and m2 find no credit and are dropped.
    assert.deepEqual(bodies(await inbox.atLeast(1, 'the delivery of m0')), ['m0']);
    assert.deepEqual(bodies([await getOne(ch, dead, { noAck: true }), await getOne(ch, dead, { noAck: true })]), ['m1', 'm2']);
    assert.equal((await ch.checkQueue(q)).messageCount, 0);
    assert.deepEqual(bodies(inbox.items), ['m0']);
    await cons.cancel(tag);
    await cons.close();
    await ch.deleteQueue(q);
    await ch.deleteQueue(dead);
  });

  test('a refused expiration names the exact value; a long reason breaks as Erlang ~p breaks it', async () => {
    const q = unique('parity2-exp');
    await ch.assertQueue(q, { exclusive: true });
    const cases: [string, string][] = [
      // Fits on the line: one line.
      ['315360000001', "invalid expiration '315360000001': {value_too_large,315360000001}"],
      ['1aaaaaaaaaaaaaaaaa', `invalid expiration '1aaaaaaaaaaaaaaaaa': {leftover_string,"aaaaaaaaaaaaaaaaa"}`],
      // Would reach column 79: broken after the comma, the value under the tag; all 19 or 20 digits.
      ['9999999999999999999', `invalid expiration '9999999999999999999': {value_too_large,\n${' '.repeat(43)}9999999999999999999}`],
      ['-99999999999999999999', `invalid expiration '-99999999999999999999': {value_negative,\n${' '.repeat(45)}-99999999999999999999}`],
      ['1aaaaaaaaaaaaaaaaaa', `invalid expiration '1aaaaaaaaaaaaaaaaaa': {leftover_string,\n${' '.repeat(43)}"aaaaaaaaaaaaaaaaaa"}`],
    ];
    for (const [expiration, text] of cases) {
      await expectChannelClose(conn, await doomed(), (c) => c.publish('', q, Buffer.from('x'), { expiration }), {
        code: 406,
        method: [60, 40],
        text: new RegExp(`PRECONDITION_FAILED - ${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"$`),
      });
    }
    assert.deepEqual(bodies(await drain(ch, q)), []);
    await ch.deleteQueue(q);
  });

  test('a server-named queue can be declared passively by its name, but not declared again (403, reserved prefix)', async () => {
    const { queue } = await ch.assertQueue('', { exclusive: true });
    assert.match(queue, /^amq\.gen-[A-Za-z0-9_-]{22}$/);
    assert.equal((await ch.checkQueue(queue)).queue, queue);
    await expectChannelClose(conn, await doomed(), (c) => c.assertQueue(queue, { exclusive: true }), {
      code: 403,
      method: [50, 10],
      text: new RegExp(`ACCESS_REFUSED - queue name '${queue.replace('.', '\\.')}' contains reserved prefix 'amq\\.\\*'`),
    });
    await ch.deleteQueue(queue);
  });
});
