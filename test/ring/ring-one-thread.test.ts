/**
 * Writer and reader on one thread: exact control over what is published, freed and queued.
 * (ring-threads.test.ts runs them on two.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import {
  CONSUMER_POSITION_WORD,
  HEADER_BYTES,
  PRODUCER_POSITION_WORD,
  READER_SLEEPING_WORD,
  WRITER_WAITING_WORD,
  createRingBuffer,
  maxWholeBodyBytes,
  recordBytes,
} from '../../src/ring/ring-layout.js';
import { RingReader, WAKEUP_CHECK_MS } from '../../src/ring/ring-reader.js';
import type { RecordHandler } from '../../src/ring/ring-reader.js';
import { RingWriter } from '../../src/ring/ring-writer.js';

const RING_BYTES = 64 * 1024;
const DEADLINE_MS = 10_000;

const PATTERN_SHIFTS = 251;
/** Larger than the largest body a test sends, plus every shift. */
const PATTERN_BYTES = 8 * RING_BYTES + PATTERN_SHIFTS;
const PATTERN = Buffer.allocUnsafe(PATTERN_BYTES);
for (let i = 0; i < PATTERN_BYTES; i++) PATTERN[i] = (i * 7 + (i >>> 8) + (i >>> 16)) & 0xff;

/** A fresh body whose bytes depend on its record number (a different shift of one pattern). */
function bodyFor(seq: number, bodyBytes: number): Buffer {
  if (bodyBytes > PATTERN_BYTES - PATTERN_SHIFTS) {
    const body = Buffer.allocUnsafe(bodyBytes);
    for (let i = 0; i < bodyBytes; i++) body[i] = (seq * 131 + i * 7 + (i >>> 8)) & 0xff;
    return body;
  }
  const shift = (seq * 37) % PATTERN_SHIFTS;
  return Buffer.from(PATTERN.subarray(shift, shift + bodyBytes));
}

interface Got {
  kind: number;
  bodyBytes: number;
  crc: number;
}

function collect(into: Got[]): RecordHandler {
  return (kind, body) => into.push({ kind, bodyBytes: body.length, crc: crc32c(body) });
}

function expected(kind: number, body: Uint8Array): Got {
  return { kind, bodyBytes: body.length, crc: crc32c(body) };
}

/** Alternates poll and flush until the writer has nothing pending and the ring is empty. */
function pump(writer: RingWriter, reader: RingReader, onRecord: RecordHandler): void {
  for (let round = 0; round < 100_000; round++) {
    writer.flush();
    const handled = reader.poll(onRecord);
    if (handled === 0 && writer.pendingRecords === 0 && reader.occupancyBytes === 0) return;
  }
  assert.fail('pump made no progress');
}

function activeTimeouts(): number {
  return process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length;
}

function withDeadline<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${DEADLINE_MS} ms`)), DEADLINE_MS);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

test('an empty ring polls nothing; records are invisible until flush', () => {
  const sab = createRingBuffer(RING_BYTES);
  const writer = new RingWriter(sab, 'empty');
  const reader = new RingReader(sab, 'empty');
  const got: Got[] = [];
  assert.equal(reader.poll(collect(got)), 0);
  assert.equal(reader.occupancyBytes, 0);

  const bodies = [bodyFor(1, 100), bodyFor(2, 0), bodyFor(3, 5)];
  for (const body of bodies) assert.equal(writer.write(9, body), true);
  assert.equal(writer.occupancyBytes, recordBytes(100) + recordBytes(0) + recordBytes(5));
  assert.equal(reader.occupancyBytes, 0, 'written but not flushed');
  assert.equal(reader.poll(collect(got)), 0);

  writer.flush();
  assert.equal(reader.occupancyBytes, writer.occupancyBytes);
  assert.equal(reader.poll(collect(got), 2), 2, 'maxRecords bounds one poll');
  assert.equal(reader.poll(collect(got)), 1);
  assert.deepEqual(
    got,
    bodies.map((body) => expected(9, body)),
  );
  assert.equal(reader.occupancyBytes, 0);
  assert.equal(writer.occupancyBytes, 0);
  assert.equal(reader.recordsRead, 3);
  assert.equal(reader.bytesRead, 105);
  assert.equal(writer.recordsWritten, 3);
  assert.equal(writer.bytesWritten, 105);
  writer.close();
});

test('wrap-around with odd sizes pads the tail and keeps every byte', () => {
  const sab = createRingBuffer(RING_BYTES);
  const writer = new RingWriter(sab, 'wrap');
  const reader = new RingReader(sab, 'wrap');
  const words = new Int32Array(sab);
  const got: Got[] = [];
  const sent: Got[] = [];
  let recordBytesTotal = 0;
  let seq = 0;
  // Batches of 1..40 records of odd sizes 1..2047 B, each batch read before the next, so the
  // ring never fills and only wrapping is exercised.
  while (recordBytesTotal < 30 * RING_BYTES) {
    const batch = 1 + (seq % 40);
    for (let i = 0; i < batch; i++, seq++) {
      const bodyBytes = ((seq * 389) % 2048) | 1;
      const body = bodyFor(seq, bodyBytes);
      assert.equal(writer.write(seq & 127, body), true);
      sent.push(expected(seq & 127, body));
      recordBytesTotal += recordBytes(bodyBytes);
    }
    writer.flush();
    reader.poll(collect(got));
  }
  assert.deepEqual(got, sent);
  assert.equal(writer.fullCount, 0);
  const producerPosition = Atomics.load(words, PRODUCER_POSITION_WORD) >>> 0;
  assert.equal(Atomics.load(words, CONSUMER_POSITION_WORD) >>> 0, producerPosition);
  const paddingBytes = producerPosition - recordBytesTotal;
  assert.ok(paddingBytes > 0 && paddingBytes < 30 * (RING_BYTES / 4), `padding ${paddingBytes} bytes`);
  writer.close();
});

test('positions stay exact across 2^31 and 2^32', () => {
  for (const startPosition of [2 ** 31 - 3000, 2 ** 32 - 3000]) {
    const sab = createRingBuffer(RING_BYTES);
    const words = new Int32Array(sab);
    Atomics.store(words, PRODUCER_POSITION_WORD, startPosition | 0);
    Atomics.store(words, CONSUMER_POSITION_WORD, startPosition | 0);
    const writer = new RingWriter(sab, 'positions');
    const reader = new RingReader(sab, 'positions');
    const got: Got[] = [];
    const sent: Got[] = [];
    for (let seq = 0; seq < 400; seq++) {
      const body = bodyFor(seq, (seq * 97) % 3000);
      writer.write(seq & 127, body);
      sent.push(expected(seq & 127, body));
      if (seq % 60 === 59) pump(writer, reader, collect(got));
    }
    pump(writer, reader, collect(got));
    assert.deepEqual(got, sent, `start position ${startPosition}`);
    assert.ok(writer.fullCount > 0, 'the ring filled at least once');
    // Started 3000 bytes before the boundary and moved far past it.
    const movedBytes = (Atomics.load(words, PRODUCER_POSITION_WORD) - (startPosition | 0)) | 0;
    assert.ok(movedBytes > 100 * 3000, `moved ${movedBytes} bytes`);
    assert.equal(writer.occupancyBytes, 0);
    writer.close();
  }
});

test('a full ring queues records in order and drains them as space is freed', async () => {
  const sab = createRingBuffer(RING_BYTES);
  const writer = new RingWriter(sab, 'full');
  const reader = new RingReader(sab, 'full');
  let drains = 0;
  writer.onDrain = () => drains++;
  const sent: Got[] = [];
  let seq = 0;
  while (writer.write(seq & 127, bodyFor(seq, 1000))) sent.push(expected(seq & 127, bodyFor(seq++, 1000)));
  sent.push(expected(seq & 127, bodyFor(seq++, 1000)));
  const inRing = writer.recordsWritten;
  assert.equal(inRing, Math.floor(RING_BYTES / recordBytes(1000)));
  assert.ok(writer.occupancyBytes > RING_BYTES - 1008);
  for (let i = 0; i < 50; i++, seq++) {
    const body = bodyFor(seq, 1 + i * 13);
    assert.equal(writer.write(seq & 127, body), false, 'queued behind earlier records, never ahead');
    sent.push(expected(seq & 127, body));
  }
  writer.flush();
  assert.equal(writer.pendingRecords, 51);
  assert.equal(writer.pendingBytes, 1000 + (50 * (1 + 1 + 49 * 13)) / 2);
  assert.equal(writer.fullCount, 1);

  const got: Got[] = [];
  assert.equal(reader.poll(collect(got), 3), 3);
  writer.flush(); // 3 KiB free: the first queued records fit now
  assert.ok(writer.pendingRecords > 0 && writer.pendingRecords < 51, `${writer.pendingRecords} pending`);
  pump(writer, reader, collect(got));
  assert.deepEqual(got, sent);
  await Promise.resolve(); // onDrain runs from a microtask
  assert.equal(drains, 1);
  assert.equal(writer.write(1, bodyFor(0, 10)), true, 'straight into the ring again');
  writer.close();
});

test('every body size from 0 to beyond the capacity arrives intact', () => {
  const sab = createRingBuffer(RING_BYTES);
  const writer = new RingWriter(sab, 'sizes');
  const reader = new RingReader(sab, 'sizes');
  const wholeMaxBytes = maxWholeBodyBytes(RING_BYTES);
  const sizes: number[] = [];
  for (let size = 0; size <= 2048; size++) sizes.push(size);
  for (let size = 2049; size <= RING_BYTES + 64; size += 61) sizes.push(size);
  for (const edge of [wholeMaxBytes, wholeMaxBytes * 2, RING_BYTES / 2, RING_BYTES, 3 * RING_BYTES]) {
    for (let size = edge - 24; size <= edge + 24; size++) sizes.push(size);
  }
  sizes.push(7 * RING_BYTES + 5);
  const got: Got[] = [];
  const sent: Got[] = [];
  for (const [seq, size] of sizes.entries()) {
    const body = bodyFor(seq, size);
    writer.write(seq & 127, body);
    sent.push(expected(seq & 127, body));
    if (seq % 5 === 0) pump(writer, reader, collect(got));
  }
  pump(writer, reader, collect(got));
  assert.equal(got.length, sent.length);
  for (const [i, record] of got.entries()) assert.deepEqual(record, sent[i], `record ${i}, ${sizes[i]} bytes`);
  assert.equal(reader.bytesRead, writer.bytesWritten);
  writer.close();
});

test('write2 sends two parts as one body, also when fragmented across the join', () => {
  const sab = createRingBuffer(RING_BYTES);
  const writer = new RingWriter(sab, 'write2');
  const reader = new RingReader(sab, 'write2');
  const got: Got[] = [];
  const sent: Got[] = [];
  const pairs: Array<[number, number]> = [
    [0, 0],
    [8, 0],
    [0, 8],
    [8, 300],
    [10_000, 30_000],
    [30_000, 10_000],
    [maxWholeBodyBytes(RING_BYTES) - 8, 8],
    [maxWholeBodyBytes(RING_BYTES) - 8, 9],
    [0, 100_000],
    [100_000, 1],
  ];
  for (const [seq, [aBytes, bBytes]] of pairs.entries()) {
    const a = bodyFor(seq, aBytes);
    const b = bodyFor(seq + 1000, bBytes);
    writer.write2(5, a, b);
    sent.push(expected(5, Buffer.concat([a, b])));
  }
  pump(writer, reader, collect(got));
  assert.deepEqual(got, sent);
  writer.close();
});

test('kinds 0..127 pass through; anything else and writes after close are refused', () => {
  const sab = createRingBuffer(RING_BYTES);
  const writer = new RingWriter(sab, 'kinds');
  const reader = new RingReader(sab, 'kinds');
  const kinds: number[] = [];
  for (let kind = 0; kind <= 127; kind++) writer.write(kind, bodyFor(kind, kind));
  writer.flush();
  reader.poll((kind, body) => {
    assert.deepEqual(body, bodyFor(kind, kind));
    kinds.push(kind);
  });
  assert.deepEqual(kinds, Array.from({ length: 128 }, (_, kind) => kind));
  for (const bad of [128, 255, -1, 1.5, Number.NaN]) {
    assert.throws(() => writer.write(bad, bodyFor(0, 1)), /kind/, `kind ${bad}`);
  }
  writer.close();
  assert.throws(() => writer.write(1, bodyFor(0, 1)), /write after close/);
});

test('a throwing handler consumes its record; the next poll goes on from the next one', () => {
  const sab = createRingBuffer(RING_BYTES);
  const writer = new RingWriter(sab, 'throw');
  const reader = new RingReader(sab, 'throw');
  for (let seq = 0; seq < 3; seq++) writer.write(seq, bodyFor(seq, 10));
  writer.flush();
  assert.throws(
    () =>
      reader.poll((kind) => {
        if (kind === 1) throw new Error('handler bug');
      }),
    /handler bug/,
  );
  const kinds: number[] = [];
  reader.poll((kind) => kinds.push(kind));
  assert.deepEqual(kinds, [2]);
  assert.equal(reader.occupancyBytes, 0);
  writer.close();
});

test('start() on one thread: records arrive, the writer waits for space and wakes itself', async () => {
  const sab = createRingBuffer(RING_BYTES);
  const writer = new RingWriter(sab, 'started');
  const reader = new RingReader(sab, 'started');
  try {
    const timeoutsBefore = activeTimeouts();
    const got: Got[] = [];
    let batches = 0;
    const bigBody = bodyFor(7, 5 * 1024 * 1024 + 3);
    const sent = [expected(1, bodyFor(1, 10)), expected(2, bigBody), expected(3, bodyFor(3, 20))];
    const allThere = new Promise<void>((resolve) => {
      reader.start(collect(got), () => {
        batches++;
        if (got.length === sent.length) resolve();
      });
    });
    assert.equal(activeTimeouts(), timeoutsBefore + 1, 'a running reader holds one keep-alive timer');
    writer.write(1, bodyFor(1, 10));
    assert.equal(writer.write(2, bigBody), false);
    writer.write(3, bodyFor(3, 20));
    writer.flush();
    await withDeadline(allThere, 'records through start()');
    assert.deepEqual(got, sent);
    assert.ok(batches >= 2);
    assert.ok(writer.spaceWaits > 0, 'the writer slept waiting for space');
    assert.ok(reader.writerWakes > 0, 'the reader woke the writer');
    reader.stop();
    writer.close();
    assert.equal(activeTimeouts(), timeoutsBefore, 'stop() and close() release their handles');
  } finally {
    reader.stop();
    writer.close();
  }
});

test('a lost wake-up: a sleeping reader gets the records anyway, from its wake-up check, and says so', async () => {
  const sab = createRingBuffer(RING_BYTES);
  const words = new Int32Array(sab, 0, HEADER_BYTES / 4);
  const writer = new RingWriter(sab, 'lost');
  const lost: string[] = [];
  const reader = new RingReader(sab, 'lost', { onLostWakeup: (name, n) => lost.push(`${name} ${n}`) });
  try {
    const got: Got[] = [];
    const arrived = new Promise<void>((resolve) => reader.start(collect(got), () => resolve()));
    await withDeadline(
      (async () => {
        while (Atomics.load(words, READER_SLEEPING_WORD) !== 1) await new Promise((r) => setImmediate(r));
      })(),
      'the reader to sleep',
    );
    // What a lost notify leaves behind: the sleeping flag cleared (as by the writer) and no wake-up.
    Atomics.store(words, READER_SLEEPING_WORD, 0);
    writer.write(5, bodyFor(5, 40));
    writer.flush();
    assert.equal(writer.readerWakes, 0, 'the writer saw no sleeping reader, so notified nobody');
    const startedMs = performance.now();
    await withDeadline(arrived, 'the record after a lost wake-up');
    assert.deepEqual(got, [expected(5, bodyFor(5, 40))]);
    assert.ok(performance.now() - startedMs < WAKEUP_CHECK_MS * 20, 'caught by the check, not by chance much later');
    assert.equal(reader.lostWakeups, 1);
    assert.deepEqual(lost, ['lost 1']);
  } finally {
    reader.stop();
    writer.close();
  }
});

test('a lost wake-up: a writer waiting for space goes on once the space is freed, from its wake-up check, and says so', async () => {
  const sab = createRingBuffer(RING_BYTES);
  const words = new Int32Array(sab, 0, HEADER_BYTES / 4);
  const lost: string[] = [];
  const writer = new RingWriter(sab, 'lost-space', { onLostWakeup: (name, n) => lost.push(`${name} ${n}`) });
  const reader = new RingReader(sab, 'lost-space');
  try {
    const sent: Got[] = [];
    let seq = 0;
    while (writer.write(seq & 127, bodyFor(seq, 1000))) sent.push(expected(seq & 127, bodyFor(seq++, 1000)));
    sent.push(expected(seq & 127, bodyFor(seq++, 1000)));
    writer.flush();
    assert.equal(Atomics.load(words, WRITER_WAITING_WORD), 1, 'the writer waits for space');
    const drained = new Promise<void>((resolve) => (writer.onDrain = resolve));
    // What a lost notify leaves behind: the waiting flag cleared (as by the reader) and no wake-up.
    Atomics.store(words, WRITER_WAITING_WORD, 0);
    const got: Got[] = [];
    while (reader.poll(collect(got)) > 0);
    assert.equal(reader.writerWakes, 0, 'the reader saw no waiting writer, so notified nobody');
    const startedMs = performance.now();
    await withDeadline(drained, 'the queued record after a lost wake-up');
    assert.ok(performance.now() - startedMs < WAKEUP_CHECK_MS * 20, 'caught by the check, not by chance much later');
    assert.equal(writer.lostWakeups, 1);
    assert.deepEqual(lost, ['lost-space 1']);
    pump(writer, reader, collect(got));
    assert.deepEqual(got, sent, 'everything arrived, in order');
  } finally {
    reader.stop();
    writer.close();
  }
});

test('a stopped reader can start again and gets what was written meanwhile', async () => {
  const sab = createRingBuffer(RING_BYTES);
  const writer = new RingWriter(sab, 'restart');
  const reader = new RingReader(sab, 'restart');
  try {
    const kinds: number[] = [];
    let wanted = 1;
    let arrived: (() => void) | undefined;
    const handler: RecordHandler = (kind) => {
      kinds.push(kind);
      if (kinds.length === wanted) arrived?.();
    };
    const first = new Promise<void>((resolve) => (arrived = resolve));
    reader.start(handler);
    writer.write(1, bodyFor(1, 1));
    writer.flush();
    await withDeadline(first, 'first record');
    // Let the reader go to sleep so stop() has a wait to settle.
    await withDeadline(
      new Promise<void>((resolve) => {
        const check = (): void => {
          if (reader.sleeps > 0) resolve();
          else setImmediate(check);
        };
        check();
      }),
      'reader sleep',
    );
    reader.stop();
    writer.write(2, bodyFor(2, 1));
    writer.flush();
    for (let turn = 0; turn < 3; turn++) await new Promise<void>((resolve) => setImmediate(resolve));
    assert.deepEqual(kinds, [1], 'a stopped reader reads nothing');
    wanted = 2;
    const second = new Promise<void>((resolve) => (arrived = resolve));
    reader.start(handler);
    await withDeadline(second, 'record after restart');
    assert.deepEqual(kinds, [1, 2]);
  } finally {
    reader.stop();
    writer.close();
  }
});

test('close() of a writer waiting for space releases its handle and drops what is pending', () => {
  const sab = createRingBuffer(RING_BYTES);
  const writer = new RingWriter(sab, 'close');
  const timeoutsBefore = activeTimeouts();
  let seq = 0;
  try {
    while (writer.write(1, bodyFor(seq++, 4000)));
    writer.flush();
    assert.equal(writer.pendingRecords, 1);
    assert.equal(activeTimeouts(), timeoutsBefore + 1, 'a writer waiting for space keeps its thread alive');
  } finally {
    writer.close();
  }
  assert.equal(activeTimeouts(), timeoutsBefore);
  assert.equal(writer.pendingRecords, 0);
  // What was in the ring before close() stays readable.
  const reader = new RingReader(sab, 'close');
  assert.equal(reader.poll(() => undefined), seq - 1);
});
