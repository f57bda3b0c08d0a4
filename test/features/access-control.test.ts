/**
 * Virtual hosts and access control as RabbitMQ enforces them: vhosts do not see each other's
 * queues; a user needs permissions on a vhost to open it (530 NOT_ALLOWED); configure, write
 * and read regexes are checked on declare, bind, publish, consume and get (403 ACCESS_REFUSED,
 * channel close); loopback-only users are refused from other addresses; and password hashes
 * made by RabbitMQ verify unchanged.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import amqp from 'amqplib';
import { AMQPClient } from '@cloudamqp/amqp-client';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { expectChannelClose } from '../helpers/amqp-expect.js';
import { unique } from '../helpers/feature-kit.js';
import { ctlOk, runWarrenctl } from '../helpers/warrenctl.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

function urlFor(broker: TestBroker, user: string, password: string, vhost: string, host = broker.host): string {
  return `amqp://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${host}:${broker.port}/${encodeURIComponent(vhost)}`;
}

/**
 * The connection attempt fails during the handshake; resolves with the error text, which
 * has the reply code and text (@cloudamqp/amqp-client reports them; amqplib drops them for
 * a refused connection.open).
 */
async function refusedConnect(url: string): Promise<string> {
  const client = new AMQPClient(url);
  try {
    await client.connect();
    await client.close();
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  throw new Error(`connecting to ${url} should have been refused`);
}

describe('vhosts and permissions', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startBroker();
  });
  after(async () => {
    assert.equal(await broker.stop(), 0);
  });

  test('vhosts are isolated: same queue name, separate queues; a user without permissions cannot open a vhost', async () => {
    const [va, vb] = [unique('iso-a'), unique('iso-b')];
    await ctlOk(broker.dataDir, 'add_vhost', va);
    await ctlOk(broker.dataDir, 'add_vhost', vb);
    await ctlOk(broker.dataDir, 'add_user', 'iso', 'iso-pw');
    for (const v of [va, vb]) await ctlOk(broker.dataDir, 'set_permissions', '-p', v, 'iso', '.*', '.*', '.*');
    const ca = await amqp.connect(urlFor(broker, 'iso', 'iso-pw', va));
    const cb = await amqp.connect(urlFor(broker, 'iso', 'iso-pw', vb));
    const cha = await ca.createConfirmChannel();
    await cha.assertQueue('shared');
    await new Promise<void>((resolve, reject) => cha.sendToQueue('shared', Buffer.from('in-a'), {}, (err) => (err ? reject(err) : resolve())));
    const chb = await cb.createChannel();
    await expectChannelClose(cb, chb, (c) => c.checkQueue('shared'), { code: 404, text: new RegExp(`no queue 'shared' in vhost '${vb}'`) });
    const chb2 = await cb.createChannel();
    assert.equal((await chb2.assertQueue('shared')).messageCount, 0);
    assert.equal((await cha.checkQueue('shared')).messageCount, 1);
    // guest has no permissions on these vhosts: connection.open is refused.
    const text = await refusedConnect(urlFor(broker, 'guest', 'guest', va));
    assert.match(text, new RegExp(`NOT_ALLOWED - access to vhost '${va}' refused for user 'guest' \\(530\\)`));
    // A vhost that does not exist.
    assert.match(await refusedConnect(urlFor(broker, 'guest', 'guest', 'no-such-vhost')), /NOT_ALLOWED - vhost no-such-vhost not found \(530\)/);
    await ca.close();
    await cb.close();
  });

  describe('configure, write and read permissions', () => {
    const vhost = 'perm-vhost';
    let admin: amqp.ChannelModel;
    let bob: amqp.ChannelModel;
    before(async () => {
      await ctlOk(broker.dataDir, 'add_vhost', vhost);
      await ctlOk(broker.dataDir, 'add_user', 'perm-admin', 'admin-pw');
      await ctlOk(broker.dataDir, 'set_permissions', '-p', vhost, 'perm-admin', '.*', '.*', '.*');
      await ctlOk(broker.dataDir, 'add_user', 'bob', 'bob-pw');
      // configure: his own queues; write: his queues and the default exchange; read: his queues and amq.direct.
      await ctlOk(broker.dataDir, 'set_permissions', '-p', vhost, 'bob', '^bob-', '^(bob-.*|amq\\.default)$', '^(bob-.*|amq\\.direct)$');
      admin = await amqp.connect(urlFor(broker, 'perm-admin', 'admin-pw', vhost));
      const ch = await admin.createChannel();
      await ch.assertQueue('admin-q');
      await ch.assertExchange('admin-x', 'topic');
      await ch.close();
      bob = await amqp.connect(urlFor(broker, 'bob', 'bob-pw', vhost));
    });
    after(async () => {
      await bob.close();
      await admin.close();
    });

    const refused = (kind: string, name: string) => new RegExp(`ACCESS_REFUSED - access to ${kind} '${name.replace('.', '\\.')}' in vhost '${vhost}' refused for user 'bob'`);

    test('queue.declare needs configure on the queue', async () => {
      const ch = await bob.createChannel();
      await expectChannelClose(bob, ch, (c) => c.assertQueue('other-q'), { code: 403, method: [50, 10], text: refused('queue', 'other-q') });
      const ok = await bob.createChannel();
      await ok.assertQueue('bob-q');
      // A passive declare needs no permission.
      await ok.checkQueue('admin-q');
      await ok.close();
    });

    test('queue.declare with a dead-letter exchange also needs write on that exchange', async () => {
      const ch = await bob.createChannel();
      await expectChannelClose(bob, ch, (c) => c.assertQueue('bob-dl', { deadLetterExchange: 'admin-x' }), {
        code: 403,
        method: [50, 10],
        text: refused('exchange', 'admin-x'),
      });
      const ok = await bob.createChannel();
      await ok.assertQueue('bob-dl-ok', { deadLetterExchange: 'bob-dlx' });
      await ok.close();
    });

    test('exchange.declare needs configure on the exchange', async () => {
      const ch = await bob.createChannel();
      await expectChannelClose(bob, ch, (c) => c.assertExchange('not-bobs', 'fanout'), { code: 403, method: [40, 10], text: refused('exchange', 'not-bobs') });
    });

    test('queue.bind needs write on the queue and read on the exchange', async () => {
      const ch = await bob.createChannel();
      await ch.assertQueue('bob-bound');
      await ch.bindQueue('bob-bound', 'amq.direct', 'k');
      await expectChannelClose(bob, ch, (c) => c.bindQueue('bob-bound', 'admin-x', 'k'), { code: 403, method: [50, 20], text: refused('exchange', 'admin-x') });
      const ch2 = await bob.createChannel();
      await expectChannelClose(bob, ch2, (c) => c.bindQueue('admin-q', 'amq.direct', 'k'), { code: 403, method: [50, 20], text: refused('queue', 'admin-q') });
    });

    test('basic.publish needs write on the exchange', async () => {
      const ch = await bob.createChannel();
      ch.sendToQueue('bob-q', Buffer.from('allowed through amq.default'));
      await expectChannelClose(bob, ch, (c) => c.publish('admin-x', 'k', Buffer.from('refused')), { code: 403, method: [60, 40], text: refused('exchange', 'admin-x') });
      const check = await bob.createChannel();
      assert.equal((await check.checkQueue('bob-q')).messageCount, 1);
      await check.close();
    });

    test('basic.consume and basic.get need read on the queue', async () => {
      const ch = await bob.createChannel();
      await expectChannelClose(bob, ch, (c) => c.consume('admin-q', () => {}), { code: 403, method: [60, 20], text: refused('queue', 'admin-q') });
      const ch2 = await bob.createChannel();
      await expectChannelClose(bob, ch2, (c) => c.get('admin-q'), { code: 403, method: [60, 70], text: refused('queue', 'admin-q') });
      const ok = await bob.createChannel();
      const m = await ok.get('bob-q', { noAck: true });
      assert.ok(m !== false);
      await ok.close();
    });

    test('queue.delete and queue.purge are checked too; an empty permission allows nothing', async () => {
      const ch = await bob.createChannel();
      await expectChannelClose(bob, ch, (c) => c.deleteQueue('admin-q'), { code: 403, method: [50, 40], text: refused('queue', 'admin-q') });
      const ch2 = await bob.createChannel();
      await expectChannelClose(bob, ch2, (c) => c.purgeQueue('admin-q'), { code: 403, method: [50, 30], text: refused('queue', 'admin-q') });
      await ctlOk(broker.dataDir, 'add_user', 'nobody', 'nobody-pw');
      await ctlOk(broker.dataDir, 'set_permissions', '-p', vhost, 'nobody', '', '', '');
      const nobody = await amqp.connect(urlFor(broker, 'nobody', 'nobody-pw', vhost));
      const nch = await nobody.createChannel();
      await expectChannelClose(nobody, nch, (c) => c.assertQueue('anything'), { code: 403, method: [50, 10] });
      await nobody.close();
    });
  });

  test('a password hash made by RabbitMQ (SHA-256, from its docs) verifies; MD5 hashes of RabbitMQ < 3.6 too', async () => {
    const defs = {
      rabbit_version: '3.13.7',
      users: [
        // rabbitmq.com/docs/passwords: salt 908D C60A, password "test12".
        { name: 'rabbit-sha256', password_hash: 'kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR', hashing_algorithm: 'rabbit_password_hashing_sha256', tags: [] },
        // Salt CA D5 08 9B, password "simon", MD5 (rabbitmq-discuss, 2011).
        { name: 'rabbit-md5', password_hash: 'ytUIm8s3AnKsXQjptplKFytfVxI=', hashing_algorithm: 'rabbit_password_hashing_md5', tags: '' },
      ],
      permissions: [
        { user: 'rabbit-sha256', vhost: '/', configure: '.*', write: '.*', read: '.*' },
        { user: 'rabbit-md5', vhost: '/', configure: '.*', write: '.*', read: '.*' },
      ],
    };
    const file = join(broker.dataDir, 'rabbit-users.json');
    writeFileSync(file, JSON.stringify(defs));
    await ctlOk(broker.dataDir, 'import_definitions', file);
    const c1 = await amqp.connect(urlFor(broker, 'rabbit-sha256', 'test12', '/'));
    await c1.close();
    const c2 = await amqp.connect(urlFor(broker, 'rabbit-md5', 'simon', '/'));
    await c2.close();
    assert.match(await refusedConnect(urlFor(broker, 'rabbit-sha256', 'test13', '/')), /ACCESS_REFUSED .*\(403\)/);
    const auth = await runWarrenctl(['--data-dir', broker.dataDir, 'authenticate_user', 'rabbit-sha256', 'test12']);
    assert.equal(auth.code, 0, auth.stderr);
  });
});

describe('loopback-only users', () => {
  // A non-loopback address of this machine: connections to it come from it, not from 127.0.0.1.
  const external = Object.values(networkInterfaces())
    .flat()
    .find((a) => a !== undefined && a.family === 'IPv4' && !a.internal)?.address;
  let broker: TestBroker;
  before(async () => {
    assert.ok(external !== undefined, 'this test needs a non-loopback IPv4 address on the machine');
    broker = await startBroker({ args: ['--host', '0.0.0.0', '--loopback-users', 'guest,carol'] });
    await ctlOk(broker.dataDir, 'add_user', 'carol', 'carol-pw');
    await ctlOk(broker.dataDir, 'set_permissions', 'carol', '.*', '.*', '.*');
    await ctlOk(broker.dataDir, 'add_user', 'dave', 'dave-pw');
    await ctlOk(broker.dataDir, 'set_permissions', 'dave', '.*', '.*', '.*');
  });
  after(async () => {
    assert.equal(await broker.stop(), 0);
  });

  test('users in --loopback-users are refused from a non-loopback address (403), others are not', async () => {
    const host = external as string;
    for (const [user, pw] of [['guest', 'guest'], ['carol', 'carol-pw']] as const) {
      const text = await refusedConnect(urlFor(broker, user, pw, '/', host));
      assert.match(text, /ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN\. .*\(403\)/, `${user} from ${host}`);
    }
    const dave = await amqp.connect(urlFor(broker, 'dave', 'dave-pw', '/', host));
    await dave.close();
    // From loopback the same users are fine.
    for (const [user, pw] of [['guest', 'guest'], ['carol', 'carol-pw']] as const) {
      const c = await amqp.connect(urlFor(broker, user, pw, '/', '127.0.0.1'));
      await c.close();
    }
    assert.match(broker.log(), /user 'carol' can only connect via localhost/);
  });

  test('a refused login does not disturb other connections', async () => {
    const c = await amqp.connect(urlFor(broker, 'dave', 'dave-pw', '/', external as string));
    let failure: unknown;
    c.on('error', (err: unknown) => {
      failure = err;
    });
    await refusedConnect(urlFor(broker, 'carol', 'carol-pw', '/', external as string));
    const ch = await c.createChannel();
    await ch.checkExchange('amq.direct');
    await c.close();
    assert.equal(failure, undefined);
  });
});
