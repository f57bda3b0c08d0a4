/**
 * The main thread's handle on the replicator worker: starts it with the shards' ring pairs,
 * turns control calls into request/reply messages, and surfaces the worker's events.
 * A queue's records go to and come from the ring pair of shard `queueId % shards` unless
 * lead() names another shard.
 */
import type { LatencyExport } from '../metrics/latency.js';
import { Worker } from 'node:worker_threads';
import { parseFsyncPolicy } from '../store/fsync-policy.js';
import type { FsyncPolicy } from '../store/fsync-policy.js';
import type { FollowRequest, LeadRequest, PlacementUpdate, ReplicaStatus, ReplicatorLogLevel } from './types.js';
import type { ReplicatorMessage, ReplicatorReplyValue, ReplicatorRequest, ReplicatorWorkerData, ReplicatorWorkerOptions, ShardRings } from './worker-protocol.js';

type RequestBody = ReplicatorRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

export class ReplicatorWorker {
  onIsrChange: ((queueId: number, isr: string[]) => void) | undefined;
  onPeerDown: ((node: string) => void) | undefined;
  onLog: (level: ReplicatorLogLevel, message: string) => void = () => undefined;

  private readonly pending = new Map<number, { resolve: (v: ReplicatorReplyValue) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private exited = false;

  private constructor(
    private readonly worker: Worker,
    /** The replication listener's bound port. */
    readonly port: number,
    private readonly shardCount: number,
  ) {}

  /** Starts the worker; resolves once its listener is bound (and its replica logs recovered). */
  static start(options: ReplicatorWorkerOptions, shards: ShardRings[], onLog?: (level: ReplicatorLogLevel, message: string) => void): Promise<ReplicatorWorker> {
    const workerData: ReplicatorWorkerData = { options, shards };
    const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData });
    return new Promise<ReplicatorWorker>((resolve, reject) => {
      const early = (m: ReplicatorMessage): void => {
        if (m.type === 'log') onLog?.(m.level, m.message);
        else if (m.type === 'failed') {
          worker.off('message', early);
          void worker.terminate();
          reject(new Error(`replicator worker failed to start: ${m.message}`));
        } else if (m.type === 'ready') {
          worker.off('message', early);
          const host = new ReplicatorWorker(worker, m.port, shards.length);
          if (onLog !== undefined) host.onLog = onLog;
          worker.on('message', (msg: ReplicatorMessage) => host.onMessage(msg));
          resolve(host);
        }
      };
      worker.on('message', early);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`replicator worker exited with code ${code} before it was ready`)));
    }).then((h) => {
      worker.removeAllListeners('error');
      worker.removeAllListeners('exit');
      worker.on('error', (error: Error) => h.onLog('error', `replicator worker: ${error.message}`));
      worker.on('exit', () => h.onExit());
      return h;
    });
  }

  async lead(req: LeadRequest, shard = req.queueId % this.shardCount): Promise<{ nextOffset: number }> {
    return (await this.request({ op: 'lead', req, shard })) as { nextOffset: number };
  }

  async follow(req: FollowRequest): Promise<void> {
    await this.request({ op: 'follow', req });
  }

  async updatePlacement(queueId: number, placement: PlacementUpdate): Promise<void> {
    await this.request({ op: 'update', queueId, placement });
  }

  async stop(queueId: number): Promise<void> {
    await this.request({ op: 'stop', queueId });
  }

  async deleteQueue(queueId: number): Promise<void> {
    await this.request({ op: 'delete', queueId });
  }

  async status(): Promise<ReplicaStatus[]> {
    return (await this.request({ op: 'status' })) as ReplicaStatus[];
  }

  /** The replicator's histograms: fsync of the replica logs, replication_rtt. */
  async latency(): Promise<LatencyExport[]> {
    return (await this.request({ op: 'latency' })) as LatencyExport[];
  }

  async replicaState(queueId: number): Promise<{ epoch: number; logEnd: number } | undefined> {
    return (await this.request({ op: 'replicaState', queueId })) as { epoch: number; logEnd: number } | undefined;
  }

  /** Fences the replica against a replica poll's epoch, then reports its log end (Replicator.answerPoll). */
  async answerPoll(queueId: number, epoch: number, fenceMs: number): Promise<{ epoch: number; logEnd: number } | undefined> {
    return (await this.request({ op: 'answerPoll', queueId, epoch, fenceMs })) as { epoch: number; logEnd: number } | undefined;
  }

  /** Closes the replicator (its logs synced) and waits for the thread to end. */
  async close(): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.postMessage({ id: this.nextId++, op: 'close' } satisfies ReplicatorRequest);
    await exited;
  }

  private request(body: RequestBody): Promise<ReplicatorReplyValue> {
    if (this.exited) return Promise.reject(new Error('the replicator worker has exited'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...body, id } as ReplicatorRequest);
    });
  }

  private onMessage(m: ReplicatorMessage): void {
    switch (m.type) {
      case 'reply': {
        const waiter = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (m.ok) waiter?.resolve(m.value);
        else waiter?.reject(new Error(m.error));
        return;
      }
      case 'isrChange':
        this.onIsrChange?.(m.queueId, m.isr);
        return;
      case 'peerDown':
        this.onPeerDown?.(m.node);
        return;
      case 'log':
        this.onLog(m.level, m.message);
        return;
      default:
        return;
    }
  }

  private onExit(): void {
    this.exited = true;
    for (const waiter of this.pending.values()) waiter.reject(new Error('the replicator worker exited'));
    this.pending.clear();
  }
}

export type ShardReplicatorRings = ShardRings;

/** The node's logger shape (node/logger.ts), without importing the node layer. */
export interface ReplicatorHostLogger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

/**
 * Starts the replicator worker for a node: its options (fsync as a policy or as the --fsync
 * text), one ring pair per shard, and the node's logger.
 */
export function startReplicatorWorker(
  o: Omit<ReplicatorWorkerOptions, 'fsync'> & { fsync: FsyncPolicy | string; rings: ShardRings[]; log: ReplicatorHostLogger },
): Promise<ReplicatorWorker> {
  const { rings, log, fsync, ...rest } = o;
  const options: ReplicatorWorkerOptions = { ...rest, fsync: typeof fsync === 'string' ? parseFsyncPolicy(fsync) : fsync };
  return ReplicatorWorker.start(options, rings, (level, message) => log[level](`replicator: ${message}`));
}
