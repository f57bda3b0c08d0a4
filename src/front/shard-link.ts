/**
 * The front's handle on one shard worker: the two rings, request/reply correlation, and the
 * encoders for every record the front sends. Replies come back through onRecord, which the
 * node wires to the shard→front ring reader.
 */
import assert from 'node:assert/strict';
import type { RingWriter } from '../ring/ring-writer.js';
import { RecordReader, RecordWriter } from '../ring/record-buffer.js';
import { FromShard, ToShard } from '../ring/shard-records.js';
import type { QueueConfig } from '../shard/queue-config.js';
import type { LatencyExport } from '../metrics/latency.js';
import type { QueueLink } from './queue-link.js';

export interface GetOkReply {
  queueId: number;
  msgId: number;
  redelivered: boolean;
  messageCount: number;
  payload: Buffer;
}

export interface QueueStatsEntry {
  queueId: number;
  ready: number;
  unacked: number;
  consumers: number;
  readyBytes: number;
  published: number;
  delivered: number;
  acked: number;
  redelivered: number;
  dropped: number;
}

type Pending =
  | { kind: 'reply'; resolve: (v: [number, number]) => void }
  | { kind: 'get'; resolve: (v: GetOkReply | undefined) => void }
  | { kind: 'stats'; resolve: (v: QueueStatsEntry[]) => void }
  | { kind: 'latency'; resolve: (v: LatencyExport[]) => void };

export class ShardLink implements QueueLink {
  readonly remoteNode = undefined;
  readonly label: string;
  private readonly w = new RecordWriter();
  private readonly pending = new Map<number, Pending>();
  private nextReqId = 1;
  /** Queues placed on this shard (placement picks the least loaded). */
  queueCount = 0;

  constructor(
    readonly index: number,
    readonly out: RingWriter,
    private readonly flow: Int32Array = new Int32Array(1),
  ) {
    this.label = `shard ${index}`;
  }

  get pendingBytes(): number {
    return this.out.pendingBytes;
  }

  get onDrain(): () => void {
    return this.out.onDrain ?? (() => {});
  }

  set onDrain(f: () => void) {
    this.out.onDrain = f;
  }

  flush(): void {
    this.out.flush();
  }

  /** The shard asks publishers to slow down: a consumed queue's backlog is past its watermark. */
  get congested(): boolean {
    return Atomics.load(this.flow, 0) === 1;
  }

  private request(p: Pending): number {
    const id = this.nextReqId++;
    if (this.nextReqId > 0xffffffff) this.nextReqId = 1;
    this.pending.set(id, p);
    return id;
  }

  private send(kind: number): void {
    this.out.write(kind, this.w.view());
  }

  /** Records that answer a request; everything else is the front's business. Returns true if handled. */
  onReply(kind: number, body: Buffer): boolean {
    if (kind !== FromShard.reply && kind !== FromShard.getOk && kind !== FromShard.getEmpty && kind !== FromShard.queueStats && kind !== FromShard.latency) {
      return false;
    }
    const r = new RecordReader(body);
    const reqId = r.u32();
    const p = this.pending.get(reqId);
    assert.ok(p !== undefined, `shard ${this.index}: reply to unknown request ${reqId}`);
    this.pending.delete(reqId);
    if (kind === FromShard.reply && p.kind === 'reply') p.resolve([r.f64(), r.f64()]);
    else if (kind === FromShard.getEmpty && p.kind === 'get') p.resolve(undefined);
    else if (kind === FromShard.getOk && p.kind === 'get') {
      const queueId = r.u32();
      const msgId = r.f64();
      const redelivered = r.u8() === 1;
      const messageCount = r.u32();
      p.resolve({ queueId, msgId, redelivered, messageCount, payload: Buffer.from(r.buf.subarray(r.pos)) });
    } else if (kind === FromShard.queueStats && p.kind === 'stats') p.resolve(JSON.parse(r.str()) as QueueStatsEntry[]);
    else if (kind === FromShard.latency && p.kind === 'latency') p.resolve(JSON.parse(r.str()) as LatencyExport[]);
    else assert.fail(`shard ${this.index}: reply kind ${kind} does not match request ${p.kind}`);
    return true;
  }

  private ask(kind: number, queueId: number): Promise<[number, number]> {
    return new Promise((resolve) => {
      const reqId = this.request({ kind: 'reply', resolve });
      this.w.reset().u32(reqId).u32(queueId);
      this.send(kind);
      this.out.flush();
    });
  }

  createQueue(config: QueueConfig): void {
    this.w.reset().str(JSON.stringify(config));
    this.send(ToShard.queueCreate);
  }

  updateQueue(config: QueueConfig): void {
    this.w.reset().str(JSON.stringify(config));
    this.send(ToShard.queueUpdate);
  }

  /** Resolves with the ready message count the queue had. */
  async deleteQueue(queueId: number): Promise<number> {
    return (await this.ask(ToShard.queueDelete, queueId))[0];
  }

  async purgeQueue(queueId: number): Promise<number> {
    return (await this.ask(ToShard.queuePurge, queueId))[0];
  }

  /** [ready messages, consumers]; also counts as queue use for x-expires. */
  statQueue(queueId: number): Promise<[number, number]> {
    return this.ask(ToShard.queueStat, queueId);
  }

  queueStats(): Promise<QueueStatsEntry[]> {
    return new Promise((resolve) => {
      const reqId = this.request({ kind: 'stats', resolve });
      this.w.reset().u32(reqId);
      this.send(ToShard.queueStats);
      this.out.flush();
    });
  }

  /** HDR histograms of the shard (enqueue→deliver per queue, ring transit, fsync). */
  latency(): Promise<LatencyExport[]> {
    return new Promise((resolve) => {
      const reqId = this.request({ kind: 'latency', resolve });
      this.w.reset().u32(reqId);
      this.send(ToShard.latency);
      this.out.flush();
    });
  }

  /** Hot path: one record per shard per published message. sentAtMs (process-wide clock) measures ring transit. */
  publish(channelKey: number, seq: number, flags: number, queueIds: readonly number[], payload: Uint8Array): void {
    const sentAtMs = performance.timeOrigin + performance.now();
    const w = this.w.reset().u32(channelKey).f64(seq).u8(flags).f64(sentAtMs).u16(queueIds.length);
    for (const id of queueIds) w.u32(id);
    this.out.write2(ToShard.publish, w.view(), payload);
  }

  consume(consumerId: number, queueId: number, channelKey: number, prefetch: number, noAck: boolean, priority: number, tag: Uint8Array): void {
    this.w.reset().u32(consumerId).u32(queueId).u32(channelKey).u32(prefetch).u8(noAck ? 1 : 0).f64(priority).bytes(tag);
    this.send(ToShard.consume);
  }

  cancel(consumerId: number): void {
    this.w.reset().u32(consumerId);
    this.send(ToShard.cancel);
  }

  ack(queueId: number, msgIds: readonly number[]): void {
    const w = this.w.reset().u32(queueId).u32(msgIds.length);
    for (const id of msgIds) w.f64(id);
    this.send(ToShard.ack);
  }

  nack(queueId: number, msgIds: readonly number[], requeue: boolean): void {
    const w = this.w.reset().u8(requeue ? 1 : 0).u32(queueId).u32(msgIds.length);
    for (const id of msgIds) w.f64(id);
    this.send(ToShard.nack);
  }

  get(queueId: number, channelKey: number, noAck: boolean): Promise<GetOkReply | undefined> {
    return new Promise((resolve) => {
      const reqId = this.request({ kind: 'get', resolve });
      this.w.reset().u32(reqId).u32(queueId).u32(channelKey).u8(noAck ? 1 : 0);
      this.send(ToShard.get);
      this.out.flush();
    });
  }

  channelFlow(channelKey: number, active: boolean): void {
    this.w.reset().u32(channelKey).u8(active ? 1 : 0);
    this.send(ToShard.channelFlow);
  }

  /** creditSlot: the channel's slot in the shared credit table + 1, or 0 for none. */
  channelQos(channelKey: number, globalPrefetch: number, creditSlot = 0): void {
    this.w.reset().u32(channelKey).u32(globalPrefetch).u32(creditSlot);
    this.send(ToShard.channelQos);
  }

  channelKick(channelKey: number): void {
    this.w.reset().u32(channelKey);
    this.send(ToShard.channelKick);
  }

  /** The queue leaves the shard with nothing logged (this node stopped leading it). */
  dropQueue(queueId: number): void {
    this.w.reset().u32(queueId);
    this.send(ToShard.queueDrop);
  }

  recoveryDone(): void {
    this.w.reset();
    this.send(ToShard.recoveryDone);
  }

  shutdown(): void {
    this.w.reset();
    this.send(ToShard.shutdown);
    this.out.flush();
  }
}
