/**
 * Catch-up of a replica that was away: a follower of a mirrored queue is stopped, a backlog is
 * published without it, and it is started again while publishing and consuming go on. It
 * catches up from its own log end and rejoins the in-sync set. Then the other follower is
 * stopped and the leader killed: the returned node is the only in-sync replica left, so it
 * takes over, and every confirmed message that was not acknowledged is still there.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import amqp from 'amqplib';
import { startCluster, withNodeLogs, type TestCluster } from '../helpers/cluster.js';
import { waitFor } from '../helpers/broker.js';

const backlog = 3000;
const queue = 'mirror-q';

let cluster: TestCluster;
before(async () => {
  cluster = await startCluster({ nodes: 3 });
});
after(async () => {
  await cluster?.stop();
});

function warrenctl(node: string, ...args: string[]): Promise<void> {
  const cli = new URL('../../src/cli/warrenctl.js', import.meta.url).pathname;
  return new Promise((resolve, reject) => execFile(process.execPath, [cli, '--data-dir', cluster.node(node).dataDir, ...args], (err) => (err ? reject(err) : resolve())));
}

/** The queue's in-sync set as the latest log line of any node states it (the leader's proposals and the controller's changes both log it). */
function isrNow(): string[] | undefined {
  const lines = cluster.nodes.flatMap((n) => n.broker.log().split('\n').filter((l) => l.includes(`queue '${queue}' in vhost '/': in-sync set now [`)));
  const last = lines.sort().pop();
  const m = last?.match(/in-sync set now \[([^\]]*)\]/);
  return m === undefined || m === null ? undefined : (m[1] as string).split(', ').sort();
}
const isrIs = (...nodes: string[]): boolean => JSON.stringify(isrNow()) === JSON.stringify([...nodes].sort());

test('a returning follower catches up while the queue serves, rejoins the ISR, and can take over', () =>
  withNodeLogs(cluster, async () => {
    await warrenctl('n1', 'set_policy', 'ha-all', '^mirror-q$', '{"ha-mode":"all"}', '--apply-to', 'queues');
    const c1 = await amqp.connect(cluster.node('n1').url());
    const ch1 = await c1.createChannel();
    await waitFor(async () => {
      await ch1.assertQueue(queue, { durable: true });
      return /cluster: leading mirror-q at epoch 1/.test(cluster.node('n1').broker.log());
    }, 'n1 leading the mirrored queue', 10_000);
    await c1.close();

    await cluster.node('n3').broker.stop({ keepData: true });
    // The leader's ISR drops n3 (its lease was revoked at its clean stop).
    await waitFor(() => isrIs('n1', 'n2'), 'n3 out of the ISR', 15_000);

    const confirmed = new Set<number>();
    const acked = new Set<number>();
    const pubConn = await amqp.connect(cluster.node('n2').url());
    const pub = await pubConn.createConfirmChannel();
    let seq = 0;
    const publish = (n: number): void => {
      for (let i = 0; i < n; i++) {
        const id = seq++;
        pub.sendToQueue(queue, Buffer.from(String(id)), { persistent: true }, (err) => {
          if (err === null || err === undefined) confirmed.add(id);
        });
      }
    };
    publish(backlog);
    await pub.waitForConfirms();
    assert.equal(confirmed.size, backlog);

    // n3 returns while a consumer drains a little and the producer goes on.
    const subConn = await amqp.connect(cluster.node('n2').url());
    const sub = await subConn.createChannel();
    await sub.prefetch(10);
    let consumed = 0;
    await sub.consume(queue, (m) => {
      if (m === null || consumed >= 500) return;
      consumed++;
      acked.add(Number(m.content.toString()));
      sub.ack(m);
    });
    const restarting = cluster.restart('n3');
    const producing = (async () => {
      while (!isrIs('n1', 'n2', 'n3')) {
        publish(50);
        await pub.waitForConfirms();
      }
    })();
    await restarting;
    await waitFor(() => isrIs('n1', 'n2', 'n3'), 'n3 back in the ISR', 20_000);
    await producing;
    await sub.close();
    await subConn.close();
    await pubConn.close();

    // n3 must hold everything: with n2 stopped and n1 killed it is the only replica left.
    await cluster.node('n2').broker.stop({ keepData: true });
    await waitFor(() => isrIs('n1', 'n3'), 'n2 out of the ISR', 15_000);
    await cluster.kill('n1');
    await waitFor(() => /cluster: leading mirror-q at epoch [2-9]/.test(cluster.node('n3').broker.log()), 'n3 leading', 15_000);

    const reader = await amqp.connect(cluster.node('n3').url());
    const rch = await reader.createChannel();
    const present = new Set<number>();
    for (;;) {
      const m = await rch.get(queue, { noAck: true });
      if (m === false) break;
      present.add(Number(m.content.toString()));
    }
    await reader.close();
    const lost = [...confirmed].filter((id) => !acked.has(id) && !present.has(id));
    assert.deepEqual(lost.slice(0, 10), [], `${lost.length} confirmed, unacknowledged message(s) missing on the caught-up replica`);
    assert.ok(present.size >= confirmed.size - acked.size, `${present.size} present, ${confirmed.size} confirmed, ${acked.size} acked`);
  }));
