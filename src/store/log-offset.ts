/**
 * A log offset is a record's number in its shard's log: the first record ever appended is 0
 * and each record gets the next number, across all segments, forever (never reused, except
 * after an explicit truncateTo on a follower). It is not a byte position.
 */
export type LogOffset = number & { readonly __brand: 'LogOffset' };

/** "No record yet": the value of an inclusive watermark (writtenOffset, flushedOffset) on an empty log. */
export const noOffset = -1 as LogOffset;

/** Brands a number as a LogOffset; throws for values a log can never hold. */
export function logOffset(value: number): LogOffset {
  if (!Number.isSafeInteger(value) || value < -1) {
    throw new RangeError(`log offset must be a safe integer >= -1, got ${value}`);
  }
  return value as LogOffset;
}
