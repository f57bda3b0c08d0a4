import assert from 'node:assert/strict';
import type { RingWriter } from '../ring/ring-writer.js';
import { RecordReader, RecordWriter } from '../ring/record-buffer.js';
import { FromShard, ToShard, PublishFlag, payloadLayout } from '../ring/shard-records.js';
import { peekDeliveryMode, peekExpiration, peekPriority } from '../amqp/content-header.js';
import type { Consumer, ShardChannel } from './consumer.js';
import type { Message } from './message.js';
import type { QueueConfig } from './queue-config.js';
import { Queue, type EnqueueResult, type QueueHost } from './queue.js';
import { withDeliveryCount } from './delivery-count.js';
import { composeDeadLetter } from './dead-letter.js';
import type { ShardStore } from './shard-store.js';
import { Pager } from './pager.js';
import { newPagedEntry, type PagedEntry } from './paged-tail.js';
import type { PageHost } from './ready-list.js';
import { LatencyRecorder, recordUs } from '../metrics/latency.js';
import type { Histogram } from 'hdr-histogram-js';
import { ReplicatedQueues, type ConfirmGate } from './replicated-queues.js';

/** A confirm held back until the log record of its message is on disk. */
interface DurableConfirm {
  offset: number;
  channelKey: number;
  seq: number;
  ok: boolean;
  /** Set when the confirm also waits for replicated queues' watermarks. */
  gate: ConfirmGate | undefined;
}

/**
 * Flow control (RabbitMQ's "flow" state): while a queue that has consumers holds more than
 * this many ready messages, the front stops reading from the sockets publishing into this
 * shard, so publishers cannot outrun consumers without bound and leave them no CPU.
 */
const flowHighMessages = 20_000;
const flowLowMessages = 10_000;
/** Deliveries per queue per pass, so one busy queue cannot starve the others or the ring reader. */
const deliverBudgetPerPass = 256;
/** Stop delivering while this many bytes wait outside the shard→front ring (the front is behind). */
const outPendingHighBytes = 4 * 1024 * 1024;
/**
 * Stop reading the replicator's ring while this many bytes of the log are appended but not yet
 * written (imports past the budget arrive faster than the disk takes them), until under the low mark.
 */
const logBacklogHighBytes = 16 * 1024 * 1024;
const logBacklogLowBytes = 4 * 1024 * 1024;

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
  private readonly durableConfirms: DurableConfirm[] = [];
  private durableConfirmsHead = 0;
  private commitInFlight = false;
  private commitAgain = false;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Set while the log cannot be written (disk full, I/O error): the reason, reported to the front. */
  storeFailure: string | undefined;
  private deliverScheduled = false;
  private readonly handlers = new Map<number, Handler>();
  readonly latency = new LatencyRecorder();
  private readonly ringTransit = this.latency.get('ring_transit');
  private readonly deliverLatency = new Map<number, Histogram>();
  private readonly congested = new Set<Queue>();
  /** Keeps ready messages past the memory budget on disk (only with a log). */
  readonly pager: Pager | undefined;
  /** Replicated queues this node leads (cluster mode only). */
  readonly replicated: ReplicatedQueues | undefined;
  /** Queues dropped because this node stopped leading them: a publish still routed here is refused, never confirmed. */
  private readonly deposed = new Set<number>();
  /** whenLogCaughtUp callers. */
  private logWaiters: (() => void)[] = [];

  constructor(
    readonly index: number,
    private readonly out: RingWriter,
    private readonly store: ShardStore | undefined,
    private readonly log: (level: 'info' | 'warn' | 'error', msg: string) => void = () => {},
    private readonly flow: Int32Array = new Int32Array(1),
    /** This shard's share of --queue-memory-mb. */
    queueMemoryBytes = Number.POSITIVE_INFINITY,
    /** The ring to the replicator worker (cluster mode). */
    toReplicator?: RingWriter,
  ) {
    this.replicated =
      toReplicator === undefined
        ? undefined
        : new ReplicatedQueues(toReplicator, {
            accept: (queueId, m) => this.acceptCommitted(queueId, m),
            importMessage: (queueId, msgId, expiresAtMs, redelivered, payload) => this.importMessage(queueId, msgId, expiresAtMs, redelivered, payload),
            holdImport: (queueId, msgId, expiresAtMs, redelivered, payload, heldBytes, paging) =>
              this.pager?.holdImport(queueId, this.importedMessage(msgId, payload, expiresAtMs, redelivered), heldBytes, paging),
            importPaged: (queueId, e) => this.importPaged(queueId, e),
            dropHeld: (e) => this.pager?.dropHeld(e),
            releaseGate: (gate, ok) => this.releaseGate(gate, ok),
            log,
          });
    this.pager =
      store === undefined
        ? undefined
        : new Pager(queueMemoryBytes, store, {
            kick: (q) => this.kick(q),
            deadLetter: (q, m, reason) => this.deadLetterNow(q, m, reason),
            settleReplicated: (q, msgId) => this.replicated?.settle(q.id, msgId),
            log,
          });
    if (store !== undefined) {
      this.nextMsgId = store.maxMsgId + 1;
      store.log.onFlushed = (flushed) => {
        // batch-ms syncs on a timer, outside any ring batch: send what it released now.
        this.releaseDurableConfirms(flushed);
        this.out.flush();
      };
      const fsyncHist = this.latency.get('fsync');
      store.log.onFsync = (ms) => recordUs(fsyncHist, ms * 1000);
    }
    const h = this.handlers;
    h.set(ToShard.queueCreate, (r) => this.onQueueCreate(r));
    h.set(ToShard.queueUpdate, (r) => this.onQueueUpdate(r));
    h.set(ToShard.queueDelete, (r) => this.onQueueDelete(r));
    h.set(ToShard.queueDrop, (r) => this.onQueueDrop(r));
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
    h.set(ToShard.channelKick, (r) => {
      const ch = this.channels.get(r.u32());
      if (ch !== undefined) this.markChannelQueuesDirty(ch);
    });
    h.set(ToShard.queueStats, (r) => this.onQueueStats(r));
    h.set(ToShard.latency, (r) => {
      this.w.reset().u32(r.u32()).str(JSON.stringify(this.latency.export()));
      this.out.write(FromShard.latency, this.w.view());
    });
    h.set(ToShard.recoveryDone, () => {
      const dropped = this.store?.dropUnclaimed() ?? 0;
      if (dropped > 0) this.log('info', `dropped ${dropped} logged message(s) of queues that no longer exist`);
    });
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
    if (this.congested.size > 0) this.updateFlow();
    this.flushConfirms();
    if (this.store !== undefined && this.store.flushBatches()) this.commit();
    this.replicated?.flush();
    this.out.flush();
  }

  /** Too much of the log waits to be written: the replicator's ring is not read meanwhile (worker.ts). */
  get logBacklogged(): boolean {
    return (this.store?.log.pendingBytes ?? 0) > logBacklogHighBytes;
  }

  /** Resolves once the log's unwritten appends are under the low mark. */
  whenLogCaughtUp(): Promise<void> {
    if ((this.store?.log.pendingBytes ?? 0) <= logBacklogLowBytes) return Promise.resolve();
    this.commit();
    return new Promise((resolve) => this.logWaiters.push(resolve));
  }

  private wakeLogWaiters(): void {
    if (this.logWaiters.length === 0 || (this.store?.log.pendingBytes ?? 0) > logBacklogLowBytes) return;
    const waiters = this.logWaiters;
    this.logWaiters = [];
    for (const wake of waiters) wake();
  }

  /** A record from the replicator worker (commit watermarks, imported messages). */
  onReplicatorRecord(kind: number, body: Buffer): void {
    this.replicated?.onRecord(kind, body);
  }

  /** A committed message of a replicated queue enters it. */
  private acceptCommitted(queueId: number, m: Message): boolean {
    const q = this.queues.get(queueId);
    if (q === undefined) return true; // deleted meanwhile: nothing to refuse
    this.dirty.add(q);
    return this.enqueueReplicated(q, m) !== 'rejected';
  }

  /** Past the memory budget a replicated queue's message waits in this shard's log (its durable copy is the replica log). */
  private enqueueReplicated(q: Queue, m: Message): EnqueueResult {
    const pager = this.pager;
    if (pager === undefined || !pager.mustPageOut(q, m.priority)) return q.enqueue(m);
    return q.enqueue(m, (msg) => pager.toDiskReplicated(q.id, msg));
  }

  /** A live message of a replicated queue's log, handed over when this node begins to lead it. */
  private importMessage(queueId: number, msgId: number, expiresAtMs: number, redelivered: boolean, payload: Buffer): void {
    const q = this.queues.get(queueId);
    if (q === undefined) return;
    if (msgId >= this.nextMsgId) this.nextMsgId = msgId + 1; // ids stay unique within the queue's log
    this.enqueueReplicated(q, this.importedMessage(msgId, payload, expiresAtMs, redelivered));
    q.scheduleTtl();
    this.dirty.add(q);
  }

  private importedMessage(msgId: number, payload: Buffer, expiresAtMs: number, redelivered: boolean): Message {
    const m = this.newMessage(msgId, payload, expiresAtMs);
    m.redelivered = redelivered;
    m.persisted = true;
    return m;
  }

  /** An import held on disk while its queue did not exist (replicated-queues.ts) joins it. */
  private importPaged(queueId: number, e: PagedEntry): void {
    const q = this.queues.get(queueId);
    if (q === undefined) {
      this.pager?.dropHeld(e);
      return;
    }
    if (e.id >= this.nextMsgId) this.nextMsgId = e.id + 1;
    q.ready.appendPaged(e);
    q.published++;
    q.scheduleTtl();
    this.dirty.add(q);
  }

  private newMessage(id: number, payload: Buffer, expiresAtMs: number): Message {
    const layout = payloadLayout(payload);
    const props = payload.subarray(layout.propsStart, layout.propsEnd);
    return {
      id,
      payload,
      bodyBytes: payload.length - layout.propsEnd,
      redelivered: false,
      deliveryCount: 0,
      priority: peekPriority(props) ?? 0,
      persistent: peekDeliveryMode(props) === 2,
      expiresAtMs,
      enqueuedAtMs: performance.now(),
      persisted: false,
    };
  }

  private releaseGate(gate: ConfirmGate, ok: boolean): void {
    if (!ok) gate.ok = false;
    if (--gate.remaining === 0) this.confirm(gate.channelKey, gate.seq, gate.ok);
  }

  private updateFlow(): void {
    for (const q of this.congested) {
      if (q.deleted || q.consumers.length === 0 || q.ready.length <= flowLowMessages) this.congested.delete(q);
    }
    if (this.congested.size === 0) Atomics.store(this.flow, 0, 0);
  }

  /** Group commit: one write (and fdatasync, per policy) for everything appended since the last one. */
  private commit(): void {
    const store = this.store;
    if (store === undefined) return;
    if (this.commitInFlight) {
      this.commitAgain = true;
      return;
    }
    this.commitInFlight = true;
    // fdatasync now only for a publisher waiting on a confirm; acks, deliveries and publishes
    // without a confirm are written now and synced soon after (segment-log.ts deferredSyncMs).
    store.commit(this.durableConfirmsHead < this.durableConfirms.length).then(
      () => {
        this.commitInFlight = false;
        if (this.storeFailure !== undefined) this.reportStoreRecovered();
        // Under batch-ms commit() resolves after the write; only flushedOffset says what is on disk.
        this.releaseDurableConfirms(store.log.flushedOffset);
        this.wakeLogWaiters();
        if (this.commitAgain || store.flushBatches()) {
          this.commitAgain = false;
          this.commit();
        }
        this.out.flush();
      },
      (err: unknown) => {
        this.commitInFlight = false;
        this.onStoreFailure(err);
      },
    );
  }

  private releaseDurableConfirms(flushed: number): void {
    const list = this.durableConfirms;
    let i = this.durableConfirmsHead;
    while (i < list.length && (list[i] as DurableConfirm).offset <= flushed) {
      const c = list[i] as DurableConfirm;
      if (c.gate !== undefined) this.releaseGate(c.gate, c.ok);
      else this.confirm(c.channelKey, c.seq, c.ok);
      i++;
    }
    this.durableConfirmsHead = i;
    if (i > 1024 && i * 2 > list.length) {
      list.splice(0, i);
      this.durableConfirmsHead = 0;
    }
    this.flushConfirms();
  }

  /** Disk full or I/O error: publishers waiting for these records get nacks; the front blocks publishers. */
  private onStoreFailure(err: unknown): void {
    const reason = `shard ${this.index} log write failed: ${err instanceof Error ? err.message : String(err)}`;
    const list = this.durableConfirms;
    for (let i = this.durableConfirmsHead; i < list.length; i++) {
      const c = list[i] as DurableConfirm;
      if (c.gate !== undefined) this.releaseGate(c.gate, false);
      else this.confirm(c.channelKey, c.seq, false);
    }
    list.length = 0;
    this.durableConfirmsHead = 0;
    this.flushConfirms();
    if (this.storeFailure === undefined) {
      this.storeFailure = reason;
      this.w.reset().u8(1).str(reason);
      this.out.write(FromShard.error, this.w.view());
    }
    this.out.flush();
    // Retry (one timer at a time): space may come back; consumers keep draining meanwhile.
    if (this.retryTimer === undefined) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.commit();
      }, 1000);
      this.retryTimer.unref();
    }
  }

  private reportStoreRecovered(): void {
    this.storeFailure = undefined;
    this.w.reset().u8(0).str('');
    this.out.write(FromShard.error, this.w.view());
  }

  nowMs(): number {
    return Date.now();
  }

  // ---- queues -------------------------------------------------------------

  private onQueueCreate(r: RecordReader): void {
    const config = JSON.parse(r.str()) as QueueConfig;
    assert.ok(!this.queues.has(config.queueId), `queue id ${config.queueId} already on shard ${this.index}`);
    const q = new Queue(config, this);
    this.queues.set(config.queueId, q);
    this.deposed.delete(config.queueId);
    if (config.replicated !== undefined) {
      assert.ok(this.replicated !== undefined, `queue ${config.name} is replicated, but shard ${this.index} has no replicator`);
      this.replicated.open(config.queueId, config.replicated.nextOffset);
    } else if (this.store !== undefined) {
      // A durable queue re-declared at start-up takes back what the log held for it, as
      // messages on disk: they are read back as the queue drains, however many there are.
      const e: PagedEntry = newPagedEntry();
      e.enqueuedAtMs32 = performance.now() >>> 0;
      this.store.takeRecovered(config.queueId, e, (entry) => q.ready.appendPaged(entry));
      q.scheduleTtl();
      this.dirty.add(q);
    }
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
      count = q.messageCount;
      if (this.replicated?.has(q.id) === true) this.replicated.deleteQueue(q.id);
      else if (this.store !== undefined && q.config.durable) this.store.deleteQueue(q.id, q.messageIds());
      q.destroy();
      this.queues.delete(q.id);
      this.deliverLatency.delete(q.id);
      this.latency.forget('enqueue_to_deliver', queueKey(q));
      this.dirty.delete(q);
      this.pager?.runWaiters(q); // gets waiting for its head now find no queue
    }
    this.reply(reqId, count, 0);
  }

  /**
   * The queue leaves this shard without a trace in any log: this node stopped leading a
   * replicated queue (its new leader has the log). The front tells its consumers.
   */
  private onQueueDrop(r: RecordReader): void {
    const q = this.queues.get(r.u32());
    if (q === undefined) return;
    this.replicated?.forget(q.id);
    this.deposed.add(q.id);
    for (const c of q.consumers) this.dropConsumer(c);
    q.destroy();
    this.queues.delete(q.id);
    this.deliverLatency.delete(q.id);
    this.dirty.delete(q);
  }

  private onQueuePurge(r: RecordReader): void {
    const reqId = r.u32();
    const q = this.queues.get(r.u32());
    this.reply(reqId, q?.purge() ?? 0, 0);
    if (q !== undefined) this.pager?.runWaiters(q);
  }

  private onQueueStat(r: RecordReader): void {
    const reqId = r.u32();
    const q = this.queues.get(r.u32());
    q?.settleArrivals();
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
      dropped: q.dropped,
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
    recordUs(this.ringTransit, (performance.timeOrigin + performance.now() - r.f64()) * 1000);
    const queueCount = r.u16();
    const idsAt = r.pos;
    r.pos += 4 * queueCount;
    // One copy out of the ring, shared (immutable) by every queue of this shard that keeps it in
    // memory; a queue that pages it to disk logs it straight from the ring (pageOut, below).
    const ringPayload = r.buf.subarray(r.pos);
    let payload: Buffer | undefined;
    const layout = payloadLayout(ringPayload);
    const props = ringPayload.subarray(layout.propsStart, layout.propsEnd);
    const persistent = peekDeliveryMode(props) === 2;
    const priority = peekPriority(props) ?? 0;
    const expiration = peekExpiration(props);
    const bodyBytes = ringPayload.length - layout.propsEnd;
    const now = Date.now();
    const nowPerf = performance.now();
    let ok = true;
    let durableOffset = -1;
    let waiting: { gate: ConfirmGate | undefined }[] | undefined;
    for (let i = 0; i < queueCount; i++) {
      const queueId = r.buf.readUInt32LE(idsAt + 4 * i);
      const q = this.queues.get(queueId);
      if (q === undefined) {
        if (this.deposed.has(queueId)) ok = false;
        continue;
      }
      const ttl = messageTtlMs(expiration, q.config.messageTtlMs);
      // Every message of a replicated queue is logged (as in RabbitMQ's quorum queues) and
      // enters the queue at its commit, where it may be paged (acceptCommitted).
      const replicated = this.replicated?.has(q.id) === true;
      const pager = !replicated && this.pager !== undefined && this.pager.mustPageOut(q, priority) ? this.pager : undefined;
      const m: Message = {
        id: this.nextMsgId++,
        payload: pager !== undefined ? ringPayload : (payload ??= Buffer.from(ringPayload)),
        bodyBytes,
        redelivered: false,
        deliveryCount: 0,
        priority,
        persistent,
        expiresAtMs: ttl === undefined ? 0 : now + ttl,
        enqueuedAtMs: nowPerf,
        persisted: replicated,
      };
      if (replicated) {
        (waiting ??= []).push((this.replicated as ReplicatedQueues).enqueue(q.id, m));
        continue;
      }
      if (q.consumers.length > 0 && q.ready.length > flowHighMessages && !this.congested.has(q)) {
        this.congested.add(q);
        Atomics.store(this.flow, 0, 1);
      }
      const store = persistent && q.config.durable ? this.store : undefined; // logs its enqueue
      if (pager !== undefined) {
        // Straight to disk once accepted: its payload, a view of the ring, is copied into the log.
        let loggedOffset = -1;
        const result = q.enqueue(m, (msg) => {
          if (store !== undefined) loggedOffset = logEnqueue(store, q, msg);
          return pager.toDisk(q, msg, loggedOffset);
        });
        if (result === 'rejected') ok = false;
        else if (loggedOffset >= 0) durableOffset = loggedOffset;
      } else if (q.enqueue(m) === 'rejected') {
        ok = false;
      } else if (store !== undefined) {
        durableOffset = logEnqueue(store, q, m);
      }
      this.dirty.add(q);
    }
    if ((flags & PublishFlag.confirm) === 0) return;
    if (waiting !== undefined) {
      const gate: ConfirmGate = { channelKey, seq, ok, remaining: waiting.length + (durableOffset >= 0 ? 1 : 0) };
      for (const p of waiting) p.gate = gate;
      if (durableOffset >= 0) this.durableConfirms.push({ offset: durableOffset, channelKey, seq, ok, gate });
    } else if (durableOffset >= 0) this.durableConfirms.push({ offset: durableOffset, channelKey, seq, ok, gate: undefined });
    else this.confirm(channelKey, seq, ok);
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
      ch = { key, flowActive: true, globalPrefetch: 0, unacked: 0, consumers: 0, creditSlot: -1 };
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
    const q = this.queues.get(c.queueId);
    q?.removeConsumer(c.id);
    this.dropConsumer(c);
    // With single-active-consumer the next consumer is active now: it gets the ready messages.
    if (q !== undefined) this.dirty.add(q);
  }

  private dropConsumer(c: Consumer): void {
    if (!this.consumers.delete(c.id)) return;
    c.channel.consumers--;
    this.maybeForgetChannel(c.channel);
  }

  private maybeForgetChannel(ch: ShardChannel): void {
    if (ch.consumers === 0 && ch.unacked === 0 && ch.flowActive && ch.globalPrefetch === 0 && ch.creditSlot < 0) this.channels.delete(ch.key);
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
    const slot = r.u32();
    ch.creditSlot = slot === 0 ? -1 : slot - 1;
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
    const queueId = r.u32();
    const channel = this.channel(r.u32());
    const noAck = r.u8() === 1;
    this.answerGet(reqId, queueId, channel, noAck);
  }

  /** basic.get; when the head is on disk the answer waits for the pager to read it back. */
  private answerGet(reqId: number, queueId: number, channel: ShardChannel, noAck: boolean): void {
    const q = this.queues.get(queueId);
    const pager = this.pager;
    if (q !== undefined && pager !== undefined && pager.hasWaiters(q)) {
      pager.whenPagedIn(q, () => this.answerGet(reqId, queueId, channel, noAck)); // behind earlier gets
      return;
    }
    const m = q?.get(channel, noAck);
    if (q !== undefined && m === undefined && pager !== undefined && q.ready.headOnDisk) {
      pager.whenPagedIn(q, () => this.answerGet(reqId, queueId, channel, noAck));
      return;
    }
    if (q === undefined || m === undefined) {
      this.w.reset().u32(reqId);
      this.out.write(FromShard.getEmpty, this.w.view());
      return;
    }
    if (m.persisted) {
      if (noAck) this.settled(q, m);
      else this.markDelivered(q, m);
    }
    this.w.reset().u32(reqId).u32(q.id).f64(m.id).u8(m.redelivered ? 1 : 0).u32(q.messageCount);
    const payload = q.config.deliveryCountHeader === true ? withDeliveryCount(m.payload, m.deliveryCount - 1) : m.payload;
    this.out.write2(FromShard.getOk, this.w.view(), payload);
  }

  // ---- delivery -----------------------------------------------------------

  deliver(c: Consumer, q: Queue, m: Message): void {
    if (m.persisted) {
      if (c.noAck) this.settled(q, m);
      else this.markDelivered(q, m);
    }
    let lat = this.deliverLatency.get(q.id);
    if (lat === undefined) {
      lat = this.latency.get('enqueue_to_deliver', queueKey(q));
      this.deliverLatency.set(q.id, lat);
    }
    recordUs(lat, (performance.now() - m.enqueuedAtMs) * 1000);
    const h = this.deliverHeader;
    h.writeUInt32LE(c.id, 0);
    h.writeUInt32LE(q.id, 4);
    h.writeDoubleLE(m.id, 8);
    h[16] = m.redelivered ? 1 : 0;
    h.writeUInt32LE(0, 17);
    // Quorum queues mark a redelivery with x-delivery-count (a copy: the stored payload stays as published).
    const payload = m.deliveryCount > 1 && q.config.deliveryCountHeader === true ? withDeliveryCount(m.payload, m.deliveryCount - 1) : m.payload;
    this.out.write2(FromShard.deliver, h, payload);
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

  settled(q: Queue, m: Message): void {
    if (!m.persisted) return;
    if (this.replicated?.has(q.id) === true) this.replicated.settle(q.id, m.id);
    else this.store?.settle(q.id, m.id);
  }

  private markDelivered(q: Queue, m: Message): void {
    if (this.replicated?.has(q.id) === true) this.replicated.delivered(q.id, m.id);
    else this.store?.markDelivered(q.id, m.id);
  }

  pagesFor(q: Queue): PageHost | undefined {
    return this.pager?.hostFor(q);
  }

  pagedLeft(q: Queue, e: PagedEntry, reason: number | undefined): void {
    this.pager?.pagedLeft(q, e, reason);
  }

  deadLetter(q: Queue, m: Message, reason: number): void {
    if (this.pager?.deadLetterInOrder(q, m, reason) !== true) this.deadLetterNow(q, m, reason);
  }

  private deadLetterNow(q: Queue, m: Message, reason: number): void {
    q.dropped++;
    this.settled(q, m);
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

/** A persistent message accepted by a durable queue: its enqueue record's offset. */
function logEnqueue(store: ShardStore, q: Queue, m: Message): number {
  m.persisted = true;
  return store.enqueue(q.id, m.id, m.expiresAtMs, m.payload);
}

/** How a queue is named in latency reports: its name, prefixed by its vhost unless that is '/'. */
function queueKey(q: Queue): string {
  return q.config.vhost === '/' ? q.config.name : `${q.config.vhost}/${q.config.name}`;
}

/** The effective TTL: the lower of the message's expiration property and the queue's x-message-ttl. */
function messageTtlMs(expiration: string | undefined, queueTtlMs: number | undefined): number | undefined {
  const own = expiration === undefined ? undefined : Number(expiration);
  if (own === undefined || !Number.isFinite(own)) return queueTtlMs;
  return queueTtlMs === undefined ? own : Math.min(own, queueTtlMs);
}
