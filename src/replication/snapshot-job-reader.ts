/**
 * Read-only access to a replica's enqueue payloads from another thread (the snapshot job): the
 * lookup of ReplicaLog.enqueuePayload — the replica's own snapshot file for the offsets it
 * holds, else the segment files through the store's SegmentReader — over file handles of its own.
 *
 * Why this is safe while the replicator keeps appending: only records below an offset the
 * replicator committed before starting the job are read, and those bytes never change; the
 * caller's pin keeps their segments (and the snapshot file) from deletion until the job ends.
 * Each segment's readable bound is its file size: records below the offset lie before it, and
 * the reader never looks at a record past the one asked for.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LogKind } from '../shard/log-records.js';
import { SEGMENT_HEADER_BYTES, parseSegmentFileName } from '../store/record-layout.js';
import { SegmentHandles } from '../store/segment-handles.js';
import { SegmentReader } from '../store/segment-reader.js';
import { Segment } from '../store/segment.js';
import { nodeStoreFileSystem } from '../store/store-file-system.js';
import { scanSnapshotFile } from './snapshot-file.js';

/**
 * The index of a segment here holds its first record only, so a read scans forward from the
 * header, or from the record after the previous read: a job reads in offset order, so each
 * record is read once, one 64 KiB chunk at a time. No segment holds 2^30 records (1 GiB at most).
 */
const wholeSegmentStrideRecords = 2 ** 30;
/** A job reads forward through one segment at a time. */
const readHandlesMax = 2;

export class ReplicaFileReader {
  private constructor(
    private readonly dir: string,
    private readonly segments: Segment[],
    private readonly endOffset: number,
    private readonly handles: SegmentHandles,
    private readonly reader: SegmentReader,
    /** Enqueue payloads of the replica's own snapshot file, by offset (views of the file read once). */
    private readonly snapshotPayloads: Map<number, Buffer>,
  ) {}

  /**
   * segmentFiles: the replica's segment file names, oldest first, as of the job's start;
   * snapshotFile: its own snapshot file (ReplicaLog.snapshotFile), if any; endOffset: reads
   * below it only (the snapshot offset).
   */
  static async open(dir: string, segmentFiles: readonly string[], snapshotFile: string | undefined, endOffset: number): Promise<ReplicaFileReader> {
    const segments: Segment[] = [];
    for (const name of segmentFiles) {
      const baseOffset = parseSegmentFileName(name);
      if (baseOffset === undefined) throw new Error(`${name} in ${dir} is not a segment file name`);
      const previous = segments[segments.length - 1];
      if (previous !== undefined && previous.baseOffset >= baseOffset) throw new Error(`segment ${name} of ${dir} does not follow ${previous.name}`);
      const segment = new Segment(baseOffset, wholeSegmentStrideRecords);
      segment.index.note(0, SEGMENT_HEADER_BYTES);
      segment.created = true;
      segment.writtenBytes = (await stat(join(dir, name))).size;
      segments.push(segment);
    }
    const snapshotPayloads = new Map<number, Buffer>();
    if (snapshotFile !== undefined) {
      await scanSnapshotFile(snapshotFile, (offset, kind, payload) => {
        if (kind === LogKind.enqueue) snapshotPayloads.set(offset, payload);
      });
    }
    const handles = new SegmentHandles(nodeStoreFileSystem, dir, readHandlesMax);
    return new ReplicaFileReader(dir, segments, endOffset, handles, new SegmentReader(handles), snapshotPayloads);
  }

  /** The payload of the enqueue record at offset; an error when there is none below endOffset. */
  async enqueuePayload(offset: number): Promise<Buffer> {
    const inSnapshot = this.snapshotPayloads.get(offset);
    if (inSnapshot !== undefined) return inSnapshot;
    const segment = this.segmentHolding(offset);
    const record = await this.reader.read(segment, offset);
    if (record.kind !== LogKind.enqueue) throw new Error(`record ${offset} of ${this.dir} has kind ${record.kind}, not an enqueue`);
    return record.payload;
  }

  async close(): Promise<void> {
    await this.handles.closeAll(this.segments);
  }

  private segmentHolding(offset: number): Segment {
    const first = this.segments[0];
    if (!Number.isSafeInteger(offset) || first === undefined || offset < first.baseOffset || offset >= this.endOffset) {
      throw new RangeError(`offset ${offset} is not in the log of ${this.dir} (${first?.baseOffset ?? this.endOffset}..${this.endOffset - 1})`);
    }
    let low = 0;
    let high = this.segments.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >>> 1;
      if ((this.segments[middle]?.baseOffset ?? Number.POSITIVE_INFINITY) <= offset) low = middle;
      else high = middle - 1;
    }
    const segment = this.segments[low];
    if (segment === undefined) throw new RangeError(`offset ${offset}: no segment of ${this.dir} holds it`);
    return segment;
  }
}
