/**
 * Policies: named, per vhost, with a pattern, an apply-to, a priority and a definition.
 * The highest-priority matching policy applies to a queue; its queue keys feed
 * effectiveQueueConfig (where the queue's own arguments win as RabbitMQ's rules say).
 */
import type { OverflowMode } from '../shard/queue-config.js';
import type { PolicyDef } from './definitions.js';
import type { PolicyQueueSettings } from './queue-args.js';

export class PolicyError extends Error {}

const applyToValues = new Set(['queues', 'exchanges', 'all', 'classic_queues', 'quorum_queues', 'streams']);
const overflowModes = new Set<string>(['drop-head', 'reject-publish', 'reject-publish-dlx']);
const intKeys = ['message-ttl', 'expires', 'max-length', 'max-length-bytes', 'delivery-limit'] as const;
const strKeys = ['dead-letter-exchange', 'dead-letter-routing-key', 'alternate-exchange', 'queue-mode', 'ha-mode', 'ha-sync-mode', 'queue-master-locator', 'queue-leader-locator'] as const;
/** Keys RabbitMQ accepts in a policy definition (max-priority is not one of them). */
const knownKeys = new Set<string>([...intKeys, ...strKeys, 'overflow', 'ha-params', 'min-insync', 'ha-promote-on-shutdown', 'ha-promote-on-failure']);

/** Throws PolicyError with RabbitMQ-like validation messages. */
export function validatePolicy(p: PolicyDef): void {
  if (typeof p.name !== 'string' || p.name === '') throw new PolicyError('policy name must be a non-empty string');
  try {
    new RegExp(p.pattern);
  } catch {
    throw new PolicyError(`Validation failed\n\n'${p.pattern}' is not a valid regular expression`);
  }
  if (!applyToValues.has(p['apply-to'])) throw new PolicyError(`Validation failed\n\n'${String(p['apply-to'])}' is not a valid apply-to value`);
  if (!Number.isInteger(p.priority)) throw new PolicyError('Validation failed\n\npriority must be an integer');
  const def = p.definition;
  if (typeof def !== 'object' || def === null || Object.keys(def).length === 0) throw new PolicyError('Validation failed\n\ndefinition must be a non-empty JSON object');
  for (const [k, v] of Object.entries(def)) {
    if (!knownKeys.has(k)) throw new PolicyError(`Validation failed\n\n[{<<"${k}">>,${JSON.stringify(v)}}] are not recognised policy settings`);
    if ((intKeys as readonly string[]).includes(k) && (!Number.isInteger(v) || (v as number) < 0 || (k === 'expires' && v === 0))) {
      throw new PolicyError(`Validation failed\n\n${JSON.stringify(v)} is not a valid ${k} value`);
    }
    if ((strKeys as readonly string[]).includes(k) && typeof v !== 'string') throw new PolicyError(`Validation failed\n\n${JSON.stringify(v)} is not a valid ${k} value`);
    if (k === 'overflow' && !overflowModes.has(String(v))) throw new PolicyError(`Validation failed\n\n${JSON.stringify(v)} is not a valid overflow value`);
  }
}

export class PolicyStore {
  private readonly byVhost = new Map<string, Map<string, PolicyDef>>();

  set(p: PolicyDef): void {
    validatePolicy(p);
    let m = this.byVhost.get(p.vhost);
    if (m === undefined) {
      m = new Map();
      this.byVhost.set(p.vhost, m);
    }
    m.set(p.name, { ...p, priority: p.priority ?? 0 });
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

  /** The policy that applies to a queue: highest priority among matches (ties: the later name, deterministic). */
  forQueue(vhost: string, name: string, queueType: string): PolicyDef | undefined {
    let best: PolicyDef | undefined;
    for (const p of this.byVhost.get(vhost)?.values() ?? []) {
      const a = p['apply-to'];
      const applies = a === 'all' || a === 'queues' || (a === 'classic_queues' && queueType === 'classic') || (a === 'quorum_queues' && queueType === 'quorum');
      if (!applies || !new RegExp(p.pattern).test(name)) continue;
      if (best === undefined || p.priority > best.priority || (p.priority === best.priority && p.name > best.name)) best = p;
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
  set('overflow', str('overflow') as OverflowMode | undefined);
  set('dead-letter-exchange', str('dead-letter-exchange'));
  set('dead-letter-routing-key', str('dead-letter-routing-key'));
  return s;
}
