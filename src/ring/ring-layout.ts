/**
 * The one place that says where every byte of a single-producer/single-consumer ring lives.
 *
 * A ring is one SharedArrayBuffer: a header of control words, then the data area.
 *
 *   byte 0          64              128             192                       256
 *   +---------------+---------------+---------------+-------------------------+-----------------+
 *   | producer pos  | consumer pos  | reader        | writer    | writer      | capacity | magic|
 *   | (i32, writer  | (i32, reader  | sleeping      | waiting   | wanted      | (i32)    | (i32)|
 *   |  stores)      |  stores)      | (i32 flag)    | (i32 flag)| consumer pos|          |      |
 *   +---------------+---------------+---------------+-------------------------+-----------------+
 *   HEADER_BYTES (320) ............................................................ data area:
 *   +--------+--------+--------+----- ... -----+-----------+
 *   | record | record | record |     free      | padding   |   capacityBytes (a power of two)
 *   +--------+--------+--------+----- ... -----+-----------+
 *   Each word group sits on its own 64-byte cache line: the two threads never write one line.
 *
 * Record (fields little-endian), 8-byte aligned; a record never straddles the end of the data area (a padding
 * record fills the tail and the next record starts at index 0):
 *
 *   0               4        5         6               8
 *   +---------------+--------+---------+---------------+---------- body ----------+- pad to 8 -+
 *   | bodyBytes u32 | kind u8| flags u8| reserved u16  | bodyBytes bytes          |            |
 *   +---------------+--------+---------+---------------+--------------------------+------------+
 *
 * A body too large for one record (see maxWholeBodyBytes) travels as fragments: FIRST,
 * MIDDLE…, LAST records of the same kind. The FIRST fragment's body starts with
 *   [u32 totalBodyBytes][u32 reserved]
 * so the reader can allocate the reassembly buffer once.
 *
 * Positions count bytes ever written (producer) or freed (consumer). Each side keeps its own
 * position as a full-precision JS number (monotonic for 2^53 bytes); the shared words hold the
 * low 32 bits, and distances are taken as `(a - b) | 0`, exact because capacity <= 2^30.
 * index = position & mask. Records are written with plain stores and published in batches by
 * one Atomics.store of the producer position (the release); the reader frees space with an
 * Atomics.store of the consumer position after the handler has returned.
 *
 * Sleep/wake (no lost wake-ups, because all Atomics operations are sequentially consistent):
 *   reader: store READER_SLEEPING=1, reload producer pos, waitAsync(producer pos, seen value).
 *   writer: store producer pos, then if READER_SLEEPING swaps 1→0, notify(producer pos).
 *   writer (ring full): store WRITER_WANTED_POSITION, store WRITER_WAITING=1, reload consumer
 *           pos, waitAsync(consumer pos, seen value) unless it already reached the wanted pos.
 *   reader: store consumer pos, then if WRITER_WAITING and consumer pos >= wanted and
 *           WRITER_WAITING swaps 1→0, notify(consumer pos).
 * The protocol loses nothing, but Node 20's waitAsync was seen to: a notified waiter whose
 * promise never settled. So a sleeping end also checks every WAKEUP_CHECK_MS (ring-reader.ts)
 * and runs when what it waits for has been there at two checks in a row.
 */
import assert from 'node:assert/strict';

const CACHE_LINE_BYTES = 64;

export const PRODUCER_POSITION_OFFSET = 0;
export const CONSUMER_POSITION_OFFSET = CACHE_LINE_BYTES;
export const READER_SLEEPING_OFFSET = 2 * CACHE_LINE_BYTES;
export const WRITER_WAITING_OFFSET = 3 * CACHE_LINE_BYTES;
export const WRITER_WANTED_POSITION_OFFSET = WRITER_WAITING_OFFSET + 4;
export const CAPACITY_OFFSET = 4 * CACHE_LINE_BYTES;
export const MAGIC_OFFSET = CAPACITY_OFFSET + 4;
export const HEADER_BYTES = 5 * CACHE_LINE_BYTES;

/** Int32Array indexes of the control words (for Atomics). */
export const PRODUCER_POSITION_WORD = PRODUCER_POSITION_OFFSET / 4;
export const CONSUMER_POSITION_WORD = CONSUMER_POSITION_OFFSET / 4;
export const READER_SLEEPING_WORD = READER_SLEEPING_OFFSET / 4;
export const WRITER_WAITING_WORD = WRITER_WAITING_OFFSET / 4;
export const WRITER_WANTED_POSITION_WORD = WRITER_WANTED_POSITION_OFFSET / 4;
export const CAPACITY_WORD = CAPACITY_OFFSET / 4;
export const MAGIC_WORD = MAGIC_OFFSET / 4;

/** "WRNG": tells a ring apart from any other SharedArrayBuffer handed to a reader/writer. */
export const RING_MAGIC = 0x57524e47;

export const RECORD_ALIGNMENT_BYTES = 8;
export const RECORD_HEADER_BYTES = 8;
export const RECORD_BODY_BYTES_OFFSET = 0;
export const RECORD_KIND_OFFSET = 4;
export const RECORD_FLAGS_OFFSET = 5;
/** Prefix of a FIRST fragment's body: [u32 totalBodyBytes][u32 reserved]. */
export const FRAGMENT_PREFIX_BYTES = 8;
export const FRAGMENT_TOTAL_BYTES_OFFSET = 0;
export const FRAGMENT_RESERVED_OFFSET = 4;

/** Kinds 0..127 belong to callers; the upper half is reserved for the ring itself. */
export const KIND_USER_MAX = 127;
/** Fills the data area from a record's end to the wrap point; readers skip it. */
export const KIND_PADDING = 255;

/** A whole record is FIRST|LAST; fragments carry one or neither (MIDDLE). */
export const FLAG_FIRST = 1;
export const FLAG_LAST = 2;
export const FLAGS_WHOLE = FLAG_FIRST | FLAG_LAST;

/** Small rings make large bodies fragment into many pieces and wake threads more often. */
export const RING_CAPACITY_MIN_BYTES = 64 * 1024;
/** 32-bit shared positions stay exact only while a distance fits in an int32. */
export const RING_CAPACITY_MAX_BYTES = 1 << 30;

/**
 * A record (header + body + alignment) is at most a quarter of the ring, so the writer can
 * keep filling one part of the ring while the reader drains another, and any one record (plus
 * the padding a wrap may need) fits once half the ring is free.
 */
export function maxRecordBytes(capacityBytes: number): number {
  return capacityBytes / 4;
}

/** The largest body sent as one record; larger bodies are fragmented. */
export function maxWholeBodyBytes(capacityBytes: number): number {
  return maxRecordBytes(capacityBytes) - RECORD_HEADER_BYTES;
}

/** Bytes one record with this body occupies in the data area. */
export function recordBytes(bodyBytes: number): number {
  return (RECORD_HEADER_BYTES + bodyBytes + RECORD_ALIGNMENT_BYTES - 1) & ~(RECORD_ALIGNMENT_BYTES - 1);
}

export function createRingBuffer(capacityBytes: number): SharedArrayBuffer {
  assert(
    Number.isInteger(capacityBytes) && capacityBytes > 0 && (capacityBytes & (capacityBytes - 1)) === 0,
    `ring capacity ${capacityBytes} bytes is not a power of two`,
  );
  assert(
    capacityBytes >= RING_CAPACITY_MIN_BYTES && capacityBytes <= RING_CAPACITY_MAX_BYTES,
    `ring capacity ${capacityBytes} bytes outside [${RING_CAPACITY_MIN_BYTES}, ${RING_CAPACITY_MAX_BYTES}]`,
  );
  const sab = new SharedArrayBuffer(HEADER_BYTES + capacityBytes);
  const words = new Int32Array(sab, 0, HEADER_BYTES / 4);
  words[CAPACITY_WORD] = capacityBytes;
  words[MAGIC_WORD] = RING_MAGIC;
  return sab;
}

/** Capacity of the data area, after checking that `sab` was made by createRingBuffer. */
export function ringCapacityBytes(sab: SharedArrayBuffer, name: string): number {
  assert(sab.byteLength > HEADER_BYTES, `ring ${name}: buffer of ${sab.byteLength} bytes has no data area`);
  const words = new Int32Array(sab, 0, HEADER_BYTES / 4);
  const magic = Atomics.load(words, MAGIC_WORD);
  assert.equal(magic, RING_MAGIC, `ring ${name}: magic ${magic} is not ${RING_MAGIC}; not a ring buffer`);
  const capacityBytes = Atomics.load(words, CAPACITY_WORD);
  assert.equal(
    HEADER_BYTES + capacityBytes,
    sab.byteLength,
    `ring ${name}: capacity ${capacityBytes} bytes does not match buffer of ${sab.byteLength} bytes`,
  );
  return capacityBytes;
}

/** Bytes published but not yet freed, readable from any thread (for metrics). */
export function ringOccupancyBytes(sab: SharedArrayBuffer): number {
  const words = new Int32Array(sab, 0, HEADER_BYTES / 4);
  return (Atomics.load(words, PRODUCER_POSITION_WORD) - Atomics.load(words, CONSUMER_POSITION_WORD)) | 0;
}
