import assert from 'node:assert/strict';
import type { RingWriter } from '../ring/ring-writer.js';
import { RecordReader, RecordWriter } from '../ring/record-buffer.js';
import { FromShard, ToShard, PublishFlag, payloadLayout } from '../ring/shard-records.js';
import { peekDeliveryMode, peekExpiration, peekPriority } from '../amqp/content-header.js';
import type { Consumer, ShardChannel } from './consumer.js';
import type { Message } from './message.js';
import type { QueueConfig } from './queue-config.js';
import { Queue, type QueueHost } from './queue.js';
import { composeDeadLetter } from './dead-letter.js';

/** Deliveries per queue per pass, so one busy queue cannot starve the others or the ring reader. */
const deliverBudgetPerPass = 256;
/** Stop delivering while this many bytes wait outside the shard→front ring (the front is behind). */
const outPendingHighBytes = 4 * 1024 * 1024;

type Handler = (r: RecordReader) => void;

/**
 * A shard worker's queues and consumers. It reads records from the front, applies them to
 * its queues, and writes deliveries, confirms and replies back. Everything here runs on the
 * shard's own thread; nothing is shared with the front except the rings.
 */
export class Shard implements QueueHost {
  readonly queues = new Map<number, Queue>();
  private readonly consumers = new Map<number, Consumer>();
  private readonly channels = new Map<number, ShardChannel>();
  private readonly dirty = new Set<Queue>();
  private readonly w = new RecordWriter();
  private readonly deliverHeader = Buffer.allocUnsafe(21);
  private confirms = new RecordWriter();
  private confirmCount = 0;
  private nextMsgId = 1;
  private deliverScheduled = false;
  private readonly handlers = new Map<number, Handler>();

  constructor(
    readonly index: number,
    private readonly out: RingWriter,
  ) {
    const h = this.handlers;
    h.set(ToShard.queueCreate, (r) => this.onQueueCreate(r));
    h.set(ToShard.queueUpdate, (r) => this.onQueueUpdate(r));
    h.set(ToShard.queueDelete, (r) => this.onQueueDelete(r));
    h.set(ToShard.queuePurge, (r) => this.onQueuePurge(r));
    h.set(ToShard.queueStat, (r) => this.onQueueStat(r));
    h.set(ToShard.publish, (r) => this.onPublish(r));
    h.set(ToShard.consume, (r) => this.onConsume(r));
    h.set(ToShard.cancel, (r) => this.onCancel(r));
    h.set(ToShard.ack, (r) => this.onAck(r));
    h.set(ToShard.nack, (r) => this.onNack(r));
    h.set(ToShard.get, (r) => this.onGet(r));
    h.set(ToShard.channelFlow, (r) => this.onChannelFlow(r));
    h.set(ToShard.channelQos, (r) => this.onChannelQos(r));
    h.set(ToShard.queueStats, (r) => this.onQueueStats(r));
    out.onDrain = () => this.scheduleDeliver();
  }

  onRecord(kind: number, body: Buffer): void {
    const h = this.handlers.get(kind);
    assert.ok(h !== undefined, `shard ${this.index}: unknown record kind ${kind}`);
    h(new RecordReader(body));
  }

  /** After each batch of records: deliver, send confirms, publish everything to the front. */
  onBatchEnd(): void {
    this.deliverDirty();
    this.flushConfirms();
    this.out.flush();
  }

  nowMs(): number {
    return Date.now();
  }

  // ---- queues -------------------------------------------------------------

  private onQueueCreate(r: RecordReader): void {
    const config = JSON.parse(r.str()) as QueueConfig;
    assert.ok(!this.queues.has(config.queueId), `queue id ${config.queueId} already on shard ${this.index}`);
    this.queues.set(config.queueId, new Queue(config, this));
  }

  private onQueueUpdate(r: RecordReader): void {
    const config = JSON.parse(r.str()) as QueueConfig;
    this.queues.get(config.queueId)?.reconfigure(config);
  }

  private onQueueDelete(r: RecordReader): void {
    const reqId = r.u32();
    const q = this.queues.get(r.u32());
    let count = 0;
    if (q !== undefined) {
      for (const c of q.consumers) this.dropConsumer(c);
      count = q.destroy();
      this.queues.delete(q.id);
      this.dirty.delete(q);
    }
    this.reply(reqId, count, 0);
  }

  private onQueuePurge(r: RecordReader): void {
    const reqId = r.u32();
    const q = this.queues.get(r.u32());
    this.reply(reqId, q?.purge() ?? 0, 0);
  }

  private onQueueStat(r: RecordReader): void {
    const reqId = r.u32();
    const q = this.queues.get(r.u32());
    q?.touch();
    if (q !== undefined) q.expireHead();
    this.reply(reqId, q?.messageCount ?? 0, q?.consumers.length ?? 0);
  }

  /** Counters of every queue, for the management API and warrenctl. */
  private onQueueStats(r: RecordReader): void {
    const reqId = r.u32();
    const stats = [...this.queues.values()].map((q) => ({
      queueId: q.id,
      ready: q.messageCount,
      unacked: q.unacked.size,
      consumers: q.consumers.length,
      readyBytes: q.ready.bodyBytes,
      published: q.published,
      delivered: q.delivered,
      acked: q.acked,
      redelivered: q.redelivered,
    }));
    this.w.reset().u32(reqId).str(JSON.stringify(stats));
    this.out.write(FromShard.queueStats, this.w.view());
  }

  private reply(reqId: number, a: number, b: number): void {
    this.w.reset().u32(reqId).f64(a).f64(b);
    this.out.write(FromShard.reply, this.w.view());
  }

  // ---- publish ------------------------------------------------------------

  private onPublish(r: RecordReader): void {
    const channelKey = r.u32();
    const seq = r.f64();
    const flags = r.u8();
    const queueCount = r.u16();
    const idsAt = r.pos;
    r.pos += 4 * queueCount;
    // One copy out of the ring, shared (immutable) by every queue of this shard that gets it.
    const payload = Buffer.from(r.buf.subarray(r.pos));
    const layout = payloadLayout(payload);
    const props = payload.subarray(layout.propsStart, layout.propsEnd);
    const persistent = peekDeliveryMode(props) === 2;
    const priority = peekPriority(props) ?? 0;
    const expiration = peekExpiration(props);
    const bodyBytes = payload.length - layout.propsEnd;
    const now = Date.now();
    let ok = true;
    for (let i = 0; i < queueCount; i++) {
      const q = this.queues.get(r.buf.readUInt32LE(idsAt + 4 * i));
      if (q === undefined) continue;
      const ttl = messageTtlMs(expiration, q.config.messageTtlMs);
      const m: Message = {
        id: this.nextMsgId++,
        payload,
        bodyBytes,
        redelivered: false,
        deliveryCount: 0,
        priority,
        persistent,
        expiresAtMs: ttl === undefined ? 0 : now + ttl,
        enqueuedAtMs: now,
      };
      if (q.enqueue(m) === 'rejected') ok = false;
      this.dirty.add(q);
    }
    if ((flags & PublishFlag.confirm) !== 0) this.confirm(channelKey, seq, ok);
  }

  private confirm(channelKey: number, seq: number, ok: boolean): void {
    if (this.confirmCount === 0) this.confirms.reset().u32(0);
    this.confirms.u32(channelKey).f64(seq).u8(ok ? 1 : 0);
    this.confirmCount++;
  }

  private flushConfirms(): void {
    if (this.confirmCount === 0) return;
    const v = this.confirms.view();
    v.writeUInt32LE(this.confirmCount, 0);
    this.out.write(FromShard.confirms, v);
    this.confirmCount = 0;
  }

  // ---- consumers ----------------------------------------------------------

  private channel(key: number): ShardChannel {
    let ch = this.channels.get(key);
    if (ch === undefined) {
      ch = { key, flowActive: true, globalPrefetch: 0, unacked: 0, consumers: 0 };
      this.channels.set(key, ch);
    }
    return ch;
  }

  private onConsume(r: RecordReader): void {
    const id = r.u32();
    const queueId = r.u32();
    const channel = this.channel(r.u32());
    const prefetch = r.u32();
    const noAck = r.u8() === 1;
    const priority = r.f64();
    const tag = r.bytesCopy();
    const q = this.queues.get(queueId);
    if (q === undefined) {
      // Deleted while the consume was in flight: tell the front so the client hears a cancel.
      this.w.reset().u32(id);
      this.out.write(FromShard.consumerCancelled, this.w.view());
      return;
    }
    const c: Consumer = { id, queueId, channel, tag, prefetch, noAck, priority, unacked: 0 };
    channel.consumers++;
    this.consumers.set(id, c);
    q.addConsumer(c);
    this.dirty.add(q);
  }

  private onCancel(r: RecordReader): void {
    const c = this.consumers.get(r.u32());
    if (c === undefined) return;
    this.queues.get(c.queueId)?.removeConsumer(c.id);
    this.dropConsumer(c);
  }

  private dropConsumer(c: Consumer): void {
    if (!this.consumers.delete(c.id)) return;
    c.channel.consumers--;
    this.maybeForgetChannel(c.channel);
  }

  private maybeForgetChannel(ch: ShardChannel): void {
    if (ch.consumers === 0 && ch.unacked === 0 && ch.flowActive && ch.globalPrefetch === 0) this.channels.delete(ch.key);
  }

  private onChannelFlow(r: RecordReader): void {
    const ch = this.channel(r.u32());
    ch.flowActive = r.u8() === 1;
    if (ch.flowActive) this.markChannelQueuesDirty(ch);
    this.maybeForgetChannel(ch);
  }

  private onChannelQos(r: RecordReader): void {
    const ch = this.channel(r.u32());
    ch.globalPrefetch = r.u32();
    this.markChannelQueuesDirty(ch);
    this.maybeForgetChannel(ch);
  }

  private markChannelQueuesDirty(ch: ShardChannel): void {
    for (const c of this.consumers.values()) {
      if (c.channel !== ch) continue;
      const q = this.queues.get(c.queueId);
      if (q !== undefined) this.dirty.add(q);
    }
  }

  // ---- settlement ---------------------------------------------------------

  private onAck(r: RecordReader): void {
    const q = this.queues.get(r.u32());
    const n = r.u32();
    if (q === undefined) return;
    for (let i = 0; i < n; i++) q.ack(r.f64());
    this.dirty.add(q);
  }

  private onNack(r: RecordReader): void {
    const requeue = r.u8() === 1;
    const q = this.queues.get(r.u32());
    const n = r.u32();
    if (q === undefined) return;
    for (let i = 0; i < n; i++) q.nack(r.f64(), requeue);
    this.dirty.add(q);
  }

  private onGet(r: RecordReader): void {
    const reqId = r.u32();
    const q = this.queues.get(r.u32());
    const channel = this.channel(r.u32());
    const noAck = r.u8() === 1;
    const m = q?.get(channel, noAck);
    if (q === undefined || m === undefined) {
      this.w.reset().u32(reqId);
      this.out.write(FromShard.getEmpty, this.w.view());
      return;
    }
    this.w.reset().u32(reqId).u32(q.id).f64(m.id).u8(m.redelivered ? 1 : 0).u32(q.messageCount);
    this.out.write2(FromShard.getOk, this.w.view(), m.payload);
  }

  // ---- delivery -----------------------------------------------------------

  deliver(c: Consumer, q: Queue, m: Message): void {
    const h = this.deliverHeader;
    h.writeUInt32LE(c.id, 0);
    h.writeUInt32LE(q.id, 4);
    h.writeDoubleLE(m.id, 8);
    h[16] = m.redelivered ? 1 : 0;
    h.writeUInt32LE(0, 17);
    this.out.write2(FromShard.deliver, h, m.payload);
  }

  kick(q: Queue): void {
    this.dirty.add(q);
    this.scheduleDeliver();
  }

  private scheduleDeliver(): void {
    if (this.deliverScheduled) return;
    this.deliverScheduled = true;
    setImmediate(() => {
      this.deliverScheduled = false;
      this.onBatchEnd();
    });
  }

  private deliverDirty(): void {
    if (this.dirty.size === 0) return;
    if (this.out.pendingBytes > outPendingHighBytes) return; // resumes from out.onDrain
    let more = false;
    for (const q of this.dirty) {
      const n = q.deliver(deliverBudgetPerPass);
      if (n < deliverBudgetPerPass) this.dirty.delete(q);
      else more = true;
    }
    if (more) this.scheduleDeliver();
  }

  // ---- dead-lettering and expiry ------------------------------------------

  deadLetter(q: Queue, m: Message, reason: number): void {
    const dlx = q.config.deadLetterExchange;
    if (dlx === undefined) return; // dropped, as RabbitMQ does without a DLX
    const payload = composeDeadLetter(m.payload, q.config, reason, Date.now());
    this.w.reset().u32(q.id).u8(reason);
    this.out.write2(FromShard.deadLetter, this.w.view(), payload);
  }

  queueExpired(q: Queue): void {
    this.w.reset().u32(q.id);
    this.out.write(FromShard.queueExpired, this.w.view());
    this.out.flush();
  }
}

/** The effective TTL: the lower of the message's expiration property and the queue's x-message-ttl. */
function messageTtlMs(expiration: string | undefined, queueTtlMs: number | undefined): number | undefined {
  const own = expiration === undefined ? undefined : Number(expiration);
  if (own === undefined || !Number.isFinite(own)) return queueTtlMs;
  return queueTtlMs === undefined ? own : Math.min(own, queueTtlMs);
}
