/**
 * The replica poll's fence, in process over real TCP: a replica that answered a poll at
 * placement epoch e takes and acks nothing more from a leader of epoch <= e, so a live old
 * leader that keeps publishing while a failover is decided cannot commit past the answers —
 * the race in which B answers 5, C answers 6 and is chosen, and the old leader A then commits
 * 7 with B's ack, which C (the new leader) never had.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { chooseLeader } from '../../src/cluster/controller.js';
import { pollFenceMs } from '../../src/cluster/replica-poll.js';
import { RECORD_BODY_BYTES_OFFSET, RECORD_CHECKED_OFFSET } from '../../src/store/record-layout.js';
import { LogKind, enqueuePayload, framedRecords, replicaDir, waitFor, withNodes } from './replication-kit.js';
import type { TestNode } from './replication-kit.js';
import type { LeadRequest, PlacementUpdate, ReplicatedQueueType } from '../../src/replication/types.js';

const queueId = 11;
const name = '/orders';

function leadRequest(leader: TestNode, members: TestNode[], epoch: number, type: ReplicatedQueueType): LeadRequest {
  return { queueId, name, epoch, type, members: members.map((m) => m.member), isr: members.map((m) => m.name), minInsync: 1 };
}

function placement(leader: TestNode, members: TestNode[], epoch: number): PlacementUpdate {
  return { epoch, members: members.map((m) => m.member), isr: members.map((m) => m.name), minInsync: 1, leader: leader.member };
}

function flushed(node: TestNode): number {
  return node.replicator.status().find((s) => s.queueId === queueId)?.flushedOffset ?? -2;
}

function logEnd(node: TestNode): number {
  return node.replicator.replicaState(queueId)?.logEnd ?? -1;
}

function ackedBy(leader: TestNode, follower: string): number {
  return leader.replicator.status().find((s) => s.queueId === queueId)?.followers.find((f) => f.node === follower)?.ackedOffset ?? -2;
}

function saidFenced(node: TestNode, epoch: number): boolean {
  return node.logs.some((l) => l.includes(`answered a replica poll at epoch ${epoch}`));
}

function publish(leader: TestNode, body: string): void {
  leader.replicator.append(queueId, LogKind.enqueue, enqueuePayload(queueId, body));
}

/** The first `count` framed records of a node's replica log. */
async function prefix(node: TestNode, count: number): Promise<Buffer> {
  const all = await framedRecords(replicaDir(node, queueId));
  assert.ok(all.count >= count, `${node.name} holds ${all.count} records, fewer than ${count}`);
  let position = 0;
  for (let i = 0; i < count; i++) position += RECORD_CHECKED_OFFSET + all.bytes.readUInt32LE(position + RECORD_BODY_BYTES_OFFSET);
  return all.bytes.subarray(0, position);
}

describe('replica poll fence', () => {
  test('quorum: a live old leader keeps publishing during a poll; the chosen leader holds every record it committed', async () => {
    await withNodes(['a', 'b', 'c'], async (all) => {
      const [a, b, c] = all;
      await a.replicator.lead(leadRequest(a, all, 1, 'quorum'));
      b.replicator.follow({ queueId, name, epoch: 1, leader: a.member });
      c.replicator.follow({ queueId, name, epoch: 1, leader: a.member });
      for (let i = 1; i <= 5; i++) publish(a, `before the poll ${i}`);
      await waitFor(() => a.sink.committed(queueId) === 5 && ackedBy(a, 'b') === 5 && ackedBy(a, 'c') === 5, 'offsets 1..5 on every replica, acked');

      // The controller polls b and c at epoch 1 (a is suspected, but alive). b answers first.
      const fromB = await b.replicator.answerPoll(queueId, 1, pollFenceMs);
      assert.deepEqual(fromB, { epoch: 1, logEnd: 6 });
      assert.ok(saidFenced(b, 1), 'b says it fenced');

      // a goes on publishing: c takes offset 6 and a commits it with c; b takes nothing more.
      publish(a, 'between the answers');
      await waitFor(() => flushed(c) === 6 && a.sink.committed(queueId) === 6, 'c to hold offset 6 and a to commit it');
      assert.equal(logEnd(b), 6, 'b took nothing after its answer');
      assert.equal(ackedBy(a, 'b'), 5, 'nor acked anything');

      const fromC = await c.replicator.answerPoll(queueId, 1, pollFenceMs);
      assert.deepEqual(fromC, { epoch: 1, logEnd: 7 });
      const spec = { type: 'quorum' as const, leader: 'a', members: ['a', 'b', 'c'], isr: ['a', 'b', 'c'], epoch: 1, minInsync: 2 };
      const choice = chooseLeader(spec, ['b', 'c'], [
        { node: 'b', ...fromB, offset: fromB.logEnd },
        { node: 'c', ...fromC, offset: fromC.logEnd },
      ]);
      assert.equal(choice?.node, 'c', 'the longer log wins');

      // c learns it is the leader of epoch 2 (lead() comes next); a, alive, still leads epoch 1
      // and publishes offset 7. Without the fence b would take it and ack it, and a would
      // commit 7 by the majority {a, b} — a record c never had.
      c.replicator.updatePlacement(queueId, placement(c, all, 2));
      publish(a, 'after the choice');
      await waitFor(() => a.sink.committed(queueId) >= 7 || (saidFenced(b, 1) && flushed(a) === 7), 'a to hold offset 7 (and commit it, were b unfenced)');
      a.replicator.updatePlacement(queueId, placement(c, all, 2)); // deposed
      const committedByA = a.sink.committed(queueId);

      const { nextOffset } = await c.replicator.lead(leadRequest(c, all, 2, 'quorum'));
      const epochStart = nextOffset - 1;
      assert.equal(epochStart, 7, "c's log continues after its offset 6");
      assert.ok(committedByA < epochStart, `a committed up to ${committedByA}, c's log ends at ${epochStart - 1}: a confirmed message was lost`);
      assert.ok((await prefix(c, committedByA + 1)).equals(await prefix(a, committedByA + 1)), 'c holds every record a committed, byte for byte');

      // b learns of epoch 2: its fence lifts and it follows c; a follows c and drops its offset 7.
      b.replicator.updatePlacement(queueId, placement(c, all, 2));
      a.replicator.follow({ queueId, name, epoch: 2, leader: c.member });
      publish(c, 'from the new leader');
      await waitFor(() => c.sink.committed(queueId) === 8 && flushed(b) === 8 && flushed(a) === 8, 'everyone to hold the new leader epoch');
      const expected = await framedRecords(replicaDir(c, queueId));
      for (const node of [a, b]) assert.ok((await framedRecords(replicaDir(node, queueId))).bytes.equals(expected.bytes), `${node.name}'s log equals the new leader's`);
      assert.ok(b.logs.some((l) => l.includes('poll fence at epoch 1 lifts (placement epoch 2 is known)')), 'b lifted its fence on the newer placement, not on time');
    });
  });

  test("mirrored: an in-sync replica that answered holds the leader's commit back; the fence lifts on time", async () => {
    await withNodes(['a', 'b', 'c'], async (all) => {
      const [a, b, c] = all;
      await a.replicator.lead(leadRequest(a, all, 1, 'mirrored'));
      b.replicator.follow({ queueId, name, epoch: 1, leader: a.member });
      c.replicator.follow({ queueId, name, epoch: 1, leader: a.member });
      publish(a, 'one');
      await waitFor(() => a.sink.committed(queueId) === 1, 'offset 1 committed by every in-sync replica');

      // A short fence, so the test sees it lift (the controller's poll came to nothing), yet
      // long enough to hold while c acks the next record.
      const fenceMs = 1_500;
      assert.deepEqual(await b.replicator.answerPoll(queueId, 1, fenceMs), { epoch: 1, logEnd: 2 });
      publish(a, 'two');
      await waitFor(() => ackedBy(a, 'c') === 2, 'c to ack offset 2');
      assert.equal(a.sink.committed(queueId), 1, 'a mirrored commit needs b, which answered the poll');
      assert.equal(logEnd(b), 2);

      await waitFor(() => a.sink.committed(queueId) === 2 && flushed(b) === 2, 'b to follow again once its fence ran out, and a to commit', 5_000);
      assert.ok(b.logs.some((l) => l.includes('poll fence at epoch 1 lifts (its time ran out)')));
    });
  });

  test('a leader that answers a poll as a candidate keeps leading; an answer at an older epoch fences nothing', async () => {
    await withNodes(['a', 'b'], async (all) => {
      const [a, b] = all;
      await a.replicator.lead(leadRequest(a, all, 2, 'quorum'));
      b.replicator.follow({ queueId, name, epoch: 2, leader: a.member });
      publish(a, 'one');
      await waitFor(() => a.sink.committed(queueId) === 1, 'offset 1 committed');

      assert.deepEqual(await a.replicator.answerPoll(queueId, 2, pollFenceMs), { epoch: 2, logEnd: 2 });
      assert.deepEqual(await b.replicator.answerPoll(queueId, 1, pollFenceMs), { epoch: 2, logEnd: 2 }, 'a question about epoch 1 is stale for b, which follows epoch 2');
      publish(a, 'two');
      await waitFor(() => a.sink.committed(queueId) === 2 && flushed(b) === 2, 'a to go on committing with b');
      assert.ok(!saidFenced(a, 2) && !saidFenced(b, 1), 'nobody fenced');
      assert.equal(await b.replicator.answerPoll(queueId + 1, 1, pollFenceMs), undefined, 'no replica of that queue here: no answer');
    });
  });
});
