/**
 * The records that cross the rings between a shard worker and the replicator worker
 * (cluster mode, ARCHITECTURE.md §1 and §3). One ring pair per shard. Layouts:
 *
 *   shard → replicator
 *     append     [u32 queueId][u8 logKind][payload]   a log record of a replicated queue this node
 *                                                      leads; it gets the queue log's next offset,
 *                                                      in ring order (the shard counts them too)
 *   replicator → shard
 *     commit     [u32 queueId][f64 offset]            the queue's commit watermark reached offset
 *     import     [u32 queueId][f64 offset][u8 redelivered][enqueue payload]
 *                                                      a live message of a queue this node begins to
 *                                                      lead, in queue order, before any commit
 *     leadReady  [u32 queueId][f64 nextOffset]        every import of the queue has been sent
 *
 * logKind and the payloads are the shard log's (shard/log-records.ts), so the replicator writes
 * them into the queue's replica log as they are.
 */
export const ToReplicator = {
  append: 1,
} as const;

export const FromReplicator = {
  commit: 16,
  import: 17,
  leadReady: 18,
} as const;
