import type { Message } from './message.js';
import { ReadyList, type PageHost } from './ready-list.js';
import { pagedPriority, type PagedEntry } from './paged-tail.js';

/** The ready messages of a queue: one list, or one per priority level for x-max-priority queues. */
export interface Ready {
  readonly length: number;
  readonly bodyBytes: number;
  push(m: Message): void;
  requeue(m: Message): void;
  peek(): Message | undefined;
  shift(): Message | undefined;
  /** The in-memory messages in queue order, up to a head on disk. */
  drain(): Message[];
  // Paging (pager.ts): messages past the shard's memory budget wait in the log, in order.
  /** The next message is on disk: shift() answers undefined until the pager reads it back. */
  readonly headOnDisk: boolean;
  /** The head's expiry (ms, 0 = never), in memory or on disk; 0 when empty. */
  headExpiresAtMs(scratch: PagedEntry): number;
  /** Removes the head when it is on disk, copied into out; false otherwise. */
  shiftPaged(out: PagedEntry): boolean;
  /** The list that holds (or would hold) messages of this priority. */
  listOf(priority: number): ReadyList;
  /** Adds a message that is on disk (recovery, a move between lists), by its priority. */
  appendPaged(e: PagedEntry): void;
}

/** Paging applies per list: per priority level in an x-max-priority queue. */
export function createReady(maxPriority: number, pages?: PageHost): Ready {
  return maxPriority > 0 ? new PriorityReady(maxPriority, pages) : new ReadyList(pages);
}

/** Higher priority first, FIFO within a priority; a priority above the maximum counts as the maximum. */
class PriorityReady implements Ready {
  private readonly levels: ReadyList[];

  constructor(
    readonly maxPriority: number,
    pages: PageHost | undefined,
  ) {
    this.levels = Array.from({ length: maxPriority + 1 }, () => new ReadyList(pages));
  }

  get length(): number {
    let n = 0;
    for (const l of this.levels) n += l.length;
    return n;
  }

  get bodyBytes(): number {
    let n = 0;
    for (const l of this.levels) n += l.bodyBytes;
    return n;
  }

  private level(m: Message): ReadyList {
    return this.levels[Math.min(m.priority, this.maxPriority)] as ReadyList;
  }

  listOf(priority: number): ReadyList {
    return this.levels[Math.min(priority, this.maxPriority)] as ReadyList;
  }

  get headOnDisk(): boolean {
    return this.top()?.headOnDisk ?? false;
  }

  headExpiresAtMs(scratch: PagedEntry): number {
    return this.top()?.headExpiresAtMs(scratch) ?? 0;
  }

  shiftPaged(out: PagedEntry): boolean {
    return this.top()?.shiftPaged(out) ?? false;
  }

  appendPaged(e: PagedEntry): void {
    (this.levels[Math.min(pagedPriority(e.flags), this.maxPriority)] as ReadyList).appendPaged(e);
  }

  push(m: Message): void {
    this.level(m).push(m);
  }

  requeue(m: Message): void {
    this.level(m).requeue(m);
  }

  private top(): ReadyList | undefined {
    for (let p = this.maxPriority; p >= 0; p--) {
      const l = this.levels[p] as ReadyList;
      if (l.length > 0) return l;
    }
    return undefined;
  }

  peek(): Message | undefined {
    return this.top()?.peek();
  }

  shift(): Message | undefined {
    return this.top()?.shift();
  }

  drain(): Message[] {
    const out: Message[] = [];
    for (let m = this.shift(); m !== undefined; m = this.shift()) out.push(m);
    return out;
  }
}
