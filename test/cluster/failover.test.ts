/**
 * Failover of a quorum queue under load: a producer with confirms and a consumer with manual
 * acks, both on nodes that do not lead the queue, while the harness SIGKILLs the leader at a
 * random moment. After the controller elects a new leader, every confirmed message is
 * consumed at least once, and a message delivered again carries redelivered=true. The killed
 * node is started again and catches up before the next round kills the next leader.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { startCluster, withNodeLogs, type TestCluster } from '../helpers/cluster.js';
import { waitFor } from '../helpers/broker.js';
import { within } from '../helpers/amqp-expect.js';

const rounds = 3;
const messagesPerRound = 400;
const inFlightMax = 50;
const roundDeadlineMs = 40_000;

/** The node leading the queue at the highest epoch its logs mention. */
function leaderOf(cluster: TestCluster, queue: string): { node: string; epoch: number } | undefined {
  let best: { node: string; epoch: number } | undefined;
  const re = new RegExp(`cluster: leading ${queue} at epoch (\\d+)`, 'g');
  for (const n of cluster.nodes) {
    if (n.broker.process.exitCode !== null || n.broker.process.signalCode !== null) continue;
    for (const m of n.broker.log().matchAll(re)) {
      const epoch = Number(m[1]);
      if (best === undefined || epoch > best.epoch) best = { node: n.name, epoch };
    }
  }
  return best;
}

interface Delivery {
  key: string;
  redelivered: boolean;
}

let cluster: TestCluster;
before(async () => {
  cluster = await startCluster({ nodes: 3 });
});
after(async () => {
  await cluster?.stop();
});

test('quorum queue: SIGKILL of the leader under load loses no confirmed message', () => withNodeLogs(cluster, async () => {
  const queue = 'failover-q';
  {
    const c = await amqp.connect(cluster.node('n1').url());
    const ch = await c.createChannel();
    await ch.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await c.close();
  }
  const confirmed = new Set<string>();
  const deliveries: Delivery[] = [];
  let nextId = 0;

  for (let round = 0; round < rounds; round++) {
    const leader = await waitFor(() => leaderOf(cluster, queue), 'a leader for the queue', 15_000);
    const others = cluster.nodes.filter((n) => n.name !== leader.node).map((n) => n.name);
    const [pubNode, subNode] = [others[0] as string, others[1] as string];
    // Early enough that the round cannot end (400 confirmed) before the kill: confirms arrive up to inFlightMax at a time.
    const killAfter = 20 + Math.floor(Math.random() * (messagesPerRound - inFlightMax - 40));
    const roundEnd = nextId + messagesPerRound;

    const pubConn = await amqp.connect(cluster.node(pubNode).url());
    const subConn = await amqp.connect(cluster.node(subNode).url());
    pubConn.on('error', () => {});
    subConn.on('error', () => {});

    // Consumer: when the broker cancels it (its queue's leader went away), it consumes again
    // once a newer leader is known, as a client that handles consumer-cancel notifications does.
    let stopped = false;
    let reattaching: Promise<unknown> = Promise.resolve();
    const attach = async (): Promise<boolean> => {
      try {
        const ch = await subConn.createChannel();
        ch.on('error', () => {});
        await ch.prefetch(20);
        await ch.consume(queue, (m) => {
          if (m === null) {
            void ch.close().catch(() => {});
            if (!stopped) reattaching = reattach();
            return;
          }
          deliveries.push({ key: m.content.toString(), redelivered: m.fields.redelivered });
          ch.ack(m);
        });
        return true;
      } catch {
        return false;
      }
    };
    const reattach = (): Promise<unknown> =>
      waitFor(() => stopped || ((leaderOf(cluster, queue)?.epoch ?? 0) > leader.epoch && attach()), 'the consumer attached to the new leader', roundDeadlineMs);
    await waitFor(attach, 'the consumer attached', roundDeadlineMs);

    // Producer: each message id is published (again, as a new attempt) until one attempt is
    // confirmed; it waits for a confirm or nack (or its channel closing), never for a set time.
    let pubCh = await pubConn.createConfirmChannel();
    let pubOpen = true;
    let progressed: () => void = () => {};
    const openPublisher = (ch: amqp.ConfirmChannel): void => {
      pubOpen = true;
      ch.on('error', () => {});
      ch.on('close', () => {
        pubOpen = false;
        progressed();
      });
    };
    openPublisher(pubCh);
    const pending = new Map<string, number>();
    const attempts = new Map<number, number>();
    const todo: number[] = [];
    for (let i = nextId; i < roundEnd; i++) todo.push(i);
    let confirmedThisRound = 0;
    let killed = false;
    const started = Date.now();
    while (confirmedThisRound < messagesPerRound || !killed) {
      assert.ok(Date.now() - started < roundDeadlineMs, `round ${round}: only ${confirmedThisRound} of ${messagesPerRound} confirmed`);
      if (!killed && confirmedThisRound >= killAfter) {
        killed = true;
        process.stderr.write(`round ${round}: killing ${leader.node} (epoch ${leader.epoch}, pid ${cluster.node(leader.node).broker.process.pid}) after ${confirmedThisRound} confirms; producer on ${pubNode}, consumer on ${subNode}\n`);
        await cluster.kill(leader.node);
      }
      if (!pubOpen) {
        pubCh = await pubConn.createConfirmChannel();
        openPublisher(pubCh);
      }
      const progress = new Promise<void>((resolve) => (progressed = resolve));
      while (pubOpen && pending.size < inFlightMax && todo.length > 0) {
        const id = todo.shift() as number;
        const attempt = (attempts.get(id) ?? 0) + 1;
        attempts.set(id, attempt);
        const key = `${id}:${attempt}`;
        pending.set(key, id);
        try {
          pubCh.sendToQueue(queue, Buffer.from(key), { persistent: true }, (err) => {
            pending.delete(key);
            if (err === null || err === undefined) {
              if (!confirmed.has(String(id))) confirmedThisRound++;
              confirmed.add(String(id));
            } else todo.push(id);
            progressed();
          });
        } catch {
          pending.delete(key);
          todo.push(id);
          pubOpen = false; // the channel is closing: a new one next turn
        }
      }
      if (pubOpen && (pending.size > 0 || todo.length > 0)) await within(progress, `a confirm or nack in round ${round}`, roundDeadlineMs);
    }
    nextId = roundEnd;
    // Every confirmed message of this round reaches the consumer.
    await waitFor(
      () => {
        const seen = new Set(deliveries.map((d) => d.key.split(':')[0]));
        for (const id of confirmed) if (!seen.has(id)) return false;
        return true;
      },
      `every confirmed message consumed after round ${round}`,
      roundDeadlineMs,
    );
    stopped = true;
    await reattaching.catch(() => {});
    await pubConn.close().catch(() => {});
    await subConn.close().catch(() => {});
    // The killed node comes back (and catches up) before the next round.
    await cluster.restart(leader.node);
  }

  // A publish attempt delivered more than once is a redelivery, and says so.
  const seenKeys = new Set<string>();
  for (const d of deliveries) {
    if (seenKeys.has(d.key)) assert.equal(d.redelivered, true, `${d.key} delivered again without redelivered=true`);
    seenKeys.add(d.key);
  }
  const seenIds = new Set(deliveries.map((d) => d.key.split(':')[0]));
  for (const id of confirmed) assert.ok(seenIds.has(id), `confirmed message ${id} was lost`);
}));
