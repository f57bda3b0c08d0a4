/**
 * Catch-up by snapshot: the leader released the segments a new follower would need, so the
 * follower gets the live messages as of an offset and the log from there, while the leader
 * keeps taking records. The follower's state survives its restart, and it can lead with the
 * same live messages in the same order.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { LogKind, enqueuePayload, msgIdOf, settlePayload, startNode, waitFor, withTempDir } from './replication-kit.js';
import type { TestNode } from './replication-kit.js';

const queueId = 11;
const name = '/catch-up';

function status(node: TestNode): ReturnType<TestNode['replicator']['status']>[number] | undefined {
  return node.replicator.status().find((s) => s.queueId === queueId);
}

describe('catch-up by snapshot', () => {
  test('a new follower below the leader\'s log start gets a snapshot, then the log, while publishing goes on', async () => {
    await withTempDir(async (dir) => {
      // Small segments so that settled ones are released quickly.
      const options = { segmentBytes: 2048 };
      const a = await startNode('a', join(dir, 'a'), options);
      let b = await startNode('b', join(dir, 'b'), options);
      try {
        const members = [a.member, b.member];
        await a.replicator.lead({ queueId, name, epoch: 1, type: 'mirrored', members, isr: ['a'], minInsync: 1 });
        const payloads: Buffer[] = [];
        for (let i = 0; i < 120; i++) {
          const p = enqueuePayload(queueId, `message ${i} `.padEnd(60, '.'));
          payloads.push(p);
          a.replicator.append(queueId, LogKind.enqueue, p);
        }
        // Settle the first 100; deliver two of the rest (they must come back redelivered).
        a.replicator.append(queueId, LogKind.settle, settlePayload(queueId, payloads.slice(0, 100).map(msgIdOf)));
        a.replicator.append(queueId, LogKind.delivered, settlePayload(queueId, [msgIdOf(payloads[100] as Buffer), msgIdOf(payloads[105] as Buffer)]));
        await waitFor(() => (status(a)?.logStart ?? 0) > 0, 'the leader to release settled segments');
        const logStart = status(a)?.logStart ?? 0;

        b.replicator.follow({ queueId, name, epoch: 1, leader: a.member });
        // Publishing goes on while the snapshot is built and sent.
        const later: Buffer[] = [];
        for (let i = 0; i < 10; i++) {
          const p = enqueuePayload(queueId, `later ${i}`);
          later.push(p);
          a.replicator.append(queueId, LogKind.enqueue, p);
        }
        const end = 123 + later.length - 1;
        await waitFor(() => status(a)?.followers.find((f) => f.node === 'b')?.ackedOffset === end, `b to ack ${end}`);
        assert.ok(a.logs.some((l) => /sent b a snapshot of \d+ live message.*built by a snapshot job/.test(l)), 'a snapshot was sent');
        assert.equal(a.replicator.snapshots.jobsBuilt, 1, 'built by the Piscina job');
        assert.ok(b.logs.some((l) => l.includes('installed a snapshot')), 'and installed');
        assert.equal(status(b)?.liveMessages, 30);
        assert.ok((status(b)?.logStart ?? 0) >= logStart, 'b\'s log starts at the snapshot point');

        await b.replicator.close();
        b = await startNode('b', join(dir, 'b'), options);
        assert.deepEqual(b.replicator.replicaState(queueId), { epoch: 1, logEnd: end + 1 }, 'recovered from snapshot + log');
        await a.replicator.stop(queueId);
        await b.replicator.lead({ queueId, name, epoch: 2, type: 'mirrored', members, isr: ['b'], minInsync: 1 });
        const expected = payloads.slice(100).concat(later);
        assert.deepEqual(
          b.sink.imports.map((i) => [msgIdOf(i.payload), i.redelivered]),
          expected.map((p, i) => [msgIdOf(p), i === 0 || i === 5]),
        );
        assert.ok(b.sink.imports.every((imp, i) => imp.payload.equals(expected[i] as Buffer)), 'payloads byte for byte');
      } finally {
        await a.replicator.close();
        await b.replicator.close();
      }
    });
  });
});
