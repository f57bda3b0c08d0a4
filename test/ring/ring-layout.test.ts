import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CAPACITY_WORD,
  HEADER_BYTES,
  RING_CAPACITY_MIN_BYTES,
  createRingBuffer,
  maxRecordBytes,
  maxWholeBodyBytes,
  recordBytes,
  ringCapacityBytes,
  ringOccupancyBytes,
} from '../../src/ring/ring-layout.js';
import { RingReader } from '../../src/ring/ring-reader.js';
import { RingWriter } from '../../src/ring/ring-writer.js';

test('createRingBuffer accepts powers of two from 64 KiB and rejects the rest', () => {
  const sab = createRingBuffer(RING_CAPACITY_MIN_BYTES);
  assert.equal(sab.byteLength, HEADER_BYTES + RING_CAPACITY_MIN_BYTES);
  assert.equal(ringCapacityBytes(sab, 't'), RING_CAPACITY_MIN_BYTES);
  assert.equal(ringOccupancyBytes(sab), 0);
  assert.equal(ringCapacityBytes(createRingBuffer(1 << 20), 't'), 1 << 20);
  for (const bad of [0, -65536, 65535, 65537, 96 * 1024, 32 * 1024, 1.5, 2 ** 31, Number.NaN]) {
    assert.throws(() => createRingBuffer(bad), /ring capacity/, `capacity ${bad}`);
  }
});

test('readers and writers refuse buffers that are not rings', () => {
  const plain = new SharedArrayBuffer(HEADER_BYTES + RING_CAPACITY_MIN_BYTES);
  assert.throws(() => new RingReader(plain, 'plain'), /not a ring buffer/);
  assert.throws(() => new RingWriter(plain, 'plain'), /not a ring buffer/);
  assert.throws(() => new RingReader(new SharedArrayBuffer(16), 'tiny'), /no data area/);
  const ring = createRingBuffer(RING_CAPACITY_MIN_BYTES);
  new Int32Array(ring)[CAPACITY_WORD] = 1 << 20; // capacity word says 1 MiB in a 64 KiB buffer
  assert.throws(() => new RingWriter(ring, 'lying'), /does not match/);
});

test('records are 8-byte aligned and a whole record is at most a quarter of the ring', () => {
  assert.equal(recordBytes(0), 8);
  assert.equal(recordBytes(1), 16);
  assert.equal(recordBytes(8), 16);
  assert.equal(recordBytes(9), 24);
  const capacityBytes = 1 << 16;
  assert.equal(maxRecordBytes(capacityBytes), capacityBytes / 4);
  assert.equal(recordBytes(maxWholeBodyBytes(capacityBytes)), maxRecordBytes(capacityBytes));
});
