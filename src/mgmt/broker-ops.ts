/**
 * What the management API changes, done through the Broker the way the AMQP method
 * handlers do it (src/front/methods/*) and with the same checks and texts: queue and
 * exchange declare/delete/purge, bindings, publishing (routing + hand-off to the shards, as
 * Channel.routeAndPublish) and fetching messages (as basic.get, then ack or nack).
 *
 * Errors are AmqpErrors where AMQP would raise one; the HTTP layer maps them as RabbitMQ's
 * management plugin maps a closed channel (see http-errors.ts fromAmqpError).
 */
import { AmqpError } from '../amqp/errors.js';
import { decodeProperties, encodeProperties, peekHeaders, type BasicProperties } from '../amqp/content-header.js';
import { tableFromJs, tableToJs, tablesEqual, type FieldTable } from '../amqp/field-table.js';
import { ReplyCode } from '../amqp/spec.generated.js';
import type { Broker } from '../front/broker.js';
import type { QueueMeta } from '../front/queue-meta.js';
import { checkArgsEquivalent, checkQueueTypeArgs, queueLabel, validateQueueArgs } from '../front/queue-args.js';
import type { VHost } from '../front/vhost.js';
import { buildPayload, payloadLayout, payloadExchange, payloadRoutingKey } from '../ring/shard-records.js';
import { validateHeadersBindingArgs } from '../routing/headers-binding-args.js';
import type { DestinationKind, ExchangeType } from '../routing/types.js';

const exchangeTypes = new Set(['direct', 'fanout', 'topic', 'headers']);
/** A shortstr (names, routing keys, string properties) holds at most 255 bytes. */
const shortstrMaxBytes = 255;
/** The front's nesting bound for field tables (amqp/field-table.ts tableNestingMax). */
const nestingMax = 64;
/** Messages one /get may fetch; each is a shard round trip and all are held until the answer. */
export const getCountMax = 10_000;
/** The channel key the management API's gets use: channel keys start at 1, and 0 names no AMQP channel. */
const mgmtChannelKey = 0;
const expirationPattern = /^(0|[1-9][0-9]*)$/;

function precondition(text: string): AmqpError {
  return new AmqpError(ReplyCode.preconditionFailed, `PRECONDITION_FAILED - ${text}`);
}

function accessRefused(text: string): AmqpError {
  return new AmqpError(ReplyCode.accessRefused, `ACCESS_REFUSED - ${text}`);
}

function notFound(text: string): AmqpError {
  return new AmqpError(ReplyCode.notFound, `NOT_FOUND - ${text}`);
}

/** Names travel as AMQP shortstrs. */
export function checkName(kind: string, name: string): void {
  const bytes = Buffer.byteLength(name);
  if (bytes > shortstrMaxBytes) throw precondition(`${kind} name of ${bytes} bytes is longer than ${shortstrMaxBytes}`);
}

function depth(v: unknown, limit: number): number {
  if (limit < 0) return Infinity;
  if (typeof v !== 'object' || v === null) return 0;
  let d = 0;
  for (const x of Array.isArray(v) ? v : Object.values(v)) d = Math.max(d, depth(x, limit - 1));
  return d + 1;
}

/** A JSON object of arguments → a field table (RabbitMQ's type inference), refusing what AMQP could not carry. */
export function argumentsTable(v: unknown, what = 'arguments'): FieldTable {
  if (v === undefined || v === null) return tableFromJs({});
  if (typeof v !== 'object' || Array.isArray(v)) throw precondition(`${what} must be a JSON object`);
  if (depth(v, nestingMax) > nestingMax) throw precondition(`${what} nest deeper than ${nestingMax} levels`);
  return tableFromJs(v as Record<string, unknown>);
}

export function queueOf(vhost: VHost, name: string): QueueMeta {
  const q = vhost.queues.get(name);
  if (q === undefined) throw notFound(`no ${queueLabel(vhost.name, name)}`);
  return q;
}

/** The API acts as no connection: another connection's exclusive queue is locked to it. */
function checkNotExclusive(q: QueueMeta): void {
  if (q.owner === undefined) return;
  throw new AmqpError(
    ReplyCode.resourceLocked,
    `RESOURCE_LOCKED - cannot obtain exclusive access to locked ${queueLabel(q.vhost, q.name)}. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.`,
  );
}

// ---- queues -----------------------------------------------------------------------

export interface QueueDeclare {
  durable: boolean;
  autoDelete: boolean;
  arguments: FieldTable;
}

/** queue.declare without a connection (never exclusive). Returns true when it created the queue. */
export async function declareQueue(b: Broker, vhost: VHost, name: string, d: QueueDeclare): Promise<boolean> {
  checkName('queue', name);
  const existing = vhost.queues.get(name);
  if (existing !== undefined) {
    checkNotExclusive(existing);
    if (existing.durable !== d.durable) throw precondition(`inequivalent arg 'durable' for ${queueLabel(vhost.name, name)}: received '${d.durable}' but current is '${existing.durable}'`);
    if (existing.autoDelete !== d.autoDelete) {
      throw precondition(`inequivalent arg 'auto_delete' for ${queueLabel(vhost.name, name)}: received '${d.autoDelete}' but current is '${existing.autoDelete}'`);
    }
    checkArgsEquivalent(existing.arguments, d.arguments, vhost.name, name);
    return false;
  }
  if (name.startsWith('amq.')) throw accessRefused(`queue name '${name}' contains reserved prefix 'amq.*'`);
  validateQueueArgs(d.arguments, vhost.name, name);
  checkQueueTypeArgs(d.arguments, vhost.name, name);
  const q = b.createQueue(vhost, { name, durable: d.durable, exclusive: false, autoDelete: d.autoDelete, arguments: d.arguments, owner: undefined });
  // As queue.declare: a durable queue is on disk before anyone can confirm messages into it.
  if (q.durable) await b.definitionsChanged();
  return true;
}

export async function deleteQueue(b: Broker, q: QueueMeta, ifUnused: boolean, ifEmpty: boolean): Promise<void> {
  checkNotExclusive(q);
  if (ifUnused && q.consumers.size > 0) throw precondition(`${queueLabel(q.vhost, q.name)} in use`);
  if (ifEmpty) {
    const [ready] = await q.shard.statQueue(q.queueId);
    if (ready > 0) throw precondition(`${queueLabel(q.vhost, q.name)} is not empty`);
  }
  await b.deleteQueue(q, 'deleted via the management API');
  if (q.durable) await b.definitionsChanged();
}

export async function purgeQueue(b: Broker, q: QueueMeta): Promise<number> {
  checkNotExclusive(q);
  const p = q.shard.purgeQueue(q.queueId);
  b.noteShardWrite(q.shard, undefined);
  return p;
}

// ---- exchanges --------------------------------------------------------------------

export interface ExchangeDeclare {
  type: string;
  durable: boolean;
  autoDelete: boolean;
  internal: boolean;
  arguments: FieldTable;
}

function inequivalentExchange(vhost: string, name: string, arg: string, received: string, current: string): AmqpError {
  return precondition(`inequivalent arg '${arg}' for exchange '${name}' in vhost '${vhost}': received '${received}' but current is '${current}'`);
}

/** exchange.declare; true when it created the exchange. */
export async function declareExchange(b: Broker, vhost: VHost, name: string, d: ExchangeDeclare): Promise<boolean> {
  checkName('exchange', name);
  if (name === '') throw accessRefused('operation not permitted on the default exchange');
  if (!exchangeTypes.has(d.type)) throw new AmqpError(ReplyCode.commandInvalid, `COMMAND_INVALID - unknown exchange type '${d.type}'`);
  const existing = vhost.graph.getExchange(name);
  if (existing !== undefined) {
    if (existing.type !== d.type) throw inequivalentExchange(vhost.name, name, 'type', d.type, existing.type);
    if (existing.durable !== d.durable) throw inequivalentExchange(vhost.name, name, 'durable', String(d.durable), String(existing.durable));
    if (existing.autoDelete !== d.autoDelete) throw inequivalentExchange(vhost.name, name, 'auto_delete', String(d.autoDelete), String(existing.autoDelete));
    if (existing.internal !== d.internal) throw inequivalentExchange(vhost.name, name, 'internal', String(d.internal), String(existing.internal));
    const ae = (t: FieldTable): FieldTable => ({ ae: t['alternate-exchange'] ?? { type: 'V', value: null } });
    if (!tablesEqual(ae(d.arguments), ae(existing.arguments))) throw precondition(`inequivalent arg 'alternate-exchange' for exchange '${name}' in vhost '${vhost.name}'`);
    return false;
  }
  if (name.startsWith('amq.')) throw accessRefused(`exchange name '${name}' contains reserved prefix 'amq.*'`);
  vhost.graph.declareExchange({ name, type: d.type as ExchangeType, durable: d.durable, autoDelete: d.autoDelete, internal: d.internal, arguments: d.arguments });
  b.applyExchangePolicy(vhost, name);
  await b.definitionsChanged();
  return true;
}

export async function deleteExchange(b: Broker, vhost: VHost, name: string, ifUnused: boolean): Promise<void> {
  if (name === '') throw accessRefused('operation not permitted on the default exchange');
  if (vhost.graph.getExchange(name) === undefined) throw notFound(`no exchange '${name}' in vhost '${vhost.name}'`);
  if (name.startsWith('amq.')) throw accessRefused(`deletion of system exchange '${name}' in vhost '${vhost.name}' not allowed`);
  if (ifUnused && vhost.graph.hasBindingsAsSource(name)) throw precondition(`exchange '${name}' in vhost '${vhost.name}' in use`);
  b.deleteExchange(vhost, name);
  await b.definitionsChanged();
}

// ---- bindings ---------------------------------------------------------------------

export interface BindingSpec {
  source: string;
  destination: string;
  destinationKind: DestinationKind;
  routingKey: string;
  arguments: FieldTable;
}

/** Both ends must exist and neither be the default exchange (404 / 403 as AMQP). */
export function checkBindingEnds(vhost: VHost, s: BindingSpec): void {
  if (s.source === '' || (s.destinationKind === 'exchange' && s.destination === '')) throw accessRefused('operation not permitted on the default exchange');
  if (vhost.graph.getExchange(s.source) === undefined) throw notFound(`no exchange '${s.source}' in vhost '${vhost.name}'`);
  if (s.destinationKind === 'queue') {
    const q = queueOf(vhost, s.destination);
    checkNotExclusive(q);
  } else if (vhost.graph.getExchange(s.destination) === undefined) {
    throw notFound(`no exchange '${s.destination}' in vhost '${vhost.name}'`);
  }
}

export async function bind(b: Broker, vhost: VHost, s: BindingSpec): Promise<void> {
  checkBindingEnds(vhost, s);
  checkName('routing key', s.routingKey);
  if (vhost.graph.getExchange(s.source)?.type === 'headers') {
    const err = validateHeadersBindingArgs(s.arguments);
    if (err !== undefined) throw precondition(err);
  }
  if (vhost.graph.bind({ source: s.source, destination: s.destination, destinationKind: s.destinationKind, routingKey: s.routingKey, arguments: s.arguments })) {
    await b.definitionsChanged();
  }
}

export async function unbind(b: Broker, vhost: VHost, s: BindingSpec): Promise<boolean> {
  if (!vhost.graph.unbind({ source: s.source, destination: s.destination, destinationKind: s.destinationKind, routingKey: s.routingKey, arguments: s.arguments })) return false;
  b.exchangeUnbound(vhost);
  await b.definitionsChanged();
  return true;
}

// ---- publish ----------------------------------------------------------------------

/** The management API's property names (RabbitMQ's, snake_case) → basic properties. */
const propertyNames: Record<string, keyof BasicProperties> = {
  content_type: 'contentType',
  content_encoding: 'contentEncoding',
  headers: 'headers',
  delivery_mode: 'deliveryMode',
  priority: 'priority',
  correlation_id: 'correlationId',
  reply_to: 'replyTo',
  expiration: 'expiration',
  message_id: 'messageId',
  timestamp: 'timestamp',
  type: 'type',
  user_id: 'userId',
  app_id: 'appId',
  cluster_id: 'clusterId',
};

function octet(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw precondition(`property ${name} must be an integer between ${min} and ${max}`);
  return v;
}

/** JSON properties → basic properties, checked as a content header would be. */
export function propertiesFromJson(v: unknown): BasicProperties {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw precondition('properties must be a JSON object');
  const p: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    const name = Object.hasOwn(propertyNames, k) ? propertyNames[k] : undefined;
    if (name === undefined) throw precondition(`unknown message property '${k}'`);
    if (name === 'headers') p[name] = argumentsTable(x, 'headers');
    else if (name === 'deliveryMode') p[name] = octet(k, x, 1, 2);
    else if (name === 'priority') p[name] = octet(k, x, 0, 255);
    else if (name === 'timestamp') {
      if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) throw precondition('property timestamp must be a non-negative integer (seconds)');
      p[name] = x;
    } else {
      if (typeof x !== 'string') throw precondition(`property ${k} must be a string`);
      if (Buffer.byteLength(x) > shortstrMaxBytes) throw precondition(`property ${k} is longer than ${shortstrMaxBytes} bytes`);
      if (name === 'expiration' && !expirationPattern.test(x)) throw precondition(`invalid expiration '${x}'`);
      p[name] = x;
    }
  }
  return p as BasicProperties;
}

/**
 * Routes a message from an exchange and hands it to the shards owning the queues it reaches
 * (Channel.routeAndPublish without confirms: no channel waits for them). True if any queue got it.
 */
export function publish(b: Broker, vhost: VHost, exchange: string, routingKey: string, props: BasicProperties, body: Buffer): boolean {
  const ex = vhost.graph.getExchange(exchange);
  if (ex === undefined) throw notFound(`no exchange '${exchange}' in vhost '${vhost.name}'`);
  if (ex.internal) throw accessRefused(`cannot publish to internal exchange '${exchange}' in vhost '${vhost.name}'`);
  checkName('routing key', routingKey);
  const max = b.config.maxMessageBytes;
  if (body.length > max) throw precondition(`message size ${body.length} is larger than configured max size ${max}`);
  const propBytes = encodeProperties(props);
  const payload = buildPayload(exchange, routingKey, propBytes, body);
  const routed: string[] = [];
  vhost.graph.route(exchange, routingKey, () => props.headers ?? peekHeaders(propBytes), vhost.queueExists, routed);
  const shards = b.groupByShard(vhost, routed);
  const any = shards.size > 0;
  for (const [shard, queueIds] of shards) {
    shard.publish(0, 0, 0, queueIds, payload);
    b.noteShardWrite(shard, undefined);
  }
  return any;
}

// ---- get --------------------------------------------------------------------------

export type AckMode = 'ack_requeue_true' | 'ack_requeue_false' | 'reject_requeue_true' | 'reject_requeue_false';
export const ackModes: ReadonlySet<string> = new Set<AckMode>(['ack_requeue_true', 'ack_requeue_false', 'reject_requeue_true', 'reject_requeue_false']);

export interface FetchedMessage {
  payload_bytes: number;
  redelivered: boolean;
  exchange: string;
  routing_key: string;
  message_count: number;
  properties: Record<string, unknown>;
  payload: string;
  payload_encoding: 'string' | 'base64';
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function encodeBody(body: Buffer, encoding: 'auto' | 'base64'): { payload: string; payload_encoding: 'string' | 'base64' } {
  if (encoding === 'auto') {
    try {
      return { payload: utf8.decode(body), payload_encoding: 'string' };
    } catch {
      // not UTF-8: base64 below
    }
  }
  return { payload: body.toString('base64'), payload_encoding: 'base64' };
}

function propertiesToJson(propBytes: Buffer): Record<string, unknown> {
  let p: BasicProperties;
  try {
    p = decodeProperties(propBytes);
  } catch {
    return {};
  }
  const out: Record<string, unknown> = {};
  for (const [jsonName, name] of Object.entries(propertyNames)) {
    const v = p[name];
    if (v === undefined) continue;
    out[jsonName] = name === 'headers' ? tableToJs(v as FieldTable) : v;
  }
  return out;
}

/**
 * Takes up to count messages as basic.get would, then settles them all by ackmode:
 * requeued ones go back to their places only after the last get, so one call never sees a
 * message twice (and a requeued message is marked redelivered, as in RabbitMQ).
 */
export async function getMessages(b: Broker, q: QueueMeta, count: number, ackMode: AckMode, encoding: 'auto' | 'base64', truncateBytes: number | undefined): Promise<FetchedMessage[]> {
  checkNotExclusive(q);
  const out: FetchedMessage[] = [];
  const msgIds: number[] = [];
  let queueId = q.queueId;
  for (let i = 0; i < count && !q.deleted; i++) {
    const reply = await q.shard.get(q.queueId, mgmtChannelKey, false);
    if (reply === undefined) break;
    queueId = reply.queueId;
    msgIds.push(reply.msgId);
    const payload = reply.payload;
    const layout = payloadLayout(payload);
    const body = payload.subarray(layout.propsEnd);
    const shown = truncateBytes === undefined ? body : body.subarray(0, truncateBytes);
    out.push({
      payload_bytes: body.length,
      redelivered: reply.redelivered,
      exchange: payloadExchange(payload),
      routing_key: payloadRoutingKey(payload),
      message_count: reply.messageCount,
      properties: propertiesToJson(payload.subarray(layout.propsStart, layout.propsEnd)),
      ...encodeBody(shown, encoding),
    });
  }
  if (msgIds.length > 0) {
    if (ackMode === 'ack_requeue_false') q.shard.ack(queueId, msgIds);
    else q.shard.nack(queueId, msgIds, ackMode !== 'reject_requeue_false');
    b.noteShardWrite(q.shard, undefined);
  }
  return out;
}
