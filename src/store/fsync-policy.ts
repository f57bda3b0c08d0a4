/**
 * When the log calls fdatasync, and therefore which offset it reports as durable.
 *
 * - always: commit() writes and fdatasyncs; it resolves with flushedOffset (on disk).
 * - batch:  commit() writes and resolves with writtenOffset (in the OS page cache); a timer
 *           fdatasyncs at most batchMs later and reports flushedOffset through onFlushed.
 * - never:  commit() writes and resolves with writtenOffset; flushedOffset follows
 *           writtenOffset (survives a process crash, not a power loss).
 */
export type FsyncPolicy = { mode: 'always' } | { mode: 'batch'; batchMs: number } | { mode: 'never' };

/** Longest batch interval accepted: past a minute, "batch" is really "never". */
export const fsyncBatchMsMax = 60_000;

/** Parses the `--fsync` option: `always`, `batch-ms=N` (1 <= N <= 60000) or `never`. */
export function parseFsyncPolicy(text: string): FsyncPolicy {
  const trimmed = text.trim();
  if (trimmed === 'always') return { mode: 'always' };
  if (trimmed === 'never') return { mode: 'never' };
  const match = /^batch-ms=(\d+)$/.exec(trimmed);
  if (match !== null) {
    const batchMs = Number(match[1]);
    if (batchMs >= 1 && batchMs <= fsyncBatchMsMax) return { mode: 'batch', batchMs };
    throw new Error(`--fsync batch-ms=${match[1]}: N must be between 1 and ${fsyncBatchMsMax} milliseconds`);
  }
  throw new Error(`--fsync "${text}": expected always, batch-ms=N (milliseconds) or never`);
}

export function formatFsyncPolicy(policy: FsyncPolicy): string {
  return policy.mode === 'batch' ? `batch-ms=${policy.batchMs}` : policy.mode;
}
