import type { Message } from './message.js';
import { ReadyList } from './ready-list.js';

/** The ready messages of a queue: one list, or one per priority level for x-max-priority queues. */
export interface Ready {
  readonly length: number;
  readonly bodyBytes: number;
  push(m: Message): void;
  requeue(m: Message): void;
  peek(): Message | undefined;
  shift(): Message | undefined;
  drain(): Message[];
}

export function createReady(maxPriority: number): Ready {
  return maxPriority > 0 ? new PriorityReady(maxPriority) : new ReadyList();
}

/** Higher priority first, FIFO within a priority; a priority above the maximum counts as the maximum. */
class PriorityReady implements Ready {
  private readonly levels: ReadyList[];

  constructor(readonly maxPriority: number) {
    this.levels = Array.from({ length: maxPriority + 1 }, () => new ReadyList());
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
