import type { Consumer, ShardChannel } from './consumer.js';
import { acquireChannelCredit, hasCredit, releaseChannelCredit } from './consumer.js';
import type { Message } from './message.js';
import type { QueueConfig } from './queue-config.js';
import type { Ready } from './ready.js';
import { createReady } from './ready.js';
import type { PageHost } from './ready-list.js';
import { newPagedEntry, type PagedEntry } from './paged-tail.js';
import { DeadLetterReason } from '../ring/shard-records.js';

/** What a queue asks of the shard that owns it. */
export interface QueueHost {
  deliver(c: Consumer, q: Queue, m: Message): void;
  /** The message leaves the queue unacknowledged (reason: DeadLetterReason); the host dead-letters or drops it. */
  deadLetter(q: Queue, m: Message, reason: number): void;
  /** The message left the queue for good (acked or purged); dead-lettered ones go through deadLetter. */
  settled(q: Queue, m: Message): void;
  /** x-expires elapsed with the queue unused. */
  queueExpired(q: Queue): void;
  /** Something changed that may let the queue deliver (timer fired). */
  kick(q: Queue): void;
  nowMs(): number;
  /** The shard's pager for this queue's ready lists; undefined when the shard has no log. */
  pagesFor(q: Queue): PageHost | undefined;
  /**
   * A message that was on disk left the queue without being read back: settle it, or
   * dead-letter it (reason: DeadLetterReason) once its payload is read back.
   */
  pagedLeft(q: Queue, e: PagedEntry, reason: number | undefined): void;
}

interface Unacked {
  readonly message: Message;
  readonly consumer: Consumer | undefined;
  readonly channel: ShardChannel;
}

export type EnqueueResult = 'accepted' | 'rejected';

/** Longest delay setTimeout honours (2^31-1 ms, ~24.8 days); longer ones would fire at once. TTLs reach 2^32-1 ms. */
const timerMaxMs = 2 ** 31 - 1;

/** One queue's state on its shard: ready messages, unacked deliveries, consumers, TTL and length limits. */
export class Queue {
  ready: Ready;
  readonly unacked = new Map<number, Unacked>();
  readonly consumers: Consumer[] = [];
  /**
   * Messages whose TTL had run out on arrival (TTL 0), not yet offered to a consumer. RabbitMQ
   * hands such a message to a consumer that can take it at once and expires it otherwise; here
   * the first delivery pass after the publish is that chance (see deliver()).
   */
  private readonly arrivedExpired = new Set<Message>();
  private rr = 0;
  private ttlTimer: NodeJS.Timeout | undefined;
  private ttlTimerAtMs = 0;
  private expiresTimer: NodeJS.Timeout | undefined;
  deleted = false;
  private readonly pages: PageHost | undefined;
  /** Scratch for entries of messages on disk (copied out, never kept). */
  private readonly paged = newPagedEntry();
  // Counters for metrics and the management API.
  published = 0;
  delivered = 0;
  acked = 0;
  redelivered = 0;
  /** Left without being acknowledged: expired, dropped for a length limit, rejected, refused (dead-lettered or not). */
  dropped = 0;

  constructor(
    public config: QueueConfig,
    private readonly host: QueueHost,
  ) {
    this.pages = host.pagesFor(this);
    this.ready = createReady(config.maxPriority, this.pages);
    this.touch();
  }

  get id(): number {
    return this.config.queueId;
  }

  get messageCount(): number {
    return this.ready.length;
  }

  /** Applies changed settings (a policy was set or cleared). */
  reconfigure(config: QueueConfig): void {
    const priorityChanged = config.maxPriority !== this.config.maxPriority;
    this.config = config;
    if (priorityChanged) {
      // In queue order; a message on disk stays on disk. (x-max-priority is a declare argument,
      // so this only runs if a policy could change it; then a level may get an in-memory message
      // after paged ones, which it delivers first.)
      const old = this.ready;
      this.ready = createReady(config.maxPriority, this.pages);
      for (;;) {
        const m = old.shift();
        if (m !== undefined) this.ready.push(m);
        else if (old.shiftPaged(this.paged)) this.ready.appendPaged(this.paged);
        else break;
      }
    }
    this.enforceLength();
    this.touch();
    this.scheduleTtl();
  }

  /** Accepts a newly published message, applying x-max-length/x-max-length-bytes and TTL. */
  /**
   * toDisk (paging, pager.ts): the message goes to disk instead of memory; called once it is
   * accepted and before the length limit applies, it logs the message and returns its entry.
   */
  enqueue(m: Message, toDisk?: (m: Message) => PagedEntry): EnqueueResult {
    const c = this.config;
    if (c.overflow !== 'drop-head' && this.wouldOverflow(m)) {
      if (c.overflow === 'reject-publish-dlx') this.host.deadLetter(this, m, DeadLetterReason.maxlen);
      return 'rejected';
    }
    this.published++;
    if (toDisk !== undefined) {
      this.ready.appendPaged(toDisk(m)); // expires at the head if its TTL has run out
    } else {
      this.ready.push(m);
      if (m.expiresAtMs !== 0 && m.expiresAtMs <= this.host.nowMs()) this.arrivedExpired.add(m);
    }
    this.enforceLength(true);
    return 'accepted';
  }

  private wouldOverflow(m: Message): boolean {
    const c = this.config;
    if (c.maxLength !== undefined && this.ready.length + 1 > c.maxLength) return true;
    return c.maxLengthBytes !== undefined && this.ready.bodyBytes + m.bodyBytes > c.maxLengthBytes;
  }

  /**
   * drop-head: the oldest ready messages leave (dead-lettered as maxlen) until the limits hold.
   * RabbitMQ offers an arriving message to the consumers before the limit applies, so what a
   * consumer with credit can take now is delivered rather than dropped (x-max-length 0 makes
   * a queue for live consumers only): over the limit after an arrival, one delivery pass runs
   * first. After a requeue or a policy change RabbitMQ drops first, and so does this.
   */
  private enforceLength(arrival = false): void {
    const c = this.config;
    if (c.maxLength === undefined && c.maxLengthBytes === undefined) return;
    let offered = !arrival || this.consumers.length === 0;
    for (;;) {
      const over =
        (c.maxLength !== undefined && this.ready.length > c.maxLength) ||
        (c.maxLengthBytes !== undefined && this.ready.bodyBytes > c.maxLengthBytes);
      if (!over) return;
      if (!offered) {
        offered = true;
        // At most the excess: the arrivals, not a backlog held back by output backpressure.
        this.deliver(c.maxLength !== undefined ? Math.max(1, this.ready.length - c.maxLength) : 1);
        continue;
      }
      if (!this.dropHead(DeadLetterReason.maxlen)) return;
    }
  }

  /** The head leaves unacknowledged (dead-lettered for reason), in memory or on disk; false when empty. */
  private dropHead(reason: number): boolean {
    const head = this.ready.shift();
    if (head !== undefined) this.host.deadLetter(this, head, reason);
    else if (this.ready.shiftPaged(this.paged)) this.host.pagedLeft(this, this.paged, reason);
    else return false;
    return true;
  }

  addConsumer(c: Consumer): void {
    this.consumers.push(c);
    this.clearExpires();
  }

  removeConsumer(consumerId: number): Consumer | undefined {
    const i = this.consumers.findIndex((c) => c.id === consumerId);
    if (i < 0) return undefined;
    const [c] = this.consumers.splice(i, 1);
    if (this.rr > i) this.rr--;
    if (this.consumers.length === 0) this.touch();
    return c;
  }

  /**
   * Hands ready messages to consumers with credit, highest consumer priority first and
   * round-robin among equals; with single-active-consumer only the first one receives.
   * Returns how many were delivered (at most budget).
   */
  deliver(budget: number): number {
    let n = 0;
    this.expireHead();
    while (n < budget && this.ready.length > 0) {
      const c = this.pickConsumer();
      if (c === undefined) break;
      // Another shard may have taken the channel's last global credit since pickConsumer looked.
      const credited = !c.noAck && acquireChannelCredit(c.channel);
      if (!c.noAck && !credited) break;
      const m = this.ready.shift();
      if (m === undefined) {
        if (credited) releaseChannelCredit(c.channel);
        break;
      }
      if (this.isExpired(m)) {
        if (credited) releaseChannelCredit(c.channel);
        this.host.deadLetter(this, m, DeadLetterReason.expired);
        continue;
      }
      this.handOut(m, c, c.channel);
      this.host.deliver(c, this, m);
      n++;
    }
    if (this.arrivedExpired.size > 0) {
      // Their one chance is over: what no consumer took is expired (from the head, as always).
      this.arrivedExpired.clear();
      this.expireHead();
    }
    this.scheduleTtl();
    return n;
  }

  private handOut(m: Message, c: Consumer | undefined, channel: ShardChannel): void {
    m.deliveryCount++;
    this.delivered++;
    if (m.redelivered) this.redelivered++;
    if (c !== undefined && c.noAck) return;
    this.unacked.set(m.id, { message: m, consumer: c, channel });
    if (c !== undefined) {
      c.unacked++;
      channel.unacked++;
    }
  }

  private pickConsumer(): Consumer | undefined {
    const cs = this.consumers;
    const n = cs.length;
    if (n === 0) return undefined;
    if (this.config.singleActiveConsumer) {
      const active = cs[0] as Consumer;
      return hasCredit(active) ? active : undefined;
    }
    let best: Consumer | undefined;
    let bestIndex = 0;
    for (let k = 0; k < n; k++) {
      const i = (this.rr + k) % n;
      const c = cs[i] as Consumer;
      if ((best === undefined || c.priority > best.priority) && hasCredit(c)) {
        best = c;
        bestIndex = i;
      }
    }
    if (best !== undefined) this.rr = (bestIndex + 1) % n;
    return best;
  }

  /**
   * Messages that arrived already expired (TTL 0) have had their one chance at a consumer
   * only once a delivery pass ran; RabbitMQ offers them on arrival, so a basic.get, a count
   * or a purge that comes after them in the same batch must not see them.
   */
  settleArrivals(): void {
    if (this.arrivedExpired.size > 0) this.deliver(this.arrivedExpired.size);
  }

  /** basic.get: the head message, or undefined when none is ready. */
  get(channel: ShardChannel, noAck: boolean): Message | undefined {
    this.settleArrivals();
    this.touch();
    this.expireHead();
    const m = this.ready.shift();
    if (m === undefined) return undefined;
    // An expired message now at the head leaves before get-ok counts the rest, as in RabbitMQ.
    this.expireHead();
    m.deliveryCount++;
    this.delivered++;
    if (m.redelivered) this.redelivered++;
    if (!noAck) this.unacked.set(m.id, { message: m, consumer: undefined, channel });
    this.scheduleTtl();
    return m;
  }

  ack(msgId: number): void {
    const u = this.settle(msgId);
    if (u === undefined) return;
    this.acked++;
    this.host.settled(this, u.message);
  }

  /** basic.nack/reject: back in its place (redelivered) or dead-lettered as rejected. */
  nack(msgId: number, requeue: boolean): void {
    const u = this.settle(msgId);
    if (u === undefined) return;
    const m = u.message;
    if (requeue) {
      m.redelivered = true;
      if (this.config.deliveryLimit !== undefined && m.deliveryCount > this.config.deliveryLimit) {
        this.host.deadLetter(this, m, DeadLetterReason.deliveryLimit);
        return;
      }
      this.ready.requeue(m);
      // RabbitMQ applies drop-head after a requeue too (requeue_and_run): the requeued message, back at the head, may be the one dropped.
      if (this.config.overflow === 'drop-head') this.enforceLength();
    } else {
      this.host.deadLetter(this, m, DeadLetterReason.rejected);
    }
  }

  private settle(msgId: number): Unacked | undefined {
    const u = this.unacked.get(msgId);
    if (u === undefined) return undefined;
    this.unacked.delete(msgId);
    if (u.consumer !== undefined) {
      u.consumer.unacked--;
      u.channel.unacked--;
      releaseChannelCredit(u.channel);
    }
    return u;
  }

  /** queue.purge removes the ready messages (not the unacked ones), as RabbitMQ does. */
  purge(): number {
    this.settleArrivals();
    let n = 0;
    for (;;) {
      const m = this.ready.shift();
      if (m !== undefined) this.host.settled(this, m);
      else if (this.ready.shiftPaged(this.paged)) this.host.pagedLeft(this, this.paged, undefined);
      else break;
      n++;
    }
    this.arrivedExpired.clear();
    this.scheduleTtl();
    return n;
  }

  /** Ids of every message the queue holds (ready, in memory or on disk, and unacked); empties the ready list. */
  *messageIds(): IterableIterator<number> {
    for (const id of this.unacked.keys()) yield id;
    for (;;) {
      const m = this.ready.shift();
      if (m !== undefined) yield m.id;
      else if (this.ready.shiftPaged(this.paged)) yield this.paged.id;
      else return;
    }
  }

  /** The queue goes away: returns the ready message count for delete-ok. */
  destroy(): number {
    const n = this.ready.length;
    this.deleted = true;
    for (;;) {
      if (this.ready.shift() !== undefined) continue;
      if (!this.ready.shiftPaged(this.paged)) break;
      this.host.pagedLeft(this, this.paged, undefined); // its log record may go
    }
    this.arrivedExpired.clear();
    this.unacked.clear();
    this.consumers.length = 0;
    this.clearExpires();
    if (this.ttlTimer !== undefined) clearTimeout(this.ttlTimer);
    this.ttlTimer = undefined;
    return n;
  }

  private isExpired(m: Message): boolean {
    return m.expiresAtMs !== 0 && m.expiresAtMs <= this.host.nowMs() && !this.arrivedExpired.has(m);
  }

  /** Expired messages leave from the head only, as in RabbitMQ's classic queues. */
  expireHead(): void {
    for (;;) {
      const m = this.ready.peek();
      if (m !== undefined) {
        if (!this.isExpired(m)) return;
        this.ready.shift();
        this.host.deadLetter(this, m, DeadLetterReason.expired);
        continue;
      }
      // A head on disk expires by its index entry, without reading it back (unless it is dead-lettered).
      if (!this.ready.headOnDisk) return;
      const at = this.ready.headExpiresAtMs(this.paged);
      if (at === 0 || at > this.host.nowMs() || !this.ready.shiftPaged(this.paged)) return;
      this.host.pagedLeft(this, this.paged, DeadLetterReason.expired);
    }
  }

  /** Arms a timer for the head's expiry so expired messages are dead-lettered without a consumer. */
  scheduleTtl(): void {
    const at = this.ready.headExpiresAtMs(this.paged);
    if (at === 0) return;
    if (this.ttlTimer !== undefined && this.ttlTimerAtMs <= at) return;
    if (this.ttlTimer !== undefined) clearTimeout(this.ttlTimer);
    this.ttlTimerAtMs = at;
    this.ttlTimer = setTimeout(
      () => {
        this.ttlTimer = undefined;
        this.ttlTimerAtMs = 0;
        if (this.deleted) return;
        this.expireHead();
        this.host.kick(this);
        this.scheduleTtl();
      },
      // An early wake (the clamp) finds nothing expired and re-arms for the rest.
      Math.min(timerMaxMs, Math.max(0, at - this.host.nowMs())),
    );
  }

  /** Queue activity for x-expires (declare, get, consumer changes). */
  touch(): void {
    const ms = this.config.expiresMs;
    this.clearExpires();
    if (ms === undefined || this.consumers.length > 0 || this.deleted) return;
    this.armExpires(this.host.nowMs() + ms);
  }

  private armExpires(atMs: number): void {
    this.expiresTimer = setTimeout(
      () => {
        this.expiresTimer = undefined;
        if (this.deleted || this.consumers.length > 0) return;
        if (this.host.nowMs() < atMs) this.armExpires(atMs); // woke early: x-expires beyond the timer limit
        else this.host.queueExpired(this);
      },
      Math.min(timerMaxMs, Math.max(0, atMs - this.host.nowMs())),
    );
  }

  private clearExpires(): void {
    if (this.expiresTimer !== undefined) clearTimeout(this.expiresTimer);
    this.expiresTimer = undefined;
  }
}
