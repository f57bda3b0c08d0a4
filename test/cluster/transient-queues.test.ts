/**
 * Transient queues in a cluster, as RabbitMQ treats them:
 * - An exclusive queue belongs to its declaring connection, wherever the client stands: a
 *   client on another node may publish to it (the RPC reply-to pattern), but consume, get,
 *   passive declare and delete from anywhere else are 405 RESOURCE_LOCKED. When the owner's
 *   connection closes, the queue is gone on every node.
 * - When a node goes down (SIGKILL), its exclusive and non-durable classic queues are deleted
 *   cluster-wide. Its durable classic queue stays declared but unavailable: the other nodes
 *   answer 404 "home node … is down or inaccessible" to a passive declare and a get, and
 *   refuse (nack) a confirmed publish. When the node comes back, the queue is served again with
 *   the messages it held, and the transient queues stay gone.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { waitFor } from '../helpers/broker.js';
import { expectChannelClose, Inbox, within } from '../helpers/amqp-expect.js';
import { ctlRows } from '../helpers/warrenctl.js';

/** A cluster change (a declaration reaching a node, a node's lease ending) shows within this. */
const settleMs = 15_000;
const resourceLocked = 405;
const notFound = 404;
const lockedText = /RESOURCE_LOCKED - cannot obtain exclusive access to locked queue/;

let cluster: TestCluster;
const conns: amqp.ChannelModel[] = [];
before(async () => {
  cluster = await startCluster({ nodes: 3 });
});
after(async () => {
  for (const c of conns) await c.close().catch(() => {});
  await cluster?.stop();
});

async function withLogs(body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (e) {
    for (const n of cluster.nodes) process.stderr.write(`----- ${n.name} -----\n${n.broker.log().split('\n').slice(-60).join('\n')}\n`);
    throw e;
  }
}

async function connect(node: string): Promise<amqp.ChannelModel> {
  const c = await amqp.connect(cluster.node(node).url());
  c.on('error', () => {});
  conns.push(c);
  return c;
}

/** The queue names a running node lists (its admin socket; listing does not touch the queues). */
async function queuesOn(node: string): Promise<Set<string>> {
  return new Set((await ctlRows(cluster.node(node).dataDir, 'list_queues', 'name')).map((r) => String(r['name'])));
}

/** Waits until every node in nodes lists all of present and none of absent. */
async function waitForListing(nodes: string[], present: string[], absent: string[], what: string): Promise<void> {
  for (const n of nodes) {
    await waitFor(async () => {
      const names = await queuesOn(n);
      return present.every((q) => names.has(q)) && absent.every((q) => !names.has(q));
    }, `${what} (as ${n} lists its queues)`, settleMs);
  }
}

test("an exclusive queue takes publishes from another node, refuses everything else there, and goes with its owner's connection", () =>
  withLogs(async () => {
    // The RPC client: an exclusive, server-named reply queue on n1, consumed by its owner.
    const owner = await connect('n1');
    const och = await owner.createChannel();
    const { queue } = await och.assertQueue('', { exclusive: true });
    assert.match(queue, /^amq\.gen-/);
    const replies = new Inbox<amqp.ConsumeMessage>();
    await och.consume(queue, (m) => m !== null && replies.push(m), { noAck: true });
    await waitForListing(['n2', 'n3'], [queue], [], 'the reply queue declared on every node');

    // The RPC server on n2 answers to reply_to: the message reaches the owner's consumer on n1.
    const server = await connect('n2');
    const sch = await server.createConfirmChannel();
    sch.sendToQueue(queue, Buffer.from('the answer'), { correlationId: 'req-1' });
    await within(sch.waitForConfirms(), 'the confirm of the reply published on n2', settleMs);
    const [reply] = await replies.atLeast(1, 'the reply delivered to the owner on n1', settleMs);
    assert.equal(reply?.content.toString(), 'the answer');
    assert.equal(reply?.properties.correlationId, 'req-1');

    // Anything but publishing, from n2 (and from another connection on n1), is RabbitMQ's 405.
    await expectChannelClose(server, await server.createChannel(), (ch) => ch.consume(queue, () => {}), { code: resourceLocked, method: [60, 20], text: lockedText });
    await expectChannelClose(server, await server.createChannel(), (ch) => ch.checkQueue(queue), { code: resourceLocked, method: [50, 10], text: lockedText });
    await expectChannelClose(server, await server.createChannel(), (ch) => ch.get(queue), { code: resourceLocked, method: [60, 70], text: lockedText });
    await expectChannelClose(server, await server.createChannel(), (ch) => ch.deleteQueue(queue), { code: resourceLocked, method: [50, 40], text: lockedText });
    const neighbour = await connect('n1');
    await expectChannelClose(neighbour, await neighbour.createChannel(), (ch) => ch.consume(queue, () => {}), { code: resourceLocked, method: [60, 20], text: lockedText });
    // The owner still has its queue and its consumer after all that.
    sch.sendToQueue(queue, Buffer.from('second'), { correlationId: 'req-2' });
    await within(sch.waitForConfirms(), 'the confirm of a second reply', settleMs);
    await replies.atLeast(2, 'the second reply delivered to the owner', settleMs);

    // The owner's connection closes: the queue is gone on every node.
    await owner.close();
    await waitForListing(['n1', 'n2', 'n3'], [], [queue], 'the reply queue deleted on every node');
    await expectChannelClose(server, await server.createChannel(), (ch) => ch.checkQueue(queue), { code: notFound, method: [50, 10], text: /NOT_FOUND - no queue/ });
  }));

test('a killed node takes its exclusive and non-durable queues with it; its durable queue waits for it', () =>
  withLogs(async () => {
    const transient = 'transient-on-n1';
    const exclusive = 'exclusive-on-n1';
    const durable = 'durable-on-n1';
    const c1 = await connect('n1');
    const ch1 = await c1.createConfirmChannel();
    await ch1.assertQueue(transient, { durable: false });
    await ch1.assertQueue(exclusive, { exclusive: true });
    await ch1.assertQueue(durable, { durable: true });
    for (let i = 0; i < 5; i++) ch1.sendToQueue(durable, Buffer.from(`kept-${i}`), { persistent: true });
    await within(ch1.waitForConfirms(), 'confirms of the durable queue\'s messages', settleMs);
    await waitForListing(['n2', 'n3'], [transient, exclusive, durable], [], 'the three queues declared on every node');

    await cluster.kill('n1');
    // RabbitMQ deletes a down node's transient queues; the durable one stays declared.
    await waitForListing(['n2', 'n3'], [durable], [transient, exclusive], "n1's transient queues deleted on n2 and n3");
    const c2 = await connect('n2');
    const home = /NOT_FOUND - home node 'n1' of .*durable-on-n1.* is down or inaccessible/;
    await expectChannelClose(c2, await c2.createChannel(), (ch) => ch.checkQueue(durable), { code: notFound, method: [50, 10], text: home });
    await expectChannelClose(c2, await c2.createChannel(), (ch) => ch.get(durable), { code: notFound, method: [60, 70], text: home });
    await expectChannelClose(c2, await c2.createChannel(), (ch) => ch.checkQueue(transient), { code: notFound, method: [50, 10], text: /NOT_FOUND - no queue 'transient-on-n1'/ });
    // A publish to the unreachable queue is not confirmed: warren nacks it (it was stored nowhere).
    const pch = await c2.createConfirmChannel();
    pch.on('error', () => {});
    const settled = new Promise<boolean>((resolve) => pch.sendToQueue(durable, Buffer.from('lost'), { persistent: true }, (err) => resolve(err === null || err === undefined)));
    assert.equal(await within(settled, 'the publish to the unreachable queue to be settled', settleMs), false, 'a publish to a queue whose home node is down is nacked');

    // n1 returns: its durable queue is served again with what it held; the transient ones stay gone.
    await cluster.restart('n1');
    await waitForListing(['n1', 'n2', 'n3'], [durable], [transient, exclusive], 'after n1 restarts, only its durable queue');
    await waitFor(async () => {
      const ch = await c2.createChannel();
      ch.on('error', () => {});
      return ch.checkQueue(durable).then(
        (ok) => ch.close().then(() => ok.messageCount === 5),
        () => false,
      );
    }, 'the durable queue served through n2 again, with its 5 messages', settleMs);
    const rch = await c2.createChannel();
    const bodies: string[] = [];
    for (;;) {
      const m = await rch.get(durable, { noAck: true });
      if (m === false) break;
      bodies.push(m.content.toString());
    }
    assert.deepEqual(bodies, [0, 1, 2, 3, 4].map((i) => `kept-${i}`));
  }));
