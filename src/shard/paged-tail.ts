/**
 * The messages of one ready list (a queue, or one priority level of it) that are kept only in
 * the shard's log: their payloads are not in memory, only a compact index entry each, in queue
 * (msg id) order. Columnar and chunked so that millions of entries cost 36 bytes each outside
 * the JS heap and no object per message:
 *
 *   chunk.f  Float64Array  [id][logOffset][expiresAtMs]            × chunkEntries
 *   chunk.u  Uint32Array   [bodyBytes][flags][enqueuedAtMs mod 2^32] × chunkEntries
 *
 *   flags    bit 0 persisted   settles are logged: the record is an `enqueue` (or see bit 4)
 *            bit 1 persistent  delivery-mode 2
 *            bit 2 redelivered delivered before (recovered with a delivered marker)
 *            bit 3 removed     settled while recovery replayed the log (a hole, skipped)
 *            bit 4 replicated  of a replicated queue: its durable copy is the replica log (settles
 *                              go to the replicator), the record here a `pagedEnqueue` tracked
 *                              by its offset (its id does not follow this log's order)
 *            bits 8..15        priority
 *
 * Entries are appended at the tail and leave from the head; recovery also removes entries
 * from the middle by id (binary search), leaving holes that the head skips.
 */
import assert from 'node:assert/strict';

export const PagedFlag = { persisted: 1, persistent: 2, redelivered: 4, removed: 8, replicated: 16 } as const;
const priorityShift = 8;

/** 2048 entries: 48 KiB + 24 KiB a chunk, small enough that a drained queue gives memory back soon. */
const chunkEntries = 2048;
const fStride = 3;
const uStride = 3;

interface Chunk {
  readonly f: Float64Array;
  readonly u: Uint32Array;
}

/** One entry, copied out (a scratch object reused by its owner, never kept). */
export interface PagedEntry {
  id: number;
  logOffset: number;
  expiresAtMs: number;
  bodyBytes: number;
  flags: number;
  /** performance.now() ms when the queue accepted it, as u32 (wraps every 49.7 days; ages use the difference). */
  enqueuedAtMs32: number;
}

export function newPagedEntry(): PagedEntry {
  return { id: 0, logOffset: 0, expiresAtMs: 0, bodyBytes: 0, flags: 0, enqueuedAtMs32: 0 };
}

export function pagedFlags(persisted: boolean, persistent: boolean, redelivered: boolean, priority: number): number {
  return (persisted ? PagedFlag.persisted : 0) | (persistent ? PagedFlag.persistent : 0) | (redelivered ? PagedFlag.redelivered : 0) | ((priority & 0xff) << priorityShift);
}

export function pagedPriority(flags: number): number {
  return (flags >>> priorityShift) & 0xff;
}

export class PagedTail {
  private readonly chunks: Chunk[] = [];
  /** Position (over all entries ever appended) of chunks[0]'s first entry. */
  private base = 0;
  /** Position of the first entry not yet shifted (maybe a hole). */
  private head = 0;
  /** Position the next append gets. */
  private tail = 0;
  private lastId = -1;
  /** Entries held (holes excluded). */
  length = 0;
  /** Their body bytes. */
  bodyBytes = 0;

  append(e: PagedEntry): void {
    assert.ok(e.id > this.lastId, `paged entry ${e.id} appended after ${this.lastId}: queue order is id order`);
    this.lastId = e.id;
    const i = this.tail - this.base;
    if (i === this.chunks.length * chunkEntries) this.chunks.push({ f: new Float64Array(chunkEntries * fStride), u: new Uint32Array(chunkEntries * uStride) });
    const c = this.chunks[(i / chunkEntries) | 0] as Chunk;
    const k = i % chunkEntries;
    c.f[k * fStride] = e.id;
    c.f[k * fStride + 1] = e.logOffset;
    c.f[k * fStride + 2] = e.expiresAtMs;
    c.u[k * uStride] = e.bodyBytes;
    c.u[k * uStride + 1] = e.flags & ~PagedFlag.removed;
    c.u[k * uStride + 2] = e.enqueuedAtMs32;
    this.tail++;
    this.length++;
    this.bodyBytes += e.bodyBytes;
  }

  /** The first entry, copied into out; false when empty. */
  peek(out: PagedEntry): boolean {
    this.skipHoles();
    if (this.head === this.tail) return false;
    this.read(this.head, out);
    return true;
  }

  /** Removes the first entry, copied into out; false when empty. */
  shift(out: PagedEntry): boolean {
    if (!this.peek(out)) return false;
    this.head++;
    this.length--;
    this.bodyBytes -= out.bodyBytes;
    this.dropConsumedChunks();
    return true;
  }

  /** The id of the first entry, or -1 when empty. */
  headId(): number {
    this.skipHoles();
    if (this.head === this.tail) return -1;
    const i = this.head - this.base;
    return (this.chunks[(i / chunkEntries) | 0] as Chunk).f[(i % chunkEntries) * fStride] as number;
  }

  /** Visits up to `max` entries from the head, in order (holes skipped); stop early by returning false. */
  forEach(out: PagedEntry, visit: (e: PagedEntry) => boolean, max = Infinity): void {
    let n = 0;
    for (let p = this.head; p < this.tail && n < max; p++) {
      this.read(p, out);
      if ((out.flags & PagedFlag.removed) !== 0) continue;
      n++;
      if (!visit(out)) return;
    }
  }

  /** Recovery: a settle removed message `id`; true if it was here. */
  remove(id: number): boolean {
    const p = this.find(id);
    if (p < 0) return false;
    const i = p - this.base;
    const c = this.chunks[(i / chunkEntries) | 0] as Chunk;
    const k = i % chunkEntries;
    c.u[k * uStride + 1] = (c.u[k * uStride + 1] as number) | PagedFlag.removed;
    this.length--;
    this.bodyBytes -= c.u[k * uStride] as number;
    return true;
  }

  /** Recovery: a delivered marker for message `id`. */
  markRedelivered(id: number): void {
    const p = this.find(id);
    if (p < 0) return;
    const i = p - this.base;
    const c = this.chunks[(i / chunkEntries) | 0] as Chunk;
    const k = i % chunkEntries;
    c.u[k * uStride + 1] = (c.u[k * uStride + 1] as number) | PagedFlag.redelivered;
  }

  /** Position of the live entry with this id, or -1. */
  private find(id: number): number {
    let lo = this.head;
    let hi = this.tail - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const i = mid - this.base;
      const c = this.chunks[(i / chunkEntries) | 0] as Chunk;
      const k = i % chunkEntries;
      const v = c.f[k * fStride] as number;
      if (v === id) return ((c.u[k * uStride + 1] as number) & PagedFlag.removed) === 0 ? mid : -1;
      if (v < id) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  private read(p: number, out: PagedEntry): void {
    const i = p - this.base;
    const c = this.chunks[(i / chunkEntries) | 0] as Chunk;
    const k = i % chunkEntries;
    out.id = c.f[k * fStride] as number;
    out.logOffset = c.f[k * fStride + 1] as number;
    out.expiresAtMs = c.f[k * fStride + 2] as number;
    out.bodyBytes = c.u[k * uStride] as number;
    out.flags = c.u[k * uStride + 1] as number;
    out.enqueuedAtMs32 = c.u[k * uStride + 2] as number;
  }

  private skipHoles(): void {
    let moved = false;
    while (this.head < this.tail) {
      const i = this.head - this.base;
      const c = this.chunks[(i / chunkEntries) | 0] as Chunk;
      if (((c.u[(i % chunkEntries) * uStride + 1] as number) & PagedFlag.removed) === 0) break;
      this.head++;
      moved = true;
    }
    if (moved) this.dropConsumedChunks();
  }

  private dropConsumedChunks(): void {
    while (this.head - this.base >= chunkEntries) {
      this.chunks.shift();
      this.base += chunkEntries;
    }
    if (this.head === this.tail && this.chunks.length > 0) {
      // Empty: start over so an idle queue holds no chunk at all.
      this.chunks.length = 0;
      this.base = this.head;
    }
  }
}
