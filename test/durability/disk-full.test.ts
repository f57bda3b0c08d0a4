/**
 * Disk full, for real: the data directory is a small tmpfs (this needs root; the test is
 * skipped, saying so, where mount is not allowed), the node's first segment and its spare are
 * preallocated, and a filler file then takes every free byte. Publishing on goes until the
 * log must create a segment file it has no room for. Then:
 *  - publishers hear about it: nacks for what could not be logged, and connection.blocked;
 *  - the node's log says why (ENOSPC);
 *  - consumers keep receiving, and every confirmed message reaches them, in order;
 *  - once space comes back, publishers are unblocked and confirms flow again;
 *  - after a restart, nothing that was confirmed and not acked is lost.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { ConsumeMessage } from 'amqplib';
import { startBroker, waitFor, type TestBroker } from '../helpers/broker.js';
import { Inbox, within } from '../helpers/amqp-expect.js';
import { SPARE_SEGMENT_NAME } from '../../src/store/record-layout.js';
import { connect, drainQueue, makeDataDir, publishConfirmed, removeDataDir, seqOf, shardDir } from './durability-kit.js';

const queue = 'full-q';
const segmentBytes = 1024 * 1024;
/** Room for the definitions file, the first segment and its spare, and a little slack the filler takes. */
const tmpfsBytes = 4 * 1024 * 1024;
/** 16 KiB bodies: about 63 a segment, so the third segment is needed after ~130 messages. */
const bodyBytes = 16 * 1024;
/** Publishes in flight at once (confirm window). */
const publishWindow = 16;
/** Upper bound on publishes while waiting for the failure: 4x what the tmpfs could ever hold. */
const publishMax = Math.ceil((4 * tmpfsBytes) / bodyBytes);
/**
 * The disk alarm off (--disk-free-limit 0): on a 4 MiB tmpfs its default 50 MB limit would block
 * publishers from the start, before a write could ever fail; this test is about the write that
 * fails (test/features/resource-alarms.test.ts covers the alarm).
 */
const args = ['--shards', '1', '--segment-bytes', String(segmentBytes), '--disk-free-limit', '0'];

function tryMount(dir: string): string | undefined {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${tmpfsBytes}`, 'tmpfs', dir], { stdio: 'pipe' });
    return undefined;
  } catch (err: unknown) {
    return err instanceof Error ? err.message : String(err);
  }
}

function unmount(dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'pipe' });
  } catch {
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
  }
}

/** Writes zeros until the file system says ENOSPC; returns the bytes written. */
function fillUp(path: string): number {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(4096);
  let written = 0;
  try {
    for (;;) written += writeSync(fd, chunk);
  } catch (err: unknown) {
    if ((err as { code?: unknown }).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
  return written;
}

const body = (seq: number): Buffer => Buffer.from(`${seq} `.padEnd(bodyBytes, 'f'));

describe('disk full (tmpfs)', () => {
  const dataDir = makeDataDir();
  const mountError = tryMount(dataDir);
  if (mountError !== undefined) removeDataDir(dataDir);

  // CI and the developers' machines run as root, so a small tmpfs can always be mounted:
  // if it cannot, that is a failure to report, not a reason to skip the disk-full check.
  test('nacks and connection.blocked, consumers drain, nothing confirmed is lost, and it recovers', async (t) => {
    assert.equal(mountError, undefined, `cannot mount a tmpfs for the disk-full test: ${mountError ?? ''}`);
    let broker: TestBroker | undefined;
    const filler = join(dataDir, 'filler');
    try {
      broker = await startBroker({ dataDir, args });
      const pubConn = await connect(broker.url);
      const blocked: string[] = [];
      let unblocked = 0;
      pubConn.on('blocked', (reason: string) => blocked.push(reason));
      pubConn.on('unblocked', () => unblocked++);
      const pub = await pubConn.createConfirmChannel();
      // Declared while there is room: a durable declare rewrites the definitions file.
      await pub.assertQueue(queue, { durable: true });

      const spare = join(shardDir(dataDir, 0), SPARE_SEGMENT_NAME);
      await waitFor(() => existsSync(spare) && statSync(spare).size === segmentBytes, 'the spare segment to be preallocated');
      assert.ok(fillUp(filler) > 0, 'the filler took the free space');

      // ---- publish until the log cannot take more ---------------------------------------------
      const confirmed: number[] = [];
      const nacked: number[] = [];
      let nextSeq = 0;
      await within(
        (async () => {
          while (nacked.length === 0 && blocked.length === 0) {
            assert.ok(nextSeq < publishMax, `${publishMax} publishes of ${bodyBytes} bytes on a ${tmpfsBytes}-byte tmpfs and no failure`);
            const batch = Array.from({ length: publishWindow }, () => {
              const seq = nextSeq++;
              return publishConfirmed(pub, '', queue, body(seq), { persistent: true }).then(
                () => confirmed.push(seq),
                () => nacked.push(seq),
              );
            });
            await Promise.all(batch);
          }
        })(),
        'a nack or connection.blocked',
        30_000,
      );
      await waitFor(() => blocked.length > 0, 'connection.blocked', 5_000);
      await waitFor(() => /ENOSPC/.test(broker?.log() ?? ''), 'the log to say ENOSPC', 5_000);
      assert.match(broker.log(), /blocking publishers/);
      assert.ok(confirmed.length > 0, 'some publishes were confirmed before the disk filled');

      // ---- consumers keep draining: every confirmed message arrives, in order -------------------
      // Even sequence numbers are left unacked: they must survive the restart at the end.
      const subConn = await connect(broker.url);
      const sub = await subConn.createChannel();
      await sub.prefetch(0);
      const inbox = new Inbox<ConsumeMessage>();
      await sub.consume(queue, (m) => {
        if (m === null) return;
        inbox.push(m);
        if (seqOf(m) % 2 === 1) sub.ack(m);
      });
      const lastConfirmed = Math.max(...confirmed);
      await waitFor(() => inbox.items.some((m) => seqOf(m) === lastConfirmed), 'the last confirmed message to reach the consumer', 10_000);
      const seen = inbox.items.map(seqOf);
      for (let i = 1; i < seen.length; i++) assert.ok((seen[i] as number) > (seen[i - 1] as number), `delivery order: ${seen[i]} after ${seen[i - 1]}`);
      const seenSet = new Set(seen);
      assert.deepEqual(confirmed.filter((s) => !seenSet.has(s)), [], 'confirmed messages the consumer never got');

      // ---- space comes back: unblocked, confirms flow again ---------------------------------------
      unlinkSync(filler);
      await waitFor(() => unblocked > 0, 'connection.unblocked once space is back', 10_000);
      const after: number[] = [];
      for (let i = 0; i < 10; i++) after.push(nextSeq++);
      await Promise.all(after.map((seq) => publishConfirmed(pub, '', queue, body(seq), { persistent: true })));
      await waitFor(() => inbox.items.some((m) => seqOf(m) === after[after.length - 1]), 'the messages published after the recovery', 10_000);
      await sub.checkQueue(queue); // the acks have reached the shard
      await pubConn.close();
      await subConn.close(); // the even ones go back to the queue
      assert.equal(await broker.stop(), 0, broker.log());

      // ---- restart: the unacked confirmed messages are all there ---------------------------------
      broker = await startBroker({ dataDir, args });
      const conn = await connect(broker.url);
      const back = (await drainQueue(await conn.createChannel(), queue)).map(seqOf);
      await conn.close();
      for (let i = 1; i < back.length; i++) assert.ok((back[i] as number) > (back[i - 1] as number), `order after the restart: ${back[i]} after ${back[i - 1]}`);
      assert.ok(back.every((s) => s % 2 === 0 && s < nextSeq), `only unacked messages come back: ${back.join(' ')}`);
      const backSet = new Set(back);
      const mustBeBack = [...confirmed, ...after].filter((s) => s % 2 === 0);
      assert.deepEqual(mustBeBack.filter((s) => !backSet.has(s)), [], 'confirmed, unacked, and lost');
      t.diagnostic(`published ${nextSeq}, confirmed ${confirmed.length + after.length}, nacked ${nacked.length}, blocked: ${blocked.join('; ')}; ${back.length} back after the restart`);
    } finally {
      await broker?.stop();
      if (existsSync(filler)) unlinkSync(filler);
      if (mountError === undefined) {
        unmount(dataDir);
        removeDataDir(dataDir);
      }
    }
  });
});
