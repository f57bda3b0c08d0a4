/**
 * A mirrored queue's follower rejoins the ISR only holding everything committed, and from the
 * leader's proposal on, commits wait for it too (Kafka's "maximal ISR", KIP-497): otherwise the
 * placement that grants the proposal could name an in-sync replica lacking committed records,
 * and a failover to it would lose them. In process over real TCP.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LogKind, enqueuePayload, waitFor, withNodes } from './replication-kit.js';
import type { TestNode } from './replication-kit.js';

const queueId = 21;
const name = '/mirrored';

function ackedBy(leader: TestNode, follower: string): number {
  return leader.replicator.status().find((s) => s.queueId === queueId)?.followers.find((f) => f.node === follower)?.ackedOffset ?? -2;
}

function publish(leader: TestNode, count: number, tag: string): void {
  for (let i = 0; i < count; i++) leader.replicator.append(queueId, LogKind.enqueue, enqueuePayload(queueId, `${tag} ${i} ${'x'.repeat(200)}`));
}

describe('ISR growth of a mirrored queue', () => {
  test('a follower is proposed in only holding the commit watermark, and commits wait for it until the placement grants it', async () => {
    await withNodes(['a', 'b', 'c'], async (all) => {
      const [a, b, c] = all;
      const proposals: { isr: string[]; committed: number; ackedByC: number }[] = [];
      a.replicator.onIsrChange = (id, isr) => {
        if (id === queueId) proposals.push({ isr, committed: a.sink.committed(queueId), ackedByC: ackedBy(a, 'c') });
      };
      await a.replicator.lead({ queueId, name, epoch: 1, type: 'mirrored', members: all.map((n) => n.member), isr: ['a', 'b'], minInsync: 1 });
      b.replicator.follow({ queueId, name, epoch: 1, leader: a.member });
      publish(a, 2000, 'before c');
      await waitFor(() => a.sink.committed(queueId) === 2000, 'offsets up to 2000 committed by a and b');

      // c starts from nothing and catches up while publishing goes on.
      c.replicator.follow({ queueId, name, epoch: 1, leader: a.member });
      publish(a, 500, 'while c catches up');
      await waitFor(() => proposals.some((p) => p.isr.includes('c')), 'a proposes c into the ISR');
      const proposal = proposals.find((p) => p.isr.includes('c'));
      assert.ok(proposal !== undefined);
      assert.ok(proposal.ackedByC >= proposal.committed, `c was proposed holding ${proposal.ackedByC}, below the commit watermark ${proposal.committed}`);

      // The proposal is not granted yet. c stops acking (a poll fence for epoch 1 does that);
      // b keeps acking: the commit must not pass what c holds.
      await c.replicator.answerPoll(queueId, 1, 60_000);
      const heldByC = ackedBy(a, 'c');
      publish(a, 50, 'while c is fenced');
      const end = a.replicator.replicaState(queueId)?.logEnd ?? -1;
      await waitFor(() => ackedBy(a, 'b') === end - 1, 'b acks everything');
      assert.ok(a.sink.committed(queueId) <= heldByC, `committed ${a.sink.committed(queueId)} past ${heldByC}, what the joining c holds`);

      // Granted (c in the ISR), then c is back at a newer epoch: commits go on with it.
      await a.replicator.updatePlacement(queueId, { epoch: 2, members: all.map((n) => n.member), isr: ['a', 'b', 'c'], minInsync: 1, leader: a.member });
      await b.replicator.updatePlacement(queueId, { epoch: 2, members: all.map((n) => n.member), isr: ['a', 'b', 'c'], minInsync: 1, leader: a.member });
      await c.replicator.updatePlacement(queueId, { epoch: 2, members: all.map((n) => n.member), isr: ['a', 'b', 'c'], minInsync: 1, leader: a.member });
      await waitFor(() => a.sink.committed(queueId) === end - 1, 'everything committed once c acks again');
    });
  });
});
