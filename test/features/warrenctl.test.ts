/**
 * warrenctl, the real CLI, against real nodes: user, vhost, permission and policy management
 * with rabbitmqctl's output and errors, listings, definitions export → import round trip,
 * import of a RabbitMQ-written definitions file, persistence of what it changes, and how it
 * finds the node's admin socket.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqp from 'amqplib';
import { AMQPClient } from '@cloudamqp/amqp-client';
import { startBroker, waitFor, type TestBroker } from '../helpers/broker.js';
import { within } from '../helpers/amqp-expect.js';
import { bodies, drain, publishConfirmed, unique } from '../helpers/feature-kit.js';
import { ctl, ctlOk, ctlRows, queueCounts, runWarrenctl } from '../helpers/warrenctl.js';
import type { Definitions } from '../../src/front/definitions.js';

function urlFor(broker: TestBroker, user: string, password: string, vhost = '/'): string {
  return `amqp://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${broker.host}:${broker.port}/${encodeURIComponent(vhost)}`;
}

async function canLogIn(broker: TestBroker, user: string, password: string, vhost = '/'): Promise<boolean> {
  const c = new AMQPClient(urlFor(broker, user, password, vhost));
  try {
    await c.connect();
    await c.close();
    return true;
  } catch {
    return false;
  }
}

/**
 * Resolves with the reply code and text of the server's connection.close (amqplib reports a
 * 320 CONNECTION_FORCED on 'close', not as an 'error').
 */
function serverClose(conn: amqp.ChannelModel): Promise<string> {
  return within(
    new Promise<string>((resolve) => conn.once('close', (err: unknown) => resolve(err instanceof Error ? err.message : String(err)))),
    'the server to close the connection',
  );
}

describe('warrenctl', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startBroker();
  });
  after(async () => {
    assert.equal(await broker.stop(), 0);
  });

  test('users: add, list (table with a header), tags, password change, delete; errors as rabbitmqctl', async () => {
    const added = await ctl(broker.dataDir, 'add_user', 'alice', 'alice-pw');
    assert.equal(added.code, 0);
    assert.match(added.stdout, /^Adding user "alice" \.\.\.\n/);
    await ctlOk(broker.dataDir, 'set_user_tags', 'alice', 'administrator', 'monitoring');
    const listed = await ctlOk(broker.dataDir, 'list_users');
    const lines = listed.trimEnd().split('\n');
    assert.equal(lines[0], 'Listing users ...');
    assert.equal(lines[1], 'user\ttags');
    assert.ok(lines.includes('alice\t[administrator, monitoring]'), listed);
    assert.ok(lines.includes('guest\t[administrator]'), listed);
    // -q drops the banner, -s the header too.
    assert.equal((await ctlOk(broker.dataDir, '-q', 'list_users')).split('\n')[0], 'user\ttags');
    assert.ok(!(await ctlOk(broker.dataDir, '-s', 'list_users')).includes('user\ttags'));
    await ctlOk(broker.dataDir, 'set_permissions', 'alice', '.*', '.*', '.*');
    assert.equal(await canLogIn(broker, 'alice', 'alice-pw'), true);
    await ctlOk(broker.dataDir, 'change_password', 'alice', 'new-pw');
    assert.equal(await canLogIn(broker, 'alice', 'alice-pw'), false);
    assert.equal(await canLogIn(broker, 'alice', 'new-pw'), true);

    const dup = await ctl(broker.dataDir, 'add_user', 'alice', 'x');
    assert.equal(dup.code, 70);
    assert.equal(dup.stderr, 'Error:\nUser "alice" already exists\n');
    const missing = await ctl(broker.dataDir, 'delete_user', 'ghost');
    assert.equal(missing.code, 67);
    assert.equal(missing.stderr, 'Error:\nUser "ghost" does not exist\n');
    const usage = await ctl(broker.dataDir, 'add_user', 'only-a-name');
    assert.equal(usage.code, 64);
    const unknown = await ctl(broker.dataDir, 'frobnicate');
    assert.equal(unknown.code, 64);
  });

  test("delete_user removes the user and closes that user's connections (320)", async () => {
    await ctlOk(broker.dataDir, 'add_user', 'doomed', 'pw');
    await ctlOk(broker.dataDir, 'set_permissions', 'doomed', '.*', '.*', '.*');
    const conn = await amqp.connect(urlFor(broker, 'doomed', 'pw'));
    const other = await amqp.connect(broker.url);
    const closed = serverClose(conn);
    await ctlOk(broker.dataDir, 'delete_user', 'doomed');
    assert.match(await closed, /320 \(CONNECTION-FORCED\) with message "CONNECTION_FORCED - user 'doomed' is deleted"/);
    assert.equal(await canLogIn(broker, 'doomed', 'pw'), false);
    const rows = await ctlRows(broker.dataDir, 'list_users');
    assert.equal(rows.some((r) => r['user'] === 'doomed'), false);
    // Other users' connections are untouched.
    const ch = await other.createChannel();
    await ch.checkExchange('amq.direct');
    await other.close();
  });

  test('vhosts and permissions: add, list, set/clear permissions; delete_vhost deletes its queues and closes its connections', async () => {
    const v = unique('ctl-vhost');
    await ctlOk(broker.dataDir, 'add_vhost', v);
    assert.ok((await ctlRows(broker.dataDir, 'list_vhosts')).some((r) => r['name'] === v));
    await ctlOk(broker.dataDir, 'add_user', 'vuser', 'vpw');
    await ctlOk(broker.dataDir, 'set_permissions', '-p', v, 'vuser', '^v-', '.*', '.*');
    const perms = await ctlOk(broker.dataDir, '-q', 'list_permissions', '-p', v);
    assert.equal(perms, 'user\tconfigure\twrite\tread\nvuser\t^v-\t.*\t.*\n');
    assert.deepEqual(await ctlRows(broker.dataDir, 'list_user_permissions', 'vuser'), [{ vhost: v, configure: '^v-', write: '.*', read: '.*' }]);

    const conn = await amqp.connect(urlFor(broker, 'vuser', 'vpw', v));
    const ch = await conn.createConfirmChannel();
    await ch.assertQueue('v-q', { durable: true });
    await publishConfirmed(ch, '', 'v-q', 'inside', { persistent: true });
    assert.equal((await queueCounts(broker.dataDir, 'v-q', v))?.messages, 1);
    const closed = serverClose(conn);
    await ctlOk(broker.dataDir, 'delete_vhost', v);
    assert.match(await closed, new RegExp(`320 \\(CONNECTION-FORCED\\) with message "CONNECTION_FORCED - vhost '${v}' is deleted"`));
    assert.equal((await ctlRows(broker.dataDir, 'list_vhosts')).some((r) => r['name'] === v), false);
    assert.deepEqual(await ctlRows(broker.dataDir, 'list_user_permissions', 'vuser'), []);
    const gone = await ctl(broker.dataDir, 'list_queues', '-p', v);
    assert.equal(gone.code, 70);
    assert.match(gone.stderr, new RegExp(`Virtual host '${v}' does not exist`));
    // Re-created, the vhost starts empty: the queue and its message are gone.
    await ctlOk(broker.dataDir, 'add_vhost', v);
    assert.deepEqual(await ctlRows(broker.dataDir, 'list_queues', '-p', v), []);
    await ctlOk(broker.dataDir, 'clear_permissions', '-p', '/', 'guest');
    assert.equal(await canLogIn(broker, 'guest', 'guest'), false);
    await ctlOk(broker.dataDir, 'set_permissions', '-p', '/', 'guest', '.*', '.*', '.*');
    assert.equal(await canLogIn(broker, 'guest', 'guest'), true);
    const badRegex = await ctl(broker.dataDir, 'set_permissions', 'vuser', '(', '.*', '.*');
    assert.equal(badRegex.code, 65);
    const noVhost = await ctl(broker.dataDir, 'set_permissions', '-p', 'nowhere', 'vuser', '.*', '.*', '.*');
    assert.notEqual(noVhost.code, 0);
    assert.match(noVhost.stderr, /Virtual host 'nowhere' does not exist/);
  });

  test('list_queues: name and messages by default, chosen columns, counts from the shards, json formatter', async () => {
    const conn = await amqp.connect(broker.url);
    const ch = await conn.createConfirmChannel();
    const q = unique('ctl-list');
    await ch.assertQueue(q, { durable: false, exclusive: true });
    for (const b of ['1', '2', '3']) await publishConfirmed(ch, '', q, b);
    const consumer = await conn.createChannel();
    await consumer.prefetch(1);
    let delivered = 0;
    await consumer.consume(q, () => {
      delivered++;
    });
    await waitFor(() => delivered === 1, 'one delivery');
    const text = await ctlOk(broker.dataDir, 'list_queues');
    const lines = text.trimEnd().split('\n');
    assert.equal(lines[0], 'Listing queues for vhost / ...');
    assert.equal(lines[1], 'name\tmessages');
    assert.ok(lines.includes(`${q}\t3`), text);
    const cols = await ctlOk(broker.dataDir, '-q', 'list_queues', 'name', 'messages', 'consumers', 'durable');
    assert.ok(cols.split('\n').includes(`${q}\t3\t1\tfalse`), cols);
    assert.equal(cols.split('\n')[0], 'name\tmessages\tconsumers\tdurable');
    const rows = await ctlRows(broker.dataDir, 'list_queues', 'name', 'messages_ready', 'messages_unacknowledged', 'exclusive');
    assert.deepEqual(rows.find((r) => r['name'] === q), { name: q, messages_ready: 2, messages_unacknowledged: 1, exclusive: true });
    const bad = await ctl(broker.dataDir, 'list_queues', 'name', 'colour');
    assert.equal(bad.code, 64);
    assert.match(bad.stderr, /colour/);
    await conn.close();
  });

  test('list_exchanges, list_bindings, list_connections, list_consumers', async () => {
    const conn = await amqp.connect(broker.url);
    const ch = await conn.createChannel();
    const x = unique('ctl-x');
    const q = unique('ctl-bq');
    await ch.assertExchange(x, 'topic', { durable: false });
    await ch.assertQueue(q, { exclusive: true });
    await ch.bindQueue(q, x, 'a.#');
    const { consumerTag } = await ch.consume(q, () => {}, { noAck: true });
    const exchanges = await ctlRows(broker.dataDir, 'list_exchanges');
    assert.deepEqual(exchanges.find((r) => r['name'] === x), { name: x, type: 'topic' });
    assert.deepEqual(exchanges.find((r) => r['name'] === ''), { name: '', type: 'direct' });
    const bindings = await ctlRows(broker.dataDir, 'list_bindings');
    assert.deepEqual(
      bindings.filter((r) => r['destination_name'] === q),
      [
        { source_name: '', source_kind: 'exchange', destination_name: q, destination_kind: 'queue', routing_key: q, arguments: {} },
        { source_name: x, source_kind: 'exchange', destination_name: q, destination_kind: 'queue', routing_key: 'a.#', arguments: {} },
      ],
    );
    const conns = await ctlRows(broker.dataDir, 'list_connections', 'user', 'peer_host', 'state', 'vhost', 'channels');
    assert.ok(conns.some((r) => r['user'] === 'guest' && r['peer_host'] === '127.0.0.1' && r['state'] === 'running' && r['vhost'] === '/' && r['channels'] === 1), JSON.stringify(conns));
    const consumers = await ctlRows(broker.dataDir, 'list_consumers', 'queue_name', 'consumer_tag', 'ack_required', 'active');
    assert.deepEqual(consumers.filter((r) => r['queue_name'] === q), [{ queue_name: q, consumer_tag: consumerTag, ack_required: false, active: true }]);
    await conn.close();
  });

  test('policies: set (with priority and apply-to), list, clear', async () => {
    const name = unique('ctl-policy');
    await ctlOk(broker.dataDir, 'set_policy', name, '^ctl-pol\\.', '{"max-length":7,"overflow":"reject-publish"}', '--priority', '3', '--apply-to', 'queues');
    const rows = await ctlRows(broker.dataDir, 'list_policies');
    assert.deepEqual(rows.find((r) => r['name'] === name), {
      vhost: '/',
      name,
      pattern: '^ctl-pol\\.',
      'apply-to': 'queues',
      definition: { 'max-length': 7, overflow: 'reject-publish' },
      priority: 3,
    });
    await ctlOk(broker.dataDir, 'clear_policy', name);
    assert.equal((await ctlRows(broker.dataDir, 'list_policies')).some((r) => r['name'] === name), false);
    const again = await ctl(broker.dataDir, 'clear_policy', name);
    assert.equal(again.code, 70);
    assert.equal(again.stderr, 'Error:\nParameter does not exist\n');
  });

  test('the admin socket: mode 0600, JSON lines answered in order, bad lines answered with an error', async () => {
    const path = join(broker.dataDir, 'warren.sock');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const replies = await within(
      new Promise<unknown[]>((resolve, reject) => {
        const s = createConnection(path);
        let text = '';
        s.setEncoding('utf8');
        s.on('error', reject);
        s.on('data', (chunk: string) => {
          text += chunk;
          const lines = text.split('\n').filter((l) => l !== '');
          if (lines.length === 3) {
            s.end();
            resolve(lines.map((l) => JSON.parse(l) as unknown));
          }
        });
        // Two requests and a broken line in one write: three replies, in order.
        s.write('{"cmd":"list_users"}\n{"cmd":"delete_user","args":["nobody-here"]}\nnot json\n');
      }),
      'three replies',
    );
    const users = (await ctlRows(broker.dataDir, 'list_users')).map((u) => ({ user: u['user'], tags: u['tags'] }));
    assert.deepEqual(replies, [
      { ok: true, columns: ['user', 'tags'], rows: users },
      { ok: false, error: 'User "nobody-here" does not exist', exitCode: 67 },
      { ok: false, error: 'Error: the request is not valid JSON', exitCode: 65 },
    ]);
  });

  test('the socket is found by --socket, by WARREN_DATA_DIR, and as ./data/warren.sock; a stopped node is exit 69', async () => {
    assert.equal((await runWarrenctl(['--socket', join(broker.dataDir, 'warren.sock'), 'ping'])).code, 0);
    assert.equal((await runWarrenctl(['-n', join(broker.dataDir, 'warren.sock'), 'ping'])).code, 0);
    assert.equal((await runWarrenctl(['ping'], { env: { WARREN_DATA_DIR: broker.dataDir } })).code, 0);
    const parent = mkdtempSync(join(tmpdir(), 'warrenctl-cwd-'));
    const node = await startBroker({ dataDir: join(parent, 'data') });
    try {
      const r = await runWarrenctl(['-q', 'list_vhosts'], { cwd: parent, env: { WARREN_DATA_DIR: undefined } });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'name\n/\n');
    } finally {
      assert.equal(await node.stop(), 0);
    }
    const down = await runWarrenctl(['list_vhosts'], { cwd: parent, env: { WARREN_DATA_DIR: undefined } });
    assert.equal(down.code, 69);
    assert.match(down.stderr, /^Error: unable to connect to node at data\/warren\.sock/);
    rmSync(parent, { recursive: true, force: true });
  });
});

describe('warrenctl definitions', () => {
  let a: TestBroker;
  let b: TestBroker;
  let files: string;
  before(async () => {
    [a, b] = await Promise.all([startBroker(), startBroker()]);
    files = mkdtempSync(join(tmpdir(), 'warren-defs-'));
  });
  after(async () => {
    assert.equal(await a.stop(), 0);
    assert.equal(await b.stop(), 0);
    rmSync(files, { recursive: true, force: true });
  });

  test('export_definitions → import_definitions on a fresh node reproduces users, vhosts, permissions, policies, queues, exchanges, bindings', async () => {
    await ctlOk(a.dataDir, 'add_vhost', 'shop');
    await ctlOk(a.dataDir, 'add_user', 'shopper', 's3cret');
    await ctlOk(a.dataDir, 'set_user_tags', 'shopper', 'monitoring');
    await ctlOk(a.dataDir, 'set_permissions', '-p', 'shop', 'shopper', '.*', '.*', '.*');
    await ctlOk(a.dataDir, 'set_policy', '-p', 'shop', 'orders-limit', '^orders$', '{"max-length":100}', '--apply-to', 'queues', '--priority', '2');
    const conn = await amqp.connect(urlFor(a, 'shopper', 's3cret', 'shop'));
    const ch = await conn.createChannel();
    await ch.assertExchange('orders-x', 'topic', { durable: true, alternateExchange: 'amq.fanout' });
    await ch.assertQueue('orders', { durable: true, arguments: { 'x-message-ttl': 60000 } });
    await ch.bindQueue('orders', 'orders-x', 'order.*');
    await ch.assertQueue('transient', { durable: false });
    await conn.close();

    const exported = join(files, 'a.json');
    const out = await ctlOk(a.dataDir, 'export_definitions', exported);
    assert.match(out, /^Exporting definitions in JSON to a file at ".*a\.json" \.\.\.\n$/);
    const defs = JSON.parse(readFileSync(exported, 'utf8')) as Definitions;
    assert.deepEqual(defs.queues?.map((q) => q.name), ['orders']);
    assert.equal(defs.warren, undefined, 'shard placement is the node’s own business, not exported');

    const imported = await ctl(b.dataDir, 'import_definitions', exported);
    assert.equal(imported.code, 0, imported.stderr);
    const roundTrip = join(files, 'b.json');
    await ctlOk(b.dataDir, 'export_definitions', roundTrip);
    const again = JSON.parse(readFileSync(roundTrip, 'utf8')) as Definitions;
    const sortBy = <T>(xs: T[] | undefined, key: (x: T) => string): T[] => [...(xs ?? [])].sort((x, y) => key(x).localeCompare(key(y)));
    for (const k of ['users', 'permissions', 'policies', 'queues', 'exchanges', 'bindings', 'vhosts'] as const) {
      const key = (x: unknown): string => JSON.stringify(x);
      assert.deepEqual(sortBy(again[k] as unknown[], key), sortBy(defs[k] as unknown[], key), `${k} survive the round trip`);
    }
    // The password hash came along: the user logs in on the new node with the same password.
    assert.equal(await canLogIn(b, 'shopper', 's3cret', 'shop'), true);
    // And the topology works there.
    const c2 = await amqp.connect(urlFor(b, 'shopper', 's3cret', 'shop'));
    const ch2 = await c2.createConfirmChannel();
    await publishConfirmed(ch2, 'orders-x', 'order.new', 'routed on b');
    assert.deepEqual(bodies(await drain(ch2, 'orders')), ['routed on b']);
    await c2.close();
    // Importing again changes nothing (existing objects are left as they are).
    assert.equal((await ctl(b.dataDir, 'import_definitions', exported)).code, 0);
  });

  test('a RabbitMQ-written definitions file imports: hashed password logs in, queue arguments, bindings and policies apply', async () => {
    // As `rabbitmqctl export_definitions` (3.13) writes it; the hash is the one from RabbitMQ's
    // password docs (salt 908DC60A, password test12).
    const rabbit = {
      rabbit_version: '3.13.7',
      rabbitmq_version: '3.13.7',
      product_name: 'RabbitMQ',
      product_version: '3.13.7',
      users: [
        { name: 'ops', password_hash: 'kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR', hashing_algorithm: 'rabbit_password_hashing_sha256', tags: ['administrator'], limits: {} },
      ],
      vhosts: [{ name: 'legacy', description: 'moved over', tags: [], metadata: { description: 'moved over', tags: [] }, limits: [] }],
      permissions: [{ user: 'ops', vhost: 'legacy', configure: '.*', write: '.*', read: '.*' }],
      topic_permissions: [],
      parameters: [],
      global_parameters: [{ name: 'internal_cluster_id', value: 'rabbitmq-cluster-id-abc' }],
      policies: [{ vhost: 'legacy', name: 'cap', pattern: '^capped$', 'apply-to': 'queues', definition: { 'max-length': 2 }, priority: 0 }],
      queues: [
        { name: 'capped', vhost: 'legacy', durable: true, auto_delete: false, arguments: { 'x-queue-type': 'classic' } },
        { name: 'work', vhost: 'legacy', durable: true, auto_delete: false, arguments: { 'x-queue-type': 'classic', 'x-max-priority': 5, 'x-dead-letter-exchange': 'dead' } },
      ],
      exchanges: [
        { name: 'jobs', vhost: 'legacy', type: 'direct', durable: true, auto_delete: false, internal: false, arguments: {} },
        { name: 'dead', vhost: 'legacy', type: 'fanout', durable: true, auto_delete: false, internal: false, arguments: {} },
      ],
      bindings: [
        { source: 'jobs', vhost: 'legacy', destination: 'work', destination_type: 'queue', routing_key: 'job', arguments: {} },
        { source: 'dead', vhost: 'legacy', destination: 'capped', destination_type: 'queue', routing_key: '', arguments: {} },
      ],
    };
    const file = join(files, 'rabbit.json');
    writeFileSync(file, JSON.stringify(rabbit, null, 2));
    const r = await ctl(b.dataDir, 'import_definitions', file);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await canLogIn(b, 'ops', 'test12', 'legacy'), true);
    assert.equal(await canLogIn(b, 'ops', 'wrong', 'legacy'), false);
    const conn = await amqp.connect(urlFor(b, 'ops', 'test12', 'legacy'));
    const ch = await conn.createConfirmChannel();
    await publishConfirmed(ch, 'jobs', 'job', 'low', { priority: 1 });
    await publishConfirmed(ch, 'jobs', 'job', 'high', { priority: 5 });
    assert.deepEqual(bodies(await drain(ch, 'work')), ['high', 'low']);
    // Dead letters of 'work' reach 'capped' through 'dead', where the policy keeps two.
    const consumer = await conn.createChannel();
    for (const body of ['d1', 'd2', 'd3']) await publishConfirmed(ch, 'jobs', 'job', body, { expiration: '0' });
    await waitFor(async () => (await queueCounts(b.dataDir, 'capped', 'legacy'))?.messages === 2, 'two dead letters in capped');
    assert.deepEqual(bodies(await drain(consumer, 'capped')), ['d2', 'd3']);
    assert.deepEqual((await ctlRows(b.dataDir, 'list_policies', '-p', 'legacy')).map((p) => p['name']), ['cap']);
    assert.deepEqual(await ctlRows(b.dataDir, 'list_users').then((rows) => rows.find((u) => u['user'] === 'ops')), { user: 'ops', tags: ['administrator'] });
    await conn.close();
  });

  test('an invalid definitions file is refused and changes nothing', async () => {
    const bad = {
      users: [{ name: 'half-imported', password_hash: 'kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR', tags: [] }],
      policies: [{ vhost: '/', name: 'broken', pattern: '(', 'apply-to': 'queues', definition: { 'max-length': 1 }, priority: 0 }],
    };
    const file = join(files, 'bad.json');
    writeFileSync(file, JSON.stringify(bad));
    const r = await ctl(b.dataDir, 'import_definitions', file);
    assert.equal(r.code, 65);
    assert.match(r.stderr, /policy 'broken' in vhost '\/'.*pattern should be regular expression/s);
    assert.equal((await ctlRows(b.dataDir, 'list_users')).some((u) => u['user'] === 'half-imported'), false);
    writeFileSync(file, '{ not json');
    const notJson = await ctl(b.dataDir, 'import_definitions', file);
    assert.equal(notJson.code, 65);
    assert.match(notJson.stderr, /failed to parse definitions file/);
  });

  test('what warrenctl changes is persisted: it survives a restart of the node', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'warren-persist-'));
    let node = await startBroker({ dataDir });
    try {
      await ctlOk(dataDir, 'add_vhost', 'kept');
      await ctlOk(dataDir, 'add_user', 'keeper', 'kpw');
      await ctlOk(dataDir, 'set_permissions', '-p', 'kept', 'keeper', '^k', '.*', '.*');
      await ctlOk(dataDir, 'set_policy', '-p', 'kept', 'kp', '.*', '{"message-ttl":5000}');
      await ctlOk(dataDir, 'add_user', 'dropped', 'x');
      await ctlOk(dataDir, 'delete_user', 'dropped');
      // A crash right after the command returned: nothing may be lost.
      await node.kill();
      node = await startBroker({ dataDir });
      assert.deepEqual(
        (await ctlRows(dataDir, 'list_users')).map((u) => u['user']).sort(),
        ['guest', 'keeper'],
      );
      assert.deepEqual(await ctlRows(dataDir, 'list_permissions', '-p', 'kept'), [{ user: 'keeper', configure: '^k', write: '.*', read: '.*' }]);
      assert.deepEqual((await ctlRows(dataDir, 'list_policies', '-p', 'kept')).map((p) => p['definition']), [{ 'message-ttl': 5000 }]);
      assert.equal(await canLogIn(node, 'keeper', 'kpw', 'kept'), true);
    } finally {
      assert.equal(await node.stop(), 0);
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
