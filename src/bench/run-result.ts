// What one run against one broker measured.
import type { BrokerIdentity } from './broker-session.js';
import type { LatencyHistogram } from './latency-histogram.js';

export interface GeneratorCpu {
  readonly userMicros: number;
  readonly systemMicros: number;
  /** CPU time over wall time: 100 means one core busy for the whole run. */
  readonly percentOfOneCore: number;
  /** The same, divided by the machine's cores: 50 on a 2-core machine is one full core. */
  readonly percentOfMachine: number;
  readonly cores: number;
  /** Per client thread, the share of the run its event loop was busy (0..1). */
  readonly threadBusy: readonly number[];
}

export interface Accounting {
  readonly published: number;
  /** Queue copies the routing produced (published × queues each message reaches). */
  readonly routed: number;
  readonly consumed: number;
  /** Messages left in the queues at the end, less what they held before the run; undefined if the broker did not say. */
  readonly inQueues: number | undefined;
  readonly inQueuesBefore: number;
  readonly balanced: boolean;
}

export interface RunResult {
  readonly label: string;
  readonly url: string;
  readonly round: number;
  readonly broker: BrokerIdentity;
  readonly threads: number;
  readonly connections: number;
  /** The publishing window the rates and the CPU figure are over. */
  readonly windowSeconds: number;
  /** Start to the end of draining and closing. */
  readonly totalSeconds: number;
  readonly publishedInWindow: number;
  readonly consumedInWindow: number;
  readonly publishedPerSecond: number;
  readonly consumedPerSecond: number;
  readonly confirmed: number;
  readonly nacked: number;
  readonly unconfirmed: number;
  readonly accounting: Accounting;
  readonly cpu: GeneratorCpu;
  readonly deliverLatency: LatencyHistogram;
  readonly confirmLatency: LatencyHistogram;
  readonly errors: readonly string[];
}

/** amqp://user:secret@host → amqp://user:***@host, for anything printed or saved. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}
