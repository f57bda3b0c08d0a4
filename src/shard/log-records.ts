/**
 * The shard's log record payloads (format 1). The segment log frames, checksums and
 * versions each record; these are the bodies, independent of in-memory structures so the
 * replicator can ship them to followers byte for byte.
 *
 *   enqueue   [u32 queueId][f64 msgId][f64 expiresAtMs (0 = never)][message payload…]
 *   settle    [u32 queueId][u32 n][f64 msgId × n]     acked, rejected, expired, dead-lettered, purged
 *   delivered [u32 queueId][u32 n][f64 msgId × n]     handed to a consumer: redelivered=true after a restart
 *   delete    [u32 queueId]                           the queue and everything in it is gone
 *   open      (empty)                                 a run of the node began here
 *   close     (empty)                                 that run stopped cleanly: every delivery it made is logged
 *   pagedEnqueue  as enqueue                          a transient message (or one of a non-durable queue) kept
 *                                                     on disk past the memory budget (pager.ts); recovery ignores it
 *
 * A log that does not end with `close` was left by a crash: deliveries may have reached
 * consumers before their `delivered` records were written, so recovery then treats every
 * recovered message as delivered (redelivered=true), as the spec allows ("may have been").
 */
export const LogKind = { enqueue: 1, settle: 2, delivered: 3, queueDelete: 4, open: 5, close: 6, pagedEnqueue: 7 } as const;

export const enqueueHeaderBytes = 20;

export function encodeEnqueueHeader(out: Buffer, queueId: number, msgId: number, expiresAtMs: number): Buffer {
  out.writeUInt32LE(queueId, 0);
  out.writeDoubleLE(msgId, 4);
  out.writeDoubleLE(expiresAtMs, 12);
  return out;
}

export function encodeIdList(queueId: number, ids: readonly number[]): Buffer {
  const b = Buffer.allocUnsafe(8 + 8 * ids.length);
  b.writeUInt32LE(queueId, 0);
  b.writeUInt32LE(ids.length, 4);
  for (let i = 0; i < ids.length; i++) b.writeDoubleLE(ids[i] as number, 8 + 8 * i);
  return b;
}

export function decodeIdList(payload: Buffer): { queueId: number; ids: number[] } {
  const queueId = payload.readUInt32LE(0);
  const n = payload.readUInt32LE(4);
  const ids: number[] = [];
  for (let i = 0; i < n; i++) ids.push(payload.readDoubleLE(8 + 8 * i));
  return { queueId, ids };
}
