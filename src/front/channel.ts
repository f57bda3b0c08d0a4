/**
 * One AMQP channel: method dispatch, content assembly, publishing (routing and hand-off to
 * shards), publisher confirms, transactions, deliveries and their tags, acks, and teardown.
 * Methods that need a shard's answer make the channel "busy": later frames of this channel
 * wait in order until the answer is in, so replies keep the order the client expects.
 */
import { AmqpError } from '../amqp/errors.js';
import { decodeMethod } from '../amqp/method-codec.js';
import { decodeContentHeader, peekExpiration, peekHeaders, peekReplyTo, peekUserId, validateProperties, withReplyTo } from '../amqp/content-header.js';
import { noReplyConsumer, replyBacklogMaxBytes, replyToPrefix, replyToPseudoQueue, type ReplyConsumer } from './direct-reply.js';
import { FrameType, Method, ReplyCode, classIdOf, isHardError, methodIdOf, methodName } from '../amqp/spec.generated.js';
import type { AmqpMethod } from '../amqp/spec.generated.js';
import { PublishFlag } from '../ring/shard-records.js';
import type { Connection } from './connection.js';
import type { ConsumerRef, QueueMeta } from './queue-meta.js';
import type { QueueLink } from './queue-link.js';
import { methodHandlers } from './methods/index.js';
import { senderSelected } from './sender-selected.js';
import { recordUs } from '../metrics/latency.js';
import assert from 'node:assert/strict';
import { erlangPrettyTerm } from '../routing/erlang-term-text.js';

const basicClassId = 60;
/** The expiration property as RabbitMQ reads it (Erlang string:to_integer): optional sign, digits, nothing after. */
const expirationPattern = /^([+-]?[0-9]+)([^]*)$/;
/** RabbitMQ's ?MAX_EXPIRY_TIMER: the largest per-message TTL, ten years in ms (measured on RabbitMQ 3.10). */
const expirationMaxMs = 315_360_000_000;

interface Assembly {
  exchange: string;
  routingKey: string;
  mandatory: boolean;
  /** The message payload being filled (see ring/shard-records.ts); allocated at the content header. */
  payload: Buffer | undefined;
  bodyStart: number;
  bodySize: number;
  received: number;
}

export interface UnackedRef {
  readonly tag: number;
  /** Where the delivery came from, which is where its ack goes. */
  readonly shard: QueueLink;
  readonly queueId: number;
  readonly msgId: number;
  /** performance.now() past which the consumer timeout closes the channel (Infinity: never). */
  readonly deadlineMs: number;
  /** The timeout that set deadlineMs, for the error text. */
  readonly timeoutMs: number;
}

interface TxPublish {
  exchange: string;
  routingKey: string;
  mandatory: boolean;
  payload: Buffer;
  propsStart: number;
  propsEnd: number;
  /** CC/BCC routing keys (sender-selected distribution), when the message had them. */
  routingKeys: readonly string[] | undefined;
}

/** Acks and nacks of a transaction: taken out of `unacked` at once (so tags are checked then), settled at commit. */
interface TxSettle {
  refs: UnackedRef[];
  how: 'ack' | 'requeue' | 'reject';
}

/** A tx.commit waiting for its publishes' confirms. */
interface TxCommitWait {
  /** Publishes routed to a queue whose confirm has not come. */
  outstanding: number;
  /** A queue refused one of them. */
  failed: boolean;
  /** Still routing the transaction's publishes: the count is not final yet. */
  routing: boolean;
  done(outcome: 'committed' | 'failed' | 'closed'): void;
}

export class Channel {
  readonly key: number;
  state: 'open' | 'closing' | 'closed' = 'open';
  private expecting: 'method' | 'header' | 'body' = 'method';
  private assembly: Assembly | undefined;
  private busy = false;
  private readonly backlog: { type: number; payload: Buffer }[] = [];

  // publisher confirms
  confirmMode = false;
  private nextPublishSeq = 1;
  private readonly unconfirmed = new Map<number, { remaining: number; ok: boolean; atMs: number }>();
  private readonly confirmedOk: number[] = [];

  // transactions
  txMode = false;
  txPublishes: TxPublish[] = [];
  txSettles: TxSettle[] = [];

  // consuming
  prefetchCount = 0;
  globalPrefetch = 0;
  /** Slot in the node's shared credit table once a global prefetch is set (-1: none). */
  creditSlot = -1;
  readonly consumers = new Map<string, ConsumerRef>();
  /** The consumer of amq.rabbitmq.reply-to on this channel, if any (direct-reply.ts). */
  replyConsumer: ReplyConsumer | undefined;
  /** RabbitMQ's most_recently_declared_queue: what an empty queue name means in get, consume, bind, purge, delete. */
  lastDeclaredQueue = '';
  private nextDeliveryTag = 1;
  readonly unacked = new Map<number, UnackedRef>();
  clientFlow = true;
  private flowSent = true;

  private readonly routed: string[] = [];
  // The message being routed, for the headers exchange's lazy header lookup (one bound function, no closure per publish).
  private headersSource: Buffer = Buffer.alloc(0);
  private headersStart = 0;
  private headersEnd = 0;
  private readonly currentHeaders = () => peekHeaders(this.headersSource.subarray(this.headersStart, this.headersEnd));

  constructor(
    readonly conn: Connection,
    readonly id: number,
  ) {
    this.key = conn.broker.registerChannel(this);
  }

  get broker() {
    return this.conn.broker;
  }

  // ---- input ------------------------------------------------------------------

  onFrame(type: number, payload: Buffer): void {
    if (this.state !== 'open') {
      // After we sent channel.close, everything but close/close-ok is dropped (as the spec says).
      if (type === FrameType.method) this.onClosingMethod(decodeMethod(payload));
      return;
    }
    if (this.busy) {
      this.backlog.push({ type, payload: Buffer.from(payload) });
      return;
    }
    this.process(type, payload);
  }

  private process(type: number, payload: Buffer): void {
    try {
      if (this.expecting === 'method') {
        if (type !== FrameType.method) {
          throw new AmqpError(ReplyCode.unexpectedFrame, `UNEXPECTED_FRAME - expected method frame, got ${type === FrameType.header ? 'content header' : 'content body'} on channel ${this.id}`);
        }
        this.onMethod(decodeMethod(payload));
      } else if (this.expecting === 'header') {
        if (type !== FrameType.header) {
          throw new AmqpError(ReplyCode.unexpectedFrame, `UNEXPECTED_FRAME - expected content header for class ${basicClassId}, got non content header frame instead`, basicClassId, 40);
        }
        this.onContentHeader(payload);
      } else {
        if (type !== FrameType.body) {
          throw new AmqpError(ReplyCode.unexpectedFrame, `UNEXPECTED_FRAME - expected content body, got non content body frame instead`, basicClassId, 40);
        }
        this.onContentBody(payload);
      }
    } catch (err) {
      this.onError(err);
    }
  }

  private onMethod(m: AmqpMethod): void {
    const handler = methodHandlers.get(m.id);
    if (handler === undefined) {
      throw new AmqpError(
        ReplyCode.commandInvalid,
        `COMMAND_INVALID - '${methodName(m.id)}' is not valid on a channel`,
        classIdOf(m.id),
        methodIdOf(m.id),
      );
    }
    let result: void | Promise<void>;
    try {
      result = handler(this, m.args as never);
    } catch (err) {
      // Name the failing method in the close, as RabbitMQ does, even when the error did not.
      this.onError(err, m.id);
      return;
    }
    if (result instanceof Promise) {
      this.busy = true;
      result.then(
        () => this.resume(),
        (err: unknown) => {
          this.onError(err, m.id);
          this.resume();
        },
      );
    }
  }

  private resume(): void {
    this.busy = false;
    this.conn.flush();
    while (!this.busy && this.backlog.length > 0 && this.state === 'open') {
      const f = this.backlog.shift();
      if (f !== undefined) this.process(f.type, f.payload);
    }
    this.conn.flush();
  }

  /** Soft errors close this channel; hard ones the connection. */
  onError(err: unknown, methodId?: number): void {
    if (err instanceof AmqpError) {
      let classId = err.classId;
      let mId = err.methodId;
      if (classId === 0 && methodId !== undefined) {
        classId = classIdOf(methodId);
        mId = methodIdOf(methodId);
      }
      if (isHardError(err.replyCode)) this.conn.close(err.replyCode, err.replyText, classId, mId);
      else this.closeWithError(err.replyCode, err.replyText, classId, mId);
      return;
    }
    this.conn.fail(err);
  }

  // ---- publishing -------------------------------------------------------------

  startPublish(exchange: string, routingKey: string, mandatory: boolean): void {
    this.assembly = { exchange, routingKey, mandatory, payload: undefined, bodyStart: 0, bodySize: 0, received: 0 };
    this.expecting = 'header';
  }

  private onContentHeader(payload: Buffer): void {
    const a = this.assembly;
    if (a === undefined) throw new Error('content header without a publish in progress');
    const h = decodeContentHeader(payload);
    if (h.classId !== basicClassId) {
      throw new AmqpError(ReplyCode.unexpectedFrame, `UNEXPECTED_FRAME - expected content header for class ${basicClassId}, got one for class ${h.classId} instead`, basicClassId, 40);
    }
    if (h.weight !== 0) {
      throw new AmqpError(ReplyCode.unexpectedFrame, `UNEXPECTED_FRAME - content header weight must be 0, got ${h.weight}`, basicClassId, 40);
    }
    const max = this.broker.config.maxMessageBytes;
    if (h.bodySize > max) {
      this.expecting = 'method';
      this.assembly = undefined;
      throw new AmqpError(ReplyCode.preconditionFailed, `PRECONDITION_FAILED - message size ${h.bodySize} is larger than configured max size ${max}`, basicClassId, 40);
    }
    const expiration = peekExpiration(h.propertyBytes);
    const expirationError = expiration === undefined ? undefined : invalidExpiration(expiration);
    if (expirationError !== undefined) {
      this.expecting = 'method';
      this.assembly = undefined;
      const text = `invalid expiration '${expiration}': `;
      throw new AmqpError(ReplyCode.preconditionFailed, `PRECONDITION_FAILED - ${text}${erlangPrettyTerm(expirationError, Buffer.byteLength(text))}`, basicClassId, 40);
    }
    // Shards and other consumers read these bytes later (headers exchange, dead-lettering):
    // a malformed property list is refused here, where the client can be told.
    validateProperties(h.propertyBytes);
    this.checkUserId(h.propertyBytes);
    const props = peekReplyTo(h.propertyBytes) === replyToPseudoQueue ? this.withReplyName(h.propertyBytes) : h.propertyBytes;
    // Build the payload once, in the layout the shards keep: exchange, routing key, properties, body.
    const exLen = Buffer.byteLength(a.exchange);
    const rkLen = Buffer.byteLength(a.routingKey);
    const bodyStart = 2 + exLen + rkLen + 4 + props.length;
    const buf = Buffer.allocUnsafe(bodyStart + h.bodySize);
    buf[0] = exLen;
    buf.write(a.exchange, 1);
    buf[1 + exLen] = rkLen;
    buf.write(a.routingKey, 2 + exLen);
    buf.writeUInt32LE(props.length, 2 + exLen + rkLen);
    props.copy(buf, 2 + exLen + rkLen + 4);
    a.payload = buf;
    a.bodyStart = bodyStart;
    a.bodySize = h.bodySize;
    a.received = 0;
    if (h.bodySize === 0) this.completePublish();
    else this.expecting = 'body';
  }

  /** RabbitMQ's validated user-id: the property, if set, must name the authenticated user (unless an impersonator). */
  private checkUserId(propertyBytes: Buffer): void {
    const claimed = peekUserId(propertyBytes);
    const user = this.conn.user;
    if (claimed === undefined || user === undefined || claimed === user.name || user.tags.includes('impersonator')) return;
    this.expecting = 'method';
    this.assembly = undefined;
    throw new AmqpError(
      ReplyCode.preconditionFailed,
      `PRECONDITION_FAILED - user_id property set to '${claimed}' but authenticated user was '${user.name}'`,
      basicClassId,
      40,
    );
  }

  /** A request's reply-to of amq.rabbitmq.reply-to names this channel's reply consumer instead. */
  private withReplyName(propertyBytes: Buffer): Buffer {
    const reply = this.replyConsumer;
    if (reply === undefined) {
      this.expecting = 'method';
      this.assembly = undefined;
      throw noReplyConsumer();
    }
    return withReplyTo(propertyBytes, reply.name);
  }

  private onContentBody(payload: Buffer): void {
    const a = this.assembly;
    if (a?.payload === undefined) throw new Error('content body without a header');
    if (a.received + payload.length > a.bodySize) {
      throw new AmqpError(ReplyCode.frameError, `FRAME_ERROR - content body of ${a.received + payload.length} bytes exceeds the declared size ${a.bodySize}`, basicClassId, 40);
    }
    payload.copy(a.payload, a.bodyStart + a.received);
    a.received += payload.length;
    if (a.received === a.bodySize) this.completePublish();
  }

  private completePublish(): void {
    const a = this.assembly;
    this.expecting = 'method';
    this.assembly = undefined;
    if (a?.payload === undefined) return;
    this.conn.publishedMessages++;
    const exLen = a.payload[0] ?? 0;
    let payload = a.payload;
    const pStart = 2 + exLen + (a.payload[1 + exLen] ?? 0) + 4;
    let pEnd = a.bodyStart;
    const selected = senderSelected(a.exchange, a.routingKey, payload, pStart, pEnd);
    if (selected !== undefined) {
      payload = selected.payload;
      pEnd = selected.propsEnd;
    }
    const routingKeys = selected?.routingKeys;
    if (this.broker.holds.alarmBlocked) this.broker.holds.holdPublisher(this.conn);
    if (this.txMode) {
      this.txPublishes.push({ exchange: a.exchange, routingKey: a.routingKey, mandatory: a.mandatory, payload, propsStart: pStart, propsEnd: pEnd, routingKeys });
      return;
    }
    this.routeAndPublish(a.exchange, a.routingKey, a.mandatory, payload, pStart, pEnd, routingKeys);
  }

  /** Routes through the exchange graph and hands the message to the shards that own the queues. */
  routeAndPublish(
    exchange: string,
    routingKey: string,
    mandatory: boolean,
    payload: Buffer,
    propsStart: number,
    propsEnd: number,
    routingKeys?: readonly string[],
  ): void {
    if (exchange === '' && routingKeys === undefined && routingKey.startsWith(replyToPrefix)) {
      this.publishReply(mandatory, payload, propsStart, propsEnd);
      return;
    }
    const vhost = this.conn.vhost;
    const routed = this.routed;
    // pop() keeps the array's backing store; `length = 0` would drop it and allocate on every publish.
    while (routed.length > 0) routed.pop();
    this.headersSource = payload;
    this.headersStart = propsStart;
    this.headersEnd = propsEnd;
    if (routingKeys === undefined) vhost.graph.route(exchange, routingKey, this.currentHeaders, vhost.queueExists, routed);
    else vhost.graph.routeKeys(exchange, routingKeys, this.currentHeaders, vhost.queueExists, routed);
    const tx = this.txCommit;
    const seq = this.confirmMode || tx !== undefined ? this.nextPublishSeq++ : 0;
    const shards = this.broker.groupByShard(vhost, routed);
    if (shards.size === 0) {
      if (mandatory) this.sendReturn(ReplyCode.noRoute, 'NO_ROUTE', payload, propsStart, propsEnd);
      if (seq !== 0 && tx === undefined) this.confirmOne(seq, true);
      return;
    }
    const flags = seq !== 0 ? PublishFlag.confirm : 0;
    if (seq !== 0) {
      this.unconfirmed.set(seq, { remaining: shards.size, ok: true, atMs: performance.now() });
      if (tx !== undefined) tx.outstanding++;
    }
    for (const [shard, queueIds] of shards) {
      shard.publish(this.key, seq, flags, queueIds, payload);
      this.broker.noteShardWrite(shard, this.conn);
    }
  }

  /**
   * A reply to a direct reply-to name: handed to the requester's channel now (or forwarded to its
   * node), confirmed at once (nothing is stored), and unroutable when the requester has gone.
   */
  private publishReply(mandatory: boolean, payload: Buffer, propsStart: number, propsEnd: number): void {
    const seq = this.confirmMode || this.txCommit !== undefined ? this.nextPublishSeq++ : 0;
    if (!this.broker.deliverDirectReply(payload) && mandatory) this.sendReturn(ReplyCode.noRoute, 'NO_ROUTE', payload, propsStart, propsEnd);
    if (seq !== 0 && this.txCommit === undefined) this.confirmOne(seq, true);
  }

  /**
   * A reply for this channel's reply consumer, which does not ack: as RabbitMQ does, it carries
   * the channel's next delivery tag without using it up, so acked deliveries' tags stay contiguous.
   */
  deliverReply(payload: Buffer): boolean {
    const reply = this.replyConsumer;
    if (reply === undefined || this.state !== 'open' || this.conn.transport.bufferedBytes > replyBacklogMaxBytes) return false;
    const exRkEnd = exchangeRoutingKeyEnd(payload);
    this.conn.writer.basicDeliver(this.id, reply.tagShortstr, this.nextDeliveryTag, false, payload.subarray(0, exRkEnd));
    this.writeContent(payload, exRkEnd);
    return true;
  }

  /** basic.consume of amq.rabbitmq.reply-to (checked by the caller): the channel gets its reply name. */
  startReplyConsumer(tag: string, tagShortstr: Buffer): void {
    assert.ok(this.replyConsumer === undefined, 'one reply consumer per channel');
    this.replyConsumer = { tag, tagShortstr, name: this.broker.directReplies.open(this) };
  }

  /** basic.cancel of the reply consumer, or the channel's end: replies to its name are unroutable from now on. */
  stopReplyConsumer(): void {
    const reply = this.replyConsumer;
    if (reply === undefined) return;
    this.replyConsumer = undefined;
    this.broker.directReplies.close(reply.name);
  }

  private sendReturn(replyCode: number, replyText: string, payload: Buffer, propsStart: number, propsEnd: number): void {
    this.conn.returnedMessages++;
    const w = this.conn.writer;
    w.basicReturn(this.id, replyCode, replyText, payload.subarray(0, propsStart - 4));
    w.contentHeader(this.id, basicClassId, payload.length - propsEnd, payload.subarray(propsStart, propsEnd));
    w.body(this.id, payload.subarray(propsEnd), this.conn.frameMaxBytes);
    this.broker.markDirty(this.conn);
  }

  // ---- confirms ---------------------------------------------------------------

  /** A shard's verdict on one publish record of this channel. */
  onShardConfirm(seq: number, ok: boolean): void {
    const u = this.unconfirmed.get(seq);
    if (u === undefined) return;
    if (!ok) u.ok = false;
    if (--u.remaining > 0) return;
    this.unconfirmed.delete(seq);
    if (this.txMode) {
      this.txPublishSettled(u.ok);
      return;
    }
    recordUs(this.broker.publishToConfirm, (performance.now() - u.atMs) * 1000);
    if (u.ok) this.confirmedOk.push(seq);
    else this.sendNack(seq);
  }

  /**
   * tx.commit: publishes the transaction's messages and settles its acks, then resolves once
   * every publish is where a confirm would say it is (on disk for a persistent message in a
   * durable queue, replicated for a replicated queue), as RabbitMQ answers tx.commit-ok only
   * then; 'failed' if a queue refused one (RabbitMQ: "partial tx completion"), 'closed' if the
   * channel went first.
   */
  commitTx(): Promise<'committed' | 'failed' | 'closed'> {
    assert.ok(this.txCommit === undefined, 'one tx.commit at a time (the channel is busy until it ends)');
    const publishes = this.txPublishes;
    const settles = this.txSettles;
    this.txPublishes = [];
    this.txSettles = [];
    return new Promise((resolve) => {
      const commit: TxCommitWait = { outstanding: 0, failed: false, routing: true, done: resolve };
      this.txCommit = commit;
      for (const p of publishes) this.routeAndPublish(p.exchange, p.routingKey, p.mandatory, p.payload, p.propsStart, p.propsEnd, p.routingKeys);
      for (const s of settles) this.settle(s.refs, s.how);
      commit.routing = false;
      this.maybeEndTxCommit(commit);
    });
  }

  private txCommit: TxCommitWait | undefined;

  private txPublishSettled(ok: boolean): void {
    const commit = this.txCommit;
    if (commit === undefined) return;
    if (!ok) commit.failed = true;
    commit.outstanding--;
    this.maybeEndTxCommit(commit);
  }

  private maybeEndTxCommit(commit: TxCommitWait): void {
    if (commit.routing || commit.outstanding > 0 || this.txCommit !== commit) return;
    this.txCommit = undefined;
    commit.done(commit.failed ? 'failed' : 'committed');
  }

  /** Emits the acks gathered from one confirms record: one basic.ack multiple where they form a prefix. */
  flushConfirms(): void {
    const done = this.confirmedOk;
    if (done.length === 0) return;
    done.sort((a, b) => a - b);
    let lowestOutstanding = Infinity;
    for (const k of this.unconfirmed.keys()) {
      lowestOutstanding = k;
      break;
    }
    let i = 0;
    while (i < done.length && (done[i] as number) < lowestOutstanding) i++;
    if (i > 0) this.sendAck(done[i - 1] as number, true);
    for (let j = i; j < done.length; j++) this.sendAck(done[j] as number, false);
    done.length = 0;
  }

  private confirmOne(seq: number, ok: boolean): void {
    if (ok) {
      this.confirmedOk.push(seq);
      this.flushConfirms();
    } else this.sendNack(seq);
  }

  private sendAck(tag: number, multiple: boolean): void {
    this.conn.sendMethod(this.id, { id: Method.BasicAck, args: { deliveryTag: tag, multiple } });
  }

  private sendNack(tag: number): void {
    this.conn.sendMethod(this.id, { id: Method.BasicNack, args: { deliveryTag: tag, multiple: false, requeue: false } });
  }

  // ---- deliveries -------------------------------------------------------------

  /** Writes basic.deliver + header + body for a message a shard handed to one of our consumers. */
  deliver(c: ConsumerRef, shard: QueueLink, queueId: number, msgId: number, redelivered: boolean, payload: Buffer): void {
    const tag = this.nextDeliveryTag++;
    if (!c.noAck) this.unacked.set(tag, { tag, shard, queueId, msgId, deadlineMs: deadlineAfter(c.timeoutMs), timeoutMs: c.timeoutMs });
    const exRkEnd = exchangeRoutingKeyEnd(payload);
    this.conn.writer.basicDeliver(this.id, c.tagShortstr, tag, redelivered, payload.subarray(0, exRkEnd));
    this.writeContent(payload, exRkEnd);
  }

  deliverGetOk(shard: QueueLink, queueId: number, msgId: number, redelivered: boolean, messageCount: number, noAck: boolean, payload: Buffer, timeoutMs: number): void {
    const tag = this.nextDeliveryTag++;
    if (!noAck) this.unacked.set(tag, { tag, shard, queueId, msgId, deadlineMs: deadlineAfter(timeoutMs), timeoutMs });
    const exRkEnd = exchangeRoutingKeyEnd(payload);
    this.conn.writer.basicGetOk(this.id, tag, redelivered, payload.subarray(0, exRkEnd), messageCount);
    this.writeContent(payload, exRkEnd);
  }

  /** Content header and body frames of a message payload (see ring/shard-records.ts). */
  private writeContent(payload: Buffer, exRkEnd: number): void {
    const propsStart = exRkEnd + 4;
    const propsEnd = propsStart + payload.readUInt32LE(exRkEnd);
    const w = this.conn.writer;
    w.contentHeader(this.id, basicClassId, payload.length - propsEnd, payload.subarray(propsStart, propsEnd));
    w.body(this.id, payload.subarray(propsEnd), this.conn.frameMaxBytes);
    this.broker.markDirty(this.conn);
  }

  // ---- acks -------------------------------------------------------------------

  /** Removes and returns the unacked deliveries a (tag, multiple) pair names; 406 for an unknown tag. */
  takeUnacked(tag: number, multiple: boolean, methodId: number): UnackedRef[] {
    const out: UnackedRef[] = [];
    if (multiple) {
      // RabbitMQ: tag 0 means everything outstanding; any other tag must itself be outstanding,
      // or nothing is settled and the channel closes (rabbit_channel:collect_acks).
      if (tag !== 0 && !this.unacked.has(tag)) throw this.unknownTag(tag, methodId);
      for (const [t, u] of this.unacked) {
        if (tag !== 0 && t > tag) break;
        out.push(u);
        this.unacked.delete(t);
      }
      return out;
    }
    const u = this.unacked.get(tag);
    if (u === undefined) throw this.unknownTag(tag, methodId);
    this.unacked.delete(tag);
    out.push(u);
    return out;
  }

  private unknownTag(tag: number, methodId: number): AmqpError {
    return new AmqpError(ReplyCode.preconditionFailed, `PRECONDITION_FAILED - unknown delivery tag ${tag}`, classIdOf(methodId), methodIdOf(methodId));
  }

  /** Sends acks or nacks to the shards, one record per queue. */
  settle(refs: UnackedRef[], how: 'ack' | 'requeue' | 'reject'): void {
    if (refs.length === 0) return;
    const byQueue = new Map<number, { shard: QueueLink; ids: number[] }>();
    for (const r of refs) {
      let g = byQueue.get(r.queueId);
      if (g === undefined) {
        g = { shard: r.shard, ids: [] };
        byQueue.set(r.queueId, g);
      }
      g.ids.push(r.msgId);
    }
    for (const [queueId, g] of byQueue) {
      if (how === 'ack') g.shard.ack(queueId, g.ids);
      else g.shard.nack(queueId, g.ids, how === 'requeue');
      this.broker.noteShardWrite(g.shard, undefined);
    }
    if (this.creditSlot >= 0 && this.state === 'open') {
      // Credit freed on one shard may let this channel's queues on the others deliver again.
      for (const shard of this.broker.shards) {
        shard.channelKick(this.key);
        this.broker.noteShardWrite(shard, undefined);
      }
    }
  }

  /** tx.rollback: acks and nacks of the transaction did not happen; the deliveries are unacked again. */
  rollbackSettles(): void {
    const refs = this.txSettles.flatMap((s) => s.refs).sort((a, b) => a.tag - b.tag);
    this.txSettles = [];
    const rest = [...this.unacked.values()];
    this.unacked.clear();
    for (const r of [...refs, ...rest].sort((a, b) => a.tag - b.tag)) this.unacked.set(r.tag, r);
  }

  // ---- flow -------------------------------------------------------------------

  /** Tells the shards whether this channel's consumers may receive (channel.flow and socket backpressure). */
  updateFlow(): void {
    const active = this.clientFlow && !this.conn.outputCongested && this.state === 'open';
    if (active === this.flowSent) return;
    this.flowSent = active;
    for (const shard of this.broker.shards) {
      shard.channelFlow(this.key, active);
      this.broker.noteShardWrite(shard, undefined);
    }
    for (const link of this.broker.remoteLinks.values()) {
      link.channelFlow(this.key, active);
      this.broker.noteShardWrite(link, undefined);
    }
  }

  /** The queue cancelled one of our consumers (deleted, or its node went away): basic.cancel, if the client takes it. */
  consumerCancelledByServer(c: ConsumerRef): void {
    if (this.state !== 'open' || !this.conn.capabilities.consumerCancelNotify) return;
    this.conn.sendMethod(this.id, { id: Method.BasicCancel, args: { consumerTag: c.tag, nowait: true } });
  }

  /** A peer link closed: deliveries it made must not be acked to a later link (see RetiredLink). */
  retireUnacked(link: QueueLink, retired: QueueLink): void {
    for (const [tag, u] of this.unacked) if (u.shard === link) this.unacked.set(tag, { ...u, shard: retired });
    for (const s of this.txSettles) s.refs = s.refs.map((u) => (u.shard === link ? { ...u, shard: retired } : u));
  }

  /**
   * RabbitMQ's consumer timeout: a delivery unacked past its deadline closes the channel with
   * 406 (its unacked deliveries go back to their queues). Deadlines differ by queue and
   * consumer (x-consumer-timeout, the consumer-timeout policy), so every unacked delivery is
   * looked at: a tick a minute by default, cheap against the deliveries themselves.
   */
  checkDeliveryTimeout(nowMs: number): void {
    if (this.state !== 'open') return;
    for (const u of this.unacked.values()) {
      if (nowMs < u.deadlineMs) continue;
      this.closeWithError(
        ReplyCode.preconditionFailed,
        `PRECONDITION_FAILED - delivery acknowledgement on channel ${this.id} timed out. Timeout value used: ${u.timeoutMs} ms. This timeout value can be configured, see consumers doc guide to learn more`,
        0,
        0,
      );
      return;
    }
  }

  // ---- close ------------------------------------------------------------------

  private closeWithError(replyCode: number, replyText: string, classId: number, methodId: number): void {
    if (this.state !== 'open') return;
    this.conn.broker.log.info(`channel ${this.id} on connection ${this.conn.name} closed: ${replyText}`);
    this.cleanup();
    this.state = 'closing';
    this.conn.sendMethod(this.id, { id: Method.ChannelClose, args: { replyCode, replyText: replyText.slice(0, 255), classId, methodId } });
  }

  /** channel.close from the client. */
  closeByClient(): void {
    this.cleanup();
    this.conn.sendMethod(this.id, { id: Method.ChannelCloseOk, args: {} });
    this.conn.channelClosed(this);
  }

  private onClosingMethod(m: AmqpMethod): void {
    if (m.id === Method.ChannelCloseOk) {
      this.state = 'closed';
      this.conn.channelClosed(this);
    } else if (m.id === Method.ChannelClose) {
      // The client's close crossed ours: answer it, and keep the channel number until the client's
      // close-ok for ours arrives, so that close-ok is not taken for a frame on an unopened channel
      // (as RabbitMQ does; a channel error followed at once by ch.close() must not cost the connection).
      this.conn.sendMethod(this.id, { id: Method.ChannelCloseOk, args: {} });
    }
  }

  /** Cancels consumers, then requeues unacked deliveries (in that order, so they are not handed straight back). */
  cleanup(): void {
    if (this.state === 'closed' || this.cleanedUp) return;
    this.cleanedUp = true;
    for (const c of [...this.consumers.values()]) this.broker.removeConsumer(c, false);
    this.stopReplyConsumer();
    const refs = [...this.unacked.values()];
    for (const s of this.txSettles) refs.push(...s.refs);
    this.unacked.clear();
    this.settle(refs, 'requeue');
    this.unconfirmed.clear();
    const commit = this.txCommit;
    this.txCommit = undefined;
    commit?.done('closed');
    this.txPublishes = [];
    this.txSettles = [];
    this.backlog.length = 0;
    if (this.globalPrefetch !== 0 || !this.flowSent) {
      for (const shard of this.broker.shards) {
        if (this.globalPrefetch !== 0) shard.channelQos(this.key, 0);
        if (!this.flowSent) shard.channelFlow(this.key, true);
        this.broker.noteShardWrite(shard, undefined);
      }
    }
    this.broker.unregisterChannel(this);
  }
  private cleanedUp = false;

  /** Queue-level helpers for the method handlers. */
  checkExclusiveAccess(q: QueueMeta): void {
    // An exclusive queue led by another node has its owner there: no connection here owns it.
    if ((q.owner !== undefined || q.exclusive) && q.owner !== this.conn) {
      throw new AmqpError(
        ReplyCode.resourceLocked,
        `RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '${q.name}' in vhost '${q.vhost}'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.`,
      );
    }
  }
}

/** Where the exchange and routing key at the head of a payload end (what basic.deliver and get-ok carry). */
function exchangeRoutingKeyEnd(payload: Buffer): number {
  const exLen = payload[0] ?? 0;
  return 2 + exLen + (payload[1 + exLen] ?? 0);
}

/** The consumer timeout's deadline for a delivery made now; a timeout of 0 never fires. */
function deadlineAfter(timeoutMs: number): number {
  return timeoutMs === 0 ? Infinity : performance.now() + timeoutMs;
}

/** Why RabbitMQ refuses an expiration property (its Erlang reason term), or undefined when it is valid. */
function invalidExpiration(expiration: string): string | readonly [tag: string, value: string] | undefined {
  const m = expirationPattern.exec(expiration);
  if (m === null) return 'no_integer';
  const rest = m[2] ?? '';
  if (rest !== '') return ['leftover_string', JSON.stringify(rest)];
  // Exact digits: a 20-digit value printed through a double would not be the one sent.
  const ms = BigInt(m[1] ?? '0');
  if (ms < 0n) return ['value_negative', ms.toString()];
  if (ms > BigInt(expirationMaxMs)) return ['value_too_large', ms.toString()];
  return undefined;
}
