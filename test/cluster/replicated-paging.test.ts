/**
 * Replicated queues page past the memory budget on their leader, as classic queues do: a
 * 3-node cluster with `--queue-memory-mb 8` (4 MiB a shard) takes a quorum queue backlog ~30
 * times that, and the leader's resident memory stays bounded; every confirmed message comes
 * back exactly once, in order, and the leader's shard log gives its paged segments back once
 * drained. Then a backlog as large fails over: the new leader imports it within the same
 * bound (past the budget, imports wait in its shard log) and serves every confirmed message.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Channel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import { startCluster, withNodeLogs, type ClusterNode, type TestCluster } from '../helpers/cluster.js';
import { waitFor } from '../helpers/broker.js';
import { connect, segmentFiles, seqOf } from '../durability/durability-kit.js';
import { memoryOf, resetPeak } from '../helpers/process-memory.js';

const budgetMb = 8;
const bodyBytes = 16 * 1024;
/** 16 000 × 16 KiB = 250 MiB a queue: ~31 times the node's budget. */
const messageCount = 16_000;
const segmentBytes = 4 * 1024 * 1024;
/**
 * Smaller rings than the default 8 MiB: each of a node's eight rings (front↔shard and
 * shard↔replicator, two shards) otherwise adds its touched pages to the RSS measured here.
 */
const ringBytes = 1024 * 1024;
const args = ['--queue-memory-mb', String(budgetMb), '--segment-bytes', String(segmentBytes), '--ring-bytes', String(ringBytes)];
/**
 * Peak RSS of the leader process (front, two shards, replicator) may grow this much past its
 * idle size while the backlog is published, held and drained (or imported and drained).
 * Without paging it does not hold: measured once with replicated queues held in memory (the
 * code before paging applied to them), publishing alone grew the leader by 389 MiB, and the
 * new leader after the failover by 578 MiB. With paging, measured 165-213 MiB through the
 * drain (the peak) and 104-146 MiB for the failover (its imports paced by the shard's log
 * writes; unpaced, the transfer alone queued up to 300 MiB): the 8 MiB budget and read-ahead,
 * the replicator's 16 MiB tail cache, and freed payload copies that the allocator keeps on
 * four threads (a classic queue of the same volume: ~50 MiB; here every message is also
 * copied for the replicator and held until its commit). 280 MiB leaves margin for a loaded
 * machine and stays well below the 389.
 */
const rssGrowthMaxBytes = 280 * 1024 * 1024;
const publishWindow = 500;
const prefetch = 500;
const drainDeadlineMs = 60_000;

function pidOf(node: ClusterNode): number {
  const pid = node.broker.process.pid;
  assert.ok(pid !== undefined, `${node.name} has a pid`);
  return pid;
}

function body(seq: number): Buffer {
  return Buffer.from(`${seq} `.padEnd(bodyBytes, 'p'));
}

/** The running node leading the queue at the highest epoch its logs mention. */
function leaderOf(cluster: TestCluster, queue: string): { node: ClusterNode; epoch: number } | undefined {
  let best: { node: ClusterNode; epoch: number } | undefined;
  const re = new RegExp(`cluster: leading ${queue} at epoch (\\d+)`, 'g');
  for (const n of cluster.nodes) {
    if (n.broker.process.exitCode !== null || n.broker.process.signalCode !== null) continue;
    for (const m of n.broker.log().matchAll(re)) {
      const epoch = Number(m[1]);
      if (best === undefined || epoch > best.epoch) best = { node: n, epoch };
    }
  }
  return best;
}

/** Publishes seqs [0, n) persistent with confirms, a window at a time. */
async function publishAll(ch: ConfirmChannel, queue: string, n: number): Promise<void> {
  for (let seq = 0; seq < n; seq += publishWindow) {
    for (let i = seq; i < Math.min(n, seq + publishWindow); i++) ch.sendToQueue(queue, body(i), { persistent: true });
    await ch.waitForConfirms();
  }
}

/** Consumes and acks exactly n messages; resolves with their seqs in arrival order and the redelivered count. */
async function consume(ch: Channel, queue: string, n: number): Promise<{ seqs: number[]; redelivered: number }> {
  const seqs: number[] = [];
  let redelivered = 0;
  await ch.prefetch(prefetch);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${seqs.length} of ${n} messages from '${queue}' within ${drainDeadlineMs} ms`)), drainDeadlineMs);
    void ch
      .consume(queue, (m: ConsumeMessage | null) => {
        if (m === null) return reject(new Error(`the consumer of '${queue}' was cancelled after ${seqs.length} messages`));
        seqs.push(seqOf(m));
        if (m.fields.redelivered) redelivered++;
        assert.equal(m.content.length, bodyBytes);
        if (seqs.length === n) {
          ch.ack(m, true);
          clearTimeout(timer);
          resolve();
        } else if (seqs.length % 100 === 0) ch.ack(m, true);
      })
      .catch(reject);
  });
  await ch.close();
  return { seqs, redelivered };
}

function assertExactlyOnceInOrder(seqs: number[], n: number, what: string): void {
  assert.equal(seqs.length, n, `${what}: count`);
  for (let i = 0; i < n; i++) {
    if (seqs[i] !== i) assert.fail(`${what}: message #${i} is seq ${seqs[i]}, expected ${i}`);
  }
}

/** How many segment files each of a node's two shard logs has. */
function shardSegments(node: ClusterNode): number[] {
  return [0, 1].map((shard) => segmentFiles(node.dataDir, shard).length);
}

function mib(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(0);
}

describe('replicated queues page past the memory budget on their leader', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startCluster({ nodes: 3, args });
  });
  after(async () => {
    await cluster?.stop();
  });

  test('a quorum queue ~30 times the budget: bounded leader memory, every message once and in order, segments released', { timeout: 120_000 }, () =>
    withNodeLogs(cluster, async () => {
      const queue = 'paged-quorum';
      const first = cluster.node('n1');
      const conn = await connect(first.url());
      const setup = await conn.createChannel();
      await setup.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
      await setup.close();
      await conn.close();
      const { node: leader } = await waitFor(() => leaderOf(cluster, queue), 'a leader for the queue', 15_000);
      const pid = pidOf(leader);
      const idle = memoryOf(pid);
      resetPeak(pid);

      const lc = await connect(leader.url());
      const started = Date.now();
      await publishAll(await lc.createConfirmChannel(), queue, messageCount);
      const publishMs = Date.now() - started;
      const published = memoryOf(pid);
      await waitFor(() => /passed the budget of 4\.0 MiB: new messages go to disk/.test(leader.broker.log()), 'the leader to page past its budget');
      const check = await lc.createChannel();
      assert.equal((await check.checkQueue(queue)).messageCount, messageCount);

      const got = await consume(await lc.createChannel(), queue, messageCount);
      assertExactlyOnceInOrder(got.seqs, messageCount, 'quorum queue');
      assert.equal(got.redelivered, 0);
      await waitFor(async () => (await check.checkQueue(queue)).messageCount === 0, 'the acks to settle the queue');
      const drained = memoryOf(pid);
      await lc.close();
      console.log(
        `replicated paging: published ${messageCount} × ${bodyBytes} B in ${publishMs} ms; leader ${leader.name} RSS MiB idle ${mib(idle.rssBytes)}, ` +
          `after publish ${mib(published.rssBytes)} (peak ${mib(published.peakBytes)}), after draining ${mib(drained.rssBytes)} (peak ${mib(drained.peakBytes)})`,
      );
      assert.ok(drained.peakBytes - idle.rssBytes < rssGrowthMaxBytes, `leader peak RSS ${mib(drained.peakBytes)} MiB, idle ${mib(idle.rssBytes)} MiB`);
      // Read back or settled, the paged records go: each shard log keeps at most the segment being written.
      await waitFor(() => shardSegments(leader).every((n) => n <= 1), `the leader's drained shard segments to be deleted (has ${shardSegments(leader).join(', ')})`, 10_000);
    }));

  test('failover of a backlog past the budget: the new leader imports it within the bound and serves every confirmed message', { timeout: 120_000 }, () =>
    withNodeLogs(cluster, async () => {
      const queue = 'paged-failover';
      const conn = await connect(cluster.node('n1').url());
      const setup = await conn.createChannel();
      await setup.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
      await setup.close();
      await conn.close();
      const old = await waitFor(() => leaderOf(cluster, queue), 'a leader for the queue', 15_000);
      const oc = await connect(old.node.url());
      await publishAll(await oc.createConfirmChannel(), queue, messageCount);
      await oc.close();

      const survivors = cluster.nodes.filter((n) => n !== old.node);
      const idle = new Map(survivors.map((n) => [n, memoryOf(pidOf(n))]));
      for (const n of survivors) resetPeak(pidOf(n));
      await cluster.kill(old.node.name);
      const next = await waitFor(() => {
        const l = leaderOf(cluster, queue);
        return l !== undefined && l.epoch > old.epoch ? l : undefined;
      }, 'a new leader for the queue', 30_000);
      const leader = next.node;
      const pid = pidOf(leader);
      const imported = new RegExp(`queue ${queue}: leading epoch ${next.epoch} .*, ${messageCount} live message\\(s\\) imported`);
      await waitFor(() => imported.test(leader.broker.log()), `${leader.name} to import the backlog`);
      // It had paged nothing before (it only followed): the imports went past its budget.
      await waitFor(() => /passed the budget of 4\.0 MiB: new messages go to disk/.test(leader.broker.log()), `${leader.name} to page the imports past its budget`);

      const lc = await connect(leader.url());
      const got = await consume(await lc.createChannel(), queue, messageCount);
      assertExactlyOnceInOrder(got.seqs, messageCount, 'failed-over quorum queue');
      // Every imported message may have been delivered by the old leader: all say so.
      assert.equal(got.redelivered, messageCount);
      const check = await lc.createChannel();
      await waitFor(async () => (await check.checkQueue(queue)).messageCount === 0, 'the acks to settle the queue');
      const drained = memoryOf(pid);
      const before = idle.get(leader);
      assert.ok(before !== undefined);
      await lc.close();
      console.log(`replicated paging: failover to ${leader.name}; RSS MiB before ${mib(before.rssBytes)}, peak while importing and draining ${mib(drained.peakBytes)}`);
      assert.ok(drained.peakBytes - before.rssBytes < rssGrowthMaxBytes, `new leader peak RSS ${mib(drained.peakBytes)} MiB, before the failover ${mib(before.rssBytes)} MiB`);
      await waitFor(() => shardSegments(leader).every((n) => n <= 1), `the new leader's drained shard segments to be deleted (has ${shardSegments(leader).join(', ')})`, 10_000);
    }));
});
