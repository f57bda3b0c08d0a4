/**
 * A queue led by another node, as this node's front sees it: the same methods as ShardLink,
 * sent over the peer link to the leader's front (front/peer-session.ts runs them there).
 *
 * The link is dialled when an operation first needs it and again after it closes. Nothing
 * forwarded survives a closed link, as in RabbitMQ when a queue's node goes down: consumers
 * get basic.cancel (if their client takes consumer cancel notifications), publishes not yet
 * confirmed get basic.nack, requests waiting for an answer fail with 404, and acks for what
 * was delivered before become no-ops (the leader has requeued those messages).
 *
 * Global prefetch (the node's shared-memory credit table) cannot span nodes: consumers of a
 * remote queue get per-consumer prefetch only (see Broker.addConsumer).
 */
import { AmqpError } from '../amqp/errors.js';
import { ReplyCode } from '../amqp/spec.generated.js';
import { PeerLink, type PeerIdentity } from '../cluster/peer-link.js';
import type { Logger } from '../node/logger.js';
import { RecordReader, RecordWriter } from '../ring/record-buffer.js';
import { PublishFlag } from '../ring/shard-records.js';
import type { QueueConfig } from '../shard/queue-config.js';
import { FromShard, PeerRecord, ToShard } from './peer-records.js';
import type { QueueLink } from './queue-link.js';
import type { GetOkReply } from './shard-link.js';

/** First wait before redialling a node that could not be reached; doubles up to the max. */
const redialBackoffMinMs = 100;
/** A node down for long is tried at most this often (each try is one refused connect). */
const redialBackoffMaxMs = 2_000;

/** What a RemoteLink needs from the broker it serves. */
export interface RemoteLinkHost {
  readonly log: Logger;
  /** Deliveries, confirms and cancels, as if a local shard had sent them. */
  onShardRecord(link: QueueLink, kind: number, body: Buffer): void;
  flushAll(): void;
  /** "queue 'q' in vhost '/'" for error texts. */
  queueLabelOf(queueId: number): string;
  /** The link closed: unacked deliveries it made must no longer reach the leader. */
  retireUnacked(link: QueueLink): void;
}

type Pending =
  | { kind: 'reply'; queueId: number; resolve: (v: [number, number]) => void; reject: (e: Error) => void }
  | { kind: 'get'; queueId: number; resolve: (v: GetOkReply | undefined) => void; reject: (e: Error) => void };

export class RemoteLink implements QueueLink {
  readonly index = -1;
  readonly label: string;
  queueCount = 0;
  readonly congested = false;
  onDrain: () => void = () => {};

  private link: PeerLink | undefined;
  private everOpen = false;
  private redialAtMs = 0;
  private backoffMs = redialBackoffMinMs;
  private closing = false;
  private readonly w = new RecordWriter();
  private readonly pending = new Map<number, Pending>();
  private nextReqId = 1;
  /** Publishes awaiting the leader's confirm: channel key → seqs. Failed (nacked) if the link closes. */
  private readonly unconfirmed = new Map<number, Set<number>>();
  /** Consumers registered on the leader through this link: cancelled (with notification) if it closes. */
  private readonly consumers = new Set<number>();
  /** Channel keys the leader has a proxy for (on this link). */
  private readonly knownChannels = new Set<number>();
  /** Channels whose deliveries are paused (channel.flow / socket backpressure), known or not. */
  private readonly pausedChannels = new Set<number>();
  /** Failures of operations made while the node could not be reached, reported on the next turn. */
  private deferredFailures: { confirms: [number, number][]; consumers: number[] } | undefined;

  constructor(
    readonly remoteNode: string,
    /** host:port of the leader's peer listener (updated when the node's address changes). */
    public address: string,
    /** The cluster secret and this node's name (set when the node's peer listener starts). */
    private readonly identity: () => PeerIdentity | undefined,
    private readonly host: RemoteLinkHost,
  ) {
    this.label = `node ${remoteNode}`;
  }

  get pendingBytes(): number {
    return this.link?.pendingBytes ?? 0;
  }

  get connected(): boolean {
    return this.link?.state === 'open';
  }

  flush(): void {
    this.link?.flush();
  }

  // ---- the link -------------------------------------------------------------

  /** The link for an operation that creates state on the leader: dials if there is none (undefined: node unreachable for now). */
  private dialled(): PeerLink | undefined {
    if (this.link !== undefined) return this.link;
    if (this.closing || performance.now() < this.redialAtMs) return undefined;
    const identity = this.identity();
    if (identity === undefined) {
      this.host.log.error(`cannot reach node ${this.remoteNode}: this node has no cluster secret (its peer listener is not started)`);
      this.redialAtMs = performance.now() + redialBackoffMaxMs;
      return undefined;
    }
    try {
      this.link = PeerLink.dial(this.address, identity, this.remoteNode, {
        onOpen: () => this.onLinkOpen(),
        onRecord: (kind, body) => this.onRecord(kind, body),
        onBatchEnd: () => this.host.flushAll(),
        onClose: (reason) => this.onLinkClosed(reason),
        onDrain: () => this.onDrain(),
      });
    } catch (e) {
      this.host.log.error(`peer link to node ${this.remoteNode}: ${e instanceof Error ? e.message : String(e)}`);
      this.redialAtMs = performance.now() + redialBackoffMaxMs;
      return undefined;
    }
    return this.link;
  }

  private send(link: PeerLink, kind: number): void {
    link.write(kind, this.w.view());
  }

  /** Before the first record of a channel: the leader creates its proxy paused if this channel is paused. */
  private touchChannel(link: PeerLink, channelKey: number): void {
    if (this.knownChannels.has(channelKey)) return;
    this.knownChannels.add(channelKey);
    if (!this.pausedChannels.has(channelKey)) return;
    this.w.reset().u32(channelKey).u8(0);
    this.send(link, ToShard.channelFlow);
  }

  private onLinkOpen(): void {
    this.everOpen = true;
    this.backoffMs = redialBackoffMinMs;
    this.host.log.info(`peer link to node ${this.remoteNode} (${this.address}) open`);
  }

  private onLinkClosed(reason: string): void {
    this.link = undefined;
    if (this.everOpen) {
      this.host.log.warn(`peer link to node ${this.remoteNode} (${this.address}) closed: ${reason}`);
      // The next operation redials at once (a dropped connection to a live node comes back);
      // if the node is really gone, that dial fails fast and the backoff starts.
      this.backoffMs = redialBackoffMinMs;
      this.redialAtMs = 0;
    } else {
      const level = this.backoffMs === redialBackoffMinMs ? 'warn' : 'debug';
      this.host.log[level](`peer link to node ${this.remoteNode} (${this.address}) could not be opened: ${reason}`);
      this.backoffMs = Math.min(redialBackoffMaxMs, this.backoffMs * 2);
    }
    if (!this.everOpen) this.redialAtMs = performance.now() + this.backoffMs;
    this.everOpen = false;
    this.failEverything(`home node '${this.remoteNode}' of`);
  }

  /** Everything forwarded over the closed link fails, as when a queue's node goes down in RabbitMQ. */
  private failEverything(why: string): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) {
      p.reject(new AmqpError(ReplyCode.notFound, `NOT_FOUND - ${why} ${this.host.queueLabelOf(p.queueId)} is down or inaccessible`));
    }
    const confirms: [number, number][] = [];
    for (const [key, seqs] of this.unconfirmed) for (const seq of seqs) confirms.push([key, seq]);
    this.unconfirmed.clear();
    const consumers = [...this.consumers];
    this.consumers.clear();
    this.knownChannels.clear();
    this.host.retireUnacked(this);
    this.reportFailures(confirms, consumers);
  }

  /** Nacks the publishes and cancels the consumers, through the broker as if the leader had said so. */
  private reportFailures(confirms: readonly [number, number][], consumers: readonly number[]): void {
    if (confirms.length > 0) {
      const w = new RecordWriter().u32(confirms.length);
      for (const [key, seq] of confirms) w.u32(key).f64(seq).u8(0);
      this.host.onShardRecord(this, FromShard.confirms, w.view());
    }
    for (const id of consumers) {
      this.host.onShardRecord(this, FromShard.consumerCancelled, new RecordWriter().u32(id).view());
    }
    this.host.flushAll();
  }

  /** An operation could not be forwarded (node unreachable): fail it on the next turn, never inside the caller. */
  private deferFailure(confirm: [number, number] | undefined, consumerId: number | undefined): void {
    if (this.deferredFailures === undefined) {
      const f = (this.deferredFailures = { confirms: [], consumers: [] });
      setImmediate(() => {
        this.deferredFailures = undefined;
        this.reportFailures(f.confirms, f.consumers);
      });
    }
    if (confirm !== undefined) this.deferredFailures.confirms.push(confirm);
    if (consumerId !== undefined) this.deferredFailures.consumers.push(consumerId);
  }

  /** Stops using the link for good (node shutdown); what depended on it fails. */
  close(): void {
    this.closing = true;
    this.link?.close('this node is stopping');
  }

  // ---- what the leader says -------------------------------------------------

  private onRecord(kind: number, body: Buffer): void {
    if (kind === FromShard.deliver) {
      this.host.onShardRecord(this, kind, body);
    } else if (kind === FromShard.confirms) {
      this.noteConfirms(body);
      this.host.onShardRecord(this, kind, body);
    } else if (kind === FromShard.consumerCancelled) {
      this.consumers.delete(body.readUInt32LE(0));
      this.host.onShardRecord(this, kind, body);
    } else if (!this.onReply(kind, body)) {
      this.host.log.error(`peer link to node ${this.remoteNode}: unexpected record kind ${kind}`);
    }
  }

  private noteConfirms(body: Buffer): void {
    const n = body.readUInt32LE(0);
    for (let i = 0, p = 4; i < n; i++, p += 13) {
      const key = body.readUInt32LE(p);
      const seqs = this.unconfirmed.get(key);
      if (seqs === undefined) continue;
      seqs.delete(body.readDoubleLE(p + 4));
      if (seqs.size === 0) this.unconfirmed.delete(key);
    }
  }

  onReply(kind: number, body: Buffer): boolean {
    if (kind !== FromShard.reply && kind !== FromShard.getOk && kind !== FromShard.getEmpty && kind !== PeerRecord.failed) return false;
    const r = new RecordReader(body);
    const p = this.pending.get(r.u32());
    if (p === undefined) return true; // answered after the request was failed: nothing waits for it
    this.pending.delete(body.readUInt32LE(0));
    if (kind === PeerRecord.failed) {
      const code = r.u16();
      p.reject(new AmqpError(code, r.str()));
    } else if (kind === FromShard.reply && p.kind === 'reply') p.resolve([r.f64(), r.f64()]);
    else if (kind === FromShard.getEmpty && p.kind === 'get') p.resolve(undefined);
    else if (kind === FromShard.getOk && p.kind === 'get') {
      const queueId = r.u32();
      const msgId = r.f64();
      const redelivered = r.u8() === 1;
      const messageCount = r.u32();
      p.resolve({ queueId, msgId, redelivered, messageCount, payload: Buffer.from(r.buf.subarray(r.pos)) });
    } else {
      p.reject(new AmqpError(ReplyCode.internalError, `INTERNAL_ERROR - node ${this.remoteNode} answered a ${p.kind} request with record kind ${kind}`));
    }
    return true;
  }

  // ---- requests ---------------------------------------------------------------

  private unreachable(queueId: number): AmqpError {
    return new AmqpError(ReplyCode.notFound, `NOT_FOUND - home node '${this.remoteNode}' of ${this.host.queueLabelOf(queueId)} is down or inaccessible`);
  }

  private ask(kind: number, queueId: number): Promise<[number, number]> {
    const link = this.dialled();
    if (link === undefined) return Promise.reject(this.unreachable(queueId));
    return new Promise((resolve, reject) => {
      const reqId = this.request({ kind: 'reply', queueId, resolve, reject });
      this.w.reset().u32(reqId).u32(queueId);
      this.send(link, kind);
    });
  }

  private request(p: Pending): number {
    const id = this.nextReqId++;
    if (this.nextReqId > 0xffffffff) this.nextReqId = 1;
    this.pending.set(id, p);
    return id;
  }

  // ---- QueueLink --------------------------------------------------------------

  /** The leader applies its own policies and arguments; nothing to tell it from here. */
  updateQueue(_config: QueueConfig): void {}

  async deleteQueue(queueId: number): Promise<number> {
    return (await this.ask(ToShard.queueDelete, queueId))[0];
  }

  async purgeQueue(queueId: number): Promise<number> {
    return (await this.ask(ToShard.queuePurge, queueId))[0];
  }

  statQueue(queueId: number): Promise<[number, number]> {
    return this.ask(ToShard.queueStat, queueId);
  }

  publish(channelKey: number, seq: number, flags: number, queueIds: readonly number[], payload: Uint8Array): void {
    const confirm = (flags & PublishFlag.confirm) !== 0;
    const link = this.dialled();
    if (link === undefined) {
      if (confirm) this.deferFailure([channelKey, seq], undefined);
      return;
    }
    if (confirm) {
      this.touchChannel(link, channelKey);
      let seqs = this.unconfirmed.get(channelKey);
      if (seqs === undefined) {
        seqs = new Set();
        this.unconfirmed.set(channelKey, seqs);
      }
      seqs.add(seq);
    }
    const w = this.w.reset().u32(channelKey).f64(seq).u8(flags).u16(queueIds.length);
    for (const id of queueIds) w.u32(id);
    link.write(ToShard.publish, w.view(), payload);
  }

  /** A reply for a direct reply-to name of that node's (direct-reply.ts); false if the node cannot be reached now. */
  directReply(payload: Uint8Array): boolean {
    const link = this.dialled();
    if (link === undefined) return false;
    link.write(PeerRecord.directReply, payload);
    return true;
  }

  consume(consumerId: number, queueId: number, channelKey: number, prefetch: number, noAck: boolean, priority: number, tag: Uint8Array, exclusive = false): void {
    const link = this.dialled();
    if (link === undefined) {
      this.deferFailure(undefined, consumerId);
      return;
    }
    this.touchChannel(link, channelKey);
    this.consumers.add(consumerId);
    this.w.reset().u32(consumerId).u32(queueId).u32(channelKey).u32(prefetch).u8(noAck ? 1 : 0).u8(exclusive ? 1 : 0).f64(priority).bytes(tag);
    this.send(link, ToShard.consume);
  }

  // Operations on state the leader already has: without a link that state is gone, so they are dropped.

  cancel(consumerId: number): void {
    if (!this.consumers.delete(consumerId) || this.link === undefined) return;
    this.w.reset().u32(consumerId);
    this.send(this.link, ToShard.cancel);
  }

  ack(queueId: number, msgIds: readonly number[]): void {
    if (this.link === undefined) return;
    const w = this.w.reset().u32(queueId).u32(msgIds.length);
    for (const id of msgIds) w.f64(id);
    this.send(this.link, ToShard.ack);
  }

  nack(queueId: number, msgIds: readonly number[], requeue: boolean): void {
    if (this.link === undefined) return;
    const w = this.w.reset().u8(requeue ? 1 : 0).u32(queueId).u32(msgIds.length);
    for (const id of msgIds) w.f64(id);
    this.send(this.link, ToShard.nack);
  }

  get(queueId: number, channelKey: number, noAck: boolean): Promise<GetOkReply | undefined> {
    const link = this.dialled();
    if (link === undefined) return Promise.reject(this.unreachable(queueId));
    this.touchChannel(link, channelKey);
    return new Promise((resolve, reject) => {
      const reqId = this.request({ kind: 'get', queueId, resolve, reject });
      this.w.reset().u32(reqId).u32(queueId).u32(channelKey).u8(noAck ? 1 : 0);
      this.send(link, ToShard.get);
    });
  }

  channelFlow(channelKey: number, active: boolean): void {
    if (active) this.pausedChannels.delete(channelKey);
    else this.pausedChannels.add(channelKey);
    if (this.link === undefined || !this.knownChannels.has(channelKey)) return;
    this.w.reset().u32(channelKey).u8(active ? 1 : 0);
    this.send(this.link, ToShard.channelFlow);
  }

  /** Global prefetch is a shared-memory table of this node: it cannot bound a remote queue (per-consumer prefetch applies). */
  channelQos(_channelKey: number, _globalPrefetch: number, _creditSlot?: number): void {}

  channelKick(_channelKey: number): void {}

  /** The channel closed on this node: the leader drops its proxy (consumers and unacked were settled before). */
  channelClosed(channelKey: number): void {
    this.pausedChannels.delete(channelKey);
    if (!this.knownChannels.delete(channelKey) || this.link === undefined) return;
    this.w.reset().u32(channelKey);
    this.send(this.link, PeerRecord.channelClosed);
  }
}

/**
 * Stands in for a closed RemoteLink in deliveries made before it closed: the leader has
 * requeued those messages, so an ack or nack of them must not reach it (a redelivery of the
 * same message may be outstanding on a new link). The client's tags stay valid, as in RabbitMQ.
 */
export class RetiredLink implements QueueLink {
  readonly index = -1;
  readonly label: string;
  queueCount = 0;
  readonly congested = false;
  readonly pendingBytes = 0;
  onDrain: () => void = () => {};

  constructor(readonly remoteNode: string) {
    this.label = `node ${remoteNode} (link closed)`;
  }

  private gone(): Promise<never> {
    return Promise.reject(new AmqpError(ReplyCode.notFound, `NOT_FOUND - home node '${this.remoteNode}' is down or inaccessible`));
  }

  flush(): void {}
  updateQueue(): void {}
  deleteQueue(): Promise<number> {
    return this.gone();
  }
  purgeQueue(): Promise<number> {
    return this.gone();
  }
  statQueue(): Promise<[number, number]> {
    return this.gone();
  }
  publish(): void {}
  consume(): void {}
  cancel(): void {}
  ack(): void {}
  nack(): void {}
  get(): Promise<GetOkReply | undefined> {
    return this.gone();
  }
  channelFlow(): void {}
  channelQos(): void {}
  channelKick(): void {}
  onReply(): boolean {
    return false;
  }
}
