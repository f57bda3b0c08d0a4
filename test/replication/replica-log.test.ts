/** The per-queue replica log: recovery of log end, epochs and live index; truncation; reclamation; reads. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ReplicaLog } from '../../src/replication/replica-log.js';
import type { ReplicaLogOptions } from '../../src/replication/replica-log.js';
import { LogKind, enqueuePayload, framedRecords, msgIdOf, settlePayload, withTempDir } from './replication-kit.js';

const queueId = 3;

function options(lines: string[] = [], segmentBytes = 64 * 1024): ReplicaLogOptions {
  return { segmentBytes, fsync: { mode: 'always' }, log: (level, msg) => lines.push(`${level}: ${msg}`) };
}

async function liveBodies(replica: ReplicaLog): Promise<Array<[string, boolean]>> {
  const out: Array<[string, boolean]> = [];
  for await (const record of replica.liveRecords()) out.push([record.payload.subarray(20).toString(), record.delivered]);
  return out;
}

describe('replica log', () => {
  test('recovers log end, epoch history and the live index; readRange gives the bytes on disk', async () => {
    await withTempDir(async (dir) => {
      const first = await ReplicaLog.open(dir, options());
      assert.equal(first.appendEpochStart(1), 0);
      const p = ['a', 'b', 'c', 'd'].map((body) => enqueuePayload(queueId, body));
      for (const payload of p) first.append(LogKind.enqueue, payload);
      first.append(LogKind.settle, settlePayload(queueId, [msgIdOf(p[1] as Buffer)]));
      first.append(LogKind.delivered, settlePayload(queueId, [msgIdOf(p[2] as Buffer)]));
      assert.equal(first.appendEpochStart(4), 7);
      first.append(LogKind.enqueue, enqueuePayload(queueId, 'e'));
      await first.commit();
      const cached = await first.readRange(0, 1 << 20);
      await first.close();

      const second = await ReplicaLog.open(dir, options());
      assert.equal(second.nextOffset, 9);
      assert.deepEqual(second.epochs.entries, [{ epoch: 1, startOffset: 0 }, { epoch: 4, startOffset: 7 }]);
      assert.equal(second.epochEndOffset(1), 7);
      assert.equal(second.epochEndOffset(4), 9);
      assert.deepEqual(await liveBodies(second), [['a', false], ['c', true], ['d', false], ['e', false]]);
      const fromDisk = await second.readRange(0, 1 << 20);
      assert.equal(fromDisk.count, 9);
      assert.ok(fromDisk.records.equals(cached.records), 'the tail cache framed exactly what the disk holds');
      assert.ok(fromDisk.records.equals((await framedRecords(dir)).bytes));
      const part = await second.readRange(2, 60);
      assert.equal(part.count, 1, 'whole records within maxBytes, at least one');
      await second.close();
    });
  });

  test('truncateTo cuts records, epochs and live state', async () => {
    await withTempDir(async (dir) => {
      const replica = await ReplicaLog.open(dir, options());
      replica.appendEpochStart(1);
      const a = enqueuePayload(queueId, 'a');
      replica.append(LogKind.enqueue, a);
      replica.appendEpochStart(2);
      replica.append(LogKind.settle, settlePayload(queueId, [msgIdOf(a)]));
      replica.append(LogKind.enqueue, enqueuePayload(queueId, 'b'));
      await replica.commit();
      assert.equal(replica.liveCount, 1);
      await replica.truncateTo(2);
      assert.equal(replica.nextOffset, 2);
      assert.equal(replica.latestEpoch, 1);
      assert.deepEqual(await liveBodies(replica), [['a', false]], 'the settle was cut, so a is live again');
      await replica.close();
    });
  });

  test('settled segments are released; epochs that began in them survive a reopen', async () => {
    await withTempDir(async (dir) => {
      const lines: string[] = [];
      const replica = await ReplicaLog.open(dir, options(lines, 1024));
      replica.appendEpochStart(1);
      const ids: number[] = [];
      for (let i = 0; i < 60; i++) {
        const payload = enqueuePayload(queueId, `message ${i}`.padEnd(40));
        ids.push(msgIdOf(payload));
        replica.append(LogKind.enqueue, payload);
      }
      replica.appendEpochStart(2);
      replica.append(LogKind.settle, settlePayload(queueId, ids.slice(0, 50)));
      await replica.commit();
      const segmentsBefore = replica.segmentFiles.length;
      assert.equal(await replica.releaseSettled(-1, replica.nextOffset), 0, 'nothing uncommitted is released');
      const released = await replica.releaseSettled(replica.nextOffset - 1, replica.nextOffset);
      assert.ok(released > 0 && replica.segmentFiles.length === segmentsBefore - released);
      assert.ok(replica.logStart > 1 && replica.logStart <= 51, `log starts at ${replica.logStart}, at or before the oldest live message`);
      await replica.close();
      const reopened = await ReplicaLog.open(dir, options());
      assert.deepEqual(reopened.epochs.entries, [{ epoch: 1, startOffset: 0 }, { epoch: 2, startOffset: 61 }]);
      assert.equal(reopened.liveCount, 10);
      assert.equal((await liveBodies(reopened))[0]?.[0], 'message 50'.padEnd(40));
      await reopened.close();
    });
  });
});
