import type { Segment } from './segment.js';

/**
 * Records appended since the last commit that go to one segment, back to back, exactly as they
 * will lie in the file from startPosition on. A commit writes each run with one write call.
 */
export class WriteRun {
  used = 0;
  lastOffset: number;

  constructor(
    readonly segment: Segment,
    readonly startPosition: number,
    readonly firstOffset: number,
    public buf: Buffer,
  ) {
    this.lastOffset = firstOffset - 1;
  }

  /** Room for `bytes` more at the end of the run; returns where they go in buf. */
  reserve(bytes: number, pool: WriteBufferPool): number {
    const at = this.used;
    if (at + bytes > this.buf.length) {
      const grown = pool.take(Math.max(this.buf.length * 2, at + bytes));
      this.buf.copy(grown, 0, 0, at);
      pool.give(this.buf);
      this.buf = grown;
    }
    this.used = at + bytes;
    return at;
  }

  /** The file position just after the run. */
  get endPosition(): number {
    return this.startPosition + this.used;
  }
}

/**
 * Reuses run buffers so that steady group commits allocate nothing. A buffer starts at the
 * group-commit target (~256 KiB per write+sync, PLATFORM.md) and doubles when a burst needs more;
 * buffers above retainBytesMax go back to the GC after a burst.
 */
export class WriteBufferPool {
  private readonly free: Buffer[] = [];

  constructor(
    readonly initialBytes: number,
    private readonly retainBytesMax: number,
    private readonly retainCountMax: number,
  ) {}

  take(minBytes: number): Buffer {
    const index = this.free.findIndex((buf) => buf.length >= minBytes);
    if (index >= 0) return this.free.splice(index, 1)[0] ?? Buffer.allocUnsafe(minBytes);
    return Buffer.allocUnsafe(Math.max(minBytes, this.initialBytes));
  }

  give(buf: Buffer): void {
    if (buf.length <= this.retainBytesMax && this.free.length < this.retainCountMax) this.free.push(buf);
  }
}
