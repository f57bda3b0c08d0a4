/**
 * The far end of a ring for the thread tests, plus the checksummed traffic both ends use.
 * In a worker it plays the role named in workerData; imported (or run by the test runner's
 * directory glob) on the main thread it only exports the helpers.
 */
import { randomFillSync } from 'node:crypto';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { crc32c } from '@node-rs/crc32';
import { RingReader } from '../../src/ring/ring-reader.js';
import { RingWriter } from '../../src/ring/ring-writer.js';

/** Record body: [u32 seq][u32 crc32c(payload)][payload]; kind = seq & 127. */
export const TRAFFIC_HEADER_BYTES = 8;
const PAYLOAD_POOL_BYTES = 256 * 1024;
/** Queue at most this much outside the ring before waiting for onDrain. */
const PENDING_BYTES_HIGH = 256 * 1024;
/** Records per flush, like the front's batches. */
const RECORDS_PER_FLUSH = 256;
/** Kind a test sends to tell a 'stop-exit' worker to stop its reader. */
export const KIND_STOP = 127;

/** xorshift32: reproducible sizes without Math.random. */
export class Xorshift32 {
  private state: number;
  constructor(seed: number) {
    this.state = seed | 0 || 1;
  }
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x;
    return x >>> 0;
  }
  below(limit: number): number {
    return this.next() % limit;
  }
}

/**
 * Mostly small records, some a few KiB, and rarely one larger than a 64 KiB ring's largest
 * whole record (16 KiB), so fragmentation runs inside the stream.
 */
export function trafficPayloadBytes(random: Xorshift32): number {
  const roll = random.below(1024);
  if (roll === 0) return 16 * 1024 + random.below(32 * 1024);
  if (roll < 16) return random.below(4096);
  return random.below(512);
}

export class TrafficSource {
  readonly random: Xorshift32;
  private readonly pool = Buffer.allocUnsafe(PAYLOAD_POOL_BYTES);
  private seq = 0;

  constructor(seed: number) {
    this.random = new Xorshift32(seed);
    randomFillSync(this.pool);
  }

  /** Writes the next record with write2 (header, payload) or, every third, write (one buffer). */
  writeNext(writer: RingWriter): void {
    const payloadBytes = trafficPayloadBytes(this.random);
    const offset = this.random.below(PAYLOAD_POOL_BYTES - payloadBytes + 1);
    const payload = this.pool.subarray(offset, offset + payloadBytes);
    const header = Buffer.allocUnsafe(TRAFFIC_HEADER_BYTES);
    header.writeUInt32LE(this.seq, 0);
    header.writeUInt32LE(crc32c(payload), 4);
    const kind = this.seq & 127;
    this.seq++;
    if (this.seq % 3 === 0) writer.write(kind, Buffer.concat([header, payload]));
    else writer.write2(kind, header, payload);
  }

  /** Writes `records` records in flushed batches, pausing whenever too much is pending. */
  async writeAll(writer: RingWriter, records: number): Promise<void> {
    let drained: (() => void) | undefined;
    writer.onDrain = () => drained?.();
    for (let i = 0; i < records; i++) {
      this.writeNext(writer);
      if ((i + 1) % RECORDS_PER_FLUSH !== 0 && i + 1 !== records) continue;
      writer.flush();
      if (writer.pendingBytes > PENDING_BYTES_HIGH) {
        await new Promise<void>((resolve) => {
          drained = resolve;
        });
      }
    }
    writer.flush();
    if (writer.pendingRecords > 0) {
      await new Promise<void>((resolve) => {
        drained = resolve;
      });
    }
  }
}

export class TrafficCheck {
  received = 0;
  readonly errors: string[] = [];

  take(kind: number, body: Buffer): void {
    const seq = this.received++;
    if (this.errors.length >= 10) return;
    if (body.length < TRAFFIC_HEADER_BYTES) {
      this.errors.push(`record ${seq}: ${body.length} bytes, shorter than the header`);
      return;
    }
    const gotSeq = body.readUInt32LE(0);
    const gotCrc = body.readUInt32LE(4);
    const crc = crc32c(body.subarray(TRAFFIC_HEADER_BYTES));
    if (gotSeq !== seq) this.errors.push(`record ${seq}: carries seq ${gotSeq}`);
    else if (kind !== (seq & 127)) this.errors.push(`record ${seq}: kind ${kind}`);
    else if (gotCrc !== crc) this.errors.push(`record ${seq}: crc ${crc} != ${gotCrc} (${body.length} bytes)`);
  }
}

export type PeerRole =
  | { role: 'hammer'; toWorker: SharedArrayBuffer; toMain: SharedArrayBuffer; records: number; seed: number }
  | { role: 'slow-reader'; ring: SharedArrayBuffer; records: number; recordsPerPoll: number }
  | { role: 'big-record'; ring: SharedArrayBuffer }
  | { role: 'stop-exit'; ring: SharedArrayBuffer };

export interface PeerReport {
  received: number;
  errors: string[];
  detail?: Record<string, number | string | string[]>;
}

function report(message: PeerReport | { started: true; activeResources: string[] }): void {
  parentPort?.postMessage(message);
}

async function hammer(role: Extract<PeerRole, { role: 'hammer' }>): Promise<void> {
  const reader = new RingReader(role.toWorker, 'test main→worker');
  const writer = new RingWriter(role.toMain, 'test worker→main');
  const check = new TrafficCheck();
  const allRead = new Promise<void>((resolve) => {
    reader.start(
      (kind, body) => check.take(kind, body),
      () => {
        if (check.received >= role.records) resolve();
      },
    );
  });
  await Promise.all([new TrafficSource(role.seed).writeAll(writer, role.records), allRead]);
  reader.stop();
  writer.close();
  report({
    received: check.received,
    errors: check.errors,
    detail: { fullCount: writer.fullCount, spaceWaits: writer.spaceWaits, sleeps: reader.sleeps },
  });
}

function slowReader(role: Extract<PeerRole, { role: 'slow-reader' }>): void {
  const reader = new RingReader(role.ring, 'test slow');
  const check = new TrafficCheck();
  const port = parentPort;
  if (port === null) return;
  // Reads nothing until told, so the writer meets a full ring; then reads a few records a turn.
  port.once('message', () => {
    const step = (): void => {
      reader.poll((kind, body) => check.take(kind, body), role.recordsPerPoll);
      if (check.received < role.records && check.errors.length === 0) {
        setImmediate(step);
        return;
      }
      report({ received: check.received, errors: check.errors, detail: { writerWakes: reader.writerWakes } });
    };
    step();
  });
  port.postMessage('ready');
}

function bigRecord(role: Extract<PeerRole, { role: 'big-record' }>): void {
  const reader = new RingReader(role.ring, 'test big');
  reader.start((kind, body) => {
    reader.stop();
    report({ received: 1, errors: [], detail: { kind, bodyBytes: body.length, crc: crc32c(body) } });
  });
}

function stopExit(role: Extract<PeerRole, { role: 'stop-exit' }>): void {
  const reader = new RingReader(role.ring, 'test stop');
  let received = 0;
  reader.start((kind) => {
    if (kind !== KIND_STOP) {
      received++;
      return;
    }
    reader.stop();
    report({ received, errors: [] });
  });
  report({ started: true, activeResources: process.getActiveResourcesInfo() });
}

if (!isMainThread && parentPort !== null) {
  const role = workerData as PeerRole;
  if (role.role === 'hammer') void hammer(role);
  else if (role.role === 'slow-reader') slowReader(role);
  else if (role.role === 'big-record') bigRecord(role);
  else stopExit(role);
}
