import { randomBytes } from 'node:crypto';
import { AmqpError } from '../../amqp/errors.js';
import type { FieldTable } from '../../amqp/field-table.js';
import { Method, ReplyCode } from '../../amqp/spec.generated.js';
import { validateHeadersBindingArgs } from '../../routing/headers-binding-args.js';
import { checkArgsEquivalent, checkQueueTypeArgs, queueLabel, validateQueueArgs } from '../queue-args.js';
import type { Channel } from '../channel.js';
import type { QueueMeta } from '../queue-meta.js';
import { noExchange } from './exchange-methods.js';
import { on, type HandlerTable } from './types.js';
import { pseudoQueueCounts, replyToPrefix, replyToPseudoQueue } from '../direct-reply.js';

export function noQueue(vhost: string, name: string, classId = 50, methodId = 10): AmqpError {
  return new AmqpError(ReplyCode.notFound, `NOT_FOUND - no ${queueLabel(vhost, name)}`, classId, methodId);
}

/** An empty queue name stands for the channel's most recently declared queue (RabbitMQ's shortcut). */
export function expandQueueName(ch: Channel, name: string, classId: number, methodId: number): string {
  if (name !== '') return name;
  if (ch.lastDeclaredQueue === '') {
    throw new AmqpError(ReplyCode.notFound, 'NOT_FOUND - no previously declared queue', classId, methodId);
  }
  return ch.lastDeclaredQueue;
}

/** Looks up a queue the channel may use (exists, and not another connection's exclusive queue). */
export function usableQueue(ch: Channel, queueName: string, classId: number, methodId: number): QueueMeta {
  const vhost = ch.conn.vhost;
  const name = expandQueueName(ch, queueName, classId, methodId);
  const q = vhost.queues.get(name);
  if (q === undefined) throw noQueue(vhost.name, name, classId, methodId);
  ch.checkExclusiveAccess(q);
  return q;
}

function inequivalentFlag(q: QueueMeta, arg: string, received: boolean, current: boolean): AmqpError {
  return new AmqpError(
    ReplyCode.preconditionFailed,
    `PRECONDITION_FAILED - inequivalent arg '${arg}' for ${queueLabel(q.vhost, q.name)}: received '${received}' but current is '${current}'`,
    50,
    10,
  );
}

/** Quorum queues and streams are durable, shared and explicit: RabbitMQ refuses the flags that contradict that. */
function checkReplicatedQueueFlags(args: FieldTable, durable: boolean, exclusive: boolean, autoDelete: boolean, vhost: string, name: string): void {
  const type = args['x-queue-type'];
  if (type?.type !== 'S' || (type.value !== 'quorum' && type.value !== 'stream')) return;
  const bad = autoDelete ? 'auto-delete' : exclusive ? 'exclusive-owner' : !durable ? 'non-durable' : undefined;
  if (bad !== undefined) {
    throw new AmqpError(ReplyCode.preconditionFailed, `PRECONDITION_FAILED - invalid property '${bad}' for ${queueLabel(vhost, name)}`, 50, 10);
  }
}

function serverNamedQueue(): string {
  return `amq.gen-${randomBytes(16).toString('base64url').slice(0, 22)}`;
}

/**
 * queue.bind and queue.unbind check in rabbit_channel's order, before looking anything up:
 * write on the queue, then the default exchange, then read on the exchange.
 */
function bindingPermissions(ch: Channel, queue: string, exchange: string, classId: number, methodId: number): void {
  ch.broker.authorize(ch.conn, 'write', 'queue', expandQueueName(ch, queue, classId, methodId));
  if (exchange === '') {
    throw new AmqpError(ReplyCode.accessRefused, 'ACCESS_REFUSED - operation not permitted on the default exchange', classId, methodId);
  }
  ch.broker.authorize(ch.conn, 'read', 'exchange', exchange);
}

export function registerQueueMethods(t: HandlerTable): void {
  on(t, Method.QueueDeclare, async (ch, a) => {
    const vhost = ch.conn.vhost;
    const name = a.queue === '' && !a.passive ? serverNamedQueue() : a.queue;
    if (name === replyToPseudoQueue || name.startsWith(replyToPrefix)) {
      // Declaring the pseudo-queue (passively or not) is how a client checks direct reply-to is
      // there; declaring a reply name, how a responder checks its requester is still there.
      if (name !== replyToPseudoQueue && !ch.broker.directReplyNameLive(name)) throw noQueue(vhost.name, name);
      if (!a.nowait) ch.conn.sendMethod(ch.id, { id: Method.QueueDeclareOk, args: { queue: name, ...pseudoQueueCounts } });
      return;
    }
    const existing = vhost.queues.get(name);
    if (a.passive) {
      if (existing === undefined) throw noQueue(vhost.name, name);
      ch.checkExclusiveAccess(existing);
    } else {
      // Unlike exchanges, even an existing amq.* queue (a server-named one) cannot be declared by
      // name: rabbit_channel checks the name before it looks the queue up; passive declares may.
      if (name.startsWith('amq.') && a.queue !== '') {
        throw new AmqpError(ReplyCode.accessRefused, `ACCESS_REFUSED - queue name '${name}' contains reserved prefix 'amq.*'`, 50, 10);
      }
      ch.broker.authorize(ch.conn, 'configure', 'queue', name);
      if (existing !== undefined) {
        ch.checkExclusiveAccess(existing);
        if (existing.durable !== a.durable) throw inequivalentFlag(existing, 'durable', a.durable, existing.durable);
        if (existing.exclusive !== a.exclusive) {
          // RabbitMQ reports a mismatch in exclusivity as the lock it is.
          throw new AmqpError(
            ReplyCode.resourceLocked,
            `RESOURCE_LOCKED - cannot obtain exclusive access to locked ${queueLabel(existing.vhost, existing.name)}. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.`,
            50,
            10,
          );
        }
        if (existing.autoDelete !== a.autoDelete) throw inequivalentFlag(existing, 'auto_delete', a.autoDelete, existing.autoDelete);
        checkArgsEquivalent(existing.arguments, a.arguments, vhost.name, name);
      } else {
        validateQueueArgs(a.arguments, vhost.name, name);
        checkQueueTypeArgs(a.arguments, vhost.name, name);
        // Dead-lettering reads from this queue and writes to the DLX: RabbitMQ checks both at declare.
        const dlx = a.arguments['x-dead-letter-exchange'];
        if (dlx?.type === 'S') {
          ch.broker.authorize(ch.conn, 'read', 'queue', name);
          ch.broker.authorize(ch.conn, 'write', 'exchange', dlx.value);
        }
        checkReplicatedQueueFlags(a.arguments, a.durable, a.exclusive, a.autoDelete, vhost.name, name);
        const nq = { name, durable: a.durable, exclusive: a.exclusive, autoDelete: a.autoDelete, arguments: a.arguments, owner: a.exclusive ? ch.conn : undefined };
        const q = ch.broker.cluster === undefined ? ch.broker.createQueue(vhost, nq) : await ch.broker.cluster.declareQueue(vhost, nq);
        // A durable queue's definition is on disk before the client can confirm messages into it.
        if (q.durable) await ch.broker.definitionsChanged();
        ch.lastDeclaredQueue = q.name;
        if (!a.nowait) ch.conn.sendMethod(ch.id, { id: Method.QueueDeclareOk, args: { queue: q.name, messageCount: 0, consumerCount: 0 } });
        return;
      }
    }
    const q = vhost.queues.get(name);
    if (q === undefined) throw noQueue(vhost.name, name);
    const [messageCount, leaderConsumers] = await q.shard.statQueue(q.queueId);
    ch.lastDeclaredQueue = name;
    // A queue led by another node has consumers on every node: its leader counts them all.
    const consumerCount = q.shard.remoteNode === undefined ? q.consumers.size : leaderConsumers;
    if (!a.nowait) {
      ch.conn.sendMethod(ch.id, { id: Method.QueueDeclareOk, args: { queue: name, messageCount, consumerCount } });
    }
  });

  on(t, Method.QueueBind, (ch, a) => {
    const vhost = ch.conn.vhost;
    bindingPermissions(ch, a.queue, a.exchange, 50, 20);
    const q = usableQueue(ch, a.queue, 50, 20);
    const ex = vhost.graph.getExchange(a.exchange);
    if (ex === undefined) throw noExchange(vhost.name, a.exchange, 50, 20);
    if (ex.type === 'headers') {
      const err = validateHeadersBindingArgs(a.arguments);
      if (err !== undefined) throw new AmqpError(ReplyCode.preconditionFailed, `PRECONDITION_FAILED - ${err}`, 50, 20);
    }
    // RabbitMQ: an empty queue name and an empty routing key bind with the queue's name as the key.
    const routingKey = a.queue === '' && a.routingKey === '' ? q.name : a.routingKey;
    if (vhost.graph.bind({ source: a.exchange, destination: q.name, destinationKind: 'queue', routingKey, arguments: a.arguments })) {
      if (q.durable && ex.durable) void ch.broker.definitionsChanged();
    }
    if (!a.nowait) ch.conn.sendMethod(ch.id, { id: Method.QueueBindOk, args: {} });
  });

  on(t, Method.QueueUnbind, (ch, a) => {
    const vhost = ch.conn.vhost;
    bindingPermissions(ch, a.queue, a.exchange, 50, 50);
    const q = vhost.queues.get(expandQueueName(ch, a.queue, 50, 50));
    if (q !== undefined && vhost.graph.getExchange(a.exchange) !== undefined) {
      ch.checkExclusiveAccess(q);
      const routingKey = a.queue === '' && a.routingKey === '' ? q.name : a.routingKey;
      if (vhost.graph.unbind({ source: a.exchange, destination: q.name, destinationKind: 'queue', routingKey, arguments: a.arguments })) {
        ch.broker.exchangeUnbound(vhost);
      }
    }
    ch.conn.sendMethod(ch.id, { id: Method.QueueUnbindOk, args: {} });
  });

  on(t, Method.QueuePurge, async (ch, a) => {
    ch.broker.authorize(ch.conn, 'read', 'queue', expandQueueName(ch, a.queue, 50, 30));
    const q = usableQueue(ch, a.queue, 50, 30);
    const messageCount = await q.shard.purgeQueue(q.queueId);
    if (!a.nowait) ch.conn.sendMethod(ch.id, { id: Method.QueuePurgeOk, args: { messageCount } });
  });

  on(t, Method.QueueDelete, async (ch, a) => {
    const vhost = ch.conn.vhost;
    const name = expandQueueName(ch, a.queue, 50, 40);
    // Refused even when the queue is not there, as in RabbitMQ: the permission is checked first.
    ch.broker.authorize(ch.conn, 'configure', 'queue', name);
    const q = vhost.queues.get(name);
    let messageCount = 0;
    if (q !== undefined) {
      ch.checkExclusiveAccess(q);
      if (a.ifUnused && q.consumers.size > 0) {
        throw new AmqpError(ReplyCode.preconditionFailed, `PRECONDITION_FAILED - ${queueLabel(q.vhost, q.name)} in use`, 50, 40);
      }
      if (a.ifEmpty) {
        const [ready] = await q.shard.statQueue(q.queueId);
        if (ready > 0) throw new AmqpError(ReplyCode.preconditionFailed, `PRECONDITION_FAILED - ${queueLabel(q.vhost, q.name)} not empty`, 50, 40);
      }
      messageCount = await ch.broker.deleteQueue(q, 'deleted');
    }
    if (!a.nowait) ch.conn.sendMethod(ch.id, { id: Method.QueueDeleteOk, args: { messageCount } });
  });
}
