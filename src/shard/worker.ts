/**
 * Entry point of a shard worker thread. It recovers its log, then the front hands it two
 * rings (front→shard and shard→front); everything it learns and says after that goes
 * through them. postMessage is used only for lifecycle (ready, stopped, log lines), never
 * for messages.
 */
import { parentPort, workerData } from 'node:worker_threads';
import assert from 'node:assert/strict';
import { RingReader, warnLostWakeups } from '../ring/ring-reader.js';
import { RingWriter } from '../ring/ring-writer.js';
import { ToShard } from '../ring/shard-records.js';
import type { FsyncPolicy } from '../store/fsync-policy.js';
import { Shard } from './shard.js';
import { ShardStore } from './shard-store.js';
import { setCreditTable } from './consumer.js';

export interface ShardWorkerData {
  index: number;
  toShard: SharedArrayBuffer;
  fromShard: SharedArrayBuffer;
  /** The shard's own log directory; undefined runs the shard without persistence. */
  logDir: string | undefined;
  fsync: FsyncPolicy;
  segmentBytes: number;
  repair: boolean;
  /** Payload bytes of ready messages this shard keeps in memory before it pages new ones to its log. */
  queueMemoryBytes: number;
  /** One Int32 the shard sets while a consumed queue's backlog is past the flow watermark. */
  flow: SharedArrayBuffer;
  /** The node-wide table of global (per-channel) prefetch credit, see shard/consumer.ts. */
  credit: SharedArrayBuffer;
  /** Cluster mode: the rings to and from the replicator worker (ring/replication-records.ts). */
  toReplicator?: SharedArrayBuffer;
  fromReplicator?: SharedArrayBuffer;
}

/** Lifecycle messages to the main thread. */
export type ShardLifecycle =
  | { type: 'ready'; recoveredRecords: number; truncatedBytes: number; recoveredQueues: number }
  | { type: 'failed'; message: string }
  | { type: 'log'; level: 'info' | 'warn' | 'error'; message: string }
  | { type: 'stopped' };

const data = workerData as ShardWorkerData;
assert.ok(parentPort !== null, 'shard worker must run in a worker thread');
const port = parentPort;
const say = (m: ShardLifecycle): void => port.postMessage(m);
const log = (level: 'info' | 'warn' | 'error', message: string): void => say({ type: 'log', level, message: `shard ${data.index}: ${message}` });

async function main(): Promise<void> {
  let store: ShardStore | undefined;
  let recoveredRecords = 0;
  let truncatedBytes = 0;
  if (data.logDir !== undefined) {
    const opened = await ShardStore.open({ dir: data.logDir, fsync: data.fsync, segmentBytes: data.segmentBytes, repair: data.repair, log });
    store = opened.store;
    recoveredRecords = opened.records;
    truncatedBytes = opened.truncatedBytes;
  }
  const ringOptions = warnLostWakeups((message) => log('warn', message));
  const reader = new RingReader(data.toShard, `front→shard${data.index}`, ringOptions);
  const writer = new RingWriter(data.fromShard, `shard${data.index}→front`, ringOptions);
  setCreditTable(new Int32Array(data.credit));
  const toReplicator = data.toReplicator === undefined ? undefined : new RingWriter(data.toReplicator, `shard${data.index}→replicator`, ringOptions);
  const shard = new Shard(data.index, writer, store, log, new Int32Array(data.flow), data.queueMemoryBytes, toReplicator);
  let replReader: RingReader | undefined;
  let stopping = false;
  if (data.fromReplicator !== undefined) {
    replReader = new RingReader(data.fromReplicator, `replicator→shard${data.index}`, ringOptions);
    const reader = replReader;
    const onRecord = (kind: number, body: Buffer): void => shard.onReplicatorRecord(kind, body);
    // Imports come as fast as the replicator reads them; those past the memory budget go to the
    // shard log, whose unwritten appends are memory too: stop reading until it caught up.
    const onBatchEnd = (): void => {
      shard.onBatchEnd();
      if (!shard.logBacklogged) return;
      reader.stop();
      void shard.whenLogCaughtUp().then(() => {
        if (!stopping) reader.start(onRecord, onBatchEnd);
      });
    };
    reader.start(onRecord, onBatchEnd);
  }
  reader.start(
    (kind, body) => {
      if (kind === ToShard.shutdown) {
        stopping = true;
        reader.stop();
        replReader?.stop();
        shard.onBatchEnd();
        void (async () => {
          await store?.close();
          writer.flush();
          writer.close();
          toReplicator?.flush();
          toReplicator?.close();
          say({ type: 'stopped' });
        })();
        return;
      }
      shard.onRecord(kind, body);
    },
    () => shard.onBatchEnd(),
  );
  say({ type: 'ready', recoveredRecords, truncatedBytes, recoveredQueues: store?.recovered.size ?? 0 });
}

main().catch((err: unknown) => {
  say({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
});
