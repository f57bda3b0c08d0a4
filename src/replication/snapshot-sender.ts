/**
 * Leader side of catch-up by snapshot: a follower's log end is below the leader's log start
 * (the records it needs were released), so it gets the queue's live messages as of
 * S = the leader's log end now, then the log from S. Publishing and consuming go on meanwhile.
 *
 * The snapshot is built by a Piscina job (snapshot-job.ts), not on the replicator's thread: the
 * replicator pins the log from its start (no segment, nor the replica's own snapshot file, is
 * deleted under the job), takes S and the live set at S as three typed arrays in one step,
 * commits so that every record below S is in the files, and hands the arrays over (transferred,
 * not copied). The job reads each enqueue payload from the replica's files
 * with its own read-only handles and the store's segment reader — records below S were written
 * before it started and never change — and writes the framed records to
 * `snapshot-out-<S>-<n>.wsnap` in the replica's directory, cut into chunks with their CRC32C.
 * Once the job is done the pin goes; this side streams the file chunk by chunk, each awaited
 * against the link's congestion, so a large snapshot never holds more than one chunk plus the
 * socket buffer in memory, and deletes the file (also when anything failed).
 *
 * One pool per replicator, created at the first snapshot: one thread (a snapshot is disk-bound,
 * and a second one waits its turn rather than take a core from the shards), which exits after
 * idleTimeoutMs without work. close() aborts running jobs and destroys the pool.
 */
import { performance } from 'node:perf_hooks';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Piscina } from 'piscina';
import { nodeStoreFileSystem, readFully } from '../store/store-file-system.js';
import { FrameType } from './wire.js';
import { describe } from './leader-queue.js';
import type { FollowerStream, LeaderQueue } from './leader-queue.js';
import { SNAPSHOT_FILE_PREFIX, SNAPSHOT_FILE_SUFFIX } from './snapshot-file.js';
import type { SnapshotJobResult, SnapshotJobTask } from './snapshot-job.js';
import type { ReplicatorLogger } from './types.js';

/** A thread without snapshot work exits after this long: catch-up by snapshot is rare. */
const idleTimeoutMs = 10_000;

/** The name a snapshot being sent has in the replica's directory; ReplicaLog removes leftovers at open (its snapshot-*.wsnap rule). */
export function outgoingSnapshotFileName(offset: number, sequence: number): string {
  return `${SNAPSHOT_FILE_PREFIX}out-${String(offset).padStart(20, '0')}-${sequence}${SNAPSHOT_FILE_SUFFIX}`;
}

interface RunningSnapshot {
  queueId: number;
  abort: AbortController;
  done: Promise<void>;
}

export class SnapshotSender {
  /** Snapshots the job built, and jobs that failed (not counting aborts). */
  jobsBuilt = 0;
  jobsFailed = 0;
  private pool: Piscina<SnapshotJobTask, SnapshotJobResult> | undefined;
  private readonly running = new Set<RunningSnapshot>();
  private nextSequence = 1;
  private closed = false;

  constructor(
    private readonly chunkBytesMax: number,
    private readonly log: ReplicatorLogger,
  ) {}

  /** Snapshots being built or sent now. */
  get runningCount(): number {
    return this.running.size;
  }

  /** Builds and sends a snapshot to the stream's follower; then the leader pumps the log from S. */
  start(leader: LeaderQueue, stream: FollowerStream): void {
    if (this.closed) {
      stream.snapshotting = false;
      return;
    }
    const run: RunningSnapshot = { queueId: leader.queueId, abort: new AbortController(), done: Promise.resolve() };
    this.running.add(run);
    run.done = this.send(leader, stream, run.abort.signal).finally(() => this.running.delete(run));
  }

  /** Aborts the queue's snapshots; resolves once their jobs stopped and their files are gone (before the replica is closed or removed). */
  async stopQueue(queueId: number): Promise<void> {
    const runs = [...this.running].filter((run) => run.queueId === queueId);
    for (const run of runs) run.abort.abort();
    await Promise.all(runs.map((run) => run.done));
  }

  /** Aborts every snapshot and stops the pool's thread. */
  async close(): Promise<void> {
    this.closed = true;
    const runs = [...this.running];
    for (const run of runs) run.abort.abort();
    await Promise.all(runs.map((run) => run.done));
    const pool = this.pool;
    this.pool = undefined;
    await pool?.destroy();
  }

  private poolNow(): Piscina<SnapshotJobTask, SnapshotJobResult> {
    if (this.pool !== undefined) return this.pool;
    const pool = new Piscina<SnapshotJobTask, SnapshotJobResult>({
      // dist/src/replication/snapshot-job.js beside this module once compiled.
      filename: new URL('./snapshot-job.js', import.meta.url).href,
      minThreads: 0,
      maxThreads: 1,
      idleTimeout: idleTimeoutMs,
    });
    // An error outside a task (a task's own errors reject its promise).
    pool.on('error', (error: unknown) => this.log('error', `snapshot job thread: ${describe(error)}`));
    this.pool = pool;
    return pool;
  }

  private async send(leader: LeaderQueue, stream: FollowerStream, signal: AbortSignal): Promise<void> {
    const replica = leader.replica;
    let pin: number | undefined = replica.pin(replica.logStart);
    let outPath: string | undefined;
    let jobRunning = false;
    let sent = false;
    try {
      // S and the live set at S, taken together; then every record below S is written (records
      // the shard appends meanwhile may be pending, and the job reads the files only).
      const offset = replica.nextOffset;
      const live = replica.liveColumns();
      const epochs = replica.epochs.entries.filter((e) => e.startOffset < offset).map((e) => ({ epoch: e.epoch, startOffset: e.startOffset }));
      await replica.commit();
      if (signal.aborted) return;
      outPath = join(replica.dir, outgoingSnapshotFileName(offset, this.nextSequence++));
      const task: SnapshotJobTask = {
        dir: replica.dir,
        segmentFiles: replica.segmentFiles,
        ownSnapshotFile: replica.snapshotFile ?? null,
        offset,
        ...live,
        outPath,
        chunkBytesMax: this.chunkBytesMax,
      };
      const startedMs = performance.now();
      jobRunning = true;
      const built = await this.poolNow().run(task, { transferList: [live.msgIds.buffer, live.offsets.buffer, live.delivered.buffer], signal });
      const buildMs = Math.round(performance.now() - startedMs);
      jobRunning = false;
      this.jobsBuilt += 1;
      replica.unpin(pin);
      pin = undefined;
      if (!(await this.streamFile(leader, stream, outPath, built, offset, epochs, signal))) return;
      this.log(
        'info',
        `queue ${leader.name}: sent ${stream.node} a snapshot of ${built.messages} live message(s) as of offset ${offset} (${built.bytes} bytes, ${built.chunkEnds.length} chunk(s)); built by a snapshot job in ${buildMs} ms`,
      );
      stream.nextSend = offset;
      sent = true;
    } catch (error: unknown) {
      if (signal.aborted) return;
      if (jobRunning) this.jobsFailed += 1;
      if (!stream.active) {
        this.log('warn', `queue ${leader.name}: snapshot for ${stream.node} failed after its stream ended: ${describe(error)}`);
        return;
      }
      this.log('error', `queue ${leader.name}: snapshot for ${stream.node} failed: ${describe(error)}; closing its link`);
      stream.link.close(error instanceof Error ? error : undefined);
    } finally {
      if (pin !== undefined) replica.unpin(pin);
      if (outPath !== undefined) await unlink(outPath).catch(() => undefined);
      stream.snapshotting = false;
    }
    // After a failure the link is closing: the follower fetches again on a new one.
    if (sent) leader.pump(stream);
  }

  /** Sends the built file chunk by chunk; false when the stream ended first. */
  private async streamFile(
    leader: LeaderQueue,
    stream: FollowerStream,
    path: string,
    built: SnapshotJobResult,
    offset: number,
    epochs: Array<{ epoch: number; startOffset: number }>,
    signal: AbortSignal,
  ): Promise<boolean> {
    const file = await nodeStoreFileSystem.open(path, 'r');
    try {
      let start = 0;
      const chunks = built.chunkEnds.length;
      for (let chunkIndex = 0; chunkIndex < chunks; chunkIndex++) {
        while (stream.active && !signal.aborted && stream.link.congested) await drainedOrAborted(stream, signal);
        if (!stream.active || signal.aborted) return false;
        const end = built.chunkEnds[chunkIndex] ?? start;
        const records = Buffer.allocUnsafe(end - start);
        const got = await readFully(file, records, records.length, start);
        if (got !== records.length) throw new Error(`${path}: chunk ${chunkIndex} ends after ${got} of ${records.length} bytes`);
        if (!stream.active || signal.aborted) return false;
        const last = chunkIndex === chunks - 1;
        stream.link.send({
          type: FrameType.snapshot,
          msg: {
            queueId: leader.queueId,
            queue: leader.name,
            epoch: leader.epoch,
            offset,
            records,
            checksum: built.chunkChecksums[chunkIndex] ?? 0,
            last,
            epochs: last ? epochs : [],
            chunkIndex,
          },
        });
        start = end;
      }
      return true;
    } finally {
      await file.close();
    }
  }
}

/** Resolves when the stream's link drains or closes, or the snapshot is aborted. */
function drainedOrAborted(stream: FollowerStream, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      signal.removeEventListener('abort', done);
      resolve();
    };
    signal.addEventListener('abort', done, { once: true });
    stream.link.onDrainOnce(done);
  });
}
