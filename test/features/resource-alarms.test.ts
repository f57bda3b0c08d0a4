/**
 * RabbitMQ's resource alarms (vm_memory_high_watermark, disk_free_limit): while one is in
 * effect, clients are told connection.blocked ("low on memory" / "low on disk", RabbitMQ 3.10's
 * reasons), a connection that publishes is no longer read ('blocked'; the others show
 * 'blocking'), consumers keep draining, and nothing is lost: what was held back is confirmed
 * once the alarm clears. warrenctl's set_vm_memory_high_watermark and set_disk_free_limit
 * change the limits at once, as rabbitmqctl's do; the flags set them at start.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqp from 'amqplib';
import { startBroker, waitFor, type TestBroker } from '../helpers/broker.js';
import { ctl, ctlOk, ctlRows } from '../helpers/warrenctl.js';
import { RawAmqp, bodyFrame, contentHeaderFrame, countHeartbeats, publishFrame } from '../helpers/raw-amqp.js';
import { Method } from '../../src/amqp/spec.generated.js';
import { bodies, consumeInto, publishConfirmed, unique } from '../helpers/feature-kit.js';
import { call, startMgmtBroker } from '../mgmt/mgmt-kit.js';
import { ResourceMonitor } from '../../src/front/resource-alarms.js';

/** More free disk than any test machine has, so the disk alarm is set. */
const hugeDiskLimit = '1000000GB';

interface Blocked {
  reasons: string[];
  unblocks: number;
}

/** Records a connection's connection.blocked reasons and unblocked count. */
function watchBlocked(conn: amqp.ChannelModel): Blocked {
  const b: Blocked = { reasons: [], unblocks: 0 };
  conn.on('blocked', (reason: string) => b.reasons.push(reason));
  conn.on('unblocked', () => b.unblocks++);
  return b;
}

async function connectionStates(dataDir: string): Promise<Map<string, string>> {
  const rows = await ctlRows(dataDir, 'list_connections', 'name', 'state', 'client_properties');
  const states = new Map<string, string>();
  for (const r of rows) {
    const props = r['client_properties'] as Record<string, unknown> | null;
    const name = typeof props?.['connection_name'] === 'string' ? props['connection_name'] : String(r['name']);
    states.set(name, String(r['state']));
  }
  return states;
}

describe('resource alarms', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startBroker({ args: ['--heartbeat', '1'] });
  });
  after(async () => {
    assert.equal(await broker.stop(), 0, broker.log());
  });

  test('a disk alarm blocks the publisher, consumers keep draining, and the held publishes are confirmed once it clears', async () => {
    const publisherConn = await amqp.connect(broker.url, { clientProperties: { connection_name: 'alarm-publisher' } });
    const consumerConn = await amqp.connect(broker.url, { clientProperties: { connection_name: 'alarm-consumer' } });
    const blocked = watchBlocked(publisherConn);
    const consumerBlocked = watchBlocked(consumerConn);
    try {
      const pub = await publisherConn.createConfirmChannel();
      const cons = await consumerConn.createChannel();
      const q = unique('alarm-disk');
      await pub.assertQueue(q, { durable: true });
      for (const body of ['m1', 'm2', 'm3']) assert.equal(await publishConfirmed(pub, '', q, body, { persistent: true }), 'ack');

      assert.match(await ctlOk(broker.dataDir, 'set_disk_free_limit', hugeDiskLimit), /Setting disk free limit on .* to 1000000GB bytes \.\.\./);
      await waitFor(() => blocked.reasons.length > 0, 'connection.blocked to the publisher');
      assert.deepEqual(blocked.reasons, ['low on disk']);
      assert.deepEqual((await ctlRows(broker.dataDir, 'alarms')).map((r) => [r['resource'], r['reason']]), [['disk', 'low on disk']]);
      assert.equal((await connectionStates(broker.dataDir)).get('alarm-publisher'), 'blocking');

      // Publishing is what blocks a connection ('blocking' → 'blocked'); what the node read before it stopped reading goes through.
      const early = ['m4', 'm5'].map((body) => publishConfirmed(pub, '', q, body, { persistent: true }));
      await waitFor(async () => (await connectionStates(broker.dataDir)).get('alarm-publisher') === 'blocked', "the publisher's state 'blocked'");
      assert.equal((await connectionStates(broker.dataDir)).get('alarm-consumer'), 'blocking');
      let heldConfirmed = false;
      const held = publishConfirmed(pub, '', q, 'm6', { persistent: true }).then((r) => ((heldConfirmed = true), r));

      // The consumer drains what was queued before the alarm; the publish sent while blocked is not read meanwhile.
      const { inbox } = await consumeInto(cons, q);
      assert.deepEqual(bodies((await inbox.atLeast(3)).slice(0, 3)), ['m1', 'm2', 'm3']);
      await cons.checkQueue(q);
      assert.equal(heldConfirmed, false, 'a publish sent while blocked was confirmed during the alarm');
      assert.ok(!bodies(inbox.items).includes('m6'), 'a publish sent while blocked was delivered during the alarm');

      assert.match(await ctlOk(broker.dataDir, 'set_disk_free_limit', '50MB'), /Setting disk free limit on .* to 50MB bytes \.\.\./);
      assert.deepEqual(await Promise.all([...early, held]), ['ack', 'ack', 'ack']);
      await waitFor(() => blocked.unblocks === 1, 'connection.unblocked to the publisher');
      assert.deepEqual(bodies(await inbox.atLeast(6)), ['m1', 'm2', 'm3', 'm4', 'm5', 'm6']);
      assert.deepEqual(await ctlRows(broker.dataDir, 'alarms'), []);
      assert.equal((await connectionStates(broker.dataDir)).get('alarm-publisher'), 'running');
      // Every connection with the capability hears of the alarm (RabbitMQ tells it when it would block).
      assert.deepEqual(consumerBlocked.reasons, ['low on disk']);
      assert.equal(consumerBlocked.unblocks, 1);
      await pub.deleteQueue(q);
    } finally {
      await publisherConn.close();
      await consumerConn.close();
    }
  });

  test('a memory alarm: set_vm_memory_high_watermark absolute below what the node uses blocks, a fraction again unblocks', async () => {
    const conn = await amqp.connect(broker.url);
    const blocked = watchBlocked(conn);
    try {
      const ch = await conn.createConfirmChannel();
      const q = unique('alarm-mem');
      await ch.assertQueue(q, { exclusive: true });
      assert.match(await ctlOk(broker.dataDir, 'set_vm_memory_high_watermark', 'absolute', '1MB'), /Setting memory threshold on .* to 1MB bytes \.\.\./);
      await waitFor(() => blocked.reasons.length > 0, 'connection.blocked');
      assert.deepEqual(blocked.reasons, ['low on memory']);
      const rows = await ctlRows(broker.dataDir, 'alarms');
      assert.deepEqual(rows.map((r) => [r['resource'], r['reason']]), [['memory', 'low on memory']]);
      const confirm = publishConfirmed(ch, '', q, 'held');
      assert.match(await ctlOk(broker.dataDir, 'set_vm_memory_high_watermark', '0.4'), /Setting memory threshold on .* to 0\.4 \.\.\./);
      assert.equal(await confirm, 'ack');
      await waitFor(() => blocked.unblocks === 1, 'connection.unblocked');
      assert.equal((await ch.checkQueue(q)).messageCount, 1);
    } finally {
      await conn.close();
    }
  });

  test('a blocked connection is not dropped for the heartbeats it cannot be read for', { timeout: 15_000 }, async () => {
    const raw = await RawAmqp.connect(broker.host, broker.port);
    try {
      await raw.handshake({ heartbeatS: 1 });
      await raw.openChannel(1);
      await ctlOk(broker.dataDir, 'set_disk_free_limit', hugeDiskLimit);
      const q = unique('alarm-hb');
      await raw.send(Buffer.concat([publishFrame(1, '', q), contentHeaderFrame(1, 1), bodyFrame(1, Buffer.from('x'))]));
      await waitFor(async () => [...(await connectionStates(broker.dataDir)).values()].includes('blocked'), "a connection in state 'blocked'");
      // Silent from here on: unread, the peer would be dropped after two intervals (2 s) if judged.
      const from = raw.received.length;
      await waitFor(() => countHeartbeats(raw, from) >= 7 || raw.peerEnded, 'seven heartbeats from the broker (3.5 s)', 8_000);
      assert.equal(raw.peerEnded, false, 'the blocked connection was dropped');
      assert.doesNotMatch(broker.log(), /missed heartbeats/);
    } finally {
      await ctlOk(broker.dataDir, 'set_disk_free_limit', '50MB');
      raw.destroy();
    }
  });

  test('cluster_status lists the alarm, and not once it cleared', async () => {
    await ctlOk(broker.dataDir, 'set_disk_free_limit', hugeDiskLimit);
    try {
      const doc = await ctlOk(broker.dataDir, 'cluster_status', '--formatter', 'json');
      const alarms = (JSON.parse(doc) as { alarms: { resource: string; reason: string }[] }).alarms;
      assert.deepEqual(alarms.map((a) => [a.resource, a.reason]), [['disk', 'low on disk']]);
    } finally {
      await ctlOk(broker.dataDir, 'set_disk_free_limit', '50MB');
    }
    assert.deepEqual(JSON.parse(await ctlOk(broker.dataDir, 'cluster_status', '--formatter', 'json')).alarms, []);
  });

  test('malformed limits are refused with rabbitmqctl\'s argument errors, and the limits stay', async () => {
    const refusals: [string[], RegExp][] = [
      [['set_vm_memory_high_watermark', '2'], /Bad argument: The threshold should be a fraction between 0\.0 and 1\.0/],
      [['set_vm_memory_high_watermark', '-1'], /Bad argument: The threshold should be a fraction between 0\.0 and 1\.0/],
      [['set_vm_memory_high_watermark', 'abc'], /Error \(argument validation\): Bad argument\./],
      [['set_vm_memory_high_watermark', 'absolute', 'lots'], /Error \(argument validation\): Bad argument\./],
      [['set_disk_free_limit', 'foo'], /Error \(argument validation\): Bad argument\./],
      [['set_disk_free_limit', '12XB'], /Error \(argument validation\): Bad argument\./],
      [['set_disk_free_limit', 'mem_relative', 'x'], /Error \(argument validation\): Bad argument\./],
    ];
    for (const [args, expected] of refusals) {
      const r = await ctl(broker.dataDir, ...args);
      assert.equal(r.code, 64, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, expected, args.join(' '));
    }
    assert.deepEqual(await ctlRows(broker.dataDir, 'alarms'), []);
  });
});

describe('resource alarm flags', () => {
  test('--disk-free-limit above the free space: blocked from the start, and a client is told at connection.open', async () => {
    const broker = await startBroker({ args: ['--disk-free-limit', hugeDiskLimit] });
    try {
      await broker.waitForLog(/disk resource limit alarm set on node/);
      const raw = await RawAmqp.connect(broker.host, broker.port);
      try {
        await raw.handshake({ connectionBlocked: true });
        assert.equal((await raw.expectMethod(0, Method.ConnectionBlocked)).reason, 'low on disk');
      } finally {
        raw.destroy();
      }
    } finally {
      assert.equal(await broker.stop(), 0, broker.log());
    }
  });

  test('the management API, its health checks and Prometheus show the alarm and the limits in force', async () => {
    const m = await startMgmtBroker(['--disk-free-limit', hugeDiskLimit, '--vm-memory-high-watermark', '3GB']);
    try {
      await m.broker.waitForLog(/disk resource limit alarm set on node/);
      const nodes = (await call(m.mgmt, '/api/nodes')).json as Record<string, unknown>[];
      const n = nodes[0] ?? {};
      assert.equal(n['disk_free_alarm'], true);
      assert.equal(n['mem_alarm'], false);
      assert.equal(n['disk_free_limit'], 1_000_000 * 1e9);
      assert.equal(n['mem_limit'], 3e9);
      const health = await call(m.mgmt, '/api/health/checks/alarms');
      assert.equal(health.status, 503);
      assert.deepEqual((health.json as { alarms: unknown[] }).alarms, [{ node: n['name'], resource: 'disk' }]);
      const metrics = await (await fetch(m.metrics)).text();
      assert.match(metrics, /^rabbitmq_alarms_free_disk_space_watermark 1$/m);
      assert.match(metrics, /^rabbitmq_alarms_memory_used_watermark 0$/m);
      assert.match(metrics, /^rabbitmq_disk_space_available_limit_bytes 1000000000000000$/m);
      assert.match(metrics, /^rabbitmq_resident_memory_limit_bytes 3000000000$/m);
      await ctlOk(m.broker.dataDir, 'set_disk_free_limit', '50MB');
      assert.equal((await call(m.mgmt, '/api/health/checks/alarms')).status, 200);
      assert.equal(((await call(m.mgmt, '/api/nodes')).json as Record<string, unknown>[])[0]?.['disk_free_alarm'], false);
    } finally {
      await m.stop();
    }
  });

  test('malformed limits stop the start with the flag named', async () => {
    const refused = async (args: string[]): Promise<string> =>
      startBroker({ args }).then(
        async (b) => {
          await b.stop();
          return assert.fail(`the node started with ${args.join(' ')}`);
        },
        (err: unknown) => (err instanceof Error ? err.message : String(err)),
      );
    assert.match(await refused(['--vm-memory-high-watermark', '1.5']), /--vm-memory-high-watermark must be a fraction between 0\.0 and 1\.0 or a size such as 2GB, got '1\.5'/);
    assert.match(await refused(['--disk-free-limit', 'plenty']), /--disk-free-limit must be a size such as 50MB or 1GiB, or 'mem_relative N', got 'plenty'/);
  });
});

describe('the resource monitor', () => {
  test('a free space it cannot read neither sets nor clears the disk alarm, and is said once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-alarm-'));
    const changes: string[] = [];
    const warnings: string[] = [];
    const monitor = new ResourceMonitor({
      dataDir: dir,
      nodeName: 'test@node',
      memoryWatermark: { relative: 1 },
      diskFreeLimit: { absoluteBytes: 10 ** 18 },
      onAlarm: (resource, active, reason) => changes.push(`${resource} ${active} ${reason}`),
      log: { info: () => {}, warn: (m) => warnings.push(m) },
    });
    try {
      await monitor.check();
      assert.deepEqual(changes, ['disk true low on disk']);
      rmSync(dir, { recursive: true });
      await monitor.check();
      await monitor.check();
      assert.equal(monitor.isActive('disk'), true, 'an unreadable disk cleared the alarm');
      assert.deepEqual(changes, ['disk true low on disk']);
      assert.equal(warnings.filter((w) => /cannot read the free disk space/.test(w)).length, 1);
      mkdirSync(dir);
      await monitor.setDiskFreeLimit({ absoluteBytes: 0 });
      assert.deepEqual(changes, ['disk true low on disk', 'disk false low on disk']);
    } finally {
      monitor.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
