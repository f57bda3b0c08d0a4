/**
 * The shard's side of replicated queues, on one thread with real rings: records go to the
 * replicator ring, and a message enters its queue and gets its confirm only at its commit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRingBuffer } from '../../src/ring/ring-layout.js';
import { RingReader } from '../../src/ring/ring-reader.js';
import { RingWriter } from '../../src/ring/ring-writer.js';
import { RecordReader, RecordWriter } from '../../src/ring/record-buffer.js';
import { FromShard, PublishFlag, buildPayload } from '../../src/ring/shard-records.js';
import { FromReplicator, ToReplicator } from '../../src/ring/replication-records.js';
import { ShardLink } from '../../src/front/shard-link.js';
import { Shard } from '../../src/shard/shard.js';
import { LogKind, decodeIdList, encodeEnqueueHeader, enqueueHeaderBytes } from '../../src/shard/log-records.js';
import type { QueueConfig } from '../../src/shard/queue-config.js';

const ringBytes = 1 << 16;
const noProps = Buffer.from([0, 0]);

function rig() {
  const toShard = createRingBuffer(ringBytes);
  const fromShard = createRingBuffer(ringBytes);
  const toRepl = createRingBuffer(ringBytes);
  const link = new ShardLink(0, new RingWriter(toShard, 'front→shard'));
  const shardIn = new RingReader(toShard, 'front→shard');
  const shard = new Shard(0, new RingWriter(fromShard, 'shard→front'), undefined, () => {}, new Int32Array(1), Number.POSITIVE_INFINITY, new RingWriter(toRepl, 'shard→repl'));
  const frontIn = new RingReader(fromShard, 'shard→front');
  const replIn = new RingReader(toRepl, 'shard→repl');
  const w = new RecordWriter();
  /** Runs what the front sent through the shard; returns what the shard said to the front and to the replicator. */
  const pump = () => {
    link.out.flush();
    shardIn.poll((k, b) => shard.onRecord(k, b));
    shard.onBatchEnd();
    const front: { kind: number; body: Buffer }[] = [];
    frontIn.poll((kind, body) => {
      front.push({ kind, body: Buffer.from(body) });
      link.onReply(kind, Buffer.from(body)); // get-ok and replies resolve the link's requests
    });
    const repl: { queueId: number; logKind: number; payload: Buffer }[] = [];
    replIn.poll((kind, body) => {
      assert.equal(kind, ToReplicator.append);
      repl.push({ queueId: body.readUInt32LE(0), logKind: body[4] as number, payload: Buffer.from(body.subarray(5)) });
    });
    return { front, repl };
  };
  const fromReplicator = (kind: number, body: Buffer) => {
    shard.onReplicatorRecord(kind, body);
    shard.onBatchEnd();
  };
  const commit = (queueId: number, offset: number) => fromReplicator(FromReplicator.commit, w.reset().u32(queueId).f64(offset).view());
  const confirmsIn = (front: { kind: number; body: Buffer }[]) => {
    const out: { seq: number; ok: boolean }[] = [];
    for (const r of front.filter((x) => x.kind === FromShard.confirms)) {
      const rr = new RecordReader(r.body);
      const n = rr.u32();
      for (let i = 0; i < n; i++) {
        rr.u32();
        out.push({ seq: rr.f64(), ok: rr.u8() === 1 });
      }
    }
    return out;
  };
  return { link, shard, pump, commit, fromReplicator, confirmsIn };
}

function config(queueId: number, name: string, replicated?: { nextOffset: number }): QueueConfig {
  return { queueId, vhost: '/', name, durable: true, exclusive: false, autoDelete: false, overflow: 'drop-head', maxPriority: 0, singleActiveConsumer: false, ...(replicated === undefined ? {} : { replicated }) };
}

const payload = (body: string) => buildPayload('', 'q', noProps, Buffer.from(body));

test('a published message is logged through the replicator and queued, with its confirm, only at its commit', async () => {
  const { link, shard, pump, commit, confirmsIn } = rig();
  link.createQueue(config(1, 'q', { nextOffset: 5 }));
  link.publish(1, 1, PublishFlag.confirm, [1], payload('a'));
  link.publish(1, 2, PublishFlag.confirm, [1], payload('b'));
  const first = pump();
  assert.deepEqual(first.repl.map((r) => [r.queueId, r.logKind]), [[1, LogKind.enqueue], [1, LogKind.enqueue]]);
  assert.equal(first.repl[0]?.payload.subarray(enqueueHeaderBytes).toString().endsWith('a'), true);
  assert.deepEqual(confirmsIn(first.front), [], 'no confirm before the commit');
  assert.equal(shard.queues.get(1)?.messageCount, 0, 'not deliverable before the commit');

  commit(1, 5); // offsets 5 and 6: only the first is committed
  const second = pump();
  assert.deepEqual(confirmsIn(second.front), [{ seq: 1, ok: true }]);
  assert.equal(shard.queues.get(1)?.messageCount, 1);
  commit(1, 6);
  assert.deepEqual(confirmsIn(pump().front), [{ seq: 2, ok: true }]);
  assert.equal(shard.queues.get(1)?.messageCount, 2);
});

test('acks and deliveries are logged as batched records; a commit past them moves nothing twice', async () => {
  const { link, shard, pump, commit } = rig();
  link.createQueue(config(1, 'q', { nextOffset: 0 }));
  link.publish(1, 0, 0, [1], payload('a'));
  pump();
  commit(1, 0);
  const got = link.get(1, 9, false);
  const delivered = pump().repl;
  const r = await got;
  assert.ok(r !== undefined);
  assert.deepEqual(delivered.map((x) => x.logKind), [LogKind.delivered]);
  link.ack(1, [r.msgId]);
  const { repl } = pump();
  assert.deepEqual(repl.map((x) => x.logKind), [LogKind.settle]);
  assert.deepEqual(decodeIdList(repl[0]?.payload as Buffer).ids, [r.msgId]);
  commit(1, 2);
  assert.equal(shard.queues.get(1)?.messageCount, 0);
});

test('imports that arrive before the queue is created are applied at its creation, marked redelivered even where the log says undelivered', async () => {
  const { link, pump, fromReplicator } = rig();
  const w = new RecordWriter();
  const body = payload('old');
  const rec = Buffer.concat([encodeEnqueueHeader(Buffer.alloc(enqueueHeaderBytes), 3, 77, 0), body]);
  fromReplicator(FromReplicator.import, Buffer.concat([w.reset().u32(3).f64(0).u8(0).view(), rec])); // the old leader may have delivered it anyway
  fromReplicator(FromReplicator.leadReady, w.reset().u32(3).f64(1).view());
  link.createQueue(config(3, 'imported', { nextOffset: 1 }));
  pump();
  const got = link.get(3, 9, true);
  pump();
  const r = await got;
  assert.ok(r !== undefined, 'the imported message is in the queue');
  assert.equal(r.msgId, 77);
  assert.equal(r.redelivered, true);
  assert.equal(r.payload.equals(body), true);
});

test('one publish into a replicated and a plain queue is confirmed only when the replicated one commits', async () => {
  const { link, pump, commit, confirmsIn } = rig();
  link.createQueue(config(1, 'r', { nextOffset: 0 }));
  link.createQueue(config(2, 'plain'));
  link.publish(1, 7, PublishFlag.confirm, [1, 2], payload('x'));
  assert.deepEqual(confirmsIn(pump().front), []);
  commit(1, 0);
  assert.deepEqual(confirmsIn(pump().front), [{ seq: 7, ok: true }]);
});

test('a queue dropped by a deposed leader nacks what waited for its commit and logs nothing more', async () => {
  const { link, pump, commit, confirmsIn } = rig();
  link.createQueue(config(1, 'r', { nextOffset: 0 }));
  link.publish(1, 1, PublishFlag.confirm, [1], payload('x'));
  pump();
  const w = new RecordWriter();
  link.out.write(19 /* ToShard.queueDrop */, w.reset().u32(1).view());
  const dropped = pump();
  assert.deepEqual(confirmsIn(dropped.front), [{ seq: 1, ok: false }]);
  commit(1, 0);
  const after = pump();
  assert.deepEqual(confirmsIn(after.front), []);
  assert.deepEqual(after.repl, []);
});
