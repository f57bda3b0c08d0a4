/**
 * Differences from RabbitMQ 3.10 found by differential probing that need admin commands to
 * set up (warren-only: the reference run has no warrenctl): which of two policies of equal
 * priority applies, a policy's overflow against a quorum queue's argument, and the order of
 * rabbit_channel's checks — permission before existence, before the default exchange and
 * before the amq.* prefix of an exchange — and the alternate exchange's permissions.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { startBroker, waitFor, type TestBroker } from '../helpers/broker.js';
import { expectChannelClose } from '../helpers/amqp-expect.js';
import { bodies, drain, publishConfirmed, unique } from '../helpers/feature-kit.js';
import { ctlOk, ctlRows } from '../helpers/warrenctl.js';

describe('RabbitMQ 3.10 parity (admin set-ups)', () => {
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

  async function policyOf(queue: string): Promise<unknown> {
    const rows = await ctlRows(broker.dataDir, 'list_queues', 'name', 'policy');
    return rows.find((r) => r['name'] === queue)?.['policy'];
  }

  test('of matching policies with equal priority, the first name in sort order applies', async () => {
    const q = unique('tie');
    const ch = await conn.createChannel();
    await ch.assertQueue(q, { exclusive: true });
    const pattern = `^${q}$`;
    await ctlOk(broker.dataDir, 'set_policy', `${q}-x`, pattern, '{"max-length":3}');
    assert.equal(await policyOf(q), `${q}-x`);
    await ctlOk(broker.dataDir, 'set_policy', `${q}-m`, pattern, '{"max-length":2}');
    assert.equal(await policyOf(q), `${q}-m`);
    await ctlOk(broker.dataDir, 'set_policy', `${q}-c`, pattern, '{"max-length":1}');
    assert.equal(await policyOf(q), `${q}-c`);
    // A higher priority still wins over the name.
    await ctlOk(broker.dataDir, 'set_policy', `${q}-x`, pattern, '{"max-length":3}', '--priority', '1');
    assert.equal(await policyOf(q), `${q}-x`);
    for (const name of ['x', 'm', 'c']) await ctlOk(broker.dataDir, 'clear_policy', `${q}-${name}`);
    await ch.close();
  });

  test("a quorum queue's overflow comes from its policy even when the queue has an x-overflow argument", async () => {
    const q = unique('qq-overflow');
    const ch = await conn.createConfirmChannel();
    await ctlOk(broker.dataDir, 'set_policy', `${q}-policy`, `^${q}$`, '{"overflow":"reject-publish","max-length":1}', '--apply-to', 'queues');
    await ch.assertQueue(q, { durable: true, arguments: { 'x-queue-type': 'quorum', 'x-overflow': 'drop-head' } });
    assert.equal(await publishConfirmed(ch, '', q, 'm0'), 'ack');
    assert.equal(await publishConfirmed(ch, '', q, 'm1'), 'nack', 'reject-publish (the policy), not drop-head (the argument)');
    assert.deepEqual(bodies(await drain(ch, q)), ['m0']);
    // A classic queue keeps its argument's overflow.
    const classic = `${q}-classic`;
    await ctlOk(broker.dataDir, 'set_policy', `${q}-policy`, `^${q}`, '{"overflow":"reject-publish","max-length":1}', '--apply-to', 'queues');
    await ch.assertQueue(classic, { exclusive: true, arguments: { 'x-overflow': 'drop-head' } });
    await waitFor(async () => (await policyOf(classic)) === `${q}-policy`, 'the policy on the classic queue');
    assert.equal(await publishConfirmed(ch, '', classic, 'c0'), 'ack');
    assert.equal(await publishConfirmed(ch, '', classic, 'c1'), 'ack');
    assert.deepEqual(bodies(await drain(ch, classic)), ['c1']);
    await ctlOk(broker.dataDir, 'clear_policy', `${q}-policy`);
    await ch.deleteQueue(q);
    await ch.close();
  });

  describe('the order of the checks', () => {
    const vhost = 'parity-order';
    let carol: amqp.ChannelModel;
    before(async () => {
      await ctlOk(broker.dataDir, 'add_vhost', vhost);
      await ctlOk(broker.dataDir, 'set_permissions', '-p', vhost, 'guest', '.*', '.*', '.*');
      await ctlOk(broker.dataDir, 'add_user', 'carol', 'carol-pw');
      await ctlOk(broker.dataDir, 'set_permissions', '-p', vhost, 'carol', '^c-', '^w-', '^r-');
      const admin = await amqp.connect(`amqp://guest:guest@${broker.host}:${broker.port}/${vhost}`);
      const ch = await admin.createChannel();
      for (const q of ['w-q', 'r-q', 'x-q']) await ch.assertQueue(q);
      for (const x of ['w-x', 'r-x', 'x-x']) await ch.assertExchange(x, 'direct');
      await ch.assertExchange('x-internal', 'direct', { internal: true });
      await admin.close();
      carol = await amqp.connect(`amqp://carol:carol-pw@${broker.host}:${broker.port}/${vhost}`);
    });
    after(async () => {
      await carol.close();
      await ctlOk(broker.dataDir, 'delete_user', 'carol');
      await ctlOk(broker.dataDir, 'delete_vhost', vhost);
    });

    const refused = (kind: string, name: string): RegExp => new RegExp(`ACCESS_REFUSED - access to ${kind} '${name.replace('.', '\\.')}' in vhost '${vhost}' refused for user 'carol'`);
    async function expectRefused(op: (c: amqp.Channel) => unknown, method: [number, number], kind: string, name: string): Promise<void> {
      const ch = await carol.createChannel();
      await expectChannelClose(carol, ch, op, { code: 403, method, text: refused(kind, name) });
    }

    test('a missing queue or exchange the user may not use is 403, not 404', async () => {
      await expectRefused((c) => c.publish('z-missing', 'k', Buffer.from('x')), [60, 40], 'exchange', 'z-missing');
      await expectRefused((c) => c.consume('z-missing', () => {}), [60, 20], 'queue', 'z-missing');
      await expectRefused((c) => c.get('z-missing'), [60, 70], 'queue', 'z-missing');
      await expectRefused((c) => c.purgeQueue('z-missing'), [50, 30], 'queue', 'z-missing');
      await expectRefused((c) => c.deleteQueue('z-missing'), [50, 40], 'queue', 'z-missing');
      await expectRefused((c) => c.deleteExchange('z-missing'), [40, 20], 'exchange', 'z-missing');
      await expectRefused((c) => c.bindQueue('z-missing', 'r-x', 'k'), [50, 20], 'queue', 'z-missing');
      await expectRefused((c) => c.bindQueue('w-q', 'z-missing', 'k'), [50, 20], 'exchange', 'z-missing');
      await expectRefused((c) => c.unbindQueue('z-missing', 'r-x', 'k'), [50, 50], 'queue', 'z-missing');
      await expectRefused((c) => c.unbindQueue('w-q', 'z-missing', 'k'), [50, 50], 'exchange', 'z-missing');
      await expectRefused((c) => c.bindExchange('z-missing', 'r-x', 'k'), [40, 30], 'exchange', 'z-missing');
      await expectRefused((c) => c.unbindExchange('w-x', 'z-missing', 'k'), [40, 40], 'exchange', 'z-missing');
      // With the permission, the same operations find nothing (or, for delete and unbind, nothing to do).
      const ok = await carol.createChannel();
      ok.on('error', () => {});
      assert.equal((await ok.deleteQueue('c-missing')).messageCount, 0);
      await ok.deleteExchange('c-missing');
      await ok.unbindQueue('w-missing', 'r-x', 'k');
      await ok.close();
      await expectChannelClose(carol, await carol.createChannel(), (c) => c.get('r-missing'), { code: 404, method: [60, 70], text: /NOT_FOUND - no queue 'r-missing'/ });
    });

    test('the write permission comes before the default-exchange and internal-exchange refusals', async () => {
      await expectRefused((c) => c.bindQueue('x-q', '', 'k'), [50, 20], 'queue', 'x-q');
      await expectRefused((c) => c.bindExchange('x-x', '', 'k'), [40, 30], 'exchange', 'x-x');
      await expectRefused((c) => c.publish('x-internal', 'k', Buffer.from('x')), [60, 40], 'exchange', 'x-internal');
      await expectChannelClose(carol, await carol.createChannel(), (c) => c.bindQueue('w-q', '', 'k'), {
        code: 403,
        method: [50, 20],
        text: /ACCESS_REFUSED - operation not permitted on the default exchange/,
      });
    });

    test('exchange.declare: configure before the amq.* prefix; a new exchange with an alternate needs read on itself and write on the alternate', async () => {
      await expectRefused((c) => c.assertExchange('amq.carol', 'direct'), [40, 10], 'exchange', 'amq.carol');
      await expectRefused((c) => c.assertExchange('c-ae', 'direct', { alternateExchange: 'w-x' }), [40, 10], 'exchange', 'c-ae');
      await ctlOk(broker.dataDir, 'set_permissions', '-p', vhost, 'carol', '^c-', '^w-', '^(r-|c-).*');
      try {
        await expectRefused((c) => c.assertExchange('c-ae', 'direct', { alternateExchange: 'r-x' }), [40, 10], 'exchange', 'r-x');
        const ok = await carol.createChannel();
        await ok.assertExchange('c-ae', 'direct', { alternateExchange: 'w-x' });
        await ok.deleteExchange('c-ae');
        await ok.close();
      } finally {
        await ctlOk(broker.dataDir, 'set_permissions', '-p', vhost, 'carol', '^c-', '^w-', '^r-');
      }
    });
  });
});
