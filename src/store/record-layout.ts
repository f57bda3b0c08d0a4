/**
 * The one place that says where every byte of a segment file lives. All integers are
 * little-endian. The format is versioned and owes nothing to in-memory structures: the same
 * bytes are shipped verbatim to followers and appended to their logs.
 *
 * Segment file, named by the offset of its first record, zero padded to 20 digits:
 *   00000000000000000000.wseg, 00000000000000123456.wseg, …
 *
 *   0        4          6             8                 16          20        24
 *   +--------+----------+-------------+-----------------+-----------+---------+------------
 *   | magic  | format   | headerBytes | baseOffset u64  | reserved  | crc32c  | record, record, …
 *   | 'WSEG' | ver. u16 | u16 (= 24)  |                 | u32 (= 0) | of 0..20| then zero bytes up to
 *   +--------+----------+-------------+-----------------+-----------+---------+ the preallocated size
 *
 * Record (RECORD_HEADER_BYTES, then the payload):
 *
 *   0               4               8        9        10                18
 *   +---------------+---------------+--------+--------+-----------------+--------------------+
 *   | bodyBytes u32 | crc32c u32    | format | kind   | offset u64      | payload            |
 *   | (8..end)      | over 8..end   | ver. u8| u8     | (LogOffset)     | bodyBytes-10 bytes |
 *   +---------------+---------------+--------+--------+-----------------+--------------------+
 *
 * bodyBytes counts from the format byte to the end of the payload (>= 10). bodyBytes 0 marks
 * the end of data: preallocated segments are zero-filled, so the first all-zero length word
 * is where the next record goes. `kind` and the payload belong to the shard; the log only
 * frames, checksums and numbers records.
 */

/** "WSEG" read as a little-endian u32. */
export const SEGMENT_MAGIC = 0x47455357;
export const SEGMENT_FORMAT_VERSION = 1;
export const SEGMENT_MAGIC_OFFSET = 0;
export const SEGMENT_FORMAT_VERSION_OFFSET = 4;
export const SEGMENT_HEADER_BYTES_OFFSET = 6;
export const SEGMENT_BASE_OFFSET_OFFSET = 8;
export const SEGMENT_RESERVED_OFFSET = 16;
export const SEGMENT_HEADER_CRC_OFFSET = 20;
export const SEGMENT_HEADER_BYTES = 24;

export const RECORD_FORMAT_VERSION = 1;
export const RECORD_BODY_BYTES_OFFSET = 0;
export const RECORD_CRC_OFFSET = 4;
/** The checksum covers everything from here to the end of the payload. */
export const RECORD_CHECKED_OFFSET = 8;
export const RECORD_FORMAT_VERSION_OFFSET = 8;
export const RECORD_KIND_OFFSET = 9;
export const RECORD_OFFSET_OFFSET = 10;
export const RECORD_PAYLOAD_OFFSET = 18;
export const RECORD_HEADER_BYTES = RECORD_PAYLOAD_OFFSET;
/** bodyBytes of a record with an empty payload. */
export const RECORD_BODY_BYTES_MIN = RECORD_PAYLOAD_OFFSET - RECORD_CHECKED_OFFSET;
/**
 * Largest payload a record may carry: RabbitMQ's hard ceiling for a message is 512 MiB;
 * the rest leaves room for the shard's own header. Also bounds what recovery will believe
 * a length word that it reads from disk.
 */
export const RECORD_PAYLOAD_BYTES_MAX = 512 * 1024 * 1024 + 64 * 1024;
export const RECORD_BODY_BYTES_MAX = RECORD_BODY_BYTES_MIN + RECORD_PAYLOAD_BYTES_MAX;
/** Kinds are a u8 chosen by the shard. */
export const RECORD_KIND_MAX = 255;

export const SEGMENT_FILE_SUFFIX = '.wseg';
export const SEGMENT_NAME_DIGITS = 20;
/** Suffix of files moved aside by --repair; never read again by the log. */
export const CORRUPT_FILE_SUFFIX = '.corrupt';
/** The zero-filled file prepared ahead of the next roll when preallocating. */
export const SPARE_SEGMENT_NAME = 'spare.wseg.tmp';

export function segmentFileName(baseOffset: number): string {
  return String(baseOffset).padStart(SEGMENT_NAME_DIGITS, '0') + SEGMENT_FILE_SUFFIX;
}

/** The base offset a segment file name stands for, or undefined for any other file. */
export function parseSegmentFileName(name: string): number | undefined {
  if (name.length !== SEGMENT_NAME_DIGITS + SEGMENT_FILE_SUFFIX.length) return undefined;
  if (!name.endsWith(SEGMENT_FILE_SUFFIX)) return undefined;
  const digits = name.slice(0, SEGMENT_NAME_DIGITS);
  if (!/^\d+$/.test(digits)) return undefined;
  const baseOffset = Number(digits);
  return Number.isSafeInteger(baseOffset) ? baseOffset : undefined;
}

// The offset type and the fsync policy are part of the format's vocabulary; they live in their
// own files and are re-exported here for callers that import the layout.
export type { LogOffset } from './log-offset.js';
export type { FsyncPolicy } from './fsync-policy.js';
export { parseFsyncPolicy } from './fsync-policy.js';
