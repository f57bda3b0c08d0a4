// Micro-benchmarks of the SharedArrayBuffer SPSC rings (src/ring): records per second by
// record size, written in batches of 256 per flush, on one thread (write + flush + poll) and
// across two threads (main thread writes, a worker's RingReader.start() reads). opsPerSec is
// per record. This file is also the worker: it spawns itself with a role in workerData.
// Run alone: node dist/native-free-bench/ring.bench.js
import { isMainThread, Worker, workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { Bench } from 'tinybench';
import { waitAsync } from '../src/ring/atomics-wait-async.js';
import { createRingBuffer } from '../src/ring/ring-layout.js';
import { RingReader } from '../src/ring/ring-reader.js';
import { RingWriter } from '../src/ring/ring-writer.js';

export interface BenchResult {
  name: string;
  opsPerSec: number;
  note?: string;
}

const RECORD_SIZES_BYTES = [16, 256, 4096] as const;
/** Records per flush, as the front and shards batch them. */
const RECORDS_PER_FLUSH = 256;
/** One-thread iterations run several batches so timer resolution does not dominate. */
const BATCHES_PER_ONE_THREAD_ITERATION = 8;
/** Two-thread iterations send this many records, then wait until the worker has read them all. */
const RECORDS_PER_THREADS_ITERATION = 64 * 1024;
const RING_BYTES = 1024 * 1024;
const LARGE_RING_BYTES = 8 * 1024 * 1024;
const KIND_DATA = 1;
/** Tells the worker to stop its reader and leave. */
const KIND_STOP = 2;
/** Word in the counter buffer where the worker publishes how many records it has read. */
const READ_COUNT_WORD = 0;

interface SinkRole {
  ringBenchRole: 'sink';
  ring: SharedArrayBuffer;
  counter: SharedArrayBuffer;
}

/** Worker side: reads everything, publishes the count after each batch. */
function runSink(role: SinkRole): void {
  const reader = new RingReader(role.ring, 'bench sink');
  const counter = new Int32Array(role.counter);
  let records = 0;
  let bodyBytes = 0;
  reader.start(
    (kind, body) => {
      if (kind === KIND_STOP) {
        reader.stop();
        return;
      }
      records++;
      bodyBytes += body.length;
    },
    () => {
      Atomics.store(counter, READ_COUNT_WORD, records | 0);
      Atomics.notify(counter, READ_COUNT_WORD);
    },
  );
  // Keeps bodyBytes observable so the handler's work is not optimised away.
  process.on('exit', () => {
    if (bodyBytes < 0) console.log(bodyBytes);
  });
}

/** Main side of a two-thread pair: a writer to a worker that counts what it reads. */
class ThreadPair {
  readonly writer: RingWriter;
  private readonly worker: Worker;
  private readonly counter: Int32Array;
  private sentRecords = 0;
  private drained: (() => void) | undefined;
  private failure: Error | undefined;
  private sending = false;

  constructor(ringBytes: number) {
    const ring = createRingBuffer(ringBytes);
    const counter = new SharedArrayBuffer(4);
    const role: SinkRole = { ringBenchRole: 'sink', ring, counter };
    this.worker = new Worker(new URL(import.meta.url), { workerData: role });
    this.counter = new Int32Array(counter);
    this.worker.on('error', (error: Error) => {
      this.failure = error;
      // Wakes readerCaughtUp() so the bench fails instead of waiting forever.
      Atomics.notify(this.counter, READ_COUNT_WORD);
      this.drained?.();
    });
    this.writer = new RingWriter(ring, `bench ${ringBytes} B`);
    this.writer.onDrain = () => this.drained?.();
  }

  /** Sends `records` bodies in flushed batches, waiting for drain when the ring is full. */
  async send(body: Uint8Array, records: number, recordsPerFlush: number): Promise<void> {
    if (this.sending) throw new Error('ThreadPair.send() called while a send is in progress');
    this.sending = true;
    try {
      await this.sendBatches(body, records, recordsPerFlush);
    } finally {
      this.sending = false;
    }
  }

  private async sendBatches(body: Uint8Array, records: number, recordsPerFlush: number): Promise<void> {
    for (let sent = 0; sent < records; sent += recordsPerFlush) {
      for (let i = 0; i < recordsPerFlush; i++) this.writer.write(KIND_DATA, body);
      this.writer.flush();
      if (this.writer.pendingRecords > 0) {
        await new Promise<void>((resolve) => {
          this.drained = resolve;
        });
      }
    }
    this.sentRecords += records;
    await this.readerCaughtUp();
  }

  private async readerCaughtUp(): Promise<void> {
    const target = this.sentRecords | 0;
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      const seen = Atomics.load(this.counter, READ_COUNT_WORD);
      if (seen === target) return;
      const result = waitAsync(this.counter, READ_COUNT_WORD, seen);
      if (result.async) await result.value;
    }
  }

  async close(): Promise<void> {
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    if (this.failure === undefined) {
      this.writer.write(KIND_STOP, new Uint8Array(0));
      this.writer.flush();
    }
    await exited;
    this.writer.close();
  }
}

function oneThreadTask(recordBytes: number): () => void {
  const ring = createRingBuffer(RING_BYTES);
  const writer = new RingWriter(ring, 'bench one thread');
  const reader = new RingReader(ring, 'bench one thread');
  const body = new Uint8Array(recordBytes).fill(7);
  let bodyBytes = 0;
  const onRecord = (_kind: number, record: Buffer): void => {
    bodyBytes += record.length;
  };
  return () => {
    for (let batch = 0; batch < BATCHES_PER_ONE_THREAD_ITERATION; batch++) {
      for (let i = 0; i < RECORDS_PER_FLUSH; i++) writer.write(KIND_DATA, body);
      writer.flush();
      // 256 records of 4 KiB overfill a 1 MiB ring: read until nothing is queued or unread.
      while (reader.poll(onRecord) > 0 || writer.pendingRecords > 0) writer.flush();
    }
    if (bodyBytes < 0) console.log(bodyBytes);
  };
}

export async function ringBench(timeMs = 400): Promise<BenchResult[]> {
  const bench = new Bench({ time: timeMs, iterations: 8, warmupTime: 100, warmupIterations: 2 });
  const opsPerIteration = new Map<string, number>();
  const notes = new Map<string, string>();
  const pairs: ThreadPair[] = [];

  for (const recordBytes of RECORD_SIZES_BYTES) {
    const name = `one thread write+flush+poll, ${recordBytes} B records`;
    bench.add(name, oneThreadTask(recordBytes));
    opsPerIteration.set(name, RECORDS_PER_FLUSH * BATCHES_PER_ONE_THREAD_ITERATION);
    notes.set(name, `1 MiB ring, ${RECORDS_PER_FLUSH} per flush`);
  }
  const threadRows: Array<{ recordBytes: number; ringBytes: number; recordsPerFlush: number }> = [
    ...RECORD_SIZES_BYTES.map((recordBytes) => ({ recordBytes, ringBytes: RING_BYTES, recordsPerFlush: RECORDS_PER_FLUSH })),
    { recordBytes: 256, ringBytes: LARGE_RING_BYTES, recordsPerFlush: RECORDS_PER_FLUSH },
    // One publish (and possibly one wake-up) per record: what batching saves.
    { recordBytes: 256, ringBytes: RING_BYTES, recordsPerFlush: 1 },
  ];
  for (const { recordBytes, ringBytes, recordsPerFlush } of threadRows) {
    const pair = new ThreadPair(ringBytes);
    pairs.push(pair);
    const body = new Uint8Array(recordBytes).fill(9);
    const records = recordsPerFlush === 1 ? RECORDS_PER_THREADS_ITERATION / 4 : RECORDS_PER_THREADS_ITERATION;
    const name = `main→worker, ${recordBytes} B records, ${ringBytes / (1024 * 1024)} MiB ring, ${recordsPerFlush} per flush`;
    // An async function: tinybench calls a plain one once to find out whether it returns a
    // promise, which would start a second send() on the same pair.
    bench.add(name, async () => {
      await pair.send(body, records, recordsPerFlush);
    });
    opsPerIteration.set(name, records);
    notes.set(name, 'timed until the worker has read all');
  }

  try {
    await bench.run();
  } finally {
    for (const pair of pairs) await pair.close();
  }

  return bench.tasks.map((task) => {
    const result = task.result;
    const ops = opsPerIteration.get(task.name) ?? 1;
    const note = notes.get(task.name);
    if (result.state !== 'completed') return { name: task.name, opsPerSec: 0, note: `state ${result.state}` };
    const opsPerSec = Math.round((ops * 1000) / result.period);
    return note === undefined ? { name: task.name, opsPerSec } : { name: task.name, opsPerSec, note };
  });
}

const role = workerData as SinkRole | undefined;
if (!isMainThread && role?.ringBenchRole === 'sink') {
  runSink(role);
} else if (isMainThread && process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const results = await ringBench(Number(process.env['BENCH_TIME_MS'] ?? 400));
  for (const r of results) console.log(`${r.opsPerSec.toLocaleString('en-US').padStart(14)} ops/s  ${r.name}  (${r.note ?? ''})`);
}
