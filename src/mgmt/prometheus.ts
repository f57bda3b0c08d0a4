/**
 * Prometheus metrics (GET /metrics on the Prometheus listener), with prom-client. Names
 * follow RabbitMQ's rabbitmq_prometheus plugin where it has a counterpart
 * (rabbitmq_queue_messages_ready, rabbitmq_connections, rabbitmq_global_messages_*_total,
 * rabbitmq_process_resident_memory_bytes, ...); warren's own are warren_*: shard count, ring
 * occupancy per ring, and the HDR latency histograms (fsync, publish→confirm, ...) exported
 * as Prometheus histograms. Values are read fresh at each scrape.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { Histogram as HdrHistogram } from 'hdr-histogram-js';
import type { LatencyStage } from '../metrics/latency.js';
import { warrenVersion } from '../node/version.js';
import { countAtOrBelow, stageHistograms } from './hdr-view.js';
import type { Mgmt } from './router.js';
import { fetchQueueStats } from './stats-sampler.js';

/** Bucket bounds (seconds) for the latency histograms: 50 µs to 10 s, roughly 1-2.5-5 steps. */
const latencyBucketsS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Prometheus label value escaping (text format 0.0.4): backslash, double quote, newline. */
function labelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/**
 * The HDR histograms as one Prometheus histogram family, labelled by stage. prom-client's
 * Histogram only counts what observe() saw; these buckets are read from HDR histograms (the
 * cumulative count at each bound), so the family is written in the text format directly.
 */
export function hdrHistogramText(name: string, help: string, byStage: Map<LatencyStage, HdrHistogram>): string {
  const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`];
  for (const [stage, h] of byStage) {
    const st = labelValue(stage);
    for (const bound of latencyBucketsS) lines.push(`${name}_bucket{stage="${st}",le="${bound}"} ${countAtOrBelow(h, bound * 1e6)}`);
    lines.push(`${name}_bucket{stage="${st}",le="+Inf"} ${h.totalCount}`);
    lines.push(`${name}_sum{stage="${st}"} ${h.totalCount === 0 ? 0 : (h.mean * h.totalCount) / 1e6}`);
    lines.push(`${name}_count{stage="${st}"} ${h.totalCount}`);
  }
  return `${lines.join('\n')}\n`;
}

export class PrometheusMetrics {
  private readonly registry = new Registry();
  private scrapeChain: Promise<unknown> = Promise.resolve();
  private readonly g: Record<string, Gauge> = {};
  private readonly c: Record<string, Counter> = {};

  constructor(private readonly m: Mgmt) {
    const gauge = (name: string, help: string, labelNames: string[] = []): void => {
      this.g[name] = new Gauge({ name, help, labelNames, registers: [this.registry] });
    };
    const counter = (name: string, help: string): void => {
      this.c[name] = new Counter({ name, help, registers: [this.registry] });
    };
    gauge('rabbitmq_identity_info', 'RabbitMQ node & cluster identity info', ['rabbitmq_node', 'rabbitmq_cluster', 'rabbitmq_endpoint']);
    gauge('rabbitmq_build_info', 'RabbitMQ & Erlang/OTP version info (here: warren & Node.js)', ['rabbitmq_version', 'prometheus_plugin_version', 'erlang_version', 'product_name']);
    gauge('rabbitmq_queue_messages_ready', 'Messages ready to be delivered to consumers', ['vhost', 'queue']);
    gauge('rabbitmq_queue_messages_unacked', 'Messages delivered to consumers but not yet acknowledged', ['vhost', 'queue']);
    gauge('rabbitmq_queue_messages', 'Sum of ready and unacknowledged messages - total queue depth', ['vhost', 'queue']);
    gauge('rabbitmq_queue_messages_ready_bytes', 'Size in bytes of ready messages', ['vhost', 'queue']);
    gauge('rabbitmq_queue_consumers', 'Consumers on a queue', ['vhost', 'queue']);
    gauge('rabbitmq_queues', 'Queues available');
    gauge('rabbitmq_connections', 'Connections currently open');
    gauge('rabbitmq_channels', 'Channels currently open');
    gauge('rabbitmq_consumers', 'Consumers currently connected');
    gauge('rabbitmq_process_resident_memory_bytes', 'Memory used in bytes');
    gauge('rabbitmq_resident_memory_limit_bytes', 'Memory high watermark in bytes');
    gauge('rabbitmq_disk_space_available_bytes', 'Disk space available in bytes');
    gauge('rabbitmq_disk_space_available_limit_bytes', 'Free disk space low watermark in bytes');
    gauge('rabbitmq_process_open_fds', 'Open file descriptors');
    gauge('rabbitmq_process_max_fds', 'Open file descriptors limit');
    gauge('rabbitmq_alarms_memory_used_watermark', 'is 1 if VM memory watermark alarm is in effect');
    gauge('rabbitmq_alarms_free_disk_space_watermark', 'is 1 if free disk space watermark alarm is in effect');
    gauge('warren_shards', 'Shard worker threads owning queues');
    gauge('warren_shard_queues', 'Queues placed on each shard', ['shard']);
    gauge('warren_ring_occupancy_bytes', 'Bytes written to a ring and not yet freed by its reader', ['ring']);
    gauge('warren_ring_capacity_bytes', 'Capacity of a ring in bytes', ['ring']);
    gauge('warren_ring_pending_bytes', 'Bytes waiting outside a full ring (front to shard rings)', ['ring']);
    counter('rabbitmq_global_messages_received_total', 'Total number of messages received from publishers (counted per queue they reached)');
    counter('rabbitmq_global_messages_routed_total', 'Total number of messages routed to queues');
    counter('rabbitmq_global_messages_delivered_total', 'Total number of messages delivered to consumers (deliveries and gets)');
    counter('rabbitmq_global_messages_acknowledged_total', 'Total number of messages acknowledged by consumers');
    counter('rabbitmq_global_messages_redelivered_total', 'Total number of messages redelivered to consumers');
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text exposition; scrapes run one at a time (each resets and refills the gauges). */
  scrape(): Promise<string> {
    const next = this.scrapeChain.then(() => this.collect());
    this.scrapeChain = next.catch(() => undefined);
    return next;
  }

  private async collect(): Promise<string> {
    const b = this.m.broker;
    const facts = this.m.facts;
    const stats = await fetchQueueStats(b);
    for (const x of Object.values(this.g)) x.reset();
    const set = (name: string, value: number, labels?: Record<string, string | number>): void => {
      const gauge = this.g[name];
      if (gauge === undefined) return;
      if (labels === undefined) gauge.set(value);
      else gauge.set(labels, value);
    };
    set('rabbitmq_identity_info', 1, { rabbitmq_node: b.config.nodeName, rabbitmq_cluster: b.config.clusterName, rabbitmq_endpoint: 'metrics' });
    set('rabbitmq_build_info', 1, { rabbitmq_version: '3.13.0', prometheus_plugin_version: warrenVersion, erlang_version: process.version, product_name: 'warren' });
    let queues = 0;
    let consumers = 0;
    for (const v of b.vhosts.values()) {
      for (const q of v.queues.values()) {
        const s = stats.get(q.queueId);
        const labels = { vhost: v.name, queue: q.name };
        queues++;
        consumers += q.consumers.size;
        set('rabbitmq_queue_messages_ready', s?.ready ?? 0, labels);
        set('rabbitmq_queue_messages_unacked', s?.unacked ?? 0, labels);
        set('rabbitmq_queue_messages', (s?.ready ?? 0) + (s?.unacked ?? 0), labels);
        set('rabbitmq_queue_messages_ready_bytes', s?.readyBytes ?? 0, labels);
        set('rabbitmq_queue_consumers', q.consumers.size, labels);
      }
    }
    const open = [...b.connections].filter((c) => c.state !== 'header');
    set('rabbitmq_queues', queues);
    set('rabbitmq_consumers', consumers);
    set('rabbitmq_connections', open.length);
    set('rabbitmq_channels', open.reduce((n, c) => n + c.channels.size, 0));
    set('rabbitmq_process_resident_memory_bytes', facts.memoryUsedBytes());
    set('rabbitmq_resident_memory_limit_bytes', facts.memoryLimitBytes());
    set('rabbitmq_disk_space_available_bytes', facts.diskFreeBytes());
    set('rabbitmq_disk_space_available_limit_bytes', facts.diskFreeLimitBytes());
    set('rabbitmq_process_open_fds', facts.fdUsed());
    set('rabbitmq_process_max_fds', facts.fdTotal());
    const alarms = facts.alarms();
    set('rabbitmq_alarms_memory_used_watermark', alarms.some((a) => a.resource === 'memory') ? 1 : 0);
    set('rabbitmq_alarms_free_disk_space_watermark', alarms.some((a) => a.resource === 'disk') ? 1 : 0);
    set('warren_shards', b.shards.length);
    for (const s of b.shards) set('warren_shard_queues', s.queueCount, { shard: s.index });
    for (const r of facts.rings()) {
      set('warren_ring_occupancy_bytes', r.occupancyBytes, { ring: r.name });
      set('warren_ring_capacity_bytes', r.capacityBytes, { ring: r.name });
      if (r.pendingBytes !== undefined) set('warren_ring_pending_bytes', r.pendingBytes, { ring: r.name });
    }
    const totals = this.m.sampler.totalsWith(stats);
    const count = (name: string, value: number): void => {
      const counter = this.c[name];
      if (counter === undefined) return;
      counter.reset();
      counter.inc(value);
    };
    count('rabbitmq_global_messages_received_total', totals.publish);
    count('rabbitmq_global_messages_routed_total', totals.publish);
    count('rabbitmq_global_messages_delivered_total', totals.deliver);
    count('rabbitmq_global_messages_acknowledged_total', totals.ack);
    count('rabbitmq_global_messages_redelivered_total', totals.redeliver);
    const latency = stageHistograms(await b.collectLatency());
    const text = await this.registry.metrics();
    return `${text}\n${hdrHistogramText('warren_latency_seconds', 'Broker-side latency per stage, from the HDR histograms of the front and every shard (publish_to_confirm, ring_transit, fsync, enqueue_to_deliver)', latency)}`;
  }
}
