// The latency histograms one worker thread keeps for all its clients: totals for the end
// of the run, and interval copies that go to the main thread each second.
import { createLatencyHistogram, encodeHistogram, recordMicros } from './latency-histogram.js';
import type { IntervalLatency } from './group-task.js';

export class GroupLatency {
  readonly deliverTotal = createLatencyHistogram();
  readonly confirmTotal = createLatencyHistogram();
  private readonly deliverInterval = createLatencyHistogram();
  private readonly confirmInterval = createLatencyHistogram();

  recordDeliver(latencyMicros: number): void {
    recordMicros(this.deliverTotal, latencyMicros);
    recordMicros(this.deliverInterval, latencyMicros);
  }

  recordConfirm(latencyMicros: number): void {
    recordMicros(this.confirmTotal, latencyMicros);
    recordMicros(this.confirmInterval, latencyMicros);
  }

  /** Encodes what was recorded since the last call and starts a new interval. */
  takeInterval(): IntervalLatency {
    const interval: IntervalLatency = {
      deliver: this.deliverInterval.totalCount > 0 ? encodeHistogram(this.deliverInterval) : undefined,
      confirm: this.confirmInterval.totalCount > 0 ? encodeHistogram(this.confirmInterval) : undefined,
    };
    this.deliverInterval.reset();
    this.confirmInterval.reset();
    return interval;
  }
}
