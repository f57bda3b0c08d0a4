/**
 * Paging of replicated queues on one shard, with real rings and a real shard log and a memory
 * budget of 0 (every message after the first waits on disk): committed messages and imports
 * are paged to the shard's own log and read back in order, and what the replicator is told
 * (delivered and settle records, by message id) is exactly what it is told for messages kept
 * in memory. Drained, the shard log's paged segments are released.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRingBuffer } from '../../src/ring/ring-layout.js';
import { RingReader } from '../../src/ring/ring-reader.js';
import { RingWriter } from '../../src/ring/ring-writer.js';
import { RecordWriter } from '../../src/ring/record-buffer.js';
import { PublishFlag, buildPayload, payloadLayout } from '../../src/ring/shard-records.js';
import { FromReplicator, ToReplicator } from '../../src/ring/replication-records.js';
import { ShardLink } from '../../src/front/shard-link.js';
import { Shard } from '../../src/shard/shard.js';
import { ShardStore } from '../../src/shard/shard-store.js';
import { LogKind, decodeIdList, encodeEnqueueHeader, enqueueHeaderBytes } from '../../src/shard/log-records.js';
import type { QueueConfig } from '../../src/shard/queue-config.js';
import { SEGMENT_FILE_SUFFIX } from '../../src/store/record-layout.js';
import { waitFor } from '../helpers/broker.js';

const ringBytes = 1 << 20;
/** Small segments, so that a few hundred messages span several and their release shows. */
const segmentBytes = 64 * 1024;
const noProps = Buffer.from([0, 0]);
const payload = (body: string): Buffer => buildPayload('', 'q', noProps, Buffer.from(body.padEnd(1000, '.')));
/** How long a read-back may take before a test gives up (they take microseconds). */
const readBackDeadlineMs = 5_000;

interface ReplRecord {
  queueId: number;
  logKind: number;
  payload: Buffer;
}

async function rig(t: { after: (fn: () => Promise<void>) => void }) {
  const dir = mkdtempSync(join(tmpdir(), 'warren-replicated-paging-'));
  const { store } = await ShardStore.open({ dir, fsync: { mode: 'never' }, segmentBytes, repair: false, log: () => {} });
  const toShard = createRingBuffer(ringBytes);
  const fromShard = createRingBuffer(ringBytes);
  const toRepl = createRingBuffer(ringBytes);
  const link = new ShardLink(0, new RingWriter(toShard, 'front→shard'));
  const shardIn = new RingReader(toShard, 'front→shard');
  const shard = new Shard(0, new RingWriter(fromShard, 'shard→front'), store, () => {}, new Int32Array(1), 0, new RingWriter(toRepl, 'shard→repl'));
  const frontIn = new RingReader(fromShard, 'shard→front');
  const replIn = new RingReader(toRepl, 'shard→repl');
  const repl: ReplRecord[] = [];
  const w = new RecordWriter();
  t.after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  /** Runs what the front sent through the shard, and what the shard said back through the front's link; collects what it told the replicator. */
  const pump = (): void => {
    link.out.flush();
    shardIn.poll((k, b) => shard.onRecord(k, b));
    shard.onBatchEnd();
    frontIn.poll((kind, body) => link.onReply(kind, Buffer.from(body)));
    replIn.poll((kind, body) => {
      assert.equal(kind, ToReplicator.append);
      repl.push({ queueId: body.readUInt32LE(0), logKind: body[4] as number, payload: Buffer.from(body.subarray(5)) });
    });
  };
  /** Pumps, letting the shard's reads and timers run, until p settles. */
  const settle = async <T>(p: Promise<T>, what: string): Promise<T> => {
    let done = false;
    const result = p.finally(() => (done = true));
    const started = Date.now();
    while (!done) {
      assert.ok(Date.now() - started < readBackDeadlineMs, `${what}: not within ${readBackDeadlineMs} ms`);
      pump();
      await new Promise((r) => setImmediate(r));
    }
    return result;
  };
  const fromReplicator = (kind: number, body: Buffer): void => {
    shard.onReplicatorRecord(kind, body);
    shard.onBatchEnd();
  };
  const commit = (queueId: number, offset: number): void => fromReplicator(FromReplicator.commit, w.reset().u32(queueId).f64(offset).view());
  /** Every message of the queue by basic.get, in order. */
  const getAll = async (queueId: number, noAck: boolean) => {
    const got: { msgId: number; redelivered: boolean; body: string }[] = [];
    for (;;) {
      const r = await settle(link.get(queueId, 9, noAck), `get #${got.length}`);
      if (r === undefined) return got;
      const body = r.payload.subarray(payloadLayout(r.payload).propsEnd).toString().replace(/\.+$/, '');
      got.push({ msgId: r.msgId, redelivered: r.redelivered, body });
    }
  };
  const segments = (): number => readdirSync(dir).filter((n) => n.endsWith(SEGMENT_FILE_SUFFIX)).length;
  return { link, shard, pump, settle, commit, fromReplicator, getAll, repl, segments };
}

function config(queueId: number, nextOffset: number): QueueConfig {
  return { queueId, vhost: '/', name: `q${queueId}`, durable: true, exclusive: false, autoDelete: false, overflow: 'drop-head', maxPriority: 0, singleActiveConsumer: false, replicated: { nextOffset } };
}

/** The ids in the replicator's records of this kind, in order. */
function idsOf(repl: ReplRecord[], kind: number): number[] {
  return repl.filter((r) => r.logKind === kind).flatMap((r) => decodeIdList(r.payload).ids);
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

test('committed messages past the budget wait in the shard log, come back in order, and are delivered and settled in the replica log as before', async (t) => {
  const { link, shard, pump, commit, getAll, repl, segments } = await rig(t);
  const n = 300;
  link.createQueue(config(1, 0));
  for (const i of range(n)) link.publish(1, i + 1, PublishFlag.confirm, [1], payload(`m${i}`));
  pump();
  assert.deepEqual([...new Set(repl.map((r) => r.logKind))], [LogKind.enqueue], 'only their enqueues so far');
  const enqueuedIds = repl.map((r) => r.payload.readDoubleLE(4));
  repl.length = 0;
  commit(1, n - 1);
  pump();
  assert.equal(shard.queues.get(1)?.messageCount, n);
  assert.equal(shard.pager?.pagedOut, n - 1, 'the first fits the budget of 0, the rest go to disk');
  await waitFor(() => {
    pump();
    return segments() > 3;
  }, `the paged messages to be written across segments (${segments()})`);

  const got = await getAll(1, false);
  assert.deepEqual(got.map((g) => g.body), range(n).map((i) => `m${i}`));
  assert.deepEqual(got.map((g) => g.msgId), enqueuedIds);
  assert.ok(got.every((g) => !g.redelivered));
  assert.equal(shard.pager?.pagedIn, n - 1);
  link.ack(1, enqueuedIds);
  pump();
  // Nothing but the delivered and settle records a queue in memory sends: no payload again.
  assert.deepEqual([...new Set(repl.map((r) => r.logKind))].sort(), [LogKind.settle, LogKind.delivered].sort());
  assert.deepEqual(idsOf(repl, LogKind.delivered), enqueuedIds);
  assert.deepEqual(idsOf(repl, LogKind.settle), enqueuedIds);
  await waitFor(() => {
    pump();
    return segments() <= 1;
  }, `the drained segments to be released (${segments()} left)`);
});

test('purged and expired paged messages of a replicated queue are settled in the replica log without being read back', async (t) => {
  const { link, shard, pump, settle, commit, repl } = await rig(t);
  link.createQueue(config(1, 0));
  for (const i of range(50)) link.publish(1, 0, 0, [1], payload(`p${i}`));
  pump();
  const ids = repl.map((r) => r.payload.readDoubleLE(4));
  repl.length = 0;
  commit(1, 49);
  assert.equal(await settle(link.purgeQueue(1), 'purge'), 50);
  pump();
  assert.deepEqual(idsOf(repl, LogKind.settle), ids);
  assert.equal(shard.pager?.pagedIn, 0);

  repl.length = 0;
  link.createQueue({ ...config(2, 0), messageTtlMs: 1 });
  for (const i of range(20)) link.publish(1, 0, 0, [2], payload(`e${i}`));
  pump();
  const expiring = repl.map((r) => r.payload.readDoubleLE(4));
  repl.length = 0;
  commit(2, 19);
  await waitFor(() => {
    pump();
    return idsOf(repl, LogKind.settle).length === 20;
  }, 'the expired messages to be settled');
  assert.deepEqual(idsOf(repl, LogKind.settle), expiring);
  assert.equal(shard.queues.get(2)?.messageCount, 0);
});

test('imports that arrive before their queue wait on disk past the budget, join it in order at its creation, and are settled by their own ids', async (t) => {
  const { link, pump, fromReplicator, getAll, repl } = await rig(t);
  const w = new RecordWriter();
  const ids = range(40).map((i) => 1000 + 3 * i); // another node's ids: not this shard's, and not consecutive
  for (const [i, id] of ids.entries()) {
    const rec = Buffer.concat([encodeEnqueueHeader(Buffer.alloc(enqueueHeaderBytes), 5, id, 0), payload(`i${i}`)]);
    fromReplicator(FromReplicator.import, Buffer.concat([w.reset().u32(5).f64(i).u8(0).view(), rec]));
  }
  fromReplicator(FromReplicator.leadReady, w.reset().u32(5).f64(ids.length).view());
  link.createQueue(config(5, ids.length));
  pump();
  const got = await getAll(5, false);
  assert.deepEqual(got.map((g) => g.body), range(40).map((i) => `i${i}`));
  assert.deepEqual(got.map((g) => g.msgId), ids);
  assert.ok(got.every((g) => g.redelivered), 'imports may have been delivered by the old leader');
  link.ack(5, ids);
  pump();
  assert.deepEqual(idsOf(repl, LogKind.settle), ids);

  // A message published after the import gets an id above every imported one (queue order is id order).
  repl.length = 0;
  link.publish(1, 0, 0, [5], payload('after'));
  pump();
  assert.ok((repl[0]?.payload.readDoubleLE(4) ?? 0) > (ids.at(-1) ?? 0));
});
