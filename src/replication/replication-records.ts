/**
 * The ring records between a shard worker and the replicator worker. The kinds and layouts are
 * defined once, in ring/replication-records.ts (the shard side imports them from there); this
 * module re-exports them for the replicator and adds the replicator's encoders and decoder:
 *
 *   shard → replicator   append     [u32 queueId][u8 logKind][payload]
 *   replicator → shard   commit     [u32 queueId][f64 offset]
 *                        import     [u32 queueId][f64 offset][u8 redelivered][enqueue payload]
 *                        leadReady  [u32 queueId][f64 nextOffset]
 */
import { WireError } from './wire.js';
import { FromReplicator, ToReplicator } from '../ring/replication-records.js';
import type { RingWriter } from '../ring/ring-writer.js';
import type { ShardSink } from './types.js';

export { FromReplicator, ToReplicator };

export const APPEND_QUEUE_ID_OFFSET = 0;
export const APPEND_KIND_OFFSET = 4;
export const APPEND_PAYLOAD_OFFSET = 5;
export const COMMIT_BODY_BYTES = 12;
export const IMPORT_HEADER_BYTES = 13;
/**
 * A new leader reads its imports from the page cache, far faster than the shard takes them (it
 * writes those past its memory budget to its own log): past this many bytes queued outside a
 * shard's ring, the import waits for the ring to drain instead of queueing the whole backlog.
 */
const importBacklogBytesMax = 4 * 1024 * 1024;

export interface AppendRecord {
  queueId: number;
  kind: number;
  /** A view into the ring: valid only while the ring handler runs (the replica log copies it). */
  payload: Buffer;
}

/** Decodes an append body; a short one is a broken shard, reported rather than asserted. */
export function decodeAppend(body: Buffer): AppendRecord {
  if (body.length < APPEND_PAYLOAD_OFFSET) throw new WireError(`append record of ${body.length} bytes < ${APPEND_PAYLOAD_OFFSET}`);
  return { queueId: body.readUInt32LE(APPEND_QUEUE_ID_OFFSET), kind: body[APPEND_KIND_OFFSET] ?? 0, payload: body.subarray(APPEND_PAYLOAD_OFFSET) };
}

/**
 * A ShardSink that writes to the shards' rings: each queue's records go to the ring of the shard
 * that leads it (set by lead). Writes are published once per event-loop turn (one notify per
 * burst, PLATFORM.md: batching is what makes the ring fast).
 */
export class RingShardSink implements ShardSink {
  private readonly shardOf = new Map<number, number>();
  private readonly dirty = new Set<RingWriter>();
  private flushScheduled = false;
  private readonly head = Buffer.allocUnsafe(IMPORT_HEADER_BYTES);
  /** Imports waiting for a writer's pending queue to drain (importRoom). */
  private readonly roomWaiters = new Map<RingWriter, (() => void)[]>();
  private closed = false;

  constructor(private readonly writers: readonly RingWriter[]) {}

  /** Records of queueId go to shard `shard` from now on. */
  route(queueId: number, shard: number): void {
    if (shard < 0 || shard >= this.writers.length || !Number.isInteger(shard)) throw new RangeError(`shard ${shard} outside 0..${this.writers.length - 1}`);
    this.shardOf.set(queueId, shard);
  }

  forget(queueId: number): void {
    this.shardOf.delete(queueId);
  }

  commit(queueId: number, committedOffset: number): void {
    const writer = this.writerFor(queueId);
    if (writer === undefined) return;
    const body = Buffer.allocUnsafe(COMMIT_BODY_BYTES);
    body.writeUInt32LE(queueId, 0);
    body.writeDoubleLE(committedOffset, 4);
    writer.write(FromReplicator.commit, body);
    this.scheduleFlush(writer);
  }

  import(queueId: number, offset: number, redelivered: boolean, payload: Buffer): void {
    const writer = this.writerFor(queueId);
    if (writer === undefined) return;
    const head = this.head;
    head.writeUInt32LE(queueId, 0);
    head.writeDoubleLE(offset, 4);
    head[12] = redelivered ? 1 : 0;
    writer.write2(FromReplicator.import, head, payload);
    this.scheduleFlush(writer);
  }

  importRoom(queueId: number): Promise<void> {
    const writer = this.writerFor(queueId);
    if (this.closed || writer === undefined || writer.pendingBytes <= importBacklogBytesMax) return Promise.resolve();
    return new Promise((resolve) => {
      let waiters = this.roomWaiters.get(writer);
      if (waiters === undefined) {
        const list: (() => void)[] = [];
        this.roomWaiters.set(writer, (waiters = list));
        writer.onDrain = () => {
          writer.onDrain = undefined;
          this.roomWaiters.delete(writer);
          for (const wake of list) wake();
        };
      }
      waiters.push(resolve);
    });
  }

  /** The node stops: imports waiting for room go on (the replicator is closing their leads). */
  close(): void {
    this.closed = true;
    for (const [writer, waiters] of this.roomWaiters) {
      writer.onDrain = undefined;
      for (const wake of waiters) wake();
    }
    this.roomWaiters.clear();
  }

  leadReady(queueId: number, nextOffset: number): void {
    const writer = this.writerFor(queueId);
    if (writer === undefined) return;
    const body = Buffer.allocUnsafe(COMMIT_BODY_BYTES);
    body.writeUInt32LE(queueId, 0);
    body.writeDoubleLE(nextOffset, 4);
    writer.write(FromReplicator.leadReady, body);
    this.scheduleFlush(writer);
  }

  private writerFor(queueId: number): RingWriter | undefined {
    const shard = this.shardOf.get(queueId);
    return shard === undefined ? undefined : this.writers[shard];
  }

  private scheduleFlush(writer: RingWriter): void {
    this.dirty.add(writer);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      for (const w of this.dirty) w.flush();
      this.dirty.clear();
    });
  }
}
