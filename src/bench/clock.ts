// One microsecond clock for every thread of the process, so a send time stamped by a
// producer thread can be subtracted from a receive time taken on a consumer thread.
import { performance } from 'node:perf_hooks';

const CALIBRATION_SAMPLES = 9;

/** process.hrtime is one monotonic clock for the whole process, but costs a BigInt per call. */
function hrtimeMicros(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/**
 * performance.now() is the cheapest clock but counts from each thread's own start, so anchor
 * it once to process.hrtime; the tightest of a few samples bounds the anchor's error.
 */
function calibrateAnchorMicros(): number {
  let bestSpanMicros = Number.POSITIVE_INFINITY;
  let anchorMicros = 0;
  for (let sample = 0; sample < CALIBRATION_SAMPLES; sample++) {
    const beforeMicros = performance.now() * 1000;
    const hrMicros = hrtimeMicros();
    const afterMicros = performance.now() * 1000;
    if (afterMicros - beforeMicros < bestSpanMicros) {
      bestSpanMicros = afterMicros - beforeMicros;
      anchorMicros = hrMicros - (beforeMicros + afterMicros) / 2;
    }
  }
  return anchorMicros;
}

const anchorMicros = calibrateAnchorMicros();

/** Microseconds on the process-wide monotonic clock (fractional). */
export function nowMicros(): number {
  return performance.now() * 1000 + anchorMicros;
}
