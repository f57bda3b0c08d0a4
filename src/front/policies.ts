/**
 * Policies: named, per vhost, with a pattern, an apply-to, a priority and a definition.
 * The highest-priority matching policy applies to a queue; its queue keys feed
 * effectiveQueueConfig (where the queue's own arguments win as RabbitMQ's rules say).
 * Validation follows rabbit_policy / rabbit_policies, with their error texts.
 */
import { erlangBinaryText } from '../routing/erlang-term-text.js';
import type { OverflowMode } from '../shard/queue-config.js';
import type { PolicyDef } from './definitions.js';
import type { PolicyQueueSettings } from './queue-args.js';

/** A policy RabbitMQ would refuse; the message is what rabbitmqctl prints after "Error:". */
export class PolicyError extends Error {}

const applyToValues = new Set(['queues', 'exchanges', 'all', 'classic_queues', 'quorum_queues', 'streams']);
const overflowModes = new Set<string>(['drop-head', 'reject-publish', 'reject-publish-dlx']);

/** rabbit_policies' per-key checks: which values are valid, and the noun of its error text. */
const keyRules: Record<string, { valid: (v: unknown) => boolean; what: string }> = {
  'alternate-exchange': { valid: isString, what: 'alternate exchange name' },
  'dead-letter-exchange': { valid: isString, what: 'dead letter exchange name' },
  'dead-letter-routing-key': { valid: isString, what: 'dead letter routing key' },
  'message-ttl': { valid: (v) => isInt(v, 0), what: 'message TTL' },
  expires: { valid: (v) => isInt(v, 1), what: 'queue expiry' },
  'max-length': { valid: (v) => isInt(v, 0), what: 'maximum length' },
  'max-length-bytes': { valid: (v) => isInt(v, 0), what: 'maximum length in bytes' },
  'delivery-limit': { valid: (v) => isInt(v, 0), what: 'delivery limit' },
  'consumer-timeout': { valid: (v) => isInt(v, 0), what: 'consumer timeout' },
  overflow: { valid: (v) => typeof v === 'string' && overflowModes.has(v), what: 'overflow value' },
  'queue-mode': { valid: (v) => v === 'default' || v === 'lazy', what: 'queue-mode value' },
  'queue-leader-locator': { valid: (v) => v === 'client-local' || v === 'balanced' || v === 'random' || v === 'least-leaders', what: 'queue leader locator value' },
  'initial-cluster-size': { valid: (v) => isInt(v, 0), what: 'cluster size' },
  'max-in-memory-length': { valid: (v) => isInt(v, 0), what: 'maximum memory in bytes' },
  'max-in-memory-bytes': { valid: (v) => isInt(v, 0), what: 'maximum memory in bytes' },
  'max-age': { valid: (v) => typeof v === 'string' && /^[1-9][0-9]*[YMDhms]$/.test(v), what: 'max age' },
  'stream-max-segment-size-bytes': { valid: (v) => isInt(v, 0), what: 'segment size' },
  'queue-version': { valid: (v) => v === 1 || v === 2, what: 'queue-version value' },
  // Classic mirroring keys (accepted for definitions written by RabbitMQ 3.x; see ARCHITECTURE §3).
  'ha-mode': { valid: (v) => v === 'all' || v === 'exactly' || v === 'nodes', what: 'ha-mode value' },
  'ha-params': { valid: (v) => isInt(v, 1) || (Array.isArray(v) && v.every(isString)), what: 'ha-params value' },
  'ha-sync-mode': { valid: (v) => v === 'manual' || v === 'automatic', what: 'ha-sync-mode value' },
  'ha-promote-on-shutdown': { valid: (v) => v === 'always' || v === 'when-synced', what: 'ha-promote-on-shutdown value' },
  'ha-promote-on-failure': { valid: (v) => v === 'always' || v === 'when-synced', what: 'ha-promote-on-failure value' },
  'min-insync': { valid: (v) => isInt(v, 1), what: 'min-insync value' },
};

function isString(v: unknown): v is string {
  return typeof v === 'string';
}

function isInt(v: unknown, min: number): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min;
}

/** A JSON value as Erlang's ~p prints it once RabbitMQ has decoded the JSON. */
export function erlangJsonText(v: unknown): string {
  if (typeof v === 'string') return erlangBinaryText(Buffer.from(v, 'utf8'));
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return `[${v.map(erlangJsonText).join(',')}]`;
  const entries = Object.entries(v as Record<string, unknown>).map(([k, x]) => `${erlangBinaryText(Buffer.from(k, 'utf8'))} => ${erlangJsonText(x)}`);
  return `#{${entries.join(',')}}`;
}

function failed(detail: string): PolicyError {
  return new PolicyError(`Validation failed\n\n${detail}\n`);
}

/** Compiles a policy or permission pattern (RabbitMQ uses PCRE; JavaScript's syntax is close enough for the usual anchors and classes). */
export function compilePattern(pattern: string): RegExp | string {
  try {
    return new RegExp(pattern);
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/** Throws PolicyError with rabbit_policy's validation texts. */
export function validatePolicy(p: PolicyDef): void {
  if (typeof p.name !== 'string' || p.name === '') throw failed('policy name must be a non-empty string');
  if (typeof p.pattern !== 'string') throw failed(`pattern should be a binary but was ${erlangJsonText(p.pattern)}`);
  const re = compilePattern(p.pattern);
  if (typeof re === 'string') throw failed(`pattern should be regular expression but is invalid: ${re}`);
  if (!applyToValues.has(p['apply-to'])) {
    throw failed(
      `apply-to '${String(p['apply-to'])}' unrecognised; should be one of: 'queues', 'classic_queues',  'quorum_queues', 'streams', 'exchanges', or 'all'`,
    );
  }
  if (typeof p.priority !== 'number' || !Number.isFinite(p.priority)) throw failed(`priority should be a number, actually was ${erlangJsonText(p.priority)}`);
  const def = p.definition;
  if (typeof def !== 'object' || def === null || Array.isArray(def)) throw failed(`definition must be a dictionary: ${erlangJsonText(def)}`);
  const entries = Object.entries(def);
  if (entries.length === 0) throw failed('no policy provided');
  const unknown = entries.filter(([k]) => keyRules[k] === undefined);
  if (unknown.length > 0) {
    throw failed(`[${unknown.map(([k, v]) => `{${erlangBinaryText(Buffer.from(k, 'utf8'))},${erlangJsonText(v)}}`).join(',')}] are not recognised policy settings`);
  }
  for (const [k, v] of entries) {
    const rule = keyRules[k];
    if (rule !== undefined && !rule.valid(v)) throw failed(`${erlangJsonText(v)} is not a valid ${rule.what}`);
  }
}

export class PolicyStore {
  private readonly byVhost = new Map<string, Map<string, PolicyDef>>();
  private readonly patterns = new Map<string, RegExp>();

  set(p: PolicyDef): void {
    validatePolicy(p);
    let m = this.byVhost.get(p.vhost);
    if (m === undefined) {
      m = new Map();
      this.byVhost.set(p.vhost, m);
    }
    m.set(p.name, { ...p });
  }

  get(vhost: string, name: string): PolicyDef | undefined {
    return this.byVhost.get(vhost)?.get(name);
  }

  clear(vhost: string, name: string): boolean {
    return this.byVhost.get(vhost)?.delete(name) ?? false;
  }

  list(vhost?: string): PolicyDef[] {
    if (vhost !== undefined) return [...(this.byVhost.get(vhost)?.values() ?? [])];
    return [...this.byVhost.values()].flatMap((m) => [...m.values()]);
  }

  dropVhost(vhost: string): void {
    this.byVhost.delete(vhost);
  }

  private pattern(source: string): RegExp {
    let re = this.patterns.get(source);
    if (re === undefined) {
      re = new RegExp(source);
      this.patterns.set(source, re);
    }
    return re;
  }

  /**
   * The policy that applies to an exchange (apply-to exchanges or all): the highest priority
   * among matches; on a tie the first name in sort order, as RabbitMQ 3.10 picks.
   */
  forExchange(vhost: string, name: string): PolicyDef | undefined {
    let best: PolicyDef | undefined;
    for (const p of this.byVhost.get(vhost)?.values() ?? []) {
      const a = p['apply-to'];
      if ((a !== 'all' && a !== 'exchanges') || !this.pattern(p.pattern).test(name)) continue;
      if (best === undefined || p.priority > best.priority || (p.priority === best.priority && p.name < best.name)) best = p;
    }
    return best;
  }

  /** The policy that applies to a queue of this type; ties as for exchanges. */
  forQueue(vhost: string, name: string, queueType: string): PolicyDef | undefined {
    let best: PolicyDef | undefined;
    for (const p of this.byVhost.get(vhost)?.values() ?? []) {
      const a = p['apply-to'];
      const applies =
        a === 'all' ||
        a === 'queues' ||
        (a === 'classic_queues' && queueType === 'classic') ||
        (a === 'quorum_queues' && queueType === 'quorum') ||
        (a === 'streams' && queueType === 'stream');
      if (!applies || !this.pattern(p.pattern).test(name)) continue;
      if (best === undefined || p.priority > best.priority || (p.priority === best.priority && p.name < best.name)) best = p;
    }
    return best;
  }
}

export function policyQueueSettings(p: PolicyDef | undefined): PolicyQueueSettings | undefined {
  if (p === undefined) return undefined;
  const d = p.definition;
  const s: PolicyQueueSettings = {};
  const int = (k: string): number | undefined => (typeof d[k] === 'number' ? d[k] : undefined);
  const str = (k: string): string | undefined => (typeof d[k] === 'string' ? d[k] : undefined);
  const set = <K extends keyof PolicyQueueSettings>(k: K, v: PolicyQueueSettings[K] | undefined): void => {
    if (v !== undefined) s[k] = v;
  };
  set('message-ttl', int('message-ttl'));
  set('expires', int('expires'));
  set('max-length', int('max-length'));
  set('max-length-bytes', int('max-length-bytes'));
  set('delivery-limit', int('delivery-limit'));
  set('consumer-timeout', int('consumer-timeout'));
  set('overflow', str('overflow') as OverflowMode | undefined);
  set('dead-letter-exchange', str('dead-letter-exchange'));
  set('dead-letter-routing-key', str('dead-letter-routing-key'));
  return s;
}
