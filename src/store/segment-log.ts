/**
 * A shard's append-only log: numbered segment files of checksummed records, group commit,
 * recovery, random reads, reclamation, and the follower operations (appendAt, truncateTo).
 *
 * Threading: one SegmentLog belongs to one shard worker and is used from its event loop only.
 * Every file-changing operation (commit rounds, timer syncs, truncateTo, releaseBefore, close)
 * runs in one serial lane, so at most one write+sync is in flight; append() only fills memory.
 *
 * Watermarks (inclusive; noOffset = -1 means "none yet"):
 *   nextOffset     the offset the next append gets
 *   writtenOffset  highest offset handed to the OS (write returned)
 *   flushedOffset  highest offset that is durable under the fsync policy: fdatasync'ed for
 *                  'always' and 'batch'; for 'never' it follows writtenOffset (page cache only)
 * Confirms for persistent messages go out up to flushedOffset, best driven by onFlushed.
 * Invariant: every segment but the newest is fdatasync'ed before the next one is created, so
 * recovery only ever finds a torn tail in the last segment.
 */
import assert, { AssertionError } from 'node:assert/strict';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { RecordView, checkRecord, encodeRecord } from './record-codec.js';
import { RECORD_CHECKED_OFFSET, RECORD_HEADER_BYTES, RECORD_KIND_MAX, RECORD_PAYLOAD_BYTES_MAX } from './record-layout.js';
import { recoverSegments } from './recovery.js';
import { createSegmentFile, cutSegmentTail } from './segment-files.js';
import { SegmentHandles } from './segment-handles.js';
import { SegmentReader } from './segment-reader.js';
import { Segment } from './segment.js';
import { SpareSegment } from './spare-segment.js';
import { RecordBatchError, StoreWriteError, errorCode } from './store-errors.js';
import { nodeStoreFileSystem, writeFully } from './store-file-system.js';
import { WriteBufferPool, WriteRun } from './write-run.js';
import type { FsyncPolicy } from './fsync-policy.js';
import type { LogOffset } from './log-offset.js';
import type { LogRecord, RecoveryReport, StoreLogger } from './log-record.js';
import type { StoreFile, StoreFileSystem } from './store-file-system.js';

export interface SegmentLogOptions {
  /** A segment rolls when the next record would take it past this size; a record larger than
   * that gets a segment of its own. */
  segmentBytes: number;
  fsync: FsyncPolicy;
  /** Keep the sound records before damage and move the rest aside (the `--repair` flag). */
  repair?: boolean;
  /** Zero-fill segment files before writing into them (default true), while commits are small
   * (average write < 64 KiB): fdatasync over existing blocks is then ~2x faster. The cost is
   * full-size files and the zero writes, so large-write workloads get growing files instead. */
  preallocate?: boolean;
  log?: StoreLogger;
  /** Every Nth record's position is kept for read() (a power of two, default 32). */
  indexStrideRecords?: number;
  /** File operations; tests inject ENOSPC/EIO here. Default: node:fs/promises. */
  fileSystem?: StoreFileSystem;
  /**
   * fdatasync on the calling thread while the disk answers within inlineFsyncMaxMs (default
   * false: always in the thread pool). For a thread whose work waits on its syncs anyway (a
   * shard, the replicator): the pool round trip is two thread wake-ups per commit, which on a
   * busy 2-core machine cost more than the sync (confirm p99 at 1,000 msg/s 1.24x lower for a
   * single node, 1.8x for a quorum queue, measured against the pool in the same run). A slow
   * sync sends the next ones to the pool, so a stalling disk does not stall the thread's other
   * work, and so does a thread's time in syncs past inlineFsyncMaxMs in one event-loop turn.
   */
  fsyncOnThread?: boolean;
}

export interface SegmentLogStats {
  segments: number;
  /** Header and record bytes written to the segment files. */
  bytes: number;
  appendedRecords: number;
  /** Write rounds (group commits) that reached the files. */
  commits: number;
  fsyncs: number;
  lastFsyncMs: number;
  /** Appended, not yet written. */
  pendingBytes: number;
  /** Written, not yet fdatasync'ed. */
  unsyncedBytes: number;
}

/** Below this, the header and the per-file syscalls dominate. */
const segmentBytesMin = 1024;
/** Record positions are u32 in the sparse index; past 1 GiB reclamation gets coarse anyway. */
const segmentBytesMax = 1024 * 1024 * 1024;
const indexStrideRecordsDefault = 32;
/** Read handles kept open for segments that are no longer written. */
const readHandlesMax = 8;
/** After a failed write (ENOSPC, EIO), retry this often: prompt once space is freed, no spinning. */
const writeRetryMs = 200;
/**
 * Under 'always', a round nobody waits on (commit(false): acks, deliveries, publishes without
 * a confirm) is written at once and fdatasync'ed at the latest this much later, or by the next
 * round that is waited on. A kill -9 loses none of it (it is in the page cache); an OS crash
 * may lose that much of acks (the messages come back, redelivered) but no confirmed publish.
 * Half the fdatasyncs at a fixed rate, and a confirm no longer queues behind an ack's sync.
 */
const deferredSyncMs = 50;
/**
 * fsyncOnThread: a sync that took longer than this sends the next one to the thread pool; and
 * once this thread spent this long in syncs since its event loop last turned, further ones go
 * to the pool too, so a thread with many logs (the replicator: one per queue) syncs them in
 * parallel rather than one after another.
 */
const inlineFsyncMaxMs = 4;
/** Per thread (module state is per worker): time spent in fdatasync on this thread in this loop turn. */
let inlineFsyncSpentMs = 0;
let inlineFsyncResetArmed = false;

function inlineFsyncAllowed(lastFsyncMs: number): boolean {
  return lastFsyncMs <= inlineFsyncMaxMs && inlineFsyncSpentMs <= inlineFsyncMaxMs;
}

function noteInlineFsync(ms: number): void {
  inlineFsyncSpentMs += ms;
  if (inlineFsyncResetArmed) return;
  inlineFsyncResetArmed = true;
  setImmediate(() => {
    inlineFsyncSpentMs = 0;
    inlineFsyncResetArmed = false;
  });
}
/** Preallocate the next segment only while the average write into the current one is smaller. */
const preallocateWriteBytesMax = 64 * 1024;
/** Group-commit target per write+sync (PLATFORM.md: ~256 KiB reaches the disk's ceiling). */
const writeBufferBytes = 256 * 1024;
/** Run buffers kept for reuse: a burst's larger buffers above this go back to the GC. */
const retainedBufferBytesMax = 4 * 1024 * 1024;
const retainedBuffersMax = 4;

/** A broken invariant is a bug, not an I/O error: it must not be rolled back and retried. */
function rethrowBug(error: unknown): unknown {
  if (error instanceof AssertionError) throw error;
  return error;
}

function defaultLogger(level: 'info' | 'warn' | 'error', msg: string): void {
  if (level !== 'info') console.error(`[store] ${level}: ${msg}`);
}

export class SegmentLog {
  /** Called (in a microtask) each time flushedOffset advances, whatever moved it. */
  onFlushed: ((flushedOffset: LogOffset) => void) | undefined;
  /** Called after each fdatasync with its duration and the bytes it covered. */
  onFsync: ((fsyncMs: number, bytes: number) => void) | undefined;
  /** Write failures that no commit() caller sees (batch timer syncs, background retries). */
  onWriteError: ((error: StoreWriteError) => void) | undefined;

  /** Oldest first; the last ones may be planned by append() but not created yet. */
  private readonly segments: Segment[];
  /** The newest created segment: the only one written to. */
  private active: Segment;
  private pending: WriteRun[] = [];
  /** Written runs awaiting fdatasync; kept so a failed sync can be rewritten. All in `active`. */
  private unsynced: WriteRun[] = [];
  private unsyncedBytes = 0;
  private nextOffsetValue: number;
  private writtenOffsetValue: number;
  private flushedOffsetValue: number;
  private ioTail: Promise<unknown> = Promise.resolve();
  private nextRound: Promise<LogOffset> | undefined;
  private roundInFlight: Promise<LogOffset> | undefined;
  /** Under 'always': whether the next round, and the one in flight, fdatasync (commit(sync)). */
  private nextRoundSyncs = false;
  private roundInFlightSyncs = false;
  /** Set when the files can no longer be put back in a known state: restart and recover. */
  private broken: StoreWriteError | undefined;
  private closed = false;
  private failing = false;
  private syncTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Writes into the active segment and their bytes: decide whether to preallocate the next. */
  private segmentWrites = 0;
  private segmentWriteBytes = 0;
  private appendedRecords = 0;
  private commits = 0;
  private fsyncs = 0;
  private lastFsyncMs = 0;
  private readonly pool = new WriteBufferPool(writeBufferBytes, retainedBufferBytesMax, retainedBuffersMax);
  private readonly handles: SegmentHandles;
  private readonly reader: SegmentReader;
  private readonly spare: SpareSegment | undefined;

  private constructor(
    private readonly dir: string,
    private readonly fs: StoreFileSystem,
    private readonly segmentBytes: number,
    private readonly fsync: FsyncPolicy,
    private readonly indexStrideRecords: number,
    private readonly log: StoreLogger,
    preallocate: boolean,
    private readonly fsyncOnThread: boolean,
    segments: Segment[],
    nextOffset: number,
  ) {
    this.segments = segments;
    this.handles = new SegmentHandles(fs, dir, readHandlesMax);
    this.reader = new SegmentReader(this.handles);
    this.spare = preallocate ? new SpareSegment(fs, dir, segmentBytes, log) : undefined;
    this.nextOffsetValue = nextOffset;
    this.writtenOffsetValue = nextOffset - 1;
    this.flushedOffsetValue = nextOffset - 1;
    const last = segments[segments.length - 1] ?? new Segment(nextOffset, indexStrideRecords);
    if (segments.length === 0) segments.push(last);
    this.active = last;
  }

  /**
   * Recovers the log in `dir` (created if missing): replays every record in order through
   * onRecord, cuts a torn tail of the last segment, and throws LogCorruptionError for damage
   * anywhere else unless opts.repair. See recovery.ts.
   */
  static async open(
    dir: string,
    opts: SegmentLogOptions,
    onRecord: (record: LogRecord) => void,
  ): Promise<{ log: SegmentLog; report: RecoveryReport }> {
    const { segmentBytes } = opts;
    if (!Number.isInteger(segmentBytes) || segmentBytes < segmentBytesMin || segmentBytes > segmentBytesMax) {
      throw new RangeError(`segmentBytes ${segmentBytes} outside ${segmentBytesMin}..${segmentBytesMax}`);
    }
    if (opts.fsync.mode === 'batch' && !(opts.fsync.batchMs >= 1)) throw new RangeError(`fsync batchMs ${opts.fsync.batchMs} must be >= 1`);
    const fs = opts.fileSystem ?? nodeStoreFileSystem;
    const log = opts.log ?? defaultLogger;
    const indexStrideRecords = opts.indexStrideRecords ?? indexStrideRecordsDefault;
    const recovered = await recoverSegments({ dir, fs, segmentBytes, repair: opts.repair ?? false, indexStrideRecords, log }, onRecord);
    const segmentLog = new SegmentLog(
      dir,
      fs,
      segmentBytes,
      opts.fsync,
      indexStrideRecords,
      log,
      opts.preallocate ?? true,
      opts.fsyncOnThread ?? false,
      recovered.segments,
      recovered.nextOffset,
    );
    try {
      await segmentLog.start();
    } catch (error: unknown) {
      await segmentLog.spare?.discard().catch(() => undefined);
      await segmentLog.handles.closeAll(recovered.segments).catch(() => undefined);
      throw error;
    }
    return { log: segmentLog, report: recovered.report };
  }

  private async start(): Promise<void> {
    if (this.active.created) {
      // What a crashed predecessor left in the page cache becomes durable before anything builds on it.
      await this.active.file?.datasync();
    } else {
      this.spare?.prepare(false);
      await createSegmentFile(this.fs, this.dir, this.active, await this.spare?.take());
    }
    this.spare?.prepare(true);
  }

  get nextOffset(): LogOffset {
    return this.nextOffsetValue as LogOffset;
  }

  get writtenOffset(): LogOffset {
    return this.writtenOffsetValue as LogOffset;
  }

  get flushedOffset(): LogOffset {
    return this.flushedOffsetValue as LogOffset;
  }

  /** The lowest offset still in the log (records below were released). */
  get firstOffset(): LogOffset {
    return (this.segments[0]?.baseOffset ?? this.nextOffsetValue) as LogOffset;
  }

  /** Bytes appended and not yet written (the caller may commit early past a bound). */
  get pendingBytes(): number {
    let bytes = 0;
    for (const run of this.pending) bytes += run.used;
    return bytes;
  }

  /** Buffers a record in memory and returns its offset. Synchronous; nothing is written until commit(). */
  append(kind: number, payload: Uint8Array): LogOffset {
    return this.appendPayload(kind, payload, undefined);
  }

  /** As append(), with the payload given in two parts (e.g. the shard's header and a message body). */
  appendParts(kind: number, a: Uint8Array, b: Uint8Array): LogOffset {
    return this.appendPayload(kind, a, b);
  }

  /** Follower: appends a record that must get exactly `offset` (which must equal nextOffset). */
  appendAt(offset: LogOffset, kind: number, payload: Uint8Array): void {
    if (offset !== this.nextOffsetValue) throw new RangeError(`appendAt offset ${offset}, but the log's next offset is ${this.nextOffsetValue}`);
    this.appendPayload(kind, payload, undefined);
  }

  /**
   * Follower: appends encoded records verbatim (e.g. a replication batch's bytes, as the leader
   * wrote them). All are checked first (framing, checksum, offsets continuing from nextOffset);
   * a bad batch appends nothing and throws RecordBatchError. Returns the last offset appended.
   */
  appendRecords(records: Uint8Array): LogOffset {
    this.assertWritable();
    const buf = Buffer.from(records.buffer, records.byteOffset, records.byteLength);
    const view = new RecordView();
    let expected = this.nextOffsetValue;
    for (let position = 0; position < buf.length; position += view.recordBytes) {
      const check = checkRecord(buf, position, buf.length, view);
      if (check !== 'ok') throw new RecordBatchError(position, check === 'bad' ? view.reason : check === 'end' ? 'zero length word' : 'incomplete record');
      if (view.offset !== expected) throw new RecordBatchError(position, `record has offset ${view.offset}, the log expects ${expected}`);
      expected += 1;
    }
    for (let position = 0; position < buf.length; ) {
      const recordBytes = RECORD_CHECKED_OFFSET + buf.readUInt32LE(position);
      const run = this.runForNextRecord(recordBytes);
      const at = run.reserve(recordBytes, this.pool); // may replace run.buf: read it after
      buf.copy(run.buf, at, position, position + recordBytes);
      this.noteAppended(run);
      position += recordBytes;
    }
    return (this.nextOffsetValue - 1) as LogOffset;
  }

  /**
   * Group commit: writes everything appended so far (one write per segment touched, rolling
   * segments as needed), then applies the fsync policy. Resolves with flushedOffset under
   * 'always' (fdatasync'ed) and with writtenOffset under 'batch' and 'never' (the batch timer
   * fdatasyncs later and reports through onFlushed). Concurrent calls coalesce: one round is in
   * flight at a time; calls made meanwhile share the next. On an I/O error it rejects with
   * StoreWriteError; the records stay pending and are retried (by the next commit() or a
   * background retry every writeRetryMs). `sync` false (under 'always'): write now, but
   * fdatasync within deferredSyncMs or with the next synced round; resolves after the write.
   */
  commit(sync = true): Promise<LogOffset> {
    if (this.broken !== undefined) return Promise.reject(this.broken);
    const wantsSync = sync && this.fsync.mode === 'always';
    if (this.pending.length === 0) {
      if (this.roundInFlight !== undefined && (!wantsSync || this.roundInFlightSyncs)) return this.roundInFlight;
      // Written but not yet synced (e.g. by truncateTo, or a round without sync) still needs a round under 'always'.
      if (this.roundInFlight === undefined && (!wantsSync || this.unsynced.length === 0)) return Promise.resolve(this.committedOffset());
    }
    if (wantsSync) this.nextRoundSyncs = true;
    this.nextRound ??= this.enqueueIo(() => this.runRound());
    return this.nextRound;
  }

  /** One record by offset, read from its segment file (waits for the write if still pending). */
  async read(offset: LogOffset): Promise<LogRecord> {
    for (;;) {
      if (!Number.isSafeInteger(offset) || offset < this.firstOffset || offset >= this.nextOffsetValue) {
        throw new RangeError(`offset ${offset} is not in the log (${this.firstOffset}..${this.nextOffsetValue - 1})`);
      }
      if (offset <= this.writtenOffsetValue) break;
      const writtenBefore = this.writtenOffsetValue;
      await this.commit();
      assert.ok(this.writtenOffsetValue > writtenBefore || this.pending.length > 0, `read(${offset}): commit wrote nothing`);
    }
    return this.reader.read(this.segmentHolding(offset), offset);
  }

  /**
   * Reclamation: the caller no longer needs any offset below `offset`. Deletes the oldest
   * segments whose records all lie below it (never the one being written). Resolves with the
   * number of segment files deleted.
   */
  releaseBefore(offset: LogOffset): Promise<number> {
    return this.enqueueIo(async () => {
      let deleted = 0;
      for (;;) {
        const [first, second] = this.segments;
        if (first === undefined || second === undefined || !second.created || second.baseOffset > offset) break;
        await this.handles.drop(first);
        try {
          await this.fs.unlink(join(this.dir, first.name));
        } catch (error: unknown) {
          throw new StoreWriteError(errorCode(error), 'deleting settled segment', join(this.dir, first.name), error);
        }
        this.segments.shift();
        deleted += 1;
      }
      if (deleted > 0) {
        this.reader.invalidate();
        await this.fs.syncDir(this.dir);
        this.log('info', `released ${deleted} settled segment(s) in ${this.dir}; the log now starts at offset ${this.firstOffset}`);
      }
      return deleted;
    });
  }

  /**
   * Follower: cuts the log so that nextOffset becomes `offset` (firstOffset <= offset <=
   * nextOffset). Pending records are written first, then later segments are deleted newest
   * first and the segment holding `offset` is cut and synced. writtenOffset and flushedOffset
   * move back to offset - 1: the one place watermarks go back, by the caller's decision.
   */
  truncateTo(offset: LogOffset): Promise<void> {
    return this.enqueueIo(async () => {
      if (!Number.isSafeInteger(offset) || offset < this.firstOffset || offset > this.nextOffsetValue) {
        throw new RangeError(`truncateTo ${offset} outside the log (${this.firstOffset}..${this.nextOffsetValue})`);
      }
      if (this.pending.length > 0) {
        const runs = this.pending;
        this.pending = [];
        await this.writeRuns(runs);
        await this.applyFsyncPolicy();
      }
      if (offset === this.nextOffsetValue) return;
      const index = this.segmentIndexHolding(offset);
      const segment = this.segments[index];
      assert.ok(segment !== undefined);
      const position = offset === segment.nextOffset ? segment.appendBytes : await this.reader.position(segment, offset);
      this.reader.invalidate();
      try {
        await this.cutAt(index, segment, offset, position);
      } catch (error: unknown) {
        this.broken = new StoreWriteError(errorCode(error), 'truncating', join(this.dir, segment.name), error);
        this.log('error', `${this.broken.message}; the log must be reopened`);
        throw this.broken;
      }
      this.log('info', `truncated ${this.dir} to offset ${offset} (${segment.name} at byte ${position})`);
    });
  }

  private async cutAt(index: number, segment: Segment, offset: number, position: number): Promise<void> {
    while (this.segments.length - 1 > index) {
      const doomed = this.segments.pop();
      if (doomed === undefined) break;
      await this.handles.drop(doomed);
      if (doomed.created) await this.fs.unlink(join(this.dir, doomed.name));
    }
    if (segment !== this.active) {
      await this.handles.drop(segment);
      segment.file = await this.fs.open(join(this.dir, segment.name), 'r+');
      this.active = segment;
    }
    const file = this.activeFile();
    await cutSegmentTail(segment, file, position, segment.writtenBytes, this.segmentBytes);
    segment.truncateRecords(offset - segment.baseOffset, position);
    await file.datasync();
    await this.fs.syncDir(this.dir);
    for (const run of this.unsynced) this.pool.give(run.buf);
    this.unsynced = [];
    this.unsyncedBytes = 0;
    this.nextOffsetValue = offset;
    this.writtenOffsetValue = offset - 1;
    this.flushedOffsetValue = offset - 1;
  }

  /** Segment file names, oldest first. */
  segmentFiles(): string[] {
    return this.segments.filter((segment) => segment.created).map((segment) => segment.name);
  }

  stats(): SegmentLogStats {
    let segments = 0;
    let bytes = 0;
    for (const segment of this.segments) {
      if (!segment.created) continue;
      segments += 1;
      bytes += segment.writtenBytes;
    }
    return {
      segments,
      bytes,
      appendedRecords: this.appendedRecords,
      commits: this.commits,
      fsyncs: this.fsyncs,
      lastFsyncMs: this.lastFsyncMs,
      pendingBytes: this.pendingBytes,
      unsyncedBytes: this.unsyncedBytes,
    };
  }

  /** Commits what is pending, fdatasyncs (under every policy), closes the files. */
  async close(): Promise<void> {
    if (this.closed) return;
    let failure: unknown;
    try {
      if (this.pending.length > 0) await this.commit();
    } catch (error: unknown) {
      failure = error;
    }
    this.closed = true;
    clearTimeout(this.retryTimer);
    await this.enqueueIo(async () => {
      clearTimeout(this.syncTimer);
      if (this.broken === undefined && failure === undefined) {
        try {
          await this.syncActive(true);
        } catch (error: unknown) {
          failure = new StoreWriteError(errorCode(error), 'fdatasync', join(this.dir, this.active.name), error);
        }
      }
      await this.spare?.discard().catch(() => undefined);
      await this.handles.closeAll(this.segments);
    });
    if (failure !== undefined) throw failure;
  }

  private appendPayload(kind: number, a: Uint8Array, b: Uint8Array | undefined): LogOffset {
    this.assertWritable();
    const payloadBytes = a.length + (b === undefined ? 0 : b.length);
    if (payloadBytes > RECORD_PAYLOAD_BYTES_MAX) throw new RangeError(`record payload of ${payloadBytes} bytes > max ${RECORD_PAYLOAD_BYTES_MAX}`);
    if (!Number.isInteger(kind) || kind < 0 || kind > RECORD_KIND_MAX) throw new RangeError(`record kind ${kind} outside 0..${RECORD_KIND_MAX}`);
    const recordBytes = RECORD_HEADER_BYTES + payloadBytes;
    const run = this.runForNextRecord(recordBytes);
    const at = run.reserve(recordBytes, this.pool); // may replace run.buf: read it after
    encodeRecord(run.buf, at, this.nextOffsetValue, kind, a, b);
    return this.noteAppended(run);
  }

  private assertWritable(): void {
    if (this.closed) throw new Error(`segment log ${this.dir} is closed`);
    if (this.broken !== undefined) throw this.broken;
  }

  /** Places the next record: rolls to a planned segment when it would not fit, joins the tail run. */
  private runForNextRecord(recordBytes: number): WriteRun {
    let segment = this.segments[this.segments.length - 1];
    assert.ok(segment !== undefined);
    if (segment.recordCount > 0 && segment.appendBytes + recordBytes > this.segmentBytes) {
      segment = new Segment(this.nextOffsetValue, this.indexStrideRecords);
      this.segments.push(segment);
    }
    const position = segment.addRecord(recordBytes);
    const tail = this.pending[this.pending.length - 1];
    if (tail !== undefined && tail.segment === segment) {
      assert.equal(tail.endPosition, position, 'pending run is not contiguous');
      return tail;
    }
    const run = new WriteRun(segment, position, this.nextOffsetValue, this.pool.take(writeBufferBytes));
    this.pending.push(run);
    return run;
  }

  private noteAppended(run: WriteRun): LogOffset {
    const offset = this.nextOffsetValue;
    run.lastOffset = offset;
    this.nextOffsetValue = offset + 1;
    this.appendedRecords += 1;
    return offset as LogOffset;
  }

  private committedOffset(): LogOffset {
    return (this.fsync.mode === 'always' ? this.flushedOffsetValue : this.writtenOffsetValue) as LogOffset;
  }

  private enqueueIo<T>(op: () => Promise<T>): Promise<T> {
    const result = this.ioTail.then(op);
    this.ioTail = result.catch(() => undefined);
    return result;
  }

  private async runRound(): Promise<LogOffset> {
    this.roundInFlight = this.nextRound;
    this.nextRound = undefined;
    const syncs = this.nextRoundSyncs;
    this.nextRoundSyncs = false;
    this.roundInFlightSyncs = syncs;
    try {
      const runs = this.pending;
      this.pending = [];
      await this.writeRuns(runs);
      if (this.fsync.mode === 'always' && !syncs) this.armSyncTimer(deferredSyncMs);
      else await this.applyFsyncPolicy();
      if (this.failing) {
        this.failing = false;
        this.log('info', `writes to ${this.dir} succeed again (offsets up to ${this.writtenOffsetValue} written)`);
      }
      return this.committedOffset();
    } finally {
      this.roundInFlight = undefined;
    }
  }

  /** Writes runs in order; on failure rewinds to the last synced position and rethrows. */
  private async writeRuns(runs: WriteRun[]): Promise<void> {
    for (let i = 0; i < runs.length; i++) {
      const run = runs[i];
      if (run === undefined) break;
      try {
        if (!run.segment.created) await this.rollTo(run.segment);
        await writeFully(this.activeFile(), run.buf, run.used, run.startPosition);
      } catch (error: unknown) {
        throw await this.rewind(runs.slice(i), 'write', run.segment, rethrowBug(error));
      }
      const segment = run.segment;
      this.segmentWrites += 1;
      this.segmentWriteBytes += run.used;
      segment.writtenBytes = run.endPosition;
      segment.fileBytes = Math.max(segment.fileBytes, run.endPosition);
      this.unsynced.push(run);
      this.unsyncedBytes += run.used;
      this.maybeAdvanceWritten(run.lastOffset);
    }
    if (runs.length > 0) this.commits += 1;
  }

  private async applyFsyncPolicy(): Promise<void> {
    switch (this.fsync.mode) {
      case 'always':
        try {
          await this.syncActive(false);
        } catch (error: unknown) {
          throw await this.rewind([], 'fdatasync', this.active, rethrowBug(error));
        }
        return;
      case 'batch':
        this.armSyncTimer(this.fsync.batchMs);
        return;
      case 'never':
        this.releaseUnsynced();
        return;
    }
  }

  private armSyncTimer(batchMs: number): void {
    if (this.syncTimer !== undefined || this.unsynced.length === 0 || this.closed) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      void this.enqueueIo(() => this.timedSync()).catch(() => undefined);
    }, batchMs);
  }

  private async timedSync(): Promise<void> {
    if (this.broken !== undefined) return;
    try {
      await this.syncActive(false);
    } catch (error: unknown) {
      await this.rewind([], 'fdatasync', this.active, rethrowBug(error));
    }
  }

  /** fdatasync of the active segment; `force` syncs even with nothing new (before a roll). */
  private async syncActive(force: boolean): Promise<void> {
    if (this.unsynced.length === 0 && !force) return;
    const bytes = this.unsyncedBytes;
    const startedMs = performance.now();
    // While the next segment is zero-filled a sync shares the disk with the fill and can take
    // tens of ms: in the pool, it then delays only the confirms waiting for it.
    const inline = this.fsyncOnThread && this.spare?.filling !== true && inlineFsyncAllowed(this.lastFsyncMs);
    if (inline) this.activeFile().datasyncNow();
    else await this.activeFile().datasync();
    const fsyncMs = performance.now() - startedMs;
    if (inline) noteInlineFsync(fsyncMs);
    this.lastFsyncMs = fsyncMs;
    this.fsyncs += 1;
    const onFsync = this.onFsync;
    if (onFsync !== undefined) queueMicrotask(() => onFsync(fsyncMs, bytes));
    this.releaseUnsynced();
  }

  /** The unsynced runs are now durable (or, under 'never', as durable as they get). */
  private releaseUnsynced(): void {
    const last = this.unsynced[this.unsynced.length - 1];
    if (last === undefined) return;
    for (const run of this.unsynced) this.pool.give(run.buf);
    this.unsynced = [];
    this.unsyncedBytes = 0;
    this.maybeAdvanceFlushed(last.lastOffset);
  }

  private async rollTo(segment: Segment): Promise<void> {
    const previous = this.active;
    try {
      await this.syncActive(true);
    } catch (error: unknown) {
      throw new StoreWriteError(errorCode(error), 'fdatasync before rolling', join(this.dir, previous.name), rethrowBug(error));
    }
    try {
      await createSegmentFile(this.fs, this.dir, segment, await this.spare?.takeIfReady());
    } catch (error: unknown) {
      throw new StoreWriteError(errorCode(error), 'creating segment', join(this.dir, segment.name), rethrowBug(error));
    } finally {
      // Zero-fill the next file only while writes are small: then fdatasync over existing blocks
      // is ~2x faster per commit; with large writes the disk's bandwidth is the limit and a
      // zero-fill would double the bytes written (measured in native-free-bench/store.bench.ts).
      const averageWriteBytes = this.segmentWrites === 0 ? 0 : this.segmentWriteBytes / this.segmentWrites;
      if (averageWriteBytes < preallocateWriteBytesMax) this.spare?.prepare(true);
      else void this.spare?.discard().catch(() => undefined);
      this.segmentWrites = 0;
      this.segmentWriteBytes = 0;
    }
    this.active = segment;
    this.handles.adopt(previous);
  }

  /**
   * After a failed write or sync: puts the unsynced runs and the runs not yet written back at the
   * head of the pending queue, and cuts the active segment back to where they start, so a retry
   * writes the same bytes at the same positions. A failed cut leaves the log broken (restart).
   */
  private async rewind(remaining: WriteRun[], operation: string, segment: Segment, cause: unknown): Promise<StoreWriteError> {
    const runs = this.unsynced.concat(remaining);
    this.unsynced = [];
    this.unsyncedBytes = 0;
    const error = cause instanceof StoreWriteError ? cause : new StoreWriteError(errorCode(cause), operation, join(this.dir, segment.name), cause);
    const active = this.active;
    const inActive = runs.filter((run) => run.segment === active);
    const firstInActive = inActive[0];
    if (firstInActive !== undefined) {
      const dirtyEnd = Math.max(...inActive.map((run) => run.endPosition));
      try {
        await cutSegmentTail(active, this.activeFile(), firstInActive.startPosition, dirtyEnd, this.segmentBytes);
      } catch (cutError: unknown) {
        this.broken = new StoreWriteError(errorCode(cutError), `rolling back a failed ${operation} of`, join(this.dir, active.name), cutError);
        this.log('error', `${this.broken.message}; the log must be reopened (recovery will cut the tail)`);
        return this.broken;
      }
    }
    const first = runs[0];
    if (first !== undefined) this.writtenOffsetValue = Math.min(this.writtenOffsetValue, first.firstOffset - 1);
    this.pending = runs.concat(this.pending);
    this.reportFailure(error);
    return error;
  }

  private reportFailure(error: StoreWriteError): void {
    if (!this.failing) {
      this.failing = true;
      this.log('error', `${error.message}; keeping ${this.nextOffsetValue - 1 - this.writtenOffsetValue} record(s) pending, retrying every ${writeRetryMs} ms`);
    }
    const onWriteError = this.onWriteError;
    if (onWriteError !== undefined) queueMicrotask(() => onWriteError(error));
    if (this.retryTimer === undefined && !this.closed) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.commit().catch(() => undefined);
      }, writeRetryMs);
    }
  }

  private maybeAdvanceWritten(offset: number): void {
    assert.ok(offset >= this.writtenOffsetValue, `writtenOffset would go back from ${this.writtenOffsetValue} to ${offset}`);
    this.writtenOffsetValue = offset;
  }

  private maybeAdvanceFlushed(offset: number): void {
    if (offset === this.flushedOffsetValue) return;
    assert.ok(offset > this.flushedOffsetValue, `flushedOffset would go back from ${this.flushedOffsetValue} to ${offset}`);
    assert.ok(offset <= this.writtenOffsetValue, `flushedOffset ${offset} would pass writtenOffset ${this.writtenOffsetValue}`);
    this.flushedOffsetValue = offset;
    const onFlushed = this.onFlushed;
    if (onFlushed !== undefined) queueMicrotask(() => onFlushed(offset as LogOffset));
  }

  private activeFile(): StoreFile {
    const file = this.active.file;
    assert.ok(file !== undefined, `active segment ${this.active.name} has no open file`);
    return file;
  }

  private segmentIndexHolding(offset: number): number {
    let low = 0;
    let high = this.segments.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >>> 1;
      const segment = this.segments[middle];
      if (segment !== undefined && segment.baseOffset <= offset) low = middle;
      else high = middle - 1;
    }
    return low;
  }

  private segmentHolding(offset: number): Segment {
    const segment = this.segments[this.segmentIndexHolding(offset)];
    assert.ok(segment !== undefined, `no segment holds offset ${offset}`);
    return segment;
  }
}
