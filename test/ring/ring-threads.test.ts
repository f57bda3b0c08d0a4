import assert from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { crc32c } from '@node-rs/crc32';
import { createRingBuffer, maxWholeBodyBytes } from '../../src/ring/ring-layout.js';
import { RingReader } from '../../src/ring/ring-reader.js';
import { RingWriter } from '../../src/ring/ring-writer.js';
import { KIND_STOP, TrafficCheck, TrafficSource } from './ring-peer.worker.js';
import type { PeerReport, PeerRole } from './ring-peer.worker.js';

const PEER_URL = new URL('./ring-peer.worker.js', import.meta.url);
const TEST_DEADLINE_MS = 20_000;
const SMALL_RING_BYTES = 64 * 1024;

function withDeadline<T>(promise: Promise<T>, deadlineMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${deadlineMs} ms`)), deadlineMs);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

interface Peer {
  worker: Worker;
  nextMessage: () => Promise<unknown>;
  exited: Promise<number>;
}

/** Releases what a test holds even when it fails, so a failure cannot hang the test file. */
class Cleanup {
  private readonly steps: Array<() => unknown> = [];
  add(step: () => unknown): void {
    this.steps.push(step);
  }
  async run(): Promise<void> {
    for (const step of this.steps.reverse()) await step();
  }
}

/** A worker playing `role`, with its messages and its exit as promises; terminated by cleanup. */
function startPeer(role: PeerRole, cleanup: Cleanup): Peer {
  const worker = new Worker(PEER_URL, { workerData: role });
  cleanup.add(() => worker.terminate());
  const queued: unknown[] = [];
  const waiting: Array<(message: unknown) => void> = [];
  let failure: Error | undefined;
  worker.on('message', (message: unknown) => {
    const resolve = waiting.shift();
    if (resolve !== undefined) resolve(message);
    else queued.push(message);
  });
  const exited = new Promise<number>((resolve, reject) => {
    worker.on('error', (error: Error) => {
      failure = error;
      reject(error);
    });
    worker.on('exit', resolve);
  });
  // Surfaces a worker crash in whichever await is pending.
  exited.catch(() => undefined);
  const nextMessage = (): Promise<unknown> => {
    if (failure !== undefined) return Promise.reject(failure);
    const message = queued.shift();
    if (message !== undefined) return Promise.resolve(message);
    return Promise.race([
      new Promise<unknown>((resolve) => waiting.push(resolve)),
      exited.then((code) => {
        throw new Error(`peer exited (code ${code}) before sending a message`);
      }),
    ]);
  };
  return { worker, nextMessage, exited };
}

async function nextReport(peer: Peer, what: string): Promise<PeerReport> {
  return (await withDeadline(peer.nextMessage(), TEST_DEADLINE_MS, what)) as PeerReport;
}

test('two threads hammer a ring each way with checksummed, numbered records', async () => {
  const cleanup = new Cleanup();
  try {
    const records = 60_000;
    const toWorker = createRingBuffer(SMALL_RING_BYTES);
    const toMain = createRingBuffer(SMALL_RING_BYTES);
    const peer = startPeer({ role: 'hammer', toWorker, toMain, records, seed: 0x5eed2 }, cleanup);
    const writer = new RingWriter(toWorker, 'test main→worker');
    cleanup.add(() => writer.close());
    const reader = new RingReader(toMain, 'test worker→main');
    cleanup.add(() => reader.stop());
    const check = new TrafficCheck();
    const allRead = new Promise<void>((resolve) => {
      reader.start(
        (kind, body) => check.take(kind, body),
        () => {
          if (check.received >= records) resolve();
        },
      );
    });
    const written = new TrafficSource(0x5eed1).writeAll(writer, records);
    await withDeadline(Promise.all([written, allRead]), TEST_DEADLINE_MS, 'main side of the hammer');
    reader.stop();
    writer.close();
    const peerReport = await nextReport(peer, 'worker side of the hammer');

    assert.deepEqual(check.errors, []);
    assert.equal(check.received, records);
    assert.equal(reader.recordsRead, records);
    assert.deepEqual(peerReport.errors, []);
    assert.equal(peerReport.received, records);
    assert.equal(writer.recordsWritten, records);
    // 60k records of ~300 B average through a 64 KiB ring: it must have filled and wrapped.
    assert.ok(writer.fullCount > 0, 'the main→worker ring never filled');
    assert.ok(writer.bytesWritten > 20 * SMALL_RING_BYTES);
    assert.equal(await withDeadline(peer.exited, TEST_DEADLINE_MS, 'hammer worker exit'), 0);
  } finally {
    await cleanup.run();
  }
});

test('a slow reader: the writer queues, drains by itself, nothing lost or reordered', async () => {
  const cleanup = new Cleanup();
  try {
    const records = 4_000;
    const ring = createRingBuffer(SMALL_RING_BYTES);
    const peer = startPeer({ role: 'slow-reader', ring, records, recordsPerPoll: 7 }, cleanup);
    assert.equal(await withDeadline(peer.nextMessage(), TEST_DEADLINE_MS, 'slow reader ready'), 'ready');

    const writer = new RingWriter(ring, 'test slow');
    cleanup.add(() => writer.close());
    let drains = 0;
    const drained = new Promise<void>((resolve) => {
      writer.onDrain = () => {
        drains++;
        resolve();
      };
    });
    const source = new TrafficSource(0xabc);
    let straightIntoRing = 0;
    for (let i = 0; i < records; i++) {
      const before = writer.recordsWritten;
      source.writeNext(writer);
      if (writer.recordsWritten > before) straightIntoRing++;
      if (i % 64 === 63) writer.flush();
    }
    writer.flush();
    // The reader has not read anything yet: the ring is full and the rest waits in order.
    assert.ok(writer.pendingRecords > 0 && writer.pendingBytes > 0);
    assert.ok(writer.occupancyBytes > SMALL_RING_BYTES / 2 && writer.occupancyBytes <= SMALL_RING_BYTES);
    assert.equal(writer.fullCount, 1, 'only the first refusal counts as finding the ring full');
    assert.ok(straightIntoRing < records);

    peer.worker.postMessage('go');
    await withDeadline(drained, TEST_DEADLINE_MS, 'writer drain');
    const peerReport = await nextReport(peer, 'slow reader report');
    assert.deepEqual(peerReport.errors, []);
    assert.equal(peerReport.received, records);
    assert.equal(writer.pendingRecords, 0);
    assert.equal(writer.pendingBytes, 0);
    assert.equal(writer.recordsWritten, records);
    assert.equal(drains, 1);
    assert.ok(writer.spaceWaits > 0, 'the writer never slept waiting for space');
    writer.close();
    assert.equal(await withDeadline(peer.exited, TEST_DEADLINE_MS, 'slow reader exit'), 0);
  } finally {
    await cleanup.run();
  }
});

test('a 20 MiB record crosses a 1 MiB ring to a worker intact', async () => {
  const cleanup = new Cleanup();
  try {
    const ringBytes = 1024 * 1024;
    const bodyBytes = 20 * 1024 * 1024 + 13;
    const ring = createRingBuffer(ringBytes);
    const peer = startPeer({ role: 'big-record', ring }, cleanup);
    const writer = new RingWriter(ring, 'test big');
    cleanup.add(() => writer.close());
    const body = randomFillSync(Buffer.allocUnsafe(bodyBytes));
    const expectedCrc = crc32c(body);
    let drained = false;
    writer.onDrain = () => {
      drained = true;
    };

    assert.equal(writer.write(42, body), false, 'a 20 MiB body cannot go straight into a 1 MiB ring');
    body.fill(0); // the writer must have copied what it queued
    writer.flush();
    const peerReport = await nextReport(peer, 'big record');

    assert.deepEqual(peerReport.detail, { kind: 42, bodyBytes, crc: expectedCrc });
    assert.equal(drained, true);
    assert.equal(writer.pendingRecords, 0);
    assert.ok(bodyBytes > 20 * maxWholeBodyBytes(ringBytes));
    writer.close();
    assert.equal(await withDeadline(peer.exited, TEST_DEADLINE_MS, 'big record worker exit'), 0);
  } finally {
    await cleanup.run();
  }
});

test('a started reader keeps its worker alive; stop() lets it exit', async () => {
  const cleanup = new Cleanup();
  try {
    const ring = createRingBuffer(SMALL_RING_BYTES);
    const peer = startPeer({ role: 'stop-exit', ring }, cleanup);
    const started = (await withDeadline(peer.nextMessage(), TEST_DEADLINE_MS, 'reader start')) as {
      activeResources: string[];
    };
    // The keep-alive handle is the only timer the worker holds: without it the worker would exit.
    assert.ok(started.activeResources.includes('Timeout'), `active: ${started.activeResources.join(',')}`);

    const writer = new RingWriter(ring, 'test stop');
    cleanup.add(() => writer.close());
    const body = Buffer.from('ping');
    for (let i = 0; i < 100; i++) writer.write(1, body);
    writer.write(KIND_STOP, Buffer.alloc(0));
    writer.flush();
    const peerReport = await nextReport(peer, 'stop report');
    assert.equal(peerReport.received, 100);
    // No terminate(): the worker must leave on its own once the reader is stopped.
    assert.equal(await withDeadline(peer.exited, TEST_DEADLINE_MS, 'worker exit after stop()'), 0);
    writer.close();
  } finally {
    await cleanup.run();
  }
});
