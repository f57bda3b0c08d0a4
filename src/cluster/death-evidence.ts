/**
 * Fast detection of a crashed node. A kill -9 closes its links at once, but its etcd leases
 * (membership, controller campaign) live on until their TTL, and the controller — perhaps the
 * dead node itself — would wait that long. A node that sees a peer's links close checks
 * whether the peer's port now refuses connections (the process is gone: its host answered
 * for it) and, if so, revokes that peer's leases, so membership and controller election move
 * at once. It checks the incarnation (startedAtMs) first: a restarted peer is never revoked.
 *
 * A peer that is only slow or cut off does not refuse connections (they time out), so it is
 * left to its lease, as before.
 *
 * A closed link alone is no evidence: a follower restarting its stream, a network blip or a
 * peer closing a link it no longer needs all close links of live nodes, and failing over the
 * queues of a live leader deposes it for nothing (and, before the replica poll's fence, could
 * lose its confirmed messages). So the controller hears of a peer only once its port refused
 * and its leases were revoked (PeerDeathCheck), or when its lease ends (membership).
 */
import { connect } from 'node:net';
import type { Namespace } from 'etcd3';
import type { Logger } from '../node/logger.js';
import { controllerElection, memberKey } from './etcd-keys.js';
import { parseMember, type MemberInfo } from './control-plane.js';

/** How long a probe connection may take before the peer counts as unknown (not dead). */
const probeMs = 500;

export type ProbeResult = 'refused' | 'answers' | 'unknown';

export function probePort(hostPort: string): Promise<ProbeResult> {
  const i = hostPort.lastIndexOf(':');
  const host = hostPort.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(hostPort.slice(i + 1));
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (r: ProbeResult): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done('unknown'), probeMs);
    s.once('connect', () => done('answers'));
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code === 'ECONNREFUSED' ? 'refused' : 'unknown'));
  });
}

/**
 * Revokes the leases of `member`'s incarnation if its peer port refuses connections. Returns
 * true if it did.
 */
export async function revokeIfDead(ns: Namespace, member: MemberInfo, log: Logger): Promise<boolean> {
  if ((await probePort(member.peer)) !== 'refused') return false;
  const kv = (await ns.get(memberKey(member.name)).exec()).kvs[0];
  const current = kv === undefined ? undefined : parseMember(kv.value.toString('utf8'));
  const leases = new Set<string>();
  if (kv !== undefined && current?.startedAtMs === member.startedAtMs) leases.add(String(kv.lease));
  // The controller campaign keys carry the node's name as their value.
  const campaign = await ns.getAll().prefix(`election/${controllerElection}/`).exec();
  for (const c of campaign.kvs) if (c.value.toString('utf8') === member.name && current?.startedAtMs === member.startedAtMs) leases.add(String(c.lease));
  leases.delete('0');
  if (leases.size === 0) return false;
  log.warn(`cluster: node ${member.name} is down (its links closed and ${member.peer} refuses connections): revoking its etcd lease(s) so it fails over now`);
  for (const id of leases) await ns.leaseClient.leaseRevoke({ ID: id }).catch(() => {});
  return true;
}

export interface PeerDeathCheckOptions {
  ns: Namespace;
  log: Logger;
  /** The peer's current membership record; undefined once its member key is gone (its lease ended). */
  member: (node: string) => MemberInfo | undefined;
  /** The peer is gone: its port refused and its leases were revoked (e.g. Controller.suspect). */
  onGone: (node: string) => void;
}

/**
 * What a node does when a replication link to a peer closes: probe the peer (one probe at a
 * time per peer) and report it gone only on evidence, never on the closed link itself.
 */
export class PeerDeathCheck {
  private readonly probing = new Map<string, Promise<boolean>>();
  private stopped = false;

  constructor(private readonly o: PeerDeathCheckOptions) {}

  /**
   * A link to node closed. Resolves true when the node was found gone (and reported), false
   * when it answers, is unknown, or is already being checked (that check decides).
   */
  linkClosed(node: string): Promise<boolean> {
    const m = this.o.member(node);
    // No member key: its lease already ended, and membership told the controller.
    if (m === undefined || this.stopped) return Promise.resolve(false);
    const running = this.probing.get(node);
    if (running !== undefined) return running.then(() => false);
    const check = revokeIfDead(this.o.ns, m, this.o.log)
      .then((gone) => {
        if (gone && !this.stopped) this.o.onGone(node);
        return gone;
      })
      .catch((e: unknown) => {
        this.o.log.warn(`cluster: could not check whether ${node} is down: ${e instanceof Error ? e.message : String(e)}`);
        return false;
      })
      .finally(() => this.probing.delete(node));
    this.probing.set(node, check);
    return check;
  }

  stop(): void {
    this.stopped = true;
  }
}
