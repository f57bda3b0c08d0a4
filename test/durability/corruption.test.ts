/**
 * Damaged segment files. A bad record in the middle of a segment that is not the last one:
 * the node refuses to start, and says which file, which byte, and that --repair exists; with
 * --repair it starts with exactly the messages logged before the bad record, and the damaged
 * rest is kept aside as *.corrupt. A bad record at the very end of the last segment is a torn
 * write: the node cuts it, says so, and starts with everything before it.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { connect, drainQueue, enqueueKind, makeDataDir, recordsOf, removeDataDir, segmentFiles, seqOf, shardDir, shardOfQueue, type RecordAt } from './durability-kit.js';

const queue = 'corrupt-q';
/** The smallest segment the node accepts (--segment-bytes minimum). */
const segmentBytes = 1024 * 1024;
const smallSegments = ['--segment-bytes', String(segmentBytes)];

/** Flips a few bytes in the middle of a record's payload: its CRC no longer matches. */
function damagePayload(path: string, r: RecordAt): void {
  const buf = readFileSync(path);
  const at = r.payloadPosition + Math.floor(r.payloadBytes / 2);
  for (let i = 0; i < 4; i++) buf[at + i] = (buf[at + i] as number) ^ 0xff;
  writeFileSync(path, buf);
}

async function publishSeqs(url: string, from: number, count: number, bodyBytes: number): Promise<void> {
  const conn = await connect(url);
  const ch = await conn.createConfirmChannel();
  await ch.assertQueue(queue, { durable: true });
  for (let seq = from; seq < from + count; seq++) ch.publish('', queue, Buffer.from(`${seq} `.padEnd(bodyBytes, 'b')), { persistent: true });
  await ch.waitForConfirms();
  await conn.close();
}

async function drainSeqs(url: string): Promise<number[]> {
  const conn = await connect(url);
  const ch = await conn.createChannel();
  const seqs = (await drainQueue(ch, queue, { ack: false })).map(seqOf);
  await conn.close();
  return seqs;
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

describe('corrupt segments', () => {
  test('damage inside an older segment: refused with file, byte and --repair; --repair keeps what came before', async () => {
    const dataDir = makeDataDir();
    let broker: TestBroker | undefined;
    try {
      broker = await startBroker({ dataDir, args: smallSegments });
      // ~8 KiB a record, ~127 records a segment: 400 messages make 4 segments.
      await publishSeqs(broker.url, 0, 400, 8 * 1024);
      assert.equal(await broker.stop(), 0);

      const shard = shardOfQueue(dataDir, '/', queue);
      const dir = shardDir(dataDir, shard);
      const segments = segmentFiles(dataDir, shard);
      assert.ok(segments.length >= 3, `expected several segments, got ${segments.join(', ')}`);
      const victim = segments[1] as string;
      const firstRecords = recordsOf(join(dir, segments[0] as string));
      const victimRecords = recordsOf(join(dir, victim));
      const badIndex = Math.floor(victimRecords.length / 2);
      const bad = victimRecords[badIndex] as RecordAt;
      // The run's 'open' record, then one enqueue record a message.
      const before = [...firstRecords, ...victimRecords.slice(0, badIndex)].filter((r) => r.kind === enqueueKind);
      assert.equal(before.length, firstRecords.length - 1 + badIndex, 'only the open record and enqueue records were logged');
      assert.equal(bad.kind, enqueueKind);
      damagePayload(join(dir, victim), bad);

      // Refused: the message names the file and the byte, and the way out.
      broker = undefined;
      const refused = await startBroker({ dataDir, args: smallSegments }).then(
        async (b) => {
          await b.kill();
          return undefined;
        },
        (err: unknown) => (err instanceof Error ? err.message : String(err)),
      );
      assert.ok(refused !== undefined, 'the node started on a corrupt segment');
      assert.match(refused, /exited with [1-9]/);
      assert.ok(refused.includes(victim), `the error names ${victim}:\n${refused}`);
      assert.ok(refused.includes(`at byte ${bad.position}`), `the error names byte ${bad.position}:\n${refused}`);
      assert.ok(refused.includes('--repair'), `the error mentions --repair:\n${refused}`);

      // --repair: exactly the messages logged before the bad record.
      broker = await startBroker({ dataDir, args: [...smallSegments, '--repair'] });
      assert.match(broker.log(), new RegExp(`repair: ${victim.replace('.', '\\.')} .* damaged at byte ${bad.position}`));
      assert.deepEqual(await drainSeqs(broker.url), range(0, before.length));
      assert.ok(existsSync(join(dir, `${victim}.from-${bad.position}.corrupt`)), 'the damaged rest is kept aside');
      for (const later of segments.slice(2)) assert.ok(existsSync(join(dir, `${later}.corrupt`)), `${later} is kept aside`);

      // The repaired log goes on: new messages are logged after the kept ones, and a plain
      // restart (no --repair) reads it all.
      await publishSeqs(broker.url, 1000, 20, 8 * 1024);
      assert.equal(await broker.stop(), 0);
      broker = await startBroker({ dataDir, args: smallSegments });
      assert.deepEqual(await drainSeqs(broker.url), [...range(0, before.length), ...range(1000, 1020)]);
    } finally {
      await broker?.stop();
      removeDataDir(dataDir);
    }
  });

  test('damage in the tail record of the last segment: cut as a torn write, the rest intact', async () => {
    const dataDir = makeDataDir();
    let broker: TestBroker | undefined;
    try {
      broker = await startBroker({ dataDir, args: smallSegments });
      await publishSeqs(broker.url, 0, 300, 8 * 1024);
      // Killed, not stopped: a clean stop would log its 'close' record after the last message.
      await broker.kill();

      const shard = shardOfQueue(dataDir, '/', queue);
      const dir = shardDir(dataDir, shard);
      const segments = segmentFiles(dataDir, shard);
      const last = segments[segments.length - 1] as string;
      const records = recordsOf(join(dir, last));
      const tail = records[records.length - 1] as RecordAt;
      assert.equal(tail.kind, enqueueKind, 'the last record is the last message');
      damagePayload(join(dir, last), tail);

      broker = await startBroker({ dataDir, args: smallSegments });
      assert.match(broker.log(), new RegExp(`truncated the torn tail of ${last.replace('.', '\\.')} .* at byte ${tail.position}`));
      assert.deepEqual(await drainSeqs(broker.url), range(0, 299));
    } finally {
      await broker?.stop();
      removeDataDir(dataDir);
    }
  });
});
