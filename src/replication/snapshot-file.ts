/**
 * A replica's snapshot file `snapshot-<offset>.wsnap`: the live messages of the queue as of
 * `offset`, for a log that starts there (a follower that caught up by snapshot). Content is
 * the Snapshot message's records: framed records as the store writes them (record-codec),
 * enqueue records in queue order with their original offsets, each delivered one followed by a
 * `delivered` record carrying the same offset. No header: the meta file names it.
 */
import { open, readFile } from 'node:fs/promises';
import { RecordView, checkRecord } from '../store/record-codec.js';
import { LogKind } from '../shard/log-records.js';

export const SNAPSHOT_FILE_PREFIX = 'snapshot-';
export const SNAPSHOT_FILE_SUFFIX = '.wsnap';

export function snapshotFileName(offset: number): string {
  return `${SNAPSHOT_FILE_PREFIX}${String(offset).padStart(20, '0')}${SNAPSHOT_FILE_SUFFIX}`;
}

export interface SnapshotRecord {
  offset: number;
  kind: number;
  /** Byte range of the payload within the file. */
  payloadStart: number;
  payloadEnd: number;
}

/** Why a buffer of snapshot records is not well formed, or undefined. Enqueue offsets must ascend and stay below `below`. */
export function snapshotRecordsProblem(buf: Buffer, below: number, afterOffset: number): string | undefined {
  const view = new RecordView();
  let previous = afterOffset;
  for (let position = 0; position < buf.length; position += view.recordBytes) {
    const check = checkRecord(buf, position, buf.length, view);
    if (check !== 'ok') return `record at byte ${position}: ${check === 'bad' ? view.reason : check}`;
    if (view.kind === LogKind.enqueue) {
      if (view.offset <= previous || view.offset >= below) return `enqueue at byte ${position} has offset ${view.offset}, after ${previous} and below ${below} expected`;
      previous = view.offset;
    } else if (view.kind === LogKind.delivered) {
      if (view.offset !== previous) return `delivered record at byte ${position} has offset ${view.offset}, expected ${previous}`;
    } else return `record kind ${view.kind} at byte ${position} does not belong in a snapshot`;
  }
  return undefined;
}

/** The last enqueue offset in a buffer of snapshot records (checked with snapshotRecordsProblem first). */
export function lastEnqueueOffset(buf: Buffer, afterOffset: number): number {
  const view = new RecordView();
  let last = afterOffset;
  for (let position = 0; position < buf.length; position += view.recordBytes) {
    if (checkRecord(buf, position, buf.length, view) !== 'ok') break;
    if (view.kind === LogKind.enqueue) last = view.offset;
  }
  return last;
}

/** Reads a whole snapshot file's record directory (payloads stay on disk). */
export async function scanSnapshotFile(path: string, onRecord: (offset: number, kind: number, payload: Buffer) => void): Promise<SnapshotRecord[]> {
  const buf = await readFile(path);
  const view = new RecordView();
  const records: SnapshotRecord[] = [];
  for (let position = 0; position < buf.length; position += view.recordBytes) {
    const check = checkRecord(buf, position, buf.length, view);
    if (check !== 'ok') throw new Error(`snapshot ${path} is damaged at byte ${position}: ${check === 'bad' ? view.reason : check}`);
    records.push({ offset: view.offset, kind: view.kind, payloadStart: view.payloadStart, payloadEnd: view.payloadEnd });
    onRecord(view.offset, view.kind, buf.subarray(view.payloadStart, view.payloadEnd));
  }
  return records;
}

/** Reads payloads out of a snapshot file by their recorded ranges. */
export async function readSnapshotPayload(path: string, record: SnapshotRecord): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    const payload = Buffer.allocUnsafe(record.payloadEnd - record.payloadStart);
    const { bytesRead } = await file.read(payload, 0, payload.length, record.payloadStart);
    if (bytesRead !== payload.length) throw new Error(`snapshot ${path}: payload at byte ${record.payloadStart} cut short`);
    return payload;
  } finally {
    await file.close();
  }
}
