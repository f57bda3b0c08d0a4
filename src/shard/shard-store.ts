/**
 * A shard's durable side: its segment log, what recovery found in it, and the bookkeeping
 * that turns queue events into log records — enqueues of persistent messages in durable
 * queues, settles, delivered markers and queue deletes — plus which log prefix is still
 * needed (so settled segments can be deleted).
 *
 * Each run of the node is bracketed in the log by an `open` record (written and committed at
 * start-up) and a `close` record (at a clean stop, after every pending delivered/settle
 * record). Recovery of a log that does not end with `close` — a crash — cannot trust the
 * delivered markers (a delivery may reach its consumer before its marker is written), so
 * every recovered message counts as delivered, and that is logged so a later clean restart
 * remembers it.
 */
import { SegmentLog } from '../store/segment-log.js';
import type { FsyncPolicy } from '../store/fsync-policy.js';
import type { LogOffset } from '../store/log-offset.js';
import { LogKind, encodeEnqueueHeader, encodeIdList, enqueueHeaderBytes } from './log-records.js';
import { LiveOffsets } from './live-offsets.js';
import { LogReplay } from './log-replay.js';
import { forEachInLogOrder, type RecoveredQueue } from './recovered-queue.js';
import type { PagedEntry } from './paged-tail.js';

/** A message record read back from the log by the pager. */
export interface PagedRecord {
  msgId: number;
  /** The message payload as the front encoded it (the record's header stripped). */
  payload: Buffer;
}

export interface ShardStoreOptions {
  dir: string;
  fsync: FsyncPolicy;
  segmentBytes: number;
  repair: boolean;
  log: (level: 'info' | 'warn' | 'error', msg: string) => void;
}

/**
 * Look for settled segments to delete this long after a commit, at most once per interval:
 * prompt enough that a burst gives its disk back soon after its last ack (a check driven by
 * commit counts alone never ran after the traffic stopped), rare enough to cost nothing.
 */
const releaseDelayMs = 100;
/**
 * Ids per `delivered` record written after a crash (512 KiB records): ten million recovered
 * messages in one record would be 80 MB, more than a segment, and an array that size on the heap.
 */
const assumedDeliveredIdsPerRecord = 65_536;

export class ShardStore {
  /** queueId → its recovered messages (in id order), until the front re-creates the queue. */
  readonly recovered = new Map<number, RecoveredQueue>();
  maxMsgId = 0;
  private readonly settles = new Map<number, number[]>();
  private readonly delivered = new Map<number, number[]>();
  private readonly enqHeader = Buffer.allocUnsafe(enqueueHeaderBytes);
  /** Live logged messages (persistent ones, and transient ones paged to disk) and their offsets. */
  private readonly live = new LiveOffsets();
  /**
   * Paged records of replicated queues' messages (pagedReplicaEnqueue), keyed by their own log
   * offset: those ids do not rise in this log's order, so `live` cannot hold them.
   */
  private readonly pagedReplicas = new LiveOffsets();
  private releaseTimer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    readonly log: SegmentLog,
    private readonly say: ShardStoreOptions['log'],
  ) {}

  static async open(opts: ShardStoreOptions): Promise<{ store: ShardStore; records: number; truncatedBytes: number }> {
    const replay = new LogReplay(opts.dir);
    const { log, report } = await SegmentLog.open(
      opts.dir,
      { segmentBytes: opts.segmentBytes, fsync: opts.fsync, repair: opts.repair, preallocate: true, log: opts.log, fsyncOnThread: true },
      replay.onRecord,
    );
    const store = new ShardStore(log, opts.log);
    for (const [queueId, q] of replay.queues) store.recovered.set(queueId, q);
    // The live list must be in log order across all queues: release() keeps only the segments
    // from its first unsettled entry on, so one queue's messages listed before an older
    // message of another queue would let that older one's segment be deleted.
    forEachInLogOrder([...replay.queues.values()], (msgId, offset) => store.trackLive(msgId, offset));
    store.maxMsgId = replay.maxMsgId;
    // A cut tail or a repair means records of some run are gone, its delivered markers with them.
    const lastKind = replay.lastKind;
    const cleanStop = lastKind === LogKind.close && report.truncatedBytes === 0 && report.repaired === undefined;
    if (lastKind !== undefined && !cleanStop) store.assumeDelivered(opts.dir);
    // Committed before any delivery of this run, so a crash of this run is never taken for a clean stop.
    log.append(LogKind.open, Buffer.alloc(0));
    await log.commit();
    // After the I/O callbacks of recovery have run: buffers their closures still hold are garbage by then.
    if (lastKind !== undefined) setImmediate(() => store.sayRecovered());
    // Segments holding only what did not come back (transient paged messages) can go now.
    store.scheduleRelease();
    return { store, records: report.records, truncatedBytes: report.truncatedBytes };
  }

  /** After a crash: every recovered message may have been delivered; say so now and in the log. */
  private assumeDelivered(dir: string): void {
    let n = 0;
    for (const [queueId, q] of this.recovered) {
      let ids: number[] = [];
      q.markAllDelivered((msgId) => {
        ids.push(msgId);
        if (ids.length < assumedDeliveredIdsPerRecord) return;
        this.log.append(LogKind.delivered, encodeIdList(queueId, ids));
        n += ids.length;
        ids = [];
      });
      if (ids.length > 0) this.log.append(LogKind.delivered, encodeIdList(queueId, ids));
      n += ids.length;
    }
    if (n > 0) this.say('warn', `${dir} does not end with a clean stop: ${n} recovered message(s) may have been delivered before the crash and will carry redelivered=true`);
  }

  /**
   * What recovery holds, once: a restart of a node with a long backlog must fit its memory, so
   * the heap it takes is worth a line (test/durability/recovery-memory.test.ts reads it).
   */
  private sayRecovered(): void {
    // Under --expose-gc (tests, diagnosis) collect first: the figure is then what recovery keeps, not its garbage.
    (globalThis as { gc?: () => void }).gc?.();
    const { heapUsed, arrayBuffers } = process.memoryUsage();
    let n = 0;
    for (const q of this.recovered.values()) n += q.length;
    this.say('info', `recovered ${n} message(s) for ${this.recovered.size} queue(s); heap used ${mib(heapUsed)} MiB, array buffers ${mib(arrayBuffers)} MiB`);
  }

  /**
   * Hands the recovered messages of a queue the front re-created to visit, in queue order, each
   * copied into out (whose enqueuedAtMs32 the caller sets); then forgets them.
   */
  takeRecovered(queueId: number, out: PagedEntry, visit: (e: PagedEntry) => void): void {
    const q = this.recovered.get(queueId);
    this.recovered.delete(queueId);
    q?.take(out, visit);
  }

  /** Messages of queues that no longer exist: a queue delete record settles them, so their segments can go. */
  dropUnclaimed(): number {
    let n = 0;
    for (const [queueId, q] of this.recovered) {
      q.forEachOffset((msgId) => this.live.settle(msgId));
      n += q.length;
      this.appendQueueDelete(queueId);
    }
    this.recovered.clear();
    return n;
  }

  private trackLive(msgId: number, offset: number): void {
    this.live.append(msgId, offset);
  }

  enqueue(queueId: number, msgId: number, expiresAtMs: number, payload: Buffer): LogOffset {
    const offset = this.log.appendParts(LogKind.enqueue, encodeEnqueueHeader(this.enqHeader, queueId, msgId, expiresAtMs), payload);
    this.trackLive(msgId, offset);
    return offset;
  }

  /**
   * A transient message paged to disk (pager.ts): its payload goes to the log as a
   * `pagedEnqueue`, which recovery ignores, and stays live until releasePaged().
   */
  pagedEnqueue(queueId: number, msgId: number, expiresAtMs: number, payload: Buffer): LogOffset {
    const offset = this.log.appendParts(LogKind.pagedEnqueue, encodeEnqueueHeader(this.enqHeader, queueId, msgId, expiresAtMs), payload);
    this.trackLive(msgId, offset);
    return offset;
  }

  /** The record of a paged message is no longer needed (read back, or dropped), with no settle record. */
  releasePaged(msgId: number): void {
    // No record, so no commit follows to look for segments to delete: look anyway.
    if (this.live.settle(msgId)) this.scheduleRelease();
  }

  /**
   * A message of a replicated queue paged to disk (pager.ts): logged as a `pagedEnqueue` like a
   * transient one (its durable copy is the replica log), but tracked by its offset — it is
   * paged at its commit or imported from another node's log, so its id does not follow this
   * log's order. Live until releasePagedAt(offset).
   */
  pagedReplicaEnqueue(queueId: number, msgId: number, expiresAtMs: number, payload: Buffer): LogOffset {
    const offset = this.log.appendParts(LogKind.pagedEnqueue, encodeEnqueueHeader(this.enqHeader, queueId, msgId, expiresAtMs), payload);
    this.pagedReplicas.append(offset, offset);
    return offset;
  }

  /** The paged record of a replicated queue's message at `offset` is no longer needed. */
  releasePagedAt(offset: number): void {
    if (this.pagedReplicas.settle(offset)) this.scheduleRelease();
  }

  /** close() began: reads may fail and nothing more is logged. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Reads back the message record at `offset` (an enqueue or pagedEnqueue). */
  async readMessage(offset: number): Promise<PagedRecord> {
    const r = await this.log.read(offset as LogOffset);
    if ((r.kind !== LogKind.enqueue && r.kind !== LogKind.pagedEnqueue) || r.payload.length < enqueueHeaderBytes) {
      throw new Error(`log record at offset ${offset} is of kind ${r.kind} (${r.payload.length} bytes), not a message`);
    }
    return { msgId: r.payload.readDoubleLE(4), payload: r.payload.subarray(enqueueHeaderBytes) };
  }

  settle(queueId: number, msgId: number): void {
    if (!this.live.settle(msgId)) return;
    let ids = this.settles.get(queueId);
    if (ids === undefined) {
      ids = [];
      this.settles.set(queueId, ids);
    }
    ids.push(msgId);
  }

  markDelivered(queueId: number, msgId: number): void {
    if (!this.live.has(msgId)) return;
    let ids = this.delivered.get(queueId);
    if (ids === undefined) {
      ids = [];
      this.delivered.set(queueId, ids);
    }
    ids.push(msgId);
  }

  deleteQueue(queueId: number, msgIds: Iterable<number>): void {
    for (const id of msgIds) this.live.settle(id);
    this.settles.delete(queueId);
    this.delivered.delete(queueId);
    this.appendQueueDelete(queueId);
  }

  private appendQueueDelete(queueId: number): void {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32LE(queueId, 0);
    this.log.append(LogKind.queueDelete, b);
  }

  /**
   * Appends the batched settle/delivered records; true if anything appended is not yet written,
   * i.e. a commit() has work to do. (Not "not yet flushed": under batch-ms the timer's
   * fdatasync flushes written records, and a caller that committed again until flushedOffset
   * caught up would spin on resolved commits and starve that very timer.)
   */
  flushBatches(): boolean {
    for (const [queueId, ids] of this.delivered) this.log.append(LogKind.delivered, encodeIdList(queueId, ids));
    this.delivered.clear();
    for (const [queueId, ids] of this.settles) this.log.append(LogKind.settle, encodeIdList(queueId, ids));
    this.settles.clear();
    return this.log.nextOffset - 1 > this.log.writtenOffset;
  }

  async commit(sync = true): Promise<LogOffset> {
    const flushed = await this.log.commit(sync);
    this.scheduleRelease();
    return flushed;
  }

  /** One release check shortly after commits (coalesced), so it also follows the last commit of a burst. */
  private scheduleRelease(): void {
    if (this.releaseTimer !== undefined || this.closed) return;
    this.releaseTimer = setTimeout(() => {
      this.releaseTimer = undefined;
      this.release().catch((err: unknown) => this.say('warn', `could not delete settled segments: ${err instanceof Error ? err.message : String(err)}`));
    }, releaseDelayMs);
    this.releaseTimer.unref();
  }

  /** Deletes the segments wholly below the oldest live message. */
  private async release(): Promise<void> {
    const oldest = [this.live.oldestOffset(), this.pagedReplicas.oldestOffset()].filter((o) => o !== undefined);
    const needed = oldest.length > 0 ? Math.min(...oldest) : this.log.flushedOffset + 1;
    await this.log.releaseBefore(needed as LogOffset);
  }

  /** A clean stop: the pending records, then `close`, which tells the next recovery that every delivery was logged. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.releaseTimer);
    try {
      this.flushBatches();
      this.log.append(LogKind.close, Buffer.alloc(0));
    } catch (err: unknown) {
      // A log that refuses appends (broken after a failed rollback) ends like a crash: recovery copes.
      this.say('error', `could not log a clean stop: ${err instanceof Error ? err.message : String(err)}`);
    }
    await this.log.close();
  }
}

function mib(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(1);
}
