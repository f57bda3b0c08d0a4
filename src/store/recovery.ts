/**
 * Start-up replay of a shard's segment files: checks every record, hands it to the caller,
 * cuts a torn tail of the last segment, and refuses (or, with repair, sets aside) damage
 * anywhere else. Never starts silently on a partial log.
 */
import { join } from 'node:path';
import { FileWindow } from './file-window.js';
import { RecordView, checkRecord, checkSegmentHeader, findRecordAfter } from './record-codec.js';
import { CORRUPT_FILE_SUFFIX, RECORD_CHECKED_OFFSET, SEGMENT_HEADER_BYTES, SPARE_SEGMENT_NAME, parseSegmentFileName } from './record-layout.js';
import { cutSegmentTail } from './segment-files.js';
import { Segment } from './segment.js';
import { LogCorruptionError } from './store-errors.js';
import { writeFully } from './store-file-system.js';
import type { LogOffset } from './log-offset.js';
import type { LogRecord, RecoveryReport, StoreLogger } from './log-record.js';
import type { StoreFile, StoreFileSystem } from './store-file-system.js';

export interface RecoveryContext {
  dir: string;
  fs: StoreFileSystem;
  segmentBytes: number;
  repair: boolean;
  indexStrideRecords: number;
  log: StoreLogger;
}

export interface Recovered {
  /** Sound segments, oldest first; the last one has its file open read/write. */
  segments: Segment[];
  /** Offset of the next record to append. */
  nextOffset: number;
  report: RecoveryReport;
}

interface Damage {
  position: number;
  reason: string;
  /** Nothing sound follows the damage: a write that a crash cut short. */
  torn: boolean;
  /** End of the non-zero bytes from `position` on (what a cut drops). */
  dirtyEnd: number;
}

interface ScannedSegment {
  segment: Segment;
  file: StoreFile;
  damage: Damage | undefined;
}

export async function recoverSegments(ctx: RecoveryContext, onRecord: (record: LogRecord) => void): Promise<Recovered> {
  await ctx.fs.mkdir(ctx.dir);
  const names = await ctx.fs.readdir(ctx.dir);
  if (names.includes(SPARE_SEGMENT_NAME)) await ctx.fs.unlink(join(ctx.dir, SPARE_SEGMENT_NAME));
  const bases = names
    .map((name) => ({ name, baseOffset: parseSegmentFileName(name) }))
    .filter((entry): entry is { name: string; baseOffset: number } => entry.baseOffset !== undefined)
    .sort((a, b) => a.baseOffset - b.baseOffset);
  const report: RecoveryReport = { segments: 0, records: 0, truncatedBytes: 0 };
  const segments: Segment[] = [];
  let nextOffset = bases[0]?.baseOffset ?? 0;
  try {
    for (let i = 0; i < bases.length; i++) {
      const entry = bases[i];
      if (entry === undefined) break;
      const isLast = i === bases.length - 1;
      const scanned = await scanSegment(ctx, entry.baseOffset, nextOffset, isLast, onRecord);
      report.records += scanned.segment.recordCount;
      const { damage, segment, file } = scanned;
      if (damage === undefined) {
        await keep(segments, segment, file);
        nextOffset = segment.nextOffset;
        continue;
      }
      // A segment that keeps no record (damaged header) leaves nextOffset where the previous one ended.
      if (isLast && damage.torn) {
        if (await cutTornTail(ctx, scanned, damage, report)) {
          await keep(segments, segment, file);
          nextOffset = segment.nextOffset;
        }
        break;
      }
      const later = bases.slice(i + 1).map((b) => b.name);
      if (!ctx.repair) {
        await file.close();
        throw new LogCorruptionError(segment.name, damage.position, damage.reason, later.length);
      }
      if (await repairFrom(ctx, scanned, damage, later, names, report)) {
        await keep(segments, segment, file);
        nextOffset = segment.nextOffset;
      }
      break;
    }
  } catch (error: unknown) {
    await Promise.all(segments.map((s) => s.file?.close().catch(() => undefined)));
    throw error;
  }
  report.segments = segments.length;
  const first = segments[0]?.baseOffset ?? nextOffset;
  ctx.log('info', `recovered ${report.records} records from ${segments.length} segment(s) in ${ctx.dir} (offsets ${first}..${nextOffset - 1})`);
  return { segments, nextOffset, report };
}

/** The newest kept segment keeps its read/write handle (it becomes the active one); the one before is closed. */
async function keep(segments: Segment[], segment: Segment, file: StoreFile): Promise<void> {
  const previous = segments[segments.length - 1];
  segments.push(segment);
  segment.file = file;
  if (previous?.file !== undefined) {
    const previousFile = previous.file;
    previous.file = undefined;
    await previousFile.close();
  }
}

async function scanSegment(
  ctx: RecoveryContext,
  baseOffset: number,
  expectedBase: number,
  isLast: boolean,
  onRecord: (record: LogRecord) => void,
): Promise<ScannedSegment> {
  const segment = new Segment(baseOffset, ctx.indexStrideRecords);
  const file = await ctx.fs.open(join(ctx.dir, segment.name), 'r+');
  try {
    return await scanOpenSegment(ctx, segment, file, expectedBase, isLast, onRecord);
  } catch (error: unknown) {
    await file.close().catch(() => undefined);
    throw error;
  }
}

async function scanOpenSegment(
  ctx: RecoveryContext,
  segment: Segment,
  file: StoreFile,
  expectedBase: number,
  isLast: boolean,
  onRecord: (record: LogRecord) => void,
): Promise<ScannedSegment> {
  const baseOffset = segment.baseOffset;
  const fileBytes = await file.sizeBytes();
  segment.created = true;
  segment.fileBytes = fileBytes;
  segment.writtenBytes = fileBytes;
  const window = new FileWindow(file, fileBytes);
  const damaged = async (position: number, reason: string, torn: boolean): Promise<ScannedSegment> => {
    const extent = await window.nonZeroExtent(position);
    segment.writtenBytes = position;
    return { segment, file, damage: { position, reason, torn, dirtyEnd: extent === undefined ? position : extent.last + 1 } };
  };

  await window.ensure(0, SEGMENT_HEADER_BYTES);
  const headerBytes = window.buf.subarray(0, Math.min(window.length, SEGMENT_HEADER_BYTES));
  if (headerBytes.length < SEGMENT_HEADER_BYTES || headerBytes.every((byte) => byte === 0)) {
    // A creation cut short by a crash: nothing was ever written after such a header.
    const reason = headerBytes.length < SEGMENT_HEADER_BYTES ? `segment header incomplete (${fileBytes} of ${SEGMENT_HEADER_BYTES} bytes)` : 'segment header is all zero';
    return damaged(0, reason, (await window.nonZeroExtent(SEGMENT_HEADER_BYTES)) === undefined);
  }
  const header = checkSegmentHeader(headerBytes);
  if ('reason' in header) return damaged(0, header.reason, false);
  if (header.baseOffset !== baseOffset) return damaged(0, `header says base offset ${header.baseOffset}, file name says ${baseOffset}`, false);
  if (baseOffset !== expectedBase) {
    return damaged(0, `segment starts at offset ${baseOffset} but the previous segment ends before offset ${expectedBase} (missing or extra segment)`, false);
  }

  const view = new RecordView();
  let position = SEGMENT_HEADER_BYTES;
  for (;;) {
    // Awaits only when the window must move: most records are already in the 1 MiB window.
    if (!window.has(position, RECORD_CHECKED_OFFSET)) await window.ensure(position, RECORD_CHECKED_OFFSET);
    let check = checkRecord(window.buf, window.at(position), window.limit, view);
    if (check === 'short' && position + view.recordBytes <= fileBytes) {
      await window.ensure(position, view.recordBytes);
      check = checkRecord(window.buf, window.at(position), window.limit, view);
    }
    if (check === 'end' || check === 'short') {
      if ((await window.nonZeroExtent(position)) === undefined) break;
      const reason =
        check === 'end'
          ? 'zero length word followed by non-zero bytes'
          : `incomplete record: ${fileBytes - position} bytes before end of file, record needs ${view.recordBytes}`;
      return damaged(position, reason, isLast && (await nothingSoundAfter(window, position, segment.nextOffset)));
    }
    if (check === 'bad') return damaged(position, view.reason, isLast && (await nothingSoundAfter(window, position, segment.nextOffset)));
    if (view.offset !== segment.nextOffset) return damaged(position, `record has offset ${view.offset}, expected ${segment.nextOffset}`, false);
    onRecord({ offset: view.offset as LogOffset, kind: view.kind, payload: window.buf.subarray(view.payloadStart, view.payloadEnd) });
    segment.addRecord(view.recordBytes);
    position += view.recordBytes;
  }
  segment.writtenBytes = position;
  return { segment, file, damage: undefined };
}

/** True when no record with a good checksum and a plausible offset starts after `position`. */
async function nothingSoundAfter(window: FileWindow, position: number, expectedOffset: number): Promise<boolean> {
  await window.ensure(position, window.fileBytes - position);
  return findRecordAfter(window.buf, window.at(position), window.limit, expectedOffset, new RecordView()) < 0;
}

/** Returns false when the whole file was removed (its header never got written). */
async function cutTornTail(ctx: RecoveryContext, scanned: ScannedSegment, damage: Damage, report: RecoveryReport): Promise<boolean> {
  const { segment, file } = scanned;
  const droppedBytes = damage.position === 0 ? segment.fileBytes : damage.dirtyEnd - damage.position;
  report.truncatedBytes += droppedBytes;
  report.truncatedAt = { file: segment.name, position: damage.position, reason: damage.reason };
  if (damage.position === 0) {
    await file.close();
    await ctx.fs.unlink(join(ctx.dir, segment.name));
    await ctx.fs.syncDir(ctx.dir);
    ctx.log('warn', `removed ${segment.name} from ${ctx.dir}: ${damage.reason} (its creation was cut short; it held no records)`);
    return false;
  }
  await cutSegmentTail(segment, file, damage.position, damage.dirtyEnd, ctx.segmentBytes);
  await file.datasync();
  ctx.log(
    'warn',
    `truncated the torn tail of ${segment.name} in ${ctx.dir} at byte ${damage.position}: ${damage.reason}; ` +
      `dropped ${droppedBytes} bytes after offset ${segment.nextOffset - 1} (never confirmed)`,
  );
  return true;
}

/**
 * --repair: keeps the records before the damage, copies the rest of the damaged segment to
 * NAME.from-POSITION.corrupt and renames every later segment to NAME.corrupt. Nothing is deleted.
 * Returns false when the damaged segment kept nothing (damage in its header).
 */
async function repairFrom(
  ctx: RecoveryContext,
  scanned: ScannedSegment,
  damage: Damage,
  laterNames: string[],
  existingNames: string[],
  report: RecoveryReport,
): Promise<boolean> {
  const { segment, file } = scanned;
  const taken = new Set(existingNames);
  const movedAside: string[] = [];
  const keepsRecords = damage.position > 0;
  if (keepsRecords) {
    const asideName = freeName(`${segment.name}.from-${damage.position}${CORRUPT_FILE_SUFFIX}`, taken);
    const tailBytes = Math.max(damage.dirtyEnd, damage.position) - damage.position;
    const tail = Buffer.alloc(tailBytes);
    await file.read(tail, 0, tailBytes, damage.position);
    const aside = await ctx.fs.open(join(ctx.dir, asideName), 'w+');
    await writeFully(aside, tail, tailBytes, 0);
    await aside.datasync();
    await aside.close();
    await cutSegmentTail(segment, file, damage.position, damage.dirtyEnd, ctx.segmentBytes);
    await file.datasync();
    movedAside.push(asideName);
  } else {
    await file.close();
    const asideName = freeName(segment.name + CORRUPT_FILE_SUFFIX, taken);
    await ctx.fs.rename(join(ctx.dir, segment.name), join(ctx.dir, asideName));
    movedAside.push(asideName);
  }
  for (const name of laterNames) {
    const asideName = freeName(name + CORRUPT_FILE_SUFFIX, taken);
    await ctx.fs.rename(join(ctx.dir, name), join(ctx.dir, asideName));
    movedAside.push(asideName);
  }
  await ctx.fs.syncDir(ctx.dir);
  report.repaired = { file: segment.name, position: damage.position, reason: damage.reason, movedAside };
  ctx.log(
    'error',
    `repair: ${segment.name} in ${ctx.dir} is damaged at byte ${damage.position} (${damage.reason}); ` +
      `kept the records up to offset ${segment.nextOffset - 1} and moved aside: ${movedAside.join(', ')}`,
  );
  return keepsRecords;
}

function freeName(wanted: string, taken: Set<string>): string {
  let name = wanted;
  for (let n = 1; taken.has(name); n++) name = `${wanted}.${n}`;
  taken.add(name);
  return name;
}
