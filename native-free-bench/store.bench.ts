// Storage micro-benchmarks: record encoding with CRC32C by payload size (tinybench), and the
// durable path (append + commit with group commit) against a real directory under os.tmpdir().
//
// Encode tasks encode a batch of records per sample: opsPerSec is records per second.
// Commit scenarios run for a fixed wall time each: opsPerSec is records per second made
// durable (per the fsync policy), the note has commits/s, MB/s and the median fdatasync.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Bench } from 'tinybench';
import { encodeRecord } from '../src/store/record-codec.js';
import { RECORD_HEADER_BYTES } from '../src/store/record-layout.js';
import { SegmentLog } from '../src/store/segment-log.js';
import type { FsyncPolicy } from '../src/store/fsync-policy.js';

export interface BenchFigure {
  name: string;
  opsPerSec: number;
  note?: string;
}

/** Records encoded per timed sample: well above the timer's resolution. */
const encodeBatchRecords = 1_000;
/** Wall time per commit scenario: long enough for several segment rolls, short on a 2-core box. */
const scenarioMs = 1_500;
// Small enough that a scenario rolls (and pays for its preallocation) several times.
const segmentBytes = 16 * 1024 * 1024;

async function encodeFigures(): Promise<BenchFigure[]> {
  const bench = new Bench({ time: 300, warmupTime: 100 });
  const sizes = [256, 4096];
  for (const payloadBytes of sizes) {
    const payload = Buffer.alloc(payloadBytes, 0x61);
    const target = Buffer.allocUnsafe(encodeBatchRecords * (RECORD_HEADER_BYTES + payloadBytes));
    bench.add(`store: encode record + crc32c, ${payloadBytes} B payload`, () => {
      let position = 0;
      for (let i = 0; i < encodeBatchRecords; i++) position += encodeRecord(target, position, i, 1, payload);
    });
  }
  await bench.run();
  return bench.tasks.map((task, i) => {
    const result = task.result;
    if (result.state !== 'completed') throw new Error(`bench task ${task.name} ended ${result.state}`);
    const recordsPerSec = Math.round((encodeBatchRecords * 1000) / result.period);
    const recordBytes = RECORD_HEADER_BYTES + (sizes[i] ?? 0);
    return { name: task.name, opsPerSec: recordsPerSec, note: `${((recordsPerSec * recordBytes) / 1e6).toFixed(0)} MB/s` };
  });
}

interface Scenario {
  name: string;
  fsync: FsyncPolicy;
  preallocate: boolean;
  payloadBytes: number;
  /** Records appended before each commit by each writer. */
  batchRecords: number;
  /** Concurrent writers, each appending a batch and awaiting its commit (coalescing). */
  writers: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

async function commitScenario(scenario: Scenario): Promise<BenchFigure> {
  const dir = await mkdtemp(join(tmpdir(), 'warren-store-bench-'));
  try {
    const { log } = await SegmentLog.open(dir, { segmentBytes, fsync: scenario.fsync, preallocate: scenario.preallocate, log: () => undefined }, () => undefined);
    const fsyncMs: number[] = [];
    log.onFsync = (ms) => fsyncMs.push(ms);
    const payload = Buffer.alloc(scenario.payloadBytes, 0x62);
    const startedMs = performance.now();
    const stopMs = startedMs + scenarioMs;
    const writer = async (): Promise<void> => {
      while (performance.now() < stopMs) {
        for (let i = 0; i < scenario.batchRecords; i++) log.append(1, payload);
        await log.commit();
      }
    };
    await Promise.all(Array.from({ length: scenario.writers }, writer));
    const elapsedMs = performance.now() - startedMs;
    const stats = log.stats();
    log.onFsync = undefined;
    await log.close();
    const records = stats.appendedRecords;
    const bytes = records * (RECORD_HEADER_BYTES + scenario.payloadBytes);
    const perSec = (count: number): number => (count * 1000) / elapsedMs;
    const fsyncNote = fsyncMs.length === 0 ? 'no fdatasync' : `fdatasync p50 ${median(fsyncMs).toFixed(2)} ms`;
    return {
      name: scenario.name,
      opsPerSec: Math.round(perSec(records)),
      note: `${perSec(stats.commits).toFixed(0)} commits/s, ${(perSec(bytes) / 1e6).toFixed(0)} MB/s, ${fsyncNote}`,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const always: FsyncPolicy = { mode: 'always' };

const scenarios: Scenario[] = [
  { name: 'store: append+commit, fsync always, 256 B x 1000/commit, preallocated', fsync: always, preallocate: true, payloadBytes: 256, batchRecords: 1000, writers: 1 },
  { name: 'store: append+commit, fsync always, 256 B x 1000/commit, growing file', fsync: always, preallocate: false, payloadBytes: 256, batchRecords: 1000, writers: 1 },
  { name: 'store: append+commit, fsync always, 4 KiB x 1/commit, preallocated', fsync: always, preallocate: true, payloadBytes: 4096, batchRecords: 1, writers: 1 },
  { name: 'store: append+commit, fsync always, 4 KiB x 1/commit, growing file', fsync: always, preallocate: false, payloadBytes: 4096, batchRecords: 1, writers: 1 },
  { name: 'store: 64 writers x (1 record + commit), fsync always', fsync: always, preallocate: true, payloadBytes: 256, batchRecords: 1, writers: 64 },
  { name: 'store: append+commit, fsync batch-ms=5, 256 B x 1000/commit', fsync: { mode: 'batch', batchMs: 5 }, preallocate: true, payloadBytes: 256, batchRecords: 1000, writers: 1 },
  { name: 'store: append+commit, fsync never, 256 B x 1000/commit', fsync: { mode: 'never' }, preallocate: true, payloadBytes: 256, batchRecords: 1000, writers: 1 },
];

export async function storeBench(): Promise<BenchFigure[]> {
  const figures = await encodeFigures();
  for (const scenario of scenarios) figures.push(await commitScenario(scenario));
  return figures;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const { name, opsPerSec, note } of await storeBench()) {
    console.log(`${name.padEnd(72)} ${opsPerSec.toLocaleString('en-US').padStart(12)} records/s${note === undefined ? '' : `  (${note})`}`);
  }
}
