/** Shared helpers for the store tests: temp dirs, deterministic payloads, a fault-injecting file system. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SegmentLog } from '../../src/store/segment-log.js';
import { nodeStoreFileSystem } from '../../src/store/store-file-system.js';
import type { LogRecord } from '../../src/store/log-record.js';
import type { SegmentLogOptions } from '../../src/store/segment-log.js';
import type { StoreFile, StoreFileSystem, StoreOpenFlags } from '../../src/store/store-file-system.js';

export async function withTempDir<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'warren-store-'));
  try {
    return await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Payload of record `offset` in tests: its length and bytes follow from the offset and a seed. */
export function payloadFor(offset: number, seed = 0): Buffer {
  const payloadBytes = 1 + ((offset * 37 + seed * 11) % 200);
  const payload = Buffer.allocUnsafe(payloadBytes);
  for (let i = 0; i < payloadBytes; i++) payload[i] = (offset * 7 + i * 13 + seed) & 0xff;
  return payload;
}

export function kindFor(offset: number): number {
  return offset % 251;
}

export interface Opened {
  log: SegmentLog;
  records: LogRecord[];
  report: Awaited<ReturnType<typeof SegmentLog.open>>['report'];
  messages: string[];
}

export const quietOptions: SegmentLogOptions = { segmentBytes: 4096, fsync: { mode: 'always' }, preallocate: false };

/** Opens a log and keeps copies of the replayed records and the log lines. */
export async function openLog(dir: string, options: Partial<SegmentLogOptions> = {}): Promise<Opened> {
  const records: LogRecord[] = [];
  const messages: string[] = [];
  const { log, report } = await SegmentLog.open(
    dir,
    { ...quietOptions, log: (level, msg) => messages.push(`${level}: ${msg}`), ...options },
    (record) => records.push({ ...record, payload: Buffer.from(record.payload) }),
  );
  return { log, records, report, messages };
}

/** Appends records [from, to) with test payloads (checking each gets its expected offset). */
export function appendRange(log: SegmentLog, from: number, to: number, seed = 0): void {
  for (let offset = from; offset < to; offset++) {
    const got = log.append(kindFor(offset), payloadFor(offset, seed));
    if (got !== offset) throw new Error(`append returned ${got}, expected ${offset}`);
  }
}

/** Fails the named operations with an errno code while armed; counts calls. */
export class FaultyFileSystem implements StoreFileSystem {
  faults = new Map<string, string>();
  calls = new Map<string, number>();

  fail(operation: 'write' | 'datasync' | 'truncate' | 'open' | 'rename' | 'unlink' | 'syncDir', code: string): void {
    this.faults.set(operation, code);
  }

  heal(): void {
    this.faults.clear();
  }

  check(operation: string): void {
    this.calls.set(operation, (this.calls.get(operation) ?? 0) + 1);
    const code = this.faults.get(operation);
    if (code !== undefined) throw Object.assign(new Error(`injected ${code} on ${operation}`), { code });
  }

  async open(path: string, flags: StoreOpenFlags): Promise<StoreFile> {
    this.check('open');
    return new FaultyFile(await nodeStoreFileSystem.open(path, flags), this);
  }

  readdir(dir: string): Promise<string[]> {
    return nodeStoreFileSystem.readdir(dir);
  }

  async rename(from: string, to: string): Promise<void> {
    this.check('rename');
    await nodeStoreFileSystem.rename(from, to);
  }

  async unlink(path: string): Promise<void> {
    this.check('unlink');
    await nodeStoreFileSystem.unlink(path);
  }

  mkdir(dir: string): Promise<void> {
    return nodeStoreFileSystem.mkdir(dir);
  }

  async syncDir(dir: string): Promise<void> {
    this.check('syncDir');
    await nodeStoreFileSystem.syncDir(dir);
  }
}

class FaultyFile implements StoreFile {
  constructor(
    private readonly inner: StoreFile,
    private readonly fs: FaultyFileSystem,
  ) {}

  async write(buf: Uint8Array, bufOffset: number, length: number, position: number): Promise<number> {
    if (this.fs.faults.get('write') === 'ENOSPC') {
      // A full disk still lets a file be overwritten inside its size; a write that extends the
      // file lands in part (what fits, and half of the rest), then fails.
      const sizeBytes = await this.inner.sizeBytes();
      if (position + length <= sizeBytes) return this.inner.write(buf, bufOffset, length, position);
      const landed = Math.max(0, sizeBytes - position) + ((length - Math.max(0, sizeBytes - position)) >> 1);
      if (landed > 0) await this.inner.write(buf, bufOffset, landed, position);
    }
    this.fs.check('write');
    return this.inner.write(buf, bufOffset, length, position);
  }

  read(buf: Uint8Array, bufOffset: number, length: number, position: number): Promise<number> {
    return this.inner.read(buf, bufOffset, length, position);
  }

  async datasync(): Promise<void> {
    this.fs.check('datasync');
    await this.inner.datasync();
  }

  datasyncNow(): void {
    this.fs.check('datasync');
    this.inner.datasyncNow();
  }

  async truncate(lengthBytes: number): Promise<void> {
    this.fs.check('truncate');
    await this.inner.truncate(lengthBytes);
  }

  sizeBytes(): Promise<number> {
    return this.inner.sizeBytes();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Resolves when `predicate` holds, checking after each event-loop turn; rejects at the deadline. */
export async function waitUntil(predicate: () => boolean, what: string, deadlineMs = 5000): Promise<void> {
  const started = Date.now();
  while (!predicate()) {
    if (Date.now() - started > deadlineMs) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}
