/** The replicator's public vocabulary: what the node (or the worker host) tells it, what it reports. */
import type { FsyncPolicy } from '../store/fsync-policy.js';

export type ReplicatedQueueType = 'quorum' | 'mirrored' | 'classic';

export interface ReplicaMember {
  node: string;
  /** host:port of the node's replication listener. */
  repl: string;
}

export interface LeadRequest {
  queueId: number;
  /** vhost/name, for logs and the wire's `queue` field. */
  name: string;
  epoch: number;
  type: ReplicatedQueueType;
  /** Every replica, the leader included. */
  members: ReplicaMember[];
  /** Node names of the in-sync set (the leader included). */
  isr: string[];
  minInsync: number;
}

export interface FollowRequest {
  queueId: number;
  name: string;
  epoch: number;
  leader: ReplicaMember;
}

export interface PlacementUpdate {
  epoch: number;
  members: ReplicaMember[];
  isr: string[];
  minInsync: number;
  leader: ReplicaMember;
}

/** Where the replicator hands a leader's queue state to the shard that serves it. */
export interface ShardSink {
  /** The queue's commit watermark advanced to committedOffset (inclusive). */
  commit(queueId: number, committedOffset: number): void;
  /** A live message of a queue this node begins to lead, in queue order; payload = the enqueue record's. */
  import(queueId: number, offset: number, redelivered: boolean, payload: Buffer): void;
  /** Every import was handed over; the shard's records continue at nextOffset. */
  leadReady(queueId: number, nextOffset: number): void;
  /** Resolves once the shard can take more imports (absent: it always can). */
  importRoom?(queueId: number): Promise<void>;
}

export type ReplicatorLogLevel = 'info' | 'warn' | 'error';
export type ReplicatorLogger = (level: ReplicatorLogLevel, msg: string) => void;

export interface ReplicatorOptions {
  nodeName: string;
  dataDir: string;
  /** The cluster secret both ends of a link prove (cluster/secret-handshake.ts). */
  secret: string;
  fsync: FsyncPolicy;
  segmentBytes: number;
  bindHost: string;
  /** 0 picks a free port. */
  replPort: number;
  log: ReplicatorLogger;
  sink: ShardSink;
  /** A follower whose acked offset trails the leader's log for longer than this leaves the ISR. */
  isrLagMs?: number;
  /** A follower out of the ISR rejoins once it trails the leader's log by at most this many records. */
  isrCatchUpRecords?: number;
  /** Largest frame accepted from a peer. */
  frameBytesMax?: number;
  /** Target bytes of records per Batch frame. */
  batchBytesMax?: number;
  /** Leader records kept in memory per queue for streaming. */
  tailCacheBytesMax?: number;
}

export type ReplicaRole = 'leader' | 'follower' | 'fenced' | 'idle';

export interface FollowerStatus {
  node: string;
  ackedOffset: number;
  inSync: boolean;
  lagMs: number;
  connected: boolean;
}

export interface ReplicaStatus {
  queueId: number;
  name: string;
  role: ReplicaRole;
  epoch: number;
  logStart: number;
  logEnd: number;
  /** The leader's commit watermark (a follower: the last one a batch carried); -1 = none. */
  commitOffset: number;
  flushedOffset: number;
  liveMessages: number;
  followers: FollowerStatus[];
  /** Follower: the leader it follows and whether the stream is up. */
  leader?: string;
  streaming?: boolean;
}
