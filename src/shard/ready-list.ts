import type { Message } from './message.js';

/**
 * The ready messages of one queue (or one priority level), in queue order.
 * New messages append to a FIFO; requeued ones go to a min-heap keyed by message id,
 * so a nack/requeue puts a message back "in its place" (RabbitMQ's behaviour) without
 * shifting the FIFO. The head is whichever of the two holds the lower id.
 */
export class ReadyList {
  private fifo: (Message | undefined)[] = new Array<Message | undefined>(16);
  private head = 0;
  private tail = 0;
  private heap: Message[] = [];
  bodyBytes = 0;

  get length(): number {
    return this.tail - this.head + this.heap.length;
  }

  push(m: Message): void {
    if (this.tail - this.head === this.fifo.length) this.grow();
    this.fifo[this.tail & (this.fifo.length - 1)] = m;
    this.tail++;
    this.bodyBytes += m.bodyBytes;
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
    if (m !== undefined) this.bodyBytes -= m.bodyBytes;
    return m;
  }

  /** Removes everything; returns the messages in queue order. */
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
