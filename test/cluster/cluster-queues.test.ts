/**
 * A three-node cluster of real processes (real etcd, started by the harness): a queue
 * declared on one node exists on all, and a client on any node publishes to and consumes
 * from it, for quorum, mirrored and classic queues.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { waitFor } from '../helpers/broker.js';
import { getOne, within } from '../helpers/amqp-expect.js';

describe('a three-node cluster', () => {
  let cluster: TestCluster;
  const conns: amqp.ChannelModel[] = [];
  const connect = async (node: string): Promise<amqp.Channel> => {
    const c = await amqp.connect(cluster.node(node).url());
    conns.push(c);
    return c.createChannel();
  };
  const confirmChannel = async (node: string): Promise<amqp.ConfirmChannel> => {
    const c = await amqp.connect(cluster.node(node).url());
    conns.push(c);
    return c.createConfirmChannel();
  };

  /** A passive declare on a fresh connection (a failed one closes its channel). */
  const queueExists = async (node: string, q: string): Promise<boolean> => {
    const c = await amqp.connect(cluster.node(node).url());
    try {
      const ch = await c.createChannel();
      ch.on('error', () => {});
      return await ch.checkQueue(q).then(
        () => true,
        () => false,
      );
    } finally {
      await c.close().catch(() => {});
    }
  };

  before(async () => {
    cluster = await startCluster({ nodes: 3 });
  });
  after(async () => {
    for (const c of conns) await c.close().catch(() => {});
    await cluster?.stop();
  });

  for (const kind of ['quorum', 'mirrored', 'classic'] as const) {
    test(`${kind}: declare on n1, publish on n2, consume on n3`, async () => {
      const q = `across-${kind}`;
      const ch1 = await connect('n1');
      if (kind === 'mirrored') {
        // RabbitMQ's way to mirror a classic queue: an ha-mode policy (set through AMQP's peer, the management
        // of node 1, is not needed: the policy is a definition and travels through etcd like any other).
        const { execFile } = await import('node:child_process');
        await new Promise<void>((resolve, reject) =>
          execFile(process.execPath, [new URL('../../src/cli/warrenctl.js', import.meta.url).pathname, '--data-dir', cluster.node('n1').dataDir, 'set_policy', 'ha-all', '^across-mirrored$', '{"ha-mode":"all"}', '--apply-to', 'queues'], (err) => (err ? reject(err) : resolve())),
        );
      }
      await ch1.assertQueue(q, { durable: true, ...(kind === 'quorum' ? { arguments: { 'x-queue-type': 'quorum' } } : {}) });

      // Every node knows the queue: a passive declare succeeds on each.
      for (const n of ['n2', 'n3']) await waitFor(() => queueExists(n, q), `${q} visible on ${n}`, 10_000);

      const pub = await confirmChannel('n2');
      const bodies = Array.from({ length: 20 }, (_, i) => `${kind}-${i}`);
      for (const b of bodies) pub.sendToQueue(q, Buffer.from(b), { persistent: true });
      await within(pub.waitForConfirms(), 'confirms of publishes forwarded from n2', 10_000);

      const ch3 = await connect('n3');
      const got: string[] = [];
      await ch3.prefetch(5);
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${got.length} of ${bodies.length} arrived on n3`)), 10_000);
        void ch3.consume(q, (m) => {
          if (m === null) return;
          got.push(m.content.toString());
          ch3.ack(m);
          if (got.length === bodies.length) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      assert.deepEqual(got, bodies, 'every message, in publish order');
      // Acked on n3, gone everywhere: a get on n1 finds nothing.
      const ch1b = await connect('n1');
      await waitFor(async () => (await ch1b.checkQueue(q)).messageCount === 0, 'the queue empty after the acks', 5_000);
      assert.equal(await ch1b.get(q), false);
    });
  }

  test('a queue deleted on one node disappears from all', async () => {
    const ch1 = await connect('n1');
    await ch1.assertQueue('doomed', { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    for (const n of ['n2', 'n3']) await waitFor(() => queueExists(n, 'doomed'), `doomed visible on ${n}`, 10_000);
    const ch2 = await connect('n2');
    await ch2.deleteQueue('doomed');
    for (const n of ['n1', 'n2', 'n3']) await waitFor(async () => !(await queueExists(n, 'doomed')), `doomed gone from ${n}`, 10_000);
  });

  test('exchanges and bindings declared on one node route on every node', async () => {
    const ch2 = await connect('n2');
    await ch2.assertExchange('cluster.topic', 'topic', { durable: true });
    await ch2.assertQueue('cluster.bound', { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await ch2.bindQueue('cluster.bound', 'cluster.topic', 'orders.#');
    // The binding reaches n3 through etcd: until it does, a mandatory publish there comes back.
    const pub = await confirmChannel('n3');
    const ch1 = await connect('n1');
    await waitFor(
      async () => {
        pub.publish('cluster.topic', 'orders.created', Buffer.from('routed'), { persistent: true, mandatory: true });
        await pub.waitForConfirms();
        return (await ch1.checkQueue('cluster.bound')).messageCount > 0;
      },
      'a message routed on n3 through a binding made on n2',
      10_000,
    );
    const m = await getOne(ch1, 'cluster.bound', { noAck: true });
    assert.equal(m.content.toString(), 'routed');
  });
});
