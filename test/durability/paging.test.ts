/**
 * Paging (issue #5): with an 8 MiB memory budget (`--queue-memory-mb 8`, 4 MiB a shard),
 * ~470 MiB of 16 KiB messages go into a durable queue (persistent and transient interleaved)
 * and a non-durable one. The broker's peak resident memory stays far below what holding them
 * would take; both queues hand every message back exactly once, in order; after a restart in
 * the middle the persistent messages come back (read back from disk, again within bounds) and
 * the transient ones, paged to the log as they were, do not; drained, the segments go.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Channel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import { startBroker, waitFor, type TestBroker } from '../helpers/broker.js';
import { connect, makeDataDir, removeDataDir, segmentFiles, seqOf } from './durability-kit.js';
import { memoryOf } from '../helpers/process-memory.js';

const bodyBytes = 16 * 1024;
/** Per queue: 15 000 × 16 KiB = 234 MiB; both queues together ~60 times the budget. */
const messageCount = 15_000;
const durableQueue = 'paging-durable';
const transientQueue = 'paging-transient';
/** Consumed from the durable queue before the restart. */
const consumedBeforeRestart = 5_000;
const args = ['--queue-memory-mb', '8', '--segment-bytes', String(4 * 1024 * 1024)];
/**
 * Peak RSS of the whole broker process (front, two shards) may grow this much past its idle
 * size. Holding the 469 MiB of payloads would take more than that by itself (without paging,
 * publishing alone grew it by 544 MiB). Paging needs the 8 MiB budget and read-ahead; the rest
 * of the growth (measured: 180-240 MiB, peaking while draining, about the same for twice the
 * volume) is the rings' pages and garbage buffers of three threads not yet collected.
 */
const rssGrowthMaxBytes = 340 * 1024 * 1024;
const publishWindow = 500;
const prefetch = 500;

function pidOf(broker: TestBroker): number {
  const pid = broker.process.pid;
  assert.ok(pid !== undefined, 'broker process has a pid');
  return pid;
}

function body(seq: number): Buffer {
  return Buffer.from(`${seq} `.padEnd(bodyBytes, 'p'));
}

/** Publishes seqs [from, to) with confirms, a window at a time; persistent(seq) picks the delivery mode. */
async function publishRange(ch: ConfirmChannel, queue: string, from: number, to: number, persistent: (seq: number) => boolean): Promise<void> {
  for (let seq = from; seq < to; seq += publishWindow) {
    for (let i = seq; i < Math.min(to, seq + publishWindow); i++) ch.sendToQueue(queue, body(i), { persistent: persistent(i) });
    await ch.waitForConfirms();
  }
}

interface Received {
  seqs: number[];
  /** Seqs that arrived with redelivered=true. */
  redelivered: number[];
  /** Delivered past the n wanted (prefetched), not acked: the channel's close requeues them. */
  extra: number[];
}

/** Consumes and acks exactly n messages, then closes the channel; resolves with their seqs in arrival order. */
async function consume(ch: Channel, queue: string, n: number, deadlineMs: number): Promise<Received> {
  const got: Received = { seqs: [], redelivered: [], extra: [] };
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${got.seqs.length} of ${n} messages from '${queue}' within ${deadlineMs} ms`)), deadlineMs);
    void ch
      .consume(queue, (m: ConsumeMessage | null) => {
        if (m === null) return;
        if (got.seqs.length >= n) {
          got.extra.push(seqOf(m));
          return;
        }
        got.seqs.push(seqOf(m));
        if (m.fields.redelivered) got.redelivered.push(seqOf(m));
        assert.equal(m.content.length, bodyBytes);
        if (got.seqs.length === n) {
          ch.ack(m, true);
          clearTimeout(timer);
          resolve();
        } else if (got.seqs.length % 100 === 0) ch.ack(m, true);
      })
      .catch(reject);
  });
  await ch.close();
  return got;
}

function assertInOrder(seqs: number[], expected: number[], what: string): void {
  assert.equal(seqs.length, expected.length, `${what}: count`);
  for (let i = 0; i < seqs.length; i++) {
    if (seqs[i] !== expected[i]) assert.fail(`${what}: message #${i} is seq ${seqs[i]}, expected ${expected[i]}`);
  }
}

describe('queues longer than the memory budget page to disk', () => {
  test('~470 MiB through an 8 MiB budget: bounded memory, every message once and in order, persistent ones survive a restart', { timeout: 120_000 }, async () => {
    const dataDir = makeDataDir();
    let broker: TestBroker | undefined;
    try {
      broker = await startBroker({ dataDir, args });
      const idle = memoryOf(pidOf(broker));
      let conn = await connect(broker.url);
      const pub = await conn.createConfirmChannel();
      await pub.assertQueue(durableQueue, { durable: true });
      await pub.assertQueue(transientQueue, { durable: false });
      const started = Date.now();
      // Persistent even seqs, transient odd ones, in one durable queue; all transient in the other.
      await Promise.all([
        publishRange(pub, durableQueue, 0, messageCount, (seq) => seq % 2 === 0),
        publishRange(await conn.createConfirmChannel(), transientQueue, 0, messageCount, () => false),
      ]);
      const published = memoryOf(pidOf(broker));
      const publishMs = Date.now() - started;
      assert.match(broker.log(), /passed the budget of 4\.0 MiB: new messages go to disk/);
      const counts = await pub.checkQueue(durableQueue);
      assert.equal(counts.messageCount, messageCount);
      assert.equal((await pub.checkQueue(transientQueue)).messageCount, messageCount);

      const subscriber = async (): Promise<Channel> => {
        const ch = await conn.createChannel();
        await ch.prefetch(prefetch);
        return ch;
      };
      const transient = await consume(await subscriber(), transientQueue, messageCount, 60_000);
      assertInOrder(transient.seqs, Array.from({ length: messageCount }, (_, i) => i), 'transient queue');
      assert.deepEqual(transient.redelivered, []);
      const first = await consume(await subscriber(), durableQueue, consumedBeforeRestart, 60_000);
      assertInOrder(first.seqs, Array.from({ length: consumedBeforeRestart }, (_, i) => i), 'durable queue before the restart');
      assert.deepEqual(first.redelivered, []);
      assert.equal((await pub.checkQueue(transientQueue)).messageCount, 0);
      // The acks are in, the prefetched rest went back in place: what is left is ready, in the queue.
      await waitFor(async () => (await pub.checkQueue(durableQueue)).messageCount === messageCount - consumedBeforeRestart, 'acks of the first part to settle');
      const drained = memoryOf(pidOf(broker));
      await conn.close();

      assert.equal(await broker.stop({ keepData: true }), 0);
      broker = await startBroker({ dataDir, args });
      const restartedIdle = memoryOf(pidOf(broker));
      conn = await connect(broker.url);
      const sub2 = await conn.createChannel();
      await sub2.prefetch(prefetch);
      // Only the persistent (even) messages come back; the transient ones paged to the log do not,
      // and neither does the non-durable queue.
      const expected = Array.from({ length: messageCount - consumedBeforeRestart }, (_, i) => consumedBeforeRestart + i).filter((s) => s % 2 === 0);
      assert.equal((await sub2.checkQueue(durableQueue)).messageCount, expected.length);
      const probe = await conn.createChannel();
      probe.on('error', () => {}); // the 404 closes it
      await assert.rejects(probe.checkQueue(transientQueue), /404/);
      const sub3 = await conn.createChannel();
      await sub3.prefetch(prefetch);
      const rest = await consume(sub3, durableQueue, expected.length, 60_000);
      assertInOrder(rest.seqs, expected, 'durable queue after the restart');
      // Redelivered: the persistent ones delivered (prefetched) but not acked before the restart —
      // every one the client saw, and none past the prefetch window.
      const redelivered = new Set(rest.redelivered);
      for (const s of first.extra) if (s % 2 === 0) assert.ok(redelivered.has(s), `seq ${s} was delivered before the restart`);
      assert.ok(rest.redelivered.every((s) => s < consumedBeforeRestart + prefetch), `redelivered seqs ${rest.redelivered[0]}..${rest.redelivered.at(-1)}`);
      assert.equal((await sub2.checkQueue(durableQueue)).messageCount, 0);
      const recovered = memoryOf(pidOf(broker));
      await conn.close();

      console.log(
        `paging: published ${messageCount * 2} × ${bodyBytes} B in ${publishMs} ms; RSS MiB idle ${mib(idle.rssBytes)}, ` +
          `after publish ${mib(published.rssBytes)} (peak ${mib(published.peakBytes)}), after draining ${mib(drained.rssBytes)} (peak ${mib(drained.peakBytes)}); ` +
          `restarted idle ${mib(restartedIdle.rssBytes)}, after draining ${mib(recovered.rssBytes)} (peak ${mib(recovered.peakBytes)})`,
      );
      assert.ok(drained.peakBytes - idle.rssBytes < rssGrowthMaxBytes, `first run: peak RSS ${mib(drained.peakBytes)} MiB, idle ${mib(idle.rssBytes)} MiB`);
      assert.ok(recovered.peakBytes - idle.rssBytes < rssGrowthMaxBytes, `after the restart: peak RSS ${mib(recovered.peakBytes)} MiB, idle ${mib(idle.rssBytes)} MiB`);

      // Everything is settled or read back: the segments holding it go (at most the one being written stays).
      for (const shard of [0, 1]) {
        await waitFor(() => segmentFiles(dataDir, shard).length <= 1, `shard ${shard}'s drained segments to be deleted (has ${segmentFiles(dataDir, shard).length})`, 10_000);
      }
    } finally {
      await broker?.stop({ keepData: true });
      removeDataDir(dataDir);
    }
  });
});

describe('queue rules hold for messages on disk', () => {
  // Budget 0: past the first message of a shard, every message is paged to disk.
  const zeroArgs = ['--queue-memory-mb', '0', '--segment-bytes', String(1024 * 1024)];
  const small = (seq: number): Buffer => Buffer.from(`${seq} `.padEnd(512, 's'));
  const seqs = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

  async function getAll(ch: Channel, queue: string): Promise<number[]> {
    const got: number[] = [];
    for (;;) {
      const m = await ch.get(queue, { noAck: true });
      if (m === false) return got;
      got.push(seqOf(m));
    }
  }

  test('get, purge, delete, x-max-length with dead-lettering, TTL expiry and priorities on paged messages; purged ones stay gone after a restart', { timeout: 60_000 }, async () => {
    const dataDir = makeDataDir();
    let broker: TestBroker | undefined;
    try {
      broker = await startBroker({ dataDir, args: zeroArgs });
      let conn = await connect(broker.url);
      const ch = await conn.createConfirmChannel();
      const publish = async (queue: string, from: number, to: number, opts: { persistent?: boolean; priority?: (seq: number) => number } = {}): Promise<void> => {
        for (let i = from; i < to; i++) {
          ch.sendToQueue(queue, small(i), { persistent: opts.persistent ?? false, ...(opts.priority === undefined ? {} : { priority: opts.priority(i) }) });
        }
        await ch.waitForConfirms();
      };

      // basic.get answers from disk, in order, waiting for each read-back.
      await ch.assertQueue('pg-get', { durable: false });
      await publish('pg-get', 0, 1500);
      assert.deepEqual(await getAll(ch, 'pg-get'), seqs(0, 1500));

      // purge and delete count what is on disk; purged persistent messages are settled in the log.
      await ch.assertQueue('pg-purge', { durable: true });
      await publish('pg-purge', 0, 1000, { persistent: true });
      assert.equal((await ch.purgeQueue('pg-purge')).messageCount, 1000);
      assert.equal((await ch.checkQueue('pg-purge')).messageCount, 0);
      await publish('pg-purge', 1000, 1010, { persistent: true });
      await ch.assertQueue('pg-delete', { durable: false });
      await publish('pg-delete', 0, 700);
      assert.equal((await ch.deleteQueue('pg-delete')).messageCount, 700);

      // x-max-length drops from the head, wherever it is, dead-lettering in order.
      await ch.assertQueue('pg-dlq', { durable: false });
      await ch.assertQueue('pg-maxlen', { durable: false, maxLength: 10, deadLetterExchange: '', deadLetterRoutingKey: 'pg-dlq' });
      await publish('pg-maxlen', 0, 600);
      await waitFor(async () => (await ch.checkQueue('pg-dlq')).messageCount === 590, 'the dropped messages in pg-dlq');
      assert.deepEqual(await getAll(ch, 'pg-maxlen'), seqs(590, 600));
      assert.deepEqual(await getAll(ch, 'pg-dlq'), seqs(0, 590));

      // A TTL runs out at a head on disk with no consumer: expired (dead-lettered) all the same.
      await ch.assertQueue('pg-expired', { durable: false });
      await ch.assertQueue('pg-ttl', { durable: false, messageTtl: 200, deadLetterExchange: '', deadLetterRoutingKey: 'pg-expired' });
      await publish('pg-ttl', 0, 400);
      await waitFor(async () => (await ch.checkQueue('pg-expired')).messageCount === 400, 'the expired messages in pg-expired');
      assert.equal((await ch.checkQueue('pg-ttl')).messageCount, 0);
      assert.deepEqual(await getAll(ch, 'pg-expired'), seqs(0, 400));

      // Priority queues page each level: highest first, FIFO within a level.
      await ch.assertQueue('pg-prio', { durable: false, maxPriority: 3 });
      const priority = (seq: number): number => seq % 4;
      await publish('pg-prio', 0, 800, { priority });
      const expected = [3, 2, 1, 0].flatMap((p) => seqs(0, 800).filter((s) => priority(s) === p));
      assert.deepEqual(await getAll(ch, 'pg-prio'), expected);

      await conn.close();
      assert.equal(await broker.stop({ keepData: true }), 0);
      broker = await startBroker({ dataDir, args: zeroArgs });
      conn = await connect(broker.url);
      const ch2 = await conn.createChannel();
      // Only what was published after the purge comes back.
      assert.deepEqual(await getAll(ch2, 'pg-purge'), seqs(1000, 1010));
      await conn.close();
    } finally {
      await broker?.stop({ keepData: true });
      removeDataDir(dataDir);
    }
  });
});

function mib(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(0);
}
