/**
 * Exchange class and routing with amqplib: declare flags and their equivalence, delete,
 * exchange-to-exchange bindings, the four types, the predeclared exchanges, reserved names,
 * alternate exchanges, internal exchanges, and the reply codes RabbitMQ gives for each misuse.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import type { TestBroker } from '../helpers/broker.js';
import { expectChannelClose, expectConnectionClose, getOne, startE2eBroker, within } from '../helpers/amqp-expect.js';

describe('exchanges', () => {
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

  /** A fresh channel for a test that expects its channel to be closed. */
  async function doomed(): Promise<amqp.Channel> {
    return conn.createChannel();
  }

  /** An exclusive server-named queue bound to exchange with each key (and args). */
  async function boundQueue(exchange: string, keys: string[], args?: Record<string, unknown>): Promise<string> {
    const { queue } = await ch.assertQueue('', { exclusive: true });
    for (const k of keys) await ch.bindQueue(queue, exchange, k, args);
    return queue;
  }

  /** Publishes each [key, body, headers?] then reads back exactly what each queue got, in order. */
  async function routed(exchange: string, queues: string[], msgs: [string, string, Record<string, unknown>?][]): Promise<string[][]> {
    const confirm = await conn.createConfirmChannel();
    for (const [key, body, headers] of msgs) confirm.publish(exchange, key, Buffer.from(body), headers === undefined ? {} : { headers });
    await within(confirm.waitForConfirms(), 'publisher confirms');
    await confirm.close();
    const out: string[][] = [];
    for (const q of queues) {
      const got: string[] = [];
      for (let m = await ch.get(q, { noAck: true }); m !== false; m = await ch.get(q, { noAck: true })) got.push(m.content.toString());
      out.push(got);
    }
    return out;
  }

  test('the default exchange and amq.direct, amq.fanout, amq.topic, amq.headers, amq.match exist with their types', async () => {
    for (const [name, type] of [
      ['amq.direct', 'direct'],
      ['amq.fanout', 'fanout'],
      ['amq.topic', 'topic'],
      ['amq.headers', 'headers'],
      ['amq.match', 'headers'],
    ] as const) {
      await ch.checkExchange(name);
      // Redeclaring a predeclared exchange with its own properties is allowed (durable, not auto-delete).
      await ch.assertExchange(name, type, { durable: true });
    }
    const { queue } = await ch.assertQueue('', { exclusive: true });
    assert.deepEqual(await routed('', [queue], [[queue, 'via default']]), [['via default']]);
  });

  test('the default exchange cannot be declared, deleted or bound (403)', async () => {
    const { queue } = await ch.assertQueue('', { exclusive: true });
    await expectChannelClose(conn, await doomed(), (c) => c.bindQueue(queue, '', queue), { code: 403, method: [50, 20] });
    await expectChannelClose(conn, await doomed(), (c) => c.deleteExchange(''), { code: 403, method: [40, 20] });
  });

  test('declare: passive finds an existing exchange and 404s a missing one', async () => {
    await ch.assertExchange('ex.passive', 'direct', { durable: false });
    await ch.checkExchange('ex.passive');
    await expectChannelClose(conn, await doomed(), (c) => c.checkExchange('ex.no-such'), {
      code: 404,
      method: [40, 10],
      text: /NOT_FOUND - no exchange 'ex.no-such' in vhost '\/'/,
    });
    await ch.deleteExchange('ex.passive');
  });

  test('declare: durable, auto-delete and internal are kept; an equivalent redeclare succeeds', async () => {
    await ch.assertExchange('ex.flags', 'topic', { durable: true, autoDelete: false, internal: false });
    await ch.assertExchange('ex.flags', 'topic', { durable: true, autoDelete: false, internal: false });
    await ch.assertExchange('ex.internal', 'fanout', { durable: false, internal: true });
    await ch.assertExchange('ex.internal', 'fanout', { durable: false, internal: true });
    await ch.deleteExchange('ex.flags');
    await ch.deleteExchange('ex.internal');
  });

  test('declare: an inequivalent redeclare (type, durable, auto-delete, internal, alternate-exchange) is 406 on the channel', async () => {
    await ch.assertExchange('ex.equiv', 'direct', { durable: true, autoDelete: false });
    const cases: [string, amqp.Options.AssertExchange, RegExp][] = [
      ['fanout', { durable: true }, /inequivalent arg 'type'/],
      ['direct', { durable: false }, /inequivalent arg 'durable'/],
      ['direct', { durable: true, autoDelete: true }, /inequivalent arg 'auto_delete'/],
      ['direct', { durable: true, internal: true }, /inequivalent arg 'internal'/],
      ['direct', { durable: true, alternateExchange: 'amq.fanout' }, /inequivalent arg 'alternate-exchange'/],
    ];
    for (const [type, opts, text] of cases) {
      await expectChannelClose(conn, await doomed(), (c) => c.assertExchange('ex.equiv', type, opts), { code: 406, method: [40, 10], text });
    }
    await ch.deleteExchange('ex.equiv');
  });

  test('declare: the amq. prefix is reserved (403 ACCESS_REFUSED, channel close)', async () => {
    await expectChannelClose(conn, await doomed(), (c) => c.assertExchange('amq.mine', 'direct'), {
      code: 403,
      method: [40, 10],
      text: /reserved prefix 'amq\.\*'/,
    });
  });

  test('declare: an unknown exchange type is 503 COMMAND_INVALID and closes the connection', async () => {
    const c = await amqp.connect(broker.url);
    const victim = await c.createChannel();
    victim.on('error', () => {});
    await expectConnectionClose(c, () => victim.assertExchange('ex.weird', 'x-no-such-type'), {
      code: 503,
      text: /unknown exchange type 'x-no-such-type'/,
    });
    // ...and only that connection: ours still works.
    await ch.checkExchange('amq.direct');
  });

  test('delete: if-unused refuses an exchange with bindings (406), then deletes it once unbound; deleting a missing exchange is ok', async () => {
    await ch.assertExchange('ex.del', 'direct', { durable: false });
    const q = await boundQueue('ex.del', ['k']);
    await expectChannelClose(conn, await doomed(), (c) => c.deleteExchange('ex.del', { ifUnused: true }), {
      code: 406,
      method: [40, 20],
      text: /in use/,
    });
    await ch.unbindQueue(q, 'ex.del', 'k');
    await ch.deleteExchange('ex.del', { ifUnused: true });
    await expectChannelClose(conn, await doomed(), (c) => c.checkExchange('ex.del'), { code: 404 });
    await ch.deleteExchange('ex.never-existed');
    await expectChannelClose(conn, await doomed(), (c) => c.deleteExchange('amq.direct'), { code: 403, method: [40, 20] });
  });

  test('auto-delete: the exchange goes when its last binding is removed', async () => {
    await ch.assertExchange('ex.auto', 'fanout', { durable: false, autoDelete: true });
    const q1 = await boundQueue('ex.auto', ['']);
    const q2 = await boundQueue('ex.auto', ['']);
    await ch.unbindQueue(q1, 'ex.auto', '');
    await ch.checkExchange('ex.auto');
    await ch.deleteQueue(q2);
    await expectChannelClose(conn, await doomed(), (c) => c.checkExchange('ex.auto'), { code: 404 });
  });

  test('direct: exact routing key match, several keys per queue, several queues per key', async () => {
    await ch.assertExchange('ex.direct', 'direct', { durable: false });
    const a = await boundQueue('ex.direct', ['red', 'green']);
    const b = await boundQueue('ex.direct', ['green']);
    const got = await routed('ex.direct', [a, b], [['red', 'r'], ['green', 'g'], ['blue', 'b'], ['Red', 'R']]);
    assert.deepEqual(got, [['r', 'g'], ['g']]);
    await ch.deleteExchange('ex.direct');
  });

  test('fanout: every bound queue gets every message, whatever the key', async () => {
    await ch.assertExchange('ex.fanout', 'fanout', { durable: false });
    const a = await boundQueue('ex.fanout', ['ignored']);
    const b = await boundQueue('ex.fanout', ['']);
    assert.deepEqual(await routed('ex.fanout', [a, b], [['x', '1'], ['', '2']]), [['1', '2'], ['1', '2']]);
    await ch.deleteExchange('ex.fanout');
  });

  test('topic: * matches one word, # zero or more; a queue gets a message once even if several bindings match', async () => {
    await ch.assertExchange('ex.topic', 'topic', { durable: false });
    const star = await boundQueue('ex.topic', ['*.orange.*']);
    const hash = await boundQueue('ex.topic', ['lazy.#', '*.*.rabbit']);
    const all = await boundQueue('ex.topic', ['#']);
    const got = await routed('ex.topic', [star, hash, all], [
      ['quick.orange.rabbit', '1'],
      ['lazy.orange.elephant', '2'],
      ['quick.orange.fox', '3'],
      ['lazy.brown.fox', '4'],
      ['lazy', '5'],
      ['quick.brown.fox', '6'],
      ['orange', '7'],
      ['lazy.orange.new.rabbit', '8'],
    ]);
    assert.deepEqual(got, [
      ['1', '2', '3'],
      ['1', '2', '4', '5', '8'],
      ['1', '2', '3', '4', '5', '6', '7', '8'],
    ]);
    await ch.deleteExchange('ex.topic');
  });

  test('headers: x-match all needs every header, x-match any one of them', async () => {
    await ch.assertExchange('ex.headers', 'headers', { durable: false });
    const all = await boundQueue('ex.headers', [''], { 'x-match': 'all', format: 'pdf', type: 'report' });
    const any = await boundQueue('ex.headers', [''], { 'x-match': 'any', format: 'pdf', type: 'report' });
    const dflt = await boundQueue('ex.headers', [''], { format: 'zip' }); // x-match defaults to all
    const got = await routed('ex.headers', [all, any, dflt], [
      ['', 'both', { format: 'pdf', type: 'report' }],
      ['', 'one', { format: 'pdf', type: 'log' }],
      ['', 'none', { format: 'doc' }],
      ['', 'extra', { format: 'pdf', type: 'report', size: 3 }],
      ['', 'zip', { format: 'zip' }],
      ['', 'no headers'],
    ]);
    assert.deepEqual(got, [['both', 'extra'], ['both', 'one', 'extra'], ['zip']]);
    await ch.deleteExchange('ex.headers');
  });

  test('amq.match routes on headers like amq.headers', async () => {
    const q = await boundQueue('amq.match', [''], { 'x-match': 'any', tenant: 'acme' });
    assert.deepEqual(await routed('amq.match', [q], [['', 'yes', { tenant: 'acme' }], ['', 'no', { tenant: 'other' }]]), [['yes']]);
  });

  test('exchange-to-exchange: bind routes through, unbind stops it, and a missing end is 404', async () => {
    await ch.assertExchange('ex.e2e.src', 'topic', { durable: false });
    await ch.assertExchange('ex.e2e.dst', 'fanout', { durable: false });
    await ch.bindExchange('ex.e2e.dst', 'ex.e2e.src', 'orders.*');
    const q = await boundQueue('ex.e2e.dst', ['']);
    assert.deepEqual(await routed('ex.e2e.src', [q], [['orders.new', 'in'], ['invoices.new', 'out']]), [['in']]);
    // A cycle back to the source does not duplicate or loop.
    await ch.bindExchange('ex.e2e.src', 'ex.e2e.dst', '#');
    assert.deepEqual(await routed('ex.e2e.src', [q], [['orders.x', 'once']]), [['once']]);
    await ch.unbindExchange('ex.e2e.src', 'ex.e2e.dst', '#');
    await ch.unbindExchange('ex.e2e.dst', 'ex.e2e.src', 'orders.*');
    assert.deepEqual(await routed('ex.e2e.src', [q], [['orders.new', 'gone']]), [[]]);
    await expectChannelClose(conn, await doomed(), (c) => c.bindExchange('ex.e2e.dst', 'ex.no-such-source', ''), {
      code: 404,
      method: [40, 30],
    });
    await expectChannelClose(conn, await doomed(), (c) => c.bindExchange('ex.no-such-dest', 'ex.e2e.src', ''), {
      code: 404,
      method: [40, 30],
    });
    await ch.deleteExchange('ex.e2e.src');
    await ch.deleteExchange('ex.e2e.dst');
  });

  test('queue.bind to a missing exchange is 404', async () => {
    const { queue } = await ch.assertQueue('', { exclusive: true });
    await expectChannelClose(conn, await doomed(), (c) => c.bindQueue(queue, 'ex.absent', 'k'), { code: 404, method: [50, 20] });
  });

  test('alternate-exchange: messages the exchange cannot route go to its alternate, and are not returned as unroutable', async () => {
    await ch.assertExchange('ex.ae.fallback', 'fanout', { durable: false });
    await ch.assertExchange('ex.ae.main', 'direct', { durable: false, alternateExchange: 'ex.ae.fallback' });
    const main = await boundQueue('ex.ae.main', ['known']);
    const fallback = await boundQueue('ex.ae.fallback', ['']);
    const returns: string[] = [];
    const onReturn = (m: amqp.Message): void => {
      returns.push(m.content.toString());
    };
    ch.on('return', onReturn);
    ch.publish('ex.ae.main', 'unknown', Buffer.from('mandatory-unroutable'), { mandatory: true });
    const got = await routed('ex.ae.main', [main, fallback], [['known', 'routed'], ['other', 'unroutable']]);
    ch.off('return', onReturn);
    assert.deepEqual(got, [['routed'], ['mandatory-unroutable', 'unroutable']]);
    assert.deepEqual(returns, []);
    await ch.deleteExchange('ex.ae.main');
    await ch.deleteExchange('ex.ae.fallback');
  });

  test('sender-selected distribution: CC and BCC headers add routing keys, BCC is removed before delivery', async () => {
    await ch.assertExchange('ex.cc', 'direct', { durable: false });
    const main = await boundQueue('ex.cc', ['main']);
    const copy = await boundQueue('ex.cc', ['copy']);
    const blind = await boundQueue('ex.cc', ['blind']);
    const other = await boundQueue('ex.cc', ['other']);
    const pub = await conn.createConfirmChannel();
    pub.publish('ex.cc', 'main', Buffer.from('cc'), { CC: ['copy', 'copy'], BCC: 'blind', headers: { keep: 'me' } });
    await within(pub.waitForConfirms(), 'confirm');
    await pub.close();
    for (const q of [main, copy, blind]) {
      const m = await getOne(ch, q, { noAck: true });
      assert.equal(m.content.toString(), 'cc');
      assert.deepEqual(m.properties.headers, { CC: ['copy', 'copy'], keep: 'me' }, 'BCC is not delivered, CC is');
      assert.equal(await ch.get(q), false, 'one copy per queue');
    }
    assert.equal(await ch.get(other), false);
    // A CC that is not an array of strings makes the message invalid.
    await expectChannelClose(conn, await doomed(), (c) => c.publish('ex.cc', 'main', Buffer.from('x'), { headers: { CC: 'copy' } }), {
      code: 406,
      method: [60, 40],
      text: /PRECONDITION_FAILED - invalid message: {unacceptable_type_in_header,"CC",longstr}/,
    });
    await ch.deleteExchange('ex.cc');
  });

  test('publish to an internal exchange is 403; it still routes what reaches it through a binding', async () => {
    await ch.assertExchange('ex.int', 'fanout', { durable: false, internal: true });
    await ch.assertExchange('ex.int.front', 'fanout', { durable: false });
    await ch.bindExchange('ex.int', 'ex.int.front', '');
    const q = await boundQueue('ex.int', ['']);
    assert.deepEqual(await routed('ex.int.front', [q], [['', 'through']]), [['through']]);
    await expectChannelClose(conn, await doomed(), (c) => c.publish('ex.int', '', Buffer.from('x')), {
      code: 403,
      method: [60, 40],
      text: /internal exchange 'ex.int'/,
    });
    await ch.deleteExchange('ex.int.front');
    await ch.deleteExchange('ex.int');
  });

  test('publish to a missing exchange is 404 on the channel', async () => {
    await expectChannelClose(conn, await doomed(), (c) => c.publish('ex.missing', 'k', Buffer.from('x')), {
      code: 404,
      method: [60, 40],
      text: /no exchange 'ex.missing' in vhost '\/'/,
    });
  });
});
