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
import type { LogRecord } from '../store/log-record.js';
import { LogKind, decodeIdList, encodeEnqueueHeader, encodeIdList, enqueueHeaderBytes } from './log-records.js';
import { LiveOffsets } from './live-offsets.js';
import { payloadLayout } from '../ring/shard-records.js';
import { peekPriority } from '../amqp/content-header.js';

/** A recovered message without its payload: the queue reads that back from the log (pager.ts). */
export interface RecoveredMessage {
  msgId: number;
  expiresAtMs: number;
  bodyBytes: number;
  priority: number;
  delivered: boolean;
  logOffset: number;
}

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

export class ShardStore {
  /** queueId → recovered messages (in msgId order once sorted), until the front re-creates the queue. */
  readonly recovered = new Map<number, Map<number, RecoveredMessage>>();
  maxMsgId = 0;
  private readonly settles = new Map<number, number[]>();
  private readonly delivered = new Map<number, number[]>();
  private readonly enqHeader = Buffer.allocUnsafe(enqueueHeaderBytes);
  /** Live logged messages (persistent ones, and transient ones paged to disk) and their offsets. */
  private readonly live = new LiveOffsets();
  private releaseTimer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    readonly log: SegmentLog,
    private readonly say: ShardStoreOptions['log'],
  ) {}

  static async open(opts: ShardStoreOptions): Promise<{ store: ShardStore; records: number; truncatedBytes: number }> {
    const recovered = new Map<number, Map<number, RecoveredMessage>>();
    let maxMsgId = 0;
    let lastKind: number | undefined;
    const onRecord = (r: LogRecord): void => {
      const p = r.payload;
      lastKind = r.kind;
      switch (r.kind) {
        case LogKind.enqueue: {
          const queueId = p.readUInt32LE(0);
          const msgId = p.readDoubleLE(4);
          let q = recovered.get(queueId);
          if (q === undefined) {
            q = new Map();
            recovered.set(queueId, q);
          }
          // No copy of the payload: 10 million recovered messages must not come back into memory.
          const payload = p.subarray(enqueueHeaderBytes);
          const layout = payloadLayout(payload);
          const priority = peekPriority(payload.subarray(layout.propsStart, layout.propsEnd)) ?? 0;
          q.set(msgId, { msgId, expiresAtMs: p.readDoubleLE(12), bodyBytes: payload.length - layout.propsEnd, priority, delivered: false, logOffset: r.offset });
          if (msgId > maxMsgId) maxMsgId = msgId;
          break;
        }
        case LogKind.pagedEnqueue: {
          // A transient message paged to disk: it does not come back, but its id stays used.
          const msgId = p.readDoubleLE(4);
          if (msgId > maxMsgId) maxMsgId = msgId;
          break;
        }
        case LogKind.settle: {
          const { queueId, ids } = decodeIdList(p);
          const q = recovered.get(queueId);
          if (q !== undefined) for (const id of ids) q.delete(id);
          break;
        }
        case LogKind.delivered: {
          const { queueId, ids } = decodeIdList(p);
          const q = recovered.get(queueId);
          if (q !== undefined) for (const id of ids) {
            const m = q.get(id);
            if (m !== undefined) m.delivered = true;
          }
          break;
        }
        case LogKind.queueDelete:
          recovered.delete(p.readUInt32LE(0));
          break;
        case LogKind.open:
        case LogKind.close:
          break;
        default:
          throw new Error(`unknown shard log record kind ${r.kind} at offset ${r.offset}`);
      }
    };
    const { log, report } = await SegmentLog.open(
      opts.dir,
      { segmentBytes: opts.segmentBytes, fsync: opts.fsync, repair: opts.repair, preallocate: true, log: opts.log },
      onRecord,
    );
    const store = new ShardStore(log, opts.log);
    for (const [qid, msgs] of recovered) {
      const sorted = new Map([...msgs.values()].sort((a, b) => a.msgId - b.msgId).map((m) => [m.msgId, m]));
      store.recovered.set(qid, sorted);
    }
    // The live list must be in log order across all queues: release() keeps only the segments
    // from its first unsettled entry on, so one queue's messages listed before an older
    // message of another queue would let that older one's segment be deleted.
    const byOffset = [...recovered.values()].flatMap((msgs) => [...msgs.values()]).sort((a, b) => a.logOffset - b.logOffset);
    for (const m of byOffset) store.trackLive(m.msgId, m.logOffset);
    store.maxMsgId = maxMsgId;
    // A cut tail or a repair means records of some run are gone, its delivered markers with them.
    const cleanStop = lastKind === LogKind.close && report.truncatedBytes === 0 && report.repaired === undefined;
    if (lastKind !== undefined && !cleanStop) store.assumeDelivered(opts.dir);
    // Committed before any delivery of this run, so a crash of this run is never taken for a clean stop.
    log.append(LogKind.open, Buffer.alloc(0));
    await log.commit();
    // Segments holding only what did not come back (transient paged messages) can go now.
    store.scheduleRelease();
    return { store, records: report.records, truncatedBytes: report.truncatedBytes };
  }

  /** After a crash: every recovered message may have been delivered; say so now and in the log. */
  private assumeDelivered(dir: string): void {
    let n = 0;
    for (const [queueId, msgs] of this.recovered) {
      const ids: number[] = [];
      for (const m of msgs.values()) {
        if (!m.delivered) ids.push(m.msgId);
        m.delivered = true;
      }
      if (ids.length > 0) this.log.append(LogKind.delivered, encodeIdList(queueId, ids));
      n += ids.length;
    }
    if (n > 0) this.say('warn', `${dir} does not end with a clean stop: ${n} recovered message(s) may have been delivered before the crash and will carry redelivered=true`);
  }

  /** The recovered messages of a queue the front re-created (then forgotten here). */
  takeRecovered(queueId: number): RecoveredMessage[] {
    const q = this.recovered.get(queueId);
    this.recovered.delete(queueId);
    return q === undefined ? [] : [...q.values()];
  }

  /** Messages of queues that no longer exist: settle them so their segments can go. */
  dropUnclaimed(): number {
    let n = 0;
    for (const [queueId, msgs] of this.recovered) {
      for (const m of msgs.values()) this.settle(queueId, m.msgId);
      n += msgs.size;
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

  async commit(): Promise<LogOffset> {
    const flushed = await this.log.commit();
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
    const needed = this.live.oldestOffset() ?? this.log.flushedOffset + 1;
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
