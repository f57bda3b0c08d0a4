/**
 * Which logged messages are still live, and so which log prefix may be released: for every
 * message whose record must stay (an `enqueue` of a persistent message, a `pagedEnqueue` of a
 * transient one paged to disk) its id and log offset, until it is settled or released.
 *
 * Ids are appended in increasing order (the shard appends a message's record when it assigns
 * its id, and the log's order is its append order), so a settle finds its entry by binary
 * search. Chunked typed arrays, 17 bytes an entry outside the JS heap, no object per message:
 * ten million queued messages must not weigh on the garbage collector.
 */
import assert from 'node:assert/strict';

/** 4096 entries (68 KiB) a chunk: a drained burst gives its chunks back soon. */
const chunkEntries = 4096;

interface Chunk {
  readonly ids: Float64Array;
  readonly offsets: Float64Array;
  readonly settled: Uint8Array;
  /** Entries filled. */
  count: number;
  /** Entries not yet settled. */
  live: number;
  /** Every entry below this index is settled. */
  firstLive: number;
}

export class LiveOffsets {
  private readonly chunks: Chunk[] = [];
  private lastId = -1;
  /** Live entries. */
  size = 0;

  /** Tracks message `id`, whose record is at `offset`. Ids must rise (see the file comment). */
  append(id: number, offset: number): void {
    assert.ok(id > this.lastId, `live message ${id} appended after ${this.lastId}`);
    this.lastId = id;
    let c = this.chunks[this.chunks.length - 1];
    if (c === undefined || c.count === chunkEntries) {
      c = { ids: new Float64Array(chunkEntries), offsets: new Float64Array(chunkEntries), settled: new Uint8Array(chunkEntries), count: 0, live: 0, firstLive: 0 };
      this.chunks.push(c);
    }
    c.ids[c.count] = id;
    c.offsets[c.count] = offset;
    c.count++;
    c.live++;
    this.size++;
  }

  has(id: number): boolean {
    const c = this.chunkHolding(id);
    if (c === undefined) return false;
    const k = indexIn(c, id);
    return k >= 0 && c.settled[k] === 0;
  }

  /** The message's record is no longer needed; true if it was live. */
  settle(id: number): boolean {
    const c = this.chunkHolding(id);
    if (c === undefined) return false;
    const k = indexIn(c, id);
    if (k < 0 || c.settled[k] !== 0) return false;
    c.settled[k] = 1;
    c.live--;
    this.size--;
    while (c.firstLive < c.count && c.settled[c.firstLive] !== 0) c.firstLive++;
    return true;
  }

  /** The log offset of the oldest live message (undefined when none); forgets settled chunks. */
  oldestOffset(): number | undefined {
    for (;;) {
      const c = this.chunks[0];
      if (c === undefined) return undefined;
      if (c.live > 0) return c.offsets[c.firstLive];
      if (c.count < chunkEntries && this.chunks.length === 1) return undefined; // still being filled
      this.chunks.shift();
    }
  }

  private chunkHolding(id: number): Chunk | undefined {
    const cs = this.chunks;
    let lo = 0;
    let hi = cs.length - 1;
    // Most settles are of old messages: try the first chunk before searching.
    const first = cs[0];
    if (first !== undefined && first.count > 0 && id <= (first.ids[first.count - 1] as number)) return id >= (first.ids[0] as number) ? first : undefined;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const c = cs[mid] as Chunk;
      if (id < (c.ids[0] as number)) hi = mid - 1;
      else if (id > (c.ids[c.count - 1] as number)) lo = mid + 1;
      else return c;
    }
    return undefined;
  }
}

function indexIn(c: Chunk, id: number): number {
  let lo = 0;
  let hi = c.count - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const v = c.ids[mid] as number;
    if (v === id) return mid;
    if (v < id) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}
