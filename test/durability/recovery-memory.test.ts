/**
 * Recovery memory (issue #5): a broker that holds a backlog far past its memory budget must be
 * able to restart. 400 000 small persistent messages go into a durable queue of a node with a
 * 1 MiB budget; after a clean stop (SIGTERM) and after a crash (SIGKILL, with half of them
 * consumed and acked first) the node restarts, and the shard that owns the queue reports the
 * heap it holds right after replaying its log (`recovered N message(s) … heap used X MiB, array
 * buffers Y MiB`, measured after a full GC: the broker runs with --expose-gc). Its growth over
 * the same node recovering an empty queue must stay within a few bytes a message; then the
 * queue hands back every message in order, redelivered=false after the clean stop and
 * redelivered=true after the crash.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Channel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { connect, makeDataDir, removeDataDir, seqOf, shardOfQueue } from './durability-kit.js';

const queue = 'recovery-memory';
const messageCount = 400_000;
/** Consumed and acked between the clean restart and the crash. */
const consumedBeforeCrash = messageCount / 2;
const bodyBytes = 64;
const publishWindow = 5_000;
const prefetch = 2_000;
const args = ['--queue-memory-mb', '1'];
/** Exposes gc() to the shard workers, so the figure they log is what recovery keeps, not its garbage. */
const env = { NODE_OPTIONS: '--expose-gc' };
/**
 * JS heap a recovered message may add to its shard, bytes. Measured with this test: the previous
 * recovery (an object in a Map per message, plus sorted copies) held 195 bytes a message after
 * the clean stop and 236 after the crash; replaying into typed arrays (recovered-queue.ts) holds
 * 0.8 and 1.6 — the heap's own noise (±1 MiB is ±2.5 bytes a message here).
 */
const heapPerMessageMaxBytes = 8;
/**
 * Typed-array memory (outside the heap, but in the process) a recovered message may add: its
 * index entry for the queue (30 bytes: id, log offset, expiry, body size, flags) and its
 * live-offset entry (17), plus chunk slack; after the crash also the 8 bytes of its id in the
 * `delivered` records written then (the log's write buffer keeps its size for a while).
 * Measured: 47 bytes a message after the clean stop, 66 after the crash (the previous
 * recovery: 20 and 17, its entries being on the heap instead).
 */
const arrayBuffersPerMessageMaxBytes = 80;
const drainDeadlineMs = 60_000;

interface Footprint {
  messages: number;
  heapBytes: number;
  arrayBufferBytes: number;
}

/** The owning shard's recovery line (logged before the node listens). */
async function footprintOf(broker: TestBroker, shard: number): Promise<Footprint> {
  const m = await broker.waitForLog(new RegExp(`shard ${shard}: recovered (\\d+) message\\(s\\) for \\d+ queue\\(s\\); heap used ([\\d.]+) MiB, array buffers ([\\d.]+) MiB`));
  const mib = 1024 * 1024;
  return { messages: Number(m[1]), heapBytes: Number(m[2]) * mib, arrayBufferBytes: Number(m[3]) * mib };
}

function assertGrowth(label: string, base: Footprint, now: Footprint, messages: number): void {
  const heapPerMessage = (now.heapBytes - base.heapBytes) / messages;
  const arrayPerMessage = (now.arrayBufferBytes - base.arrayBufferBytes) / messages;
  const detail = `${label}: ${messages} messages; heap ${base.heapBytes} → ${now.heapBytes} bytes (${heapPerMessage.toFixed(1)} a message), array buffers ${base.arrayBufferBytes} → ${now.arrayBufferBytes} (${arrayPerMessage.toFixed(1)} a message)`;
  console.log(detail);
  assert.equal(now.messages, messages, detail);
  assert.ok(heapPerMessage < heapPerMessageMaxBytes, `${detail}: past ${heapPerMessageMaxBytes} bytes of heap a message`);
  assert.ok(arrayPerMessage < arrayBuffersPerMessageMaxBytes, `${detail}: past ${arrayBuffersPerMessageMaxBytes} bytes of array buffers a message`);
}

function body(seq: number): Buffer {
  return Buffer.from(`${seq} `.padEnd(bodyBytes, 'r'));
}

async function publishAll(ch: ConfirmChannel, from: number, to: number): Promise<void> {
  for (let seq = from; seq < to; seq += publishWindow) {
    for (let i = seq; i < Math.min(to, seq + publishWindow); i++) ch.sendToQueue(queue, body(i), { persistent: true });
    await ch.waitForConfirms();
  }
}

/**
 * Consumes n messages, checks they are seqs first.. in order with the wanted redelivered flag,
 * acks them, and closes the channel (what it prefetched past n goes back to the queue).
 */
async function consumeInOrder(ch: Channel, first: number, n: number, redelivered: boolean): Promise<void> {
  let next = first;
  let failure: Error | undefined;
  await ch.prefetch(prefetch);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${next - first} of ${n} messages within ${drainDeadlineMs} ms`)), drainDeadlineMs);
    void ch
      .consume(queue, (m: ConsumeMessage | null) => {
        if (m === null || next - first >= n || failure !== undefined) return;
        const seq = seqOf(m);
        if (seq !== next || m.fields.redelivered !== redelivered) {
          failure = new Error(`message ${next - first} of ${n}: got seq ${seq} (redelivered=${m.fields.redelivered}), want seq ${next} (redelivered=${redelivered})`);
          clearTimeout(timer);
          reject(failure);
          return;
        }
        next++;
        if ((next - first) % prefetch === 0 || next - first === n) ch.ack(m, true);
        if (next - first === n) {
          clearTimeout(timer);
          resolve();
        }
      })
      .catch(reject);
  });
  await ch.close();
}

describe('recovery of a backlog past the memory budget', () => {
  test('restarts after a clean stop and after a crash with bounded shard heap, messages in order', { timeout: 240_000 }, async () => {
    const dataDir = makeDataDir();
    let broker: TestBroker | undefined;
    try {
      // ---- baseline: the same node recovering its queue empty -----------------------------
      broker = await startBroker({ dataDir, args, env });
      let conn = await connect(broker.url);
      conn.on('error', () => {}); // each SIGTERM closes it with connection-forced
      const declare = await conn.createChannel();
      await declare.assertQueue(queue, { durable: true });
      const shard = shardOfQueue(dataDir, '/', queue);
      await conn.close();
      assert.equal(await broker.stop({ keepData: true }), 0);
      broker = await startBroker({ dataDir, args, env });
      const empty = await footprintOf(broker, shard);

      // ---- the backlog, then a clean stop ----------------------------------------------------
      conn = await connect(broker.url);
      conn.on('error', () => {});
      await publishAll(await conn.createConfirmChannel(), 0, messageCount);
      await conn.close();
      assert.equal(await broker.stop({ keepData: true }), 0);
      broker = await startBroker({ dataDir, args, env });
      assertGrowth('after SIGTERM', empty, await footprintOf(broker, shard), messageCount);

      // ---- half of it consumed in order; a confirmed marker makes sure the acks are logged ----
      conn = await connect(broker.url);
      conn.on('error', () => {});
      await consumeInOrder(await conn.createChannel(), 0, consumedBeforeCrash, false);
      await publishAll(await conn.createConfirmChannel(), messageCount, messageCount + 1);
      await broker.kill();

      // ---- after the crash: the rest and the marker, all redelivered (the crash rule) ---------
      broker = await startBroker({ dataDir, args, env });
      const left = messageCount - consumedBeforeCrash + 1;
      assertGrowth('after SIGKILL', empty, await footprintOf(broker, shard), left);
      conn = await connect(broker.url);
      conn.on('error', () => {});
      await consumeInOrder(await conn.createChannel(), consumedBeforeCrash, left, true);
      const check = await conn.createChannel();
      assert.equal(await check.get(queue), false, 'the queue is empty once drained');
      await conn.close();
    } finally {
      await broker?.stop({ keepData: true });
      removeDataDir(dataDir);
    }
  });
});
