/**
 * Definitions in RabbitMQ's JSON format (what `rabbitmqctl export_definitions` writes):
 * users, vhosts, permissions, policies, queues, exchanges, bindings. Used for the node's own
 * definitions file (durable objects only, plus warren's queue placement) and for
 * export/import, so a RabbitMQ setup can be moved over.
 */
import { tableFromJs, tableToJs } from '../amqp/field-table.js';
import type { ExchangeType } from '../routing/types.js';
import type { Broker } from './broker.js';
import { hashingAlgorithm, isHashingAlgorithm, type User } from './users.js';
import { warrenVersion } from '../node/version.js';
import { AmqpError } from '../amqp/errors.js';
import { compilePattern, validatePolicy, PolicyError } from './policies.js';
import { checkQueueTypeArgs, validateQueueArgs } from './queue-args.js';

export interface PolicyDef {
  vhost: string;
  name: string;
  pattern: string;
  'apply-to': 'queues' | 'exchanges' | 'all' | 'classic_queues' | 'quorum_queues' | 'streams';
  definition: Record<string, unknown>;
  priority: number;
}

export interface Definitions {
  rabbit_version?: string;
  rabbitmq_version?: string;
  product_name?: string;
  product_version?: string;
  users?: { name: string; password_hash: string; hashing_algorithm?: string; tags: string[] | string; limits?: Record<string, unknown> }[];
  vhosts?: { name: string; limits?: unknown; metadata?: Record<string, unknown> }[];
  permissions?: { user: string; vhost: string; configure: string; write: string; read: string }[];
  topic_permissions?: unknown[];
  parameters?: unknown[];
  global_parameters?: unknown[];
  policies?: PolicyDef[];
  queues?: { name: string; vhost: string; durable: boolean; auto_delete: boolean; arguments: Record<string, unknown>; type?: string }[];
  exchanges?: { name: string; vhost: string; type: string; durable: boolean; auto_delete: boolean; internal: boolean; arguments: Record<string, unknown> }[];
  bindings?: { source: string; vhost: string; destination: string; destination_type: 'queue' | 'exchange'; routing_key: string; arguments: Record<string, unknown> }[];
  /** warren's own: where each durable queue lives (id and shard), so its log is found again. */
  warren?: { format: 1; queue_placement: { vhost: string; name: string; id: number; shard: number }[] };
}

export class DefinitionsError extends Error {}

function userTags(u: User): string[] {
  return [...u.tags];
}

/** The broker's durable definitions (non-durable and exclusive objects are not exported, as in RabbitMQ). */
export function exportDefinitions(broker: Broker, withPlacement: boolean): Definitions {
  const d: Definitions = {
    rabbit_version: '3.13.0',
    rabbitmq_version: '3.13.0',
    product_name: 'warren',
    product_version: warrenVersion,
    users: [],
    vhosts: [],
    permissions: [],
    topic_permissions: [],
    parameters: [],
    global_parameters: [],
    policies: [],
    queues: [],
    exchanges: [],
    bindings: [],
  };
  for (const u of broker.users.users.values()) {
    d.users?.push({ name: u.name, password_hash: u.passwordHash, hashing_algorithm: u.hashingAlgorithm ?? hashingAlgorithm, tags: userTags(u), limits: {} });
    for (const [vhost, p] of u.permissions) d.permissions?.push({ user: u.name, vhost, configure: p.configure, write: p.write, read: p.read });
  }
  const placement: { vhost: string; name: string; id: number; shard: number }[] = [];
  for (const v of broker.vhosts.values()) {
    d.vhosts?.push({ name: v.name, limits: [], metadata: { description: '', tags: [] } });
    for (const p of broker.policies.list(v.name)) d.policies?.push(p);
    for (const q of v.queues.values()) {
      if (!q.durable || q.exclusive) continue;
      // The node's own file holds the queues whose logs it has; a queue led by another node comes back from the cluster.
      if (withPlacement && q.shard.remoteNode !== undefined) continue;
      const type = q.arguments['x-queue-type'];
      d.queues?.push({
        name: q.name,
        vhost: v.name,
        durable: true,
        auto_delete: q.autoDelete,
        arguments: tableToJs(q.arguments),
        type: type?.type === 'S' ? type.value : 'classic',
      });
      placement.push({ vhost: v.name, name: q.name, id: q.queueId, shard: q.shard.index });
    }
    for (const e of v.graph.exchanges()) {
      if (!e.durable || e.name === '' || e.name.startsWith('amq.')) continue;
      d.exchanges?.push({
        name: e.name,
        vhost: v.name,
        type: e.type,
        durable: true,
        auto_delete: e.autoDelete,
        internal: e.internal,
        arguments: tableToJs(e.arguments),
      });
    }
    for (const b of v.graph.bindings()) {
      const src = v.graph.getExchange(b.source);
      if (src === undefined || !src.durable) continue;
      if (b.destinationKind === 'queue') {
        const q = v.queues.get(b.destination);
        if (q === undefined || !q.durable || q.exclusive) continue;
      } else if (v.graph.getExchange(b.destination)?.durable !== true) continue;
      d.bindings?.push({
        source: b.source,
        vhost: v.name,
        destination: b.destination,
        destination_type: b.destinationKind,
        routing_key: b.routingKey,
        arguments: tableToJs(b.arguments),
      });
    }
  }
  if (withPlacement) d.warren = { format: 1, queue_placement: placement };
  return d;
}

const exchangeTypes = new Set(['direct', 'fanout', 'topic', 'headers']);

function tagList(tags: unknown): string[] {
  if (Array.isArray(tags)) return tags.map(String);
  return String(tags ?? '').split(',').map((t) => t.trim()).filter((t) => t !== '');
}

/** Policy entries as RabbitMQ writes them; apply-to and priority may be left out (defaults 'all' and 0). */
function policyOf(p: PolicyDef): PolicyDef {
  return { ...p, 'apply-to': p['apply-to'] ?? 'all', priority: p.priority ?? 0 };
}

/** Checks a whole document before anything is applied, so a bad import changes nothing. */
function validateDefinitions(broker: Broker, d: Definitions, uploaded: boolean): void {
  const list = <T>(key: keyof Definitions): T[] => {
    const v = d[key];
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw new DefinitionsError(`'${key}' must be a list`);
    return v as T[];
  };
  const vhosts = new Set(broker.vhosts.keys());
  for (const v of list<{ name: unknown }>('vhosts')) {
    if (typeof v?.name !== 'string' || v.name === '') throw new DefinitionsError('vhost without a name');
    vhosts.add(v.name);
  }
  const needVhost = (vhost: unknown, what: string): void => {
    if (typeof vhost !== 'string' || !vhosts.has(vhost)) throw new DefinitionsError(`${what} in unknown vhost '${String(vhost)}'`);
  };
  const users = new Set(broker.users.users.keys());
  for (const u of list<NonNullable<Definitions['users']>[number]>('users')) {
    if (typeof u?.name !== 'string' || typeof u.password_hash !== 'string') throw new DefinitionsError('user entry without name or password_hash');
    if (u.hashing_algorithm !== undefined && !isHashingAlgorithm(u.hashing_algorithm)) {
      throw new DefinitionsError(`user '${u.name}': hashing algorithm '${u.hashing_algorithm}' is not supported`);
    }
    if (u.password_hash !== '' && Buffer.from(u.password_hash, 'base64').length <= 4) throw new DefinitionsError(`user '${u.name}': password_hash is not a salted hash`);
    users.add(u.name);
  }
  for (const p of list<NonNullable<Definitions['permissions']>[number]>('permissions')) {
    if (!users.has(p?.user)) throw new DefinitionsError(`permissions for unknown user '${String(p?.user)}'`);
    needVhost(p.vhost, `permissions of user '${p.user}'`);
    for (const k of ['configure', 'write', 'read'] as const) {
      if (typeof p[k] !== 'string' || typeof compilePattern(p[k]) === 'string') throw new DefinitionsError(`permissions of user '${p.user}': ${k} is not a valid regular expression`);
    }
  }
  for (const p of list<PolicyDef>('policies')) {
    needVhost(p?.vhost, `policy '${String(p?.name)}'`);
    try {
      validatePolicy(policyOf(p));
    } catch (err) {
      if (err instanceof PolicyError) throw new DefinitionsError(`policy '${p.name}' in vhost '${p.vhost}': ${err.message.trim()}`);
      throw err;
    }
  }
  for (const e of list<NonNullable<Definitions['exchanges']>[number]>('exchanges')) {
    needVhost(e?.vhost, `exchange '${String(e?.name)}'`);
    if (typeof e.name !== 'string') throw new DefinitionsError('exchange without a name');
    if (!exchangeTypes.has(e.type)) throw new DefinitionsError(`exchange '${e.name}': unknown type '${e.type}'`);
  }
  for (const q of list<NonNullable<Definitions['queues']>[number]>('queues')) {
    needVhost(q?.vhost, `queue '${String(q?.name)}'`);
    if (typeof q.name !== 'string') throw new DefinitionsError('queue without a name');
    try {
      const args = tableFromJs(q.arguments ?? {});
      validateQueueArgs(args, q.vhost, q.name);
      // A queue new to this node is declared now and checked as a declare would be; one it holds already stays as it is.
      if (uploaded && broker.vhosts.get(q.vhost)?.queues.has(q.name) !== true) checkQueueTypeArgs(args, q.vhost, q.name);
    } catch (err) {
      if (err instanceof AmqpError) throw new DefinitionsError(err.replyText.replace(/^PRECONDITION_FAILED - /, ''));
      throw err;
    }
  }
  for (const b of list<NonNullable<Definitions['bindings']>[number]>('bindings')) needVhost(b?.vhost, 'binding');
}

/**
 * Applies definitions: creates what is missing, overwrites users/permissions/policies,
 * leaves existing queues and exchanges as they are (RabbitMQ's import semantics). The whole
 * document is checked first; a DefinitionsError means nothing was changed.
 *
 * `uploaded`: a document a user hands in (management API, warrenctl import_definitions), whose
 * new queues are checked as queue.declare checks them; false for definitions a node already
 * holds (its own file at start-up, the cluster's), which come back as they were accepted.
 */
export function importDefinitions(broker: Broker, d: Definitions, uploaded = false): void {
  if (typeof d !== 'object' || d === null) throw new DefinitionsError('definitions must be a JSON object');
  validateDefinitions(broker, d, uploaded);
  for (const v of d.vhosts ?? []) broker.addVhost(v.name);
  for (const u of d.users ?? []) {
    const existing = broker.users.users.get(u.name);
    const user: User = { name: u.name, passwordHash: u.password_hash, tags: tagList(u.tags), permissions: existing?.permissions ?? new Map() };
    if (u.hashing_algorithm !== undefined && u.hashing_algorithm !== hashingAlgorithm && isHashingAlgorithm(u.hashing_algorithm)) {
      user.hashingAlgorithm = u.hashing_algorithm;
    }
    broker.users.users.set(u.name, user);
  }
  for (const p of d.permissions ?? []) {
    broker.users.setPermissions(p.user, p.vhost, { configure: p.configure, write: p.write, read: p.read });
  }
  for (const p of d.policies ?? []) broker.policies.set(policyOf(p));
  const placement = new Map((d.warren?.queue_placement ?? []).map((p) => [`${p.vhost}\u0000${p.name}`, p]));
  for (const e of d.exchanges ?? []) {
    const v = broker.vhosts.get(e.vhost);
    if (v === undefined || v.graph.getExchange(e.name) !== undefined) continue;
    v.graph.declareExchange({
      name: e.name,
      type: e.type as ExchangeType,
      durable: e.durable,
      autoDelete: e.auto_delete,
      internal: e.internal,
      arguments: tableFromJs(e.arguments ?? {}),
    });
  }
  for (const q of d.queues ?? []) {
    const v = broker.vhosts.get(q.vhost);
    if (v === undefined || v.queues.has(q.name)) continue;
    const args = tableFromJs(q.arguments ?? {});
    const p = placement.get(`${q.vhost}\u0000${q.name}`);
    broker.createQueue(
      v,
      { name: q.name, durable: q.durable, exclusive: false, autoDelete: q.auto_delete, arguments: args, owner: undefined },
      p === undefined ? undefined : { queueId: p.id, shardIndex: p.shard },
    );
  }
  for (const b of d.bindings ?? []) {
    const v = broker.vhosts.get(b.vhost);
    if (v === undefined || v.graph.getExchange(b.source) === undefined) continue;
    if (b.destination_type === 'queue' ? !v.queues.has(b.destination) : v.graph.getExchange(b.destination) === undefined) continue;
    v.graph.bind({
      source: b.source,
      destination: b.destination,
      destinationKind: b.destination_type,
      routingKey: b.routing_key,
      arguments: tableFromJs(b.arguments ?? {}),
    });
  }
  broker.applyPolicies();
}
