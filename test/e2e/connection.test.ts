/**
 * Connection class with real clients: what a client sees in connection.start and tune,
 * the SASL mechanisms RabbitMQ offers (PLAIN, AMQPLAIN), refused logins, unknown vhosts,
 * and a clean close from the client.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { AMQPClient } from '@cloudamqp/amqp-client';
import { Connection as RabbitConnection } from 'rabbitmq-client';
import type { TestBroker } from '../helpers/broker.js';
import { within, startE2eBroker } from '../helpers/amqp-expect.js';

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

describe('connection', () => {
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
      const got = await within(
        (async () => {
          for (;;) {
            const m = await ch.get(queue, { noAck: true });
            if (m !== false) return m;
          }
        })(),
        'the message',
      );
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
});
