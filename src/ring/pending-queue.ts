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

export class PendingQueue {
  private records: Array<PendingRecord | undefined> = [];
  private headIndex = 0;
  private bytes = 0;

  get size(): number {
    return this.records.length - this.headIndex;
  }

  /** Body bytes not yet in the ring. */
  get pendingBytes(): number {
    return this.bytes;
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
    } else if (this.headIndex >= COMPACT_MIN_SLOTS && this.headIndex * 2 >= this.records.length) {
      this.records = this.records.slice(this.headIndex);
      this.headIndex = 0;
    }
  }

  clear(): void {
    this.records = [];
    this.headIndex = 0;
    this.bytes = 0;
  }
}
