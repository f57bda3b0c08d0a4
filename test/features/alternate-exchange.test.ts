/**
 * The alternate-exchange argument of exchange.declare: a message its exchange cannot route
 * goes to the alternate exchange instead (and so is not returned to a mandatory publisher);
 * a routable one does not.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { Inbox, within } from '../helpers/amqp-expect.js';
import { bodies, drain, publishConfirmed, unique } from '../helpers/feature-kit.js';
import { ctlOk } from '../helpers/warrenctl.js';

describe('alternate exchange', () => {
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

  test('unroutable messages go to the alternate exchange; routable ones do not; mandatory sees no return', async () => {
    const ch = await conn.createConfirmChannel();
    const ae = unique('ae');
    const main = unique('ae-main');
    const unrouted = unique('ae-unrouted');
    const routed = unique('ae-routed');
    await ch.assertExchange(ae, 'fanout', { autoDelete: true });
    await ch.assertExchange(main, 'direct', { autoDelete: true, alternateExchange: ae });
    await ch.assertQueue(unrouted, { exclusive: true });
    await ch.assertQueue(routed, { exclusive: true });
    await ch.bindQueue(unrouted, ae, '');
    await ch.bindQueue(routed, main, 'known');
    const returns = new Inbox<amqp.Message>();
    ch.on('return', returns.push);
    await publishConfirmed(ch, main, 'known', 'to-routed', { mandatory: true });
    await publishConfirmed(ch, main, 'unknown', 'to-ae', { mandatory: true });
    assert.deepEqual(bodies(await drain(ch, routed)), ['to-routed']);
    assert.deepEqual(bodies(await drain(ch, unrouted)), ['to-ae']);
    // Without a binding anywhere (the AE routes nowhere either), mandatory returns it.
    await ch.unbindQueue(unrouted, ae, '');
    await publishConfirmed(ch, main, 'unknown', 'nowhere', { mandatory: true });
    const [ret] = await returns.atLeast(1, 'the basic.return of the unroutable message');
    assert.equal(ret?.content.toString(), 'nowhere');
    assert.equal(returns.items.length, 1);
    await ch.close();
  });

  test('the alternate-exchange policy key applies to existing and new exchanges; the argument wins over it', async () => {
    const ch = await conn.createConfirmChannel();
    const prefix = unique('aepol');
    const ae = `${prefix}-ae`;
    const argAe = `${prefix}-argae`;
    const before = `${prefix}-before`;
    const own = `${prefix}-own`;
    const viaPolicy = unique('aepol-q');
    const viaArg = unique('aepol-argq');
    await ch.assertExchange(ae, 'fanout', { autoDelete: false });
    await ch.assertExchange(argAe, 'fanout', { autoDelete: false });
    await ch.assertExchange(before, 'direct', { autoDelete: false });
    await ch.assertQueue(viaPolicy, { exclusive: true });
    await ch.assertQueue(viaArg, { exclusive: true });
    await ch.bindQueue(viaPolicy, ae, '');
    await ch.bindQueue(viaArg, argAe, '');
    await ctlOk(broker.dataDir, 'set_policy', `${prefix}-p`, `^${prefix}-(before|after|own)$`, JSON.stringify({ 'alternate-exchange': ae }), '--apply-to', 'exchanges');
    // Declared before the policy, declared after it, and one with its own argument.
    await ch.assertExchange(`${prefix}-after`, 'direct', { autoDelete: false });
    await ch.assertExchange(own, 'direct', { autoDelete: false, alternateExchange: argAe });
    await publishConfirmed(ch, before, 'nobody', 'b');
    await publishConfirmed(ch, `${prefix}-after`, 'nobody', 'a');
    await publishConfirmed(ch, own, 'nobody', 'o');
    assert.deepEqual(bodies(await drain(ch, viaPolicy)).sort(), ['a', 'b']);
    assert.deepEqual(bodies(await drain(ch, viaArg)), ['o']);
    // Clearing the policy takes its alternate away again.
    await ctlOk(broker.dataDir, 'clear_policy', `${prefix}-p`);
    await publishConfirmed(ch, before, 'nobody', 'gone');
    assert.deepEqual(bodies(await drain(ch, viaPolicy)), []);
    for (const x of [ae, argAe, before, own, `${prefix}-after`]) await ch.deleteExchange(x);
    await ch.close();
  });

  test('an alternate exchange that does not exist is ignored', async () => {
    const ch = await conn.createConfirmChannel();
    const main = unique('ae-missing');
    await ch.assertExchange(main, 'topic', { autoDelete: true, alternateExchange: unique('no-such-ae') });
    const returns = new Inbox<amqp.Message>();
    ch.on('return', returns.push);
    await publishConfirmed(ch, main, 'x.y', 'lost', { mandatory: true });
    await within(returns.atLeast(1), 'the return');
    await ch.close();
  });
});
