/**
 * The cluster as operators see it, for warrenctl (cluster_status, forget_cluster_node,
 * join_cluster, add_member, delete_member, grow, shrink, list_queues' placement columns) and
 * the management API (/api/nodes, the placement fields of /api/queues). Everything comes from `broker.cluster` (the node's
 * ClusterMember); a node started without --cluster answers as a RabbitMQ node does when it
 * is alone: a cluster of one, itself running, every queue led here.
 *
 * What warren's membership knows: the running nodes are the members with a live etcd lease;
 * stopped nodes have no key of their own, so the "disk nodes" (RabbitMQ: every member,
 * running or not) are the running ones plus every node a queue placement names as a
 * replica, less the forgotten ones. A stopped node that holds no replica is not listed.
 */
import { availableParallelism } from 'node:os';
import type { ClusterMemberView, ClusterQueueView, ClusterStatusView } from '../cluster/cluster-view.js';
import { MembershipError, type GrowSelection, type MemberChangeRow } from '../cluster/membership-view.js';
import type { Broker } from '../front/broker.js';
import type { QueueMeta } from '../front/queue-meta.js';
import type { ReplicaStatus } from '../replication/types.js';
import { warrenVersion } from '../node/version.js';
import { AdminError, ExitCode } from './admin-error.js';

/**
 * A listing waits this long for the cluster's view (an etcd read); past it the placement
 * columns that need membership are left empty rather than the whole listing late. Shorter
 * than the control plane's own call timeout (5 s) so a cut-off etcd cannot stall warrenctl.
 */
const membershipWaitMs = 2_000;

/** A listener of a cluster node, in RabbitMQ's cluster_status JSON shape. */
export interface ListenerDoc {
  node: string;
  interface: string;
  port: number;
  protocol: string;
  purpose: string;
}

export interface FollowerDoc {
  node: string;
  acked_offset: number;
  in_sync: boolean;
  connected: boolean;
  lag_ms: number;
}

export interface ReplicaDoc {
  queue: string;
  role: string;
  epoch: number;
  log_start: number;
  log_end: number;
  commit_offset: number;
  flushed_offset: number;
  live_messages: number;
  /** A follower's leader and whether its stream is up; null on a leader. */
  leader: string | null;
  streaming: boolean | null;
  followers: FollowerDoc[];
}

/**
 * rabbitmqctl cluster_status --formatter json, with warren's additions: controller,
 * forgotten_nodes and this node's replicas. Keys are RabbitMQ's where RabbitMQ has them.
 */
export interface ClusterStatusDoc {
  /** The node that answered (RabbitMQ's banner names it). */
  node: string;
  cluster_name: string;
  /** false: a node started without --cluster (a cluster of one). */
  clustered: boolean;
  disk_nodes: string[];
  ram_nodes: string[];
  running_nodes: string[];
  versions: Record<string, { rabbitmq_name: string; rabbitmq_version: string; erlang_version: string }>;
  cpu_cores: Record<string, number>;
  maintenance_status: Record<string, string>;
  alarms: { node: string; resource: string; reason: string }[];
  partitions: Record<string, string[]>;
  listeners: Record<string, ListenerDoc[]>;
  feature_flags: never[];
  controller: string | null;
  forgotten_nodes: string[];
  replicas: ReplicaDoc[];
}

const sorted = (xs: Iterable<string>): string[] => [...new Set(xs)].sort();

/** "host:port" or "[v6]:port" → its parts; undefined when it has no port. */
export function splitAddress(address: string): { host: string; port: number } | undefined {
  const m = /^\[?(.*?)\]?:(\d+)$/.exec(address);
  if (m === null) return undefined;
  return { host: m[1] ?? '', port: Number(m[2]) };
}

function memberListeners(m: ClusterMemberView): ListenerDoc[] {
  const kinds: [string, string, string][] = [
    [m.amqp, 'amqp', 'AMQP 0-9-1'],
    [m.peer, 'clustering', 'inter-node queue forwarding'],
    [m.repl, 'replication', 'queue replication (warren)'],
  ];
  const out: ListenerDoc[] = [];
  for (const [address, protocol, purpose] of kinds) {
    const a = splitAddress(address);
    if (a !== undefined) out.push({ node: m.name, interface: a.host, port: a.port, protocol, purpose });
  }
  return out;
}

export function replicaDoc(r: ReplicaStatus): ReplicaDoc {
  return {
    queue: r.name,
    role: r.role,
    epoch: r.epoch,
    log_start: r.logStart,
    log_end: r.logEnd,
    commit_offset: r.commitOffset,
    flushed_offset: r.flushedOffset,
    live_messages: r.liveMessages,
    leader: r.leader ?? null,
    streaming: r.streaming ?? null,
    followers: r.followers.map((f) => ({ node: f.node, acked_offset: f.ackedOffset, in_sync: f.inSync, connected: f.connected, lag_ms: f.lagMs })),
  };
}

/** Disk nodes as defined in this file's header. */
export function diskNodes(view: Pick<ClusterStatusView, 'members' | 'forgotten'>, queues: readonly ClusterQueueView[]): string[] {
  const forgotten = new Set(view.forgotten);
  const all = [...view.members.map((m) => m.name), ...queues.flatMap((q) => q.members)];
  return sorted(all.filter((n) => !forgotten.has(n)));
}

function thisNodeFacts(b: Broker, node: string): Pick<ClusterStatusDoc, 'versions' | 'cpu_cores' | 'alarms'> {
  return {
    versions: { [node]: { rabbitmq_name: 'warren', rabbitmq_version: warrenVersion, erlang_version: `Node.js ${process.version}` } },
    cpu_cores: { [node]: availableParallelism() },
    alarms: b.alarms(),
  };
}

/** What `warrenctl cluster_status` shows. */
export async function clusterStatus(b: Broker): Promise<ClusterStatusDoc> {
  const c = b.cluster;
  if (c === undefined) {
    const node = b.config.nodeName;
    return {
      node,
      cluster_name: b.config.clusterName,
      clustered: false,
      disk_nodes: [node],
      ram_nodes: [],
      running_nodes: [node],
      ...thisNodeFacts(b, node),
      maintenance_status: { [node]: 'not under maintenance' },
      partitions: {},
      listeners: {},
      feature_flags: [],
      controller: null,
      forgotten_nodes: [],
      replicas: [],
    };
  }
  const view = await c.status();
  const running = sorted(view.members.map((m) => m.name));
  return {
    node: view.node,
    cluster_name: view.cluster,
    clustered: true,
    disk_nodes: diskNodes(view, c.queues()),
    ram_nodes: [],
    running_nodes: running,
    ...thisNodeFacts(b, view.node),
    maintenance_status: Object.fromEntries(running.map((n) => [n, 'not under maintenance'])),
    partitions: {},
    listeners: Object.fromEntries([...view.members].sort((x, y) => (x.name < y.name ? -1 : 1)).map((m) => [m.name, memberListeners(m)])),
    feature_flags: [],
    controller: view.controller ?? null,
    forgotten_nodes: sorted(view.forgotten),
    replicas: [...view.replicas].sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0)).map(replicaDoc),
  };
}

/** The running members (a node alone: itself); undefined when etcd did not answer in time. */
export async function runningMembers(b: Broker): Promise<ClusterMemberView[] | undefined> {
  const c = b.cluster;
  if (c === undefined) return [{ name: b.config.nodeName, amqp: '', peer: '', repl: '', startedAtMs: 0 }];
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), membershipWaitMs);
  });
  try {
    return await Promise.race([c.status().then((s) => s.members), late]);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

// ---- membership changes ------------------------------------------------------------

function notClustered(b: Broker, what: string): AdminError {
  return new AdminError(
    `Error: node ${b.config.nodeName} is not in cluster mode, so it has no cluster to ${what}: warren nodes form a cluster by starting with --cluster --etcd URL (docs/cluster.md)`,
    ExitCode.software,
  );
}

function mustBeStopped(node: string, why: string): AdminError {
  return new AdminError(`Error:\nwarren on node ${node} must be stopped before it can be removed (${why})`, ExitCode.software);
}

/**
 * forget_cluster_node NODE: NODE may not join again until join_cluster re-admits it, and it is
 * removed from every replicated queue's members, as RabbitMQ removes it from its quorum
 * queues (a queue it led is failed over first; its last member is kept). As RabbitMQ, a
 * running node is refused, the node answering this command included. Answers a line per queue
 * that still names NODE (undefined when none does).
 */
export async function forgetClusterNode(b: Broker, node: string): Promise<string | undefined> {
  const c = b.cluster;
  if (node === b.config.nodeName || node === c?.nodeName) {
    throw mustBeStopped(node, 'it is the node this command runs on: stop it, then run forget_cluster_node on another member');
  }
  if (c === undefined) throw notClustered(b, 'remove a node from');
  const status = await c.status();
  if (status.members.some((m) => m.name === node)) throw mustBeStopped(node, 'it is running: stop it first (warren has no stop_app; stop the process)');
  await c.forget(node);
  const kept = (await c.membership.shrink(node)).filter((r) => r.result.startsWith('error'));
  if (kept.length === 0) return undefined;
  return kept.map((r) => `Node ${node} is still a member of queue '${r.name}' in vhost '${r.vhost}' (${r.size} members): ${r.result}`).join('\n');
}

/**
 * join_cluster NODE, warren's way: membership lives in etcd and a node joins by starting with
 * --cluster --etcd, so there is nothing to do for a node that was never forgotten. For one
 * removed with forget_cluster_node, this clears the mark so that it can join again when
 * (re)started. Run against any member; NODE is the node to re-admit.
 */
export async function joinClusterNode(b: Broker, node: string): Promise<string> {
  const c = b.cluster;
  if (c === undefined) throw notClustered(b, 'join');
  const status = await c.status();
  if (node === status.node || status.members.some((m) => m.name === node)) return 'The node is already a member of this cluster';
  if (!status.forgotten.includes(node)) {
    return `Node ${node} was not forgotten: it joins cluster ${status.cluster} when it starts with --cluster and this cluster's --etcd and --cluster-name`;
  }
  await c.unforget(node);
  return `Node ${node} may join cluster ${status.cluster} again: start it with --cluster and this cluster's --etcd and --cluster-name`;
}

// ---- queue placement ---------------------------------------------------------------

/** Where a queue lives, in RabbitMQ's quorum-queue fields plus warren's in_sync and epoch. */
export interface QueuePlacementFacts {
  leader: string;
  members: string[];
  /** Members that are running; null when membership could not be read in time. */
  online: string[] | null;
  in_sync: string[];
  /** The leader epoch of a placed queue; null on a node outside cluster mode. */
  epoch: number | null;
}

export type PlacementLookup = (q: QueueMeta) => QueuePlacementFacts;

/** A lookup of every queue's placement, reading membership once (call per listing). */
export async function placementLookup(b: Broker): Promise<PlacementLookup> {
  const c = b.cluster;
  const me = b.config.nodeName;
  if (c === undefined) return () => ({ leader: me, members: [me], online: [me], in_sync: [me], epoch: null });
  const views = new Map(c.queues().map((v) => [`${v.vhost}\u0000${v.name}`, v]));
  const live = await runningMembers(b);
  const running = live === undefined ? undefined : new Set(live.map((m) => m.name));
  const self = c.nodeName;
  return (q) => {
    const v = views.get(`${q.vhost}\u0000${q.name}`);
    // No placement applied yet (a queue seen before its placement): where the front sends it.
    const leader = v?.leader ?? q.shard.remoteNode ?? self;
    const members = v?.members ?? [leader];
    return {
      leader,
      members: [...members],
      online: running === undefined ? null : members.filter((n) => running.has(n)),
      in_sync: [...(v?.isr ?? [leader])],
      epoch: v?.epoch ?? null,
    };
  };
}

// ---- queue members (rabbitmq-queues add_member, delete_member, grow, shrink) ----------

/** The table grow and shrink print, as rabbitmq-queues prints it. */
export const memberChangeColumns = ['vhost', 'name', 'size', 'result'];

/** A refused membership change exits 69, as rabbitmq-queues does for its errors. */
function membershipFailure(e: unknown): unknown {
  return e instanceof MembershipError ? new AdminError(e.message, ExitCode.unavailable) : e;
}

function membershipOf(b: Broker): NonNullable<Broker['cluster']>['membership'] {
  const c = b.cluster;
  if (c === undefined) throw notClustered(b, 'change queue members in');
  return c.membership;
}

/**
 * add_member [--vhost V] QUEUE NODE: NODE becomes a member of the replicated QUEUE, follows
 * its leader, catches up and joins the in-sync set once it has. Answers a line only when the
 * queue's leader did not apply the change in time (it is recorded all the same).
 */
export async function addMember(b: Broker, vhost: string, queue: string, node: string): Promise<string | undefined> {
  const membership = membershipOf(b);
  try {
    const done = await membership.addMember(vhost, queue, node);
    return done.applied ? undefined : `Node ${node} was added to the members of queue '${queue}' (now [${done.members.join(', ')}]); its leader has not applied the change yet`;
  } catch (e) {
    throw membershipFailure(e);
  }
}

/**
 * delete_member [--vhost V] QUEUE NODE: NODE leaves the members and the in-sync set, stops
 * following and deletes its replica. Refused for the last member, and for a running leader
 * (stop it first; a stopped leader is failed over, then removed).
 */
export async function deleteMember(b: Broker, vhost: string, queue: string, node: string): Promise<string | undefined> {
  const membership = membershipOf(b);
  try {
    const done = await membership.deleteMember(vhost, queue, node);
    return done.applied ? undefined : `Node ${node} was removed from the members of queue '${queue}' (now [${done.members.join(', ')}]); its leader has not applied the change yet`;
  } catch (e) {
    throw membershipFailure(e);
  }
}

function pattern(flag: string, source: string | undefined): RegExp | undefined {
  if (source === undefined) return undefined;
  try {
    return new RegExp(source);
  } catch (e) {
    throw new AdminError(`Error (argument validation): ${flag} '${source}' is not a regular expression: ${e instanceof Error ? e.message : String(e)}`, ExitCode.usage);
  }
}

export interface MemberTableOptions {
  /** --errors-only: only the queues whose change failed. */
  errorsOnly?: boolean | undefined;
}

function table(rows: MemberChangeRow[], opts: MemberTableOptions): { columns: string[]; rows: Record<string, unknown>[] } {
  const shown = opts.errorsOnly === true ? rows.filter((r) => r.result.startsWith('error')) : rows;
  return { columns: memberChangeColumns, rows: shown.map((r) => ({ vhost: r.vhost, name: r.name, size: r.size, result: r.result })) };
}

/** grow NODE all|even [--vhost-pattern P] [--queue-pattern P]: NODE joins every matching replicated queue. */
export async function growNode(
  b: Broker,
  node: string,
  strategy: string,
  opts: MemberTableOptions & { vhostPattern?: string | undefined; queuePattern?: string | undefined } = {},
): Promise<{ columns: string[]; rows: Record<string, unknown>[] }> {
  if (strategy !== 'all' && strategy !== 'even') throw new AdminError(`Error (argument validation): strategy '${strategy}' is not recognised (all or even)`, ExitCode.usage);
  const selection: GrowSelection = { strategy, vhostPattern: pattern('--vhost-pattern', opts.vhostPattern), queuePattern: pattern('--queue-pattern', opts.queuePattern) };
  const membership = membershipOf(b);
  try {
    return table(await membership.grow(node, selection), opts);
  } catch (e) {
    throw membershipFailure(e);
  }
}

/**
 * shrink NODE: NODE leaves every replicated queue it is a member of, one row per queue; a
 * queue it is the last member of, or leads while running, keeps it (an error row). A NODE
 * that neither runs nor holds any replica is refused: most likely a typo.
 */
export async function shrinkNode(b: Broker, node: string, opts: MemberTableOptions = {}): Promise<{ columns: string[]; rows: Record<string, unknown>[] }> {
  const membership = membershipOf(b);
  const c = b.cluster;
  if (c !== undefined && !c.queues().some((q) => q.members.includes(node)) && !(await c.status()).members.some((m) => m.name === node)) {
    throw new AdminError(`node ${node} is not running and is not a member of any queue (node_not_found)`, ExitCode.unavailable);
  }
  try {
    return table(await membership.shrink(node), opts);
  } catch (e) {
    throw membershipFailure(e);
  }
}
