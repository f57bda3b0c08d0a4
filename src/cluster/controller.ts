/**
 * The controller: one node at a time, elected through etcd (etcd3's Election under the cluster
 * prefix), fails queues over when a node goes — its member key vanished (lease expired, clean
 * stop, forgotten, or a restart under a new incarnation) or another part of the node has evidence
 * that it is gone (`suspect`: after a kill -9 its links closed and its port refuses connections,
 * death-evidence.ts, long before its lease ends). A closed link alone is never enough.
 *
 * For each queue the decision is a pure function of its placement and the set of dead nodes
 * (planFailover, chooseLeader, failoverPlacement below). Electing a new leader needs each
 * candidate's log position, which only the replication layer can ask for: that is the injected
 * pickNewLeader hook. The result is written with a compare-and-set on the version the decision
 * was made from, so a decision made from a stale placement is refused, not applied — two
 * controllers (an old one that has not yet noticed it lost the election, and the new one) can
 * never both move a queue to the same epoch.
 */
import type { Campaign, Election } from 'etcd3';
import type { Logger } from '../node/logger.js';
import type { Closer, ControlPlane } from './control-plane.js';
import { controllerElection } from './etcd-keys.js';
import type { PlacedQueue, PlacementSpec, PlacementStore } from './placement.js';
import { pollDecisionMaxMs } from './replica-poll.js';

/** Where a replica's log ends: the epoch of its last record and the offset after it. */
export interface ReplicaPosition {
  node: string;
  epoch: number;
  offset: number;
}

export type FailoverPlan =
  | { kind: 'healthy' }
  /** The leader is dead: one of the candidates must be chosen (by log position) and the epoch bumped. */
  | { kind: 'elect'; candidates: string[] }
  /** The leader lives, some in-sync followers do not: drop them from the ISR (same epoch). */
  | { kind: 'shrinkIsr'; next: PlacementSpec }
  /** The leader is dead and no replica may safely take over; the queue waits for a node to return. */
  | { kind: 'stuck'; reason: string };

export function majority(count: number): number {
  return Math.floor(count / 2) + 1;
}

/**
 * A copy to change. A pending membership change stays pending through an ISR change or a
 * failover: the leader clears it once it applies the members (a new leader does at lead).
 */
function spec(p: PlacementSpec): PlacementSpec {
  return {
    type: p.type,
    leader: p.leader,
    members: [...p.members],
    isr: [...p.isr],
    epoch: p.epoch,
    minInsync: p.minInsync,
    ...(p.queue === undefined ? {} : { queue: p.queue }),
    ...(p.membersPending === true ? { membersPending: true } : {}),
  };
}

/**
 * What must happen to one queue given the dead nodes. A quorum queue's new leader may be any
 * live member, but only while a majority of members lives (only then does some live replica
 * hold every committed record). A mirrored queue's new leader must come from the ISR (every
 * ISR member holds every committed record). A classic queue has one member and no successor.
 */
export function planFailover(p: PlacementSpec, dead: ReadonlySet<string>): FailoverPlan {
  if (dead.has(p.leader)) {
    const pool = p.type === 'quorum' ? p.members : p.isr;
    const candidates = pool.filter((n) => n !== p.leader && !dead.has(n));
    if (candidates.length === 0) {
      return { kind: 'stuck', reason: p.type === 'quorum' ? 'no live member' : p.type === 'classic' ? `its node ${p.leader} is down` : 'no live in-sync replica' };
    }
    if (p.type === 'quorum' && candidates.length < majority(p.members.length)) {
      return { kind: 'stuck', reason: `only ${candidates.length} of ${p.members.length} members live, a majority is ${majority(p.members.length)}` };
    }
    return { kind: 'elect', candidates };
  }
  const isr = p.isr.filter((n) => !dead.has(n));
  if (isr.length !== p.isr.length) return { kind: 'shrinkIsr', next: { ...spec(p), isr } };
  return { kind: 'healthy' };
}

/**
 * The candidate to lead next: the highest (epoch, offset) among the positions reported by
 * candidates (reports from anyone else are ignored); ties go to the earlier candidate. For a
 * quorum queue the reports must come from a majority of its members, or there is no answer
 * (a replica holding a committed record might be among the silent ones).
 */
export function chooseLeader(p: PlacementSpec, candidates: readonly string[], reports: readonly ReplicaPosition[]): ReplicaPosition | undefined {
  const valid = reports.filter((r, i) => candidates.includes(r.node) && reports.findIndex((o) => o.node === r.node) === i);
  if (p.type === 'quorum' && valid.length < majority(p.members.length)) return undefined;
  let best: ReplicaPosition | undefined;
  for (const c of candidates) {
    const r = valid.find((v) => v.node === c);
    if (r === undefined) continue;
    if (best === undefined || r.epoch > best.epoch || (r.epoch === best.epoch && r.offset > best.offset)) best = r;
  }
  return best;
}

/** The placement after electing choice: next epoch, new leader, dead nodes out of the ISR. Undefined if choice is not a candidate. */
export function failoverPlacement(p: PlacementSpec, dead: ReadonlySet<string>, candidates: readonly string[], choice: ReplicaPosition): PlacementSpec | undefined {
  if (!candidates.includes(choice.node) || dead.has(choice.node)) return undefined;
  const isr = [choice.node, ...p.isr.filter((n) => n !== choice.node && !dead.has(n))];
  return { ...spec(p), leader: choice.node, epoch: p.epoch + 1, isr };
}

export interface ControllerOptions {
  plane: ControlPlane;
  placements: PlacementStore;
  /** This node's name: the value it campaigns with. */
  nodeName: string;
  /**
   * Asks the candidates where their logs end (a replica poll, replica-poll.ts, at the placement's
   * epoch: each candidate that answers is fenced against that epoch) and picks the new leader,
   * typically with chooseLeader; undefined when it cannot decide yet (it is asked again).
   */
  pickNewLeader: (queue: PlacedQueue, candidates: string[]) => Promise<ReplicaPosition | undefined>;
  log?: Logger;
  /** Called after the controller moved a queue to a new leader (for logs and metrics). */
  onFailover?: (queue: PlacedQueue, next: PlacementSpec) => void;
  /** A queue that could not be failed over is tried again after this long (default 500). */
  retryMs?: number;
}

/** Half a second between retries: short against a 3 s lease, long enough not to spin on etcd. */
const retryMsDefault = 500;

function queueKey(vhost: string, name: string): string {
  return `${vhost.length}:${vhost}/${name}`;
}

export class Controller {
  /** Queues reported as without a leader, with the reason said (so it is said once). */
  private readonly stuckSaid = new Map<string, string>();
  private readonly election: Election;
  private campaign: Campaign | undefined;
  private elected = false;
  private stopped = false;
  private members: Closer | undefined;
  private placementWatch: Closer | undefined;
  private readonly live = new Set<string>();
  private readonly queues = new Map<string, PlacedQueue>();
  /** Nodes that went away (or were suspected) since the last pass: dead for the next pass even if back. */
  private departed = new Set<string>();
  private running: Promise<void> | undefined;
  private again = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private recampaignTimer: NodeJS.Timeout | undefined;
  private readonly retryMs: number;
  /** Bumped on every step-down, so a pass from an earlier term does not act. */
  private term = 0;

  constructor(private readonly opts: ControllerOptions) {
    this.election = opts.plane.ns.election(controllerElection, opts.plane.leaseTtlS);
    this.retryMs = opts.retryMs ?? retryMsDefault;
    opts.plane.onLeaseLost(() => {
      // Without a valid membership this node must not act for the cluster: let another lead.
      if (this.campaign !== undefined) this.restartCampaign('membership lease lost');
    });
  }

  get isController(): boolean {
    return this.elected;
  }

  /** Starts campaigning; the node acts as controller whenever it wins. */
  start(): void {
    if (this.campaign !== undefined || this.stopped) return;
    const c = this.election.campaign(this.opts.nodeName);
    this.campaign = c;
    c.on('elected', () => {
      if (this.campaign !== c) return;
      void this.becomeController();
    });
    c.on('error', (err) => {
      if (this.campaign !== c) return;
      this.restartCampaign(`campaign failed: ${err.message}`);
    });
  }

  /**
   * The node is gone (its port refused connections, death-evidence.ts): treat it as dead for one
   * failover pass (its queues move now, not when membership reports it).
   */
  suspect(node: string): void {
    if (!this.elected) return;
    this.departed.add(node);
    this.schedule();
  }

  /** The controller's current leader (its node name), as etcd sees it. */
  leader(): Promise<string | undefined> {
    return this.election.leader();
  }

  /** Resolves when no failover pass is running or due. */
  async idle(): Promise<void> {
    while (this.running !== undefined) await this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.recampaignTimer);
    await this.stepDown();
    const c = this.campaign;
    this.campaign = undefined;
    if (c !== undefined) await c.resign().catch(() => undefined);
    await this.running;
  }

  private restartCampaign(reason: string): void {
    const c = this.campaign;
    this.campaign = undefined;
    this.opts.log?.warn(`controller campaign of ${this.opts.nodeName} restarts: ${reason}`);
    void this.stepDown();
    if (c !== undefined) void c.resign().catch(() => undefined);
    if (this.stopped) return;
    clearTimeout(this.recampaignTimer);
    this.recampaignTimer = setTimeout(() => this.start(), this.retryMs);
  }

  private async becomeController(): Promise<void> {
    const term = ++this.term;
    this.elected = true;
    this.opts.log?.info(`${this.opts.nodeName} is the cluster controller`);
    try {
      const members = await this.opts.plane.watchMembers(
        (ev) => {
          if (ev.kind === 'add') {
            this.live.add(ev.member.name);
          } else {
            this.live.delete(ev.name);
            this.departed.add(ev.name);
          }
          this.schedule();
        },
        { replay: true },
      );
      const placements = await this.opts.placements.watch(
        (vhost, name, placement) => {
          const key = queueKey(vhost, name);
          if (placement === undefined) this.queues.delete(key);
          else this.queues.set(key, { vhost, name, placement });
          this.schedule();
        },
        { replay: true },
      );
      if (term !== this.term) {
        await members.close();
        await placements.close();
        return;
      }
      this.members = members;
      this.placementWatch = placements;
      this.schedule();
    } catch (err: unknown) {
      if (term === this.term) this.restartCampaign(`could not start following the cluster: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private async stepDown(): Promise<void> {
    this.term++;
    if (this.elected) this.opts.log?.info(`${this.opts.nodeName} is no longer the cluster controller`);
    this.elected = false;
    clearTimeout(this.retryTimer);
    const closers = [this.members, this.placementWatch];
    this.members = undefined;
    this.placementWatch = undefined;
    this.live.clear();
    this.queues.clear();
    this.departed.clear();
    for (const c of closers) await c?.close().catch(() => undefined);
  }

  /** Runs a failover pass now, or right after the one running. */
  private schedule(): void {
    if (!this.elected || this.members === undefined || this.placementWatch === undefined) return;
    if (this.running !== undefined) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.pass(this.term);
      } while (this.again && this.elected);
    })().finally(() => {
      this.running = undefined;
    });
  }

  private async pass(term: number): Promise<void> {
    const departed = this.departed;
    this.departed = new Set();
    const retry = new Set<string>();
    let failed = false;
    for (const q of [...this.queues.values()]) {
      if (term !== this.term) return;
      const p = q.placement;
      const dead = new Set(p.members.filter((n) => !this.live.has(n) || departed.has(n)));
      if (dead.size === 0) continue;
      const ok = await this.act(term, q, dead).catch((err: unknown) => {
        this.opts.log?.warn(`failover of queue '${q.name}' in vhost '${q.vhost}' failed: ${err instanceof Error ? err.message : String(err)}`);
        return false;
      });
      if (!ok) {
        failed = true;
        for (const n of dead) if (departed.has(n)) retry.add(n);
      }
    }
    if (failed && term === this.term) {
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => {
        for (const n of retry) this.departed.add(n);
        this.schedule();
      }, this.retryMs);
    }
  }

  /**
   * Keeps what was just written until the watch reports it (with its real version), so a pass
   * in between does not decide again from the old placement. The old version is kept: a write
   * from this copy would be refused, never applied.
   */
  private remember(q: PlacedQueue, next: PlacementSpec): void {
    const key = queueKey(q.vhost, q.name);
    const known = this.queues.get(key);
    if (known === undefined || known.placement.version !== q.placement.version) return;
    this.queues.set(key, { vhost: q.vhost, name: q.name, placement: { ...next, id: q.placement.id, version: q.placement.version } });
  }

  /** One queue: true when it needs nothing more (done, healthy, or moved on under us). */
  private async act(term: number, q: PlacedQueue, dead: ReadonlySet<string>): Promise<boolean> {
    const p = q.placement;
    const plan = planFailover(p, dead);
    switch (plan.kind) {
      case 'healthy':
        this.stuckSaid.delete(queueKey(q.vhost, q.name));
        return true;
      case 'stuck': {
        // Only a node coming back can change this, and the member watch brings a new pass
        // then: no retry timer, and one log line per queue and reason.
        const key = queueKey(q.vhost, q.name);
        if (this.stuckSaid.get(key) !== plan.reason) this.opts.log?.warn(`queue '${q.name}' in vhost '${q.vhost}' has no leader (${plan.reason}); waiting for a node to return`);
        this.stuckSaid.set(key, plan.reason);
        return true;
      }
      case 'shrinkIsr': {
        if (term !== this.term) return true;
        const ok = await this.opts.placements.compareAndSet(q.vhost, q.name, p.epoch, plan.next, { expectedVersion: p.version });
        if (ok) this.remember(q, plan.next);
        if (ok) this.opts.log?.info(`queue '${q.name}' in vhost '${q.vhost}': in-sync set now [${plan.next.isr.join(', ')}] (epoch ${p.epoch})`);
        // A refused write means the placement moved on: the watch brings the new one and another pass.
        return true;
      }
      case 'elect': {
        const askedAtMs = Date.now();
        const choice = await this.opts.pickNewLeader(q, plan.candidates);
        if (term !== this.term) return true;
        if (choice === undefined) {
          this.opts.log?.warn(`queue '${q.name}' in vhost '${q.vhost}': no candidate among [${plan.candidates.join(', ')}] could be chosen yet`);
          return false;
        }
        const tookMs = Date.now() - askedAtMs;
        if (tookMs > pollDecisionMaxMs) {
          // The candidates' fences may have lifted: the old leader may have committed past their answers.
          this.opts.log?.warn(`queue '${q.name}' in vhost '${q.vhost}': the replica poll took ${tookMs} ms > ${pollDecisionMaxMs} ms; asking again`);
          return false;
        }
        const next = failoverPlacement(p, dead, plan.candidates, choice);
        if (next === undefined) {
          this.opts.log?.error(`queue '${q.name}' in vhost '${q.vhost}': pickNewLeader chose '${choice.node}', not one of [${plan.candidates.join(', ')}]`);
          return false;
        }
        const ok = await this.opts.placements.compareAndSet(q.vhost, q.name, p.epoch, next, { expectedVersion: p.version });
        if (ok) {
          this.remember(q, next);
          this.opts.log?.info(`queue '${q.name}' in vhost '${q.vhost}': leader ${p.leader} → ${next.leader}, epoch ${next.epoch} (its log ends at epoch ${choice.epoch}, offset ${choice.offset})`);
          this.opts.onFailover?.(q, next);
        }
        return true;
      }
    }
  }
}
