/**
 * Queue class with amqplib: server-named queues, passive declare, flags and arguments and
 * their equivalence, exclusivity across connections, auto-delete, bind/unbind, purge and
 * delete with their counts and preconditions.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { waitFor, type TestBroker } from '../helpers/broker.js';
import { Inbox, expectChannelClose, getOne, within, startE2eBroker } from '../helpers/amqp-expect.js';

describe('queues', () => {
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

  async function doomed(c: amqp.ChannelModel = conn): Promise<amqp.Channel> {
    return c.createChannel();
  }

  /** Whether a queue exists, asked with a passive declare on a throwaway channel. */
  async function exists(queue: string): Promise<boolean> {
    const probe = await conn.createChannel();
    probe.on('error', () => {});
    try {
      await probe.checkQueue(queue);
      await probe.close();
      return true;
    } catch (err) {
      const code = (err as { code?: number }).code;
      // 405: another connection's exclusive queue, which exists.
      assert.ok(code === 404 || code === 405, `passive declare of '${queue}': ${String(err)}`);
      return code === 405;
    }
  }

  async function publishConfirmed(queue: string, bodies: string[]): Promise<void> {
    const c = await conn.createConfirmChannel();
    for (const b of bodies) c.sendToQueue(queue, Buffer.from(b));
    await within(c.waitForConfirms(), 'confirms');
    await c.close();
  }

  test('an empty name gets a server-generated amq.gen- name, unique per declare', async () => {
    const a = await ch.assertQueue('', { exclusive: true });
    const b = await ch.assertQueue('', { exclusive: true });
    assert.match(a.queue, /^amq\.gen-[A-Za-z0-9_-]{22}$/);
    assert.notEqual(a.queue, b.queue);
    assert.deepEqual([a.messageCount, a.consumerCount], [0, 0]);
  });

  test('passive declare reports counts for an existing queue and 404s a missing one', async () => {
    await ch.assertQueue('q.passive', { durable: false });
    await publishConfirmed('q.passive', ['1', '2', '3']);
    const ok = await ch.checkQueue('q.passive');
    assert.equal(ok.queue, 'q.passive');
    assert.equal(ok.messageCount, 3);
    assert.equal(ok.consumerCount, 0);
    await expectChannelClose(conn, await doomed(), (c) => c.checkQueue('q.no-such'), {
      code: 404,
      method: [50, 10],
      text: /NOT_FOUND - no queue 'q.no-such' in vhost '\/'/,
    });
    await ch.deleteQueue('q.passive');
  });

  test('declare-ok counts messages and consumers of an existing queue', async () => {
    await ch.assertQueue('q.counts', { durable: false });
    await publishConfirmed('q.counts', ['a', 'b']);
    const other = await conn.createChannel();
    await other.prefetch(1);
    await other.consume('q.counts', () => {});
    // One message is with the consumer (unacked), one is ready.
    await waitFor(async () => (await ch.checkQueue('q.counts')).messageCount === 1, 'one ready message');
    const again = await ch.assertQueue('q.counts', { durable: false });
    assert.deepEqual([again.messageCount, again.consumerCount], [1, 1]);
    await other.close();
    await ch.deleteQueue('q.counts');
  });

  test('the amq. prefix is reserved for queue names (403)', async () => {
    await expectChannelClose(conn, await doomed(), (c) => c.assertQueue('amq.mine'), {
      code: 403,
      method: [50, 10],
      text: /reserved prefix 'amq\.\*'/,
    });
  });

  test('redeclare with a different durable, auto-delete or argument is 406; ignored arguments do not matter', async () => {
    await ch.assertQueue('q.equiv', { durable: true, arguments: { 'x-message-ttl': 60_000 } });
    await ch.assertQueue('q.equiv', { durable: true, arguments: { 'x-message-ttl': 60_000, 'x-unrelated': 'whatever' } });
    const cases: [amqp.Options.AssertQueue, RegExp][] = [
      [{ durable: false, arguments: { 'x-message-ttl': 60_000 } }, /inequivalent arg 'durable' for queue 'q.equiv' in vhost '\/': received 'false' but current is 'true'/],
      [{ durable: true, autoDelete: true, arguments: { 'x-message-ttl': 60_000 } }, /inequivalent arg 'auto_delete'/],
      [{ durable: true, arguments: { 'x-message-ttl': 1_000 } }, /inequivalent arg 'x-message-ttl'/],
      [{ durable: true }, /inequivalent arg 'x-message-ttl'/],
      [{ durable: true, arguments: { 'x-message-ttl': 60_000, 'x-max-length': 5 } }, /inequivalent arg 'x-max-length'/],
    ];
    for (const [opts, text] of cases) {
      await expectChannelClose(conn, await doomed(), (c) => c.assertQueue('q.equiv', opts), { code: 406, method: [50, 10], text });
    }
    await ch.deleteQueue('q.equiv');
  });

  test('malformed arguments are 406 PRECONDITION_FAILED', async () => {
    await expectChannelClose(conn, await doomed(), (c) => c.assertQueue('q.badarg', { arguments: { 'x-max-length': 'ten' } }), {
      code: 406,
      method: [50, 10],
      text: /invalid arg 'x-max-length'/,
    });
    await expectChannelClose(conn, await doomed(), (c) => c.assertQueue('q.badarg', { arguments: { 'x-expires': 0 } }), {
      code: 406,
      text: /invalid arg 'x-expires'/,
    });
    assert.equal(await exists('q.badarg'), false);
  });

  test('the longest x-expires and x-message-ttl RabbitMQ allows (ten years in ms) are accepted and do not fire early', async () => {
    const tenYearsMs = 315_360_000_000;
    const { queue } = await ch.assertQueue('', { exclusive: true, arguments: { 'x-expires': tenYearsMs, 'x-message-ttl': tenYearsMs } });
    await publishConfirmed(queue, ['kept']);
    // Several round trips through the queue's shard: a timer that fired at once would have removed the queue or message.
    for (let i = 0; i < 5; i++) assert.equal((await ch.checkQueue(queue)).messageCount, 1);
    await expectChannelClose(conn, await doomed(), (c) => c.assertQueue('q.ttl-too-long', { arguments: { 'x-message-ttl': tenYearsMs + 1 } }), {
      code: 406,
      method: [50, 10],
      text: /invalid arg 'x-message-ttl' for queue 'q.ttl-too-long' in vhost '\/': {value_too_large,315360000001}/,
    });
  });

  test('quorum queues and streams must be durable, not exclusive, not auto-delete (406 invalid property)', async () => {
    const cases: [amqp.Options.AssertQueue, string][] = [
      [{ durable: true, autoDelete: true }, 'auto-delete'],
      [{ durable: true, exclusive: true }, 'exclusive-owner'],
      [{ durable: false }, 'non-durable'],
    ];
    for (const [opts, property] of cases) {
      await expectChannelClose(conn, await doomed(), (c) => c.assertQueue('q.quorum-flags', { ...opts, arguments: { 'x-queue-type': 'quorum' } }), {
        code: 406,
        method: [50, 10],
        text: new RegExp(`invalid property '${property}' for queue 'q.quorum-flags' in vhost '/'`),
      });
    }
    assert.equal(await exists('q.quorum-flags'), false);
  });

  test('arguments take effect: x-max-length drops from the head, x-message-ttl expires, x-dead-letter-exchange receives rejects', async () => {
    await ch.assertQueue('q.maxlen', { arguments: { 'x-max-length': 2 } });
    await publishConfirmed('q.maxlen', ['1', '2', '3', '4']);
    assert.equal((await ch.checkQueue('q.maxlen')).messageCount, 2);
    const first = await ch.get('q.maxlen', { noAck: true });
    assert.ok(first !== false);
    assert.equal(first.content.toString(), '3');

    await ch.assertQueue('q.ttl', { arguments: { 'x-message-ttl': 50 } });
    await publishConfirmed('q.ttl', ['short-lived']);
    await waitFor(async () => (await ch.checkQueue('q.ttl')).messageCount === 0, 'the message to expire', 3_000);

    const { queue: dead } = await ch.assertQueue('', { exclusive: true });
    await ch.assertExchange('ex.q.dlx', 'fanout', { durable: false });
    await ch.bindQueue(dead, 'ex.q.dlx', '');
    await ch.assertQueue('q.dlx-src', { arguments: { 'x-dead-letter-exchange': 'ex.q.dlx' } });
    await publishConfirmed('q.dlx-src', ['rejected one']);
    const m = await ch.get('q.dlx-src');
    assert.ok(m !== false);
    ch.reject(m, false);
    const d = await getOne(ch, dead, { noAck: true });
    assert.equal(d.content.toString(), 'rejected one');
    const deaths = (d.properties.headers as Record<string, unknown> | undefined)?.['x-death'];
    assert.ok(Array.isArray(deaths) && deaths.length === 1, 'x-death header');
    for (const q of ['q.maxlen', 'q.ttl', 'q.dlx-src']) await ch.deleteQueue(q);
    await ch.deleteExchange('ex.q.dlx');
  });

  test('an exclusive queue is locked (405) to other connections for every use, and open to its own', async () => {
    const owner = await amqp.connect(broker.url);
    const och = await owner.createChannel();
    await och.assertQueue('q.excl', { exclusive: true });
    // Another channel of the same connection may use it.
    const och2 = await owner.createChannel();
    await och2.checkQueue('q.excl');
    await och2.consume('q.excl', () => {}, { noAck: true });

    const uses: [string, (c: amqp.Channel) => Promise<unknown>, [number, number]][] = [
      ['passive declare', (c) => c.checkQueue('q.excl'), [50, 10]],
      ['declare', (c) => c.assertQueue('q.excl', { exclusive: true }), [50, 10]],
      ['consume', (c) => c.consume('q.excl', () => {}), [60, 20]],
      ['get', (c) => c.get('q.excl'), [60, 70]],
      ['bind', (c) => c.bindQueue('q.excl', 'amq.direct', 'k'), [50, 20]],
      ['purge', (c) => c.purgeQueue('q.excl'), [50, 30]],
      ['delete', (c) => c.deleteQueue('q.excl'), [50, 40]],
    ];
    for (const [what, op, method] of uses) {
      await expectChannelClose(conn, await doomed(), op, { code: 405, method, text: /RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'q.excl'/ }).catch(
        (err: unknown) => {
          throw new Error(`${what}: ${String(err)}`);
        },
      );
    }
    assert.equal(await exists('q.excl'), true);
    await owner.close();
    await waitFor(async () => !(await exists('q.excl')), 'the exclusive queue to go with its connection');
  });

  test('an exclusive queue goes when its connection drops without closing', async () => {
    const owner = await amqp.connect(broker.url);
    const och = await owner.createChannel();
    const { queue } = await och.assertQueue('', { exclusive: true });
    assert.equal(await exists(queue), true);
    owner.on('error', () => {});
    // With an error, so amqplib tears down its side (heartbeat timer) as for a network failure.
    (owner.connection as unknown as { stream: { destroy(err: Error): void } }).stream.destroy(new Error('dropped by the test'));
    await waitFor(async () => !(await exists(queue)), 'the exclusive queue to go with its socket');
  });

  test('an auto-delete queue stays until it has had a consumer, and goes after its last consumer cancels', async () => {
    await ch.assertQueue('q.auto', { autoDelete: true });
    await publishConfirmed('q.auto', ['m']);
    assert.equal(await exists('q.auto'), true, 'never consumed: still there');
    const c1 = await ch.consume('q.auto', () => {}, { noAck: true });
    const c2 = await ch.consume('q.auto', () => {}, { noAck: true });
    await ch.cancel(c1.consumerTag);
    assert.equal(await exists('q.auto'), true, 'one consumer left');
    await ch.cancel(c2.consumerTag);
    await waitFor(async () => !(await exists('q.auto')), 'the auto-delete queue to go');
  });

  test('an auto-delete queue also goes when the channel of its last consumer closes', async () => {
    await ch.assertQueue('q.auto2', { autoDelete: true });
    const cch = await conn.createChannel();
    await cch.consume('q.auto2', () => {});
    await cch.close();
    await waitFor(async () => !(await exists('q.auto2')), 'the auto-delete queue to go');
  });

  test('bind routes, unbind stops routing; unbinding what is not bound is fine', async () => {
    const { queue } = await ch.assertQueue('', { exclusive: true });
    await ch.bindQueue(queue, 'amq.direct', 'bind-key');
    await ch.bindQueue(queue, 'amq.direct', 'bind-key'); // idempotent
    const inbox = new Inbox<string>();
    await ch.consume(queue, (m) => m !== null && inbox.push(m.content.toString()), { noAck: true });
    const pub = await conn.createConfirmChannel();
    pub.publish('amq.direct', 'bind-key', Buffer.from('one'));
    await pub.waitForConfirms();
    await inbox.atLeast(1);
    await ch.unbindQueue(queue, 'amq.direct', 'bind-key');
    await ch.unbindQueue(queue, 'amq.direct', 'never-bound');
    pub.publish('amq.direct', 'bind-key', Buffer.from('two'), { mandatory: true });
    const returned = await within(new Promise<amqp.Message>((resolve) => pub.once('return', resolve)), 'basic.return');
    assert.equal(returned.content.toString(), 'two');
    await pub.waitForConfirms();
    await pub.close();
    assert.deepEqual(inbox.items, ['one']);
  });

  test('purge returns the count of ready messages and leaves unacked ones alone', async () => {
    const { queue } = await ch.assertQueue('', { exclusive: true });
    await publishConfirmed(queue, ['1', '2', '3', '4', '5']);
    const held = await ch.get(queue);
    assert.ok(held !== false);
    assert.deepEqual(await ch.purgeQueue(queue), { messageCount: 4 });
    assert.deepEqual(await ch.purgeQueue(queue), { messageCount: 0 });
    ch.nack(held, false, true);
    const back = await getOne(ch, queue, { noAck: true });
    assert.equal(back.content.toString(), '1');
  });

  test('delete: if-unused (406) and if-empty (406) are checked; delete-ok counts the messages; deleting a missing queue is ok', async () => {
    await ch.assertQueue('q.del');
    const cons = await ch.consume('q.del', () => {}, { noAck: true });
    await expectChannelClose(conn, await doomed(), (c) => c.deleteQueue('q.del', { ifUnused: true }), {
      code: 406,
      method: [50, 40],
      text: /queue 'q.del' in vhost '\/' in use/,
    });
    await ch.cancel(cons.consumerTag);
    await publishConfirmed('q.del', ['1', '2', '3']);
    await expectChannelClose(conn, await doomed(), (c) => c.deleteQueue('q.del', { ifEmpty: true }), {
      code: 406,
      method: [50, 40],
      text: /queue 'q.del' in vhost '\/' not empty/,
    });
    assert.deepEqual(await ch.deleteQueue('q.del', { ifUnused: true }), { messageCount: 3 });
    assert.equal(await exists('q.del'), false);
    assert.deepEqual(await ch.deleteQueue('q.del'), { messageCount: 0 });
    await ch.assertQueue('q.del-empty');
    assert.deepEqual(await ch.deleteQueue('q.del-empty', { ifEmpty: true, ifUnused: true }), { messageCount: 0 });
  });

  test('deleting a queue cancels its consumers on every connection', async () => {
    await ch.assertQueue('q.del-consumed');
    const other = await amqp.connect(broker.url);
    const och = await other.createChannel();
    const cancelled = new Promise<amqp.ConsumeMessage | null>((resolve) => {
      void och.consume('q.del-consumed', (m) => {
        if (m === null) resolve(m);
      });
    });
    await waitFor(async () => (await ch.checkQueue('q.del-consumed')).consumerCount === 1, 'the consumer');
    await ch.deleteQueue('q.del-consumed');
    assert.equal(await within(cancelled, 'basic.cancel from the server'), null);
    await other.close();
  });
});
