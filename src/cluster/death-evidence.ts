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
