/**
 * The hot-standby state of one replicated queue: which messages are live (enqueued, not yet
 * settled), at which offset their enqueue record lives, and whether a consumer already got them
 * (so a new leader redelivers them with redelivered=true). Built from the shard's record kinds;
 * a Map keeps insertion order, which is log order, which is queue order.
 */
import { LogKind } from '../shard/log-records.js';

/** Record kind of the replica log that the shard log does not have: a leader's first record of its epoch. */
export const REPLICA_KIND_EPOCH_START = 8;
/** epochStart payload: [f64 epoch]. */
export const EPOCH_START_PAYLOAD_BYTES = 8;

/** Offsets in the enqueue, settle and delivered payloads (shard/log-records.ts). */
const QUEUE_ID_OFFSET = 0;
const MSG_ID_OFFSET = 4;
const ID_COUNT_OFFSET = 4;
const IDS_OFFSET = 8;
const ID_BYTES = 8;
const ENQUEUE_HEADER_BYTES = 20;

export interface LiveEntry {
  offset: number;
  delivered: boolean;
}

/** The live messages in queue order as three columns: one copy for another thread, no object per message. */
export interface LiveColumns {
  msgIds: Float64Array<ArrayBuffer>;
  /** Offset of each message's enqueue record. */
  offsets: Float64Array<ArrayBuffer>;
  /** 1 when a consumer already got the message. */
  delivered: Uint8Array<ArrayBuffer>;
}

/** A record payload that the index cannot read: the record is kept in the log, the message state is not changed. */
export class RecordPayloadError extends Error {
  override name = 'RecordPayloadError';
}

export class LiveIndex {
  private readonly live = new Map<number, LiveEntry>();

  get size(): number {
    return this.live.size;
  }

  /** Offset of the oldest live message's enqueue record, or undefined when none is live. */
  lowestOffset(): number | undefined {
    for (const entry of this.live.values()) return entry.offset;
    return undefined;
  }

  /** [msgId, entry] in queue order; a copy, safe to keep across appends. */
  snapshot(): Array<[number, LiveEntry]> {
    return Array.from(this.live, ([msgId, entry]) => [msgId, { offset: entry.offset, delivered: entry.delivered }]);
  }

  /** As snapshot(), in columns (a queue may hold millions of messages). */
  columns(): LiveColumns {
    const count = this.live.size;
    const columns: LiveColumns = { msgIds: new Float64Array(count), offsets: new Float64Array(count), delivered: new Uint8Array(count) };
    let i = 0;
    for (const [msgId, entry] of this.live) {
      columns.msgIds[i] = msgId;
      columns.offsets[i] = entry.offset;
      columns.delivered[i] = entry.delivered ? 1 : 0;
      i += 1;
    }
    return columns;
  }

  clear(): void {
    this.live.clear();
  }

  /**
   * Applies one record. Kinds that carry no message state (epochStart, open, close, paged
   * enqueues) are ignored. Throws RecordPayloadError for a payload too short for its kind.
   */
  apply(offset: number, kind: number, payload: Buffer): void {
    switch (kind) {
      case LogKind.enqueue:
        if (payload.length < ENQUEUE_HEADER_BYTES) throw new RecordPayloadError(`enqueue record at ${offset} has ${payload.length} bytes < ${ENQUEUE_HEADER_BYTES}`);
        this.live.set(payload.readDoubleLE(MSG_ID_OFFSET), { offset, delivered: false });
        return;
      case LogKind.settle:
        this.forEachId(offset, payload, (msgId) => this.live.delete(msgId));
        return;
      case LogKind.delivered:
        this.forEachId(offset, payload, (msgId) => {
          const entry = this.live.get(msgId);
          if (entry !== undefined) entry.delivered = true;
        });
        return;
      case LogKind.queueDelete:
        this.live.clear();
        return;
      default:
        return;
    }
  }

  private forEachId(offset: number, payload: Buffer, each: (msgId: number) => void): void {
    if (payload.length < IDS_OFFSET) throw new RecordPayloadError(`id list record at ${offset} has ${payload.length} bytes < ${IDS_OFFSET}`);
    const count = payload.readUInt32LE(ID_COUNT_OFFSET);
    if (payload.length < IDS_OFFSET + count * ID_BYTES) throw new RecordPayloadError(`id list record at ${offset} claims ${count} ids in ${payload.length} bytes`);
    for (let i = 0; i < count; i++) each(payload.readDoubleLE(IDS_OFFSET + i * ID_BYTES));
  }
}

/** The queue id every shard record payload starts with. */
export function payloadQueueId(payload: Buffer): number | undefined {
  return payload.length >= 4 ? payload.readUInt32LE(QUEUE_ID_OFFSET) : undefined;
}

export function encodeEpochStart(epoch: number): Buffer {
  const payload = Buffer.allocUnsafe(EPOCH_START_PAYLOAD_BYTES);
  payload.writeDoubleLE(epoch, 0);
  return payload;
}

/** The epoch of an epochStart payload, or undefined when it is not one. */
export function decodeEpochStart(payload: Buffer): number | undefined {
  if (payload.length !== EPOCH_START_PAYLOAD_BYTES) return undefined;
  const epoch = payload.readDoubleLE(0);
  return Number.isSafeInteger(epoch) && epoch >= 0 ? epoch : undefined;
}
