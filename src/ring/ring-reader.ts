/**
 * The consuming end of one SPSC ring (layout in ring-layout.ts). Owned by exactly one thread.
 *
 * poll() hands published records to a handler as views into the ring and frees their space
 * (Atomics.store of the consumer position) once the handler has returned. start() runs poll
 * in batches, yielding to the event loop between them; when the ring is empty it spins a
 * few microseconds, then sleeps in Atomics.waitAsync until the writer publishes.
 */
import assert from 'node:assert/strict';
import { waitAsync } from './atomics-wait-async.js';
import { LostWakeupCheck } from './lost-wakeup.js';
import {
  CONSUMER_POSITION_WORD,
  FLAG_FIRST,
  FLAG_LAST,
  FLAGS_WHOLE,
  FRAGMENT_PREFIX_BYTES,
  FRAGMENT_TOTAL_BYTES_OFFSET,
  HEADER_BYTES,
  KIND_PADDING,
  PRODUCER_POSITION_WORD,
  READER_SLEEPING_WORD,
  RECORD_BODY_BYTES_OFFSET,
  RECORD_FLAGS_OFFSET,
  RECORD_HEADER_BYTES,
  RECORD_KIND_OFFSET,
  WRITER_WAITING_WORD,
  WRITER_WANTED_POSITION_WORD,
  recordBytes,
  ringCapacityBytes,
} from './ring-layout.js';

/** The body is a view into the ring, valid only during the call: copy what you keep. */
export type RecordHandler = (kind: number, body: Buffer) => void;

/** Records per batch before start() yields, so this thread's timers and sockets get a turn. */
const BATCH_RECORDS_MAX = 4096;
/**
 * Spin this long on an empty ring before sleeping: a wake-up costs ~40 µs while a spinning
 * reader sees a record in < 1 µs, but on a 2-core machine a long spin steals the writer's core.
 */
const READER_SPIN_MS = 0.005;
/** Spin iterations between clock reads (a clock read costs more than a load). */
const SPIN_LOADS_PER_CLOCK_READ = 32;
/**
 * While the reader runs, a ref'd timer keeps its thread alive (Node 20: a pending waitAsync does
 * not) and checks, this often, for a wake-up that never came: under load on Node 20 a
 * waitAsync promise was seen never to settle after the writer's notify (the writer had cleared
 * READER_SLEEPING, so it did notify), leaving a shard with unread records and its clients with
 * no answers. A lost wake-up then costs one to two of these instead of the node.
 */
export const WAKEUP_CHECK_MS = 100;

export interface RingEndOptions {
  /** Told each time the wake-up check found records a notify should have woken this end for. */
  onLostWakeup?: (ringName: string, lostWakeups: number) => void;
}

/** RingEndOptions that report lost wake-ups as warnings through `warn`. */
export function warnLostWakeups(warn: (message: string) => void): RingEndOptions {
  return { onLostWakeup: (ringName, lostWakeups) => warn(`ring ${ringName}: a wake-up was lost and caught by the ${WAKEUP_CHECK_MS} ms check (${lostWakeups} so far)`) };
}

export class RingReader {
  readonly capacityBytes: number;

  private readonly ringName: string;
  private readonly sab: SharedArrayBuffer;
  private readonly mask: number;
  /** Inside one long poll, free space every this many bytes so a waiting writer refills early. */
  private readonly freeStepBytes: number;
  private readonly words: Int32Array;
  private readonly dataBuffer: Buffer;
  /** Little-endian header fields, as drawn in ring-layout.ts. */
  private readonly dataView: DataView;

  /** Position of the next record to read (records before it may not be freed yet). */
  private headPosition: number;
  private publishedHeadPosition: number;
  /** Producer position last seen; reread only once the reader catches up with it. */
  private limitPosition: number;

  private fragment: Buffer | undefined;
  private fragmentFilledBytes = 0;
  private fragmentKind = 0;

  private running = false;
  /** Bumped by start() and stop() so a wake-up from an earlier run is ignored. */
  private generation = 0;
  private sleeping = false;
  private handler: RecordHandler | undefined;
  private batchEnd: (() => void) | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private wakeupCheck: NodeJS.Timeout | undefined;
  /** Waits named by sleepCount. */
  private readonly lostWakeup = new LostWakeupCheck();
  private readonly onLostWakeup: ((ringName: string, lostWakeups: number) => void) | undefined;

  private recordsReadCount = 0;
  private bodyBytesRead = 0;
  private sleepCount = 0;
  private writerWakeCount = 0;

  constructor(sab: SharedArrayBuffer, name: string, opts: RingEndOptions = {}) {
    this.ringName = name;
    this.onLostWakeup = opts.onLostWakeup;
    this.sab = sab;
    this.capacityBytes = ringCapacityBytes(sab, name);
    this.mask = this.capacityBytes - 1;
    this.freeStepBytes = this.capacityBytes / 8;
    this.words = new Int32Array(sab, 0, HEADER_BYTES / 4);
    this.dataBuffer = Buffer.from(sab, HEADER_BYTES, this.capacityBytes);
    this.dataView = new DataView(sab, HEADER_BYTES, this.capacityBytes);
    this.headPosition = Atomics.load(this.words, CONSUMER_POSITION_WORD) >>> 0;
    this.publishedHeadPosition = this.headPosition;
    this.limitPosition = this.readProducerPosition();
  }

  get name(): string {
    return this.ringName;
  }

  /** Handles up to maxRecords published records; returns how many reached the handler. */
  poll(onRecord: RecordHandler, maxRecords: number = Number.POSITIVE_INFINITY): number {
    let handled = 0;
    try {
      while (handled < maxRecords) {
        if (this.headPosition === this.limitPosition) {
          this.limitPosition = this.readProducerPosition();
          if (this.headPosition === this.limitPosition) break;
        }
        const index = this.headPosition & this.mask;
        const bodyBytes = this.dataView.getUint32(index + RECORD_BODY_BYTES_OFFSET, true);
        const kind = this.dataView.getUint8(index + RECORD_KIND_OFFSET);
        const flags = this.dataView.getUint8(index + RECORD_FLAGS_OFFSET);
        // Consumed now, freed only by publishHead() after the handler has returned.
        this.headPosition += recordBytes(bodyBytes);
        if (kind === KIND_PADDING) continue;
        const bodyIndex = index + RECORD_HEADER_BYTES;
        if (flags === FLAGS_WHOLE) {
          handled++;
          this.recordsReadCount++;
          this.bodyBytesRead += bodyBytes;
          // Buffer.from(sab, …) makes the view faster than subarray() does.
          onRecord(kind, Buffer.from(this.sab, HEADER_BYTES + bodyIndex, bodyBytes));
        } else {
          const body = this.takeFragment(kind, flags, bodyIndex, bodyBytes);
          if (body !== undefined) {
            handled++;
            this.recordsReadCount++;
            onRecord(kind, body);
          }
        }
        if (this.headPosition - this.publishedHeadPosition >= this.freeStepBytes) this.publishHead();
      }
    } finally {
      this.publishHead();
    }
    return handled;
  }

  start(onRecord: RecordHandler, onBatchEnd?: () => void): void {
    assert(!this.running, `ring ${this.ringName}: reader already started`);
    this.running = true;
    this.generation++;
    this.handler = onRecord;
    this.batchEnd = onBatchEnd;
    // Node 20: a pending Atomics.waitAsync alone does not keep a thread's event loop alive.
    this.wakeupCheck = setInterval(this.checkWakeup, WAKEUP_CHECK_MS);
    this.immediate = setImmediate(this.runBatch);
  }

  stop(): void {
    if (!this.running) return;
    this.running = false;
    this.generation++;
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.immediate = undefined;
    if (this.wakeupCheck !== undefined) clearInterval(this.wakeupCheck);
    this.wakeupCheck = undefined;
    if (this.sleeping) {
      this.sleeping = false;
      Atomics.store(this.words, READER_SLEEPING_WORD, 0);
      // Settles this reader's own pending waitAsync so no promise outlives the run.
      Atomics.notify(this.words, PRODUCER_POSITION_WORD);
    }
  }

  /** Bytes published by the writer and not yet freed by this reader. */
  get occupancyBytes(): number {
    return this.readProducerPosition() - this.publishedHeadPosition;
  }

  /** Records handed to a handler (a fragmented record counts once). */
  get recordsRead(): number {
    return this.recordsReadCount;
  }

  /** Body bytes read (headers, prefixes and padding excluded). */
  get bytesRead(): number {
    return this.bodyBytesRead;
  }

  /** Times start() went to sleep on an empty ring. */
  get sleeps(): number {
    return this.sleepCount;
  }

  /** Times freeing space woke a writer waiting for it. */
  get writerWakes(): number {
    return this.writerWakeCount;
  }

  /** Times the wake-up check found records while this reader slept un-woken. */
  get lostWakeups(): number {
    return this.lostWakeup.count;
  }

  private readProducerPosition(): number {
    const shared = Atomics.load(this.words, PRODUCER_POSITION_WORD);
    return this.headPosition + ((shared - (this.headPosition | 0)) | 0);
  }

  /** Copies one fragment into the reassembly buffer; returns the body once the LAST one is in. */
  private takeFragment(kind: number, flags: number, bodyIndex: number, bodyBytes: number): Buffer | undefined {
    let chunkIndex = bodyIndex;
    let chunkBytes = bodyBytes;
    let fragment = this.fragment;
    if ((flags & FLAG_FIRST) !== 0) {
      assert(fragment === undefined, `ring ${this.ringName}: FIRST fragment while one is being reassembled`);
      fragment = Buffer.allocUnsafe(this.dataView.getUint32(bodyIndex + FRAGMENT_TOTAL_BYTES_OFFSET, true));
      this.fragment = fragment;
      this.fragmentFilledBytes = 0;
      this.fragmentKind = kind;
      chunkIndex += FRAGMENT_PREFIX_BYTES;
      chunkBytes -= FRAGMENT_PREFIX_BYTES;
    }
    assert(fragment !== undefined, `ring ${this.ringName}: fragment of kind ${kind} without a FIRST`);
    assert.equal(kind, this.fragmentKind, `ring ${this.ringName}: fragment kind changed mid-record`);
    assert(
      this.fragmentFilledBytes + chunkBytes <= fragment.length,
      `ring ${this.ringName}: fragments exceed the ${fragment.length} bytes announced`,
    );
    this.dataBuffer.copy(fragment, this.fragmentFilledBytes, chunkIndex, chunkIndex + chunkBytes);
    this.fragmentFilledBytes += chunkBytes;
    this.bodyBytesRead += chunkBytes;
    if ((flags & FLAG_LAST) === 0) return undefined;
    assert.equal(this.fragmentFilledBytes, fragment.length, `ring ${this.ringName}: LAST fragment before the body is complete`);
    this.fragment = undefined;
    return fragment;
  }

  /** Frees what was consumed and wakes the writer if it waits for the space now free. */
  private publishHead(): void {
    if (this.headPosition === this.publishedHeadPosition) return;
    const head = this.headPosition | 0;
    Atomics.store(this.words, CONSUMER_POSITION_WORD, head);
    this.publishedHeadPosition = this.headPosition;
    if (Atomics.load(this.words, WRITER_WAITING_WORD) !== 1) return;
    const wantedPosition = Atomics.load(this.words, WRITER_WANTED_POSITION_WORD);
    if (((head - wantedPosition) | 0) < 0) return;
    if (Atomics.compareExchange(this.words, WRITER_WAITING_WORD, 1, 0) !== 1) return;
    Atomics.notify(this.words, CONSUMER_POSITION_WORD);
    this.writerWakeCount++;
  }

  private hasData(): boolean {
    return Atomics.load(this.words, PRODUCER_POSITION_WORD) !== (this.headPosition | 0);
  }

  private spinForData(): boolean {
    const deadlineMs = performance.now() + READER_SPIN_MS;
    const head = this.headPosition | 0;
    do {
      for (let i = 0; i < SPIN_LOADS_PER_CLOCK_READ; i++) {
        if (Atomics.load(this.words, PRODUCER_POSITION_WORD) !== head) return true;
      }
    } while (performance.now() < deadlineMs);
    return false;
  }

  private readonly runBatch = (): void => {
    this.immediate = undefined;
    const handler = this.handler;
    if (!this.running || handler === undefined) return;
    const handled = this.poll(handler, BATCH_RECORDS_MAX);
    if (handled > 0) this.batchEnd?.();
    if (!this.running) return;
    if (this.hasData() || this.spinForData()) {
      this.immediate = setImmediate(this.runBatch);
      return;
    }
    this.sleep();
  };

  /**
   * Asleep with records published at two checks in a row (a wake-up on its way takes
   * microseconds; one check may fall just before it): the notify's wake-up was lost. Runs now,
   * and ignores that wait's late settling.
   */
  private readonly checkWakeup = (): void => {
    if (!this.lostWakeup.isLost(this.running && this.sleeping && this.hasData(), this.sleepCount)) return;
    this.generation++;
    this.sleeping = false;
    Atomics.store(this.words, READER_SLEEPING_WORD, 0);
    this.onLostWakeup?.(this.ringName, this.lostWakeup.count);
    this.runBatch();
  };

  private sleep(): void {
    Atomics.store(this.words, READER_SLEEPING_WORD, 1);
    const seenPosition = Atomics.load(this.words, PRODUCER_POSITION_WORD);
    const result =
      seenPosition === (this.headPosition | 0) ? waitAsync(this.words, PRODUCER_POSITION_WORD, seenPosition) : undefined;
    if (result === undefined || !result.async) {
      // Published between the checks: no need to sleep.
      Atomics.store(this.words, READER_SLEEPING_WORD, 0);
      this.immediate = setImmediate(this.runBatch);
      return;
    }
    this.sleeping = true;
    this.sleepCount++;
    const generation = this.generation;
    void result.value.then(() => {
      if (generation !== this.generation) return;
      this.sleeping = false;
      Atomics.store(this.words, READER_SLEEPING_WORD, 0);
      this.runBatch();
    });
  }
}
