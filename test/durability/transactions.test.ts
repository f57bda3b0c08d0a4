/**
 * tx.commit-ok promises what a publisher confirm promises: RabbitMQ answers it only once the
 * transaction's persistent messages in durable queues are on disk. So right after commit-ok
 * the records are in the shard's segment file (the test reads it as recovery would), and a
 * SIGKILL straight after loses none of them. A queue that refuses one of the transaction's
 * publishes fails the commit with RabbitMQ's 406 "partial tx completion"; what the other
 * queues took stays.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { AMQPClient } from '@cloudamqp/amqp-client';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { connect, drainQueue, enqueueKind, makeDataDir, recordsOf, removeDataDir, segmentFiles, shardDir, shardOfQueue } from './durability-kit.js';

const queue = 'tx-durable';
const transactions = 5;
const perTransaction = 20;

describe('transactions and the log', () => {
  test('after tx.commit-ok the persistent messages are in the segment file, and a SIGKILL right after loses none', { timeout: 60_000 }, async () => {
    const dataDir = makeDataDir();
    let broker: TestBroker | undefined;
    try {
      broker = await startBroker({ dataDir, args: ['--shards', '1'] });
      const client = new AMQPClient(broker.url);
      await client.connect();
      const ch = await client.channel();
      await ch.queueDeclare(queue, { durable: true });
      const shard = shardOfQueue(dataDir, '/', queue);
      await ch.txSelect();
      const enqueuedOnDisk = (): number => segmentFiles(dataDir, shard).reduce((n, f) => n + recordsOf(join(shardDir(dataDir, shard), f)).filter((r) => r.kind === enqueueKind).length, 0);
      for (let t = 0; t < transactions; t++) {
        for (let i = 0; i < perTransaction; i++) await ch.basicPublish('', queue, `${t * perTransaction + i}`, { deliveryMode: 2 });
        await ch.txCommit();
        // No waiting: commit-ok came after the shard logged (and fdatasync'ed) them.
        assert.equal(enqueuedOnDisk(), (t + 1) * perTransaction, `transaction ${t}: every committed message is in the log at commit-ok`);
      }
      client.onerror = () => {}; // the SIGKILL drops the connection
      await broker.kill();

      broker = await startBroker({ dataDir, args: ['--shards', '1'] });
      const conn = await connect(broker.url);
      const got = await drainQueue(await conn.createChannel(), queue);
      assert.deepEqual(
        got.map((m) => Number(m.content.toString())),
        Array.from({ length: transactions * perTransaction }, (_, i) => i),
        'every committed message, in order',
      );
      await conn.close();
    } finally {
      await broker?.stop({ keepData: true });
      removeDataDir(dataDir);
    }
  });

  test('a queue that refuses a publish of the transaction fails tx.commit with 406 partial tx completion; the others keep theirs', { timeout: 30_000 }, async () => {
    const dataDir = makeDataDir();
    let broker: TestBroker | undefined;
    try {
      broker = await startBroker({ dataDir });
      const client = new AMQPClient(broker.url);
      await client.connect();
      const setup = await client.channel();
      await setup.queueDeclare('tx-small', { durable: true }, { 'x-max-length': 1, 'x-overflow': 'reject-publish' });
      await setup.queueDeclare('tx-big', { durable: true });
      const ch = await client.channel();
      await ch.txSelect();
      await ch.basicPublish('', 'tx-small', 'fits', { deliveryMode: 2 });
      await ch.basicPublish('', 'tx-small', 'does not fit', { deliveryMode: 2 });
      await ch.basicPublish('', 'tx-big', 'kept', { deliveryMode: 2 });
      await assert.rejects(ch.txCommit(), /PRECONDITION_FAILED - partial tx completion/);
      assert.equal(ch.closed, true, 'a channel error');
      assert.equal(client.closed, false, 'not a connection error');
      assert.equal((await setup.queueDeclare('tx-small', { passive: true })).messageCount, 1);
      assert.equal((await setup.queueDeclare('tx-big', { passive: true })).messageCount, 1);
      await client.close();
    } finally {
      await broker?.stop({ keepData: true });
      removeDataDir(dataDir);
    }
  });
});
