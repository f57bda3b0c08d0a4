/**
 * Start-up replay of a shard's log records (log-records.ts) into what recovery hands on: per
 * queue the messages still queued, as compact index entries (recovered-queue.ts), and the
 * highest message id used. Nothing is kept per message on the JS heap and no payload is copied,
 * so a log holding ten million queued messages replays within a few hundred MiB of typed arrays.
 */
import type { LogRecord } from '../store/log-record.js';
import { LogKind, enqueueHeaderBytes } from './log-records.js';
import { RecoveredQueue } from './recovered-queue.js';
import { pagedFlags } from './paged-tail.js';
import { payloadLayout } from '../ring/shard-records.js';
import { peekPriority } from '../amqp/content-header.js';

/** Byte positions in a settle or delivered record: [u32 queueId][u32 n][f64 msgId × n]. */
const idListCountAt = 4;
const idListIdsAt = 8;
const idBytes = 8;

export class LogReplay {
  /** queueId → its recovered messages (queues deleted later in the log are gone). */
  readonly queues = new Map<number, RecoveredQueue>();
  maxMsgId = 0;
  /** Kind of the last record: a log that ends with `close` was left by a clean stop. */
  lastKind: number | undefined;

  constructor(private readonly dir: string) {}

  readonly onRecord = (r: LogRecord): void => {
    this.lastKind = r.kind;
    const p = r.payload;
    switch (r.kind) {
      case LogKind.enqueue:
        this.enqueue(r);
        break;
      case LogKind.pagedEnqueue:
        // A message paged to disk that does not come back (transient, or a replicated queue's): its id stays used.
        this.useId(p.readDoubleLE(4));
        break;
      case LogKind.settle: {
        const q = this.queues.get(p.readUInt32LE(0));
        if (q !== undefined) forEachListedId(p, (id) => q.settle(id));
        break;
      }
      case LogKind.delivered: {
        const q = this.queues.get(p.readUInt32LE(0));
        if (q !== undefined) forEachListedId(p, (id) => q.markDelivered(id));
        break;
      }
      case LogKind.queueDelete:
        this.queues.delete(p.readUInt32LE(0));
        break;
      case LogKind.open:
      case LogKind.close:
        break;
      default:
        throw new Error(`unknown shard log record kind ${r.kind} at offset ${r.offset}`);
    }
  };

  private enqueue(r: LogRecord): void {
    const p = r.payload;
    const queueId = p.readUInt32LE(0);
    const msgId = p.readDoubleLE(4);
    let q = this.queues.get(queueId);
    if (q === undefined) {
      q = new RecoveredQueue();
      this.queues.set(queueId, q);
    }
    // The shard logs an enqueue when it assigns the id, from a counter that only rises
    // (live-offsets.ts relies on it too): settles then find their message by binary search.
    if (msgId <= q.lastId) {
      throw new Error(`${this.dir}: the enqueue record at log offset ${r.offset} holds message ${msgId} of queue ${queueId}, after message ${q.lastId}: message ids must rise in log order`);
    }
    const payload = p.subarray(enqueueHeaderBytes);
    const layout = payloadLayout(payload);
    const priority = peekPriority(payload.subarray(layout.propsStart, layout.propsEnd)) ?? 0;
    q.append(msgId, r.offset, p.readDoubleLE(12), payload.length - layout.propsEnd, pagedFlags(true, true, false, priority));
    this.useId(msgId);
  }

  private useId(msgId: number): void {
    if (msgId > this.maxMsgId) this.maxMsgId = msgId;
  }
}

/** The ids of a settle or delivered record, without building an array of them. */
function forEachListedId(payload: Buffer, visit: (id: number) => void): void {
  const n = payload.readUInt32LE(idListCountAt);
  for (let i = 0; i < n; i++) visit(payload.readDoubleLE(idListIdsAt + idBytes * i));
}
