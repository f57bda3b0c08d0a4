/**
 * A fingerprint of the cluster secret in etcd, so a node started with another secret stops at
 * start with a clear message instead of joining the membership and being placed as a replica
 * that can never connect. The fingerprint is an HMAC of a fixed text under the secret: it
 * proves knowledge of the secret without revealing it to anyone who can read etcd.
 *
 *   P secret-check    hex HMAC-SHA256(secret, "warren cluster secret check v1")
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Namespace } from 'etcd3';
import { StartError } from '../node/start-error.js';

const secretCheckKey = 'secret-check';
const checkedText = 'warren cluster secret check v1';

export class ClusterSecretMismatchError extends StartError {}

function fingerprint(secret: string): string {
  return createHmac('sha256', secret).update(checkedText).digest('hex');
}

/** Writes the fingerprint if the cluster has none yet; throws if it has another one. */
export async function checkClusterSecret(ns: Namespace, secret: string): Promise<void> {
  const mine = fingerprint(secret);
  const res = await ns.if(secretCheckKey, 'Create', '==', 0).then(ns.put(secretCheckKey).value(mine)).else(ns.get(secretCheckKey)).commit();
  if (res.succeeded) return;
  const theirs = res.responses[0]?.response_range.kvs[0]?.value.toString('utf8') ?? '';
  if (theirs.length !== mine.length || !timingSafeEqual(Buffer.from(theirs), Buffer.from(mine))) {
    throw new ClusterSecretMismatchError('this node\'s cluster secret is not the one the cluster uses (etcd holds another secret\'s fingerprint): give every node the same --cluster-secret / WARREN_CLUSTER_SECRET / DATA_DIR/.cluster-secret');
  }
}
