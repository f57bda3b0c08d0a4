/**
 * The newest records of a leader's replica log, framed exactly as the segment log stores them
 * (record-codec encodeRecord), in a few large chunks. Followers that keep up are streamed from
 * here without reading the files back; the same bytes are handed to SegmentLog.appendRecords,
 * so what a follower gets is byte for byte what the leader wrote. Older offsets are read from
 * the segment files.
 */
import assert from 'node:assert/strict';
import { encodeRecord, recordBytesFor } from '../store/record-codec.js';

interface Chunk {
  baseOffset: number;
  buf: Buffer;
  /** starts[i] = byte position of record baseOffset + i; one more entry marks the end. */
  starts: number[];
}

export interface RecordRange {
  /** Framed records, consecutive offsets from the requested one. */
  records: Buffer;
  count: number;
}

export class TailCache {
  private chunks: Chunk[] = [];
  private cachedBytes = 0;
  private next: number;

  constructor(
    nextOffset: number,
    /** A chunk's buffer size: one allocation per this many bytes of records. */
    private readonly chunkBytes: number,
    /** Bytes kept for streaming; older chunks are dropped once the log holds them. */
    private readonly cacheBytesMax: number,
  ) {
    this.next = nextOffset;
  }

  get nextOffset(): number {
    return this.next;
  }

  /** The oldest offset still cached (= nextOffset when empty). */
  get firstOffset(): number {
    return this.chunks[0]?.baseOffset ?? this.next;
  }

  get bytes(): number {
    return this.cachedBytes;
  }

  /** Frames a record at nextOffset and returns its offset. */
  append(kind: number, payload: Uint8Array): number {
    const recordBytes = recordBytesFor(payload.length);
    let chunk = this.chunks[this.chunks.length - 1];
    const used = chunk === undefined ? 0 : (chunk.starts[chunk.starts.length - 1] as number);
    if (chunk === undefined || used + recordBytes > chunk.buf.length) {
      chunk = { baseOffset: this.next, buf: Buffer.allocUnsafe(Math.max(this.chunkBytes, recordBytes)), starts: [0] };
      this.chunks.push(chunk);
    }
    const at = chunk.starts[chunk.starts.length - 1] as number;
    encodeRecord(chunk.buf, at, this.next, kind, payload);
    chunk.starts.push(at + recordBytes);
    this.cachedBytes += recordBytes;
    return this.next++;
  }

  /**
   * Views of the framed records [from, to) (one per chunk touched), or undefined when `from`
   * is no longer cached. Valid until the chunks are dropped (evict or reset).
   */
  views(from: number, to: number, maxBytes = Number.POSITIVE_INFINITY): { parts: Buffer[]; count: number; bytes: number } | undefined {
    if (from < this.firstOffset || from > this.next) return undefined;
    const parts: Buffer[] = [];
    let offset = from;
    let bytes = 0;
    for (const chunk of this.chunks) {
      const chunkEnd = chunk.baseOffset + chunk.starts.length - 1;
      if (chunkEnd <= offset) continue;
      if (offset >= to) break;
      const first = offset - chunk.baseOffset;
      const startPosition = chunk.starts[first] as number;
      let last = first;
      const lastIndexMax = Math.min(chunk.starts.length - 1, to - chunk.baseOffset);
      // Whole records only, at least one per call even when it alone is over maxBytes.
      while (last < lastIndexMax && ((chunk.starts[last + 1] as number) - startPosition + bytes <= maxBytes || (bytes === 0 && last === first))) last += 1;
      if (last === first) break;
      const endPosition = chunk.starts[last] as number;
      parts.push(chunk.buf.subarray(startPosition, endPosition));
      bytes += endPosition - startPosition;
      offset = chunk.baseOffset + last;
      if (last < lastIndexMax) break;
    }
    return { parts, count: offset - from, bytes };
  }

  /** As views(), joined into one buffer (a copy only when the range spans chunks). */
  range(from: number, maxBytes: number): RecordRange | undefined {
    const got = this.views(from, this.next, maxBytes);
    if (got === undefined) return undefined;
    const records = got.parts.length === 1 ? (got.parts[0] as Buffer) : Buffer.concat(got.parts, got.bytes);
    return { records, count: got.count };
  }

  /** Drops the oldest chunks while over the byte bound, but only chunks wholly below `durableBelow`. */
  evict(durableBelow: number): void {
    while (this.cachedBytes > this.cacheBytesMax && this.chunks.length > 1) {
      const chunk = this.chunks[0] as Chunk;
      const chunkEnd = chunk.baseOffset + chunk.starts.length - 1;
      if (chunkEnd > durableBelow) return;
      this.chunks.shift();
      this.cachedBytes -= chunk.starts[chunk.starts.length - 1] as number;
    }
  }

  /** Forgets everything; the next record gets nextOffset. */
  reset(nextOffset: number): void {
    assert.ok(Number.isSafeInteger(nextOffset) && nextOffset >= 0, `tail cache reset to ${nextOffset}`);
    this.chunks = [];
    this.cachedBytes = 0;
    this.next = nextOffset;
  }
}
