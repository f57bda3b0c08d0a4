/**
 * A node as a member of a cluster (ARCHITECTURE.md §3): it joins through etcd, shares
 * definitions there, applies every queue placement (lead it here, follow it, or reach it over
 * the peer link), proposes ISR changes its replicator asks for, answers replica polls, and
 * campaigns to be the controller that fails queues over.
 *
 * Queues are driven by their placement keys alone: the placement carries the declaration, so
 * every node can create its view of any queue, durable or not. Everything else (vhosts,
 * users, permissions, policies, exchanges, bindings) goes through DefinitionsSync.
 *
 * Safety rests on two things kept here: a node leads a replicated queue only at an epoch it
 * was elected to (a node that finds itself named leader of an epoch it did not start, after a
 * restart or a lost lease, asks for a new election instead), and it stops leading at once when
 * its lease is lost or a placement names another leader.
 */
import { tableFromJs, tableToJs } from '../amqp/field-table.js';
import { AmqpError } from '../amqp/errors.js';
import { ReplyCode } from '../amqp/spec.generated.js';
import type { Broker, NewQueue } from '../front/broker.js';
import type { Connection } from '../front/connection.js';
import { exportDefinitions, type Definitions } from '../front/definitions.js';
import type { QueueMeta } from '../front/queue-meta.js';
import type { VHost } from '../front/vhost.js';
import { ControlPlane, type MemberInfo } from '../cluster/control-plane.js';
import { Controller, chooseLeader, failoverPlacement, majority } from '../cluster/controller.js';
import { DefinitionsSync } from '../cluster/definitions-sync.js';
import { PlacementStore, chooseMembers, nodeLoad, type PlacedQueue, type Placement, type PlacementSpec, type QueueDecl } from '../cluster/placement.js';
import { ReplicaPoll, pollDecisionMaxMs } from '../cluster/replica-poll.js';
import { MembershipChanges } from '../cluster/membership.js';
import { AlarmSync } from '../cluster/alarm-sync.js';
import type { AlarmResource } from '../front/resource-alarms.js';
import { PeerDeathCheck } from '../cluster/death-evidence.js';
import { checkClusterSecret } from '../cluster/secret-check.js';
import { StartError } from './start-error.js';
import type { FollowRequest, LeadRequest, PlacementUpdate, ReplicaMember, ReplicaStatus } from '../replication/types.js';
import type { Logger } from './logger.js';
import type { LatencyExport } from '../metrics/latency.js';
import type { ClusterQueueView, ClusterStatusView } from '../cluster/cluster-view.js';
import type { ClusterQueues } from '../front/broker.js';
import { applyClusterDefinitions, withoutQueues } from './cluster-definitions.js';

/** What the member needs of the replicator worker (replication/worker-client.ts). */
export interface ReplicatorControl {
  lead(q: LeadRequest): Promise<{ nextOffset: number }>;
  follow(q: FollowRequest): Promise<void>;
  updatePlacement(queueId: number, p: PlacementUpdate): Promise<void>;
  stop(queueId: number): Promise<void>;
  deleteQueue(queueId: number): Promise<void>;
  replicaState(queueId: number): Promise<{ epoch: number; logEnd: number } | undefined>;
  /** A replica poll's question at placement epoch `epoch`: fence against it, then report the log end (replica-poll.ts). */
  answerPoll(queueId: number, epoch: number, fenceMs: number): Promise<{ epoch: number; logEnd: number } | undefined>;
  status(): Promise<ReplicaStatus[]>;
  latency(): Promise<LatencyExport[]>;
  onIsrChange: ((queueId: number, isr: string[]) => void) | undefined;
  onPeerDown: ((node: string) => void) | undefined;
}

export interface ClusterMemberOptions {
  broker: Broker;
  replicator: ReplicatorControl;
  log: Logger;
  etcd: string[];
  clusterName: string;
  nodeName: string;
  leaseMs: number;
  /** host:port other nodes and clients use. */
  advertised: { amqp: string; peer: string; repl: string };
  shards: number;
  /** The cluster secret: its fingerprint in etcd keeps a node with another secret out at start. */
  secret: string;
}

/** How long a controller waits for replicas to say where their logs end. */
const replicaPollMs = 1_000;
/** How long a declaring client waits for its queue's placement to be applied here. */
const declareApplyMs = 10_000;

/** Exclusive and non-durable queues do not outlive their node's run. */
function isTransient(p: Placement): boolean {
  return p.queue !== undefined && (p.queue.exclusive || !p.queue.durable);
}

/** A queue as logs name it: its name, prefixed by its vhost unless that is '/'. */
function label(vhost: string, name: string): string {
  return vhost === '/' ? name : `${vhost}/${name}`;
}

function queueKey(vhost: string, name: string): string {
  return `${vhost}\u0000${name}`;
}

export class ClusterMember implements ClusterQueues {
  readonly plane: ControlPlane;
  private readonly defs: DefinitionsSync;
  private readonly placements: PlacementStore;
  private readonly poll: ReplicaPoll;
  private readonly alarms: AlarmSync;
  private readonly controller: Controller;
  readonly members = new Map<string, MemberInfo>();
  private readonly known = new Map<string, PlacedQueue>();
  /** Replicated queues this node leads, with the epoch it leads them at. */
  private readonly led = new Map<number, number>();
  /** Replicated queues this node follows, with the epoch of the placement it follows. */
  private readonly followed = new Map<number, number>();
  /** Replicated queues this node was removed from, kept until their leader applied that (membersPending cleared). */
  private readonly leaving = new Set<number>();
  /** Placement work per queue runs in order (it awaits the replicator). */
  private readonly chains = new Map<string, Promise<void>>();
  /** Exclusive queues declared here, waiting for their placement to be applied: their owner. */
  private readonly owners = new Map<string, Connection>();
  private readonly appliedWaiters = new Map<string, (() => void)[]>();
  /** Queues being declared by this node (their first epoch is this node's to lead). */
  private readonly declaring = new Set<string>();
  /** `id@epoch` placements this node wrote naming itself leader (its own election). */
  private readonly elected = new Set<string>();
  private closers: { close(): Promise<void> }[] = [];
  /** Closed replication links: their peer is failed over only on evidence that it is gone. */
  private readonly deaths: PeerDeathCheck;
  private stopped = false;
  /** Told of every placement this node sees (membership changes wait on them). */
  private readonly placementSeen = new Set<(vhost: string, name: string) => void>();
  /** add_member, delete_member, grow, shrink (cluster/membership.ts). */
  readonly membership: MembershipChanges;

  constructor(private readonly o: ClusterMemberOptions) {
    this.plane = new ControlPlane({ hosts: o.etcd, clusterName: o.clusterName, leaseMs: o.leaseMs, log: o.log });
    this.defs = new DefinitionsSync(this.plane.ns, o.log);
    this.placements = new PlacementStore(this.plane.ns);
    this.alarms = new AlarmSync(this.plane.ns, o.nodeName, (node) => this.members.has(node), (alarms) => o.broker.holds.setRemoteAlarms(alarms), o.log);
    this.poll = new ReplicaPoll(this.plane.ns, o.nodeName, async (queueId, epoch, fenceMs) => {
      const s = await o.replicator.answerPoll(queueId, epoch, fenceMs);
      return s === undefined ? undefined : { epoch: s.epoch, offset: s.logEnd };
    }, o.log);
    this.controller = new Controller({
      plane: this.plane,
      placements: this.placements,
      nodeName: o.nodeName,
      log: o.log,
      pickNewLeader: async (q, candidates) => chooseLeader(q.placement, candidates, await this.poll.ask(q.placement.id, q.placement.epoch, candidates, replicaPollMs)),
      onFailover: (q, next) => o.log.warn(`controller: ${label(q.vhost, q.name)} fails over to ${next.leader} at epoch ${next.epoch}`),
    });
    this.deaths = new PeerDeathCheck({
      ns: this.plane.ns,
      log: o.log,
      member: (node) => this.members.get(node),
      // Its leases are revoked, so membership reports it too; this only saves the controller (if here) a watch round trip.
      onGone: (node) => this.controller.suspect(node),
    });
    this.membership = new MembershipChanges({
      placements: this.placements,
      running: async () => new Set((await this.plane.members()).map((m) => m.name)),
      mirroredMinInsync: (vhost, name, count) => {
        const min = o.broker.policies.forQueue(vhost, name, 'classic')?.definition['min-insync'];
        return typeof min === 'number' ? Math.min(min, count) : 1;
      },
      onPlacement: (cb) => {
        this.placementSeen.add(cb);
        return () => this.placementSeen.delete(cb);
      },
      log: o.log,
    });
  }

  get nodeName(): string {
    return this.o.nodeName;
  }

  async start(): Promise<void> {
    const { broker, log } = this.o;
    try {
      await this.plane.ping();
    } catch (e) {
      throw new StartError(`cannot reach etcd at ${this.o.etcd.join(', ')}: ${e instanceof Error ? e.message : String(e)} (is it running? see docs/cluster.md)`);
    }
    await checkClusterSecret(this.plane.ns, this.o.secret);
    // A key left by an earlier run would count once this node is a member again: gone first.
    await this.alarms.publish([]);
    await this.plane.join({ name: this.o.nodeName, ...this.o.advertised, startedAtMs: Date.now() });
    this.plane.onLeaseLost((reason) => this.onLeaseLost(reason));
    this.plane.onLeaseGranted(() => this.onLeaseRegained());
    this.plane.onForgotten(() => {
      log.error('this node was removed from the cluster (forget_cluster_node): stopping');
      process.kill(process.pid, 'SIGTERM');
    });
    for (const m of await this.plane.members()) this.noteMember(m);
    this.closers.push(
      await this.plane.watchMembers((ev) => {
        if (ev.kind === 'add') this.noteMember(ev.member);
        else {
          this.members.delete(ev.name);
          if (ev.name !== this.o.nodeName) this.o.broker.forgetPeerAddress(ev.name);
          if (ev.member !== undefined) this.o.log.info(`cluster: node ${ev.name} left`);
          if (ev.name !== this.o.nodeName) this.dropTransientQueuesLater(ev.name);
        }
        this.alarms.membersChanged();
      }),
    );
    await this.alarms.start();
    this.closers.push(this.alarms);

    // Definitions: the cluster's win; a first node seeds the cluster with its own.
    const doc = await this.defs.load();
    if ((doc.vhosts?.length ?? 0) === 0) await this.defs.publish(withoutQueues(exportDefinitions(broker, false)));
    else applyClusterDefinitions(broker, doc, log);
    await this.defs.watch((d) => applyClusterDefinitions(broker, d, log));
    const previous = broker.onDefinitionsChanged;
    broker.onDefinitionsChanged = async () => {
      await previous();
      if (!this.stopped) await this.defs.publish(withoutQueues(exportDefinitions(broker, false)));
    };

    this.o.replicator.onIsrChange = (queueId, isr) => void this.proposeIsr(queueId, isr);
    this.o.replicator.onPeerDown = (node) => this.peerDown(node);
    for (const q of await this.placements.list()) this.schedule(q.vhost, q.name, q.placement);
    this.closers.push(await this.placements.watch((vhost, name, p) => this.schedule(vhost, name, p), { replay: true }));
    await Promise.all([...this.chains.values()]);
    await this.poll.start();
    this.controller.start();
    log.info(`cluster ${this.o.clusterName}: joined as ${this.o.nodeName} with ${this.members.size} member(s) up`);
  }

  /**
   * A replication link to node closed: fail it over now only if it is provably gone (its port
   * refuses connections, death-evidence.ts); a live node's closed link moves nothing.
   */
  private peerDown(node: string): void {
    if (!this.stopped) void this.deaths.linkClosed(node);
  }

  /** This node's resource alarms changed (front/resource-alarms.ts): the other nodes hold their publishers too. */
  publishAlarms(resources: readonly AlarmResource[]): Promise<void> {
    return this.alarms.publish(resources);
  }

  private noteMember(m: MemberInfo): void {
    this.members.set(m.name, m);
    if (m.name !== this.o.nodeName) this.o.broker.setPeerAddress(m.name, m.peer);
  }

  /**
   * A node left. Every other node, not only the controller, acts on it: when the node that
   * left was the controller, its successor is elected after this event and never sees it.
   * Removal is a compare-and-set on the epoch, so one node's delete wins. It waits one lease
   * first: a node that only lost its lease (etcd was out of reach for everyone) is back by then,
   * with its connections and their exclusive queues; a restarted one deletes its own.
   */
  private dropTransientQueuesLater(node: string): void {
    setTimeout(() => {
      if (!this.stopped && !this.members.has(node)) void this.dropTransientQueuesOf(node);
    }, this.o.leaseMs).unref();
  }

  /**
   * A node is gone: its exclusive and non-durable classic queues went with it, as in
   * RabbitMQ, so they are removed from the cluster.
   */
  private async dropTransientQueuesOf(node: string): Promise<void> {
    for (const k of [...this.known.values()]) {
      const p = k.placement;
      if (p.type !== 'classic' || p.leader !== node || !isTransient(p)) continue;
      const removed = await this.placements.remove(k.vhost, k.name, p.epoch).catch((e: unknown) => {
        this.o.log.warn(`could not remove ${label(k.vhost, k.name)}: ${String(e)}`);
        return false;
      });
      if (removed) this.o.log.info(`cluster: ${label(k.vhost, k.name)} was ${p.queue?.exclusive === true ? 'exclusive to a connection' : 'non-durable'} on ${node}, which is gone: deleted it`);
    }
  }

  // ---- declaring and deleting (called by the front) ------------------------------

  /** queue.declare of a queue this node does not know: placed through etcd, then applied here. */
  async declareQueue(vhost: VHost, nq: NewQueue): Promise<QueueMeta> {
    const key = queueKey(vhost.name, nq.name);
    const spec = this.placementFor(vhost, nq);
    if (nq.owner !== undefined) this.owners.set(key, nq.owner);
    const applied = this.whenApplied(key);
    this.declaring.add(key);
    let timer: NodeJS.Timeout | undefined;
    try {
      const p = await this.placements.create(vhost.name, nq.name, spec);
      this.schedule(vhost.name, nq.name, p);
      await Promise.race([
        applied,
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new AmqpError(ReplyCode.internalError, `INTERNAL_ERROR - ${nq.name}: the cluster did not place the queue in time`, 50, 10)), declareApplyMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
      this.declaring.delete(key);
      this.owners.delete(key);
    }
    const q = vhost.queues.get(nq.name);
    if (q === undefined) throw new AmqpError(ReplyCode.internalError, `INTERNAL_ERROR - queue '${nq.name}' was deleted while it was declared`, 50, 10);
    return q;
  }

  /** The front deleted a queue: the cluster forgets it (every node drops its view). */
  async queueDeleted(q: QueueMeta): Promise<void> {
    await this.placements.remove(q.vhost, q.name).catch((e: unknown) => this.o.log.warn(`could not remove the placement of ${label(q.vhost, q.name)}: ${String(e)}`));
  }

  private placementFor(vhost: VHost, nq: NewQueue): PlacementSpec {
    const me = this.o.nodeName;
    const live = [...this.members.keys()];
    const load = nodeLoad([...this.known.values()].map((k) => k.placement));
    const queue: QueueDecl = { durable: nq.durable, exclusive: nq.exclusive, autoDelete: nq.autoDelete, arguments: tableToJs(nq.arguments), owner: nq.exclusive ? me : undefined };
    const t = nq.arguments['x-queue-type'];
    if (t?.type === 'S' && t.value === 'quorum') {
      const size = nq.arguments['x-quorum-initial-group-size'];
      const want = size !== undefined && typeof size.value === 'number' ? size.value : 3;
      const members = chooseMembers(live, load, Math.min(want, live.length), me);
      return { type: 'quorum', leader: me, members, isr: members, epoch: 1, minInsync: majority(members.length), queue };
    }
    const policy = this.o.broker.policies.forQueue(vhost.name, nq.name, 'classic')?.definition;
    const mode = policy?.['ha-mode'];
    if (!nq.exclusive && (mode === 'all' || mode === 'exactly')) {
      const params = policy?.['ha-params'];
      const count = mode === 'all' ? live.length : Math.min(typeof params === 'number' ? params : 1, live.length);
      const members = chooseMembers(live, load, count, me);
      const minRaw = policy?.['min-insync'];
      const minInsync = typeof minRaw === 'number' ? Math.min(minRaw, members.length) : 1;
      return { type: 'mirrored', leader: me, members, isr: members, epoch: 1, minInsync, queue };
    }
    return { type: 'classic', leader: me, members: [me], isr: [me], epoch: 1, minInsync: 1, queue };
  }

  private whenApplied(key: string): Promise<void> {
    return new Promise((resolve) => {
      let list = this.appliedWaiters.get(key);
      if (list === undefined) this.appliedWaiters.set(key, (list = []));
      list.push(resolve);
    });
  }

  // ---- applying placements ----------------------------------------------------------

  private schedule(vhost: string, name: string, p: Placement | undefined): void {
    for (const cb of [...this.placementSeen]) cb(vhost, name);
    const key = queueKey(vhost, name);
    const prev = this.chains.get(key) ?? Promise.resolve();
    const next = prev
      .then(() => this.apply(vhost, name, p))
      .catch((e: unknown) => this.o.log.error(`cluster: applying the placement of ${label(vhost, name)} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`))
      .finally(() => {
        if (this.chains.get(key) === next) this.chains.delete(key);
        const waiters = this.appliedWaiters.get(key);
        if (waiters !== undefined && this.o.broker.vhosts.get(vhost)?.queues.has(name) === true) {
          this.appliedWaiters.delete(key);
          for (const w of waiters) w();
        }
      });
    this.chains.set(key, next);
  }

  private member(node: string): ReplicaMember {
    const m = this.members.get(node);
    return { node, repl: m?.repl ?? '' };
  }

  private async apply(vhost: string, name: string, p: Placement | undefined): Promise<void> {
    if (this.stopped) return;
    const { broker, replicator, log } = this.o;
    const key = queueKey(vhost, name);
    const before = this.known.get(key)?.placement;
    if (p !== undefined && before !== undefined && p.version < before.version) return; // an older state than applied
    if (p === undefined) this.known.delete(key);
    else this.known.set(key, { vhost, name, placement: p });
    const v = broker.vhosts.get(vhost) ?? broker.addVhost(vhost);
    const meta = v.queues.get(name);

    if (p === undefined) {
      if (meta !== undefined && !meta.deleted) {
        if (meta.shard.remoteNode === undefined) await broker.deleteQueue(meta, 'deleted in the cluster');
        else broker.removeQueueMeta(meta, 'deleted in the cluster');
      }
      if (before !== undefined && before.type !== 'classic' && (before.members.includes(this.o.nodeName) || this.leaving.delete(before.id))) {
        this.led.delete(before.id);
        this.followed.delete(before.id);
        await replicator.deleteQueue(before.id);
      }
      return;
    }
    if (meta !== undefined && meta.queueId !== p.id) {
      // Same name, another incarnation (deleted and declared again): forget the old one first.
      broker.removeQueueMeta(meta, 'replaced by a new declaration');
      return this.apply(vhost, name, p);
    }
    const nq = this.newQueue(vhost, name, p);
    const me = this.o.nodeName;
    if (p.type === 'classic') {
      if (p.leader === me && meta === undefined && before === undefined && isTransient(p) && !this.declaring.has(key)) {
        // Left by this node's previous run: its connection or its in-memory messages are gone.
        log.info(`cluster: ${label(vhost, name)} was ${p.queue?.exclusive === true ? 'exclusive to a connection' : 'non-durable'} on this node's previous run: deleting it`);
        await this.placements.remove(vhost, name, p.epoch);
        return;
      }
      if (p.leader === me) {
        if (meta === undefined) broker.createQueue(v, nq, { queueId: p.id, shardIndex: p.id % this.o.shards });
      } else this.ensureRemote(v, meta, nq, p);
      return;
    }

    // Replicated.
    const ledEpoch = this.led.get(p.id);
    if (p.leader === me) {
      if (ledEpoch === p.epoch) {
        await replicator.updatePlacement(p.id, this.update(p));
        await this.confirmMembers(vhost, name, p);
        return;
      }
      // Lead only an epoch this process was given: a failover it watched happen, its own
      // election, or the queue it just declared. Named leader of any other epoch (after a
      // restart, a lost lease) its log may lack the unsynced tail it had: elect instead.
      const given =
        (before !== undefined && before.leader !== me && p.epoch > before.epoch) ||
        this.elected.delete(`${p.id}@${p.epoch}`) ||
        (p.epoch === 1 && this.declaring.has(key));
      if (!given) {
        await this.elect({ vhost, name, placement: p });
        return;
      }
      if (ledEpoch !== undefined) {
        await replicator.stop(p.id);
        if (meta !== undefined && meta.shard.remoteNode === undefined) broker.dropOnShard(meta);
      }
      const { nextOffset } = await replicator.lead(this.leadRequest(vhost, name, p));
      this.led.set(p.id, p.epoch);
      this.followed.delete(p.id);
      const replicated = { nextOffset };
      if (meta === undefined) broker.createQueue(v, nq, { queueId: p.id, shardIndex: p.id % this.o.shards, replicated });
      else {
        meta.config = { ...meta.config, replicated };
        if (meta.shard.remoteNode === undefined) {
          // Led here before (its lease was lost): the shard dropped it, and it stays on that shard.
          broker.dropOnShard(meta);
          broker.reopenOnShard(meta);
        } else broker.moveQueue(meta, { shardIndex: p.id % this.o.shards });
      }
      log.info(`cluster: leading ${label(vhost, name)} at epoch ${p.epoch} (log continues at ${nextOffset})`);
      await this.confirmMembers(vhost, name, p);
      return;
    }
    if (ledEpoch !== undefined) {
      // Deposed: stop confirming at once; the shard's pending confirms are nacked.
      this.led.delete(p.id);
      await replicator.stop(p.id);
      if (meta !== undefined && meta.shard.remoteNode === undefined) broker.dropOnShard(meta);
      log.warn(`cluster: no longer leading ${label(vhost, name)} (epoch ${p.epoch} is led by ${p.leader})`);
    }
    if (p.members.includes(me)) {
      const followedEpoch = this.followed.get(p.id);
      if (followedEpoch !== undefined && p.epoch > followedEpoch && before?.leader === p.leader) {
        // The same node leads again at a newer epoch (it lost its lease and elected itself):
        // its old leadership was fenced, which dropped this follower's stream without a word,
        // so follow afresh — a new Fetch attaches to the new epoch.
        await replicator.stop(p.id);
        this.followed.delete(p.id);
      }
      if (this.leaving.delete(p.id) && this.followed.delete(p.id)) {
        // Removed and added again before the removal was seen applied: the leader dropped this
        // follower's stream when it applied the removal, so follow afresh.
        await replicator.stop(p.id);
      }
      if (this.followed.get(p.id) === undefined) await replicator.follow({ queueId: p.id, name: `${label(vhost, name)}`, epoch: p.epoch, leader: this.member(p.leader) });
      else await replicator.updatePlacement(p.id, this.update(p));
      this.followed.set(p.id, p.epoch);
    } else if (this.followed.has(p.id) || this.leaving.has(p.id) || before === undefined || before.members.includes(me)) {
      // Removed from the members (delete_member, shrink, forget_cluster_node), now or while
      // this node was down: stop following and delete the replica, once the leader applied the
      // change (before that its stream to this node is live, and closing it would look like death).
      if (p.membersPending === true) this.leaving.add(p.id);
      else {
        this.leaving.delete(p.id);
        if (this.followed.delete(p.id) || (await replicator.replicaState(p.id)) !== undefined) {
          await replicator.deleteQueue(p.id);
          log.info(`cluster: no longer a member of ${label(vhost, name)} (members [${p.members.join(', ')}]): deleted its replica`);
        }
      }
    }
    this.ensureRemote(v, meta, nq, p);
  }

  /**
   * The leader applied a membership change (its replicator counts acks by the new members):
   * clears membersPending so that the next change may be written (cluster/membership.ts). A
   * refused write means the placement moved on; the newer one is applied and confirmed in turn.
   */
  private async confirmMembers(vhost: string, name: string, p: Placement): Promise<void> {
    if (p.membersPending !== true) return;
    const ok = await this.placements.compareAndSet(vhost, name, p.epoch, { ...p, membersPending: false }, { expectedVersion: p.version }).catch((e: unknown) => {
      this.o.log.warn(`cluster: could not confirm the members of ${label(vhost, name)}: ${e instanceof Error ? e.message : String(e)}; retrying`);
      setTimeout(() => this.schedule(vhost, name, this.known.get(queueKey(vhost, name))?.placement), 500).unref();
      return false;
    });
    if (ok) this.o.log.info(`cluster: ${label(vhost, name)}: leading with members [${p.members.join(', ')}] (epoch ${p.epoch})`);
  }

  private ensureRemote(v: VHost, meta: QueueMeta | undefined, nq: NewQueue, p: Placement): void {
    const peer = this.members.get(p.leader)?.peer ?? '';
    if (meta === undefined) this.o.broker.addRemoteQueue(v, nq, { queueId: p.id, node: p.leader, peer });
    else if (meta.shard.remoteNode !== p.leader) this.o.broker.moveQueue(meta, { node: p.leader, peer });
  }

  private newQueue(vhost: string, name: string, p: Placement): NewQueue {
    const d = p.queue;
    const owner = d?.owner === this.o.nodeName ? this.owners.get(queueKey(vhost, name)) : undefined;
    return {
      name,
      durable: d?.durable ?? true,
      exclusive: d?.exclusive ?? false,
      autoDelete: d?.autoDelete ?? false,
      arguments: tableFromJs(d?.arguments ?? {}),
      owner,
    };
  }

  private leadRequest(vhost: string, name: string, p: Placement): LeadRequest {
    return { queueId: p.id, name: `${label(vhost, name)}`, epoch: p.epoch, type: p.type, members: p.members.map((n) => this.member(n)), isr: p.isr, minInsync: p.minInsync };
  }

  private update(p: Placement): PlacementUpdate {
    return { epoch: p.epoch, members: p.members.map((n) => this.member(n)), isr: p.isr, minInsync: p.minInsync, leader: this.member(p.leader) };
  }

  /**
   * Elects a leader for a queue whose named leader cannot lead at its epoch: the live
   * candidate whose log ends highest, at the next epoch, by compare-and-set (so it races
   * safely with the controller).
   */
  private async elect(q: PlacedQueue): Promise<void> {
    const p = q.placement;
    const live = new Set(this.members.keys());
    const pool = p.type === 'quorum' ? p.members : p.isr;
    const candidates = pool.filter((n) => live.has(n));
    const askedAtMs = Date.now();
    const reports = await this.poll.ask(p.id, p.epoch, candidates, replicaPollMs);
    const choice = chooseLeader(p, candidates, reports);
    // Answers older than a decision may rest on are as good as none (their fences may have lifted).
    if (choice === undefined || Date.now() - askedAtMs > pollDecisionMaxMs) {
      this.o.log.warn(`cluster: ${label(q.vhost, q.name)} has no leader yet (${reports.length} of ${candidates.length} replicas answered); retrying`);
      setTimeout(() => this.schedule(q.vhost, q.name, this.known.get(queueKey(q.vhost, q.name))?.placement), 500).unref();
      return;
    }
    const dead = new Set(p.members.filter((n) => !live.has(n)));
    const next = failoverPlacement(p, dead, candidates, choice);
    if (next === undefined) return;
    if (choice.node === this.o.nodeName) this.elected.add(`${p.id}@${next.epoch}`);
    const ok = await this.placements.compareAndSet(q.vhost, q.name, p.epoch, next, { expectedVersion: p.version });
    this.o.log.info(`cluster: election for ${label(q.vhost, q.name)}: ${choice.node} at epoch ${next.epoch}${ok ? '' : ' (lost the race: someone moved it first)'}`);
  }

  private async proposeIsr(queueId: number, isr: string[]): Promise<void> {
    const q = [...this.known.values()].find((k) => k.placement.id === queueId);
    if (q === undefined || q.placement.leader !== this.o.nodeName || this.led.get(queueId) !== q.placement.epoch) return;
    const p = q.placement;
    // The leader's view of the members may be older than this placement's: only members stay in sync.
    const next = { ...p, isr: isr.filter((n) => p.members.includes(n)) };
    const ok = await this.placements.compareAndSet(q.vhost, q.name, p.epoch, next, { expectedVersion: p.version }).catch(() => false);
    if (ok) this.o.log.info(`queue '${q.name}' in vhost '${q.vhost}': in-sync set now [${next.isr.join(', ')}] (epoch ${p.epoch})`);
  }

  /** The lease is gone: another node may be elected any moment, so this one stops leading now. */
  private onLeaseLost(reason: string): void {
    this.o.log.error(`cluster: lost the etcd lease (${reason}): no longer leading any replicated queue`);
    for (const [queueId] of this.led) {
      this.led.delete(queueId);
      void this.o.replicator.stop(queueId);
      const meta = this.o.broker.queuesById.get(queueId);
      if (meta !== undefined && meta.shard.remoteNode === undefined) this.o.broker.dropOnShard(meta);
    }
  }

  /**
   * Back with a new lease: a replicated queue whose placement still names this node leader,
   * though it stopped leading when the lease was lost, has no leader. If nothing else moves
   * its placement (every node lost its lease at once: etcd was down), nobody would elect one:
   * apply it again, which elects.
   */
  private onLeaseRegained(): void {
    // A write while the lease was gone may have failed, and a key bound to nothing may be stale.
    this.alarms.republish();
    for (const k of this.known.values()) {
      const p = k.placement;
      if (p.type !== 'classic' && p.leader === this.o.nodeName && this.led.get(p.id) !== p.epoch) this.schedule(k.vhost, k.name, p);
    }
  }

  // ---- views --------------------------------------------------------------------------

  queues(): ClusterQueueView[] {
    return [...this.known.values()].map((k) => ({ vhost: k.vhost, name: k.name, type: k.placement.type, leader: k.placement.leader, members: k.placement.members, isr: k.placement.isr, epoch: k.placement.epoch }));
  }

  async status(): Promise<ClusterStatusView> {
    return {
      cluster: this.o.clusterName,
      node: this.o.nodeName,
      controller: await this.controller.leader(),
      members: await this.plane.members(),
      forgotten: await this.plane.forgottenNodes(),
      replicas: await this.o.replicator.status(),
    };
  }

  async forget(node: string): Promise<void> {
    if (node === this.o.nodeName) throw new Error('a node cannot forget itself; run forget_cluster_node on another member');
    await this.plane.forget(node);
    this.controller.suspect(node);
  }

  latency(): Promise<LatencyExport[]> {
    return this.o.replicator.latency();
  }

  async unforget(node: string): Promise<void> {
    await this.plane.unforget(node);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.deaths.stop();
    await this.controller.stop().catch(() => {});
    await this.poll.close().catch(() => {});
    for (const c of this.closers) await c.close().catch(() => {});
    await this.defs.close().catch(() => {});
    await this.plane.close().catch(() => {});
  }
}

export type { Definitions };
