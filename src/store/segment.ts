import { SparseIndex } from './sparse-index.js';
import { SEGMENT_HEADER_BYTES, segmentFileName } from './record-layout.js';
import type { StoreFile } from './store-file-system.js';

/**
 * What the log knows about one segment file. Positions are byte positions in the file;
 * record numbers inside the segment count from 0 at baseOffset.
 */
export class Segment {
  readonly name: string;
  /** Records given to this segment, written or still pending in memory. */
  recordCount = 0;
  /** Where the next record assigned to this segment will go (header + assigned records). */
  appendBytes = SEGMENT_HEADER_BYTES;
  /** Bytes known to be in the file: the header and the records written so far. */
  writtenBytes = 0;
  /** Size of the file: the preallocated size, or writtenBytes when it grows by appending. */
  fileBytes = 0;
  /** False for a segment planned by append() whose file the next commit will create. */
  created = false;
  /** Write handle while active; afterwards a cached read handle or undefined. */
  file: StoreFile | undefined;
  readonly index: SparseIndex;

  constructor(
    readonly baseOffset: number,
    indexStrideRecords: number,
  ) {
    this.name = segmentFileName(baseOffset);
    this.index = new SparseIndex(indexStrideRecords);
  }

  /** The offset the next record in this segment gets. */
  get nextOffset(): number {
    return this.baseOffset + this.recordCount;
  }

  /** A record of recordBytes goes at appendBytes; returns its position. */
  addRecord(recordBytes: number): number {
    const position = this.appendBytes;
    this.index.note(this.recordCount, position);
    this.recordCount += 1;
    this.appendBytes += recordBytes;
    return position;
  }

  /** Keeps records [0, recordCount), which end at `position`. */
  truncateRecords(recordCount: number, position: number): void {
    this.recordCount = recordCount;
    this.index.truncate(recordCount);
    this.appendBytes = position;
    this.writtenBytes = Math.min(this.writtenBytes, position);
  }
}
