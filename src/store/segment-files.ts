/** Creating and cutting segment files; shared by recovery and the writer. */
import { join } from 'node:path';
import { encodeSegmentHeader } from './record-codec.js';
import { SEGMENT_HEADER_BYTES } from './record-layout.js';
import { writeFully, writeZeros } from './store-file-system.js';
import type { Segment } from './segment.js';
import type { StoreFile, StoreFileSystem } from './store-file-system.js';

/**
 * Cuts a segment file at `from`. A preallocated file (fileBytes >= segmentBytes) keeps its
 * blocks and gets zeros over [from, dirtyEnd), so that it stays fast to overwrite and the
 * zero length word marks the end of data again; any other file is simply truncated.
 */
export async function cutSegmentTail(segment: Segment, file: StoreFile, from: number, dirtyEnd: number, segmentBytes: number): Promise<void> {
  if (segment.fileBytes >= segmentBytes && from < segment.fileBytes) {
    await writeZeros(file, from, Math.min(dirtyEnd, segment.fileBytes));
    if (dirtyEnd > segment.fileBytes) await file.truncate(segment.fileBytes);
  } else {
    await file.truncate(from);
    segment.fileBytes = from;
  }
  segment.writtenBytes = Math.min(segment.writtenBytes, from);
}

/**
 * Makes the file of a planned segment: from a zero-filled spare when there is one (renamed into
 * place), else a new empty file. The header is written and synced, then the directory, so a
 * crash leaves either no file or a file whose header is whole or all zero (removed by recovery).
 */
export async function createSegmentFile(
  fs: StoreFileSystem,
  dir: string,
  segment: Segment,
  spare: { file: StoreFile; path: string; fileBytes: number } | undefined,
): Promise<void> {
  const path = join(dir, segment.name);
  let file: StoreFile | undefined;
  try {
    if (spare !== undefined) {
      file = spare.file;
      await fs.rename(spare.path, path);
      segment.fileBytes = spare.fileBytes;
    } else {
      file = await fs.open(path, 'w+');
      segment.fileBytes = 0;
    }
    await writeFully(file, encodeSegmentHeader(segment.baseOffset), SEGMENT_HEADER_BYTES, 0);
    segment.fileBytes = Math.max(segment.fileBytes, SEGMENT_HEADER_BYTES);
    await file.datasync();
    await fs.syncDir(dir);
  } catch (error: unknown) {
    await file?.close().catch(() => undefined);
    await fs.unlink(path).catch(() => undefined);
    throw error;
  }
  segment.file = file;
  segment.writtenBytes = SEGMENT_HEADER_BYTES;
  segment.created = true;
}
