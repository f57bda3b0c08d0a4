/**
 * The producing end of one SPSC ring (layout in ring-layout.ts). Owned by exactly one thread.
 *
 * Records are claimed and written with plain stores; flush() publishes the batch with one
 * Atomics.store of the producer position and wakes a sleeping reader with one notify.
 * When the ring lacks space a record goes to an ordered in-memory pending queue, and the
 * writer waits (Atomics.waitAsync on the consumer position) for the reader to free half the
 * ring, then drains the queue by itself. Nothing is dropped or reordered.
 */
import assert from 'node:assert/strict';
import { waitAsync } from './atomics-wait-async.js';
import { LostWakeupCheck } from './lost-wakeup.js';
import { PendingQueue } from './pending-queue.js';
import { WAKEUP_CHECK_MS, type RingEndOptions } from './ring-reader.js';
import {
  CONSUMER_POSITION_WORD,
  FLAG_FIRST,
  FLAG_LAST,
  FLAGS_WHOLE,
  FRAGMENT_PREFIX_BYTES,
  FRAGMENT_RESERVED_OFFSET,
  FRAGMENT_TOTAL_BYTES_OFFSET,
  HEADER_BYTES,
  KIND_PADDING,
  KIND_USER_MAX,
  PRODUCER_POSITION_WORD,
  READER_SLEEPING_WORD,
  RECORD_BODY_BYTES_OFFSET,
  RECORD_FLAGS_OFFSET,
  RECORD_HEADER_BYTES,
  RECORD_KIND_OFFSET,
  WRITER_WAITING_WORD,
  WRITER_WANTED_POSITION_WORD,
  maxWholeBodyBytes,
  recordBytes,
  ringCapacityBytes,
} from './ring-layout.js';

const EMPTY_BYTES = new Uint8Array(0);
/** The u32 totalBodyBytes field of a FIRST fragment bounds one body. */
const BODY_BYTES_MAX = 2 ** 32 - 1;

export class RingWriter {
  readonly capacityBytes: number;
  /** Called (from a microtask) once the pending queue becomes empty again. */
  onDrain: (() => void) | undefined;

  private readonly ringName: string;
  private readonly mask: number;
  private readonly maxWholeBodyBytes: number;
  private readonly words: Int32Array;
  private readonly data: Uint8Array;
  /** Little-endian header fields, as drawn in ring-layout.ts. */
  private readonly dataView: DataView;
  private readonly pending = new PendingQueue();

  /** Position after the last record written (published or not). */
  private tailPosition: number;
  private publishedPosition: number;
  /** Last consumer position seen; reread only when the ring looks full. */
  private consumerPositionCached: number;
  private waitingForSpace = false;
  /** Bumped per wait for space, so a wait the check gave up on is ignored when it settles late. */
  private spaceWaitGeneration = 0;
  /** While records wait for space: keeps the thread alive and checks for a lost wake-up (ring-reader.ts WAKEUP_CHECK_MS). */
  private wakeupCheck: NodeJS.Timeout | undefined;
  /** Waits named by spaceWaitGeneration. */
  private readonly lostWakeup = new LostWakeupCheck();
  private readonly onLostWakeup: ((ringName: string, lostWakeups: number) => void) | undefined;
  private drainNotifyScheduled = false;
  private closed = false;

  private recordsWrittenCount = 0;
  private bodyBytesWritten = 0;
  private ringFullCount = 0;
  private spaceWaitCount = 0;
  private readerWakeCount = 0;

  constructor(sab: SharedArrayBuffer, name: string, opts: RingEndOptions = {}) {
    this.ringName = name;
    this.onLostWakeup = opts.onLostWakeup;
    this.capacityBytes = ringCapacityBytes(sab, name);
    this.mask = this.capacityBytes - 1;
    this.maxWholeBodyBytes = maxWholeBodyBytes(this.capacityBytes);
    this.words = new Int32Array(sab, 0, HEADER_BYTES / 4);
    this.data = new Uint8Array(sab, HEADER_BYTES, this.capacityBytes);
    this.dataView = new DataView(sab, HEADER_BYTES, this.capacityBytes);
    this.tailPosition = Atomics.load(this.words, PRODUCER_POSITION_WORD) >>> 0;
    this.publishedPosition = this.tailPosition;
    this.consumerPositionCached = this.readConsumerPosition();
  }

  get name(): string {
    return this.ringName;
  }

  write(kind: number, body: Uint8Array): boolean {
    return this.write2(kind, body, EMPTY_BYTES);
  }

  write2(kind: number, a: Uint8Array, b: Uint8Array): boolean {
    // Checked with `if` so the hot path builds no message strings.
    if (this.closed) assert.fail(`ring ${this.ringName}: write after close`);
    if ((kind & KIND_USER_MAX) !== kind) assert.fail(`ring ${this.ringName}: kind ${kind} outside 0..${KIND_USER_MAX}`);
    const totalBodyBytes = a.length + b.length;
    if (totalBodyBytes > BODY_BYTES_MAX) assert.fail(`ring ${this.ringName}: body of ${totalBodyBytes} bytes > ${BODY_BYTES_MAX}`);
    if (this.pending.size > 0) {
      this.drainPending();
      if (this.pending.size > 0) {
        this.enqueue(kind, a, b, totalBodyBytes, 0);
        return false;
      }
    }
    let sentBodyBytes = 0;
    if (totalBodyBytes <= this.maxWholeBodyBytes) {
      if (this.tryWriteWhole(kind, a, b)) return true;
    } else {
      sentBodyBytes = this.writeFragments(kind, a, b, totalBodyBytes, 0);
      if (sentBodyBytes === totalBodyBytes) return true;
    }
    this.enqueue(kind, a, b, totalBodyBytes, sentBodyBytes);
    this.ringFullCount++;
    // The reader can only free space it can see: publish before waiting for it.
    this.publish();
    this.waitForSpace();
    return false;
  }

  flush(): void {
    if (this.closed) return;
    if (this.pending.size > 0) this.drainPending();
    this.publish();
    if (this.pending.size > 0) this.waitForSpace();
  }

  /** Body bytes waiting outside the ring. */
  get pendingBytes(): number {
    return this.pending.pendingBytes;
  }

  get pendingRecords(): number {
    return this.pending.size;
  }

  /** Bytes written (published or not) that the reader has not freed yet. */
  get occupancyBytes(): number {
    return this.tailPosition - this.readConsumerPosition();
  }

  /** Records wholly in the ring (a fragmented record counts once its last fragment is in). */
  get recordsWritten(): number {
    return this.recordsWrittenCount;
  }

  /** Body bytes put in the ring (headers, prefixes and padding excluded). */
  get bytesWritten(): number {
    return this.bodyBytesWritten;
  }

  /** Times a write found the ring full and had to queue. */
  get fullCount(): number {
    return this.ringFullCount;
  }

  /** Times the writer went to sleep waiting for the reader to free space. */
  get spaceWaits(): number {
    return this.spaceWaitCount;
  }

  /** Times a publish woke a sleeping reader. */
  get readerWakes(): number {
    return this.readerWakeCount;
  }

  /** Publishes what was written, stops waiting for space and drops records still pending. */
  close(): void {
    if (this.closed) return;
    this.publish();
    this.closed = true;
    if (this.waitingForSpace) {
      Atomics.store(this.words, WRITER_WAITING_WORD, 0);
      // Settles this writer's own pending waitAsync so no promise outlives the writer.
      Atomics.notify(this.words, CONSUMER_POSITION_WORD);
      this.stopWaiting();
    }
    this.pending.clear();
  }

  private readConsumerPosition(): number {
    const shared = Atomics.load(this.words, CONSUMER_POSITION_WORD);
    return this.tailPosition - (((this.tailPosition | 0) - shared) | 0);
  }

  /** Reserves `bytes` contiguous bytes (wrapping with padding if needed); -1 if the ring lacks space. */
  private claim(bytes: number): number {
    let index = this.tailPosition & this.mask;
    const toEndBytes = this.capacityBytes - index;
    const neededBytes = bytes <= toEndBytes ? bytes : toEndBytes + bytes;
    if (this.tailPosition + neededBytes - this.consumerPositionCached > this.capacityBytes) {
      this.consumerPositionCached = this.readConsumerPosition();
      if (this.tailPosition + neededBytes - this.consumerPositionCached > this.capacityBytes) return -1;
    }
    if (bytes > toEndBytes) {
      this.writeHeader(index, toEndBytes - RECORD_HEADER_BYTES, KIND_PADDING, FLAGS_WHOLE);
      this.tailPosition += toEndBytes;
      index = 0;
    }
    this.tailPosition += bytes;
    return index;
  }

  private writeHeader(index: number, bodyBytes: number, kind: number, flags: number): void {
    this.dataView.setUint32(index + RECORD_BODY_BYTES_OFFSET, bodyBytes, true);
    this.dataView.setUint8(index + RECORD_KIND_OFFSET, kind);
    this.dataView.setUint8(index + RECORD_FLAGS_OFFSET, flags);
  }

  private tryWriteWhole(kind: number, a: Uint8Array, b: Uint8Array): boolean {
    const bodyBytes = a.length + b.length;
    const index = this.claim(recordBytes(bodyBytes));
    if (index < 0) return false;
    this.writeHeader(index, bodyBytes, kind, FLAGS_WHOLE);
    const bodyIndex = index + RECORD_HEADER_BYTES;
    if (a.length > 0) this.data.set(a, bodyIndex);
    if (b.length > 0) this.data.set(b, bodyIndex + a.length);
    this.recordsWrittenCount++;
    this.bodyBytesWritten += bodyBytes;
    return true;
  }

  /**
   * Writes as many fragments of the body as fit. `a` then `b` hold the body from
   * `sentBodyBytes` on. Returns how many of their bytes went into the ring.
   */
  private writeFragments(kind: number, a: Uint8Array, b: Uint8Array, totalBodyBytes: number, sentBodyBytes: number): number {
    const partsBytes = a.length + b.length;
    let doneBytes = 0;
    while (doneBytes < partsBytes) {
      const bodyPosition = sentBodyBytes + doneBytes;
      const first = bodyPosition === 0;
      const prefixBytes = first ? FRAGMENT_PREFIX_BYTES : 0;
      const chunkBytes = Math.min(partsBytes - doneBytes, this.maxWholeBodyBytes - prefixBytes);
      const last = bodyPosition + chunkBytes === totalBodyBytes;
      const index = this.claim(recordBytes(prefixBytes + chunkBytes));
      if (index < 0) break;
      this.writeHeader(index, prefixBytes + chunkBytes, kind, (first ? FLAG_FIRST : 0) | (last ? FLAG_LAST : 0));
      let bodyIndex = index + RECORD_HEADER_BYTES;
      if (first) {
        this.dataView.setUint32(bodyIndex + FRAGMENT_TOTAL_BYTES_OFFSET, totalBodyBytes, true);
        this.dataView.setUint32(bodyIndex + FRAGMENT_RESERVED_OFFSET, 0, true);
        bodyIndex += FRAGMENT_PREFIX_BYTES;
      }
      copyParts(a, b, doneBytes, chunkBytes, this.data, bodyIndex);
      doneBytes += chunkBytes;
      this.bodyBytesWritten += chunkBytes;
      if (last) this.recordsWrittenCount++;
    }
    return doneBytes;
  }

  /** Copies the unsent part of a body into the pending queue (the caller may reuse its buffers). */
  private enqueue(kind: number, a: Uint8Array, b: Uint8Array, totalBodyBytes: number, sentBodyBytes: number): void {
    const restBytes = totalBodyBytes - sentBodyBytes;
    const rest = this.pending.allocate(restBytes);
    copyParts(a, b, sentBodyBytes, restBytes, rest, 0);
    this.pending.push({ kind, rest, totalBodyBytes, sentBodyBytes });
  }

  private drainPending(): void {
    for (let record = this.pending.peek(); record !== undefined; record = this.pending.peek()) {
      if (record.totalBodyBytes <= this.maxWholeBodyBytes) {
        if (!this.tryWriteWhole(record.kind, record.rest, EMPTY_BYTES)) return;
        this.pending.advanceHead(record, record.totalBodyBytes);
      } else {
        const restOffset = record.sentBodyBytes - (record.totalBodyBytes - record.rest.length);
        const sentBytes = this.writeFragments(
          record.kind,
          record.rest.subarray(restOffset),
          EMPTY_BYTES,
          record.totalBodyBytes,
          record.sentBodyBytes,
        );
        this.pending.advanceHead(record, sentBytes);
        if (record.sentBodyBytes < record.totalBodyBytes) return;
      }
      this.pending.shift();
      if (this.pending.size === 0) this.scheduleDrainNotify();
    }
  }

  private scheduleDrainNotify(): void {
    if (this.drainNotifyScheduled) return;
    this.drainNotifyScheduled = true;
    // A microtask, so onDrain never runs inside the caller's write().
    queueMicrotask(() => {
      this.drainNotifyScheduled = false;
      if (this.closed || this.pending.size > 0) return;
      this.onDrain?.();
    });
  }

  private publish(): void {
    if (this.tailPosition === this.publishedPosition) return;
    Atomics.store(this.words, PRODUCER_POSITION_WORD, this.tailPosition | 0);
    this.publishedPosition = this.tailPosition;
    if (
      Atomics.load(this.words, READER_SLEEPING_WORD) === 1 &&
      Atomics.compareExchange(this.words, READER_SLEEPING_WORD, 1, 0) === 1
    ) {
      Atomics.notify(this.words, PRODUCER_POSITION_WORD);
      this.readerWakeCount++;
    }
  }

  /**
   * Sleeps until the reader has freed half the ring, which fits any one record plus the
   * padding a wrap may need. Waiting for half, not for just the next record, makes each
   * wake-up move a large batch. Precondition: everything written is published.
   */
  private waitForSpace(): void {
    if (this.waitingForSpace || this.closed) return;
    while (this.pending.size > 0) {
      assert.equal(this.tailPosition, this.publishedPosition, `ring ${this.ringName}: waiting with unpublished records`);
      const wantedPosition = (this.tailPosition - this.capacityBytes / 2) | 0;
      Atomics.store(this.words, WRITER_WANTED_POSITION_WORD, wantedPosition);
      Atomics.store(this.words, WRITER_WAITING_WORD, 1);
      const seenPosition = Atomics.load(this.words, CONSUMER_POSITION_WORD);
      if (((seenPosition - wantedPosition) | 0) < 0) {
        const result = waitAsync(this.words, CONSUMER_POSITION_WORD, seenPosition);
        // Not async: the reader moved since the load above; look again.
        if (!result.async) continue;
        this.waitingForSpace = true;
        this.spaceWaitCount++;
        const generation = ++this.spaceWaitGeneration;
        this.wakeupCheck = setInterval(() => this.checkWakeup(wantedPosition), WAKEUP_CHECK_MS);
        void result.value.then(() => {
          if (generation === this.spaceWaitGeneration && this.waitingForSpace) this.onSpaceFreed();
        });
        return;
      }
      Atomics.store(this.words, WRITER_WAITING_WORD, 0);
      const pendingRecordsBefore = this.pending.size;
      const pendingBytesBefore = this.pending.pendingBytes;
      this.drainPending();
      assert(
        this.pending.size < pendingRecordsBefore || this.pending.pendingBytes < pendingBytesBefore,
        `ring ${this.ringName}: half the ring free but no pending record fit`,
      );
      this.publish();
    }
  }

  private readonly onSpaceFreed = (): void => {
    this.stopWaiting();
    if (this.closed) return;
    this.drainPending();
    this.publish();
    this.waitForSpace();
  };

  private stopWaiting(): void {
    this.waitingForSpace = false;
    this.spaceWaitGeneration++;
    if (this.wakeupCheck !== undefined) clearInterval(this.wakeupCheck);
    this.wakeupCheck = undefined;
  }

  /** The reader freed the space this writer waits for, at two checks in a row, and no wake-up came: go on now. */
  private checkWakeup(wantedPosition: number): void {
    const freed = this.waitingForSpace && ((Atomics.load(this.words, CONSUMER_POSITION_WORD) - wantedPosition) | 0) >= 0;
    if (!this.lostWakeup.isLost(freed, this.spaceWaitGeneration)) return;
    this.onLostWakeup?.(this.ringName, this.lostWakeup.count);
    this.onSpaceFreed();
  }

  /** Times the wake-up check found the space this writer waited for freed, un-woken. */
  get lostWakeups(): number {
    return this.lostWakeup.count;
  }
}

/** Copies `count` bytes starting at `from` of the concatenation a‖b into dst at `at`. */
function copyParts(a: Uint8Array, b: Uint8Array, from: number, count: number, dst: Uint8Array, at: number): void {
  let fromBytes = from;
  let countBytes = count;
  let atIndex = at;
  if (fromBytes < a.length) {
    const fromA = Math.min(countBytes, a.length - fromBytes);
    dst.set(a.subarray(fromBytes, fromBytes + fromA), atIndex);
    atIndex += fromA;
    countBytes -= fromA;
    fromBytes = a.length;
  }
  if (countBytes > 0) {
    const bFrom = fromBytes - a.length;
    dst.set(b.subarray(bFrom, bFrom + countBytes), atIndex);
  }
}
