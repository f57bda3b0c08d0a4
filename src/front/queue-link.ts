/**
 * What the front's channel and broker code asks of the place a queue lives: a local shard
 * (ShardLink, over the rings) or another node that leads it (RemoteLink, over a peer link).
 * Both keep the same meaning for every method, so channel code does not know which it has.
 */
import type { QueueConfig } from '../shard/queue-config.js';
import type { GetOkReply } from './shard-link.js';

export interface QueueLink {
  /** The shard's index on this node; -1 for a queue led by another node. */
  readonly index: number;
  /** The leader node of a remote queue; undefined for a local shard. */
  readonly remoteNode: string | undefined;
  /** For log lines: "shard 2" or "node warren@b". */
  readonly label: string;
  /** Queues placed here (local placement picks the least loaded shard). */
  queueCount: number;
  /** The queue side asks publishers to slow down. */
  readonly congested: boolean;
  /** Bytes written but not yet taken by the other side: backpressure. */
  readonly pendingBytes: number;
  /** Called when pendingBytes drops back to 0. */
  onDrain: () => void;
  flush(): void;

  updateQueue(config: QueueConfig): void;
  /** Resolves with the ready message count the queue had. */
  deleteQueue(queueId: number): Promise<number>;
  purgeQueue(queueId: number): Promise<number>;
  /** [ready messages, consumers]; also counts as queue use for x-expires. */
  statQueue(queueId: number): Promise<[number, number]>;
  publish(channelKey: number, seq: number, flags: number, queueIds: readonly number[], payload: Uint8Array): void;
  consume(consumerId: number, queueId: number, channelKey: number, prefetch: number, noAck: boolean, priority: number, tag: Uint8Array, exclusive?: boolean): void;
  cancel(consumerId: number): void;
  ack(queueId: number, msgIds: readonly number[]): void;
  nack(queueId: number, msgIds: readonly number[], requeue: boolean): void;
  get(queueId: number, channelKey: number, noAck: boolean): Promise<GetOkReply | undefined>;
  channelFlow(channelKey: number, active: boolean): void;
  /** creditSlot: the channel's slot in the node's shared credit table + 1, or 0 for none. */
  channelQos(channelKey: number, globalPrefetch: number, creditSlot?: number): void;
  channelKick(channelKey: number): void;
  /** Records that answer a request of this link; returns true if handled. */
  onReply(kind: number, body: Buffer): boolean;
}
