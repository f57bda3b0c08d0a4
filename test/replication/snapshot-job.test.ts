/**
 * Catch-up snapshots are built by a Piscina job (snapshot-job.ts) reading the leader's replica
 * files read-only: a few thousand live messages, some delivered, arrive intact and in order in
 * many chunks, also from a leader whose own log began with a snapshot; the job's file is gone
 * afterwards. A job that cannot read what the live index names fails cleanly: the leader logs it,
 * closes that follower's link, keeps leading, and its next job succeeds. Deleting the queue
 * mid-job aborts it and leaves nothing behind. A replicator in its worker thread runs the pool
 * from there and exits cleanly when closed.
 */
import assert from 'node:assert/strict';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { RecordView, checkRecord } from '../../src/store/record-codec.js';
import { SEGMENT_HEADER_BYTES, parseSegmentFileName } from '../../src/store/record-layout.js';
import buildSnapshot from '../../src/replication/snapshot-job.js';
import type { SnapshotJobTask } from '../../src/replication/snapshot-job.js';
import { snapshotFileName } from '../../src/replication/snapshot-file.js';
import { createRingBuffer } from '../../src/ring/ring-layout.js';
import { RingReader } from '../../src/ring/ring-reader.js';
import { RingWriter } from '../../src/ring/ring-writer.js';
import { ToReplicator } from '../../src/replication/replication-records.js';
import { ReplicatorWorker } from '../../src/replication/worker-client.js';
import { LogKind, enqueuePayload, msgIdOf, replicaDir, settlePayload, startNode, waitFor, withTempDir } from './replication-kit.js';
import type { TestNode } from './replication-kit.js';

const queueId = 21;
const name = '/snapshot-job';
const messages = 4000;
const settledFirst = 1000;
/** Every 7th live message was delivered before the follower came. */
const deliveredEvery = 7;
/** Small batches so the snapshot goes out in many chunks. */
const options = { segmentBytes: 64 * 1024, batchBytesMax: 32 * 1024 };

function status(node: TestNode): ReturnType<TestNode['replicator']['status']>[number] | undefined {
  return node.replicator.status().find((s) => s.queueId === queueId);
}

async function outgoingSnapshotFiles(node: TestNode): Promise<string[]> {
  return (await readdir(replicaDir(node, queueId))).filter((n) => n.startsWith('snapshot-out-'));
}

/** Leads the queue on `leader`, appends the messages, settles the first ones, marks some delivered, and waits for settled segments to go. */
async function fillQueue(leader: TestNode, members: TestNode[]): Promise<{ live: Buffer[]; delivered: Set<number> }> {
  await leader.replicator.lead({ queueId, name, epoch: 1, type: 'mirrored', members: members.map((m) => m.member), isr: [leader.name], minInsync: 1 });
  const payloads: Buffer[] = [];
  for (let i = 0; i < messages; i++) {
    const p = enqueuePayload(queueId, `message ${i} `.padEnd(100, '.'));
    payloads.push(p);
    leader.replicator.append(queueId, LogKind.enqueue, p);
  }
  leader.replicator.append(queueId, LogKind.settle, settlePayload(queueId, payloads.slice(0, settledFirst).map(msgIdOf)));
  const live = payloads.slice(settledFirst);
  const delivered = new Set<number>();
  for (let i = 0; i < live.length; i += deliveredEvery) delivered.add(msgIdOf(live[i] as Buffer));
  leader.replicator.append(queueId, LogKind.delivered, settlePayload(queueId, [...delivered]));
  // Offsets: epochStart 0, enqueues 1..messages. Reclamation is done once the first segment holds the first live message.
  const firstLive = 1 + settledFirst;
  await waitFor(async () => {
    const names = (await readdir(replicaDir(leader, queueId))).filter((n) => parseSegmentFileName(n) !== undefined).sort();
    return (parseSegmentFileName(names[0] ?? '') ?? 0) > 0 && (parseSegmentFileName(names[1] ?? '') ?? 0) > firstLive;
  }, `${leader.name} to release every settled segment`);
  return { live, delivered };
}

/** The sent-snapshot log line: messages, bytes, chunks. */
function sentLine(node: TestNode, to: string): { messages: number; chunks: number } | undefined {
  for (const line of node.logs) {
    const m = new RegExp(`sent ${to} a snapshot of (\\d+) live message\\(s\\) as of offset \\d+ \\(\\d+ bytes, (\\d+) chunk\\(s\\)\\); built by a snapshot job`).exec(line);
    if (m !== null) return { messages: Number(m[1]), chunks: Number(m[2]) };
  }
  return undefined;
}

async function assertImports(node: TestNode, live: Buffer[], delivered: Set<number>): Promise<void> {
  assert.equal(node.sink.imports.length, live.length, `${node.name} imports every live message`);
  assert.deepEqual(
    node.sink.imports.map((i) => [msgIdOf(i.payload), i.redelivered]),
    live.map((p) => [msgIdOf(p), delivered.has(msgIdOf(p))]),
    `${node.name}: queue order and delivered flags`,
  );
  assert.ok(node.sink.imports.every((imp, i) => imp.payload.equals(live[i] as Buffer)), `${node.name}: payloads byte for byte`);
}

/** Where the enqueue record of msgId lies in the replica's segment files. */
async function findEnqueue(dir: string, msgId: number): Promise<{ path: string; payloadStart: number }> {
  const view = new RecordView();
  for (const file of (await readdir(dir)).filter((n) => parseSegmentFileName(n) !== undefined).sort()) {
    const path = join(dir, file);
    const buf = await readFile(path);
    for (let position = SEGMENT_HEADER_BYTES; checkRecord(buf, position, buf.length, view) === 'ok'; position += view.recordBytes) {
      if (view.kind === LogKind.enqueue && buf.readDoubleLE(view.payloadStart + 4) === msgId) return { path, payloadStart: view.payloadStart };
    }
  }
  throw new Error(`no enqueue of message ${msgId} in ${dir}`);
}

describe('snapshots built by a Piscina job', () => {
  test('a few thousand live messages, some delivered, reach the follower in many chunks; a snapshot from a snapshot too', async () => {
    await withTempDir(async (dir) => {
      const a = await startNode('a', join(dir, 'a'), options);
      let b = await startNode('b', join(dir, 'b'), options);
      const c = await startNode('c', join(dir, 'c'), options);
      try {
        const { live, delivered } = await fillQueue(a, [a, b, c]);
        const logStart = status(a)?.logStart ?? 0;
        b.replicator.follow({ queueId, name, epoch: 1, leader: a.member });
        const end = (status(a)?.logEnd ?? 0) - 1;
        await waitFor(() => status(a)?.followers.find((f) => f.node === 'b')?.ackedOffset === end, `b to ack ${end}`);

        const sent = sentLine(a, 'b');
        assert.ok(sent !== undefined, 'the leader logged a snapshot built by the job');
        assert.equal(sent.messages, live.length);
        assert.ok(sent.chunks > 10, `many chunks (${sent.chunks})`);
        assert.equal(a.replicator.snapshots.jobsBuilt, 1);
        assert.equal(a.replicator.snapshots.jobsFailed, 0);
        assert.deepEqual(await outgoingSnapshotFiles(a), [], 'the job\'s file is gone once sent');
        assert.equal(status(b)?.liveMessages, live.length);
        const snapshotOffset = status(b)?.logStart ?? 0;
        assert.ok(snapshotOffset > logStart, 'b\'s log starts at the snapshot point');
        assert.ok((await readdir(replicaDir(b, queueId))).includes(snapshotFileName(snapshotOffset)), 'b keeps the snapshot as its log\'s base');

        // b leads from snapshot + log; c, new, is below b's log start: b's job reads b's own snapshot file.
        await b.replicator.close();
        b = await startNode('b', join(dir, 'b'), options);
        await a.replicator.stop(queueId);
        await b.replicator.lead({ queueId, name, epoch: 2, type: 'mirrored', members: [a.member, b.member, c.member], isr: ['b'], minInsync: 1 });
        await assertImports(b, live, delivered);
        c.replicator.follow({ queueId, name, epoch: 2, leader: b.member });
        const bEnd = (status(b)?.logEnd ?? 0) - 1;
        await waitFor(() => status(b)?.followers.find((f) => f.node === 'c')?.ackedOffset === bEnd, `c to ack ${bEnd}`);
        assert.equal(sentLine(b, 'c')?.messages, live.length, 'b sent c a snapshot built by its job');
        assert.equal(b.replicator.snapshots.jobsBuilt, 1);
        assert.deepEqual(await outgoingSnapshotFiles(b), []);

        await b.replicator.stop(queueId);
        await c.replicator.lead({ queueId, name, epoch: 3, type: 'mirrored', members: [b.member, c.member], isr: ['c'], minInsync: 1 });
        await assertImports(c, live, delivered);
      } finally {
        await a.replicator.close();
        await b.replicator.close();
        await c.replicator.close();
      }
    });
  });

  test('a job that cannot read a live message fails; the leader closes that link, keeps leading, and the next job succeeds', async () => {
    await withTempDir(async (dir) => {
      const a = await startNode('a', join(dir, 'a'), options);
      const b = await startNode('b', join(dir, 'b'), options);
      try {
        const { live } = await fillQueue(a, [a, b]);
        // Damage the first live message's enqueue record on the leader's disk: the job's read
        // finds a checksum mismatch (the leader itself never reads it back while it leads).
        const first = live[0] as Buffer;
        const { path, payloadStart } = await findEnqueue(replicaDir(a, queueId), msgIdOf(first));
        const original = await readFile(path);
        const damaged = Buffer.from(original);
        damaged[payloadStart + 30] = (damaged[payloadStart + 30] ?? 0) ^ 0xff;
        await writeFile(path, damaged);

        b.replicator.follow({ queueId, name, epoch: 1, leader: a.member });
        await waitFor(() => a.logs.some((l) => /error: queue \/snapshot-job: snapshot for b failed: .*checksum mismatch.*; closing its link/.test(l)), 'the failed job to be logged');
        await waitFor(() => b.logs.some((l) => l.includes('replication link to leader a closed')), 'b to see its link closed');
        assert.ok(a.replicator.snapshots.jobsFailed >= 1);
        assert.equal(a.replicator.snapshots.jobsBuilt, 0);
        assert.equal(status(b)?.liveMessages, 0, 'nothing was installed');

        // The leader goes on: a new record is committed (the ISR is a alone).
        const committedBefore = a.sink.committed(queueId);
        a.replicator.append(queueId, LogKind.enqueue, enqueuePayload(queueId, 'after the failure'));
        await waitFor(() => a.sink.committed(queueId) > committedBefore, 'a to commit a new record');
        assert.equal(status(a)?.role, 'leader');

        // Repaired, the follower's next fetch gets a snapshot from the same pool.
        await writeFile(path, original);
        await waitFor(() => sentLine(a, 'b') !== undefined, 'a snapshot to be sent after the repair');
        const end = (status(a)?.logEnd ?? 0) - 1;
        await waitFor(() => status(a)?.followers.find((f) => f.node === 'b')?.ackedOffset === end, `b to ack ${end}`);
        assert.equal(status(b)?.liveMessages, live.length + 1);
        assert.equal(a.replicator.snapshots.jobsBuilt, 1);
        assert.deepEqual(await outgoingSnapshotFiles(a), [], 'no job file is left behind, failed or sent');
      } finally {
        await a.replicator.close();
        await b.replicator.close();
      }
    });
  });

  test('deleting the queue while its snapshot is built aborts the job and removes everything', async () => {
    await withTempDir(async (dir) => {
      const a = await startNode('a', join(dir, 'a'), options);
      const b = await startNode('b', join(dir, 'b'), options);
      try {
        await fillQueue(a, [a, b]);
        b.replicator.follow({ queueId, name, epoch: 1, leader: a.member });
        await waitFor(() => a.replicator.snapshots.runningCount > 0, 'a snapshot to start');
        await a.replicator.deleteQueue(queueId);
        assert.equal(a.replicator.snapshots.runningCount, 0, 'the snapshot ended before the replica went');
        await assert.rejects(readdir(replicaDir(a, queueId)), { code: 'ENOENT' });
        assert.ok(!a.logs.some((l) => l.startsWith('error:')), `no errors: ${a.logs.filter((l) => l.startsWith('error:')).join('; ')}`);
      } finally {
        await a.replicator.close();
        await b.replicator.close();
      }
    });
  });

  test('the job refuses input that does not match the log', async () => {
    await withTempDir(async (dir) => {
      const a = await startNode('a', join(dir, 'a'), options);
      try {
        const { live } = await fillQueue(a, [a]);
        const replica = replicaDir(a, queueId);
        // Offsets: epochStart 0, enqueues 1..messages, then the settle and the delivered record.
        const firstLive = 1 + settledFirst;
        const segmentFiles = (await readdir(replica)).filter((n) => parseSegmentFileName(n) !== undefined).sort();
        const logEnd = status(a)?.logEnd ?? 0;
        const firstLiveId = msgIdOf(live[0] as Buffer);
        const settleOffset = 1 + messages;
        const task = (offsets: number[], msgIds: number[], offset = logEnd): SnapshotJobTask => ({
          dir: replica,
          segmentFiles,
          ownSnapshotFile: null,
          offset,
          msgIds: Float64Array.from(msgIds),
          offsets: Float64Array.from(offsets),
          delivered: Uint8Array.from(offsets.map(() => 1)),
          outPath: join(dir, 'out.wsnap'),
          chunkBytesMax: 1024,
        });
        const built = await buildSnapshot(task([firstLive], [firstLiveId]));
        assert.deepEqual([built.messages, built.records, built.chunkEnds.length], [1, 2, 1], 'an enqueue and its delivered record');
        await assert.rejects(buildSnapshot(task([1], [msgIdOf(live[0] as Buffer)])), /offset 1 is not in the log/);
        await assert.rejects(buildSnapshot(task([settleOffset], [firstLiveId])), /has kind 2, not an enqueue/);
        await assert.rejects(buildSnapshot(task([firstLive], [firstLiveId + 1])), /holds message \d+, the live index says \d+/);
        await assert.rejects(buildSnapshot(task([firstLive, firstLive], [firstLiveId, firstLiveId])), /offsets must ascend/);
        await assert.rejects(buildSnapshot(task([firstLive], [firstLiveId], firstLive)), /below the snapshot offset/);
      } finally {
        await a.replicator.close();
      }
    });
  });

  test('a replicator in its worker thread builds snapshots on its pool and exits when closed', async () => {
    await withTempDir(async (dir) => {
      const rings = { toReplicator: createRingBuffer(1 << 20), fromReplicator: createRingBuffer(1 << 20) };
      const logs: string[] = [];
      const a = await ReplicatorWorker.start(
        { nodeName: 'a', dataDir: join(dir, 'a'), secret: 'test-secret', fsync: { mode: 'always' }, segmentBytes: 4096, bindHost: '127.0.0.1', replPort: 0, batchBytesMax: 4096 },
        [rings],
        (level, message) => logs.push(`${level}: ${message}`),
      );
      const b = await startNode('b', join(dir, 'b'), { segmentBytes: 4096 });
      const toReplicator = new RingWriter(rings.toReplicator, 'shard0→replicator');
      const fromReplicator = new RingReader(rings.fromReplicator, 'replicator→shard0');
      fromReplicator.start(() => undefined);
      let closed = false;
      try {
        const aMember = { node: 'a', repl: `127.0.0.1:${a.port}` };
        await a.lead({ queueId, name, epoch: 1, type: 'mirrored', members: [aMember, b.member], isr: ['a'], minInsync: 1 }, 0);
        const append = (kind: number, payload: Buffer): void => {
          const head = Buffer.allocUnsafe(5);
          head.writeUInt32LE(queueId, 0);
          head[4] = kind;
          toReplicator.write2(ToReplicator.append, head, payload);
        };
        const payloads = Array.from({ length: 300 }, (_, i) => enqueuePayload(queueId, `via ring ${i} `.padEnd(120, '.')));
        for (const p of payloads) append(LogKind.enqueue, p);
        append(LogKind.settle, settlePayload(queueId, payloads.slice(0, 200).map(msgIdOf)));
        toReplicator.flush();
        await waitFor(async () => ((await a.status())[0]?.logStart ?? 0) > 0, 'a to release settled segments');
        b.replicator.follow({ queueId, name, epoch: 1, leader: aMember });
        await waitFor(() => logs.some((l) => /sent b a snapshot of 100 live message\(s\).*built by a snapshot job/.test(l)), 'the worker to send a snapshot built by its job');
        await waitFor(() => status(b)?.liveMessages === 100, 'b to install it');
        fromReplicator.stop();
        toReplicator.close();
        // Resolves only once the worker thread exited: the pool's thread must not keep it alive.
        await a.close();
        closed = true;
      } finally {
        if (!closed) {
          fromReplicator.stop();
          toReplicator.close();
          await a.close();
        }
        await b.replicator.close();
      }
    });
  });
});
