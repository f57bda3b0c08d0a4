/**
 * Random reads of single records by offset: the segment's sparse index gives a position at
 * most stride-1 records before the wanted one; the scan from there reads 64 KiB at a time and
 * keeps the last chunk, so reading a queue back in order costs one read per chunk, not per record.
 */
import { RecordView, checkRecord } from './record-codec.js';
import { RECORD_CHECKED_OFFSET } from './record-layout.js';
import { LogCorruptionError } from './store-errors.js';
import { readFully } from './store-file-system.js';
import type { LogOffset } from './log-offset.js';
import type { LogRecord } from './log-record.js';
import type { Segment } from './segment.js';
import type { SegmentHandles } from './segment-handles.js';
import type { StoreFile } from './store-file-system.js';

/** One read brings at least this much: a few typical messages ahead for in-order reading. */
const readChunkBytes = 64 * 1024;

interface Located {
  position: number;
  /** Holds the record; the view's positions index into it. */
  buf: Buffer;
  view: RecordView;
}

export class SegmentReader {
  /** The last chunk read; it only ever holds bytes that were already written. */
  private chunk: { segment: Segment; start: number; buf: Buffer } | undefined;
  /** Where the record after the last one read starts (in-order reads skip the index). */
  private following: { segment: Segment; offset: number; position: number } | undefined;

  constructor(private readonly handles: SegmentHandles) {}

  /** Forget cached bytes (after a truncation or deletion changed what the files hold). */
  invalidate(): void {
    this.chunk = undefined;
    this.following = undefined;
  }

  async read(segment: Segment, offset: number): Promise<LogRecord> {
    const { view, buf } = await this.locate(segment, offset);
    // A copy: the caller may keep it for long, and a view would pin the whole chunk.
    return { offset: offset as LogOffset, kind: view.kind, payload: Buffer.from(buf.subarray(view.payloadStart, view.payloadEnd)) };
  }

  /** The byte position of record `offset` in `segment`. */
  async position(segment: Segment, offset: number): Promise<number> {
    return (await this.locate(segment, offset)).position;
  }

  private async locate(segment: Segment, offset: number): Promise<Located> {
    let { recordIndex, position } = segment.index.floor(offset - segment.baseOffset);
    let current = segment.baseOffset + recordIndex;
    const following = this.following;
    if (following !== undefined && following.segment === segment && following.offset <= offset && following.offset > current) {
      current = following.offset;
      position = following.position;
    }
    const file = await this.handles.acquire(segment);
    try {
      const view = new RecordView();
      for (;;) {
        let chunk = await this.bytesAt(segment, file, position, RECORD_CHECKED_OFFSET);
        let check = checkRecord(chunk.buf, position - chunk.start, chunk.buf.length, view);
        if (check === 'short') {
          chunk = await this.bytesAt(segment, file, position, view.recordBytes);
          check = checkRecord(chunk.buf, position - chunk.start, chunk.buf.length, view);
        }
        if (check !== 'ok') throw new LogCorruptionError(segment.name, position, check === 'bad' ? view.reason : `record unreadable (${check})`, 0);
        if (view.offset !== current) throw new LogCorruptionError(segment.name, position, `record has offset ${view.offset}, expected ${current}`, 0);
        if (current === offset) {
          this.following = { segment, offset: offset + 1, position: position + view.recordBytes };
          return { position, buf: chunk.buf, view };
        }
        position += view.recordBytes;
        current += 1;
      }
    } finally {
      this.handles.release(file);
    }
  }

  /** A chunk holding file bytes [position, position + need); buf[0] is file byte `start`. */
  private async bytesAt(segment: Segment, file: StoreFile, position: number, need: number): Promise<{ segment: Segment; start: number; buf: Buffer }> {
    const cached = this.chunk;
    if (cached !== undefined && cached.segment === segment && position >= cached.start && position + need <= cached.start + cached.buf.length) {
      return cached;
    }
    const written = segment.writtenBytes;
    if (position + need > written) {
      throw new LogCorruptionError(segment.name, position, `record would end at byte ${position + need}, past the ${written} bytes written`, 0);
    }
    // A fresh buffer each time: views handed out earlier stay valid.
    const buf = Buffer.allocUnsafe(Math.min(Math.max(need, readChunkBytes), written - position));
    const got = await readFully(file, buf, buf.length, position);
    const chunk = { segment, start: position, buf: got === buf.length ? buf : buf.subarray(0, got) };
    if (got < need) throw new LogCorruptionError(segment.name, position, `file ends after ${got} of ${need} bytes`, 0);
    this.chunk = chunk;
    return chunk;
  }
}
