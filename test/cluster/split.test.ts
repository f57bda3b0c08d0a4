/**
 * A leader suspended (SIGSTOP) past its lease: the others elect a new leader, and when the old
 * one resumes it must not confirm anything on the strength of its old epoch. It learns it lost
 * its lease, stops leading, and rejoins as a follower of the new epoch. Every publish the
 * producer saw confirmed, before, during or after, is in the queue afterwards.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { startCluster, withNodeLogs, type TestCluster } from '../helpers/cluster.js';
import { waitFor } from '../helpers/broker.js';

let cluster: TestCluster;
before(async () => {
  cluster = await startCluster({ nodes: 3 });
});
after(async () => {
  await cluster?.stop();
});

test('a suspended leader resumes as a follower and confirms nothing on its stale epoch', () =>
  withNodeLogs(cluster, async () => {
    const queue = 'split-q';
    const conn = await amqp.connect(cluster.node('n1').url());
    conn.on('error', () => {});
    const ch = await conn.createConfirmChannel();
    ch.on('error', () => {});
    await ch.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await waitFor(() => /cluster: leading split-q at epoch 1/.test(cluster.node('n1').broker.log()), 'n1 leading the queue', 10_000);

    const confirmed: number[] = [];
    let seq = 0;
    const publish = (): void => {
      const id = seq++;
      try {
        ch.sendToQueue(queue, Buffer.from(String(id)), { persistent: true }, (err) => {
          if (err === null || err === undefined) confirmed.push(id);
        });
      } catch {
        // the channel closed: this publish was never confirmed
      }
    };
    for (let i = 0; i < 200; i++) publish();
    await waitFor(() => confirmed.length === 200, 'the first 200 confirms', 10_000);

    const n1 = cluster.node('n1').broker.process;
    n1.kill('SIGSTOP');
    // Publishes sent now wait in the suspended node's socket buffer.
    for (let i = 0; i < 100; i++) publish();
    const newLeader = await waitFor(
      () => ['n2', 'n3'].find((n) => /cluster: leading split-q at epoch [2-9]/.test(cluster.node(n).broker.log())),
      'a new leader elected while n1 is suspended',
      15_000,
    );
    n1.kill('SIGCONT');
    for (let i = 0; i < 100; i++) publish();
    await waitFor(() => new RegExp(`following ${newLeader} \\(epoch [2-9]\\)`).test(cluster.node('n1').broker.log()), 'n1 following the new leader', 15_000);
    assert.match(cluster.node('n1').broker.log(), /lost the etcd lease|no longer leading split-q/, 'n1 says it stopped leading');

    // Whatever the producer saw confirmed is in the queue, read through another node.
    await ch.close().catch(() => {});
    await conn.close().catch(() => {});
    const reader = await amqp.connect(cluster.node('n3').url());
    const rch = await reader.createChannel();
    const present = new Set<number>();
    await waitFor(
      async () => {
        for (;;) {
          const m = await rch.get(queue, { noAck: true });
          if (m === false) break;
          present.add(Number(m.content.toString()));
        }
        return confirmed.every((id) => present.has(id));
      },
      'every confirmed message in the queue',
      15_000,
    ).catch(() => {
      const lost = confirmed.filter((id) => !present.has(id));
      assert.fail(`${lost.length} confirmed message(s) lost, e.g. ${lost.slice(0, 10).join(', ')}`);
    });
    await reader.close();
  }));
