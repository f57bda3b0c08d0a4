/**
 * Crash (SIGKILL) at a random moment while a confirming producer and an acking consumer run
 * against one durable queue, under --fsync always; then a restart on the same directory and a
 * full drain. What must hold (promises 1, 3 and 4):
 *  - every message confirmed before the crash and not acked by the consumer is back;
 *  - nothing comes back twice, and nothing that was never published;
 *  - a message the consumer saw before the crash that comes back carries redelivered=true;
 *  - sequence numbers ascend, before the crash and among what comes back.
 * Acks the consumer sent that the broker had not logged yet may come back: that is allowed
 * (at-least-once) and counted in the test's diagnostics.
 *
 * A SIGKILL keeps the OS page cache, so this catches confirms sent before the write, not
 * confirms sent between write and fdatasync (that would need a power cut).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker, waitFor, type TestBroker } from '../helpers/broker.js';
import { within } from '../helpers/amqp-expect.js';
import { connect, drainQueue, makeDataDir, removeDataDir, seqOf } from './durability-kit.js';

const queue = 'crash-q';
/** Kill points per run of the suite (WARREN_CRASH_POINTS): traffic lasts at most killAfterMaxMs, plus two node start-ups. */
const killPoints = Number(process.env['WARREN_CRASH_POINTS'] ?? 4);
/** The kill comes this long after traffic started, at least / at most. */
const killAfterMinMs = 250;
const killAfterMaxMs = 1500;
/** Publishes awaiting their confirm: enough to keep group commits busy. */
const publishWindow = 200;
/** The consumer acks (multiple=true) every this many deliveries, so some are always unacked. */
const ackEvery = 10;
const prefetch = 100;
const bodyPadding = ' '.padEnd(120, 'p');

/** mulberry32: a small seeded generator, so a failing kill point can be replayed from its seed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface RunResult {
  published: number;
  confirmed: number;
  seenBefore: number;
  ackedBefore: number;
  back: number;
  ackedThatCameBack: number;
  phases: string;
}

async function crashRun(killAfterMs: number): Promise<RunResult> {
  const dataDir = makeDataDir();
  let broker: TestBroker | undefined;
  const t0 = Date.now();
  const phases: string[] = [];
  const phase = (name: string): void => {
    phases.push(`${name}@${Date.now() - t0}`);
  };
  try {
    broker = await startBroker({ dataDir, args: ['--fsync', 'always'] });
    phase('started');
    const pubConn = await connect(broker.url);
    const subConn = await connect(broker.url);
    // (events.once would reject on the 'error' that comes first.)
    const closed = [pubConn, subConn].map((c) => new Promise<void>((resolve) => c.once('close', () => resolve())));
    for (const c of [pubConn, subConn]) c.on('error', () => {});
    const pub = await pubConn.createConfirmChannel();
    pub.on('error', () => {});
    await pub.assertQueue(queue, { durable: true });

    // ---- producer: a window of confirmed publishes --------------------------------------------
    const confirmed = new Set<number>();
    const nacked: number[] = [];
    let nextSeq = 0;
    let inFlight = 0;
    let stopped = false;
    const pump = (): void => {
      while (!stopped && inFlight < publishWindow) {
        const seq = nextSeq++;
        inFlight++;
        pub.publish('', queue, Buffer.from(`${seq}${bodyPadding}`), { persistent: true }, (err: unknown) => {
          inFlight--;
          if (err === null || err === undefined) confirmed.add(seq);
          else if (err instanceof Error && err.message === 'message nacked') nacked.push(seq);
          else stopped = true; // the channel closed (these callbacks run before its 'close' event)
          pump();
        });
      }
    };
    pub.on('close', () => {
      stopped = true;
    });

    // ---- consumer: acks in batches, checks order ---------------------------------------------
    const sub = await subConn.createChannel();
    sub.on('error', () => {});
    await sub.prefetch(prefetch);
    const seenBefore = new Set<number>();
    const acked = new Set<number>();
    let unackedSeqs: number[] = [];
    let lastSeq = -1;
    const orderErrors: string[] = [];
    await sub.consume(queue, (m) => {
      if (m === null) return;
      const seq = seqOf(m);
      if (seq <= lastSeq) orderErrors.push(`delivery of ${seq} after ${lastSeq}`);
      if (m.fields.redelivered) orderErrors.push(`first run delivered ${seq} with redelivered=true`);
      lastSeq = seq;
      seenBefore.add(seq);
      unackedSeqs.push(seq);
      if (unackedSeqs.length >= ackEvery) {
        sub.ack(m, true);
        for (const s of unackedSeqs) acked.add(s);
        unackedSeqs = [];
      }
    });

    pump();
    phase('traffic');
    await waitFor(() => confirmed.size > 0 && seenBefore.size > 0, 'traffic to flow', 5_000).catch((err: unknown) => {
      throw new Error(`${String(err)}: published ${nextSeq}, confirmed ${confirmed.size}, delivered ${seenBefore.size}\n${broker?.log() ?? ''}`);
    });
    // The kill moment itself (not a wait for some condition): random, reproducible from the seed.
    await new Promise((r) => setTimeout(r, killAfterMs));
    phase('kill');
    await broker.kill();
    // Everything the broker sent before it died is read before the sockets report close.
    await within(Promise.all(closed), 'both client connections to see the crash');
    phase('closed');
    assert.ok(stopped, 'the publisher saw its channel close');

    assert.deepEqual(orderErrors, [], 'deliveries before the crash');
    assert.deepEqual(nacked, [], 'no nacks without a disk failure');

    // ---- restart and drain --------------------------------------------------------------------
    broker = await startBroker({ dataDir, args: ['--fsync', 'always'] });
    phase('restarted');
    const conn = await connect(broker.url);
    const ch = await conn.createChannel();
    const back = (await drainQueue(ch, queue)).map((m) => ({ seq: seqOf(m), redelivered: m.fields.redelivered }));
    await conn.close();
    phase('drained');

    const backSeqs = back.map((b) => b.seq);
    for (let i = 1; i < backSeqs.length; i++) {
      assert.ok((backSeqs[i] as number) > (backSeqs[i - 1] as number), `after the restart ${backSeqs[i]} follows ${backSeqs[i - 1]}: out of order or duplicated`);
    }
    for (const s of backSeqs) assert.ok(s >= 0 && s < nextSeq, `${s} was never published`);
    const backSet = new Set(backSeqs);
    const lost = [...confirmed].filter((s) => !acked.has(s) && !backSet.has(s)).sort((a, b) => a - b);
    assert.equal(lost.length, 0, `${lost.length} confirmed, never acked message(s) gone after the crash: ${lost.slice(0, 20).join(' ')}`);
    const unflagged = back.filter((b) => seenBefore.has(b.seq) && !b.redelivered).map((b) => b.seq);
    assert.equal(unflagged.length, 0, `${unflagged.length} message(s) delivered before the crash came back with redelivered=false: ${unflagged.slice(0, 20).join(' ')}`);
    return {
      published: nextSeq,
      confirmed: confirmed.size,
      seenBefore: seenBefore.size,
      ackedBefore: acked.size,
      back: back.length,
      ackedThatCameBack: backSeqs.filter((s) => acked.has(s)).length,
      phases: phases.join(' '),
    };
  } finally {
    await broker?.kill();
    removeDataDir(dataDir);
  }
}

describe('crash at a random moment (SIGKILL), --fsync always', () => {
  const seed = Number(process.env['WARREN_CRASH_SEED'] ?? Date.now() % 1_000_000);
  const random = seeded(seed);
  const points = Array.from({ length: killPoints }, () => Math.round(killAfterMinMs + random() * (killAfterMaxMs - killAfterMinMs)));
  for (const [i, killAfterMs] of points.entries()) {
    test(`kill point ${i + 1}: ${killAfterMs} ms into the traffic (WARREN_CRASH_SEED=${seed})`, async (t) => {
      const r = await crashRun(killAfterMs);
      t.diagnostic(JSON.stringify(r));
      assert.ok(r.confirmed > 0 && r.seenBefore > 0);
    });
  }
});
