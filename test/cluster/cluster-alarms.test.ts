/**
 * Resource alarms are cluster-wide, as in RabbitMQ: a disk alarm on n1 blocks the publishers of
 * n2 too (connection.blocked "low on disk", the connection not read once it publishes), and
 * `warrenctl alarms` on n2 names n1. When n1's alarm clears, n2's publishers go on and what they
 * sent is confirmed; a node that dies with an alarm set stops blocking the cluster once it has
 * left the membership.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { startCluster, withNodeLogs, type TestCluster } from '../helpers/cluster.js';
import { waitFor } from '../helpers/broker.js';
import { ctlOk, ctlRows } from '../helpers/warrenctl.js';
import { publishConfirmed, unique } from '../helpers/feature-kit.js';

/** A key written on one node reaches another through etcd's watch; a lease ends within 2 s. */
const settleMs = 15_000;
/** More free disk than any test machine has, so the disk alarm is set. */
const hugeDiskLimit = '1000000GB';

let cluster: TestCluster;
before(async () => {
  cluster = await startCluster({ nodes: 2 });
});
after(async () => {
  await cluster?.stop();
});

async function alarmsOn(dataDir: string): Promise<string[][]> {
  return (await ctlRows(dataDir, 'alarms')).map((r) => [String(r['node']), String(r['resource']), String(r['reason'])]);
}

test("one node's disk alarm blocks the other node's publishers until it clears, or until the node leaves", { timeout: 90_000 }, async () => {
  const n1 = cluster.node('n1');
  const n2 = cluster.node('n2');
  await withNodeLogs(cluster, async () => {
    const conn = await amqp.connect(n2.url(), { clientProperties: { connection_name: 'n2-publisher' } });
    const reasons: string[] = [];
    let unblocks = 0;
    conn.on('blocked', (r: string) => reasons.push(r));
    conn.on('unblocked', () => unblocks++);
    try {
      const ch = await conn.createConfirmChannel();
      const q = unique('cluster-alarm');
      await ch.assertQueue(q, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
      assert.equal(await publishConfirmed(ch, '', q, 'before', { persistent: true }), 'ack');

      await ctlOk(n1.dataDir, 'set_disk_free_limit', hugeDiskLimit);
      await waitFor(() => reasons.length > 0, 'connection.blocked on n2 for the alarm of n1', settleMs);
      assert.deepEqual(reasons, ['low on disk']);
      assert.deepEqual(await alarmsOn(n2.dataDir), [['n1', 'disk', 'low on disk']]);

      const held = publishConfirmed(ch, '', q, 'during', { persistent: true });
      await waitFor(
        async () => (await ctlRows(n2.dataDir, 'list_connections', 'client_properties', 'state')).some((r) => r['state'] === 'blocked'),
        "n2's publisher in state 'blocked'",
        settleMs,
      );
      await ctlOk(n1.dataDir, 'set_disk_free_limit', '50MB');
      assert.equal(await held, 'ack');
      await waitFor(() => unblocks === 1, 'connection.unblocked on n2', settleMs);
      assert.deepEqual(await alarmsOn(n2.dataDir), []);

      // n1 dies with an alarm set: once its lease ends it no longer blocks n2.
      await ctlOk(n1.dataDir, 'set_disk_free_limit', hugeDiskLimit);
      await waitFor(() => reasons.length === 2, 'connection.blocked on n2 again', settleMs);
      await cluster.kill('n1');
      await waitFor(() => unblocks === 2, 'connection.unblocked on n2 after n1 left', settleMs);
      assert.deepEqual(await alarmsOn(n2.dataDir), []);
      const classic = unique('after-n1');
      await ch.assertQueue(classic, { exclusive: true });
      assert.equal(await publishConfirmed(ch, '', classic, 'after'), 'ack');
    } finally {
      await conn.close().catch(() => {});
    }
  });
});
