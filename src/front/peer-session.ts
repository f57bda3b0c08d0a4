/**
 * The leader's side of forwarding: one PeerSession per accepted peer link runs what another
 * node's front forwards (front/remote-link.ts) against this node's own shards. Channels and
 * consumers of the other node get proxies registered in this broker — with this node's channel
 * keys and consumer ids, mapped from the other node's — so the shards, consumer counts,
 * exclusive consumers and auto-delete see them like local ones. Their deliveries, confirms,
 * get answers and cancels go back over the link.
 *
 * When the link closes, the session ends as a closing channel does: its consumers are
 * cancelled, then what it had delivered and not settled is requeued (redelivered=true).
 */
import { AmqpError } from '../amqp/errors.js';
import { ReplyCode } from '../amqp/spec.generated.js';
import { listenPeers, type PeerLink, type PeerLinkHandlers } from '../cluster/peer-link.js';
import type { Logger } from '../node/logger.js';
import { RecordReader, RecordWriter } from '../ring/record-buffer.js';
import { PublishFlag } from '../ring/shard-records.js';
import type { Broker } from './broker.js';
import type { Publisher } from './publisher-holds.js';
import { FromShard, PeerRecord, ToShard } from './peer-records.js';
import { queueLabel } from './queue-args.js';
import type { QueueLink } from './queue-link.js';
import type { ConfirmTarget, ConsumerChannel, ConsumerRef, QueueMeta } from './queue-meta.js';
import type { ShardLink } from './shard-link.js';

/**
 * Bytes waiting to go to the other node before this node stops delivering to its proxies
 * (that node reads slowly); as the front pauses a client whose socket backs up.
 */
const peerPendingPauseBytes = 4 * 1024 * 1024;

type Handler = (r: RecordReader, body: Buffer) => void;

/** The proxy of a channel on the other node. */
class ProxyChannel implements ConsumerChannel, ConfirmTarget {
  readonly key: number;
  readonly conn: { readonly name: string };
  state: 'open' | 'closing' | 'closed' = 'open';
  /** Set from each consume record: the other node's channel prefetch for that consumer. */
  prefetchCount = 0;
  readonly globalPrefetch = 0;
  readonly consumers = new Map<string, ConsumerRef>();
  /** This node's consumer id → the other node's. */
  readonly remoteConsumerIds = new Map<number, number>();
  /** The other node's channel.flow / socket state for this channel. */
  remoteActive = true;
  private flowSent = true;
  /** Publishes split over several local shards: one confirm goes back when all have answered. */
  private readonly unconfirmed = new Map<number, { remaining: number; ok: boolean }>();
  private readonly confirmed: [number, boolean][] = [];

  constructor(
    private readonly session: PeerSession,
    /** The other node's channel key. */
    readonly id: number,
  ) {
    this.conn = { name: `peer ${session.link.peerName}` };
    this.key = session.broker.registerChannel(this);
  }

  deliver(c: ConsumerRef, link: QueueLink, queueId: number, msgId: number, redelivered: boolean, payload: Buffer): void {
    this.session.deliver(this, c, link, queueId, msgId, redelivered, payload);
  }

  consumerCancelledByServer(c: ConsumerRef): void {
    const remoteId = this.remoteConsumerIds.get(c.id);
    this.remoteConsumerIds.delete(c.id);
    if (remoteId !== undefined) this.session.cancelled(remoteId);
  }

  /** One forwarded publish went to `shards` local shards; ok=false if some of its queues are not here. */
  expect(seq: number, shards: number, ok: boolean): void {
    if (shards === 0) {
      this.confirmed.push([seq, ok]);
      this.flushConfirms();
    } else this.unconfirmed.set(seq, { remaining: shards, ok });
  }

  onShardConfirm(seq: number, ok: boolean): void {
    const u = this.unconfirmed.get(seq);
    if (u === undefined) return;
    if (!ok) u.ok = false;
    if (--u.remaining > 0) return;
    this.unconfirmed.delete(seq);
    this.confirmed.push([seq, u.ok]);
  }

  flushConfirms(): void {
    if (this.confirmed.length === 0) return;
    this.session.sendConfirms(this.id, this.confirmed);
    this.confirmed.length = 0;
  }

  /** Tells the shards whether this proxy may receive: the other node's say, and this link's backlog. */
  updateFlow(): void {
    const active = this.remoteActive && !this.session.linkCongested && this.state === 'open';
    if (active === this.flowSent) return;
    this.flowSent = active;
    for (const shard of this.session.broker.shards) {
      shard.channelFlow(this.key, active);
      this.session.broker.noteShardWrite(shard, undefined);
    }
  }

  /** The other node's channel closed, or the link did: consumers go first, so nothing is handed straight back. */
  close(): void {
    if (this.state === 'closed') return;
    const broker = this.session.broker;
    for (const c of [...this.consumers.values()]) broker.removeConsumer(c, false);
    this.state = 'closed';
    // The shards forget a channel only once it holds nothing: leave it in its default state.
    if (!this.flowSent) {
      for (const shard of broker.shards) {
        shard.channelFlow(this.key, true);
        broker.noteShardWrite(shard, undefined);
      }
    }
    broker.unregisterChannel(this);
  }
}

export class PeerSession implements PeerLinkHandlers, Publisher {
  /** Proxies by the other node's channel key. */
  private readonly proxies = new Map<number, ProxyChannel>();
  /** Proxy consumers by the other node's consumer id. */
  private readonly consumers = new Map<number, ConsumerRef>();
  /** Delivered to the other node and not yet settled, by queue: requeued if the link closes. */
  private readonly unacked = new Map<number, Set<number>>();
  private readonly handlers = new Map<number, Handler>();
  private readonly w = new RecordWriter();
  private readonly byShard = new Map<ShardLink, number[]>();
  private closed = false;
  linkCongested = false;

  constructor(
    readonly broker: Broker,
    readonly link: PeerLink,
    private readonly log: Logger,
  ) {
    const h = this.handlers;
    h.set(ToShard.publish, (r, body) => this.onPublish(r, body));
    h.set(ToShard.consume, (r) => this.onConsume(r));
    h.set(ToShard.cancel, (r) => this.onCancel(r));
    h.set(ToShard.ack, (r) => this.onSettle(r, 'ack'));
    h.set(ToShard.nack, (r) => this.onSettle(r, r.u8() === 1 ? 'requeue' : 'reject'));
    h.set(ToShard.get, (r) => this.onGet(r));
    h.set(ToShard.channelFlow, (r) => this.onChannelFlow(r));
    h.set(ToShard.queueDelete, (r) => this.onQueueRequest(r, 'delete'));
    h.set(ToShard.queuePurge, (r) => this.onQueueRequest(r, 'purge'));
    h.set(ToShard.queueStat, (r) => this.onQueueRequest(r, 'stat'));
    h.set(PeerRecord.channelClosed, (r) => this.onChannelClosed(r));
    // A reply whose requester is gone meanwhile is dropped, as a local one is when not mandatory.
    h.set(PeerRecord.directReply, (_r, body) => this.broker.deliverDirectReply(Buffer.from(body)));
  }

  // ---- PeerLinkHandlers -----------------------------------------------------

  onOpen(): void {
    this.log.info(`peer link from node ${this.link.label} open`);
  }

  onRecord(kind: number, body: Buffer): void {
    const h = this.handlers.get(kind);
    if (h === undefined) {
      this.log.error(`peer link from node ${this.link.label}: unexpected record kind ${kind}`);
      return;
    }
    h(new RecordReader(body), body);
  }

  onBatchEnd(): void {
    this.broker.flushAll();
  }

  onDrain(): void {
    if (!this.linkCongested) return;
    this.linkCongested = false;
    for (const p of this.proxies.values()) p.updateFlow();
    this.broker.flushAll();
  }

  onClose(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.log.warn(`peer link from node ${this.link.label} closed: ${reason}`);
    this.broker.forgetPublisher(this);
    for (const p of this.proxies.values()) p.close();
    this.proxies.clear();
    this.consumers.clear();
    for (const [queueId, ids] of this.unacked) {
      const q = this.localQueue(queueId);
      if (q === undefined || ids.size === 0) continue;
      q.shard.nack(queueId, [...ids], true);
      this.broker.noteShardWrite(q.shard, undefined);
    }
    this.unacked.clear();
    this.broker.flushAll();
  }

  // ---- Publisher (ring backpressure pauses the link like a client socket) ----

  pauseReading(): void {
    this.link.pauseReading();
  }

  resumeReading(): void {
    this.link.resumeReading();
  }

  /** Never paused by flow: the link also carries the acks that drain the queues. */
  hasConsumers(): boolean {
    return true;
  }

  // ---- helpers ----------------------------------------------------------------

  /** The queue, if this node leads it. */
  private localQueue(queueId: number): QueueMeta | undefined {
    const q = this.broker.queuesById.get(queueId);
    return q === undefined || q.shard.remoteNode !== undefined ? undefined : q;
  }

  private proxy(remoteKey: number): ProxyChannel {
    let p = this.proxies.get(remoteKey);
    if (p === undefined) {
      p = new ProxyChannel(this, remoteKey);
      this.proxies.set(remoteKey, p);
    }
    return p;
  }

  private track(queueId: number, msgId: number): void {
    let ids = this.unacked.get(queueId);
    if (ids === undefined) {
      ids = new Set();
      this.unacked.set(queueId, ids);
    }
    ids.add(msgId);
  }

  private noteLinkWrite(): void {
    if (this.linkCongested || this.link.pendingBytes <= peerPendingPauseBytes) return;
    this.linkCongested = true;
    for (const p of this.proxies.values()) p.updateFlow();
  }

  // ---- what goes back -------------------------------------------------------

  deliver(proxy: ProxyChannel, c: ConsumerRef, link: QueueLink, queueId: number, msgId: number, redelivered: boolean, payload: Buffer): void {
    const remoteId = proxy.remoteConsumerIds.get(c.id);
    if (remoteId === undefined) {
      link.nack(queueId, [msgId], true);
      this.broker.noteShardWrite(link, undefined);
      return;
    }
    if (!c.noAck) this.track(queueId, msgId);
    // The shard's deliver header, with the other node's consumer id.
    const h = this.w.reset().u32(remoteId).u32(queueId).f64(msgId).u8(redelivered ? 1 : 0).u32(0).view();
    this.link.write(FromShard.deliver, h, payload);
    this.noteLinkWrite();
  }

  sendConfirms(remoteKey: number, confirmed: readonly [number, boolean][]): void {
    const w = this.w.reset().u32(confirmed.length);
    for (const [seq, ok] of confirmed) w.u32(remoteKey).f64(seq).u8(ok ? 1 : 0);
    this.link.write(FromShard.confirms, w.view());
  }

  /** A proxy consumer was cancelled here (queue deleted, refused): the other node cancels its consumer. */
  cancelled(remoteConsumerId: number): void {
    this.consumers.delete(remoteConsumerId);
    this.link.write(FromShard.consumerCancelled, this.w.reset().u32(remoteConsumerId).view());
  }

  private reply(reqId: number, a: number, b: number): void {
    this.link.write(FromShard.reply, this.w.reset().u32(reqId).f64(a).f64(b).view());
  }

  private fail(reqId: number, e: unknown): void {
    const err = e instanceof AmqpError ? e : new AmqpError(ReplyCode.internalError, `INTERNAL_ERROR - ${e instanceof Error ? e.message : String(e)}`);
    this.link.write(PeerRecord.failed, this.w.reset().u32(reqId).u16(err.replyCode).str(err.replyText).view());
  }

  private notLeader(queueId: number): AmqpError {
    return new AmqpError(ReplyCode.notFound, `NOT_FOUND - ${this.broker.queueLabelOf(queueId)} is not led by node ${this.broker.config.nodeName}`);
  }

  // ---- what comes in ----------------------------------------------------------

  private onPublish(r: RecordReader, body: Buffer): void {
    const remoteKey = r.u32();
    const seq = r.f64();
    const flags = r.u8();
    const n = r.u16();
    const idsAt = r.pos;
    const payload = body.subarray(idsAt + 4 * n);
    const groups = this.byShard;
    groups.clear();
    let missing = 0;
    for (let i = 0; i < n; i++) {
      const id = body.readUInt32LE(idsAt + 4 * i);
      const q = this.localQueue(id);
      if (q === undefined) {
        missing++;
        continue;
      }
      const shard = q.shard as ShardLink;
      let ids = groups.get(shard);
      if (ids === undefined) {
        ids = [];
        groups.set(shard, ids);
      }
      ids.push(id);
    }
    const confirm = (flags & PublishFlag.confirm) !== 0;
    // A message routed on the other node to a queue not led here was not stored there: nack it.
    if (confirm) this.proxy(remoteKey).expect(seq, groups.size, missing === 0);
    const channelKey = confirm ? this.proxy(remoteKey).key : 0;
    for (const [shard, ids] of groups) {
      shard.publish(channelKey, seq, flags, ids, payload);
      this.broker.noteShardWrite(shard, this);
    }
  }

  private onConsume(r: RecordReader): void {
    const remoteId = r.u32();
    const queueId = r.u32();
    const remoteKey = r.u32();
    const prefetch = r.u32();
    const noAck = r.u8() === 1;
    const exclusive = r.u8() === 1;
    const priority = r.f64();
    const tagShortstr = r.bytesCopy();
    const tag = tagShortstr.toString('utf8', 1, 1 + (tagShortstr[0] ?? 0));
    const q = this.localQueue(queueId);
    const proxy = this.proxy(remoteKey);
    const exclusiveHeld = q !== undefined && ([...q.consumers].some((c) => c.exclusive) || (exclusive && q.consumers.size > 0));
    if (q === undefined || exclusiveHeld || proxy.consumers.has(tag)) {
      // Consume-ok has gone to the client already; RabbitMQ would have refused (404 / 403):
      // the nearest it can still be told is a consumer cancel.
      this.log.info(`consumer '${tag}' from node ${this.link.peerName} refused: ${q === undefined ? `${this.broker.queueLabelOf(queueId)} is not led here` : `${queueLabel(q.vhost, q.name)} in exclusive use`}`);
      this.cancelled(remoteId);
      return;
    }
    proxy.prefetchCount = prefetch;
    const c = this.broker.addConsumer(proxy, q, tag, tagShortstr, noAck, exclusive, priority);
    proxy.remoteConsumerIds.set(c.id, remoteId);
    this.consumers.set(remoteId, c);
  }

  private onCancel(r: RecordReader): void {
    const remoteId = r.u32();
    const c = this.consumers.get(remoteId);
    if (c === undefined) return;
    this.consumers.delete(remoteId);
    (c.channel as ProxyChannel).remoteConsumerIds.delete(c.id);
    this.broker.removeConsumer(c, false);
  }

  /** Only what this session delivered and has not seen settled reaches the shard (see RetiredLink). */
  private onSettle(r: RecordReader, how: 'ack' | 'requeue' | 'reject'): void {
    const queueId = r.u32();
    const n = r.u32();
    const outstanding = this.unacked.get(queueId);
    const q = this.localQueue(queueId);
    if (outstanding === undefined) return;
    const ids: number[] = [];
    for (let i = 0; i < n; i++) {
      const id = r.f64();
      if (outstanding.delete(id)) ids.push(id);
    }
    if (outstanding.size === 0) this.unacked.delete(queueId);
    if (q === undefined || ids.length === 0) return;
    if (how === 'ack') q.shard.ack(queueId, ids);
    else q.shard.nack(queueId, ids, how === 'requeue');
    this.broker.noteShardWrite(q.shard, undefined);
  }

  private onGet(r: RecordReader): void {
    const reqId = r.u32();
    const queueId = r.u32();
    const remoteKey = r.u32();
    const noAck = r.u8() === 1;
    const q = this.localQueue(queueId);
    if (q === undefined) return this.fail(reqId, this.notLeader(queueId));
    const shard = q.shard;
    shard.get(queueId, this.proxy(remoteKey).key, noAck).then(
      (m) => {
        if (this.closed) {
          // The other node is gone: the message goes back to its place.
          if (m !== undefined && !noAck) shard.nack(m.queueId, [m.msgId], true);
          this.broker.noteShardWrite(shard, undefined);
          return;
        }
        if (m === undefined) {
          this.link.write(FromShard.getEmpty, this.w.reset().u32(reqId).view());
          return;
        }
        if (!noAck) this.track(m.queueId, m.msgId);
        const h = this.w.reset().u32(reqId).u32(m.queueId).f64(m.msgId).u8(m.redelivered ? 1 : 0).u32(m.messageCount).view();
        this.link.write(FromShard.getOk, h, m.payload);
      },
      (e: unknown) => this.fail(reqId, e),
    );
  }

  private onChannelFlow(r: RecordReader): void {
    const p = this.proxy(r.u32());
    p.remoteActive = r.u8() === 1;
    p.updateFlow();
  }

  private onChannelClosed(r: RecordReader): void {
    const key = r.u32();
    const p = this.proxies.get(key);
    if (p === undefined) return;
    this.proxies.delete(key);
    for (const remoteId of p.remoteConsumerIds.values()) this.consumers.delete(remoteId);
    p.close();
  }

  private onQueueRequest(r: RecordReader, what: 'delete' | 'purge' | 'stat'): void {
    const reqId = r.u32();
    const queueId = r.u32();
    const q = this.localQueue(queueId);
    if (q === undefined) {
      // Deleting what is not here is done (queue.delete of a missing queue succeeds, as in RabbitMQ).
      if (what === 'delete' && !this.broker.queuesById.has(queueId)) this.reply(reqId, 0, 0);
      else this.fail(reqId, this.notLeader(queueId));
      return;
    }
    const answer =
      what === 'delete'
        ? this.broker.deleteQueue(q, `deleted from node ${this.link.peerName}`).then((n): [number, number] => [n, 0])
        : what === 'purge'
          ? q.shard.purgeQueue(queueId).then((n): [number, number] => [n, 0])
          : q.shard.statQueue(queueId);
    this.broker.noteShardWrite(q.shard, undefined);
    answer.then(
      ([a, b]) => {
        if (!this.closed) this.reply(reqId, a, b);
      },
      (e: unknown) => {
        if (!this.closed) this.fail(reqId, e);
      },
    );
  }
}

export interface PeerListenerConfig {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** The cluster secret (every node has the same). */
  secret: string;
  nodeName: string;
  log: Logger;
}

export interface RunningPeerListener {
  readonly port: number;
  /** Stops accepting, closes every peer link (both ways), and stops dialling other nodes. */
  close(): Promise<void>;
}

/**
 * Starts this node's peer listener (other nodes forward operations on queues led here) and
 * lets the broker dial other nodes with the same secret and name.
 */
export async function startPeerListener(broker: Broker, cfg: PeerListenerConfig): Promise<RunningPeerListener> {
  broker.peerIdentity = { secret: cfg.secret, nodeName: cfg.nodeName };
  const sessions = new Set<PeerSession>();
  const listener = await listenPeers(cfg, (link, start) => {
    const session = new PeerSession(broker, link, cfg.log);
    sessions.add(session);
    link.handlers = {
      onOpen: () => session.onOpen(),
      onRecord: (kind, body) => session.onRecord(kind, body),
      onBatchEnd: () => session.onBatchEnd(),
      onDrain: () => session.onDrain(),
      onClose: (reason) => {
        sessions.delete(session);
        session.onClose(reason);
      },
    };
    start();
  });
  cfg.log.info(`peer listener on ${cfg.host}:${listener.port} (node ${cfg.nodeName})`);
  return {
    port: listener.port,
    close: async () => {
      broker.closeRemoteLinks();
      await listener.close();
      for (const s of [...sessions]) s.link.close('this node is stopping');
    },
  };
}
