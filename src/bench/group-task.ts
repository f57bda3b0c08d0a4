// What the main thread hands each worker thread (one long Piscina task per group of
// clients) and what comes back. Everything here crosses a thread boundary by structured clone.
import type { MessagePort } from 'node:worker_threads';
import type { SizeRange } from './options.js';

export interface ProducerSpec {
  readonly client: number;
  /** The node this producer connects to. */
  readonly url: string;
  readonly exchange: string;
  readonly routingKey: string;
  /**
   * With --rate, where in each interval this producer's sends fall (0..1), so N producers at
   * R msg/s offer an even N×R msg/s instead of N-message bursts.
   */
  readonly scheduleOffset: number;
}

export interface ConsumerSpec {
  readonly client: number;
  /** The node this consumer connects to. */
  readonly url: string;
  readonly queue: string;
}

export interface GroupWorkload {
  readonly size: SizeRange;
  readonly ratePerProducer: number | undefined;
  readonly confirmWindow: number | undefined;
  readonly persistent: boolean;
  readonly messagesPerProducer: number | undefined;
  readonly prefetchCount: number;
  readonly multiAckEvery: number;
  readonly autoAck: boolean;
  /** Nagle's algorithm on in the client sockets (BenchOptions.nagle). */
  readonly nagle: boolean;
  /** PEM text of the CAs to trust for amqps:// URLs (BenchOptions.tlsCa). */
  readonly tlsCa: string | undefined;
}

export interface GroupTask {
  readonly group: number;
  readonly workload: GroupWorkload;
  readonly producers: readonly ProducerSpec[];
  readonly consumers: readonly ConsumerSpec[];
  readonly counters: SharedArrayBuffer;
  /** Interval histograms go up this port once a second for the progress line. */
  readonly progressPort: MessagePort;
}

/** Posted on the progress port: latency recorded since the previous post, encoded. */
export interface IntervalLatency {
  readonly deliver: string | undefined;
  readonly confirm: string | undefined;
}

export interface ProducerTotals {
  readonly client: number;
  readonly published: number;
  readonly confirmed: number;
  readonly nacked: number;
  /** Still unconfirmed when the producer gave up waiting (or was aborted). */
  readonly unconfirmed: number;
}

export interface ConsumerTotals {
  readonly client: number;
  readonly consumed: number;
}

export interface GroupResult {
  readonly group: number;
  readonly producers: readonly ProducerTotals[];
  readonly consumers: readonly ConsumerTotals[];
  readonly deliverLatency: string;
  readonly confirmLatency: string;
  /** Share of the run this thread's event loop was busy (0..1): near 1 means the generator, not the broker, set the pace. */
  readonly eventLoopUtilization: number;
  /** Errors of clients in this group, as text; the run fails if any. */
  readonly errors: readonly string[];
}
