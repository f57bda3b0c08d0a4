/**
 * Queue declare arguments: validation with RabbitMQ's error texts, the equivalence check
 * for redeclares, and the effective settings (arguments, then policy) sent to the shard.
 */
import type { FieldTable, FieldValue } from '../amqp/field-table.js';
import { fieldInt } from '../amqp/field-table.js';
import { AmqpError } from '../amqp/errors.js';
import { erlangValueText } from '../routing/erlang-term-text.js';
import { ReplyCode } from '../amqp/spec.generated.js';
import type { OverflowMode, QueueConfig } from '../shard/queue-config.js';

const integerTypes = new Set(['b', 'B', 's', 'u', 'I', 'i', 'l']);
const overflowModes = new Set<string>(['drop-head', 'reject-publish', 'reject-publish-dlx']);
const queueTypes = new Set(['classic', 'quorum', 'stream']);
/**
 * Streams are not implemented: a stream declared as a queue would hand out and delete messages
 * like a queue, silently unlike RabbitMQ's append-only log, so a new one is refused as RabbitMQ
 * refuses a type it does not know (checkQueueTypeArgs).
 */
const declarableQueueTypes = new Set(['classic', 'quorum']);
const maxPriorityLimit = 255;

/** RabbitMQ's names for field types, as they appear in its error texts. */
export const typeNames: Record<string, string> = {
  t: 'bool', b: 'byte', B: 'unsignedbyte', s: 'short', u: 'unsignedshort', I: 'signedint', i: 'unsignedint',
  l: 'long', f: 'float', d: 'double', D: 'decimal', S: 'longstr', x: 'binary', A: 'array', T: 'timestamp', F: 'table', V: 'void',
};

/** Arguments whose values must match on redeclare (others are ignored, as RabbitMQ does). */
const equivalenceArgs = [
  'x-expires', 'x-message-ttl', 'x-max-length', 'x-max-length-bytes', 'x-dead-letter-exchange',
  'x-dead-letter-routing-key', 'x-max-priority', 'x-overflow', 'x-queue-type', 'x-single-active-consumer',
  'x-delivery-limit',
];

export function queueLabel(vhost: string, name: string): string {
  return `queue '${name}' in vhost '${vhost}'`;
}

function invalid(arg: string, vhost: string, name: string, detail: string): AmqpError {
  return new AmqpError(ReplyCode.preconditionFailed, `PRECONDITION_FAILED - invalid arg '${arg}' for ${queueLabel(vhost, name)}: ${detail}`);
}

/** A queue's type from its x-queue-type argument: 'classic' when it has none. */
export function queueTypeOf(args: FieldTable): string {
  const t = args['x-queue-type'];
  return t?.type === 'S' ? t.value : 'classic';
}

/** A value as rabbit_misc:val prints it: a binary with ~s, anything else with ~p. */
function describe(v: FieldValue): string {
  if (v.type === 'S') return v.value;
  if (v.type === 'x') return v.value.toString('latin1');
  return erlangValueText(v);
}

/**
 * The "received … but current is …" of rabbit_misc:assert_args_equivalence: when both sides
 * have the argument only the values are quoted; when one lacks it, that side is "none" and
 * the other says its type too.
 */
export function inequivalentArgDetail(received: FieldValue | undefined, current: FieldValue | undefined): string {
  if (received !== undefined && current !== undefined) return `received '${describe(received)}' but current is '${describe(current)}'`;
  const side = (v: FieldValue | undefined): string => (v === undefined ? 'none' : `the value '${describe(v)}' of type '${typeNames[v.type] ?? v.type}'`);
  return `received ${side(received)} but current is ${side(current)}`;
}

/** rabbit_misc:assert_args_equivalence's test: the same type class (integers together) and the same value. */
export function sameArgValue(a: FieldValue | undefined, b: FieldValue | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return sameValue(a, b);
}

/** rabbit_misc:check_expiry's bound (?MAX_EXPIRY_TIMER): ten years in ms, as measured on RabbitMQ 3.10. */
const expiryMaxMs = 315_360_000_000;

/**
 * Throws RabbitMQ's 406 for a malformed x-argument, with the texts of
 * rabbit_amqqueue:check_declare_arguments/2 (checked in its declare_args order) and of
 * rabbit_channel's x-dead-letter-exchange type check, which runs first.
 */
export function validateQueueArgs(args: FieldTable, vhost: string, name: string): void {
  const dlx = args['x-dead-letter-exchange'];
  if (dlx !== undefined && dlx.type !== 'S') {
    throw new AmqpError(
      ReplyCode.preconditionFailed,
      `PRECONDITION_FAILED - invalid type '${typeNames[dlx.type] ?? dlx.type}' for arg 'x-dead-letter-exchange' in ${queueLabel(vhost, name)}`,
    );
  }
  const typeError = (v: FieldValue): string => `{unacceptable_type,${typeNames[v.type] ?? v.type}}`;
  /** check_int_arg, then the bounds of the argument's own check. */
  const intArg = (key: string, check: (n: number) => string | undefined): void => {
    const v = args[key];
    if (v === undefined) return;
    if (!integerTypes.has(v.type)) throw invalid(key, vhost, name, `"expected integer, got ${typeNames[v.type] ?? v.type}"`);
    const detail = check(fieldInt(v) ?? NaN);
    if (detail !== undefined) throw invalid(key, vhost, name, detail);
  };
  const nonNegative = (n: number): string | undefined => (n < 0 ? `{value_negative,${n}}` : undefined);
  const expiry = (n: number): string | undefined => (n < 0 ? `{value_negative,${n}}` : n > expiryMaxMs ? `{value_too_large,${n}}` : undefined);
  const strArg = (key: string, check?: (s: string) => string | undefined): void => {
    const v = args[key];
    if (v === undefined) return;
    if (v.type !== 'S') throw invalid(key, vhost, name, typeError(v));
    const detail = check?.(v.value);
    if (detail !== undefined) throw invalid(key, vhost, name, detail);
  };
  intArg('x-expires', (n) => (n === 0 ? '{value_zero,0}' : expiry(n)));
  intArg('x-message-ttl', expiry);
  if (args['x-dead-letter-routing-key'] !== undefined && dlx === undefined && args['x-dead-letter-routing-key'].type === 'S') {
    throw invalid('x-dead-letter-routing-key', vhost, name, 'routing_key_but_no_dlx_defined');
  }
  strArg('x-dead-letter-routing-key');
  intArg('x-max-length', nonNegative);
  intArg('x-max-length-bytes', nonNegative);
  intArg('x-max-priority', (n) => nonNegative(n) ?? (n > maxPriorityLimit ? `{max_value_exceeded,${n}}` : undefined));
  strArg('x-overflow', (s) => (overflowModes.has(s) ? undefined : 'invalid_overflow'));
  const sac = args['x-single-active-consumer'];
  if (sac !== undefined && sac.type !== 't') throw invalid('x-single-active-consumer', vhost, name, typeError(sac));
  strArg('x-queue-type', (s) => (queueTypes.has(s) ? undefined : `"unsupported queue type '${s}'"`));
  intArg('x-delivery-limit', nonNegative);
  intArg('x-consumer-timeout', nonNegative);
}

/**
 * For a queue being declared now (AMQP, the management API, a definitions upload), on top of
 * validateQueueArgs: the type must be one warren runs, and no argument may belong to another
 * type. Definitions a node already holds (its own file, the cluster's) skip this, so a queue an
 * older version accepted still comes back.
 */
export function checkQueueTypeArgs(args: FieldTable, vhost: string, name: string): void {
  const queueType = queueTypeOf(args);
  if (!declarableQueueTypes.has(queueType)) throw invalid('x-queue-type', vhost, name, `"unsupported queue type '${queueType}'"`);
  const refused = argsRefusedByType[queueType];
  for (const key of Object.keys(args)) {
    if (refused?.has(key) === true) {
      throw new AmqpError(ReplyCode.preconditionFailed, `PRECONDITION_FAILED - invalid arg '${key}' for ${queueLabel(vhost, name)} of queue type rabbit_${queueType}_queue`);
    }
  }
}

/**
 * Arguments RabbitMQ 3.10 knows (another queue type or streams use them) but refuses for this
 * queue type, measured against it; an argument nobody knows (x-foo) is accepted and ignored.
 */
const argsRefusedByType: Record<string, ReadonlySet<string>> = {
  classic: new Set([
    'x-max-in-memory-length',
    'x-max-in-memory-bytes',
    'x-queue-leader-locator',
    'x-quorum-initial-group-size',
    'x-delivery-limit',
    'x-dead-letter-strategy',
    'x-max-age',
    'x-stream-max-segment-size-bytes',
    'x-initial-cluster-size',
  ]),
  quorum: new Set(['x-max-priority', 'x-queue-mode', 'x-queue-version', 'x-queue-master-locator', 'x-max-age', 'x-stream-max-segment-size-bytes', 'x-initial-cluster-size']),
};

/** Throws 406 "inequivalent arg" when a redeclare differs in an argument that matters. */
export function checkArgsEquivalent(current: FieldTable, received: FieldTable, vhost: string, name: string): void {
  for (const key of equivalenceArgs) {
    const a = received[key];
    const b = current[key];
    if (a === undefined && b === undefined) continue;
    if (a !== undefined && b !== undefined && sameValue(a, b)) continue;
    throw new AmqpError(
      ReplyCode.preconditionFailed,
      `PRECONDITION_FAILED - inequivalent arg '${key}' for ${queueLabel(vhost, name)}: ${inequivalentArgDetail(a, b)}`,
    );
  }
}

function sameValue(a: FieldValue, b: FieldValue): boolean {
  if (integerTypes.has(a.type) && integerTypes.has(b.type)) return fieldInt(a) === fieldInt(b);
  return a.type === b.type && describe(a) === describe(b);
}

/** The settings a policy can supply (RabbitMQ's policy keys; max-priority is not one of them). */
export interface PolicyQueueSettings {
  'message-ttl'?: number;
  expires?: number;
  'max-length'?: number;
  'max-length-bytes'?: number;
  overflow?: OverflowMode;
  'dead-letter-exchange'?: string;
  'dead-letter-routing-key'?: string;
  'delivery-limit'?: number;
  'consumer-timeout'?: number;
}

export interface QueueIdentity {
  queueId: number;
  vhost: string;
  name: string;
  durable: boolean;
  exclusive: boolean;
  autoDelete: boolean;
  arguments: FieldTable;
}

/**
 * Arguments win over a policy, except for the numeric limits where RabbitMQ applies the
 * lower of the two (message-ttl, expires, max-length, max-length-bytes, delivery-limit),
 * and a quorum queue's overflow, where RabbitMQ 3.10 lets the policy win.
 */
export function effectiveQueueConfig(q: QueueIdentity, policy: PolicyQueueSettings | undefined): QueueConfig {
  const a = q.arguments;
  const p = policy ?? {};
  const lower = (argKey: string, policyValue: number | undefined): number | undefined => {
    const v = fieldInt(a[argKey]);
    if (v === undefined) return policyValue;
    return policyValue === undefined ? v : Math.min(v, policyValue);
  };
  const str = (argKey: string, policyValue: string | undefined): string | undefined => {
    const v = a[argKey];
    return v?.type === 'S' ? v.value : policyValue;
  };
  const quorum = queueTypeOf(a) === 'quorum';
  const overflow = quorum ? (p.overflow ?? str('x-overflow', undefined)) : str('x-overflow', p.overflow);
  const config: QueueConfig = {
    queueId: q.queueId,
    vhost: q.vhost,
    name: q.name,
    durable: q.durable,
    exclusive: q.exclusive,
    autoDelete: q.autoDelete,
    overflow: (overflow ?? 'drop-head') as OverflowMode,
    maxPriority: fieldInt(a['x-max-priority']) ?? 0,
    singleActiveConsumer: a['x-single-active-consumer']?.type === 't' && a['x-single-active-consumer'].value === true,
  };
  const set = <K extends keyof QueueConfig>(k: K, v: QueueConfig[K] | undefined): void => {
    if (v !== undefined) config[k] = v;
  };
  set('messageTtlMs', lower('x-message-ttl', p['message-ttl']));
  set('expiresMs', lower('x-expires', p.expires));
  set('maxLength', lower('x-max-length', p['max-length']));
  set('maxLengthBytes', lower('x-max-length-bytes', p['max-length-bytes']));
  set('deliveryLimit', lower('x-delivery-limit', p['delivery-limit']));
  if (quorum) config.deliveryCountHeader = true;
  set('deadLetterExchange', str('x-dead-letter-exchange', p['dead-letter-exchange']));
  set('deadLetterRoutingKey', str('x-dead-letter-routing-key', p['dead-letter-routing-key']));
  return config;
}
