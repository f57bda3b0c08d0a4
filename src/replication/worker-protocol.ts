/**
 * Control messages between the node's main thread and the replicator worker (postMessage,
 * never data: records travel through the rings). Requests carry an id; the worker answers each
 * with one reply, and sends events on its own.
 */
import type { LatencyExport } from '../metrics/latency.js';
import type { FsyncPolicy } from '../store/fsync-policy.js';
import type { FollowRequest, LeadRequest, PlacementUpdate, ReplicaStatus, ReplicatorLogLevel } from './types.js';

export interface ReplicatorWorkerOptions {
  nodeName: string;
  dataDir: string;
  secret: string;
  fsync: FsyncPolicy;
  segmentBytes: number;
  bindHost: string;
  replPort: number;
  isrLagMs?: number;
  isrCatchUpRecords?: number;
  frameBytesMax?: number;
  batchBytesMax?: number;
  tailCacheBytesMax?: number;
}

export interface ShardRings {
  /** shard → replicator: append records. */
  toReplicator: SharedArrayBuffer;
  /** replicator → shard: commit, import, leadReady. */
  fromReplicator: SharedArrayBuffer;
}

export interface ReplicatorWorkerData {
  options: ReplicatorWorkerOptions;
  /** One ring pair per shard, by shard index. */
  shards: ShardRings[];
}

export type ReplicatorRequest =
  | { id: number; op: 'lead'; req: LeadRequest; shard: number }
  | { id: number; op: 'follow'; req: FollowRequest }
  | { id: number; op: 'update'; queueId: number; placement: PlacementUpdate }
  | { id: number; op: 'stop'; queueId: number }
  | { id: number; op: 'delete'; queueId: number }
  | { id: number; op: 'status' }
  | { id: number; op: 'latency' }
  | { id: number; op: 'replicaState'; queueId: number }
  | { id: number; op: 'answerPoll'; queueId: number; epoch: number; fenceMs: number }
  | { id: number; op: 'close' };

export type ReplicatorReplyValue = { nextOffset: number } | ReplicaStatus[] | { epoch: number; logEnd: number } | LatencyExport[] | undefined;

export type ReplicatorMessage =
  | { type: 'ready'; port: number }
  | { type: 'failed'; message: string }
  | { type: 'reply'; id: number; ok: true; value: ReplicatorReplyValue }
  | { type: 'reply'; id: number; ok: false; error: string }
  | { type: 'isrChange'; queueId: number; isr: string[] }
  | { type: 'peerDown'; node: string }
  | { type: 'log'; level: ReplicatorLogLevel; message: string };
