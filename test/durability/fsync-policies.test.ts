/**
 * The --fsync policies other than the default: batch-ms=N (confirms after the timer's
 * fdatasync) and never (confirms after the write). Under each the node starts, confirms
 * persistent messages, and gives them all back after a clean stop and restart.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { within } from '../helpers/amqp-expect.js';
import { connect, drainQueue, makeDataDir, publishConfirmed, removeDataDir, seqOf } from './durability-kit.js';

const queue = 'fsync-q';
const messageCount = 500;
/** Publishes that each wait for their confirm, and how long all of them may take together. */
const soloCount = 20;
const soloDeadlineMs = 5_000;

describe('fsync policies', () => {
  for (const policy of ['batch-ms=5', 'never']) {
    test(`--fsync ${policy}: confirms, then recovery after a clean stop`, async () => {
      const dataDir = makeDataDir();
      const args = ['--fsync', policy];
      let broker: TestBroker | undefined;
      try {
        broker = await startBroker({ dataDir, args });
        const conn = await connect(broker.url);
        const ch = await conn.createConfirmChannel();
        await ch.assertQueue(queue, { durable: true });
        const confirms = Array.from(
          { length: messageCount },
          (_, seq) =>
            new Promise<boolean>((resolve) => {
              ch.publish('', queue, Buffer.from(`${seq} with ${policy}`), { persistent: true, headers: { policy } }, (err: unknown) => resolve(err === null || err === undefined));
            }),
        );
        assert.deepEqual((await Promise.all(confirms)).filter((ok) => !ok).length, 0, 'every publish is confirmed (acked, not nacked)');
        // One at a time, each waiting for its confirm: nothing else wakes the shard, so each
        // confirm must go out on its own sync (a confirm left waiting for unrelated traffic
        // would take seconds each).
        await within(
          (async () => {
            for (let seq = messageCount; seq < messageCount + soloCount; seq++) {
              await publishConfirmed(ch, '', queue, Buffer.from(`${seq} with ${policy}`), { persistent: true, headers: { policy } });
            }
          })(),
          `${soloCount} publishes confirmed one at a time`,
          soloDeadlineMs,
        );
        await conn.close();
        assert.equal(await broker.stop(), 0);

        broker = await startBroker({ dataDir, args });
        const conn2 = await connect(broker.url);
        const back = await drainQueue(await conn2.createChannel(), queue);
        assert.deepEqual(
          back.map(seqOf),
          Array.from({ length: messageCount + soloCount }, (_, i) => i),
        );
        assert.ok(back.every((m) => !m.fields.redelivered && m.properties.headers?.['policy'] === policy));
        await conn2.close();
      } finally {
        await broker?.stop();
        removeDataDir(dataDir);
      }
    });
  }

  test('an unknown policy is refused at start-up, naming the choices', async () => {
    const dataDir = makeDataDir();
    const refused = await startBroker({ dataDir, args: ['--fsync', 'sometimes'] }).then(
      async (b) => {
        await b.kill();
        return undefined;
      },
      (err: unknown) => (err instanceof Error ? err.message : String(err)),
    );
    removeDataDir(dataDir);
    assert.ok(refused !== undefined, 'the node started with --fsync sometimes');
    assert.match(refused, /exited with 2/);
    assert.match(refused, /always, batch-ms=N .* or never/);
  });
});
