/**
 * What the node is and how it is doing, for /api/nodes, /api/overview, the health checks and
 * Prometheus: listeners, memory, disk, file descriptors, alarms and ring occupancy.
 */
import { readdirSync, readFileSync, statfsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Broker } from '../front/broker.js';
import { availableMemoryBytes, defaultDiskFreeLimit, defaultMemoryWatermark, type AlarmResource, type MemoryWatermark } from '../front/resource-alarms.js';

const diskFreeLimitDefaultBytes = 'absoluteBytes' in defaultDiskFreeLimit ? defaultDiskFreeLimit.absoluteBytes : 0;

function relativeOf(w: MemoryWatermark): number {
  return 'relative' in w ? w.relative : 0;
}


/** Anything with a ring's gauges: RingWriter (front→shard) and RingReader (shard→front) both fit. */
export interface RingGauge {
  readonly name: string;
  readonly occupancyBytes: number;
  readonly capacityBytes: number;
  readonly pendingBytes?: number;
}

export interface ListenerInfo {
  protocol: string;
  port: number;
  ip: string;
}

export interface Alarm {
  node: string;
  resource: AlarmResource;
  reason: string;
}

export class NodeFacts {
  readonly startedAtMs = Date.now();
  readonly listeners: ListenerInfo[] = [];

  constructor(
    private readonly broker: Broker,
    readonly dataDir: string,
    private readonly extraRings: readonly RingGauge[],
  ) {}

  get nodeName(): string {
    return this.broker.config.nodeName;
  }

  memoryUsedBytes(): number {
    return process.memoryUsage.rss();
  }

  /** The memory alarm's limit (resource-alarms.ts); RabbitMQ's default fraction where no monitor runs (tests of the API alone). */
  memoryLimitBytes(): number {
    return this.broker.resources?.memoryLimitBytes() ?? Math.floor(availableMemoryBytes() * relativeOf(defaultMemoryWatermark));
  }

  diskFreeLimitBytes(): number {
    return this.broker.resources?.diskFreeLimitBytes() ?? diskFreeLimitDefaultBytes;
  }

  /** Free bytes on the data directory's file system (0 when it cannot be read). */
  diskFreeBytes(): number {
    try {
      const s = statfsSync(this.dataDir);
      return s.bavail * s.bsize;
    } catch {
      return 0;
    }
  }

  fdUsed(): number {
    try {
      return readdirSync('/proc/self/fd').length;
    } catch {
      return 0;
    }
  }

  fdTotal(): number {
    try {
      const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
      return m === null ? 0 : Number(m[1]);
    } catch {
      return 0;
    }
  }

  /**
   * Alarms in effect: the resource alarms (memory past its watermark, free disk under its limit),
   * and warren's own reasons to block publishers, a shard's ring staying full (counted as memory)
   * or its log not writable (disk).
   */
  alarms(): Alarm[] {
    return this.broker.alarms();
  }

  /** Every ring of the node: front→shard writers and shard→front readers. */
  rings(): RingGauge[] {
    const writers = this.broker.shards.map((s) => s.out);
    return [...writers, ...this.extraRings];
  }

  /** One /api/nodes entry, in RabbitMQ's field names, plus warren's shard details. */
  nodeEntry(): Record<string, unknown> {
    const alarms = this.alarms();
    const memUsed = this.memoryUsedBytes();
    const memLimit = this.memoryLimitBytes();
    const diskFree = this.diskFreeBytes();
    return {
      name: this.nodeName,
      type: 'disc',
      running: true,
      being_drained: false,
      os_pid: String(process.pid),
      uptime: Date.now() - this.startedAtMs,
      processors: availableParallelism(),
      run_queue: 0,
      mem_used: memUsed,
      mem_limit: memLimit,
      mem_alarm: alarms.some((a) => a.resource === 'memory'),
      disk_free: diskFree,
      disk_free_limit: this.diskFreeLimitBytes(),
      disk_free_alarm: alarms.some((a) => a.resource === 'disk'),
      fd_used: this.fdUsed(),
      fd_total: this.fdTotal(),
      sockets_used: this.broker.connections.size,
      proc_used: this.broker.shards.length + 1,
      rates_mode: 'basic',
      partitions: [],
      net_ticktime: 60,
      enabled_plugins: ['rabbitmq_management', 'rabbitmq_prometheus', 'rabbitmq_web_amqp'],
      exchange_types: exchangeTypes(),
      listeners: this.listeners.map((l) => ({ node: this.nodeName, protocol: l.protocol, ip_address: l.ip, port: l.port })),
      shards: this.broker.shards.map((s) => ({
        index: s.index,
        queues: s.queueCount,
        ring: { name: s.out.name, occupancy_bytes: s.out.occupancyBytes, capacity_bytes: s.out.capacityBytes, pending_bytes: s.out.pendingBytes },
      })),
      alarms,
    };
  }
}

export function exchangeTypes(): { name: string; description: string; enabled: boolean }[] {
  return [
    { name: 'direct', description: 'AMQP direct exchange, as per the AMQP specification', enabled: true },
    { name: 'fanout', description: 'AMQP fanout exchange, as per the AMQP specification', enabled: true },
    { name: 'headers', description: 'AMQP headers exchange, as per the AMQP specification', enabled: true },
    { name: 'topic', description: 'AMQP topic exchange, as per the AMQP specification', enabled: true },
  ];
}
