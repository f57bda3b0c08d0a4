import type { LogOffset } from './log-offset.js';

export interface LogRecord {
  offset: LogOffset;
  /** The shard's record kind (0..255); opaque to the log. */
  kind: number;
  /** During recovery a view into a read buffer that is reused: copy what you keep. */
  payload: Buffer;
}

export type StoreLogLevel = 'info' | 'warn' | 'error';
export type StoreLogger = (level: StoreLogLevel, msg: string) => void;

export interface RecoveryReport {
  /** Segment files in use after recovery. */
  segments: number;
  /** Records replayed through onRecord. */
  records: number;
  /** Bytes cut from a torn tail (0 when the log ended cleanly). */
  truncatedBytes: number;
  /** Where a torn tail was cut, and why. */
  truncatedAt?: { file: string; position: number; reason: string };
  /** What --repair moved aside (only when it found damage). */
  repaired?: { file: string; position: number; reason: string; movedAside: string[] };
}
