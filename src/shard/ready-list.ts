import type { Message } from './message.js';
import { PagedTail, type PagedEntry } from './paged-tail.js';

/** What a ready list asks of its shard's pager (pager.ts); absent for a shard without a log. */
export interface PageHost {
  /** Payload bytes of the ready messages held in memory by every list of the shard. */
  readonly gauge: { residentBytes: number };
  /** The list's in-memory head ran low while messages wait on disk: read the next ones back. */
  pageIn(list: ReadyList): void;
}

/**
 * Read messages back from disk once fewer than this many are in memory: enough that consumers
 * keep receiving while the next read runs, few enough that an idle paged queue holds little.
 */
export const pageInLowMessages = 128;
/** …and fewer body bytes than this (large messages: a few are enough). */
export const pageInLowBytes = 1024 * 1024;

/**
 * The ready messages of one queue (or one priority level), in queue order.
 * New messages append to a FIFO; requeued ones go to a min-heap keyed by message id,
 * so a nack/requeue puts a message back "in its place" (RabbitMQ's behaviour) without
 * shifting the FIFO. The head is whichever of the two holds the lower id.
 *
 * Past the shard's memory budget, new messages go to `paged` instead: index entries of
 * messages kept in the log, all after every in-memory one (a requeued message was delivered
 * from the head, so its id is lower than any paged one). While `paged` is not empty every new
 * message goes there too, so order holds; the pager reads its head back into the FIFO.
 */
export class ReadyList {
  private fifo: (Message | undefined)[] = new Array<Message | undefined>(16);
  private head = 0;
  private tail = 0;
  private heap: Message[] = [];
  /** Body bytes of every ready message, in memory and on disk. */
  bodyBytes = 0;
  /** Messages kept only in the log, after every in-memory one; created on the first page-out. */
  paged: PagedTail | undefined;
  /** Set by the pager while it reads this list's next messages back. */
  pageInFlight = false;

  constructor(private readonly pages: PageHost | undefined = undefined) {}

  get length(): number {
    return this.tail - this.head + this.heap.length + (this.paged === undefined ? 0 : this.paged.length);
  }

  /** Messages held in memory (the FIFO and the requeued ones). */
  get memoryLength(): number {
    return this.tail - this.head + this.heap.length;
  }

  get pagedLength(): number {
    return this.paged === undefined ? 0 : this.paged.length;
  }

  /** Messages wait on disk and memory holds fewer than keep consumers busy while a read runs. */
  get wantsPageIn(): boolean {
    const p = this.paged;
    return p !== undefined && p.length > 0 && this.memoryLength < pageInLowMessages && this.bodyBytes - p.bodyBytes < pageInLowBytes;
  }

  /** The next message is on disk: shift() and peek() answer undefined until the pager reads it back. */
  get headOnDisk(): boolean {
    return this.tail === this.head && this.heap.length === 0 && this.paged !== undefined && this.paged.length > 0;
  }

  push(m: Message): void {
    this.append(m);
    this.bodyBytes += m.bodyBytes;
  }

  private append(m: Message): void {
    if (this.tail - this.head === this.fifo.length) this.grow();
    this.fifo[this.tail & (this.fifo.length - 1)] = m;
    this.tail++;
    if (this.pages !== undefined) this.pages.gauge.residentBytes += m.payload.length;
  }

  /** Puts a message back in its place by id. */
  requeue(m: Message): void {
    const h = this.heap;
    h.push(m);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = h[parent] as Message;
      if (p.id <= m.id) break;
      h[i] = p;
      i = parent;
    }
    h[i] = m;
    this.bodyBytes += m.bodyBytes;
    if (this.pages !== undefined) this.pages.gauge.residentBytes += m.payload.length;
  }

  peek(): Message | undefined {
    const f = this.head < this.tail ? this.fifo[this.head & (this.fifo.length - 1)] : undefined;
    const r = this.heap[0];
    if (r === undefined) return f;
    if (f === undefined) return r;
    return r.id < f.id ? r : f;
  }

  shift(): Message | undefined {
    const f = this.head < this.tail ? this.fifo[this.head & (this.fifo.length - 1)] : undefined;
    const r = this.heap[0];
    let m: Message | undefined;
    if (r !== undefined && (f === undefined || r.id < f.id)) {
      m = this.popHeap();
    } else if (f !== undefined) {
      this.fifo[this.head & (this.fifo.length - 1)] = undefined;
      this.head++;
      m = f;
    }
    if (m !== undefined) {
      this.bodyBytes -= m.bodyBytes;
      if (this.pages !== undefined) this.pages.gauge.residentBytes -= m.payload.length;
    }
    if (this.paged !== undefined && this.pages !== undefined && this.wantsPageIn) this.pages.pageIn(this);
    return m;
  }

  /** The head's expiry (ms, 0 = never), in memory or on disk; 0 when empty. */
  headExpiresAtMs(scratch: PagedEntry): number {
    const m = this.peek();
    if (m !== undefined) return m.expiresAtMs;
    return this.paged !== undefined && this.paged.peek(scratch) ? scratch.expiresAtMs : 0;
  }

  /** Removes the head when it is on disk (copied into out); false when the head is in memory or there is none. */
  shiftPaged(out: PagedEntry): boolean {
    if (!this.headOnDisk || this.paged === undefined || !this.paged.shift(out)) return false;
    this.bodyBytes -= out.bodyBytes;
    return true;
  }

  listOf(): ReadyList {
    return this;
  }

  /** Adds a message that is on disk at the tail (a page-out, recovery, a move between lists). */
  appendPaged(e: PagedEntry): void {
    this.paged ??= new PagedTail();
    this.paged.append(e);
    this.bodyBytes += e.bodyBytes;
  }

  /**
   * The pager takes the first paged entry (copied into out) to read it back: it then push()es
   * the message, or drops it. False when nothing is paged.
   */
  takePagedHead(out: PagedEntry): boolean {
    if (this.paged === undefined || !this.paged.shift(out)) return false;
    this.bodyBytes -= out.bodyBytes;
    return true;
  }

  /** Removes the in-memory messages (up to a head on disk); returns them in queue order. */
  drain(): Message[] {
    const out: Message[] = [];
    for (let m = this.shift(); m !== undefined; m = this.shift()) out.push(m);
    return out;
  }

  private popHeap(): Message | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let smallest = i;
        let sv = last;
        const lv = h[l];
        if (lv !== undefined && lv.id < sv.id) {
          smallest = l;
          sv = lv;
        }
        const rv = h[r];
        if (rv !== undefined && rv.id < sv.id) {
          smallest = r;
          sv = rv;
        }
        if (smallest === i) break;
        h[i] = sv;
        i = smallest;
      }
      h[i] = last;
    }
    return top;
  }

  private grow(): void {
    const old = this.fifo;
    const next = new Array<Message | undefined>(old.length * 2);
    const n = this.tail - this.head;
    for (let i = 0; i < n; i++) next[i] = old[(this.head + i) & (old.length - 1)];
    this.fifo = next;
    this.head = 0;
    this.tail = n;
  }
}
