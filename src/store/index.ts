/** The storage library's public face: a shard's segment log and the definitions file. */
export { SegmentLog } from './segment-log.js';
export type { SegmentLogOptions, SegmentLogStats } from './segment-log.js';
export type { LogRecord, RecoveryReport, StoreLogger, StoreLogLevel } from './log-record.js';
export { LogCorruptionError, RecordBatchError, StoreWriteError } from './store-errors.js';
export { logOffset, noOffset } from './log-offset.js';
export type { LogOffset } from './log-offset.js';
export { formatFsyncPolicy, parseFsyncPolicy } from './fsync-policy.js';
export type { FsyncPolicy } from './fsync-policy.js';
export { readJsonFile, writeFileAtomic } from './definitions-file.js';
export type { StoreFile, StoreFileSystem } from './store-file-system.js';
export { nodeStoreFileSystem } from './store-file-system.js';
