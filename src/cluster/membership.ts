/**
 * Changing a replicated queue's members after declaration: rabbitmq-queues add_member,
 * delete_member, grow and shrink, and the removal from every queue that forget_cluster_node
 * does. A change is a compare-and-set on the queue's placement (placement.ts), like every
 * placement change; the nodes apply it as they apply any placement (node/cluster-member.ts):
 * an added node starts following and catches up, a removed one stops and deletes its replica,
 * the leader counts acks by the new member set.
 *
 * Why a change is safe (Raft's single-server changes, with etcd holding the configuration):
 * - One node is added or removed per change, so any majority of the old member set overlaps
 *   any majority of the new one: a record committed under either is held by whoever a failover
 *   may pick under the other.
 * - The leader may still commit by the old set for a moment after a change is written, so the
 *   change is marked pending (membersPending) until the leader's replicator uses the new set,
 *   and the next change of the queue waits for that. Two changes ahead of the leader would
 *   break the overlap (3 members committing by 2, a 5-member set electing from 3 others).
 * - An added member counts against the majority at once: it holds nothing yet, so adding a
 *   4th member to a 3-member queue makes the leader wait for 3 acks, as in Raft.
 * - A running leader is not removed: it would have to stop confirming before another member
 *   is chosen, or it could commit a record the chosen one lacks; warren has no hand-over for
 *   that. A stopped leader is failed over by the controller first, then removed.
 */
import type { Logger } from '../node/logger.js';
import { majority } from './controller.js';
import type { PlacementSpec, PlacementStore, Placement } from './placement.js';
import { MembershipError, type GrowSelection, type MemberChange, type MemberChangeRow, type QueueMembership } from './membership-view.js';

export interface MembershipHost {
  placements: PlacementStore;
  /** Names of the running members (a live etcd lease). */
  running(): Promise<ReadonlySet<string>>;
  /** min-insync of a mirrored queue with memberCount members: its policy's, at most memberCount. */
  mirroredMinInsync(vhost: string, name: string, memberCount: number): number;
  /** Calls cb each time this node sees a new placement of a queue; returns the unsubscribe. */
  onPlacement(cb: (vhost: string, name: string) => void): () => void;
  log: Logger;
}

export interface MembershipOptions {
  /**
   * How long one change waits for the queue's leader: to apply the previous change before this
   * one is written, to move off a stopped node that is being removed, to apply this change.
   */
  waitMs?: number;
}

/** Long against a failover (under a second after a crash, one lease for a silent node), short against warrenctl's 60 s. */
const waitMsDefault = 10_000;
/** A waiting change looks at etcd again at least this often (a missed watch event costs no more). */
const recheckMs = 250;
/** Queues changed at once by grow and shrink: each change is a few etcd round trips and a wait. */
const parallelChanges = 8;

type Op = 'add' | 'remove';

function label(vhost: string, name: string): string {
  return `queue '${name}' in vhost '${vhost}'`;
}

function list(nodes: readonly string[]): string {
  return `[${nodes.join(', ')}]`;
}

function copy(p: PlacementSpec): PlacementSpec {
  return { type: p.type, leader: p.leader, members: [...p.members], isr: [...p.isr], epoch: p.epoch, minInsync: p.minInsync, ...(p.queue === undefined ? {} : { queue: p.queue }) };
}

/**
 * min-insync after a change to memberCount members: a quorum queue's is its majority (shown,
 * not used by its rule); a mirrored queue's is its policy's, never more than its members, or
 * its commits would wait for replicas it does not have.
 */
export function minInsyncFor(p: PlacementSpec, memberCount: number, mirroredMin: number): number {
  if (p.type === 'quorum') return majority(memberCount);
  return Math.max(1, Math.min(mirroredMin, memberCount));
}

/** The placement with node added: not in the ISR (it joins once caught up), the change pending until the leader applies it. */
export function withMemberAdded(p: PlacementSpec, node: string, minInsync: number): PlacementSpec {
  return { ...copy(p), members: [...p.members, node], minInsync, membersPending: true };
}

/** The placement with node removed from the members and the ISR, the change pending until the leader applies it. */
export function withMemberRemoved(p: PlacementSpec, node: string, minInsync: number): PlacementSpec {
  return { ...copy(p), members: p.members.filter((n) => n !== node), isr: p.isr.filter((n) => n !== node), minInsync, membersPending: true };
}

/** Why node cannot be added to the queue at all (waiting would not help), or undefined. */
export function addRefusal(vhost: string, name: string, p: PlacementSpec | undefined, node: string, running: ReadonlySet<string>): MembershipError | undefined {
  if (p === undefined) return new MembershipError('not_found', `${label(vhost, name)} does not exist (not_found)`);
  if (p.type === 'classic') return new MembershipError('not_replicated', `Cannot add members to a classic queue: ${label(vhost, name)} is not replicated (only quorum queues and ha-mode mirrored queues have members)`);
  if (!running.has(node)) return new MembershipError('node_not_running', `node ${node} is not a running member of the cluster (node_not_running): a new member must be running to catch up`);
  return undefined;
}

/** Why node cannot be removed from the queue at all (waiting would not help), or undefined. */
export function removeRefusal(vhost: string, name: string, p: PlacementSpec | undefined, node: string, running: ReadonlySet<string>): MembershipError | undefined {
  if (p === undefined) return new MembershipError('not_found', `${label(vhost, name)} does not exist (not_found)`);
  if (p.type === 'classic') return new MembershipError('not_replicated', `Cannot remove members from a classic queue: ${label(vhost, name)} is not replicated (only quorum queues and ha-mode mirrored queues have members)`);
  if (!p.members.includes(node)) return undefined; // nothing to remove: the change is a no-op
  if (p.members.length === 1) return new MembershipError('last_node', `the last node cannot be removed (last_node): ${node} is the only member of ${label(vhost, name)}; delete the queue instead`);
  if (p.leader === node && running.has(node)) {
    return new MembershipError(
      'leader_running',
      `node ${node} leads ${label(vhost, name)} and is running: a leader is not removed, as it would have to stop confirming before another member takes over (docs/cluster.md). Stop ${node} (its queues fail over to other members), then remove it`,
    );
  }
  return undefined;
}

/** What a change must wait for first, or undefined when it can be written now. */
export function changeBlocker(p: PlacementSpec, node: string, op: Op): 'change_pending' | 'leader_moving' | undefined {
  if (p.membersPending === true) return 'change_pending';
  if (op === 'remove' && p.leader === node) return 'leader_moving';
  return undefined;
}

/** Whether grow adds node to this queue. */
export function growsInto(p: PlacementSpec, node: string, strategy: GrowSelection['strategy']): boolean {
  return p.type !== 'classic' && !p.members.includes(node) && (strategy === 'all' || p.members.length % 2 === 0);
}

function blockedError(vhost: string, name: string, p: PlacementSpec, node: string, why: 'change_pending' | 'leader_moving', waitMs: number): MembershipError {
  if (why === 'change_pending') {
    return new MembershipError(
      'change_pending',
      `${label(vhost, name)}: its leader ${p.leader} has not applied the previous membership change (members ${list(p.members)}) within ${waitMs} ms; one change at a time: try again once it has (is the queue's leader up?)`,
    );
  }
  return new MembershipError('leader_moving', `node ${node} led ${label(vhost, name)} and is down, and no other member took over within ${waitMs} ms (a quorum queue needs a majority of its members up to elect a leader); try again once another member leads it`);
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class MembershipChanges implements QueueMembership {
  private readonly waitMs: number;

  constructor(
    private readonly host: MembershipHost,
    opts: MembershipOptions = {},
  ) {
    this.waitMs = opts.waitMs ?? waitMsDefault;
  }

  async addMember(vhost: string, name: string, node: string): Promise<MemberChange> {
    return this.change(vhost, name, node, 'add', await this.host.running());
  }

  async deleteMember(vhost: string, name: string, node: string): Promise<MemberChange> {
    return this.change(vhost, name, node, 'remove', await this.host.running());
  }

  async grow(node: string, selection: GrowSelection): Promise<MemberChangeRow[]> {
    const running = await this.host.running();
    if (!running.has(node)) throw new MembershipError('node_not_running', `node ${node} is not a running member of the cluster (node_not_running): queues grow onto running nodes only`);
    const targets = (await this.host.placements.list()).filter(
      (q) => growsInto(q.placement, node, selection.strategy) && (selection.vhostPattern?.test(q.vhost) ?? true) && (selection.queuePattern?.test(q.name) ?? true),
    );
    this.host.log.info(`membership: growing ${targets.length} ${selection.strategy === 'even' ? 'even-sized ' : ''}replicated queue(s) onto ${node}`);
    return this.eachQueue(targets, (q) => this.change(q.vhost, q.name, node, 'add', running));
  }

  async shrink(node: string): Promise<MemberChangeRow[]> {
    const running = await this.host.running();
    const targets = (await this.host.placements.list()).filter((q) => q.placement.type !== 'classic' && q.placement.members.includes(node));
    this.host.log.info(`membership: removing ${node} from ${targets.length} replicated queue(s)`);
    return this.eachQueue(targets, (q) => this.change(q.vhost, q.name, node, 'remove', running));
  }

  /** Runs change on every queue, a few at a time; one row per queue, sorted by vhost and name. */
  private async eachQueue(targets: { vhost: string; name: string; placement: Placement }[], change: (q: { vhost: string; name: string }) => Promise<MemberChange>): Promise<MemberChangeRow[]> {
    const rows: MemberChangeRow[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < targets.length; i = next++) {
        const q = targets[i] as (typeof targets)[number];
        try {
          const done = await change(q);
          rows.push({ vhost: q.vhost, name: q.name, size: done.members.length, result: done.applied ? 'ok' : `ok (not yet applied by the queue's leader)` });
        } catch (e) {
          const size = (await this.host.placements.get(q.vhost, q.name).catch(() => undefined))?.members.length ?? q.placement.members.length;
          rows.push({ vhost: q.vhost, name: q.name, size, result: `error: ${describe(e)}` });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(parallelChanges, targets.length) }, worker));
    return rows.sort((a, b) => (a.vhost < b.vhost ? -1 : a.vhost > b.vhost ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /**
   * One change of one queue: read the placement, refuse what can never work, wait (bounded)
   * while the leader applies an earlier change or moves off a stopped node being removed, write
   * by compare-and-set on the version read (again from the top if someone wrote in between),
   * then wait (bounded) for the leader to apply it.
   */
  private async change(vhost: string, name: string, node: string, op: Op, running: ReadonlySet<string>): Promise<MemberChange> {
    const deadline = Date.now() + this.waitMs;
    for (;;) {
      const p = await this.host.placements.get(vhost, name);
      const refusal = op === 'add' ? addRefusal(vhost, name, p, node, running) : removeRefusal(vhost, name, p, node, running);
      if (refusal !== undefined) throw refusal;
      if (p === undefined) throw new MembershipError('not_found', `${label(vhost, name)} does not exist (not_found)`);
      // Idempotent, as rabbitmq-queues is: adding a member or removing a non-member changes nothing.
      if (p.members.includes(node) === (op === 'add')) return { vhost, name, members: p.members, applied: true, unchanged: true };
      const blocker = changeBlocker(p, node, op);
      if (blocker !== undefined) {
        if (Date.now() >= deadline) throw blockedError(vhost, name, p, node, blocker, this.waitMs);
        await this.nextPlacement(vhost, name, deadline);
        continue;
      }
      const count = p.members.length + (op === 'add' ? 1 : -1);
      const minInsync = minInsyncFor(p, count, p.type === 'mirrored' ? this.host.mirroredMinInsync(vhost, name, count) : 1);
      const next = op === 'add' ? withMemberAdded(p, node, minInsync) : withMemberRemoved(p, node, minInsync);
      if (!(await this.host.placements.compareAndSet(vhost, name, p.epoch, next, { expectedVersion: p.version }))) {
        if (Date.now() >= deadline) throw new MembershipError('conflict', `${label(vhost, name)}: its placement kept changing for ${this.waitMs} ms; try again`);
        continue;
      }
      this.host.log.info(`membership: ${label(vhost, name)}: ${op === 'add' ? `added ${node}` : `removed ${node}`}, members now ${list(next.members)} (epoch ${p.epoch}, leader ${p.leader})`);
      const applied = await this.untilApplied(vhost, name, deadline);
      if (!applied) this.host.log.warn(`membership: ${label(vhost, name)}: its leader has not applied the change to ${list(next.members)} within ${this.waitMs} ms; it will when it leads`);
      return { vhost, name, members: next.members, applied };
    }
  }

  /** Waits until the queue's leader applied the last membership change (or the queue is gone); false at the deadline. */
  private async untilApplied(vhost: string, name: string, deadline: number): Promise<boolean> {
    for (;;) {
      const p = await this.host.placements.get(vhost, name);
      if (p === undefined || p.membersPending !== true) return true;
      if (Date.now() >= deadline) return false;
      await this.nextPlacement(vhost, name, deadline);
    }
  }

  /** Resolves when this node sees a new placement of the queue, after recheckMs, or at the deadline, whichever is first. */
  private nextPlacement(vhost: string, name: string, deadline: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        off();
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, Math.min(recheckMs, deadline - Date.now())));
      const off = this.host.onPlacement((v, n) => {
        if (v === vhost && n === name) done();
      });
    });
  }
}
