/**
 * The front's node-wide state: virtual hosts, users, connections, channels, queue and
 * consumer registries, and the links to the shard workers. It routes what the shards say
 * (deliveries, confirms, dead letters, expiries) to the right channel, and applies
 * backpressure when a shard's ring fills up.
 */
import { isIP } from 'node:net';
import type { ClusterQueueView, ClusterStatusView } from '../cluster/cluster-view.js';
import type { QueueMembership } from '../cluster/membership-view.js';
import { AmqpError } from '../amqp/errors.js';
import { peekHeaders } from '../amqp/content-header.js';
import { fieldInt, type FieldTable } from '../amqp/field-table.js';
import { Method, ReplyCode } from '../amqp/spec.generated.js';
import { RecordReader } from '../ring/record-buffer.js';
import { FromShard, payloadExchange, payloadLayout, payloadRoutingKey } from '../ring/shard-records.js';
import type { Logger } from '../node/logger.js';
import type { BrokerConfig } from './broker-config.js';
import type { Connection } from './connection.js';
import { effectiveQueueConfig, queueTypeOf, type PolicyQueueSettings } from './queue-args.js';
import type { ConfirmTarget, ConsumerChannel, ConsumerRef, QueueMeta } from './queue-meta.js';
import type { ShardLink } from './shard-link.js';
import type { QueueLink } from './queue-link.js';
import { RemoteLink, RetiredLink, type RemoteLinkHost } from './remote-link.js';
import type { PeerIdentity } from '../cluster/peer-link.js';
import { queueLabel } from './queue-args.js';
import { UserStore, type User } from './users.js';
import { PolicyStore, policyQueueSettings } from './policies.js';
import { LatencyRecorder, type LatencyExport } from '../metrics/latency.js';
import { VHost } from './vhost.js';
import { creditTableSlots } from '../shard/consumer.js';
import { isDeathCycle } from '../shard/dead-letter.js';
import { DirectReplies, nodeToken, replyNameToken } from './direct-reply.js';
import type { ResourceMonitor } from './resource-alarms.js';
import { PublisherHolds, type NodeAlarmInfo, type Publisher } from './publisher-holds.js';

/**
 * The consumer timeout is checked every quarter of it, within these bounds: RabbitMQ checks once
 * a minute; a test's short timeout is still checked promptly, and a long one costs one pass a minute.
 */
const consumerTimeoutCheckMinMs = 50;
const consumerTimeoutCheckMaxMs = 60_000;

/** What the front asks of the cluster for queues (node/cluster-member.ts implements it). */
export interface ClusterQueues {
  /** Places a queue this node does not know yet, and resolves once it exists here. */
  declareQueue(vhost: VHost, nq: NewQueue): Promise<QueueMeta>;
  /** A queue was deleted through this node: the cluster forgets it everywhere. */
  queueDeleted(q: QueueMeta): Promise<void>;
  readonly nodeName: string;
  status(): Promise<ClusterStatusView>;
  /** Every queue's placement as this node last applied it. */
  queues(): ClusterQueueView[];
  /** forget_cluster_node: the node is removed and may not join again until unforget. */
  forget(node: string): Promise<void>;
  /** join_cluster for a forgotten node: it may join again. */
  unforget(node: string): Promise<void>;
  /** Replicated queues' members after declaration: add_member, delete_member, grow, shrink. */
  readonly membership: QueueMembership;
  /** The replicator's histograms (fsync of replica logs, replication_rtt). */
  latency(): Promise<LatencyExport[]>;
}

export interface NewQueue {
  name: string;
  durable: boolean;
  exclusive: boolean;
  autoDelete: boolean;
  arguments: FieldTable;
  owner: Connection | undefined;
}

/** Where a queue led by another node lives, as cluster placement says. */
export interface RemotePlacement {
  queueId: number;
  /** The leader's node name (checked in the peer handshake). */
  node: string;
  /** host:port of the leader's peer listener. */
  peer: string;
}

export class Broker implements RemoteLinkHost {
  readonly vhosts = new Map<string, VHost>();
  readonly users = new UserStore();
  readonly queuesById = new Map<number, QueueMeta>();
  readonly consumersById = new Map<number, ConsumerRef>();
  /** Client channels and (for queues this node leads) proxies of channels on other nodes. */
  readonly channelsByKey = new Map<number, ConfirmTarget>();
  /** Links to the other nodes that lead queues this node's clients use, by node name. */
  readonly remoteLinks = new Map<string, RemoteLink>();
  /** The cluster secret and this node's name, once the peer listener runs (startPeerListener). */
  peerIdentity: PeerIdentity | undefined;
  readonly connections = new Set<Connection>();
  /** What holds publishers back (full rings, flow, an unwritable log, resource alarms), and connection.blocked. */
  readonly holds: PublisherHolds;
  /** The resource alarms' monitor (set by the node; warrenctl's set_vm_memory_high_watermark and set_disk_free_limit change it). */
  resources: ResourceMonitor | undefined;
  readonly policies = new PolicyStore();
  /** Front-side histograms: publish→confirm (node-wide). */
  readonly latency = new LatencyRecorder();
  readonly publishToConfirm = this.latency.get('publish_to_confirm');
  /** Set in cluster mode: queues are placed and deleted through the cluster (node/cluster-member.ts). */
  cluster: ClusterQueues | undefined;
  /** Persists durable definitions (set by the node); resolves once they are on disk. */
  onDefinitionsChanged: () => Promise<void> = () => Promise.resolve();

  private nextConnId = 1;
  private nextChannelKey = 1;
  private nextQueueId = 1;
  private nextConsumerId = 1;
  private readonly dirtyConns = new Set<Connection>();
  private readonly dirtyShards = new Set<QueueLink>();
  private flushScheduled = false;
  private readonly confirmChannels = new Set<ConfirmTarget>();
  private readonly regexCache = new Map<string, RegExp>();
  /** Reply names of the channels consuming from amq.rabbitmq.reply-to (direct-reply.ts). */
  readonly directReplies: DirectReplies;
  /** Cluster members' peer listeners and reply-name tokens, for replies to another node's requester. */
  private readonly peerAddresses = new Map<string, string>();
  private readonly nodesByReplyToken = new Map<string, string>();

  constructor(
    readonly config: BrokerConfig,
    readonly shards: readonly ShardLink[],
    readonly log: Logger,
    /** Shared [limit, unacked] pairs for channels with a global prefetch (see shard/consumer.ts). */
    readonly creditTable: Int32Array = new Int32Array(2 * creditTableSlots),
  ) {
    this.holds = new PublisherHolds(config.nodeName, this.connections, () => this.shards.some((s) => s.congested), log);
    for (const s of shards) s.out.onDrain = () => this.onShardDrained(s);
    this.directReplies = new DirectReplies(config.nodeName);
    // Queues and consumers may set their own timeouts, so the tick runs even with the node's off.
    const checkMs =
      config.consumerTimeoutMs > 0
        ? Math.min(consumerTimeoutCheckMaxMs, Math.max(consumerTimeoutCheckMinMs, Math.floor(config.consumerTimeoutMs / 4)))
        : consumerTimeoutCheckMaxMs;
    this.consumerTimeoutTimer = setInterval(() => this.checkDeliveryTimeouts(), checkMs);
    this.consumerTimeoutTimer.unref();
  }

  private consumerTimeoutTimer: NodeJS.Timeout | undefined;

  /**
   * A queue's consumer timeout (ms, 0 never): its x-consumer-timeout argument, else the
   * consumer-timeout of its policy, else --consumer-timeout-ms (RabbitMQ 3.12's precedence,
   * below a consumer's own x-consumer-timeout). Read when a consumer starts or a basic.get
   * delivers, so a policy change applies to later consumers.
   */
  queueDeliveryTimeoutMs(q: QueueMeta): number {
    const arg = q.arguments['x-consumer-timeout'];
    const fromArg = arg === undefined ? undefined : fieldInt(arg);
    if (fromArg !== undefined && fromArg >= 0) return fromArg;
    return this.policyFor(q)?.['consumer-timeout'] ?? this.config.consumerTimeoutMs;
  }

  /** The node stops: the broker's own timers end with it (a node can run inside a longer-lived process, as in tests). */
  close(): void {
    clearInterval(this.consumerTimeoutTimer);
    this.holds.close();
  }

  /** Every channel's oldest unacked delivery against the consumer timeout (a tick, not a timer per delivery). */
  private checkDeliveryTimeouts(): void {
    const nowMs = performance.now();
    let closed = false;
    for (const conn of this.connections) {
      for (const ch of conn.channels.values()) {
        if (ch.unacked.size === 0) continue;
        ch.checkDeliveryTimeout(nowMs);
        closed ||= ch.state !== 'open';
      }
    }
    if (closed) this.flushAll();
  }

  addVhost(name: string): VHost {
    let v = this.vhosts.get(name);
    if (v === undefined) {
      v = new VHost(name);
      this.vhosts.set(name, v);
    }
    return v;
  }

  vhost(name: string): VHost {
    const v = this.vhosts.get(name);
    if (v === undefined) throw new AmqpError(ReplyCode.notAllowed, `NOT_ALLOWED - vhost ${name} not found`);
    return v;
  }

  nextConnectionId(): number {
    return this.nextConnId++;
  }

  private nextCreditSlot = 0;
  /**
   * A credit-table slot for a channel that set a global prefetch. Slots rotate rather than
   * being freed: shards may still release credit into a closed channel's slot for a while.
   */
  allocateCreditSlot(limit: number): number {
    const slot = this.nextCreditSlot;
    this.nextCreditSlot = (slot + 1) % creditTableSlots;
    Atomics.store(this.creditTable, 2 * slot + 1, 0);
    Atomics.store(this.creditTable, 2 * slot, limit);
    return slot;
  }

  registerChannel(ch: ConfirmTarget): number {
    const key = this.nextChannelKey++;
    this.channelsByKey.set(key, ch);
    return key;
  }

  unregisterChannel(ch: ConfirmTarget): void {
    this.channelsByKey.delete(ch.key);
    this.confirmChannels.delete(ch);
    for (const link of this.remoteLinks.values()) link.channelClosed(ch.key);
  }

  // ---- access control ---------------------------------------------------------

  authenticate(username: string, password: string, remoteAddress: string): User | undefined {
    return this.allowedFrom(this.users.authenticate(username, password), remoteAddress);
  }

  /** The user a verified client certificate names (the EXTERNAL mechanism), with the loopback rule applied. */
  certificateUser(username: string, remoteAddress: string): User | undefined {
    return this.allowedFrom(this.users.find(username), remoteAddress);
  }

  /** RabbitMQ's loopback_users: those users log in from localhost only. */
  private allowedFrom(user: User | undefined, remoteAddress: string): User | undefined {
    if (user === undefined) return undefined;
    if (this.config.loopbackUsers.includes(user.name) && !isLoopback(remoteAddress)) {
      this.log.warn(`user '${user.name}' can only connect via localhost (refused from ${remoteAddress})`);
      return undefined;
    }
    return user;
  }

  /** configure/write/read permission on a resource, as RabbitMQ checks it (403, channel error). */
  authorize(conn: Connection, perm: 'configure' | 'write' | 'read', kind: 'queue' | 'exchange', name: string): void {
    const user = conn.user;
    const p = user?.permissions.get(conn.vhostName);
    const resource = kind === 'exchange' && name === '' ? 'amq.default' : name;
    if (user !== undefined && p !== undefined && this.regex(p[perm]).test(resource)) return;
    throw new AmqpError(
      ReplyCode.accessRefused,
      `ACCESS_REFUSED - access to ${kind} '${resource}' in vhost '${conn.vhostName}' refused for user '${user?.name ?? ''}'`,
    );
  }

  private regex(pattern: string): RegExp {
    let r = this.regexCache.get(pattern);
    if (r === undefined) {
      // RabbitMQ matches permissions with unanchored Erlang regexes; '' matches nothing.
      r = pattern === '' ? /(?!)/ : new RegExp(pattern);
      this.regexCache.set(pattern, r);
    }
    return r;
  }

  // ---- output scheduling --------------------------------------------------------

  markDirty(conn: Connection): void {
    this.dirtyConns.add(conn);
    this.scheduleFlush();
  }

  /** A record was written to a shard's ring (or a peer link) on behalf of conn: flush soon, and push back if it is full. */
  noteShardWrite(shard: QueueLink, conn: Publisher | undefined): void {
    this.dirtyShards.add(shard);
    this.scheduleFlush();
    if (conn !== undefined && shard.congested) this.holds.pauseForFlow(conn);
    const pending = shard.pendingBytes;
    if (pending === 0) return;
    this.holds.noteRingBacklog(pending, conn, () => `${shard.label} ${shard.remoteNode === undefined ? 'ring' : 'link'} full`);
  }

  private onShardDrained(shard: QueueLink): void {
    if (this.shards.some((s) => s.pendingBytes > 0)) return;
    for (const r of this.remoteLinks.values()) if (r.pendingBytes > 0) return;
    if (this.holds.ringsDrained()) {
      this.log.info(`${shard.label} drained: the ring no longer blocks publishers`);
      this.flushAll();
    }
  }

  /** What blocks publishers now, as alarms (publisher-holds.ts): this node's first, then the other nodes' of the cluster. */
  alarms(): NodeAlarmInfo[] {
    return this.holds.alarms();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flushAll());
  }

  flushAll(): void {
    this.flushScheduled = false;
    for (const s of this.dirtyShards) s.flush();
    this.dirtyShards.clear();
    for (const c of this.dirtyConns) c.flush();
    this.dirtyConns.clear();
  }

  // ---- queues -------------------------------------------------------------------

  policyFor(q: QueueMeta): PolicyQueueSettings | undefined {
    return policyQueueSettings(this.policies.forQueue(q.vhost, q.name, queueTypeOf(q.arguments)));
  }

  /** Re-applies policies to every queue (after a policy was set or cleared). */
  applyPolicies(): void {
    for (const q of this.queuesById.values()) this.refreshQueueConfig(q);
    for (const v of this.vhosts.values()) for (const e of v.graph.exchanges()) this.applyExchangePolicy(v, e.name);
  }

  /** The policy's alternate-exchange for one exchange (used when it has no argument of its own). */
  applyExchangePolicy(vhost: VHost, name: string): void {
    const ae = this.policies.forExchange(vhost.name, name)?.definition['alternate-exchange'];
    vhost.graph.setPolicyAlternate(name, typeof ae === 'string' ? ae : undefined);
  }

  /**
   * Places a new queue on the least loaded shard (or where the definitions file says it
   * lives, for a durable queue coming back at start-up) and creates it there.
   */
  createQueue(vhost: VHost, nq: NewQueue, placement?: { queueId: number; shardIndex: number; replicated?: { nextOffset: number } }): QueueMeta {
    let shard = this.shards[0];
    for (const s of this.shards) if (shard === undefined || s.queueCount < shard.queueCount) shard = s;
    if (placement !== undefined) {
      shard = this.shards[placement.shardIndex];
      if (shard === undefined) {
        throw new Error(
          `queue '${nq.name}' in vhost '${vhost.name}' lives on shard ${placement.shardIndex}, but this node runs ${this.shards.length} shard(s): restart with --shards ${placement.shardIndex + 1} or more`,
        );
      }
    }
    if (shard === undefined) throw new Error('no shards');
    const id = placement?.queueId ?? this.nextQueueId++;
    if (id >= this.nextQueueId) this.nextQueueId = id + 1;
    const q: QueueMeta = {
      queueId: id,
      vhost: vhost.name,
      name: nq.name,
      durable: nq.durable,
      exclusive: nq.exclusive,
      autoDelete: nq.autoDelete,
      arguments: nq.arguments,
      shard,
      owner: nq.owner,
      consumers: new Set(),
      hadConsumer: false,
      config: undefined as never,
      deleted: false,
    };
    q.config = effectiveQueueConfig(q, this.policyFor(q));
    if (placement?.replicated !== undefined) q.config.replicated = placement.replicated;
    shard.queueCount++;
    vhost.queues.set(q.name, q);
    this.queuesById.set(id, q);
    shard.createQueue(q.config);
    this.noteShardWrite(shard, undefined);
    if (q.durable) void this.definitionsChanged();
    return q;
  }

  /** Re-evaluates a queue's settings (a policy changed) and tells its shard if they differ. */
  refreshQueueConfig(q: QueueMeta): void {
    const next = effectiveQueueConfig(q, this.policyFor(q));
    if (q.config.replicated !== undefined) next.replicated = q.config.replicated;
    if (JSON.stringify(next) === JSON.stringify(q.config)) return;
    q.config = next;
    q.shard.updateQueue(next);
    this.noteShardWrite(q.shard, undefined);
  }

  /** Deletes a queue: consumers are cancelled (clients notified), bindings removed; resolves with its ready count. */
  async deleteQueue(q: QueueMeta, why: string): Promise<number> {
    if (!this.forgetQueue(q)) return 0;
    if (this.cluster !== undefined) void this.cluster.queueDeleted(q);
    this.log.debug(`queue '${q.name}' in vhost '${q.vhost}' ${why}`);
    const count = q.shard.deleteQueue(q.queueId);
    this.noteShardWrite(q.shard, undefined);
    return count;
  }

  // ---- queues led by other nodes (cluster placement calls these) ----------------

  /** The link to a node's peer listener (one per node, dialled when first used); address updates an existing one. */
  remoteLink(node: string, address: string): RemoteLink {
    let link = this.remoteLinks.get(node);
    if (link === undefined) {
      link = new RemoteLink(node, address, () => this.peerIdentity, this);
      link.onDrain = () => this.onShardDrained(link as RemoteLink);
      this.remoteLinks.set(node, link);
    } else link.address = address;
    return link;
  }

  /** A node's peer address changed (it restarted on another port): later dials use the new one. */
  setPeerAddress(node: string, address: string): void {
    this.peerAddresses.set(node, address);
    this.nodesByReplyToken.set(nodeToken(node), node);
    const link = this.remoteLinks.get(node);
    if (link !== undefined) link.address = address;
  }

  /** A member left: replies to its reply names are unroutable from now on (it is told again if it comes back). */
  forgetPeerAddress(node: string): void {
    this.peerAddresses.delete(node);
    this.nodesByReplyToken.delete(nodeToken(node));
  }

  /**
   * Whether a direct reply-to name can take replies (queue.declare of it answers declare-ok, as
   * RabbitMQ's does while the requester lives): held here, or made by another member, which is
   * taken on trust (asking it would be a round trip; a reply to a gone requester is dropped there).
   */
  directReplyNameLive(name: string): boolean {
    if (this.directReplies.target(name) !== undefined) return true;
    const token = replyNameToken(name);
    return token !== undefined && !this.directReplies.ownName(name) && this.nodesByReplyToken.has(token);
  }

  /**
   * A reply to a direct reply-to name (its routing key): to this node's channel, or over the
   * peer link to the node that made the name. False when it goes nowhere (unroutable).
   */
  deliverDirectReply(payload: Buffer): boolean {
    const name = payloadRoutingKey(payload);
    const local = this.directReplies.target(name);
    if (local !== undefined) return local.deliverReply(payload);
    const token = replyNameToken(name);
    if (token === undefined || this.directReplies.ownName(name)) return false;
    const node = this.nodesByReplyToken.get(token);
    const address = node === undefined ? undefined : this.peerAddresses.get(node);
    if (node === undefined || address === undefined) return false;
    const link = this.remoteLink(node, address);
    if (!link.directReply(payload)) return false;
    this.noteShardWrite(link, undefined);
    return true;
  }

  /**
   * Registers a queue that another node leads: declare (also passive), bind, publish, consume,
   * get, purge and delete on this node work on it, forwarded to the leader. Not written to this
   * node's definitions file (its definition belongs to the cluster); exclusive queues stay
   * on their owner's node, so nq.owner is ignored.
   */
  addRemoteQueue(vhost: VHost, nq: NewQueue, placement: RemotePlacement): QueueMeta {
    if (vhost.queues.has(nq.name)) throw new Error(`${queueLabel(vhost.name, nq.name)} already exists on this node: use moveQueue`);
    if (this.queuesById.has(placement.queueId)) throw new Error(`queue id ${placement.queueId} is already in use on this node`);
    const link = this.remoteLink(placement.node, placement.peer);
    const q: QueueMeta = {
      queueId: placement.queueId,
      vhost: vhost.name,
      name: nq.name,
      durable: nq.durable,
      exclusive: nq.exclusive,
      autoDelete: nq.autoDelete,
      arguments: nq.arguments,
      shard: link,
      owner: undefined,
      consumers: new Set(),
      hadConsumer: false,
      config: undefined as never,
      deleted: false,
    };
    q.config = effectiveQueueConfig(q, this.policyFor(q));
    if (placement.queueId >= this.nextQueueId) this.nextQueueId = placement.queueId + 1;
    link.queueCount++;
    vhost.queues.set(q.name, q);
    this.queuesById.set(q.queueId, q);
    return q;
  }

  /**
   * This node forgets a queue (deleted elsewhere in the cluster): its consumers here are
   * cancelled (clients notified) and its bindings removed. Neither the shard nor the leader is
   * told; use deleteQueue to delete the queue itself.
   */
  removeQueueMeta(q: QueueMeta, why: string): void {
    if (this.forgetQueue(q)) this.log.debug(`${queueLabel(q.vhost, q.name)} removed from this node: ${why}`);
  }

  /** The front's side of a queue going away (consumers cancelled, bindings dropped); false if it already went. */
  private forgetQueue(q: QueueMeta): boolean {
    if (q.deleted) return false;
    q.deleted = true;
    const vhost = this.vhost(q.vhost);
    vhost.queues.delete(q.name);
    this.queuesById.delete(q.queueId);
    for (const c of [...q.consumers]) this.removeConsumer(c, true);
    vhost.graph.removeQueueBindings(q.name);
    this.exchangeUnbound(vhost);
    q.shard.queueCount--;
    if (q.durable && q.shard.remoteNode === undefined) void this.definitionsChanged();
    return true;
  }

  /**
   * The queue's leader changed: to another node ({ node, peer }) or to this one ({ shardIndex };
   * createOnShard sends the shard a queueCreate, as at start-up — pass false if the shard
   * already holds it). Consumers on this node are cancelled with a notification (their state
   * was on the old leader; clients re-consume, as with RabbitMQ's queue failover). Deliveries
   * already made stay tied to where they came from, so their acks go there.
   */
  moveQueue(q: QueueMeta, to: { node: string; peer: string } | { shardIndex: number }, createOnShard = true): void {
    let next: QueueLink;
    if ('shardIndex' in to) {
      const shard = this.shards[to.shardIndex];
      if (shard === undefined) throw new Error(`no shard ${to.shardIndex} on this node (${this.shards.length} shard(s))`);
      next = shard;
    } else next = this.remoteLink(to.node, to.peer);
    if (next === q.shard) return;
    for (const c of [...q.consumers]) this.removeConsumer(c, true);
    q.shard.queueCount--;
    q.shard = next;
    next.queueCount++;
    if (next.remoteNode === undefined && createOnShard) {
      (next as ShardLink).createQueue(q.config);
      this.noteShardWrite(next, undefined);
    }
    if (q.durable) void this.definitionsChanged();
    this.log.info(`${queueLabel(q.vhost, q.name)} now led by ${next.remoteNode === undefined ? 'this node' : `node ${next.remoteNode}`}`);
  }

  /**
   * This node stops leading a replicated queue: the shard drops it without logging anything
   * (its pending confirms are nacked, later publishes to it too) and its consumers here are
   * cancelled with a notification. The meta stays until the new leader is known (moveQueue).
   */
  dropOnShard(q: QueueMeta): void {
    if (q.shard.remoteNode !== undefined) return;
    for (const c of [...q.consumers]) this.removeConsumer(c, true);
    const shard = q.shard as ShardLink;
    shard.dropQueue(q.queueId);
    this.noteShardWrite(shard, undefined);
  }

  /**
   * A replicated queue this node leads again after dropOnShard left its meta here (a lost
   * lease, then elected at a newer epoch): moveQueue to the same shard does nothing, so the
   * shard is told to open it anew (with q.config, which names the log's next offset).
   */
  reopenOnShard(q: QueueMeta): void {
    if (q.shard.remoteNode !== undefined) throw new Error(`reopenOnShard: ${queueLabel(q.vhost, q.name)} is led by node ${q.shard.remoteNode}`);
    const shard = q.shard as ShardLink;
    shard.createQueue(q.config);
    this.noteShardWrite(shard, undefined);
    this.log.info(`${queueLabel(q.vhost, q.name)} now led by this node again`);
  }

  queueLabelOf(queueId: number): string {
    const q = this.queuesById.get(queueId);
    return q === undefined ? `queue with id ${queueId}` : queueLabel(q.vhost, q.name);
  }

  /** A peer link closed: deliveries it made are settled by nobody now (the leader requeued them). */
  retireUnacked(link: QueueLink): void {
    const retired = new RetiredLink(link.remoteNode ?? link.label);
    for (const conn of this.connections) for (const ch of conn.channels.values()) ch.retireUnacked(link, retired);
  }

  /** Node shutdown: every outgoing peer link closes (what was forwarded fails) and none is dialled again. */
  closeRemoteLinks(): void {
    for (const link of this.remoteLinks.values()) link.close();
  }

  /** groups routed queue names by owning shard (the map and arrays are reused per call: consume before the next). */
  private readonly byShard = new Map<QueueLink, number[]>();
  groupByShard(vhost: VHost, names: readonly string[]): Map<QueueLink, number[]> {
    const m = this.byShard;
    m.clear();
    for (const name of names) {
      const q = vhost.queues.get(name);
      if (q === undefined) continue;
      let ids = m.get(q.shard);
      if (ids === undefined) {
        ids = [];
        m.set(q.shard, ids);
      }
      ids.push(q.queueId);
    }
    return m;
  }

  /** Every histogram of the node: the front's and each shard's. */
  async collectLatency(): Promise<LatencyExport[]> {
    const fromShards = await Promise.all(this.shards.map((s) => s.latency()));
    const fromReplicator = this.cluster === undefined ? [] : await this.cluster.latency().catch(() => []);
    return [...this.latency.export(), ...fromShards.flat(), ...fromReplicator];
  }

  // ---- exchanges ----------------------------------------------------------------

  deleteExchange(vhost: VHost, name: string): void {
    const ex = vhost.graph.getExchange(name);
    vhost.graph.deleteExchange(name);
    this.exchangeUnbound(vhost);
    if (ex?.durable === true) void this.definitionsChanged();
  }

  /** Deletes auto-delete exchanges that lost their last binding (which may cascade). */
  exchangeUnbound(vhost: VHost): void {
    for (let names = vhost.graph.takeAutoDeleteCandidates(); names.length > 0; names = vhost.graph.takeAutoDeleteCandidates()) {
      for (const n of names) vhost.graph.deleteExchange(n);
    }
    void this.definitionsChanged();
  }

  definitionsChanged(): Promise<void> {
    return this.onDefinitionsChanged();
  }

  // ---- consumers ----------------------------------------------------------------

  addConsumer(ch: ConsumerChannel, q: QueueMeta, tag: string, tagShortstr: Buffer, noAck: boolean, exclusive: boolean, priority: number, consumerTimeoutMs?: number): ConsumerRef {
    const timeoutMs = consumerTimeoutMs ?? this.queueDeliveryTimeoutMs(q);
    const c: ConsumerRef = { id: this.nextConsumerId++, tag, tagShortstr, channel: ch, queue: q, noAck, exclusive, timeoutMs };
    ch.consumers.set(tag, c);
    q.consumers.add(c);
    q.hadConsumer = true;
    this.consumersById.set(c.id, c);
    // The global prefetch's credit table is shared memory of this node and cannot count what a
    // remote leader delivers: a remote consumer gets the channel's per-consumer prefetch, or,
    // with only a global one set, that limit for itself (never more than the channel allows).
    const prefetch = q.shard.remoteNode === undefined || ch.prefetchCount !== 0 ? ch.prefetchCount : ch.globalPrefetch;
    q.shard.consume(c.id, q.queueId, ch.key, prefetch, noAck, priority, tagShortstr, exclusive);
    this.noteShardWrite(q.shard, undefined);
    return c;
  }

  /** Cancels a consumer; notify = tell the client with a server-sent basic.cancel (queue deleted). */
  removeConsumer(c: ConsumerRef, notify: boolean): void {
    if (!this.consumersById.delete(c.id)) return;
    const ch = c.channel;
    ch.consumers.delete(c.tag);
    c.queue.consumers.delete(c);
    c.queue.shard.cancel(c.id);
    this.noteShardWrite(c.queue.shard, undefined);
    if (notify && ch.state === 'open') ch.consumerCancelledByServer(c);
    const q = c.queue;
    // A remote queue's leader sees every node's consumers and decides auto-delete there.
    if (q.autoDelete && q.hadConsumer && q.consumers.size === 0 && !q.deleted && q.shard.remoteNode === undefined) {
      void this.deleteQueue(q, 'auto-deleted (last consumer gone)');
    }
  }

  /** Closes the matching connections with 320 CONNECTION_FORCED (their vhost or user was deleted); returns how many. */
  closeConnections(match: (c: Connection) => boolean, explanation: string): number {
    let n = 0;
    for (const c of [...this.connections]) {
      if (!match(c)) continue;
      c.close(ReplyCode.connectionForced, `CONNECTION_FORCED - ${explanation}`);
      n++;
    }
    return n;
  }

  connectionClosed(conn: Connection): void {
    this.connections.delete(conn);
    this.forgetPublisher(conn);
    this.dirtyConns.delete(conn);
    for (const q of [...this.queuesById.values()]) {
      if (q.owner === conn) void this.deleteQueue(q, 'deleted (exclusive owner closed)');
    }
  }

  // ---- what the shards say ------------------------------------------------------

  /** A publisher went away: it is no longer paused or resumed. */
  forgetPublisher(p: Publisher): void {
    this.holds.forget(p);
  }

  onShardRecord(shard: QueueLink, kind: number, body: Buffer): void {
    if (kind === FromShard.deliver) {
      const consumerId = body.readUInt32LE(0);
      const queueId = body.readUInt32LE(4);
      const msgId = body.readDoubleLE(8);
      const redelivered = body[16] === 1;
      const c = this.consumersById.get(consumerId);
      if (c === undefined || c.channel.state !== 'open') {
        // The consumer went while the delivery was in flight: the message goes back to its place.
        shard.nack(queueId, [msgId], true);
        this.noteShardWrite(shard, undefined);
        return;
      }
      c.channel.deliver(c, shard, queueId, msgId, redelivered, body.subarray(21));
      return;
    }
    if (kind === FromShard.confirms) {
      const n = body.readUInt32LE(0);
      let p = 4;
      for (let i = 0; i < n; i++, p += 13) {
        const ch = this.channelsByKey.get(body.readUInt32LE(p));
        if (ch === undefined) continue;
        ch.onShardConfirm(body.readDoubleLE(p + 4), body[p + 12] === 1);
        this.confirmChannels.add(ch);
      }
      for (const ch of this.confirmChannels) ch.flushConfirms();
      this.confirmChannels.clear();
      return;
    }
    if (kind === FromShard.deadLetter) return this.onDeadLetter(body);
    if (kind === FromShard.error) {
      const r = new RecordReader(body);
      const failing = r.u8() === 1;
      const reason = r.str();
      if (failing) {
        this.log.error(`${reason}: blocking publishers until the log can be written again`);
        this.holds.setBlock(`store:${shard.label}`, reason);
      } else if (this.holds.blockedBy(`store:${shard.label}`)) {
        this.log.info(`${shard.label} log writable again: it no longer blocks publishers`);
        this.holds.clearBlock(`store:${shard.label}`);
      }
      this.flushAll();
      return;
    }
    if (kind === FromShard.queueExpired) {
      const q = this.queuesById.get(new RecordReader(body).u32());
      if (q !== undefined) void this.deleteQueue(q, 'expired (x-expires)');
      return;
    }
    if (kind === FromShard.consumerCancelled) {
      const c = this.consumersById.get(new RecordReader(body).u32());
      if (c !== undefined) this.removeConsumer(c, true);
      return;
    }
    if (!shard.onReply(kind, body)) this.log.error(`${shard.label}: unexpected record kind ${kind}`);
  }

  /** A dead-lettered message: route it from its DLX like a new publish (without confirms), dropping cycles. */
  private onDeadLetter(body: Buffer): void {
    const sourceId = body.readUInt32LE(0);
    const payload = Buffer.from(body.subarray(5));
    const source = this.queuesById.get(sourceId);
    if (source === undefined) return;
    const vhost = this.vhosts.get(source.vhost);
    if (vhost === undefined) return;
    const exchange = payloadExchange(payload);
    const routingKey = payloadRoutingKey(payload);
    if (vhost.graph.getExchange(exchange) === undefined) {
      this.log.debug(`dead letter from '${source.name}' dropped: no exchange '${exchange}'`);
      return;
    }
    const layout = payloadLayout(payload);
    const headers = peekHeaders(payload.subarray(layout.propsStart, layout.propsEnd));
    const routed: string[] = [];
    vhost.graph.route(exchange, routingKey, () => headers, vhost.queueExists, routed);
    const targets = routed.filter((name) => !isDeathCycle(headers, name));
    for (const [shard, ids] of this.groupByShard(vhost, targets)) {
      shard.publish(0, 0, 0, ids, payload);
      this.noteShardWrite(shard, undefined);
    }
  }
}

function isLoopback(address: string): boolean {
  if (address === '::1' || address.startsWith('127.')) return true;
  if (address.startsWith('::ffff:')) return address.slice(7).startsWith('127.');
  return isIP(address) === 0 && address === 'localhost';
}
