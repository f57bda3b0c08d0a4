/**
 * Leader and followers in one process over real TCP on 127.0.0.1: streaming byte for byte,
 * the quorum and mirrored commit rules, restart catch-up, leader-epoch truncation, promotion
 * imports, and a peer without the cluster secret.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { LogKind, enqueuePayload, framedRecords, msgIdOf, replicaDir, settlePayload, startNode, waitFor, withTempDir } from './replication-kit.js';
import type { TestNode } from './replication-kit.js';
import type { LeadRequest } from '../../src/replication/types.js';

const queueId = 7;

function leadRequest(leader: TestNode, members: TestNode[], epoch: number, extra: Partial<LeadRequest> = {}): LeadRequest {
  return {
    queueId,
    name: '/orders',
    epoch,
    type: 'quorum',
    members: members.map((m) => m.member),
    isr: members.map((m) => m.name),
    minInsync: 1,
    ...extra,
  };
}

function logEnd(node: TestNode): number {
  return node.replicator.replicaState(queueId)?.logEnd ?? -1;
}

function flushed(node: TestNode): number {
  return node.replicator.status().find((s) => s.queueId === queueId)?.flushedOffset ?? -2;
}

async function closeAll(nodes: TestNode[]): Promise<void> {
  await Promise.all(nodes.map((n) => n.replicator.close()));
}

describe('replicator', () => {
  test('records reach both followers byte for byte; the quorum watermark waits for a majority', async () => {
    await withTempDir(async (dir) => {
      const a = await startNode('a', join(dir, 'a'));
      const b = await startNode('b', join(dir, 'b'));
      const c = await startNode('c', join(dir, 'c'));
      try {
        const lead = await a.replicator.lead(leadRequest(a, [a, b, c], 1));
        assert.equal(lead.nextOffset, 1, 'epochStart took offset 0');
        assert.deepEqual(a.sink.ready, [{ queueId, nextOffset: 1 }]);
        const ids: number[] = [];
        for (let i = 0; i < 20; i++) {
          const payload = enqueuePayload(queueId, `message ${i}`);
          ids.push(msgIdOf(payload));
          a.replicator.append(queueId, LogKind.enqueue, payload);
        }
        // Only the leader holds the records: 1 of 3 is no majority, whatever the leader's fsync.
        await waitFor(() => flushed(a) === 20, 'the leader to fsync its records');
        assert.equal(a.sink.committed(queueId), -1, 'committed before any follower held anything');

        b.replicator.follow({ queueId, name: '/orders', epoch: 1, leader: a.member });
        await waitFor(() => a.sink.committed(queueId) === 20, 'the watermark to reach 20 with b');
        assert.ok(flushed(b) >= 20, 'b holds what was committed');
        c.replicator.follow({ queueId, name: '/orders', epoch: 1, leader: a.member });
        a.replicator.append(queueId, LogKind.settle, settlePayload(queueId, ids.slice(0, 5)));
        await waitFor(() => a.sink.committed(queueId) === 21 && flushed(c) === 21 && flushed(b) === 21, 'everyone to hold 21 records');

        const acked = (): string => JSON.stringify(a.replicator.status()[0]?.followers.map((f) => [f.node, f.ackedOffset]).sort());
        await waitFor(() => acked() === '[["b",21],["c",21]]', 'the leader to see both acks of 21');
        const leaderStatus = a.replicator.status()[0];
        assert.equal(leaderStatus?.role, 'leader');
        assert.equal(leaderStatus?.liveMessages, 15);
        assert.deepEqual(leaderStatus?.followers.map((f) => [f.node, f.ackedOffset]).sort(), [['b', 21], ['c', 21]]);
        const followerStatus = b.replicator.status()[0];
        assert.equal(followerStatus?.role, 'follower');
        assert.equal(followerStatus?.liveMessages, 15, 'the hot standby applied the settle');

        const expected = await framedRecords(replicaDir(a, queueId));
        assert.equal(expected.count, 22);
        for (const node of [b, c]) {
          const got = await framedRecords(replicaDir(node, queueId));
          assert.ok(got.bytes.equals(expected.bytes), `${node.name}'s log equals the leader's byte for byte`);
        }
      } finally {
        await closeAll([a, b, c]);
      }
    });
  });

  test('mirrored: every ISR member must hold a record, and only while |isr| >= min-insync', async () => {
    await withTempDir(async (dir) => {
      const a = await startNode('a', join(dir, 'a'));
      const b = await startNode('b', join(dir, 'b'));
      const c = await startNode('c', join(dir, 'c'));
      try {
        const members = [a.member, b.member, c.member];
        await a.replicator.lead(leadRequest(a, [a, b, c], 1, { type: 'mirrored', minInsync: 2 }));
        b.replicator.follow({ queueId, name: '/orders', epoch: 1, leader: a.member });
        a.replicator.append(queueId, LogKind.enqueue, enqueuePayload(queueId, 'one'));
        await waitFor(() => flushed(b) === 1 && flushed(a) === 1, 'a and b to hold offset 1');
        // c is in the ISR and holds nothing: a majority would commit, the mirrored rule must not.
        assert.equal(a.sink.committed(queueId), -1);

        a.replicator.updatePlacement(queueId, { epoch: 1, members, isr: ['a', 'b'], minInsync: 2, leader: a.member });
        await waitFor(() => a.sink.committed(queueId) === 1, 'commit once c left the ISR');

        a.replicator.updatePlacement(queueId, { epoch: 1, members, isr: ['a'], minInsync: 2, leader: a.member });
        a.replicator.append(queueId, LogKind.enqueue, enqueuePayload(queueId, 'two'));
        await waitFor(() => flushed(b) === 2 && flushed(a) === 2, 'a and b to hold offset 2');
        assert.equal(a.sink.committed(queueId), 1, 'no progress with |isr| 1 < min-insync 2');

        a.replicator.updatePlacement(queueId, { epoch: 1, members, isr: ['a', 'b'], minInsync: 2, leader: a.member });
        await waitFor(() => a.sink.committed(queueId) === 2, 'commit once the ISR is big enough again');
      } finally {
        await closeAll([a, b, c]);
      }
    });
  });

  test('a lagging follower is proposed out of the ISR and back in when it catches up', async () => {
    await withTempDir(async (dir) => {
      const a = await startNode('a', join(dir, 'a'), { isrLagMs: 200, isrCatchUpRecords: 4 });
      const b = await startNode('b', join(dir, 'b'));
      try {
        const proposals: string[][] = [];
        a.replicator.onIsrChange = (_queueId, isr) => proposals.push(isr);
        const members = [a.member, b.member];
        await a.replicator.lead(leadRequest(a, [a, b], 1, { type: 'mirrored' }));
        a.replicator.append(queueId, LogKind.enqueue, enqueuePayload(queueId, 'x'));
        await waitFor(() => proposals.some((isr) => isr.join() === 'a'), 'b (never connected) to be proposed out');
        a.replicator.updatePlacement(queueId, { epoch: 1, members, isr: ['a'], minInsync: 1, leader: a.member });
        b.replicator.follow({ queueId, name: '/orders', epoch: 1, leader: a.member });
        await waitFor(() => proposals.some((isr) => isr.join() === 'a,b'), 'b to be proposed back in');
      } finally {
        await closeAll([a, b]);
      }
    });
  });

  test('a restarted follower catches up from its own log end', async () => {
    await withTempDir(async (dir) => {
      const a = await startNode('a', join(dir, 'a'));
      let b = await startNode('b', join(dir, 'b'));
      try {
        await a.replicator.lead(leadRequest(a, [a, b], 1));
        b.replicator.follow({ queueId, name: '/orders', epoch: 1, leader: a.member });
        for (let i = 0; i < 10; i++) a.replicator.append(queueId, LogKind.enqueue, enqueuePayload(queueId, `m${i}`));
        await waitFor(() => flushed(b) === 10, 'b to hold 10');
        await b.replicator.close();
        for (let i = 10; i < 30; i++) a.replicator.append(queueId, LogKind.enqueue, enqueuePayload(queueId, `m${i}`));
        await waitFor(() => flushed(a) === 30, 'a to hold 30');
        assert.equal(a.sink.committed(queueId), 10, 'without b nothing past 10 commits');

        b = await startNode('b', join(dir, 'b'));
        assert.deepEqual(b.replicator.replicaState(queueId), { epoch: 1, logEnd: 11 }, 'recovered at listen()');
        b.replicator.follow({ queueId, name: '/orders', epoch: 1, leader: a.member });
        await waitFor(() => a.sink.committed(queueId) === 30, 'b to catch up and commit 30');
        assert.ok(b.logs.some((l) => l.includes('from offset 11')), 'fetched from its log end');
        assert.ok((await framedRecords(replicaDir(b, queueId))).bytes.equals((await framedRecords(replicaDir(a, queueId))).bytes));
      } finally {
        await closeAll([a, b]);
      }
    });
  });

  test('leader-epoch rule: a deposed leader truncates its divergent tail and takes the new leader\'s log', async () => {
    await withTempDir(async (dir) => {
      let a = await startNode('a', join(dir, 'a'));
      let b = await startNode('b', join(dir, 'b'));
      try {
        await a.replicator.lead(leadRequest(a, [a, b], 1));
        b.replicator.follow({ queueId, name: '/orders', epoch: 1, leader: a.member });
        const early = [0, 1, 2, 3, 4].map((i) => enqueuePayload(queueId, `early ${i}`));
        for (const p of early) a.replicator.append(queueId, LogKind.enqueue, p);
        a.replicator.append(queueId, LogKind.delivered, settlePayload(queueId, [msgIdOf(early[0] as Buffer)]));
        await waitFor(() => flushed(b) === 6, 'b to hold 0..6');
        await b.replicator.close();
        // a's tail 7..9 reaches nobody: it is never committed, and must go.
        for (let i = 0; i < 3; i++) a.replicator.append(queueId, LogKind.enqueue, enqueuePayload(queueId, `lost ${i}`));
        await waitFor(() => flushed(a) === 9, 'a to hold its tail');
        await a.replicator.close();

        b = await startNode('b', join(dir, 'b'));
        const lead = await b.replicator.lead(leadRequest(b, [a, b], 2));
        assert.equal(lead.nextOffset, 8, 'b continues after its epochStart at 7');
        assert.deepEqual(
          b.sink.imports.map((i) => [i.offset, i.redelivered, i.payload.subarray(20).toString()]),
          early.map((p, i) => [i + 1, i === 0, p.subarray(20).toString()]),
          'the live messages in queue order, the delivered one redelivered',
        );
        b.replicator.append(queueId, LogKind.enqueue, enqueuePayload(queueId, 'epoch 2'));

        a = await startNode('a', join(dir, 'a'));
        assert.deepEqual(a.replicator.replicaState(queueId), { epoch: 1, logEnd: 10 });
        a.replicator.follow({ queueId, name: '/orders', epoch: 2, leader: b.member });
        await waitFor(() => b.sink.committed(queueId) === 8, 'a to hold b\'s log and commit 8');
        assert.ok(a.logs.some((l) => l.includes('truncating to 7')), 'a cut its tail at the start of epoch 2');
        assert.deepEqual(a.replicator.replicaState(queueId), { epoch: 2, logEnd: 9 });
        assert.ok((await framedRecords(replicaDir(a, queueId))).bytes.equals((await framedRecords(replicaDir(b, queueId))).bytes));
      } finally {
        await closeAll([a, b]);
      }
    });
  });

  test('fencing and promotion: a stopped leader confirms nothing more; its follower leads the next epoch', async () => {
    await withTempDir(async (dir) => {
      const a = await startNode('a', join(dir, 'a'));
      const b = await startNode('b', join(dir, 'b'));
      try {
        await a.replicator.lead(leadRequest(a, [a, b], 1));
        b.replicator.follow({ queueId, name: '/orders', epoch: 1, leader: a.member });
        const payloads = [0, 1, 2].map((i) => enqueuePayload(queueId, `before ${i}`));
        for (const p of payloads) a.replicator.append(queueId, LogKind.enqueue, p);
        await waitFor(() => a.sink.committed(queueId) === 3, 'commit 3');
        const stopped = a.replicator.stop(queueId);
        // Fenced synchronously: a record the shard still sends is dropped, nothing more commits.
        a.replicator.append(queueId, LogKind.enqueue, enqueuePayload(queueId, 'after stop'));
        await stopped;
        assert.equal(a.replicator.status()[0]?.role, 'idle');
        assert.ok(a.logs.some((l) => /record of kind 1 .*dropped/.test(l)), 'the late record was dropped');

        const lead = await b.replicator.lead(leadRequest(b, [a, b], 2));
        assert.equal(lead.nextOffset, 5);
        assert.deepEqual(b.sink.imports.map((i) => i.payload), payloads);
        a.replicator.follow({ queueId, name: '/orders', epoch: 2, leader: b.member });
        b.replicator.append(queueId, LogKind.enqueue, enqueuePayload(queueId, 'epoch 2'));
        await waitFor(() => b.sink.committed(queueId) === 5, 'the new leader to commit with a as follower');
        assert.equal(a.sink.committed(queueId), 3, 'the old leader never committed again');
        assert.ok((await framedRecords(replicaDir(a, queueId))).bytes.equals((await framedRecords(replicaDir(b, queueId))).bytes));
      } finally {
        await closeAll([a, b]);
      }
    });
  });

  test('lead() refuses an epoch its replica log already has', async () => {
    await withTempDir(async (dir) => {
      const a = await startNode('a', join(dir, 'a'));
      try {
        await a.replicator.lead(leadRequest(a, [a], 3, { type: 'classic' }));
        a.replicator.append(queueId, LogKind.enqueue, enqueuePayload(queueId, 'solo'));
        await waitFor(() => a.sink.committed(queueId) === 1, 'classic: the leader\'s own fsync commits');
        await a.replicator.stop(queueId);
        await assert.rejects(a.replicator.lead(leadRequest(a, [a], 3, { type: 'classic' })), /needs a newer epoch/);
      } finally {
        await a.replicator.close();
      }
    });
  });

  test('a peer without the cluster secret is refused and logged', async () => {
    await withTempDir(async (dir) => {
      const a = await startNode('a', join(dir, 'a'));
      const intruder = await startNode('x', join(dir, 'x'), { secret: 'wrong' });
      try {
        await a.replicator.lead(leadRequest(a, [a, intruder], 1));
        a.replicator.append(queueId, LogKind.enqueue, enqueuePayload(queueId, 'secret'));
        intruder.replicator.follow({ queueId, name: '/orders', epoch: 1, leader: a.member });
        await waitFor(() => a.logs.some((l) => /refused a replication link .*does not know the cluster secret/.test(l)), 'the leader to log the refusal');
        await waitFor(() => intruder.logs.some((l) => l.includes('replication link to a')), 'the intruder to log its failure');
        assert.equal(logEnd(intruder), 0, 'the intruder got nothing');
        assert.equal(a.sink.committed(queueId), -1);
      } finally {
        await closeAll([a, intruder]);
      }
    });
  });
});
