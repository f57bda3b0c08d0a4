/**
 * A second round of differences found by probing RabbitMQ 3.10 side by side with warren:
 * a message that arrives already expired (x-message-ttl 0) is gone before a count, a
 * basic.get or a purge that follows it looks at the queue; drop-head offers an arriving
 * message to the consumers before it applies x-max-length; a refused expiration names the
 * exact value and is laid out as Erlang's ~p lays it out; and a server-named (amq.*) queue
 * cannot be declared again by name. Run with WARREN_E2E_REFERENCE_URL set, the same
 * expectations hold against RabbitMQ. The round's policy and permission findings need admin
 * commands: they are in rabbitmq-parity-admin.test.ts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import type { TestBroker } from '../helpers/broker.js';
import { expectChannelClose, getOne, startE2eBroker } from '../helpers/amqp-expect.js';
import { bodies, consumeInto, drain, publishConfirmed, unique } from '../helpers/feature-kit.js';

describe('RabbitMQ 3.10 parity, second round', () => {
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
