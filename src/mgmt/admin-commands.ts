/**
 * What an operator can do to a running node, as plain functions over the Broker: users,
 * vhosts, permissions, policies, listings and definitions. warrenctl reaches them through
 * the admin socket (admin-socket.ts); the management HTTP API is meant to call the same
 * functions. Listings return rows of JSON values keyed by rabbitmqctl's column names;
 * failures throw AdminError with rabbitmqctl's wording and exit code.
 *
 * Every change to durable definitions is persisted (broker.definitionsChanged()) before the
 * function resolves, so a command that returned has survived a crash of the node.
 */
import { tableToJs } from '../amqp/field-table.js';
import { queueTypeOf } from '../front/queue-args.js';
import type { Broker } from '../front/broker.js';
import type { Connection } from '../front/connection.js';
import { DefinitionsError, exportDefinitions, importDefinitions, type Definitions, type PolicyDef } from '../front/definitions.js';
import { compilePattern, PolicyError } from '../front/policies.js';
import type { QueueMeta } from '../front/queue-meta.js';
import type { QueueStatsEntry } from '../front/shard-link.js';
import { UserError, hashPassword } from '../front/users.js';
import { AdminError, ExitCode } from './admin-error.js';
import { placementLookup, type PlacementLookup, type QueuePlacementFacts } from './cluster-ops.js';
import { parseByteSize, parseDiskFreeLimit, type MemoryWatermark, type ResourceMonitor } from '../front/resource-alarms.js';

export { AdminError, ExitCode };

export type Row = Record<string, unknown>;
export interface Listing {
  columns: string[];
  rows: Row[];
}

function noVhost(name: string): AdminError {
  return new AdminError(`Virtual host '${name}' does not exist`);
}

function requireVhost(b: Broker, name: string): void {
  if (!b.vhosts.has(name)) throw noVhost(name);
}

function userOrThrow(b: Broker, name: string) {
  try {
    return b.users.get(name);
  } catch (err) {
    if (err instanceof UserError) throw new AdminError(err.message, ExitCode.noUser);
    throw err;
  }
}

/** Picks the requested columns (rabbitmqctl's "info keys"), refusing unknown ones. */
function project(all: readonly string[], wanted: readonly string[], rows: Row[]): Listing {
  const columns = wanted.length === 0 ? [] : [...wanted];
  const bad = columns.filter((c) => !all.includes(c));
  if (bad.length > 0) throw new AdminError(`Info key(s) ${bad.join(',')} are not supported. Supported keys: ${all.join(', ')}`, ExitCode.usage);
  return { columns, rows: rows.map((r) => Object.fromEntries(columns.map((c) => [c, r[c] ?? null]))) };
}

// ---- users ----------------------------------------------------------------------

export async function addUser(b: Broker, name: string, password: string, tags: string[] = []): Promise<void> {
  if (name === '') throw new AdminError('user cannot be an empty string', ExitCode.usage);
  if (b.users.users.has(name)) throw new AdminError(`User "${name}" already exists`);
  b.users.add(name, password, tags);
  await b.definitionsChanged();
}

/** Deletes a user and closes its connections (320 CONNECTION_FORCED, as RabbitMQ does). */
export async function deleteUser(b: Broker, name: string): Promise<void> {
  userOrThrow(b, name);
  b.users.users.delete(name);
  b.closeConnections((c) => c.user?.name === name, `user '${name}' is deleted`);
  await b.definitionsChanged();
}

export async function changePassword(b: Broker, name: string, password: string): Promise<void> {
  userOrThrow(b, name);
  b.users.changePassword(name, password);
  await b.definitionsChanged();
}

/** rabbitmqctl clear_password: the user can no longer log in with a password. */
export async function clearPassword(b: Broker, name: string): Promise<void> {
  const u = userOrThrow(b, name);
  u.passwordHash = '';
  await b.definitionsChanged();
}

export async function setUserTags(b: Broker, name: string, tags: string[]): Promise<void> {
  userOrThrow(b, name).tags = [...tags];
  await b.definitionsChanged();
}

/** Whether the password is the user's (rabbitmqctl authenticate_user). */
export function authenticateUser(b: Broker, name: string, password: string): void {
  if (b.users.authenticate(name, password) === undefined) throw new AdminError(`Error: failed to authenticate user "${name}"`, ExitCode.noUser);
}

export function listUsers(b: Broker): Listing {
  const rows = [...b.users.users.values()].map((u) => ({ user: u.name, tags: [...u.tags] }));
  return { columns: ['user', 'tags'], rows };
}

// ---- vhosts -----------------------------------------------------------------------

export async function addVhost(b: Broker, name: string): Promise<void> {
  if (name === '') throw new AdminError('vhost cannot be an empty string', ExitCode.usage);
  b.addVhost(name);
  await b.definitionsChanged();
}

/** Deletes a vhost with everything in it: its connections are closed, its queues (and their messages) deleted. */
export async function deleteVhost(b: Broker, name: string): Promise<void> {
  const v = b.vhosts.get(name);
  if (v === undefined) throw noVhost(name);
  b.closeConnections((c) => c.vhostName === name, `vhost '${name}' is deleted`);
  await Promise.all([...v.queues.values()].map((q) => b.deleteQueue(q, `deleted with vhost '${name}'`)));
  for (const u of b.users.users.values()) u.permissions.delete(name);
  b.policies.dropVhost(name);
  b.vhosts.delete(name);
  await b.definitionsChanged();
}

export function listVhosts(b: Broker, columns: readonly string[] = ['name']): Listing {
  const rows = [...b.vhosts.values()].map((v) => ({ name: v.name, tracing: false, cluster_state: { [b.config.nodeName]: 'running' } }));
  return project(['name', 'tracing', 'cluster_state'], columns, rows);
}

// ---- permissions ------------------------------------------------------------------

export async function setPermissions(b: Broker, vhost: string, user: string, configure: string, write: string, read: string): Promise<void> {
  const u = userOrThrow(b, user);
  requireVhost(b, vhost);
  for (const [what, pattern] of [['configure', configure], ['write', write], ['read', read]] as const) {
    const re = compilePattern(pattern);
    if (typeof re === 'string') throw new AdminError(`Validation failed\n\n${what} should be regular expression but is invalid: ${re}`, ExitCode.dataErr);
  }
  u.permissions.set(vhost, { configure, write, read });
  await b.definitionsChanged();
}

export async function clearPermissions(b: Broker, vhost: string, user: string): Promise<void> {
  const u = userOrThrow(b, user);
  requireVhost(b, vhost);
  u.permissions.delete(vhost);
  await b.definitionsChanged();
}

export function listPermissions(b: Broker, vhost: string): Listing {
  requireVhost(b, vhost);
  const rows: Row[] = [];
  for (const u of b.users.users.values()) {
    const p = u.permissions.get(vhost);
    if (p !== undefined) rows.push({ user: u.name, configure: p.configure, write: p.write, read: p.read });
  }
  return { columns: ['user', 'configure', 'write', 'read'], rows };
}

export function listUserPermissions(b: Broker, user: string): Listing {
  const u = userOrThrow(b, user);
  const rows = [...u.permissions].map(([vhost, p]) => ({ vhost, configure: p.configure, write: p.write, read: p.read }));
  return { columns: ['vhost', 'configure', 'write', 'read'], rows };
}

// ---- policies ---------------------------------------------------------------------

export interface PolicyInput {
  vhost: string;
  name: string;
  pattern: string;
  /** The definition as the JSON text rabbitmqctl takes, or already parsed. */
  definition: string | Record<string, unknown>;
  priority?: number;
  applyTo?: string;
}

/** Sets (or replaces) a policy and re-applies policies to the vhost's existing queues at once. */
export async function setPolicy(b: Broker, input: PolicyInput): Promise<void> {
  requireVhost(b, input.vhost);
  let definition: unknown = input.definition;
  if (typeof definition === 'string') {
    try {
      definition = JSON.parse(definition);
    } catch (err) {
      throw new AdminError(`Validation failed\n\ncould not parse JSON document: ${err instanceof Error ? err.message : String(err)}`, ExitCode.dataErr);
    }
  }
  const p = {
    vhost: input.vhost,
    name: input.name,
    pattern: input.pattern,
    'apply-to': input.applyTo ?? 'all',
    definition,
    priority: input.priority ?? 0,
  } as PolicyDef;
  try {
    b.policies.set(p);
  } catch (err) {
    if (err instanceof PolicyError) throw new AdminError(err.message.trimEnd(), ExitCode.dataErr);
    throw err;
  }
  b.applyPolicies();
  await b.definitionsChanged();
}

export async function clearPolicy(b: Broker, vhost: string, name: string): Promise<void> {
  requireVhost(b, vhost);
  if (!b.policies.clear(vhost, name)) throw new AdminError('Parameter does not exist');
  b.applyPolicies();
  await b.definitionsChanged();
}

export function listPolicies(b: Broker, vhost: string): Listing {
  requireVhost(b, vhost);
  const rows = b.policies.list(vhost).map((p) => ({
    vhost: p.vhost,
    name: p.name,
    pattern: p.pattern,
    'apply-to': p['apply-to'],
    definition: p.definition,
    priority: p.priority,
  }));
  return { columns: ['vhost', 'name', 'pattern', 'apply-to', 'definition', 'priority'], rows };
}

// ---- queues, exchanges, bindings, connections, consumers ----------------------------

const queueColumns = [
  'name', 'vhost', 'durable', 'auto_delete', 'exclusive', 'arguments', 'policy', 'effective_policy_definition', 'messages',
  'messages_ready', 'messages_unacknowledged', 'message_bytes_ready', 'consumers', 'state', 'type',
  'exclusive_consumer_tag', 'single_active_consumer_tag', 'messages_published', 'messages_delivered', 'messages_acknowledged',
  'messages_redelivered', 'shard', 'leader', 'members', 'online', 'in_sync', 'epoch',
];

/** Columns a queue led by another node can only fill by asking its leader. */
const leaderCountColumns = new Set(['messages', 'messages_ready', 'messages_unacknowledged', 'consumers']);
/** Columns that need the cluster's placement of each queue. */
const placementColumns = new Set(['leader', 'members', 'online', 'in_sync', 'epoch']);
/** A listing waits this long for a leader's count of a queue led elsewhere; past it the cells are empty. */
const leaderCountWaitMs = 2_000;

/** Message counters of every queue this node's shards hold. */
async function queueStats(b: Broker): Promise<Map<number, QueueStatsEntry>> {
  const all = await Promise.all(
    b.shards.map((s) => {
      const p = s.queueStats();
      b.noteShardWrite(s, undefined);
      return p;
    }),
  );
  return new Map(all.flat().map((e) => [e.queueId, e]));
}

/** What a leader on another node says of one of its queues: ready messages and consumers on every node. */
export interface LeaderCount {
  ready: number;
  consumers: number;
}

/**
 * Counts of queues led by other nodes, from their leaders over the peer link (queue.declare's
 * stat). That stat counts as use of the queue, so queues with an x-expires are not asked: a
 * monitor polling any node would otherwise keep them from ever expiring. A leader that does
 * not answer in time leaves its queues' counts unknown.
 */
export async function leaderCounts(b: Broker, queues: Iterable<QueueMeta>): Promise<Map<number, LeaderCount>> {
  const out = new Map<number, LeaderCount>();
  const asks: Promise<void>[] = [];
  for (const q of queues) {
    if (q.shard.remoteNode === undefined || q.config.expiresMs !== undefined) continue;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), leaderCountWaitMs);
    });
    const stat = q.shard.statQueue(q.queueId).catch(() => undefined);
    b.noteShardWrite(q.shard, undefined);
    asks.push(
      Promise.race([stat, late]).then((r) => {
        clearTimeout(timer);
        if (r !== undefined) out.set(q.queueId, { ready: r[0], consumers: r[1] });
      }),
    );
  }
  await Promise.all(asks);
  return out;
}

/** Counts as the row shows them: this node's shard's, the leader's, or unknown (null). */
function counts(q: QueueMeta, s: QueueStatsEntry | undefined, remote: LeaderCount | undefined): { ready: number | null; unacked: number | null; consumers: number } {
  if (q.shard.remoteNode === undefined) return { ready: s?.ready ?? 0, unacked: s?.unacked ?? 0, consumers: q.consumers.size };
  // The leader's stat carries ready messages and consumers, not unacknowledged ones.
  return { ready: remote?.ready ?? null, unacked: null, consumers: remote?.consumers ?? q.consumers.size };
}

function queueRow(b: Broker, q: QueueMeta, s: QueueStatsEntry | undefined, remote: LeaderCount | undefined, placement: QueuePlacementFacts | undefined): Row {
  const policy = b.policies.forQueue(q.vhost, q.name, queueType(q));
  const { ready, unacked, consumers: consumerCount } = counts(q, s, remote);
  const consumers = [...q.consumers];
  return {
    name: q.name,
    vhost: q.vhost,
    durable: q.durable,
    auto_delete: q.autoDelete,
    exclusive: q.exclusive,
    arguments: tableToJs(q.arguments),
    policy: policy?.name ?? '',
    effective_policy_definition: policy?.definition ?? {},
    messages: ready === null ? null : ready + (unacked ?? 0),
    messages_ready: ready,
    messages_unacknowledged: unacked,
    message_bytes_ready: q.shard.remoteNode === undefined ? (s?.readyBytes ?? 0) : null,
    consumers: consumerCount,
    state: 'running',
    type: queueType(q),
    exclusive_consumer_tag: consumers.find((c) => c.exclusive)?.tag ?? '',
    single_active_consumer_tag: q.config.singleActiveConsumer ? (consumers[0]?.tag ?? '') : '',
    messages_published: s?.published ?? 0,
    messages_delivered: s?.delivered ?? 0,
    messages_acknowledged: s?.acked ?? 0,
    messages_redelivered: s?.redelivered ?? 0,
    // A queue led by another node is on none of this node's shards.
    shard: q.shard.remoteNode === undefined ? q.shard.index : null,
    leader: placement?.leader ?? null,
    members: placement?.members ?? null,
    online: placement?.online ?? null,
    in_sync: placement?.in_sync ?? null,
    epoch: placement?.epoch ?? null,
  };
}

function queueType(q: QueueMeta): string {
  return queueTypeOf(q.arguments);
}

/**
 * list_queues. placement: a lookup already made for this request (a listing over several
 * vhosts reads the cluster's membership once); made here when a placement column is asked for.
 */
export async function listQueues(b: Broker, vhost: string, columns: readonly string[] = ['name', 'messages'], placement?: PlacementLookup): Promise<Listing> {
  const v = b.vhosts.get(vhost);
  if (v === undefined) throw noVhost(vhost);
  const wants = (set: ReadonlySet<string>): boolean => columns.some((c) => set.has(c));
  const queues = [...v.queues.values()];
  const [stats, remote, lookup] = await Promise.all([
    queueStats(b),
    wants(leaderCountColumns) ? leaderCounts(b, queues) : new Map<number, LeaderCount>(),
    placement ?? (wants(placementColumns) ? placementLookup(b) : undefined),
  ]);
  const rows = queues.map((q) => queueRow(b, q, stats.get(q.queueId), remote.get(q.queueId), lookup?.(q)));
  return project(queueColumns, columns, rows);
}

export function listExchanges(b: Broker, vhost: string, columns: readonly string[] = ['name', 'type']): Listing {
  const v = b.vhosts.get(vhost);
  if (v === undefined) throw noVhost(vhost);
  const rows = [...v.graph.exchanges()].map((e) => ({
    name: e.name,
    vhost,
    type: e.type,
    durable: e.durable,
    auto_delete: e.autoDelete,
    internal: e.internal,
    arguments: tableToJs(e.arguments),
    policy: '',
  }));
  return project(['name', 'vhost', 'type', 'durable', 'auto_delete', 'internal', 'arguments', 'policy'], columns, rows);
}

export function listBindings(
  b: Broker,
  vhost: string,
  columns: readonly string[] = ['source_name', 'source_kind', 'destination_name', 'destination_kind', 'routing_key', 'arguments'],
): Listing {
  const v = b.vhosts.get(vhost);
  if (v === undefined) throw noVhost(vhost);
  const row = (source: string, destination: string, kind: string, key: string, args: Row): Row => ({
    source_name: source,
    source_kind: 'exchange',
    destination_name: destination,
    destination_kind: kind,
    routing_key: key,
    arguments: args,
    vhost,
  });
  // Every queue is bound to the default exchange by its name, as RabbitMQ lists it.
  const rows = [...v.queues.keys()].map((q) => row('', q, 'queue', q, {}));
  for (const bd of v.graph.bindings()) rows.push(row(bd.source, bd.destination, bd.destinationKind, bd.routingKey, tableToJs(bd.arguments)));
  return project(['source_name', 'source_kind', 'destination_name', 'destination_kind', 'routing_key', 'arguments', 'vhost'], columns, rows);
}

function connectionRow(c: Connection): Row {
  return {
    name: c.name,
    user: c.user?.name ?? '',
    vhost: c.vhostName,
    peer_host: c.transport.remoteAddress,
    peer_port: c.transport.remotePort,
    port: c.transport.localPort,
    state: c.state === 'open' || c.state === 'opened' ? (c.broker.holds.alarmState(c) ?? 'running') : c.state,
    channels: c.channels.size,
    protocol: 'AMQP 0-9-1',
    timeout: c.heartbeatS,
    frame_max: c.frameMaxBytes,
    channel_max: c.channelMax,
    client_properties: tableToJs(c.clientProperties),
    connected_at: c.connectedAtMs,
    recv_oct: c.recvBytes,
    send_oct: c.sentBytes,
    recv_cnt: c.recvFrames,
    ssl: c.transport.tls !== undefined,
    ssl_protocol: c.transport.tls?.protocol ?? '',
    ssl_cipher: c.transport.tls?.cipher ?? '',
    peer_cert_subject: c.transport.peerCertificateName === undefined ? '' : `CN=${c.transport.peerCertificateName}`,
    auth_mechanism: c.authMechanism,
  };
}

const connectionColumns = [
  'name', 'user', 'vhost', 'peer_host', 'peer_port', 'port', 'state', 'channels', 'protocol', 'timeout', 'frame_max', 'channel_max',
  'client_properties', 'connected_at', 'recv_oct', 'send_oct', 'recv_cnt', 'ssl', 'ssl_protocol', 'ssl_cipher', 'peer_cert_subject', 'auth_mechanism',
];

export function listConnections(b: Broker, columns: readonly string[] = ['user', 'peer_host', 'peer_port', 'state']): Listing {
  return project(connectionColumns, columns, [...b.connections].filter((c) => c.state !== 'header').map(connectionRow));
}

export function listConsumers(
  b: Broker,
  vhost: string,
  columns: readonly string[] = ['queue_name', 'channel_pid', 'consumer_tag', 'ack_required', 'prefetch_count', 'active', 'activity_status', 'arguments'],
): Listing {
  const v = b.vhosts.get(vhost);
  if (v === undefined) throw noVhost(vhost);
  const rows: Row[] = [];
  for (const q of v.queues.values()) {
    let first = true;
    for (const c of q.consumers) {
      const sac = q.config.singleActiveConsumer;
      const active = !sac || first;
      first = false;
      rows.push({
        queue_name: q.name,
        channel_pid: `${c.channel.conn.name} (${c.channel.id})`,
        connection_name: c.channel.conn.name,
        channel: c.channel.id,
        consumer_tag: c.tag,
        ack_required: !c.noAck,
        exclusive: c.exclusive,
        prefetch_count: c.channel.prefetchCount,
        active,
        activity_status: sac ? (active ? 'single_active' : 'waiting') : 'up',
        arguments: {},
      });
    }
  }
  return project(
    ['queue_name', 'channel_pid', 'connection_name', 'channel', 'consumer_tag', 'ack_required', 'exclusive', 'prefetch_count', 'active', 'activity_status', 'arguments'],
    columns,
    rows,
  );
}

/** Closes one connection by name (rabbitmqctl close_connection). */
export function closeConnection(b: Broker, name: string, explanation: string): void {
  const n = b.closeConnections((c) => c.name === name, explanation);
  if (n === 0) throw new AdminError(`Connection '${name}' does not exist`);
}

// ---- definitions -------------------------------------------------------------------

/** Everything durable, in RabbitMQ's definitions format (as rabbitmqctl export_definitions writes it). */
export function exportAllDefinitions(b: Broker): Definitions {
  return exportDefinitions(b, false);
}

/** Applies a definitions document (RabbitMQ's or warren's) and persists the result. */
export async function importAllDefinitions(b: Broker, d: unknown): Promise<void> {
  if (typeof d !== 'object' || d === null || Array.isArray(d)) throw new AdminError('definitions must be a JSON object', ExitCode.dataErr);
  try {
    importDefinitions(b, d as Definitions, true);
  } catch (err) {
    if (err instanceof DefinitionsError || err instanceof PolicyError) throw new AdminError(`Failed to import definitions: ${err.message.trimEnd()}`, ExitCode.dataErr);
    throw err;
  }
  await b.definitionsChanged();
}

/** rabbitmqctl hash_password: the hash RabbitMQ would store for this password. */
export function hashUserPassword(password: string): string {
  return hashPassword(password);
}

// ---- resource alarms ------------------------------------------------------------

function resourceMonitor(b: Broker): ResourceMonitor {
  const r = b.resources;
  if (r === undefined) throw new AdminError('this node does not monitor its memory and disk');
  return r;
}

const badArgument = (detail?: string): AdminError =>
  new AdminError(`Error (argument validation): Bad argument${detail === undefined ? '.' : `: ${detail}`}`, ExitCode.usage);

/** rabbitmqctl set_vm_memory_high_watermark FRACTION | absolute SIZE: takes effect at once. */
export async function setVmMemoryHighWatermark(b: Broker, args: string[]): Promise<string> {
  const monitor = resourceMonitor(b);
  let watermark: MemoryWatermark | undefined;
  let shown: string;
  if (args[0] === 'absolute' && args.length === 2) {
    const bytes = parseByteSize(args[1] ?? '');
    if (bytes === undefined) throw badArgument();
    watermark = { absoluteBytes: bytes };
    shown = `${args[1] ?? ''} bytes`;
  } else if (args.length === 1) {
    const text = args[0] ?? '';
    if (!/^-?\d+(\.\d+)?$/.test(text)) throw badArgument();
    const relative = Number(text);
    if (relative < 0 || relative > 1) throw badArgument('The threshold should be a fraction between 0.0 and 1.0');
    watermark = { relative };
    shown = text;
  } else {
    throw badArgument();
  }
  await monitor.setMemoryWatermark(watermark);
  return `Setting memory threshold on ${b.config.nodeName} to ${shown} ...`;
}

/** rabbitmqctl set_disk_free_limit SIZE | mem_relative FACTOR: takes effect at once. */
export async function setDiskFreeLimit(b: Broker, args: string[]): Promise<string> {
  const monitor = resourceMonitor(b);
  const limit = parseDiskFreeLimit(args.join(' '));
  if (limit === undefined || args.length > 2) throw badArgument();
  await monitor.setDiskFreeLimit(limit);
  const shown = 'memRelative' in limit ? `${args[1] ?? ''} times the total RAM` : `${args[0] ?? ''} bytes`;
  return `Setting disk free limit on ${b.config.nodeName} to ${shown} ...`;
}

/** rabbitmq-diagnostics alarms: what blocks publishers on this node now, its own alarms and the cluster's. */
export function listAlarms(b: Broker): Listing {
  return { columns: ['node', 'resource', 'reason'], rows: b.alarms().map((a) => ({ node: a.node, resource: a.resource, reason: a.reason })) };
}
