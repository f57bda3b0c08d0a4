/**
 * RabbitMQ's direct reply-to. An RPC requester consumes, in no-ack mode, from the pseudo-queue
 * amq.rabbitmq.reply-to, and publishes its requests with reply-to set to that name; the broker
 * rewrites the property to a name of the requester's channel. A reply published to the default
 * exchange with that name as routing key goes straight to the channel: no queue is declared,
 * nothing is logged, no shard is involved, and a reply whose requester has gone is unroutable
 * (returned if mandatory). The name carries a token of the node (so another node can tell
 * where to forward a reply) and a random key (so one channel's name cannot be guessed from
 * another's).
 */
import { createHash, randomBytes } from 'node:crypto';
import { AmqpError } from '../amqp/errors.js';
import { ReplyCode } from '../amqp/spec.generated.js';

export const replyToPseudoQueue = 'amq.rabbitmq.reply-to';
export const replyToPrefix = `${replyToPseudoQueue}.`;

/** What queue.declare of the pseudo-queue answers: RabbitMQ reports no messages and one consumer. */
export const pseudoQueueCounts = { messageCount: 0, consumerCount: 1 } as const;

const basicClassId = 60;
const consumeMethodId = 20;
const publishMethodId = 40;

/** The channel side: where a reply goes. False when it cannot take it now (closing, or its client not reading). */
export interface ReplyTarget {
  deliverReply(payload: Buffer): boolean;
}

/**
 * Replies are written straight to the requester's socket, past the shards' flow control: past
 * this much unsent output a reply is unroutable (returned to a mandatory publisher), so a client
 * that stopped reading cannot make the node buffer replies without bound.
 */
export const replyBacklogMaxBytes = 16 * 1024 * 1024;

/** A channel's reply consumer: its tag, and the name its requests' reply-to is rewritten to. */
export interface ReplyConsumer {
  readonly tag: string;
  readonly tagShortstr: Buffer;
  readonly name: string;
}

/** Base64url digits of the node token (72 bits of sha256: no collision among a cluster's nodes). */
const nodeTokenChars = 12;

export function nodeToken(nodeName: string): string {
  return createHash('sha256').update(nodeName).digest('base64url').slice(0, nodeTokenChars);
}

/** The node token of a reply name, or undefined when the name is not shaped as this module makes them. */
export function replyNameToken(name: string): string | undefined {
  if (!name.startsWith(replyToPrefix)) return undefined;
  const token = name.slice(replyToPrefix.length, replyToPrefix.length + nodeTokenChars);
  return token.length === nodeTokenChars && name[replyToPrefix.length + nodeTokenChars] === '.' ? token : undefined;
}

/** The node's reply names and the channels they lead to. */
export class DirectReplies {
  readonly token: string;
  private readonly byName = new Map<string, ReplyTarget>();

  constructor(nodeName: string) {
    this.token = nodeToken(nodeName);
  }

  /** A fresh name for a channel that starts a reply consumer. */
  open(target: ReplyTarget): string {
    const name = `${replyToPrefix}${this.token}.${randomBytes(16).toString('base64url')}`;
    this.byName.set(name, target);
    return name;
  }

  close(name: string): void {
    this.byName.delete(name);
  }

  target(name: string): ReplyTarget | undefined {
    return this.byName.get(name);
  }

  /** Whether nodeToken made this name (then only this node can hold it). */
  ownName(name: string): boolean {
    return replyNameToken(name) === this.token;
  }

  get size(): number {
    return this.byName.size;
  }
}

export function replyConsumerMustNotAck(): AmqpError {
  return new AmqpError(ReplyCode.preconditionFailed, 'PRECONDITION_FAILED - reply consumer cannot acknowledge', basicClassId, consumeMethodId);
}

export function replyConsumerAlreadySet(): AmqpError {
  return new AmqpError(ReplyCode.preconditionFailed, 'PRECONDITION_FAILED - reply consumer already set', basicClassId, consumeMethodId);
}

export function noReplyConsumer(): AmqpError {
  return new AmqpError(ReplyCode.preconditionFailed, 'PRECONDITION_FAILED - fast reply consumer does not exist', basicClassId, publishMethodId);
}
