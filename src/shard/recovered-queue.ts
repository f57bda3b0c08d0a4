/**
 * What recovery finds in a shard's log for one queue: its logged messages, in log order (which
 * is id order), without their payloads — the queue reads those back from the log as it drains
 * (pager.ts). Columnar and chunked, so ten million recovered messages cost 30 bytes each
 * outside the JS heap and no object per message (an object in a Map each took ~200 bytes of
 * heap, and a restart of a node holding such a backlog ran out of heap):
 *
 *   chunk.ids        Float64Array  message id, rising
 *   chunk.offsets    Float64Array  log offset of its `enqueue` record
 *   chunk.expires    Float64Array  expiresAtMs (0 = never)
 *   chunk.bodyBytes  Uint32Array
 *   chunk.flags      Uint16Array   paged-tail.ts's flag bits and priority: persisted and
 *                                  persistent always, redelivered once a delivered marker is
 *                                  seen, removed once settled (a hole until compaction)
 *
 * A settle or delivered marker finds its entry by binary search. Holes are squeezed out once
 * they outnumber the live entries, so replaying a log costs memory for what is still queued,
 * not for everything the log still holds.
 */
import assert from 'node:assert/strict';
import { PagedFlag, type PagedEntry } from './paged-tail.js';

/** 4096 entries (120 KiB) a full chunk: few enough allocations for millions of messages. */
const chunkEntries = 4096;
/** A queue's first chunk starts this small and doubles up to chunkEntries: thousands of queues with a few messages each stay cheap. */
const firstChunkEntries = 16;

interface Chunk {
  readonly ids: Float64Array;
  readonly offsets: Float64Array;
  readonly expires: Float64Array;
  readonly bodyBytes: Uint32Array;
  readonly flags: Uint16Array;
}

function newChunk(entries: number): Chunk {
  return {
    ids: new Float64Array(entries),
    offsets: new Float64Array(entries),
    expires: new Float64Array(entries),
    bodyBytes: new Uint32Array(entries),
    flags: new Uint16Array(entries),
  };
}

export class RecoveredQueue {
  /** chunks[0] may be smaller than chunkEntries only while it is the only chunk. */
  private chunks: Chunk[] = [];
  /** Entries held, holes included. */
  private count = 0;
  /** Every entry below this index is a hole. */
  private firstLive = 0;
  private holes = 0;
  /** Id of the last entry appended: the next must be higher. */
  lastId = -1;

  /** Messages held (holes excluded). */
  get length(): number {
    return this.count - this.holes;
  }

  /** An `enqueue` record; ids must rise (the caller checks, and says where the log breaks that). */
  append(id: number, logOffset: number, expiresAtMs: number, bodyBytes: number, flags: number): void {
    assert.ok(id > this.lastId, `recovered message ${id} appended after ${this.lastId}`);
    this.lastId = id;
    const i = this.count;
    this.makeRoom(i);
    const c = this.chunks[(i / chunkEntries) | 0] as Chunk;
    const k = i % chunkEntries;
    c.ids[k] = id;
    c.offsets[k] = logOffset;
    c.expires[k] = expiresAtMs;
    c.bodyBytes[k] = bodyBytes;
    c.flags[k] = flags & ~PagedFlag.removed;
    this.count++;
  }

  /** A settle record: the message leaves; false when it is not here. */
  settle(id: number): boolean {
    const i = this.find(id);
    if (i < 0) return false;
    const c = this.chunks[(i / chunkEntries) | 0] as Chunk;
    const k = i % chunkEntries;
    c.flags[k] = (c.flags[k] as number) | PagedFlag.removed;
    this.holes++;
    if (i === this.firstLive) this.skipHoles();
    if (this.holes >= chunkEntries && this.holes >= this.length) this.compact();
    return true;
  }

  /** A delivered marker: the message comes back with redelivered=true. */
  markDelivered(id: number): void {
    const i = this.find(id);
    if (i < 0) return;
    const c = this.chunks[(i / chunkEntries) | 0] as Chunk;
    const k = i % chunkEntries;
    c.flags[k] = (c.flags[k] as number) | PagedFlag.redelivered;
  }

  /** After a crash every message counts as delivered: visits the ids that were not marked yet, and marks them. */
  markAllDelivered(visit: (id: number) => void): void {
    for (let i = this.firstLive; i < this.count; i++) {
      const c = this.chunks[(i / chunkEntries) | 0] as Chunk;
      const k = i % chunkEntries;
      const f = c.flags[k] as number;
      if ((f & (PagedFlag.removed | PagedFlag.redelivered)) !== 0) continue;
      c.flags[k] = f | PagedFlag.redelivered;
      visit(c.ids[k] as number);
    }
  }

  /** Id of entry i of a compacted queue (no holes: i < length). */
  idAt(i: number): number {
    return (this.chunks[(i / chunkEntries) | 0] as Chunk).ids[i % chunkEntries] as number;
  }

  /** Log offset of entry i of a compacted queue. */
  offsetAt(i: number): number {
    return (this.chunks[(i / chunkEntries) | 0] as Chunk).offsets[i % chunkEntries] as number;
  }

  /** Visits every message in order, as (id, log offset). */
  forEachOffset(visit: (id: number, logOffset: number) => void): void {
    for (let i = this.firstLive; i < this.count; i++) {
      const c = this.chunks[(i / chunkEntries) | 0] as Chunk;
      const k = i % chunkEntries;
      if (((c.flags[k] as number) & PagedFlag.removed) === 0) visit(c.ids[k] as number, c.offsets[k] as number);
    }
  }

  /**
   * Hands every message over in order, copied into out (its enqueuedAtMs32 left as the caller
   * set it), and empties this queue, letting each chunk go once it is copied.
   */
  take(out: PagedEntry, visit: (e: PagedEntry) => void): void {
    for (let i = this.firstLive; i < this.count; i++) {
      const ci = (i / chunkEntries) | 0;
      const c = this.chunks[ci] as Chunk;
      const k = i % chunkEntries;
      const f = c.flags[k] as number;
      if ((f & PagedFlag.removed) === 0) {
        out.id = c.ids[k] as number;
        out.logOffset = c.offsets[k] as number;
        out.expiresAtMs = c.expires[k] as number;
        out.bodyBytes = c.bodyBytes[k] as number;
        out.flags = f;
        visit(out);
      }
      if (k === c.ids.length - 1) this.chunks[ci] = newChunk(0); // copied: give it back now, not after the whole queue
    }
    this.chunks = [];
    this.count = 0;
    this.firstLive = 0;
    this.holes = 0;
  }

  /** Squeezes the holes out (in place, order kept) and gives back the chunks that empties. */
  compact(): void {
    if (this.holes === 0) return;
    let w = 0;
    for (let r = this.firstLive; r < this.count; r++) {
      const rc = this.chunks[(r / chunkEntries) | 0] as Chunk;
      const rk = r % chunkEntries;
      if (((rc.flags[rk] as number) & PagedFlag.removed) !== 0) continue;
      if (w !== r) {
        const wc = this.chunks[(w / chunkEntries) | 0] as Chunk;
        const wk = w % chunkEntries;
        wc.ids[wk] = rc.ids[rk] as number;
        wc.offsets[wk] = rc.offsets[rk] as number;
        wc.expires[wk] = rc.expires[rk] as number;
        wc.bodyBytes[wk] = rc.bodyBytes[rk] as number;
        wc.flags[wk] = rc.flags[rk] as number;
      }
      w++;
    }
    this.count = w;
    this.firstLive = 0;
    this.holes = 0;
    this.chunks.length = Math.max(1, Math.ceil(w / chunkEntries));
  }

  private makeRoom(i: number): void {
    const first = this.chunks[0];
    if (first === undefined) {
      this.chunks.push(newChunk(firstChunkEntries));
      return;
    }
    if (first.ids.length < chunkEntries) {
      if (i < first.ids.length) return;
      // Still the only chunk: double it (copying at most chunkEntries / 2 entries).
      const grown = newChunk(Math.min(chunkEntries, first.ids.length * 2));
      grown.ids.set(first.ids);
      grown.offsets.set(first.offsets);
      grown.expires.set(first.expires);
      grown.bodyBytes.set(first.bodyBytes);
      grown.flags.set(first.flags);
      this.chunks[0] = grown;
      return;
    }
    if (i === this.chunks.length * chunkEntries) this.chunks.push(newChunk(chunkEntries));
  }

  private skipHoles(): void {
    while (this.firstLive < this.count) {
      const c = this.chunks[(this.firstLive / chunkEntries) | 0] as Chunk;
      if (((c.flags[this.firstLive % chunkEntries] as number) & PagedFlag.removed) === 0) return;
      this.firstLive++;
    }
  }

  /** Index of the live entry with this id, or -1. */
  private find(id: number): number {
    let lo = this.firstLive;
    let hi = this.count - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const c = this.chunks[(mid / chunkEntries) | 0] as Chunk;
      const k = mid % chunkEntries;
      const v = c.ids[k] as number;
      if (v === id) return ((c.flags[k] as number) & PagedFlag.removed) === 0 ? mid : -1;
      if (v < id) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }
}

/**
 * Visits the messages of every queue in id order (which is log order), as (id, log offset):
 * a merge of the queues' own orders through a binary min-heap of their cursors (one per
 * queue), no sort and no object per message.
 */
export function forEachInLogOrder(queues: readonly RecoveredQueue[], visit: (id: number, logOffset: number) => void): void {
  const heap: Cursor[] = [];
  for (const q of queues) {
    q.compact(); // entries 0..length-1 are then all live
    if (q.length > 0) heap.push({ q, i: 0, id: q.idAt(0) });
  }
  for (let k = (heap.length >>> 1) - 1; k >= 0; k--) siftDown(heap, k);
  for (;;) {
    const top = heap[0];
    if (top === undefined) return;
    visit(top.id, top.q.offsetAt(top.i));
    top.i++;
    if (top.i < top.q.length) {
      top.id = top.q.idAt(top.i);
    } else {
      const last = heap.pop() as Cursor;
      if (heap.length === 0) return;
      heap[0] = last;
    }
    siftDown(heap, 0);
  }
}

interface Cursor {
  readonly q: RecoveredQueue;
  i: number;
  id: number;
}

function siftDown(heap: Cursor[], at: number): void {
  const n = heap.length;
  let i = at;
  const c = heap[i] as Cursor;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= n) break;
    const r = l + 1;
    const child = r < n && (heap[r] as Cursor).id < (heap[l] as Cursor).id ? r : l;
    if ((heap[child] as Cursor).id >= c.id) break;
    heap[i] = heap[child] as Cursor;
    i = child;
  }
  heap[i] = c;
}
