/**
 * The replicator in its worker thread: the main thread plays the shard (append records on one
 * ring, commit/import/leadReady records back on the other) and an in-process follower holds the
 * replica, so commits arrive through the ring only after the follower acked.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createRingBuffer } from '../../src/ring/ring-layout.js';
import { RingReader } from '../../src/ring/ring-reader.js';
import { RingWriter } from '../../src/ring/ring-writer.js';
import { FromReplicator, ToReplicator } from '../../src/replication/replication-records.js';
import { ReplicatorWorker } from '../../src/replication/worker-client.js';
import { LogKind, enqueuePayload, startNode, waitFor, withTempDir } from './replication-kit.js';

const queueId = 21;
const ringBytes = 1 << 20;

describe('replicator worker', () => {
  test('appends through the ring are replicated; commits come back through the ring', async () => {
    await withTempDir(async (dir) => {
      const rings = { toReplicator: createRingBuffer(ringBytes), fromReplicator: createRingBuffer(ringBytes) };
      const logs: string[] = [];
      const a = await ReplicatorWorker.start(
        { nodeName: 'a', dataDir: join(dir, 'a'), secret: 'test-secret', fsync: { mode: 'always' }, segmentBytes: 64 * 1024, bindHost: '127.0.0.1', replPort: 0 },
        [rings],
        (level, message) => logs.push(`${level}: ${message}`),
      );
      const b = await startNode('b', join(dir, 'b'));
      const toReplicator = new RingWriter(rings.toReplicator, 'shard0→replicator');
      const fromReplicator = new RingReader(rings.fromReplicator, 'replicator→shard0');
      const got: Array<[string, number, number]> = [];
      fromReplicator.start((kind, body) => {
        const name = kind === FromReplicator.commit ? 'commit' : kind === FromReplicator.leadReady ? 'leadReady' : 'import';
        got.push([name, body.readUInt32LE(0), body.readDoubleLE(4)]);
      });
      try {
        const aMember = { node: 'a', repl: `127.0.0.1:${a.port}` };
        const members = [aMember, b.member];
        const lead = await a.lead({ queueId, name: '/w', epoch: 1, type: 'quorum', members, isr: ['a', 'b'], minInsync: 1 }, 0);
        assert.equal(lead.nextOffset, 1);
        await waitFor(() => got.some(([k]) => k === 'leadReady'), 'leadReady on the ring');
        const head = Buffer.allocUnsafe(5);
        for (let i = 0; i < 5; i++) {
          head.writeUInt32LE(queueId, 0);
          head[4] = LogKind.enqueue;
          toReplicator.write2(ToReplicator.append, head, enqueuePayload(queueId, `via ring ${i}`));
        }
        toReplicator.flush();
        await waitFor(async () => (await a.status())[0]?.flushedOffset === 5, 'the worker to log 5 records');
        assert.ok(!got.some(([k]) => k === 'commit'), 'no commit before the follower holds anything');
        b.replicator.follow({ queueId, name: '/w', epoch: 1, leader: aMember });
        await waitFor(() => got.some(([k, q, offset]) => k === 'commit' && q === queueId && offset === 5), 'commit 5 on the ring');
        assert.deepEqual(await a.replicaState(queueId), { epoch: 1, logEnd: 6 });
        const status = (await a.status())[0];
        assert.equal(status?.role, 'leader');
        assert.equal(status?.commitOffset, 5);
        await assert.rejects(a.lead({ queueId, name: '/w', epoch: 1, type: 'quorum', members, isr: ['a', 'b'], minInsync: 1 }, 0), /needs a newer epoch/);
      } finally {
        fromReplicator.stop();
        toReplicator.close();
        await a.close();
        await b.replicator.close();
      }
    });
  });
});
