/**
 * Paging: a shard keeps the payloads of its ready messages in memory up to a budget
 * (`--queue-memory-mb`, divided among the shards). Past it, a newly accepted message goes to
 * disk: its payload lives only in the shard's log and its queue keeps an index entry
 * (paged-tail.ts). A persistent message of a durable queue is already there (its `enqueue`
 * record); any other message is appended as a `pagedEnqueue` record, which recovery ignores.
 * Once a list has messages on disk, every later one goes there too, so queue order holds.
 *
 * Replicated queues (cluster mode, replicated-queues.ts) page the same way, at the commit that
 * makes a message enter its queue, and on import (a new leader takes over a log): the replica
 * log is their durable copy, so here they are `pagedEnqueue` records whose settles still go to
 * the replicator (PagedFlag.replicated). Imports reach the shard before the front creates
 * their queue (the lead completes after the last one): those past the budget are written
 * here (holdImport), and their entries wait in replicated-queues.ts until it does.
 *
 * Reading back: when a list's in-memory head runs low (ready-list.ts), the pager reads the next
 * batch of its entries from the log, asynchronously, and appends them to the list's FIFO.
 * A basic.get that finds the head on disk waits for that read (whenPagedIn).
 *
 * A paged message that leaves without being read back (purge, delete, x-max-length, expiry)
 * is settled by its entry; one that is dead-lettered is read back first.
 * Nothing here runs unless the budget is exceeded: under it, the cost on the publish path is
 * one comparison and one length check.
 */
import type { Message } from './message.js';
import type { Queue } from './queue.js';
import type { PageHost, ReadyList } from './ready-list.js';
import { PagedFlag, newPagedEntry, pagedFlags, pagedPriority, type PagedEntry } from './paged-tail.js';
import type { ShardStore } from './shard-store.js';

/**
 * One read-back pass brings at most this many messages and bytes: a few milliseconds of reads
 * (~100k random reads/s), enough to keep a consumer busy until the next pass.
 */
const pageInBatchMessages = 512;
const pageInBatchBytes = 2 * 1024 * 1024;
/** Say "back under the budget" only once well under it, so a shard at the edge does not flood the log. */
const budgetLogHysteresis = 0.9;

/** What the pager asks of its shard. */
export interface PagerHost {
  /** Messages were read back (or left): deliver, answer gets, flush records and the log. */
  kick(q: Queue): void;
  /** Dead-letters m now (the pager keeps the order). */
  deadLetter(q: Queue, m: Message, reason: number): void;
  /** A message of a replicated queue left it: its settle goes to the replica log. */
  settleReplicated(q: Queue, msgId: number): void;
  log(level: 'info' | 'warn' | 'error', msg: string): void;
}

export class Pager {
  /** Payload bytes of the ready messages in memory, kept by every ready list of the shard. */
  readonly gauge = { residentBytes: 0 };
  /** Messages written to disk and read back, for metrics and tests. */
  pagedOut = 0;
  pagedIn = 0;
  private overBudget = false;
  private readonly entry = newPagedEntry();
  private readonly scan = newPagedEntry();
  /** basic.get requests waiting for a queue's head to be read back, in arrival order. */
  private readonly waiters = new Map<Queue, (() => void)[]>();
  /** Dead-lettering of messages on disk, one read after another so their order holds. */
  private deadLetters: Promise<void> = Promise.resolve();
  /** Per queue, dead-letters in that chain not yet sent: a later one from memory must queue behind them. */
  private readonly deadLettersPending = new Map<Queue, number>();

  constructor(
    readonly budgetBytes: number,
    private readonly store: ShardStore,
    private readonly host: PagerHost,
  ) {}

  hostFor(q: Queue): PageHost {
    return { gauge: this.gauge, pageIn: (list) => this.requestPageIn(q, list) };
  }

  /**
   * Must a message of this priority, about to be published to q, go to disk? Past the budget,
   * or when its list already has messages there. If so, q.enqueue() gets toDisk() as its
   * way to store it, before the record handler returns (the payload is a view of the ring).
   */
  mustPageOut(q: Queue, priority: number): boolean {
    return this.pastBudget(0) || q.ready.listOf(priority).pagedLength > 0;
  }

  /** Resident bytes, plus extraBytes held elsewhere, past the budget? Logs the crossings. */
  private pastBudget(extraBytes: number): boolean {
    const bytes = this.gauge.residentBytes + extraBytes;
    if (bytes > this.budgetBytes) {
      if (!this.overBudget) {
        this.overBudget = true;
        this.host.log('info', `ready messages in memory passed the budget of ${mib(this.budgetBytes)} MiB: new messages go to disk`);
      }
      return true;
    }
    if (this.overBudget && bytes < this.budgetBytes * budgetLogHysteresis) {
      this.overBudget = false;
      this.host.log('info', `ready messages in memory back under ${mib(this.budgetBytes)} MiB; queues read their paged messages back as they drain`);
    }
    return false;
  }

  /**
   * m, just accepted by q, goes to disk: its entry (valid until the next call). loggedOffset:
   * its enqueue record when it was logged as persistent, else -1 (it is logged here as a
   * pagedEnqueue). m's payload may be a view of the ring: it is copied into the log, not kept.
   */
  toDisk(q: Queue, m: Message, loggedOffset: number): PagedEntry {
    const e = this.entry;
    e.id = m.id;
    e.logOffset = loggedOffset >= 0 ? loggedOffset : this.store.pagedEnqueue(q.id, m.id, m.expiresAtMs, m.payload);
    e.expiresAtMs = m.expiresAtMs;
    e.bodyBytes = m.bodyBytes;
    e.flags = pagedFlags(m.persisted, m.persistent, m.redelivered, m.priority);
    e.enqueuedAtMs32 = m.enqueuedAtMs >>> 0;
    this.pagedOut++;
    return e;
  }

  /**
   * m, a message of the replicated queue queueId (committed, or imported), goes to disk: its
   * entry (valid until the next call). Its payload is copied into the log, not kept.
   */
  toDiskReplicated(queueId: number, m: Message): PagedEntry {
    const e = this.entry;
    e.id = m.id;
    e.logOffset = this.store.pagedReplicaEnqueue(queueId, m.id, m.expiresAtMs, m.payload);
    e.expiresAtMs = m.expiresAtMs;
    e.bodyBytes = m.bodyBytes;
    e.flags = pagedFlags(true, m.persistent, m.redelivered, m.priority) | PagedFlag.replicated;
    e.enqueuedAtMs32 = m.enqueuedAtMs >>> 0;
    this.pagedOut++;
    return e;
  }

  /**
   * An imported message of a queue the shard does not have yet: its entry once on disk, when
   * it does not fit in memory beside heldBytes of earlier ones held there (or paging already
   * began for it: order), else undefined (it stays in memory).
   */
  holdImport(queueId: number, m: Message, heldBytes: number, paging: boolean): PagedEntry | undefined {
    return paging || this.pastBudget(heldBytes + m.payload.length) ? this.toDiskReplicated(queueId, m) : undefined;
  }

  /** A held import (holdImport) is dropped unread: this node does not lead its queue after all. */
  dropHeld(e: PagedEntry): void {
    this.store.releasePagedAt(e.logOffset);
  }

  /** A message on disk left q unread: settle it, or read it back and dead-letter it. */
  pagedLeft(q: Queue, e: PagedEntry, reason: number | undefined): void {
    if (reason === undefined || q.config.deadLetterExchange === undefined) {
      this.forget(q, e);
      return;
    }
    const copy: PagedEntry = { ...e };
    this.inDeadLetterOrder(q, () => this.deadLetterFromDisk(q, copy, reason));
  }

  /**
   * m, in memory, is dead-lettered by q: at once, unless messages of q that left before it are
   * still being read back from disk to be dead-lettered; then after them (a read-back can
   * bring a queue's next messages into memory while its earlier heads are on their way out).
   * False when it must be done now, by the caller. m's payload is copied when it waits (it may
   * be a view of the ring).
   */
  deadLetterInOrder(q: Queue, m: Message, reason: number): boolean {
    if (!this.deadLettersPending.has(q)) return false;
    const held: Message = { ...m, payload: Buffer.from(m.payload) };
    this.inDeadLetterOrder(q, async () => {
      if (this.store.isClosed) return; // stopping: as for those on disk (deadLetterFromDisk)
      this.host.deadLetter(q, held, reason);
      this.host.kick(q);
    });
    return true;
  }

  private inDeadLetterOrder(q: Queue, work: () => Promise<void>): void {
    this.deadLettersPending.set(q, (this.deadLettersPending.get(q) ?? 0) + 1);
    const logged = (err: unknown): void => this.host.log('error', `queue '${q.config.name}': dead-lettering failed: ${errorText(err)}`);
    this.deadLetters = this.deadLetters.then(work).catch(logged).finally(() => {
      const left = (this.deadLettersPending.get(q) ?? 1) - 1;
      if (left > 0) this.deadLettersPending.set(q, left);
      else this.deadLettersPending.delete(q);
    });
  }

  hasWaiters(q: Queue): boolean {
    return this.waiters.has(q);
  }

  /** Runs retry once q's head has been read back (or q changed: purge, delete). */
  whenPagedIn(q: Queue, retry: () => void): void {
    let list = this.waiters.get(q);
    if (list === undefined) {
      list = [];
      this.waiters.set(q, list);
    }
    list.push(retry);
  }

  /** Retries the waiting gets of q (a retry that must wait again queues up anew, in order). */
  runWaiters(q: Queue): void {
    const list = this.waiters.get(q);
    if (list === undefined) return;
    this.waiters.delete(q);
    for (const retry of list) retry();
  }

  /** A message on disk leaves its queue unread: its settle is logged, or its record released. */
  private forget(q: Queue, e: PagedEntry): void {
    if ((e.flags & PagedFlag.replicated) !== 0) this.host.settleReplicated(q, e.id);
    else if ((e.flags & PagedFlag.persisted) !== 0) this.store.settle(q.id, e.id);
    this.releaseRecord(e);
  }

  /** The entry's record is needed no more (read back, or left): release a paged one; a settle releases an `enqueue`. */
  private releaseRecord(e: PagedEntry): void {
    if ((e.flags & PagedFlag.replicated) !== 0) this.store.releasePagedAt(e.logOffset);
    else if ((e.flags & PagedFlag.persisted) === 0) this.store.releasePaged(e.id);
  }

  private requestPageIn(q: Queue, list: ReadyList): void {
    if (list.pageInFlight) return;
    list.pageInFlight = true;
    // After the current batch of ring records: a purge or delete in it leaves nothing to read.
    queueMicrotask(() => {
      this.readBack(q, list).catch((err: unknown) => {
        list.pageInFlight = false;
        this.host.log('error', `reading back paged messages of queue '${q.config.name}' failed: ${errorText(err)}`);
      });
    });
  }

  private async readBack(q: Queue, list: ReadyList): Promise<void> {
    const ids: number[] = [];
    const offsets: number[] = [];
    const tail = list.paged;
    if (!q.deleted && tail !== undefined && list.wantsPageIn) {
      let bytes = 0;
      tail.forEach(
        this.scan,
        (e) => {
          ids.push(e.id);
          offsets.push(e.logOffset);
          bytes += e.bodyBytes;
          return bytes < pageInBatchBytes;
        },
        pageInBatchMessages,
      );
    }
    const payloads: (Buffer | string)[] = [];
    for (let i = 0; i < offsets.length && !q.deleted; i++) {
      try {
        const r = await this.store.readMessage(offsets[i] as number);
        payloads.push(r.msgId === ids[i] ? r.payload : `the record holds message ${r.msgId}`);
      } catch (err: unknown) {
        payloads.push(errorText(err));
      }
    }
    list.pageInFlight = false;
    if (q.deleted || tail === undefined || this.store.isClosed) return;
    const e = this.entry;
    const nowPerf = performance.now();
    for (let i = 0; i < payloads.length; i++) {
      // Entries that left meanwhile (purge, x-max-length, expiry) are no longer the head: skip them.
      if (tail.headId() !== ids[i] || !list.takePagedHead(e)) continue;
      const payload = payloads[i] as Buffer | string;
      if (typeof payload === 'string') {
        this.host.log('error', `queue '${q.config.name}': message ${e.id} at log offset ${e.logOffset} could not be read back (${payload}); it is dropped`);
        this.forget(q, e);
        continue;
      }
      list.push(messageOf(e, payload, nowPerf));
      this.releaseRecord(e);
      this.pagedIn++;
    }
    this.runWaiters(q);
    this.host.kick(q);
    if (list.wantsPageIn) this.requestPageIn(q, list);
  }

  private async deadLetterFromDisk(q: Queue, e: PagedEntry, reason: number): Promise<void> {
    if (this.store.isClosed) return; // stopping: unsettled, a persistent one comes back after the restart
    try {
      const r = await this.store.readMessage(e.logOffset);
      if (r.msgId !== e.id) throw new Error(`the record at log offset ${e.logOffset} holds message ${r.msgId}, not ${e.id}`);
      const m = messageOf(e, r.payload, performance.now());
      this.host.deadLetter(q, m, reason); // settles it when persisted
      this.releaseRecord(e);
    } catch (err: unknown) {
      this.host.log('error', `queue '${q.config.name}': message ${e.id} could not be read back to dead-letter it (${errorText(err)}); it is dropped`);
      this.forget(q, e);
    }
    this.host.kick(q);
  }
}

function messageOf(e: PagedEntry, payload: Buffer, nowPerf: number): Message {
  const redelivered = (e.flags & PagedFlag.redelivered) !== 0;
  // The entry keeps enqueuedAtMs mod 2^32: the age is right for 49 days.
  const ageMs = ((nowPerf >>> 0) - e.enqueuedAtMs32) >>> 0;
  return {
    id: e.id,
    payload,
    bodyBytes: e.bodyBytes,
    redelivered,
    deliveryCount: redelivered ? 1 : 0,
    priority: pagedPriority(e.flags),
    persistent: (e.flags & PagedFlag.persistent) !== 0,
    expiresAtMs: e.expiresAtMs,
    enqueuedAtMs: nowPerf - ageMs,
    persisted: (e.flags & PagedFlag.persisted) !== 0,
  };
}

function mib(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(1);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
