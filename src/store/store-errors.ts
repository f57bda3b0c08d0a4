/**
 * A record that fails its checks somewhere other than the torn tail of the last segment.
 * The node must not start on it silently: the message names the place and the way forward.
 */
export class LogCorruptionError extends Error {
  override name = 'LogCorruptionError';
  readonly file: string;
  readonly position: number;
  readonly reason: string;

  constructor(file: string, position: number, reason: string, laterSegments: number) {
    const later = laterSegments === 0 ? '' : ` and the ${laterSegments} later segment file(s)`;
    super(
      `corrupt log record in ${file} at byte ${position}: ${reason}. ` +
        `restart with --repair to keep the records before this point and move the rest aside ` +
        `(the rest of ${file}${later} are renamed to *.corrupt, nothing is deleted)`,
    );
    this.file = file;
    this.position = position;
    this.reason = reason;
  }
}

/**
 * An I/O error while writing or syncing (ENOSPC, EIO, …). The log has rolled its files back
 * to the last good position and keeps the records, so a later commit() retries them.
 */
export class StoreWriteError extends Error {
  override name = 'StoreWriteError';
  readonly code: string;

  constructor(code: string, operation: string, file: string, cause: unknown) {
    super(`${operation} ${file} failed: ${code}${cause instanceof Error ? ` (${cause.message})` : ''}`, { cause });
    this.code = code;
  }
}

/** The errno code of a Node.js system error ('EIO', 'ENOSPC', …), or 'EUNKNOWN'. */
export function errorCode(error: unknown): string {
  if (typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string') return error.code;
  return 'EUNKNOWN';
}

/** A batch of encoded records from elsewhere (a replication batch) that appendRecords refused. */
export class RecordBatchError extends Error {
  override name = 'RecordBatchError';
  readonly position: number;
  readonly reason: string;

  constructor(position: number, reason: string) {
    super(`bad record at byte ${position} of the batch: ${reason}`);
    this.position = position;
    this.reason = reason;
  }
}
