import { randomBytes } from 'node:crypto';
import { AmqpError } from '../../amqp/errors.js';
import { fieldInt } from '../../amqp/field-table.js';
import { encodeShortstr } from '../../amqp/frame-writer.js';
import { Method, ReplyCode } from '../../amqp/spec.generated.js';
import { queueLabel, queueTypeOf, typeNames } from '../queue-args.js';
import { noExchange } from './exchange-methods.js';
import { expandQueueName, usableQueue } from './queue-methods.js';
import { replyConsumerAlreadySet, replyConsumerMustNotAck, replyToPseudoQueue } from '../direct-reply.js';
import { on, type HandlerTable } from './types.js';
import type { Channel } from '../channel.js';
import type { QueueMeta } from '../queue-meta.js';

function serverConsumerTag(): string {
  return `amq.ctag-${randomBytes(16).toString('base64url').slice(0, 22)}`;
}

/** basic.qos global=true: one limit (0 = none) on the unacked deliveries of all the channel's consumers, on every shard. */
function setChannelPrefetch(ch: Channel, prefetchCount: number): void {
  ch.globalPrefetch = prefetchCount;
  if (ch.creditSlot < 0) ch.creditSlot = ch.broker.allocateCreditSlot(prefetchCount);
  else Atomics.store(ch.broker.creditTable, 2 * ch.creditSlot, prefetchCount);
  for (const shard of ch.broker.shards) {
    shard.channelQos(ch.key, prefetchCount, ch.creditSlot + 1);
    ch.broker.noteShardWrite(shard, undefined);
  }
}

function isQuorum(q: QueueMeta): boolean {
  return queueTypeOf(q.arguments) === 'quorum';
}

export function registerBasicMethods(t: HandlerTable): void {
  on(t, Method.BasicQos, (ch, a) => {
    if (a.prefetchSize !== 0) {
      throw new AmqpError(ReplyCode.notImplemented, `NOT_IMPLEMENTED - prefetch_size!=0 (${a.prefetchSize})`, 60, 10);
    }
    if (a.global) {
      setChannelPrefetch(ch, a.prefetchCount);
    } else {
      ch.prefetchCount = a.prefetchCount;
      // RabbitMQ 3.x's global=false also lifts the channel-wide limit (rabbit_limiter:unlimit_prefetch):
      // only a global qos that comes after a per-consumer one leaves both in force.
      if (ch.globalPrefetch !== 0) setChannelPrefetch(ch, 0);
    }
    ch.conn.sendMethod(ch.id, { id: Method.BasicQosOk, args: {} });
  });

  on(t, Method.BasicConsume, (ch, a) => {
    if (a.queue === replyToPseudoQueue) {
      if (!a.noAck) throw replyConsumerMustNotAck();
      if (ch.replyConsumer !== undefined) throw replyConsumerAlreadySet();
      const tag = a.consumerTag === '' ? serverConsumerTag() : a.consumerTag;
      if (ch.consumers.has(tag)) throw new AmqpError(ReplyCode.notAllowed, `NOT_ALLOWED - attempt to reuse consumer tag '${tag}'`, 60, 20);
      if (!a.nowait) ch.conn.sendMethod(ch.id, { id: Method.BasicConsumeOk, args: { consumerTag: tag } });
      ch.startReplyConsumer(tag, encodeShortstr(tag));
      return;
    }
    // rabbit_channel's order: the tag, then the read permission, then whether the queue is there.
    const tag = a.consumerTag === '' ? serverConsumerTag() : a.consumerTag;
    if (ch.consumers.has(tag) || ch.replyConsumer?.tag === tag) {
      throw new AmqpError(ReplyCode.notAllowed, `NOT_ALLOWED - attempt to reuse consumer tag '${tag}'`, 60, 20);
    }
    ch.broker.authorize(ch.conn, 'read', 'queue', expandQueueName(ch, a.queue, 60, 20));
    const q = usableQueue(ch, a.queue, 60, 20);
    const quorum = isQuorum(q);
    if (quorum && ch.globalPrefetch !== 0) {
      // rabbit_quorum_queue:consume refuses a channel with a global limit; rabbit_channel makes that a connection error.
      throw new AmqpError(ReplyCode.notImplemented, `NOT_IMPLEMENTED - ${queueLabel(q.vhost, q.name)} does not support global qos`, 60, 20);
    }
    // RabbitMQ 3.10's quorum queues take the exclusive flag without enforcing it; warren enforces
    // it on every queue type, as the flag promises (docs/bad-input-answers.md).
    const exclusiveHolder = [...q.consumers].some((c) => c.exclusive);
    if (exclusiveHolder || (a.exclusive && q.consumers.size > 0)) {
      throw new AmqpError(ReplyCode.accessRefused, `ACCESS_REFUSED - ${queueLabel(q.vhost, q.name)} in exclusive use`, 60, 20);
    }
    const priorityArg = a.arguments['x-priority'];
    const priority = priorityArg === undefined ? 0 : fieldInt(priorityArg);
    if (priority === undefined) {
      throw new AmqpError(
        ReplyCode.preconditionFailed,
        `PRECONDITION_FAILED - invalid arg 'x-priority' for ${queueLabel(q.vhost, q.name)}: "expected integer, got ${typeNames[priorityArg?.type ?? ""] ?? priorityArg?.type}"`,
        60,
        20,
      );
    }
    const timeoutArg = a.arguments['x-consumer-timeout'];
    const consumerTimeoutMs = timeoutArg === undefined ? undefined : fieldInt(timeoutArg);
    if (timeoutArg !== undefined && (consumerTimeoutMs === undefined || consumerTimeoutMs < 0)) {
      throw new AmqpError(ReplyCode.preconditionFailed, `PRECONDITION_FAILED - invalid arg 'x-consumer-timeout' for ${queueLabel(q.vhost, q.name)}: must be a non-negative integer (ms)`, 60, 20);
    }
    if (!a.nowait) ch.conn.sendMethod(ch.id, { id: Method.BasicConsumeOk, args: { consumerTag: tag } });
    ch.broker.addConsumer(ch, q, tag, encodeShortstr(tag), a.noAck, a.exclusive, priority, consumerTimeoutMs);
  });

  on(t, Method.BasicCancel, (ch, a) => {
    const c = ch.consumers.get(a.consumerTag);
    if (c !== undefined) ch.broker.removeConsumer(c, false);
    else if (ch.replyConsumer?.tag === a.consumerTag) ch.stopReplyConsumer();
    if (!a.nowait) ch.conn.sendMethod(ch.id, { id: Method.BasicCancelOk, args: { consumerTag: a.consumerTag } });
  });

  on(t, Method.BasicPublish, (ch, a) => {
    // RabbitMQ dropped immediate in 3.0 and refuses it with a connection error.
    if (a.immediate) throw new AmqpError(ReplyCode.notImplemented, 'NOT_IMPLEMENTED - immediate=true', 60, 40);
    const vhost = ch.conn.vhost;
    // The write permission comes first: a user learns nothing about exchanges it may not write to.
    ch.broker.authorize(ch.conn, 'write', 'exchange', a.exchange);
    const ex = vhost.graph.getExchange(a.exchange);
    if (ex === undefined) throw noExchange(vhost.name, a.exchange, 60, 40);
    if (ex.internal) {
      throw new AmqpError(ReplyCode.accessRefused, `ACCESS_REFUSED - cannot publish to internal exchange '${a.exchange}' in vhost '${vhost.name}'`, 60, 40);
    }
    ch.startPublish(a.exchange, a.routingKey, a.mandatory);
  });

  on(t, Method.BasicGet, async (ch, a) => {
    ch.broker.authorize(ch.conn, 'read', 'queue', expandQueueName(ch, a.queue, 60, 70));
    const q = usableQueue(ch, a.queue, 60, 70);
    if (q.config.singleActiveConsumer && isQuorum(q)) {
      throw new AmqpError(
        ReplyCode.resourceLocked,
        `RESOURCE_LOCKED - cannot obtain access to locked ${queueLabel(q.vhost, q.name)}. basic.get operations are not supported by quorum queues with single active consumer`,
        60,
        70,
      );
    }
    const reply = await q.shard.get(q.queueId, ch.key, a.noAck);
    if (ch.state !== 'open') {
      // The channel closed while we waited: the message goes back.
      if (reply !== undefined && !a.noAck) q.shard.nack(reply.queueId, [reply.msgId], true);
      return;
    }
    if (reply === undefined) {
      ch.conn.sendMethod(ch.id, { id: Method.BasicGetEmpty, args: { clusterId: '' } });
      return;
    }
    ch.deliverGetOk(q.shard, reply.queueId, reply.msgId, reply.redelivered, reply.messageCount, a.noAck, reply.payload, ch.broker.queueDeliveryTimeoutMs(q));
  });

  on(t, Method.BasicAck, (ch, a) => {
    const refs = ch.takeUnacked(a.deliveryTag, a.multiple, Method.BasicAck);
    if (ch.txMode) ch.txSettles.push({ refs, how: 'ack' });
    else ch.settle(refs, 'ack');
  });

  on(t, Method.BasicReject, (ch, a) => {
    const refs = ch.takeUnacked(a.deliveryTag, false, Method.BasicReject);
    const how = a.requeue ? 'requeue' : 'reject';
    if (ch.txMode) ch.txSettles.push({ refs, how });
    else ch.settle(refs, how);
  });

  on(t, Method.BasicNack, (ch, a) => {
    const refs = ch.takeUnacked(a.deliveryTag, a.multiple, Method.BasicNack);
    const how = a.requeue ? 'requeue' : 'reject';
    if (ch.txMode) ch.txSettles.push({ refs, how });
    else ch.settle(refs, how);
  });

  const recover = (ch: Parameters<Parameters<typeof on>[2]>[0], requeue: boolean, methodId: number): void => {
    if (!requeue) throw new AmqpError(ReplyCode.notImplemented, 'NOT_IMPLEMENTED - requeue=false', 60, methodId);
    const refs = [...ch.unacked.values()];
    ch.unacked.clear();
    ch.settle(refs, 'requeue');
  };
  on(t, Method.BasicRecover, (ch, a) => {
    recover(ch, a.requeue, 110);
    ch.conn.sendMethod(ch.id, { id: Method.BasicRecoverOk, args: {} });
  });
  on(t, Method.BasicRecoverAsync, (ch, a) => recover(ch, a.requeue, 100));
}
