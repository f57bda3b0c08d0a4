/**
 * One replicated queue's log on one node: `<dataDir>/replicas/<queueId>/`, a SegmentLog whose
 * offsets are the queue's replication offsets, with the shard's record kinds plus epochStart.
 * The same class serves a leader (append, framed into a tail cache and handed to the segment
 * log on commit) and a follower (appendRecords with a leader's bytes verbatim).
 *
 * Beside the segments:
 *   replica.json                   epochs that began below the first segment (kept across
 *                                  reclamation) and the snapshot offset, if the log started
 *                                  from a snapshot; replaced atomically
 *   snapshot-<offset>.wsnap        the live messages below that offset (snapshot-file.ts)
 *   snapshot.incoming              a snapshot being received (removed at open)
 *   snapshot-out-<offset>-<n>.wsnap  a snapshot being built and sent to a follower by a leader
 *                                  (snapshot-sender.ts); deleted once sent, or at open
 *
 * Threading: used from the replicator's event loop only, like the SegmentLog inside it.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, rename, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { readJsonFile, writeFileAtomic } from '../store/definitions-file.js';
import { encodeRecord, encodeSegmentHeader, readU64, recordBytesFor } from '../store/record-codec.js';
import {
  RECORD_BODY_BYTES_OFFSET,
  RECORD_CHECKED_OFFSET,
  RECORD_KIND_OFFSET,
  RECORD_OFFSET_OFFSET,
  RECORD_PAYLOAD_OFFSET,
  parseSegmentFileName,
  segmentFileName,
} from '../store/record-layout.js';
import { SegmentLog } from '../store/segment-log.js';
import type { FsyncPolicy } from '../store/fsync-policy.js';
import type { LogOffset } from '../store/log-offset.js';
import type { StoreLogger } from '../store/log-record.js';
import { EpochHistory, epochListProblem } from './epoch-history.js';
import type { EpochEntry } from './epoch-history.js';
import type { LiveColumns } from './live-index.js';
import { LiveIndex, REPLICA_KIND_EPOCH_START, RecordPayloadError, decodeEpochStart, encodeEpochStart } from './live-index.js';
import { SNAPSHOT_FILE_PREFIX, SNAPSHOT_FILE_SUFFIX, readSnapshotPayload, scanSnapshotFile, snapshotFileName } from './snapshot-file.js';
import type { SnapshotRecord } from './snapshot-file.js';
import { TailCache } from './tail-cache.js';
import type { RecordRange } from './tail-cache.js';
import { LogKind } from '../shard/log-records.js';

export const REPLICA_META_FILE = 'replica.json';
export const SNAPSHOT_INCOMING_FILE = 'snapshot.incoming';

/** One allocation per this many bytes of leader records (PLATFORM.md: ~256 KiB per write+sync). */
const tailChunkBytes = 256 * 1024;
/** Records kept in memory for streaming to followers that keep up; older ones are read from disk. */
const tailCacheBytesMaxDefault = 16 * 1024 * 1024;

export interface ReplicaLogOptions {
  segmentBytes: number;
  fsync: FsyncPolicy;
  log: StoreLogger;
  tailCacheBytesMax?: number;
}

interface ReplicaMeta {
  version: 1;
  epochs: Array<[number, number]>;
  snapshotOffset: number | null;
}

export interface LiveRecord {
  msgId: number;
  offset: number;
  delivered: boolean;
  /** The enqueue record's payload ([u32 queueId][f64 msgId][f64 expiresAtMs][message payload]). */
  payload: Buffer;
}

/** Calls each(offset, kind, payload) for every record of a buffer the segment log already checked. */
export function forEachFramedRecord(buf: Buffer, each: (offset: number, kind: number, payload: Buffer) => void): number {
  let count = 0;
  for (let position = 0; position < buf.length; count++) {
    const recordBytes = RECORD_CHECKED_OFFSET + buf.readUInt32LE(position + RECORD_BODY_BYTES_OFFSET);
    each(readU64(buf, position + RECORD_OFFSET_OFFSET), buf[position + RECORD_KIND_OFFSET] ?? 0, buf.subarray(position + RECORD_PAYLOAD_OFFSET, position + recordBytes));
    position += recordBytes;
  }
  return count;
}

export class ReplicaLog {
  /** Called each time the segment log's flushedOffset advances (the replica's durable offset). */
  onFlushed: ((flushedOffset: number) => void) | undefined;
  /** Called after each fdatasync with its duration (for the fsync latency histogram). */
  onFsync: ((ms: number) => void) | undefined;

  private segLog!: SegmentLog;
  private cache!: TailCache;
  private history = new EpochHistory();
  private readonly index = new LiveIndex();
  private snapshotOffset: number | undefined;
  /** Enqueue records in the snapshot file, by offset. */
  private snapshotRecords = new Map<number, SnapshotRecord>();
  /** Snapshots being built read below this; reclamation keeps it. */
  private readonly pins = new Map<number, number>();
  private nextPinId = 1;
  private closed = false;

  private constructor(
    readonly dir: string,
    private readonly opts: ReplicaLogOptions,
  ) {}

  static async open(dir: string, opts: ReplicaLogOptions): Promise<ReplicaLog> {
    const replica = new ReplicaLog(dir, opts);
    await replica.load();
    return replica;
  }

  /** Removes a replica's directory and everything in it. */
  static async destroy(dir: string): Promise<void> {
    await rm(dir, { recursive: true, force: true });
  }

  /** The offset the next record gets. */
  get nextOffset(): number {
    return this.cache.nextOffset;
  }

  /** The oldest offset that can still be streamed; a follower below it needs a snapshot. */
  get logStart(): number {
    return this.segLog.firstOffset;
  }

  /** Highest offset durable here under the fsync policy (-1 = none). */
  get flushedOffset(): number {
    return this.segLog.flushedOffset;
  }

  get epochs(): EpochHistory {
    return this.history;
  }

  /** The newest epoch that wrote to this log (0 = none). */
  get latestEpoch(): number {
    return this.history.latestEpoch;
  }

  get liveCount(): number {
    return this.index.size;
  }

  get segmentFiles(): string[] {
    return this.segLog.segmentFiles();
  }

  /** Leader: a record of the shard gets the next offset (framed now, written on commit). */
  append(kind: number, payload: Uint8Array): number {
    this.assertOpen();
    const offset = this.cache.append(kind, payload);
    this.applyToState(offset, kind, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength));
    return offset;
  }

  /** Leader: the first record of its epoch. The epoch must be newer than any in this log. */
  appendEpochStart(epoch: number): number {
    assert.ok(epoch > this.history.latestEpoch, `epoch ${epoch} is not newer than the log's ${this.history.latestEpoch}`);
    return this.append(REPLICA_KIND_EPOCH_START, encodeEpochStart(epoch));
  }

  /**
   * Follower: a leader's framed records, verbatim; they must continue at nextOffset. Checked
   * whole by the segment log first (RecordBatchError appends nothing). Returns the count.
   */
  appendRecords(records: Buffer): number {
    this.assertOpen();
    assert.equal(this.cache.nextOffset, this.segLog.nextOffset, 'a follower append while leader records are pending');
    const before = this.segLog.nextOffset;
    this.segLog.appendRecords(records);
    this.cache.reset(this.segLog.nextOffset);
    const count = forEachFramedRecord(records, (offset, kind, payload) => this.applyToState(offset, kind, payload));
    assert.equal(before + count, this.segLog.nextOffset);
    return count;
  }

  /** Group commit: hands pending leader records to the segment log, writes and syncs by policy. */
  async commit(): Promise<number> {
    this.flushToSegments();
    const committed = await this.segLog.commit();
    this.cache.evict(this.segLog.nextOffset);
    return committed;
  }

  /** As readRange, when the tail cache still holds `from` (no I/O); else undefined. */
  readCached(from: number, maxBytes: number): RecordRange | undefined {
    if (from >= this.nextOffset) return undefined;
    return this.cache.range(from, maxBytes);
  }

  /**
   * Framed records from `from` on (at least one, whole records up to about maxBytes), for a
   * Batch. From the tail cache when it still holds them, else read back from the segments.
   */
  async readRange(from: number, maxBytes: number): Promise<RecordRange> {
    this.assertOpen();
    if (from < this.logStart || from >= this.nextOffset) throw new RangeError(`readRange(${from}) outside ${this.logStart}..${this.nextOffset - 1}`);
    const cached = this.cache.range(from, maxBytes);
    if (cached !== undefined) return cached;
    const parts: Buffer[] = [];
    let bytes = 0;
    let offset = from;
    const end = Math.min(this.cache.firstOffset, this.segLog.nextOffset);
    while (offset < end && (bytes === 0 || bytes < maxBytes)) {
      const record = await this.segLog.read(offset as LogOffset);
      const recordBytes = recordBytesFor(record.payload.length);
      if (bytes > 0 && bytes + recordBytes > maxBytes) break;
      const framed = Buffer.allocUnsafe(recordBytes);
      encodeRecord(framed, 0, offset, record.kind, record.payload);
      parts.push(framed);
      bytes += recordBytes;
      offset += 1;
    }
    return { records: Buffer.concat(parts, bytes), count: offset - from };
  }

  /** [msgId, {offset, delivered}] of the live messages in queue order, as of nextOffset (a copy). */
  liveEntries(): ReturnType<LiveIndex['snapshot']> {
    return this.index.snapshot();
  }

  /** The same as liveEntries(), as typed columns: what a snapshot job on another thread gets. */
  liveColumns(): LiveColumns {
    return this.index.columns();
  }

  /**
   * The snapshot file this log started from, while it still holds live messages (their enqueue
   * payloads are there, not in the segments), else undefined. Kept while the log is pinned.
   */
  get snapshotFile(): string | undefined {
    return this.snapshotOffset === undefined ? undefined : join(this.dir, snapshotFileName(this.snapshotOffset));
  }

  /** The live messages in queue order with their enqueue payloads (a new leader imports them). */
  async *liveRecords(): AsyncGenerator<LiveRecord> {
    const pin = this.pin(this.logStart);
    try {
      for (const [msgId, entry] of this.index.snapshot()) {
        yield { msgId, offset: entry.offset, delivered: entry.delivered, payload: await this.enqueuePayload(entry.offset) };
      }
    } finally {
      this.unpin(pin);
    }
  }

  /** The payload of the enqueue record at offset (from the snapshot file or the segments). */
  async enqueuePayload(offset: number): Promise<Buffer> {
    const inSnapshot = this.snapshotRecords.get(offset);
    if (inSnapshot !== undefined && this.snapshotOffset !== undefined) return readSnapshotPayload(join(this.dir, snapshotFileName(this.snapshotOffset)), inSnapshot);
    const record = await this.segLog.read(offset as LogOffset);
    assert.equal(record.kind, LogKind.enqueue, `record ${offset} of ${this.dir} is not an enqueue`);
    return record.payload;
  }

  /** Where `epoch` ends in this log (start of the next epoch, else nextOffset): the leader-epoch rule. */
  epochEndOffset(epoch: number): number {
    return this.history.endOffsetOf(epoch, this.nextOffset);
  }

  /** Keeps records from `offset` on from reclamation until unpin (a snapshot or import reading them). */
  pin(offset: number): number {
    const id = this.nextPinId++;
    this.pins.set(id, offset);
    return id;
  }

  unpin(id: number): void {
    this.pins.delete(id);
  }

  /**
   * Follower: cuts the log so that nextOffset becomes `offset` (>= logStart), then rebuilds the
   * live index and epoch history from what remains.
   */
  async truncateTo(offset: number): Promise<void> {
    this.assertOpen();
    assert.equal(this.cache.nextOffset, this.segLog.nextOffset, 'truncating while leader records are pending');
    if (offset >= this.nextOffset) return;
    await this.segLog.truncateTo(offset as LogOffset);
    await this.reload();
  }

  /**
   * Deletes segments whose records all lie below min(oldest live message, commitOffset + 1,
   * pins): a settled, committed prefix that no follower stream or snapshot reads any more.
   * Epochs that began there are first kept in replica.json. Resolves with segments deleted.
   */
  async releaseSettled(commitOffset: number, keepFrom: number): Promise<number> {
    if (this.closed) return 0;
    let bound = Math.min(this.index.lowestOffset() ?? this.nextOffset, commitOffset + 1, keepFrom);
    for (const pinned of this.pins.values()) bound = Math.min(bound, pinned);
    const bases = this.segLog.segmentFiles().map((name) => parseSegmentFileName(name) ?? 0);
    const second = bases[1];
    if (second === undefined || bound < second) return 0;
    // A pinned reader (a snapshot job on another thread) may still read payloads from the file.
    const snapshotGone = this.snapshotOffset !== undefined && this.pins.size === 0 && (this.index.lowestOffset() ?? Number.POSITIVE_INFINITY) >= this.snapshotOffset;
    await this.writeMeta(snapshotGone ? undefined : this.snapshotOffset);
    if (snapshotGone && this.snapshotOffset !== undefined) {
      await unlink(join(this.dir, snapshotFileName(this.snapshotOffset))).catch(() => undefined);
      this.snapshotOffset = undefined;
      this.snapshotRecords.clear();
    }
    return this.segLog.releaseBefore(bound as LogOffset);
  }

  /**
   * Follower: replaces the whole log by a received snapshot (the file at incomingPath, checked by
   * the caller) as of `offset`; the log continues at `offset`. The meta file switches first, so a
   * crash leaves either the old replica or the new one (load() removes the other's files).
   */
  async installSnapshot(offset: number, epochs: readonly EpochEntry[], incomingPath: string): Promise<void> {
    this.assertOpen();
    await this.segLog.close();
    await rename(incomingPath, join(this.dir, snapshotFileName(offset)));
    this.history = new EpochHistory(epochs.filter((e) => e.startOffset < offset));
    await this.writeMeta(offset);
    for (const name of await readdir(this.dir)) {
      if (parseSegmentFileName(name) !== undefined) await unlink(join(this.dir, name));
    }
    await this.load();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.flushToSegments();
    await this.segLog.close();
  }

  // ---- internals ----

  private assertOpen(): void {
    if (this.closed) throw new Error(`replica log ${this.dir} is closed`);
  }

  private applyToState(offset: number, kind: number, payload: Buffer): void {
    if (kind === REPLICA_KIND_EPOCH_START) {
      const epoch = decodeEpochStart(payload);
      if (epoch !== undefined && epoch > this.history.latestEpoch) this.history.add(epoch, offset);
      else this.opts.log('warn', `${this.dir}: epochStart record at ${offset} (epoch ${String(epoch)}) does not follow epoch ${this.history.latestEpoch}; ignored`);
      return;
    }
    try {
      this.index.apply(offset, kind, payload);
    } catch (error: unknown) {
      // The record stays in the log (every replica holds the same bytes and skips it alike).
      if (!(error instanceof RecordPayloadError)) throw error;
      this.opts.log('warn', `${this.dir}: ${error.message}; message state unchanged`);
    }
  }

  private flushToSegments(): void {
    const from = this.segLog.nextOffset;
    const to = this.cache.nextOffset;
    if (from === to) return;
    const views = this.cache.views(from, to);
    assert.ok(views !== undefined && views.count === to - from, `tail cache lost records ${from}..${to - 1} before they were written`);
    for (const part of views.parts) this.segLog.appendRecords(part);
  }

  private async writeMeta(snapshotOffset: number | undefined): Promise<void> {
    const meta: ReplicaMeta = { version: 1, epochs: this.history.entries.map((e) => [e.epoch, e.startOffset]), snapshotOffset: snapshotOffset ?? null };
    await writeFileAtomic(join(this.dir, REPLICA_META_FILE), JSON.stringify(meta));
  }

  private async reload(): Promise<void> {
    await this.segLog.close();
    await this.load();
  }

  /** Opens (or reopens) the segments and rebuilds index and history from meta, snapshot and log. */
  private async load(): Promise<void> {
    const { dir, opts } = this;
    await mkdir(dir, { recursive: true });
    const meta = (await readJsonFile<ReplicaMeta>(join(dir, REPLICA_META_FILE))) ?? { version: 1, epochs: [], snapshotOffset: null };
    const metaEpochs = meta.epochs.map(([epoch, startOffset]) => ({ epoch, startOffset }));
    this.index.clear();
    this.snapshotRecords = new Map();
    this.snapshotOffset = meta.snapshotOffset ?? undefined;
    const names = await readdir(dir);
    await unlink(join(dir, SNAPSHOT_INCOMING_FILE)).catch(() => undefined);
    for (const name of names) {
      const isSnapshot = name.startsWith(SNAPSHOT_FILE_PREFIX) && name.endsWith(SNAPSHOT_FILE_SUFFIX);
      if (isSnapshot && (this.snapshotOffset === undefined || name !== snapshotFileName(this.snapshotOffset))) await unlink(join(dir, name));
    }
    if (this.snapshotOffset !== undefined) {
      const start = this.snapshotOffset;
      // Segments below the snapshot offset are what an interrupted installSnapshot left of the old log.
      let kept = 0;
      for (const name of names) {
        const base = parseSegmentFileName(name);
        if (base === undefined) continue;
        if (base < start) await unlink(join(dir, name));
        else kept += 1;
      }
      if (kept === 0) await writeFileAtomic(join(dir, segmentFileName(start)), encodeSegmentHeader(start));
      const records = await scanSnapshotFile(join(dir, snapshotFileName(start)), (offset, kind, payload) => this.index.apply(offset, kind, payload));
      for (const record of records) if (record.kind === LogKind.enqueue) this.snapshotRecords.set(record.offset, record);
    }
    const logEpochs: EpochEntry[] = [];
    const { log } = await SegmentLog.open(dir, { segmentBytes: opts.segmentBytes, fsync: opts.fsync, log: opts.log, fsyncOnThread: true }, (record) => {
      if (record.kind === REPLICA_KIND_EPOCH_START) {
        const epoch = decodeEpochStart(record.payload);
        if (epoch !== undefined) logEpochs.push({ epoch, startOffset: record.offset });
        return;
      }
      try {
        this.index.apply(record.offset, record.kind, record.payload);
      } catch (error: unknown) {
        if (!(error instanceof RecordPayloadError)) throw error;
        opts.log('warn', `${dir}: ${error.message}; message state unchanged`);
      }
    });
    this.segLog = log;
    const merged = metaEpochs.filter((e) => e.startOffset < log.firstOffset).concat(logEpochs);
    const problem = epochListProblem(merged);
    if (problem !== undefined) {
      await log.close();
      throw new Error(`replica ${dir}: epoch history is inconsistent (${problem}); remove the directory to resync it from the leader`);
    }
    this.history = new EpochHistory(merged);
    this.cache = new TailCache(log.nextOffset, tailChunkBytes, opts.tailCacheBytesMax ?? tailCacheBytesMaxDefault);
    log.onFlushed = (flushed) => this.onFlushed?.(flushed);
    log.onFsync = (ms) => this.onFsync?.(ms);
    this.closed = false;
  }
}
