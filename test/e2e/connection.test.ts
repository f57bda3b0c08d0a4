/**
 * Connection and channel classes with real clients: what a client sees in connection.start
 * and tune, the SASL mechanisms RabbitMQ offers (PLAIN, AMQPLAIN), refused logins, unknown
 * vhosts, a clean close from the client; channel open/close, thousands of channels on one
 * connection, a channel error closing only its channel, and channel.flow as RabbitMQ answers it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { AMQPClient } from '@cloudamqp/amqp-client';
import { Connection as RabbitConnection } from 'rabbitmq-client';
import type { TestBroker } from '../helpers/broker.js';
import { Inbox, expectChannelClose, getOne, startE2eBroker, within } from '../helpers/amqp-expect.js';

/** The negotiated values amqplib keeps on its low-level connection (not in its typings). */
interface TunedConnection {
  serverProperties: { capabilities?: Record<string, unknown>; product?: unknown };
  channelMax: number;
  frameMax: number;
  heartbeat: number;
}

function tuned(conn: amqp.ChannelModel): TunedConnection {
  return conn.connection as unknown as TunedConnection;
}

describe('connection and channels', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startE2eBroker();
  });
  after(async () => {
    assert.equal(await broker.stop(), 0);
  });

  test('server properties advertise RabbitMQ capabilities to a client', async () => {
    const conn = await amqp.connect(broker.url);
    try {
      const caps = tuned(conn).serverProperties.capabilities;
      assert.ok(caps !== undefined, 'server-properties carry a capabilities table');
      for (const name of [
        'publisher_confirms',
        'exchange_exchange_bindings',
        'basic.nack',
        'consumer_cancel_notify',
        'connection.blocked',
        'authentication_failure_close',
        'per_consumer_qos',
        'consumer_priorities',
        'direct_reply_to',
      ]) {
        assert.equal(caps[name], true, `capability ${name}`);
      }
      assert.equal(typeof tuned(conn).serverProperties.product, 'string');
    } finally {
      await conn.close();
    }
  });

  test('tune defaults as negotiated by a client with no preference: channel-max 2047, frame-max 131072, heartbeat 60', async () => {
    const conn = await amqp.connect(broker.url);
    try {
      const t = tuned(conn);
      assert.equal(t.channelMax, 2047);
      assert.equal(t.frameMax, 131072);
      assert.equal(t.heartbeat, 60);
    } finally {
      await conn.close();
    }
    // @cloudamqp/amqp-client proposes channel-max 0 ("the server's value"), frame-max 8192 and no heartbeat.
    const client = new AMQPClient(broker.url);
    await client.connect();
    try {
      assert.equal(client.channelMax, 2047);
      assert.equal(client.frameMax, 8192);
    } finally {
      await client.close();
    }
  });

  test('a client asking for smaller limits gets them', async () => {
    const conn = await amqp.connect({
      protocol: 'amqp',
      hostname: broker.host,
      port: broker.port,
      username: 'guest',
      password: 'guest',
      frameMax: 8192,
      channelMax: 10,
      heartbeat: 5,
    });
    try {
      const t = tuned(conn);
      assert.deepEqual([t.channelMax, t.frameMax, t.heartbeat], [10, 8192, 5]);
      // A body of several frames still arrives whole at the smaller frame size.
      const ch = await conn.createChannel();
      const { queue } = await ch.assertQueue('', { exclusive: true });
      const body = Buffer.alloc(50_000, 7);
      ch.sendToQueue(queue, body);
      const got = await getOne(ch, queue, { noAck: true });
      assert.ok(got.content.equals(body));
    } finally {
      await conn.close();
    }
  });

  test('PLAIN login works', async () => {
    const conn = await amqp.connect(broker.url, { credentials: amqp.credentials.plain('guest', 'guest') });
    const ch = await conn.createChannel();
    await ch.checkExchange('amq.direct');
    await conn.close();
  });

  test('AMQPLAIN login works', async () => {
    const conn = await amqp.connect(broker.url, { credentials: amqp.credentials.amqplain('guest', 'guest') });
    const ch = await conn.createChannel();
    await ch.checkExchange('amq.direct');
    await conn.close();
  });

  test('a wrong password is refused with 403 ACCESS_REFUSED (authentication_failure_close)', async () => {
    await assert.rejects(
      amqp.connect(`amqp://guest:wrong@${broker.host}:${broker.port}`),
      (err: Error) => /403/.test(err.message) && /ACCESS_REFUSED/.test(err.message),
    );
    await assert.rejects(
      amqp.connect(broker.url, { credentials: amqp.credentials.amqplain('guest', 'nope') }),
      (err: Error) => /403/.test(err.message) && /ACCESS_REFUSED/.test(err.message) && /AMQPLAIN/.test(err.message),
    );
    await assert.rejects(
      amqp.connect(`amqp://nobody:guest@${broker.host}:${broker.port}`),
      (err: Error) => /403/.test(err.message) && /ACCESS_REFUSED/.test(err.message),
    );
    // The broker keeps serving everyone else.
    const conn = await amqp.connect(broker.url);
    await conn.close();
  });

  test('an unknown vhost is refused with 530 NOT_ALLOWED', async () => {
    // amqplib reports only "Expected ConnectionOpenOk; got <ConnectionClose>" here, so the code is read with the other clients.
    await assert.rejects(amqp.connect(`${broker.url}/no-such-vhost`), /ConnectionClose/);
    const client = new AMQPClient(`${broker.url}/other-vhost`);
    await assert.rejects(client.connect(), (err: Error) => /\(530\)/.test(err.message) && /NOT_ALLOWED - vhost other-vhost not found/.test(err.message));
    const rc = new RabbitConnection({ url: `${broker.url}/third-vhost`, retryLow: 1_000, retryHigh: 1_000 });
    const err = await within(new Promise<{ code?: unknown; message: string }>((resolve) => rc.once('error', resolve)), 'rabbitmq-client error');
    await rc.close();
    assert.equal(err.code, 'NOT_ALLOWED');
    assert.match(err.message, /vhost third-vhost not found/);
  });

  test('close from the client: close-ok comes back, no error, and the server forgets the connection\'s exclusive queues', async () => {
    const conn = await amqp.connect(broker.url);
    const errors: Error[] = [];
    conn.on('error', (e: Error) => errors.push(e));
    const closed = new Promise<Error | undefined>((resolve) => conn.once('close', (e?: Error) => resolve(e)));
    const ch = await conn.createChannel();
    const { queue } = await ch.assertQueue('', { exclusive: true });
    await within(conn.close(), 'close-ok');
    assert.equal(await within(closed, 'the close event'), undefined);
    assert.deepEqual(errors, []);

    const other = await amqp.connect(broker.url);
    const och = await other.createChannel();
    och.on('error', () => {});
    await assert.rejects(och.checkQueue(queue), (e: { code?: number }) => e.code === 404);
    await other.close();
  });

  test("a client's channel.close crossing the server's (after a channel error) costs only the channel, as in RabbitMQ", async () => {
    const conn = await amqp.connect(broker.url);
    const errors: Error[] = [];
    conn.on('error', (e: Error) => errors.push(e));
    for (let i = 0; i < 3; i++) {
      const ch = await conn.createChannel();
      ch.on('error', () => {});
      // The 404 for the publish and the client's close are in flight at the same time.
      ch.publish('no-such-exchange', 'k', Buffer.from('x'));
      await within(ch.close().catch(() => undefined), 'the channel to close');
    }
    const ch = await conn.createChannel();
    await ch.checkExchange('amq.direct');
    await conn.close();
    assert.deepEqual(errors, [], 'the connection survives');
  });

  test('rabbitmq-client connects, sees the capabilities it needs, and closes cleanly', async () => {
    const rc = new RabbitConnection({ url: broker.url, retryLow: 50, retryHigh: 200, connectionTimeout: 5_000 });
    try {
      await within(rc.onConnect(5_000), 'rabbitmq-client connection');
      const ch = await rc.acquire();
      const ok = await ch.queueDeclare({ exclusive: true });
      assert.match(ok.queue, /^amq\.gen-/);
      await ch.close();
    } finally {
      await rc.close();
    }
  });

  describe('channels', () => {
    let conn: amqp.ChannelModel;
    before(async () => {
      conn = await amqp.connect(broker.url);
    });
    after(async () => {
      await conn.close();
    });

    test('open, use and close a channel; a closed channel id can be opened again', async () => {
      const ch = await conn.createChannel();
      await ch.checkExchange('amq.fanout');
      await ch.close();
      // amqplib reuses the freed id for the next channel: the server must accept it again.
      const again = await conn.createChannel();
      await again.checkExchange('amq.fanout');
      await again.close();
    });

    test('2000 channels on one connection all open, work and close', async () => {
      const c = await amqp.connect(broker.url);
      try {
        const channels = await within(Promise.all(Array.from({ length: 2000 }, () => c.createChannel())), '2000 channel.open-ok', 20_000);
        await within(Promise.all(channels.map((ch) => ch.checkExchange('amq.direct'))), '2000 round trips', 20_000);
        // The last one carries traffic too.
        const last = channels[channels.length - 1] as amqp.Channel;
        const { queue } = await last.assertQueue('', { exclusive: true });
        last.sendToQueue(queue, Buffer.from('on channel 2000'));
        const m = await getOne(last, queue, { noAck: true });
        assert.equal(m.content.toString(), 'on channel 2000');
        await within(Promise.all(channels.map((ch) => ch.close())), '2000 channel.close-ok', 20_000);
      } finally {
        await c.close();
      }
    });

    test('a channel error closes only that channel: others keep publishing and consuming', async () => {
      const busy = await conn.createChannel();
      const { queue } = await busy.assertQueue('', { exclusive: true });
      const inbox = new Inbox<string>();
      await busy.consume(queue, (m) => {
        if (m !== null) inbox.push(m.content.toString());
      }, { noAck: true });
      busy.sendToQueue(queue, Buffer.from('before'));
      await inbox.atLeast(1);

      const failing = await conn.createChannel();
      await expectChannelClose(conn, failing, (ch) => ch.checkQueue('no-such-queue-for-channel-test'), { code: 404, method: [50, 10] });

      busy.sendToQueue(queue, Buffer.from('after'));
      assert.deepEqual(await inbox.atLeast(2), ['before', 'after']);
      await busy.close();
    });

    test('channel.flow active=true is confirmed; active=false is refused as RabbitMQ does (540 NOT_IMPLEMENTED, connection close)', async () => {
      const client = new AMQPClient(broker.url);
      await client.connect();
      const ch = await client.channel();
      assert.equal(await ch.basicFlow(true), true);
      await assert.rejects(ch.basicFlow(false), (err: Error) => /NOT_IMPLEMENTED/.test(err.message) && /540/.test(err.message));
      assert.equal(client.closed, true, 'RabbitMQ answers channel.flow active=false with a connection error');
    });
  });
});
