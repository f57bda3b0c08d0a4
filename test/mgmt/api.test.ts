/**
 * The management HTTP API against a real node with real HTTP requests: every endpoint
 * family, in RabbitMQ's shapes — overview, nodes, vhosts, queues (declare, list, get,
 * purge, delete), exchanges (declare, publish, delete), bindings, connections, channels,
 * consumers, users, permissions, policies, definitions, health checks, latency — and the
 * list parameters (pagination, sort, columns, name filter).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { waitFor } from '../helpers/broker.js';
import { basic, call, list, obj, startMgmtBroker, type MgmtBroker } from './mgmt-kit.js';

describe('management API', () => {
  let m: MgmtBroker;
  let conn: amqp.ChannelModel;
  let ch: amqp.Channel;
  const api = (path: string, opts?: Parameters<typeof call>[2]) => call(m.mgmt, path, opts);

  before(async () => {
    m = await startMgmtBroker();
    conn = await amqp.connect(m.broker.url, { clientProperties: { connection_name: 'api-test' } });
    ch = await conn.createChannel();
  });
  after(async () => {
    await conn.close().catch(() => {});
    await m.stop();
  });

  test('overview and nodes carry RabbitMQ fields', async () => {
    const ov = obj(await api('/api/overview'));
    for (const k of ['management_version', 'rabbitmq_version', 'product_name', 'cluster_name', 'node', 'message_stats', 'queue_totals', 'object_totals', 'listeners', 'exchange_types']) {
      assert.ok(k in ov, `overview has ${k}`);
    }
    const listeners = ov['listeners'] as { protocol: string; port: number }[];
    assert.deepEqual(new Set(listeners.map((l) => l.protocol)), new Set(['amqp', 'http', 'http/prometheus', 'http/web-amqp']));
    assert.ok(listeners.some((l) => l.protocol === 'amqp' && l.port === m.broker.port));
    const nodes = list(await api('/api/nodes'));
    assert.equal(nodes.length, 1);
    const node = nodes[0] as Record<string, unknown>;
    for (const k of ['name', 'mem_used', 'mem_limit', 'mem_alarm', 'disk_free', 'disk_free_alarm', 'fd_used', 'uptime', 'running']) assert.ok(k in node, `node has ${k}`);
    assert.equal(node['running'], true);
    assert.ok((node['mem_used'] as number) > 0);
    assert.equal((node['shards'] as unknown[]).length, 2);
    assert.equal((await api(`/api/nodes/${encodeURIComponent(String(node['name']))}`)).status, 200);
    assert.equal((await api('/api/nodes/nobody@nowhere')).status, 404);
    assert.deepEqual(obj(await api('/api/whoami')), { name: 'guest', tags: ['administrator'] });
  });

  test('queues: declare (201, then 204), read, list in a vhost written %2F, delete', async () => {
    const put = await api('/api/queues/%2F/api-q1', { method: 'PUT', body: { durable: true, arguments: { 'x-max-length': 100 } } });
    assert.equal(put.status, 201, put.text);
    assert.equal((await api('/api/queues/%2F/api-q1', { method: 'PUT', body: { durable: true, arguments: { 'x-max-length': 100 } } })).status, 204);
    const q = obj(await api('/api/queues/%2F/api-q1'));
    assert.equal(q['name'], 'api-q1');
    assert.equal(q['vhost'], '/');
    assert.equal(q['durable'], true);
    assert.deepEqual(q['arguments'], { 'x-max-length': 100 });
    for (const k of ['messages', 'messages_ready', 'messages_unacknowledged', 'consumers', 'message_stats', 'messages_details', 'node', 'state', 'type']) assert.ok(k in q, `queue has ${k}`);
    // The queue exists for AMQP clients too.
    const ok = await ch.checkQueue('api-q1');
    assert.equal(ok.queue, 'api-q1');
    assert.ok(list(await api('/api/queues/%2F')).some((x) => x['name'] === 'api-q1'));
    assert.ok(list(await api('/api/queues')).some((x) => x['name'] === 'api-q1'));
    assert.equal((await api('/api/queues/%2F/api-q1', { method: 'DELETE' })).status, 204);
    assert.equal((await api('/api/queues/%2F/api-q1')).status, 404);
    assert.equal((await api('/api/queues/%2F/api-q1', { method: 'DELETE' })).status, 404);
  });

  test('publish through an exchange, counts and rates, get with ackmode, purge', async () => {
    await ch.assertQueue('api-q2', { durable: false });
    const pub = (payload: string, routingKey = 'api-q2') =>
      api('/api/exchanges/%2F/amq.default/publish', { method: 'POST', body: { routing_key: routingKey, payload, payload_encoding: 'string', properties: { delivery_mode: 1, headers: { h: 'v' } } } });
    for (let i = 0; i < 3; i++) assert.deepEqual(obj(await pub(`m${i}`)), { routed: true });
    assert.deepEqual(obj(await pub('nowhere', 'no-such-queue')), { routed: false });
    const q = obj(await api('/api/queues/%2F/api-q2'));
    assert.equal(q['messages_ready'], 3);
    assert.equal((q['message_stats'] as Record<string, unknown>)['publish'], 3);

    // Peek: requeued, so still there, now redelivered.
    const peek = list(await api('/api/queues/%2F/api-q2/get', { method: 'POST', body: { count: 2, ackmode: 'ack_requeue_true', encoding: 'auto' } }));
    assert.equal(peek.length, 2);
    assert.equal(peek[0]?.['payload'], 'm0');
    assert.equal(peek[0]?.['payload_encoding'], 'string');
    assert.equal(peek[0]?.['routing_key'], 'api-q2');
    assert.equal(peek[0]?.['exchange'], '');
    assert.deepEqual((peek[0]?.['properties'] as Record<string, unknown>)['headers'], { h: 'v' });
    assert.equal(obj(await api('/api/queues/%2F/api-q2'))['messages_ready'], 3);
    const again = list(await api('/api/queues/%2F/api-q2/get', { method: 'POST', body: { count: 1, ackmode: 'ack_requeue_false', encoding: 'base64' } }));
    assert.equal(again[0]?.['payload_encoding'], 'base64');
    assert.equal(Buffer.from(String(again[0]?.['payload']), 'base64').toString(), 'm0');
    assert.equal(again[0]?.['redelivered'], true);
    assert.equal(obj(await api('/api/queues/%2F/api-q2'))['messages_ready'], 2);

    // Rates come from samples taken every few seconds.
    await waitFor(async () => {
      await pub('rate');
      const s = obj(await api('/api/queues/%2F/api-q2'))['message_stats'] as Record<string, { rate: number }>;
      return (s['publish_details']?.rate ?? 0) > 0;
    }, 'a publish rate above zero', 20_000);

    assert.equal((await api('/api/queues/%2F/api-q2/contents', { method: 'DELETE' })).status, 204);
    assert.equal(obj(await api('/api/queues/%2F/api-q2'))['messages_ready'], 0);
    assert.deepEqual(list(await api('/api/queues/%2F/api-q2/get', { method: 'POST', body: { count: 1, ackmode: 'ack_requeue_false', encoding: 'auto' } })), []);
  });

  test('exchanges: declare, inequivalent redeclare, bindings both ways, delete', async () => {
    assert.equal((await api('/api/exchanges/%2F/api-x', { method: 'PUT', body: { type: 'topic', durable: true } })).status, 201);
    assert.equal((await api('/api/exchanges/%2F/api-x', { method: 'PUT', body: { type: 'topic', durable: true } })).status, 204);
    const bad = await api('/api/exchanges/%2F/api-x', { method: 'PUT', body: { type: 'fanout', durable: true } });
    assert.equal(bad.status, 400);
    assert.deepEqual(obj(bad), { error: 'bad_request', reason: "inequivalent arg 'type' for exchange 'api-x' in vhost '/': received 'fanout' but current is 'topic'" });
    const x = obj(await api('/api/exchanges/%2F/api-x'));
    assert.equal(x['type'], 'topic');
    assert.ok(list(await api('/api/exchanges/%2F')).some((e) => e['name'] === '' && e['type'] === 'direct'), 'the default exchange is listed');
    assert.equal(obj(await api('/api/exchanges/%2F/amq.default'))['name'], '');

    await api('/api/queues/%2F/api-q3', { method: 'PUT', body: {} });
    const created = await api('/api/bindings/%2F/e/api-x/q/api-q3', { method: 'POST', body: { routing_key: 'a.*', arguments: {} } });
    assert.equal(created.status, 201, created.text);
    assert.match(created.headers.get('location') ?? '', /^\/api\/bindings\/%2F\/e\/api-x\/q\/api-q3\/a\.\*$/);
    const bs = list(await api('/api/bindings/%2F/e/api-x/q/api-q3'));
    assert.equal(bs.length, 1);
    assert.deepEqual(bs[0], { source: 'api-x', vhost: '/', destination: 'api-q3', destination_type: 'queue', routing_key: 'a.*', arguments: {}, properties_key: 'a.*' });
    assert.equal(list(await api('/api/exchanges/%2F/api-x/bindings/source')).length, 1);
    assert.ok(list(await api('/api/queues/%2F/api-q3/bindings')).some((b) => b['source'] === ''), 'the default binding is listed');
    assert.deepEqual(obj(await api('/api/exchanges/%2F/api-x/publish', { method: 'POST', body: { routing_key: 'a.b', payload: 'via topic' } })), { routed: true });
    assert.deepEqual(obj(await api('/api/exchanges/%2F/api-x/publish', { method: 'POST', body: { routing_key: 'b.b', payload: 'nowhere' } })), { routed: false });
    assert.equal(obj(await api('/api/queues/%2F/api-q3'))['messages_ready'], 1);

    // Exchange-to-exchange, with arguments (their properties_key carries a hash).
    await api('/api/exchanges/%2F/api-x2', { method: 'PUT', body: { type: 'headers' } });
    const e2e = await api('/api/bindings/%2F/e/api-x/e/api-x2', { method: 'POST', body: { routing_key: '#', arguments: { 'x-match': 'any', k: 1 } } });
    assert.equal(e2e.status, 201, e2e.text);
    const e2eList = list(await api('/api/bindings/%2F/e/api-x/e/api-x2'));
    const props = String(e2eList[0]?.['properties_key']);
    assert.match(props, /^%23~[A-Za-z0-9_-]+$/);
    assert.equal((await api(`/api/bindings/%2F/e/api-x/e/api-x2/${encodeURIComponent(props)}`)).status, 200);
    assert.equal((await api(`/api/bindings/%2F/e/api-x/e/api-x2/${encodeURIComponent(props)}`, { method: 'DELETE' })).status, 204);
    assert.equal(list(await api('/api/bindings/%2F/e/api-x/e/api-x2')).length, 0);

    assert.equal((await api('/api/bindings/%2F/e/api-x/q/api-q3/a.*', { method: 'DELETE' })).status, 204);
    assert.equal((await api('/api/bindings/%2F/e/api-x/q/api-q3/a.*')).status, 404);
    assert.equal((await api('/api/exchanges/%2F/api-x', { method: 'DELETE' })).status, 204);
    assert.equal((await api('/api/exchanges/%2F/api-x')).status, 404);
    assert.equal((await api('/api/exchanges/%2F/amq.direct', { method: 'DELETE' })).status, 401);
  });

  test('connections, channels and consumers; closing a connection', async () => {
    const other = await amqp.connect(m.broker.url, { clientProperties: { connection_name: 'to-close' } });
    // amqplib reports a server's 320 CONNECTION_FORCED as the close event's error.
    const closed = new Promise<unknown>((resolve) => other.on('close', resolve));
    other.on('error', () => {});
    const och = await other.createChannel();
    await och.prefetch(7);
    await och.assertQueue('api-q4');
    await och.consume('api-q4', () => {}, { consumerTag: 'api-consumer' });
    let target: Record<string, unknown> | undefined;
    await waitFor(async () => {
      target = list(await api('/api/connections')).find((c) => c['user_provided_name'] === 'to-close');
      return target;
    }, 'the connection to be listed');
    assert.ok(target !== undefined);
    for (const k of ['name', 'user', 'vhost', 'peer_host', 'peer_port', 'channels', 'protocol', 'client_properties', 'recv_oct', 'send_oct', 'state']) assert.ok(k in target, `connection has ${k}`);
    assert.equal(target['user'], 'guest');
    assert.equal(target['channels'], 1);
    const name = String(target['name']);
    assert.equal(obj(await api(`/api/connections/${encodeURIComponent(name)}`))['name'], name);
    const chans = list(await api(`/api/connections/${encodeURIComponent(name)}/channels`));
    assert.equal(chans.length, 1);
    assert.equal(chans[0]?.['prefetch_count'], 7);
    assert.equal(chans[0]?.['consumer_count'], 1);
    assert.ok(list(await api('/api/channels')).some((c) => c['name'] === `${name} (1)`));
    assert.equal(obj(await api(`/api/channels/${encodeURIComponent(`${name} (1)`)}`))['number'], 1);
    const consumers = list(await api('/api/consumers/%2F'));
    const mine = consumers.find((c) => c['consumer_tag'] === 'api-consumer');
    assert.ok(mine !== undefined);
    assert.deepEqual(mine['queue'], { name: 'api-q4', vhost: '/' });
    assert.equal((mine['channel_details'] as Record<string, unknown>)['connection_name'], name);
    assert.equal(obj(await api('/api/queues/%2F/api-q4'))['consumers'], 1);

    const del = await api(`/api/connections/${encodeURIComponent(name)}`, { method: 'DELETE', headers: { 'X-Reason': 'test says bye' } });
    assert.equal(del.status, 204);
    const err = (await closed) as { message?: string };
    assert.match(String(err.message), /320/);
    assert.match(String(err.message), /test says bye/);
    await waitFor(async () => (await api(`/api/connections/${encodeURIComponent(name)}`)).status === 404, 'the connection to be gone');
  });

  test('vhosts, users, permissions: create, use, delete', async () => {
    assert.equal((await api('/api/vhosts/api-vh', { method: 'PUT', body: {} })).status, 201);
    assert.equal((await api('/api/vhosts/api-vh', { method: 'PUT' })).status, 204);
    assert.ok(list(await api('/api/vhosts')).some((v) => v['name'] === 'api-vh'));
    assert.equal((await api('/api/users/api-user', { method: 'PUT', body: { password: 's3cret', tags: 'management' } })).status, 201);
    assert.equal((await api('/api/users/api-user', { method: 'PUT', body: { password: 's3cret', tags: ['management'] } })).status, 204);
    assert.deepEqual(obj(await api('/api/users/api-user'))['tags'], ['management']);
    assert.equal((await api('/api/permissions/api-vh/api-user', { method: 'PUT', body: { configure: '^api-', write: '.*', read: '.*' } })).status, 201);
    assert.deepEqual(obj(await api('/api/permissions/api-vh/api-user')), { user: 'api-user', vhost: 'api-vh', configure: '^api-', write: '.*', read: '.*' });
    assert.ok(list(await api('/api/permissions')).some((p) => p['user'] === 'api-user'));
    assert.ok(list(await api('/api/users/api-user/permissions')).some((p) => p['vhost'] === 'api-vh'));

    const me = basic('api-user', 's3cret');
    assert.deepEqual(obj(await api('/api/whoami', { auth: me })), { name: 'api-user', tags: ['management'] });
    // A management user sees its vhosts only, declares what its permissions allow.
    assert.deepEqual(list(await api('/api/vhosts', { auth: me })).map((v) => v['name']), ['api-vh']);
    assert.equal((await api('/api/queues/api-vh/api-ok', { method: 'PUT', body: {}, auth: me })).status, 201);
    const refused = await api('/api/queues/api-vh/other', { method: 'PUT', body: {}, auth: me });
    assert.equal(refused.status, 401);
    assert.deepEqual(obj(refused), { error: 'not_authorised', reason: "access to queue 'other' in vhost 'api-vh' refused for user 'api-user'" });
    assert.equal((await api('/api/queues/%2F', { auth: me })).status, 401);
    assert.deepEqual(list(await api('/api/queues', { auth: me })).map((q) => q['name']), ['api-ok']);

    assert.equal((await api('/api/permissions/api-vh/api-user', { method: 'DELETE' })).status, 204);
    assert.equal((await api('/api/permissions/api-vh/api-user')).status, 404);
    assert.equal((await api('/api/users/api-user', { method: 'DELETE' })).status, 204);
    assert.equal((await api('/api/users/api-user')).status, 404);
    assert.equal((await api('/api/whoami', { auth: me })).status, 401);
    assert.equal((await api('/api/vhosts/api-vh', { method: 'DELETE' })).status, 204);
    assert.equal((await api('/api/vhosts/api-vh')).status, 404);
    assert.equal((await api('/api/queues/api-vh')).status, 404);
  });

  test('policies: set, list, apply, clear', async () => {
    const put = await api('/api/policies/%2F/api-ttl', { method: 'PUT', body: { pattern: '^api-pol', definition: { 'message-ttl': 60000 }, priority: 1, 'apply-to': 'queues' } });
    assert.equal(put.status, 201, put.text);
    assert.deepEqual(obj(await api('/api/policies/%2F/api-ttl')), { vhost: '/', name: 'api-ttl', pattern: '^api-pol', 'apply-to': 'queues', definition: { 'message-ttl': 60000 }, priority: 1 });
    assert.equal(list(await api('/api/policies')).length, 1);
    await api('/api/queues/%2F/api-pol-q', { method: 'PUT', body: {} });
    assert.equal(obj(await api('/api/queues/%2F/api-pol-q'))['policy'], 'api-ttl');
    const bad = await api('/api/policies/%2F/broken', { method: 'PUT', body: { pattern: '.*', definition: { 'message-ttl': -1 } } });
    assert.equal(bad.status, 400, bad.text);
    assert.equal((await api('/api/policies/%2F/api-ttl', { method: 'DELETE' })).status, 204);
    assert.equal((await api('/api/policies/%2F/api-ttl')).status, 404);
    assert.equal((await api('/api/policies/%2F/api-ttl', { method: 'DELETE' })).status, 404);
  });

  test('definitions: export, import (node-wide and per vhost)', async () => {
    await api('/api/queues/%2F/api-durable', { method: 'PUT', body: { durable: true } });
    const defs = obj(await api('/api/definitions'));
    for (const k of ['rabbit_version', 'users', 'vhosts', 'permissions', 'queues', 'exchanges', 'bindings', 'policies']) assert.ok(k in defs, `definitions have ${k}`);
    assert.ok((defs['queues'] as { name: string }[]).some((q) => q.name === 'api-durable'));
    const doc = {
      vhosts: [{ name: 'imported' }],
      queues: [{ name: 'imp-q', vhost: 'imported', durable: true, auto_delete: false, arguments: {} }],
      exchanges: [{ name: 'imp-x', vhost: 'imported', type: 'fanout', durable: true, auto_delete: false, internal: false, arguments: {} }],
      bindings: [{ source: 'imp-x', vhost: 'imported', destination: 'imp-q', destination_type: 'queue', routing_key: '', arguments: {} }],
    };
    assert.equal((await api('/api/definitions', { method: 'POST', body: doc })).status, 204);
    assert.equal(obj(await api('/api/queues/imported/imp-q'))['durable'], true);
    assert.equal(list(await api('/api/bindings/imported/e/imp-x/q/imp-q')).length, 1);
    const perVhost = obj(await api('/api/definitions/imported'));
    assert.deepEqual((perVhost['queues'] as Record<string, unknown>[]).map((q) => q['name']), ['imp-q']);
    assert.ok(!('vhost' in ((perVhost['queues'] as Record<string, unknown>[])[0] ?? {})), 'per-vhost export leaves vhost out');
    assert.equal((await api('/api/definitions/imported', { method: 'POST', body: { queues: [{ name: 'imp-q2', durable: true, auto_delete: false, arguments: {} }] } })).status, 204);
    assert.equal((await api('/api/queues/imported/imp-q2')).status, 200);
    const bad = await api('/api/definitions', { method: 'POST', body: { queues: [{ name: 'x', vhost: 'no-such-vhost', durable: true, auto_delete: false, arguments: {} }] } });
    assert.equal(bad.status, 400);
    assert.match(String(obj(bad)['reason']), /no-such-vhost/);
  });

  test('health checks and aliveness', async () => {
    assert.deepEqual(obj(await api('/api/health/checks/alarms')), { status: 'ok' });
    assert.deepEqual(obj(await api('/api/health/checks/local-alarms')), { status: 'ok' });
    assert.deepEqual(obj(await api(`/api/health/checks/port-listener/${m.broker.port}`)), { status: 'ok' });
    const missing = await api('/api/health/checks/port-listener/1');
    assert.equal(missing.status, 503);
    assert.equal(obj(missing)['status'], 'failed');
    assert.deepEqual(obj(await api('/api/health/checks/protocol-listener/amqp')), { status: 'ok' });
    assert.deepEqual(obj(await api('/api/aliveness-test/%2F')), { status: 'ok' });
    assert.equal((await api('/api/aliveness-test/nope')).status, 404);
  });

  test('latency: per stage and per queue, with percentile curves', async () => {
    const cch = await conn.createConfirmChannel();
    await cch.assertQueue('api-lat');
    for (let i = 0; i < 20; i++) cch.sendToQueue('api-lat', Buffer.from(`l${i}`));
    await cch.waitForConfirms();
    let got = 0;
    await cch.consume('api-lat', (msg) => {
      if (msg !== null) {
        cch.ack(msg);
        got++;
      }
    });
    await waitFor(() => got === 20, 'all 20 deliveries');
    const lat = obj(await api('/api/latency'));
    assert.equal(lat['unit'], 'microseconds');
    const stages = lat['stages'] as { stage: string; count: number; p50_us: number; max_us: number; percentiles: { percentile: number; value_us: number }[] }[];
    const confirm = stages.find((s) => s.stage === 'publish_to_confirm');
    assert.ok(confirm !== undefined && confirm.count >= 20, 'publish_to_confirm recorded');
    assert.ok(confirm.p50_us > 0 && confirm.max_us >= confirm.p50_us);
    const curve = confirm.percentiles;
    assert.equal(curve[0]?.percentile, 0);
    assert.equal(curve[curve.length - 1]?.percentile, 100);
    for (let i = 1; i < curve.length; i++) assert.ok((curve[i]?.value_us ?? 0) >= (curve[i - 1]?.value_us ?? 0), 'a percentile curve never goes down');
    await waitFor(async () => {
      const l = obj(await api('/api/latency?stage=enqueue_to_deliver&queue=api-lat'));
      return (l['queues'] as { count: number }[]).some((q) => q.count >= 20);
    }, 'enqueue_to_deliver for api-lat');
    await cch.close();
  });

  test('list parameters: pagination, sort, name filter, columns', async () => {
    for (const n of ['pg-c', 'pg-a', 'pg-b', 'pg-d']) await api(`/api/queues/%2F/${n}`, { method: 'PUT', body: {} });
    const page = obj(await api('/api/queues/%2F?page=1&page_size=2&name=pg-&sort=name&columns=name,vhost'));
    assert.equal(page['page'], 1);
    assert.equal(page['page_size'], 2);
    assert.equal(page['page_count'], 2);
    assert.equal(page['filtered_count'], 4);
    assert.equal(page['item_count'], 2);
    assert.ok((page['total_count'] as number) >= 4);
    assert.deepEqual(page['items'], [{ name: 'pg-a', vhost: '/' }, { name: 'pg-b', vhost: '/' }]);
    const page2 = obj(await api('/api/queues/%2F?page=2&page_size=2&name=pg-&sort=name&sort_reverse=true&columns=name'));
    assert.deepEqual(page2['items'], [{ name: 'pg-b' }, { name: 'pg-a' }]);
    const re = obj(await api(`/api/queues/%2F?page=1&name=${encodeURIComponent('^pg-[ab]$')}&use_regex=true&columns=name`));
    assert.equal(re['filtered_count'], 2);
    const nested = list(await api('/api/queues/%2F?columns=name,message_stats.publish'));
    assert.ok(nested.every((q) => Object.keys(q).every((k) => k === 'name' || k === 'message_stats')));
    assert.deepEqual(Object.keys((nested.find((q) => q['name'] === 'pg-a')?.['message_stats'] ?? {}) as object), ['publish']);
    const bad = await api('/api/queues?page=1&page_size=501');
    assert.equal(bad.status, 400);
    assert.equal(obj(bad)['error'], 'invalid_pagination_parameters');
    assert.equal((await api('/api/queues?page=x')).status, 400);
    assert.equal(obj(await api('/api/queues?page=99')).error, 'page_out_of_range');
  });
});
