/**
 * Message rates. Every few seconds the sampler asks each shard for its queues' counters
 * (ready, unacked, published, delivered, acked, redelivered) and each connection for its
 * byte counts, keeps a bounded history, and derives rates from the last two samples — the
 * way RabbitMQ's management agent turns counters into `*_details.rate`.
 *
 * Node-wide totals are kept monotonic across queue deletion: each sample adds the growth of
 * every queue it saw before (a new queue adds its whole count), so a deleted queue's counts
 * stay in the totals. A queue created and deleted between two samples is not counted.
 */
import type { Broker } from '../front/broker.js';
import type { Connection } from '../front/connection.js';
import type { QueueStatsEntry } from '../front/shard-link.js';

/** RabbitMQ's collect_statistics_interval default. */
export const sampleIntervalMs = 5_000;
/** Ten minutes of samples: enough for the dashboard's charts, bounded whatever the uptime. */
const historyMax = 121;

export interface Totals {
  /** Gauges. */
  messages: number;
  messagesReady: number;
  messagesUnacked: number;
  /** Monotonic counters. */
  publish: number;
  deliver: number;
  ack: number;
  redeliver: number;
}

interface Sample {
  atMs: number;
  queues: Map<number, QueueStatsEntry>;
  totals: Totals;
}

export interface QueueRates {
  publish: number;
  deliver: number;
  ack: number;
  redeliver: number;
  messages: number;
  messagesReady: number;
  messagesUnacked: number;
}

interface ConnSample {
  atMs: number;
  recvBytes: number;
  sentBytes: number;
  recvRate: number;
  sendRate: number;
}

const zeroTotals = (): Totals => ({ messages: 0, messagesReady: 0, messagesUnacked: 0, publish: 0, deliver: 0, ack: 0, redeliver: 0 });

/** Counters of every queue, fresh from the shards (one request per shard). */
export async function fetchQueueStats(b: Broker): Promise<Map<number, QueueStatsEntry>> {
  const all = await Promise.all(
    b.shards.map((s) => {
      const p = s.queueStats();
      b.noteShardWrite(s, undefined);
      return p;
    }),
  );
  return new Map(all.flat().map((e) => [e.queueId, e]));
}

export class StatsSampler {
  private readonly history: Sample[] = [];
  private readonly conns = new WeakMap<Connection, ConnSample>();
  private timer: NodeJS.Timeout | undefined;
  private sampling = false;
  private stopped = false;

  constructor(
    private readonly broker: Broker,
    readonly intervalMs: number = sampleIntervalMs,
  ) {}

  start(): void {
    void this.sample();
    this.timer = setInterval(() => void this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Takes one sample (skipped while the previous one is still waiting for a shard). */
  async sample(): Promise<void> {
    if (this.sampling || this.stopped) return;
    this.sampling = true;
    try {
      const queues = await fetchQueueStats(this.broker);
      if (this.stopped) return;
      const atMs = Date.now();
      this.history.push({ atMs, queues, totals: this.totalsWith(queues) });
      if (this.history.length > historyMax) this.history.shift();
      this.sampleConnections(atMs);
    } finally {
      this.sampling = false;
    }
  }

  private sampleConnections(atMs: number): void {
    for (const c of this.broker.connections) {
      const prev = this.conns.get(c);
      const dtS = prev === undefined ? 0 : (atMs - prev.atMs) / 1000;
      this.conns.set(c, {
        atMs,
        recvBytes: c.recvBytes,
        sentBytes: c.sentBytes,
        recvRate: prev === undefined || dtS <= 0 ? 0 : (c.recvBytes - prev.recvBytes) / dtS,
        sendRate: prev === undefined || dtS <= 0 ? 0 : (c.sentBytes - prev.sentBytes) / dtS,
      });
    }
  }

  /** Totals as they would be with these fresh counters (the last sample's plus the growth since). */
  totalsWith(queues: Map<number, QueueStatsEntry>): Totals {
    const last = this.history[this.history.length - 1];
    const t = last === undefined ? zeroTotals() : { ...last.totals };
    t.messages = 0;
    t.messagesReady = 0;
    t.messagesUnacked = 0;
    for (const [id, s] of queues) {
      t.messagesReady += s.ready;
      t.messagesUnacked += s.unacked;
      const before = last?.queues.get(id);
      t.publish += grown(s.published, before?.published);
      t.deliver += grown(s.delivered, before?.delivered);
      t.ack += grown(s.acked, before?.acked);
      t.redeliver += grown(s.redelivered, before?.redelivered);
    }
    t.messages = t.messagesReady + t.messagesUnacked;
    return t;
  }

  /** Per-second rates of one queue between the last two samples (zeros until there are two). */
  queueRates(queueId: number): QueueRates {
    const [a, b] = this.lastTwo();
    const qa = a?.queues.get(queueId);
    const qb = b?.queues.get(queueId);
    if (a === undefined || b === undefined || qa === undefined || qb === undefined) {
      return { publish: 0, deliver: 0, ack: 0, redeliver: 0, messages: 0, messagesReady: 0, messagesUnacked: 0 };
    }
    const dtS = (b.atMs - a.atMs) / 1000;
    const r = (x: number, y: number): number => (dtS > 0 ? (y - x) / dtS : 0);
    return {
      publish: Math.max(0, r(qa.published, qb.published)),
      deliver: Math.max(0, r(qa.delivered, qb.delivered)),
      ack: Math.max(0, r(qa.acked, qb.acked)),
      redeliver: Math.max(0, r(qa.redelivered, qb.redelivered)),
      messages: r(qa.ready + qa.unacked, qb.ready + qb.unacked),
      messagesReady: r(qa.ready, qb.ready),
      messagesUnacked: r(qa.unacked, qb.unacked),
    };
  }

  /** Node-wide rates between the last two samples. */
  totalRates(): Totals {
    const [a, b] = this.lastTwo();
    if (a === undefined || b === undefined) return zeroTotals();
    return rateBetween(a, b);
  }

  /** The history of node-wide totals and rates, oldest first, over the last ageS seconds. */
  totalsHistory(ageS: number): { atMs: number; totals: Totals; rates: Totals }[] {
    const since = Date.now() - ageS * 1000;
    const out: { atMs: number; totals: Totals; rates: Totals }[] = [];
    for (let i = 1; i < this.history.length; i++) {
      const a = this.history[i - 1] as Sample;
      const b = this.history[i] as Sample;
      if (b.atMs < since) continue;
      out.push({ atMs: b.atMs, totals: b.totals, rates: rateBetween(a, b) });
    }
    return out;
  }

  connectionRates(c: Connection): { recv: number; send: number } {
    const s = this.conns.get(c);
    return { recv: s?.recvRate ?? 0, send: s?.sendRate ?? 0 };
  }

  private lastTwo(): [Sample | undefined, Sample | undefined] {
    const n = this.history.length;
    return [this.history[n - 2], this.history[n - 1]];
  }
}

function grown(now: number, before: number | undefined): number {
  return Math.max(0, now - (before ?? 0));
}

function rateBetween(a: Sample, b: Sample): Totals {
  const dtS = (b.atMs - a.atMs) / 1000;
  const r = (k: keyof Totals): number => (dtS > 0 ? (b.totals[k] - a.totals[k]) / dtS : 0);
  return {
    messages: r('messages'),
    messagesReady: r('messagesReady'),
    messagesUnacked: r('messagesUnacked'),
    publish: Math.max(0, r('publish')),
    deliver: Math.max(0, r('deliver')),
    ack: Math.max(0, r('ack')),
    redeliver: Math.max(0, r('redeliver')),
  };
}
