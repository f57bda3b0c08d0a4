/**
 * The writer's overflow: records (or the unsent tail of a fragmented record) that did not fit
 * in the ring, kept in order until the reader frees space. Bodies are private copies.
 */

export interface PendingRecord {
  readonly kind: number;
  /** The bytes still to send: the body from `sentBodyBytes` on (a copy owned by the queue). */
  readonly rest: Uint8Array;
  /** Whole body length; > rest.length once some fragments already went into the ring. */
  readonly totalBodyBytes: number;
  /** Bytes of the body already in the ring (always 0 for a record sent whole). */
  sentBodyBytes: number;
}

/** Below this many consumed slots the array is not worth compacting. */
const COMPACT_MIN_SLOTS = 1024;
/**
 * Queued bodies are copied into shared chunks of this size: allocating one ArrayBuffer per
 * record costs more than the copy itself (~2-5 µs for 4 KiB), and a full ring queues many.
 */
const ARENA_CHUNK_BYTES = 256 * 1024;
/** Bodies larger than this get their own allocation so one does not waste most of a chunk. */
const ARENA_BODY_MAX_BYTES = ARENA_CHUNK_BYTES / 8;

export class PendingQueue {
  private records: Array<PendingRecord | undefined> = [];
  private headIndex = 0;
  private bytes = 0;
  private chunk: Uint8Array = Buffer.allocUnsafeSlow(0);
  private chunkUsedBytes = 0;

  get size(): number {
    return this.records.length - this.headIndex;
  }

  /** Body bytes not yet in the ring. */
  get pendingBytes(): number {
    return this.bytes;
  }

  /** Room for a body of `bodyBytes` that stays valid until its record is shifted off. */
  allocate(bodyBytes: number): Uint8Array {
    // allocUnsafeSlow: not zero-filled (every byte is overwritten by the copy) and not pooled.
    if (bodyBytes > ARENA_BODY_MAX_BYTES) return Buffer.allocUnsafeSlow(bodyBytes);
    if (this.chunkUsedBytes + bodyBytes > this.chunk.length) {
      // Records still queued keep the old chunk alive through their views; it is freed after them.
      this.chunk = Buffer.allocUnsafeSlow(ARENA_CHUNK_BYTES);
      this.chunkUsedBytes = 0;
    }
    const region = this.chunk.subarray(this.chunkUsedBytes, this.chunkUsedBytes + bodyBytes);
    this.chunkUsedBytes += bodyBytes;
    return region;
  }

  push(record: PendingRecord): void {
    this.records.push(record);
    this.bytes += record.totalBodyBytes - record.sentBodyBytes;
  }

  peek(): PendingRecord | undefined {
    return this.records[this.headIndex];
  }

  /** Notes that `sentBytes` more of the head record went into the ring. */
  advanceHead(record: PendingRecord, sentBytes: number): void {
    record.sentBodyBytes += sentBytes;
    this.bytes -= sentBytes;
  }

  shift(): void {
    this.records[this.headIndex] = undefined;
    this.headIndex++;
    if (this.headIndex === this.records.length) {
      this.records = [];
      this.headIndex = 0;
      // No queued record refers to the chunk any more: reuse it from the start.
      this.chunkUsedBytes = 0;
    } else if (this.headIndex >= COMPACT_MIN_SLOTS && this.headIndex * 2 >= this.records.length) {
      this.records = this.records.slice(this.headIndex);
      this.headIndex = 0;
    }
  }

  clear(): void {
    this.records = [];
    this.headIndex = 0;
    this.bytes = 0;
    this.chunkUsedBytes = 0;
  }
}
