import { readFully } from './store-file-system.js';
import type { StoreFile } from './store-file-system.js';

/** Bytes read per refill while scanning a segment at start-up: large reads, bounded memory. */
const scanChunkBytes = 1024 * 1024;

let zeros = Buffer.alloc(0);
function zerosOfLength(lengthBytes: number): Buffer {
  if (zeros.length < lengthBytes) zeros = Buffer.alloc(lengthBytes);
  return zeros.subarray(0, lengthBytes);
}

/**
 * A sliding window over a file for a forward scan: ensure(position, need) makes
 * [position, position + need) available in `buf` (or everything up to end of file), reading
 * in large chunks and growing only for records larger than a chunk.
 */
export class FileWindow {
  buf: Buffer;
  /** File position of buf[0]. */
  start = 0;
  /** Valid bytes in buf. */
  length = 0;

  constructor(
    private readonly file: StoreFile,
    readonly fileBytes: number,
  ) {
    this.buf = Buffer.allocUnsafe(Math.min(scanChunkBytes, Math.max(fileBytes, 1)));
  }

  /** Window-relative index of a file position that is inside the window. */
  at(position: number): number {
    return position - this.start;
  }

  /** Window-relative end of valid bytes. */
  get limit(): number {
    return this.length;
  }

  /** True when [position, position + need) (clipped to the file) is already in the window. */
  has(position: number, need: number): boolean {
    return position >= this.start && Math.min(position + need, this.fileBytes) <= this.start + this.length;
  }

  async ensure(position: number, need: number): Promise<void> {
    if (this.has(position, need)) return;
    const kept = position >= this.start && position < this.start + this.length ? this.start + this.length - position : 0;
    const capacity = Math.max(this.buf.length, need);
    if (capacity > this.buf.length) {
      const grown = Buffer.allocUnsafe(capacity);
      if (kept > 0) this.buf.copy(grown, 0, this.at(position), this.at(position) + kept);
      this.buf = grown;
    } else if (kept > 0) {
      this.buf.copy(this.buf, 0, this.at(position), this.at(position) + kept);
    }
    this.start = position;
    const readLength = Math.min(capacity, this.fileBytes - position) - kept;
    const got = await readFully(this.file, this.buf.subarray(kept), readLength, position + kept);
    this.length = kept + got;
  }

  /** First and last non-zero byte positions in [from, fileBytes), or undefined if all zero. */
  async nonZeroExtent(from: number): Promise<{ first: number; last: number } | undefined> {
    let first = -1;
    let last = -1;
    for (let position = from; position < this.fileBytes; position = this.start + this.length) {
      await this.ensure(position, scanChunkBytes);
      if (this.length === 0) break;
      const chunk = this.buf.subarray(this.at(position), this.length);
      if (chunk.equals(zerosOfLength(chunk.length))) continue;
      for (let i = this.at(position); i < this.length; i++) {
        if (this.buf[i] !== 0) {
          if (first < 0) first = this.start + i;
          last = this.start + i;
        }
      }
    }
    return first < 0 ? undefined : { first, last };
  }
}
