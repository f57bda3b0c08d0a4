/**
 * The records a node's front sends over a peer link (src/cluster/peer-link.ts frames them)
 * to forward operations on a queue that another node leads. The forwarding node ("B", where
 * the client is) sends ToShard kinds; the leader ("A", where the queue's shard is) answers
 * with FromShard kinds. Bodies are little-endian (RecordWriter) and, where a shard record
 * exists, laid out as that record, so B hands deliveries and confirms to its broker as if a
 * local shard had sent them. Ids in B→A records are B's (channel keys, consumer ids, request
 * ids); A maps them to its own proxies. Queue ids are cluster-wide; message ids are those of
 * A's shard.
 *
 *   B → A (ToShard kinds)
 *   publish          u32 channelKey | f64 seq | u8 flags | u16 n | u32 queueId ×n | payload…
 *                    (a shard publish without its sentAtMs: clocks of two nodes do not compare)
 *   consume          u32 consumerId | u32 queueId | u32 channelKey | u32 prefetch | u8 noAck
 *                    | u8 exclusive | f64 priority | u32 tagBytes | tag (AMQP shortstr)
 *   cancel           u32 consumerId
 *   ack              u32 queueId | u32 n | f64 msgId ×n
 *   nack             u8 requeue | u32 queueId | u32 n | f64 msgId ×n
 *   get              u32 reqId | u32 queueId | u32 channelKey | u8 noAck
 *   channelFlow      u32 channelKey | u8 active
 *   queueDelete      u32 reqId | u32 queueId          (also queuePurge, queueStat)
 *   channelClosed    u32 channelKey                   (peer-only: drop the proxy channel)
 *   directReply      payload…                         (peer-only: a reply for a direct reply-to
 *                                                     name of A's; the routing key names the channel)
 *
 *   A → B (FromShard kinds)
 *   deliver          u32 consumerId | u32 queueId | f64 msgId | u8 redelivered | u32 0 | payload…
 *   getOk            u32 reqId | u32 queueId | f64 msgId | u8 redelivered | u32 messageCount | payload…
 *   getEmpty         u32 reqId
 *   reply            u32 reqId | f64 a | f64 b         (delete/purge: a = count; stat: ready, consumers)
 *   confirms         u32 n | (u32 channelKey | f64 seq | u8 ok) ×n
 *   consumerCancelled u32 consumerId                  (the leader cancelled it: queue deleted, refused…)
 *   failed           u32 reqId | u16 replyCode | str replyText   (peer-only: a request could not be done)
 */
export { FromShard, ToShard } from '../ring/shard-records.js';

/** Record kinds that exist only on the peer link (above the ring's kinds). */
export const PeerRecord = {
  channelClosed: 64,
  failed: 65,
  directReply: 66,
} as const;

