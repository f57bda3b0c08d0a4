/**
 * The node's connection to etcd, the cluster's control plane (ARCHITECTURE.md §3): membership
 * through a lease-bound key, forgetting nodes, and the lease-validity signal a leader uses to
 * stop confirming the moment it can no longer prove it is still a member.
 *
 * Lease validity is tracked locally and conservatively: each keepalive the client sends is
 * timed, and when etcd answers it the lease is known valid until `sentAtMs + ttl` (etcd restarts
 * the TTL when it receives the keepalive, which is after we sent it). When that moment passes
 * with no newer answer — etcd unreachable, the process stalled, the stream broken — the lease
 * counts as lost at once, well before etcd expires it and the controller fails the node's queues
 * over; etcd3's own 'lost' event (etcd said the lease is gone) counts too. After a loss the plane
 * joins again with a fresh lease, retrying until it can (or until it is closed or forgotten).
 */
import { Etcd3, type IOptions, type Lease, type Namespace } from 'etcd3';
import type { Logger } from '../node/logger.js';
import { alarmKey, clusterPrefix, forgottenKey, forgottenPrefix, memberKey, membersPrefix, nodeOfKey } from './etcd-keys.js';
import { kvText, PrefixMirror, type KeyChange } from './etcd-watch.js';

export interface MemberInfo {
  name: string;
  /** host:port clients (and warrenctl's listings) use for AMQP. */
  amqp: string;
  /** host:port of the inter-node forwarding link. */
  peer: string;
  /** host:port of the replication link. */
  repl: string;
  /** When this incarnation of the node started: a new value under the same name is a restart. */
  startedAtMs: number;
}

export type MemberEvent =
  | { kind: 'add'; member: MemberInfo }
  /** The member's key is gone (lease expired or revoked, forgotten) or it restarted (a remove, then an add). */
  | { kind: 'remove'; name: string; member: MemberInfo | undefined };

export interface ControlPlaneOptions {
  /** etcd client endpoints, e.g. ['http://127.0.0.1:2379']. */
  hosts: string[];
  clusterName: string;
  /** Membership lease TTL; etcd counts whole seconds, so it is rounded up (at least 1 s). */
  leaseMs: number;
  log?: Logger;
  /** A unary etcd call that has not answered in this time fails instead of hanging (default 5000). */
  callTimeoutMs?: number;
}

export interface Closer {
  close(): Promise<void>;
}

export class ForgottenError extends Error {
  constructor(readonly node: string) {
    super(`node '${node}' was removed from the cluster (forget_cluster_node); join_cluster clears that`);
  }
}

/** A unary etcd call gets this long by default: longer than an etcd leader election (~1 s). */
const callTimeoutMsDefault = 5_000;
/**
 * Watch streams re-open after this first delay, doubling up to the maximum. etcd3's default
 * grows to 30 s, so after an etcd restart a node could miss membership and placement changes
 * for that long; a second is plenty of spacing for a handful of nodes.
 */
const watchRetryMsFirst = 50;
const watchRetryMsMax = 1_000;

type WatchBackoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

/** Capped exponential backoff in the shape etcd3's watch manager asks for. */
export function cappedBackoff(durationMs: number, maxMs: number): WatchBackoff {
  return {
    duration: durationMs,
    next: () => cappedBackoff(Math.min(maxMs, durationMs * 2), maxMs),
  };
}

/** After a failed (re)join, try again after this long. */
const rejoinRetryMs = 500;

export function leaseTtlSeconds(leaseMs: number): number {
  if (!Number.isFinite(leaseMs) || leaseMs <= 0) throw new RangeError(`leaseMs must be positive, got ${leaseMs}`);
  return Math.max(1, Math.ceil(leaseMs / 1000));
}

export function parseMember(text: string): MemberInfo | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o['name'] !== 'string' || typeof o['amqp'] !== 'string' || typeof o['peer'] !== 'string' || typeof o['repl'] !== 'string' || typeof o['startedAtMs'] !== 'number') {
    return undefined;
  }
  return { name: o['name'], amqp: o['amqp'], peer: o['peer'], repl: o['repl'], startedAtMs: o['startedAtMs'] };
}

/** One lease and what is known about its validity. */
interface LeaseState {
  lease: Lease;
  /** The lease is certainly valid in etcd until this time (local clock). */
  validUntilMs: number;
  /** Send times of keepalives not answered yet, oldest first (answers come back in order). */
  unansweredSentAtMs: number[];
  timer: NodeJS.Timeout | undefined;
  lost: boolean;
}

export class ControlPlane {
  readonly etcd: Etcd3;
  /** The cluster's key namespace, /warren/<clusterName>/ — pass it to DefinitionsSync, PlacementStore. */
  readonly ns: Namespace;
  readonly leaseTtlS: number;
  private readonly log: Logger | undefined;
  private self: MemberInfo | undefined;
  private current: LeaseState | undefined;
  private closed = false;
  private forgotten = false;
  private rejoinTimer: NodeJS.Timeout | undefined;
  private forgottenWatch: PrefixMirror | undefined;
  private readonly lostHandlers: ((reason: string) => void)[] = [];
  private readonly grantedHandlers: (() => void)[] = [];
  private readonly forgottenHandlers: (() => void)[] = [];

  constructor(opts: ControlPlaneOptions) {
    if (opts.hosts.length === 0) throw new RangeError('the control plane needs at least one etcd endpoint');
    this.leaseTtlS = leaseTtlSeconds(opts.leaseMs);
    this.log = opts.log;
    const callTimeoutMs = opts.callTimeoutMs ?? callTimeoutMsDefault;
    this.etcd = new Etcd3({
      hosts: opts.hosts,
      dialTimeout: callTimeoutMs,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
      faultHandling: { watchBackoff: cappedBackoff(watchRetryMsFirst, watchRetryMsMax) },
    });
    this.ns = this.etcd.namespace(clusterPrefix(opts.clusterName));
  }

  /** Fails unless etcd answers within the call timeout (for a clear error at node start). */
  async ping(): Promise<void> {
    await this.ns.getAll().prefix(membersPrefix).count();
  }

  get nodeName(): string | undefined {
    return this.self?.name;
  }

  /** True while the membership lease is certainly valid; a leader confirms nothing while it is false. */
  get leaseValid(): boolean {
    const s = this.current;
    return s !== undefined && !s.lost && Date.now() < s.validUntilMs;
  }

  /** Called at once (synchronously from the timer or etcd event) when the lease can no longer be proven valid. */
  onLeaseLost(cb: (reason: string) => void): void {
    this.lostHandlers.push(cb);
  }

  /** Called each time a lease is granted and the member key written (first join and every rejoin). */
  onLeaseGranted(cb: () => void): void {
    this.grantedHandlers.push(cb);
  }

  /** Called once if this node is forgotten (forget_cluster_node): the node must stop. */
  onForgotten(cb: () => void): void {
    this.forgottenHandlers.push(cb);
  }

  /**
   * Grants a lease and writes this node's member key bound to it; keeps the lease alive until
   * close(). Throws ForgottenError if the node was forgotten (unforget() clears that).
   */
  async join(info: MemberInfo): Promise<void> {
    if (this.self !== undefined) throw new Error(`already joined as '${this.self.name}'`);
    if (await this.ns.get(forgottenKey(info.name)).exists()) throw new ForgottenError(info.name);
    this.self = info;
    try {
      this.forgottenWatch = await PrefixMirror.open(this.ns, forgottenPrefix, (changes) => this.onForgottenChanges(changes), { replay: false, ...this.logOpt() });
      await this.grantAndPut();
    } catch (err: unknown) {
      // Not joined: leave the plane as it was, so join can be tried again.
      this.self = undefined;
      await this.forgottenWatch?.close();
      this.forgottenWatch = undefined;
      throw err;
    }
  }

  async members(): Promise<MemberInfo[]> {
    const res = await this.ns.getAll().prefix(membersPrefix).exec();
    const out: MemberInfo[] = [];
    for (const kv of res.kvs) {
      const m = parseMember(kvText(kv));
      if (m === undefined) this.log?.warn(`ignoring a malformed member record under '${kv.key.toString('utf8')}'`);
      else out.push(m);
    }
    return out;
  }

  /**
   * Calls cb for every membership change, in etcd order; with replay, first an 'add' for each
   * current member. A member whose record reappears with a new startedAtMs restarted: that is a
   * 'remove' then an 'add'.
   */
  async watchMembers(cb: (ev: MemberEvent) => void | Promise<void>, opts: { replay: boolean } = { replay: true }): Promise<Closer> {
    const mirror = await PrefixMirror.open(
      this.ns,
      membersPrefix,
      async (changes) => {
        for (const ev of memberEvents(changes)) await cb(ev);
      },
      { replay: opts.replay, ...this.logOpt() },
    );
    return mirror;
  }

  async forgottenNodes(): Promise<string[]> {
    const keys = await this.ns.getAll().prefix(forgottenPrefix).keys();
    return keys.map((k) => nodeOfKey(forgottenPrefix, k)).filter((n): n is string => n !== undefined);
  }

  /** forget_cluster_node: removes the node's member and alarm keys and marks it forgotten, in one transaction. */
  async forget(node: string): Promise<void> {
    const del = await this.ns.delete().key(memberKey(node)).op();
    // Its alarms no longer count once it is not a member; the key goes with it.
    const delAlarms = await this.ns.delete().key(alarmKey(node)).op();
    const put = await this.ns.put(forgottenKey(node)).value(String(Date.now())).op();
    await this.ns.kv.txn({ compare: [], success: [del, delAlarms, put], failure: [] });
  }

  /** join_cluster for a node that was forgotten: lets it join again. */
  async unforget(node: string): Promise<void> {
    await this.ns.delete().key(forgottenKey(node)).exec();
  }

  /** Revokes the lease (peers see this node leave at once) and closes the etcd client. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.rejoinTimer);
    await this.forgottenWatch?.close();
    const s = this.current;
    this.current = undefined;
    if (s !== undefined) {
      clearTimeout(s.timer);
      s.lost = true;
      await s.lease.revoke().catch((err: unknown) => this.log?.warn(`could not revoke the membership lease: ${errText(err)}`));
    }
    this.etcd.close();
  }

  private logOpt(): { log?: Logger } {
    return this.log === undefined ? {} : { log: this.log };
  }

  private async grantAndPut(): Promise<void> {
    const self = this.self;
    if (self === undefined) throw new Error('grantAndPut before join');
    const ttlMs = this.leaseTtlS * 1000;
    const lease = this.ns.lease(this.leaseTtlS);
    const state: LeaseState = { lease, validUntilMs: 0, unansweredSentAtMs: [], timer: undefined, lost: false };
    lease.on('lost', (err) => this.leaseLost(state, `etcd reports the lease lost: ${err.message}`));
    lease.on('keepaliveEstablished', () => {
      state.unansweredSentAtMs = [];
    });
    lease.on('keepaliveFired', () => {
      state.unansweredSentAtMs.push(Date.now());
    });
    lease.on('keepaliveSucceeded', () => {
      const sentAtMs = state.unansweredSentAtMs.shift();
      if (sentAtMs !== undefined) this.extend(state, sentAtMs + ttlMs);
    });
    const grantSentAtMs = Date.now();
    try {
      await lease.grant();
      state.validUntilMs = grantSentAtMs + ttlMs;
      await lease.put(memberKey(self.name)).value(JSON.stringify(self)).exec();
    } catch (err: unknown) {
      state.lost = true;
      lease.release();
      void lease.revoke().catch(() => undefined);
      throw err;
    }
    if (this.closed) {
      state.lost = true;
      clearTimeout(state.timer);
      lease.release();
      return;
    }
    if (state.lost || Date.now() >= state.validUntilMs) {
      state.lost = true;
      clearTimeout(state.timer);
      lease.release();
      throw new Error('the new lease could not be kept alive while the member key was written');
    }
    const previous = this.current;
    this.current = state;
    this.extend(state, state.validUntilMs);
    if (previous !== undefined) {
      // The member key now belongs to the new lease; revoking the old one removes nothing of ours.
      void previous.lease.revoke().catch(() => undefined);
    }
    for (const cb of this.grantedHandlers) cb();
  }

  private extend(state: LeaseState, validUntilMs: number): void {
    if (state.lost) return;
    state.validUntilMs = Math.max(state.validUntilMs, validUntilMs);
    clearTimeout(state.timer);
    state.timer = setTimeout(() => this.leaseLost(state, `no keepalive answered within the ${this.leaseTtlS} s lease TTL`), Math.max(0, state.validUntilMs - Date.now()));
  }

  private leaseLost(state: LeaseState, reason: string): void {
    if (state.lost || this.closed) return;
    state.lost = true;
    clearTimeout(state.timer);
    state.lease.release();
    // A lease that never became the member's (its grant or first put failed) is nobody's loss.
    if (this.current !== state) return;
    this.log?.warn(`membership lease lost (${reason}); this node stops leading and joins again`);
    for (const cb of this.lostHandlers) cb(reason);
    this.scheduleRejoin(0);
  }

  private scheduleRejoin(delayMs: number): void {
    if (this.closed || this.forgotten) return;
    clearTimeout(this.rejoinTimer);
    this.rejoinTimer = setTimeout(() => {
      this.grantAndPut().then(
        () => this.log?.info('rejoined the cluster with a new membership lease'),
        (err: unknown) => {
          this.log?.warn(`could not rejoin the cluster: ${errText(err)}; retrying`);
          this.scheduleRejoin(rejoinRetryMs);
        },
      );
    }, delayMs);
  }

  private onForgottenChanges(changes: KeyChange[]): void {
    const self = this.self;
    if (self === undefined || this.forgotten) return;
    const mine = forgottenKey(self.name);
    if (!changes.some((c) => c.key === mine && c.value !== undefined)) return;
    this.forgotten = true;
    clearTimeout(this.rejoinTimer);
    this.log?.warn(`this node (${self.name}) was forgotten by the cluster; stopping`);
    const s = this.current;
    if (s !== undefined) {
      s.lost = true;
      clearTimeout(s.timer);
      s.lease.release();
      void s.lease.revoke().catch(() => undefined);
    }
    for (const cb of this.forgottenHandlers) cb();
  }
}

/** Membership events from a batch of changes under members/ (pure; exported for tests). */
export function memberEvents(changes: KeyChange[]): MemberEvent[] {
  const out: MemberEvent[] = [];
  for (const c of changes) {
    const name = nodeOfKey(membersPrefix, c.key);
    if (name === undefined) continue;
    const before = c.previous === undefined ? undefined : parseMember(kvText(c.previous));
    if (c.value === undefined) {
      if (c.previous !== undefined) out.push({ kind: 'remove', name, member: before });
      continue;
    }
    const after = parseMember(kvText(c.value));
    if (after === undefined) continue;
    if (c.previous === undefined) {
      out.push({ kind: 'add', member: after });
    } else if (before === undefined || before.startedAtMs !== after.startedAtMs) {
      out.push({ kind: 'remove', name, member: before }, { kind: 'add', member: after });
    }
  }
  return out;
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
