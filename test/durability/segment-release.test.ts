/**
 * Settled segments are deleted: with 1 MiB segments, many MiB of persistent messages go
 * through a durable queue and are acked; the old segment files disappear (only the one
 * being written stays), and the node restarts on what is left with an empty queue that works.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker, waitFor, type TestBroker } from '../helpers/broker.js';
import type { GetMessage } from 'amqplib';
import { Inbox } from '../helpers/amqp-expect.js';
import { connect, drainQueue, makeDataDir, publishConfirmed, removeDataDir, segmentFiles, seqOf, shardOfQueue } from './durability-kit.js';

const queue = 'release-q';
const segmentBytes = 1024 * 1024;
const args = ['--segment-bytes', String(segmentBytes)];
const messageCount = 1200;
/** 8 KiB bodies: 1200 of them are ~9.6 MiB, about ten segments. */
const bodyBytes = 8 * 1024;
const publishWindow = 100;

describe('settled segments are deleted', () => {
  test('publish and ack ~10 MiB through 1 MiB segments: old segment files go, a restart still works', async () => {
    const dataDir = makeDataDir();
    let broker: TestBroker | undefined;
    try {
      broker = await startBroker({ dataDir, args });
      const conn = await connect(broker.url);
      const pub = await conn.createConfirmChannel();
      await pub.assertQueue(queue, { durable: true });
      const shard = shardOfQueue(dataDir, '/', queue);

      const sub = await conn.createChannel();
      await sub.prefetch(50);
      const inbox = new Inbox<number>();
      await sub.consume(queue, (m) => {
        if (m === null) return;
        inbox.push(seqOf(m));
        sub.ack(m);
      });

      let mostSegments = 0;
      for (let seq = 0; seq < messageCount; seq += publishWindow) {
        const batch: Promise<void>[] = [];
        for (let i = seq; i < Math.min(messageCount, seq + publishWindow); i++) {
          batch.push(publishConfirmed(pub, '', queue, Buffer.from(`${i} `.padEnd(bodyBytes, 'r')), { persistent: true }));
        }
        await Promise.all(batch);
        mostSegments = Math.max(mostSegments, segmentFiles(dataDir, shard).length);
      }
      const seqs = await inbox.atLeast(messageCount, `${messageCount} deliveries`, 30_000);
      assert.deepEqual(seqs, Array.from({ length: messageCount }, (_, i) => i));
      await sub.checkQueue(queue); // the acks have reached the shard

      // Everything is settled: only the segment being written may stay.
      const left = await waitFor(
        () => {
          const files = segmentFiles(dataDir, shard);
          return files.length === 1 ? files : undefined;
        },
        `the settled segments of shard ${shard} to be deleted`,
        10_000,
      ).catch((err: unknown) => {
        throw new Error(`${String(err)}; files: ${segmentFiles(dataDir, shard).join(', ')} (most seen ${mostSegments})`);
      });
      assert.notEqual(left[0], '00000000000000000000.wseg', 'the first segment is gone');
      assert.match(broker.log(), /released \d+ settled segment\(s\)/);
      await conn.close();
      assert.equal(await broker.stop(), 0);

      broker = await startBroker({ dataDir, args });
      const conn2 = await connect(broker.url);
      const ch = await conn2.createConfirmChannel();
      assert.deepEqual(await drainQueue(ch, queue), [], 'nothing comes back: it was all acked');
      await publishConfirmed(ch, '', queue, Buffer.from('after the restart'), { persistent: true });
      assert.deepEqual((await drainQueue(ch, queue)).map((m) => m.content.toString()), ['after the restart']);
      await conn2.close();
    } finally {
      await broker?.stop();
      removeDataDir(dataDir);
    }
  });
});

describe('segment release after a restart', () => {
  test('acking one queue does not delete segments that still hold another queue\'s messages', async () => {
    const dataDir = makeDataDir();
    // One shard, so both queues share one log.
    const oneShard = [...args, '--shards', '1'];
    let broker: TestBroker | undefined;
    try {
      broker = await startBroker({ dataDir, args: oneShard });
      const conn = await connect(broker.url);
      const ch = await conn.createConfirmChannel();
      await ch.assertQueue('first-q', { durable: true });
      await ch.assertQueue('second-q', { durable: true });
      const publish = async (q: string, from: number, count: number): Promise<void> => {
        for (let i = from; i < from + count; i++) ch.publish('', q, Buffer.from(`${i} `.padEnd(bodyBytes, 's')), { persistent: true });
        await ch.waitForConfirms();
      };
      // Log order: first-q 0..149 (segment 0 and a bit of 1), second-q 0..299 (segments 1 to 3),
      // first-q 150..349 (segments 3 to 5).
      await publish('first-q', 0, 150);
      await publish('second-q', 0, 300);
      await publish('first-q', 150, 200);
      await conn.close();
      assert.equal(await broker.stop(), 0);

      broker = await startBroker({ dataDir, args: oneShard });
      const conn2 = await connect(broker.url);
      const ch2 = await conn2.createChannel();
      // Settle first-q 0..149: segment 0 then holds nothing live and may go; segment 1 and
      // later still hold second-q's messages and must stay.
      // One multiple-ack settles them together, so one release check sees them all settled.
      const settled = await drainQueue(ch2, 'first-q', { ack: false, stopAfter: 150 });
      assert.deepEqual(settled.map(seqOf), Array.from({ length: 150 }, (_, i) => i));
      ch2.ack(settled[settled.length - 1] as GetMessage, true);
      const ch3 = await conn2.createConfirmChannel();
      await publishConfirmed(ch3, '', 'first-q', Buffer.from('a commit after the acks'), { persistent: true });
      await waitFor(() => /released \d+ settled segment/.test(broker?.log() ?? ''), 'segment 0 to be released', 10_000);
      // (A Set: the node currently prints each shard log line twice.)
      assert.deepEqual([...new Set(broker.log().match(/released \d+ settled segment\(s\)/g))], ['released 1 settled segment(s)'], 'exactly segment 0 is released');
      await conn2.close();
      assert.equal(await broker.stop(), 0);

      broker = await startBroker({ dataDir, args: oneShard });
      const conn4 = await connect(broker.url);
      const ch4 = await conn4.createChannel();
      assert.deepEqual(
        (await drainQueue(ch4, 'second-q')).map(seqOf),
        Array.from({ length: 300 }, (_, i) => i),
        'every message of second-q survives',
      );
      assert.deepEqual(
        (await drainQueue(ch4, 'first-q')).map((m) => m.content.toString().split(' ')[0]),
        [...Array.from({ length: 200 }, (_, i) => String(150 + i)), 'a'],
      );
      await conn4.close();
    } finally {
      await broker?.stop();
      removeDataDir(dataDir);
    }
  });
});
