/**
 * Network faults (issue 7): a partitioned minority never confirms, and a node cut off from
 * etcd stops leading.
 *
 * - The leader of a quorum queue is left alone (its two followers suspended with SIGSTOP, past
 *   their leases, so the cluster counts them gone): what it appends it never commits and never
 *   confirms, even once its in-sync set has shrunk to itself. When the followers resume, every
 *   publish is settled one way or the other, and every confirmed one is in the queue.
 * - etcd itself goes down: every node loses its lease within the lease TTL and refuses (nacks)
 *   publishes to the quorum queue; etcd comes back on its data dir, a leader is elected again,
 *   confirms resume, and nothing confirmed before the outage is lost.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { waitFor } from '../helpers/broker.js';
import { ctlOk } from '../helpers/warrenctl.js';
import type { ClusterStatusDoc, ReplicaDoc } from '../../src/mgmt/cluster-ops.js';

/** The nodes' membership lease; etcd counts whole seconds. */
const leaseMs = 2_000;
/**
 * A lease counts as lost at most leaseMs after the last keepalive answered before the fault;
 * this much more covers the loss timer firing late and the log line crossing the pipe.
 */
const leaseLossSlackMs = 500;
/** A cluster change (members leaving, a leader elected, a follower caught up) shows within this. */
const settleMs = 15_000;

let cluster: TestCluster;
before(async () => {
  cluster = await startCluster({ nodes: 3, leaseMs });
});
after(async () => {
  for (const n of cluster?.nodes ?? []) n.broker.process.kill('SIGCONT');
  await cluster?.stop();
});

async function withLogs(body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (e) {
    for (const n of cluster.nodes) process.stderr.write(`----- ${n.name} -----\n${n.broker.log().split('\n').slice(-80).join('\n')}\n`);
    process.stderr.write(`----- etcd -----\n${cluster.etcd.log().split('\n').slice(-20).join('\n')}\n`);
    throw e;
  }
}

/** This node's replica of queue, as its admin socket reports it (warrenctl cluster_status). */
async function replicaOf(node: string, queue: string): Promise<ReplicaDoc | undefined> {
  const doc = JSON.parse(await ctlOk(cluster.node(node).dataDir, 'cluster_status', '--formatter', 'json')) as ClusterStatusDoc;
  return doc.replicas.find((r) => r.queue === queue);
}

/** A confirm-mode producer that numbers its messages and records how each publish was settled. */
class Producer {
  readonly acked = new Set<number>();
  readonly nacked = new Set<number>();
  /** Publishes the channel refused to send (it had closed): never confirmed. */
  readonly unsent = new Set<number>();
  private next = 0;

  constructor(
    private readonly ch: amqp.ConfirmChannel,
    private readonly queue: string,
    first = 0,
  ) {
    this.next = first;
  }

  /** Publishes count messages; returns their ids. */
  publish(count: number): number[] {
    const ids: number[] = [];
    for (let i = 0; i < count; i++) {
      const id = this.next++;
      ids.push(id);
      try {
        this.ch.sendToQueue(this.queue, Buffer.from(String(id)), { persistent: true }, (err) => {
          if (err === null || err === undefined) this.acked.add(id);
          else this.nacked.add(id);
        });
      } catch {
        this.unsent.add(id);
      }
    }
    return ids;
  }

  settled(id: number): boolean {
    return this.acked.has(id) || this.nacked.has(id) || this.unsent.has(id);
  }
}

/** Drains queue through node with basic.get; returns the ids found (a message may repeat after a failover). */
async function drain(node: string, queue: string): Promise<Set<number>> {
  const conn = await amqp.connect(cluster.node(node).url());
  try {
    const ch = await conn.createChannel();
    const present = new Set<number>();
    for (;;) {
      const m = await ch.get(queue, { noAck: true });
      if (m === false) break;
      present.add(Number(m.content.toString()));
    }
    return present;
  } finally {
    await conn.close();
  }
}

/** The highest epoch at which a node logged that it leads queue, in its log past logOffsets' mark for it. */
function leaderSince(queue: string, logOffsets: Map<string, number>): { node: string; epoch: number } | undefined {
  let best: { node: string; epoch: number } | undefined;
  for (const n of cluster.nodes) {
    const text = n.broker.log().slice(logOffsets.get(n.name) ?? 0);
    for (const m of text.matchAll(new RegExp(`cluster: leading ${queue} at epoch (\\d+)`, 'g'))) {
      const epoch = Number(m[1]);
      if (best === undefined || epoch > best.epoch) best = { node: n.name, epoch };
    }
  }
  return best;
}

test('a leader left alone (its followers suspended past their leases) confirms nothing until they return', (t) =>
  withLogs(async () => {
    const queue = 'minority-q';
    const conn = await amqp.connect(cluster.node('n1').url());
    conn.on('error', () => {});
    const ch = await conn.createConfirmChannel();
    ch.on('error', () => {});
    await ch.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await cluster.node('n1').broker.waitForLog(new RegExp(`cluster: leading ${queue} at epoch 1`), settleMs);
    const producer = new Producer(ch, queue);
    producer.publish(100);
    await waitFor(() => producer.acked.size === 100, 'the first 100 confirms', settleMs);
    const before = await waitFor(async () => {
      const r = await replicaOf('n1', queue);
      return r !== undefined && r.followers.length === 2 && r.followers.every((f) => f.in_sync) ? r : undefined;
    }, 'n1 leading with both followers in sync', settleMs);
    assert.equal(before.role, 'leader');

    const n1Log = cluster.node('n1').broker;
    const logMark = n1Log.log().length;
    for (const n of ['n2', 'n3']) cluster.node(n).broker.process.kill('SIGSTOP');
    const during = producer.publish(50);

    // n1 has the 50 records in its log (the producer's frames all arrived and were appended) ...
    const appended = await waitFor(async () => {
      const r = await replicaOf('n1', queue);
      return r !== undefined && r.log_end >= before.log_end + during.length ? r : undefined;
    }, 'n1 to append the 50 publishes sent while it is alone', settleMs);
    // ... and the cluster has counted the followers gone (their leases ended) and shrunk the
    // in-sync set to n1 alone: still no majority of the queue's three members.
    await waitFor(() => {
      const since = n1Log.log().slice(logMark);
      return /node n2 left/.test(since) && /node n3 left/.test(since) && /in-sync set now \[n1\]/.test(since);
    }, 'n1 to see n2 and n3 leave and the in-sync set shrink to [n1]', settleMs);
    const alone = await replicaOf('n1', queue);
    assert.equal(alone?.role, 'leader', 'n1 still leads the queue (no majority elsewhere can elect anyone)');
    assert.equal(alone?.commit_offset, before.commit_offset, `the commit watermark did not move while n1 was alone (log end ${appended.log_end})`);
    assert.deepEqual(during.filter((id) => producer.acked.has(id)), [], 'no publish sent while the leader was alone is confirmed');

    for (const n of ['n2', 'n3']) cluster.node(n).broker.process.kill('SIGCONT');
    // Every publish gets its answer: committed once the followers are back (ack), or refused (nack).
    await waitFor(() => during.every((id) => producer.settled(id)), 'every publish sent while n1 was alone to be settled', settleMs);
    t.diagnostic(`of the ${during.length} publishes sent while n1 was alone: ${during.filter((id) => producer.acked.has(id)).length} confirmed after the followers returned, ${during.filter((id) => !producer.acked.has(id)).length} refused`);
    const afterwards = producer.publish(20);
    await waitFor(() => afterwards.every((id) => producer.settled(id)), 'the publishes after the followers resumed to be settled', settleMs);
    assert.deepEqual(afterwards.filter((id) => !producer.acked.has(id)), [], 'with the followers back, publishes are confirmed');
    await conn.close();

    const present = await drain('n3', queue);
    const lost = [...producer.acked].filter((id) => !present.has(id));
    assert.deepEqual(lost.slice(0, 10), [], `${lost.length} confirmed message(s) missing when read through n3`);
  }));

test('etcd down: every node loses its lease and refuses publishes; etcd back: a leader is elected and nothing confirmed is lost', () =>
  withLogs(async () => {
    const queue = 'etcd-outage-q';
    // The previous test's suspended nodes are members again.
    await waitFor(async () => {
      const doc = JSON.parse(await ctlOk(cluster.node('n1').dataDir, 'cluster_status', '--formatter', 'json')) as ClusterStatusDoc;
      return doc.running_nodes.length === 3;
    }, 'all three nodes running', settleMs);
    const conn = await amqp.connect(cluster.node('n1').url());
    conn.on('error', () => {});
    const ch = await conn.createConfirmChannel();
    ch.on('error', () => {});
    await ch.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await cluster.node('n1').broker.waitForLog(new RegExp(`cluster: leading ${queue} at epoch 1`), settleMs);
    const producer = new Producer(ch, queue);
    const beforeOutage = producer.publish(100);
    await waitFor(() => beforeOutage.every((id) => producer.acked.has(id)), 'the first 100 confirms', settleMs);

    const lossRe = /^(\S+) \[error\] cluster: lost the etcd lease/gm;
    const logMarks = new Map(cluster.nodes.map((n) => [n.name, n.broker.log().length]));
    const killedAtMs = Date.now();
    await cluster.etcd.kill();
    const lossAtMs = new Map<string, number>();
    await waitFor(() => {
      for (const n of cluster.nodes) {
        const m = [...n.broker.log().slice(logMarks.get(n.name)).matchAll(lossRe)][0];
        if (m !== undefined) lossAtMs.set(n.name, Date.parse(m[1] ?? ''));
      }
      return lossAtMs.size === cluster.nodes.length;
    }, 'every node to log that it lost the etcd lease', leaseMs + settleMs);
    for (const [node, at] of lossAtMs) {
      assert.ok(at - killedAtMs <= leaseMs + leaseLossSlackMs, `${node} lost its lease ${at - killedAtMs} ms after etcd died (lease ${leaseMs} ms)`);
    }

    // Publishes to the quorum queue are refused, through its old leader and through another node.
    const duringOutage = producer.publish(20);
    const viaN2 = await amqp.connect(cluster.node('n2').url());
    viaN2.on('error', () => {});
    const ch2 = await viaN2.createConfirmChannel();
    ch2.on('error', () => {});
    const producer2 = new Producer(ch2, queue, 1_000_000);
    const duringOutage2 = producer2.publish(20);
    await waitFor(() => duringOutage.every((id) => producer.settled(id)), 'the publishes on n1 during the outage to be settled', settleMs);
    await waitFor(() => duringOutage2.every((id) => producer2.settled(id)), 'the publishes on n2 during the outage to be settled', settleMs);
    assert.deepEqual(duringOutage.filter((id) => !producer.nacked.has(id)), [], 'n1 refuses (nacks) every publish without its lease');
    assert.deepEqual(duringOutage2.filter((id) => !producer2.nacked.has(id)), [], 'n2 refuses (nacks) every publish to the queue during the outage');
    await viaN2.close().catch(() => {});

    const restartMarks = new Map(cluster.nodes.map((n) => [n.name, n.broker.log().length]));
    await cluster.etcd.restart();
    const leader = await waitFor(() => leaderSince(queue, restartMarks), `a leader of ${queue} elected after etcd returned`, settleMs);
    assert.ok(leader.epoch >= 2, `${leader.node} leads at epoch ${leader.epoch}: a new epoch after the outage`);

    // Confirms again, through the new leader and through another node, each on a fresh connection.
    // A publish can still be refused while the other nodes learn of the new leader: retried.
    const confirmedAfter: number[] = [];
    for (const [i, node] of [leader.node, cluster.nodes.map((n) => n.name).find((n) => n !== leader.node) ?? ''].entries()) {
      const c = await amqp.connect(cluster.node(node).url());
      c.on('error', () => {});
      const pch = await c.createConfirmChannel();
      pch.on('error', () => {});
      const p = new Producer(pch, queue, 2_000_000 + 100_000 * i);
      const attempts: string[] = [];
      const ids = await waitFor(async () => {
        const batch = p.publish(10);
        await waitFor(() => batch.every((id) => p.settled(id)), `publishes through ${node} after the outage to be settled`, settleMs);
        const acked = batch.filter((id) => p.acked.has(id));
        attempts.push(`${acked.length} acked, ${batch.filter((id) => p.nacked.has(id)).length} nacked, ${batch.filter((id) => p.unsent.has(id)).length} unsent`);
        return acked.length === batch.length ? batch : undefined;
      }, `publishes through ${node} confirmed again after the outage`, settleMs).catch((e: unknown) => {
        throw new Error(`${e instanceof Error ? e.message : String(e)}; attempts: ${attempts.slice(0, 3).join('; ')} … ${attempts.slice(-2).join('; ')}`);
      });
      confirmedAfter.push(...ids);
      await c.close();
    }
    await conn.close().catch(() => {});

    const present = await drain('n3', queue);
    const lost = [...producer.acked, ...confirmedAfter].filter((id) => !present.has(id));
    assert.deepEqual(lost.slice(0, 10), [], `${lost.length} confirmed message(s) missing after the outage`);
  }));
