/**
 * RabbitMQ's resource alarms: vm_memory_high_watermark and disk_free_limit. The node watches
 * its resident memory and the free space of its data directory's file system; while either is
 * past its limit the broker blocks the connections that publish (broker.ts: connection.blocked,
 * then their sockets are not read) and consumers keep draining, which is what clears a memory
 * alarm. Limits are set by flags at start and changed at run time by warrenctl's
 * set_vm_memory_high_watermark and set_disk_free_limit, as with rabbitmqctl.
 */
import { statfs } from 'node:fs/promises';
import { totalmem } from 'node:os';

export type AlarmResource = 'memory' | 'disk';

/** A fraction of the machine's (or cgroup's) memory, or an absolute number of bytes. */
export type MemoryWatermark = { relative: number } | { absoluteBytes: number };

/** A number of bytes, or a multiple of the total memory (RabbitMQ's disk_free_limit.relative). */
export type DiskFreeLimit = { absoluteBytes: number } | { memRelative: number };

/** RabbitMQ's defaults: 0.4 of the memory, and 50 MB of free disk. */
export const defaultMemoryWatermark: MemoryWatermark = { relative: 0.4 };
export const defaultDiskFreeLimit: DiskFreeLimit = { absoluteBytes: 50_000_000 };

/** The connection.blocked reasons RabbitMQ 3.10 sends (measured). */
export const alarmBlockReason: Record<AlarmResource, string> = { memory: 'low on memory', disk: 'low on disk' };

/** How often memory and free disk are read: RabbitMQ reads memory every 2.5 s; a statfs and an RSS read cost microseconds. */
const checkIntervalMsDefault = 1_000;

/** rabbitmq.conf's units: k/kiB, M/MiB, G/GiB are powers of two; kB, MB, GB powers of ten. */
const unitBytes: Record<string, number> = {
  '': 1,
  k: 2 ** 10,
  kiB: 2 ** 10,
  M: 2 ** 20,
  MiB: 2 ** 20,
  G: 2 ** 30,
  GiB: 2 ** 30,
  kB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
};

/** "50000000", "50MB", "512MiB", "1.5GB" → bytes; undefined when it is not a size. */
export function parseByteSize(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(text.trim());
  if (m === null) return undefined;
  const unit = unitBytes[m[2] ?? ''];
  if (unit === undefined) return undefined;
  const bytes = Math.floor(Number(m[1]) * unit);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** "0.4" (a fraction of the memory, 0..1) or "2GB" (absolute); undefined when it is neither. */
export function parseMemoryWatermark(text: string): MemoryWatermark | undefined {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) {
    const relative = Number(t);
    return relative >= 0 && relative <= 1 ? { relative } : undefined;
  }
  const absoluteBytes = parseByteSize(t);
  return absoluteBytes === undefined ? undefined : { absoluteBytes };
}

/** "50MB", "50000000" (absolute) or "mem_relative 1.5"; undefined when it is neither. */
export function parseDiskFreeLimit(text: string): DiskFreeLimit | undefined {
  const rel = /^mem_relative\s+(\d+(?:\.\d+)?)$/.exec(text.trim());
  if (rel !== null) return { memRelative: Number(rel[1]) };
  const absoluteBytes = parseByteSize(text);
  return absoluteBytes === undefined ? undefined : { absoluteBytes };
}

export function describeMemoryWatermark(w: MemoryWatermark): string {
  return 'relative' in w ? String(w.relative) : `${w.absoluteBytes} bytes`;
}

export function describeDiskFreeLimit(l: DiskFreeLimit): string {
  return 'memRelative' in l ? `${l.memRelative} times the total RAM` : `${l.absoluteBytes} bytes`;
}

/** The memory the node may count on: the machine's, or its cgroup's limit when lower. */
export function availableMemoryBytes(): number {
  const machine = totalmem();
  const constrained = (process as { constrainedMemory?: () => number | undefined }).constrainedMemory?.();
  return constrained !== undefined && constrained > 0 && constrained < machine ? constrained : machine;
}

export interface ResourceMonitorOptions {
  dataDir: string;
  nodeName: string;
  memoryWatermark: MemoryWatermark;
  diskFreeLimit: DiskFreeLimit;
  /** An alarm was set (active) or cleared; reason is connection.blocked's. */
  onAlarm: (resource: AlarmResource, active: boolean, reason: string) => void;
  log: { info(m: string): void; warn(m: string): void };
  checkIntervalMs?: number;
  /** For tests: what is read instead of process RSS and statfs. */
  readMemoryBytes?: () => number;
}

export class ResourceMonitor {
  private memoryWatermarkValue: MemoryWatermark;
  private diskFreeLimitValue: DiskFreeLimit;
  private readonly active = new Set<AlarmResource>();
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  private diskFree: number | undefined;
  private diskUnreadableSaid = false;

  constructor(private readonly opts: ResourceMonitorOptions) {
    this.memoryWatermarkValue = opts.memoryWatermark;
    this.diskFreeLimitValue = opts.diskFreeLimit;
  }

  get memoryWatermark(): MemoryWatermark {
    return this.memoryWatermarkValue;
  }

  get diskFreeLimit(): DiskFreeLimit {
    return this.diskFreeLimitValue;
  }

  memoryUsedBytes(): number {
    return this.opts.readMemoryBytes?.() ?? process.memoryUsage.rss();
  }

  memoryLimitBytes(): number {
    const w = this.memoryWatermarkValue;
    return 'relative' in w ? Math.floor(availableMemoryBytes() * w.relative) : w.absoluteBytes;
  }

  diskFreeLimitBytes(): number {
    const l = this.diskFreeLimitValue;
    return 'memRelative' in l ? Math.floor(availableMemoryBytes() * l.memRelative) : l.absoluteBytes;
  }

  /** Free bytes at the last check (undefined before the first, or when statfs fails). */
  get diskFreeBytes(): number | undefined {
    return this.diskFree;
  }

  isActive(resource: AlarmResource): boolean {
    return this.active.has(resource);
  }

  /** The alarms in effect, memory first. */
  activeResources(): AlarmResource[] {
    return (['memory', 'disk'] as const).filter((r) => this.active.has(r));
  }

  /** Checks at once, then every checkIntervalMs. */
  async start(): Promise<void> {
    await this.check();
    this.timer = setInterval(() => void this.check(), this.opts.checkIntervalMs ?? checkIntervalMsDefault);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** set_vm_memory_high_watermark: takes effect at once (the alarm is re-evaluated before this resolves). */
  async setMemoryWatermark(w: MemoryWatermark): Promise<void> {
    this.memoryWatermarkValue = w;
    this.opts.log.info(`memory high watermark set to ${describeMemoryWatermark(w)}: ${this.memoryLimitBytes()} bytes`);
    await this.check();
  }

  /** set_disk_free_limit: takes effect at once. */
  async setDiskFreeLimit(l: DiskFreeLimit): Promise<void> {
    this.diskFreeLimitValue = l;
    this.opts.log.info(`disk free limit set to ${describeDiskFreeLimit(l)}: ${this.diskFreeLimitBytes()} bytes`);
    await this.check();
  }

  /** One reading of both resources; concurrent callers share it, and a caller during one waits for the next. */
  async check(): Promise<void> {
    while (this.checking !== undefined) await this.checking;
    this.checking = this.readAndApply().finally(() => (this.checking = undefined));
    await this.checking;
  }

  private async readAndApply(): Promise<void> {
    const used = this.memoryUsedBytes();
    const limit = this.memoryLimitBytes();
    this.apply('memory', used > limit, `memory used ${used} bytes, allowed ${limit} bytes`);
    try {
      const s = await statfs(this.opts.dataDir);
      this.diskFree = s.bavail * s.bsize;
      this.diskUnreadableSaid = false;
    } catch (error: unknown) {
      // As RabbitMQ's disk monitor: a free space it cannot read sets no alarm (nor clears one), and is said once.
      this.diskFree = undefined;
      if (!this.diskUnreadableSaid) this.opts.log.warn(`cannot read the free disk space of ${this.opts.dataDir} (${error instanceof Error ? error.message : String(error)}): no disk alarm until it can`);
      this.diskUnreadableSaid = true;
    }
    const free = this.diskFree;
    // Unreadable: the alarm stays as it was (set by a low reading, it is not cleared by a failed one).
    if (free === undefined) return;
    const freeLimit = this.diskFreeLimitBytes();
    this.apply('disk', free < freeLimit, `free disk space ${free} bytes, limit ${freeLimit} bytes`);
  }

  private apply(resource: AlarmResource, over: boolean, detail: string): void {
    if (over === this.active.has(resource)) return;
    const what = resource === 'memory' ? 'memory' : 'disk';
    if (over) {
      this.active.add(resource);
      this.opts.log.warn(`${what} resource limit alarm set on node ${this.opts.nodeName} (${detail}). Publishers will be blocked until this alarm clears`);
    } else {
      this.active.delete(resource);
      this.opts.log.info(`${what} resource limit alarm cleared on node ${this.opts.nodeName} (${detail})`);
    }
    this.opts.onAlarm(resource, over, alarmBlockReason[resource]);
  }
}
