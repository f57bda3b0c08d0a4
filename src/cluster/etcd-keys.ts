/**
 * The etcd key layout of a warren cluster, in one place. Every key lives under the cluster's
 * prefix P = `/warren/<clusterName>/`; the modules here open an etcd3 namespace on P, so the
 * builders below return keys relative to it.
 *
 *   P members/<node>                        JSON MemberInfo, bound to the node's lease
 *   P forgotten/<node>                      written by forget_cluster_node (value: ms timestamp)
 *   P election/controller/<leaseId>         etcd3 Election('controller') candidates (lowest create_revision leads)
 *   P defs/users/<user>                     one JSON object per durable definition, in RabbitMQ's
 *   P defs/vhosts/<vhost>                     definitions format; objects that live in a vhost are
 *   P defs/permissions/<vhost>/<user>         keyed by vhost then name; bindings by a stable hash of
 *   P defs/policies/<vhost>/<name>            (source, destination_type, destination, routing_key,
 *   P defs/exchanges/<vhost>/<name>           arguments)
 *   P defs/queues/<vhost>/<name>
 *   P defs/bindings/<vhost>/<sha256-hex>
 *   P queues/<vhost>/<name>                 JSON placement; the queue id is the key's create_revision
 *   P poll/<queueId>/<nonce>[/<node>]       a controller's question to a queue's replicas, and their answers (replica-poll.ts)
 *   P secret-check                          fingerprint of the cluster secret (secret-check.ts)
 *   P alarms/<node>                         JSON list of the node's resource alarms (alarm-sync.ts)
 *
 * Every name and vhost segment is encodeURIComponent-encoded, so a '/' in a name cannot make
 * one key look like another.
 */

export function clusterPrefix(clusterName: string): string {
  if (clusterName === '' || clusterName.includes('/')) throw new RangeError(`cluster name must be non-empty and have no '/', got '${clusterName}'`);
  return `/warren/${clusterName}/`;
}

const enc = encodeURIComponent;

export const membersPrefix = 'members/';
export const forgottenPrefix = 'forgotten/';
export const alarmsPrefix = 'alarms/';
export const defsPrefix = 'defs/';
export const placementPrefix = 'queues/';
/** etcd3's Election keeps its candidates under `election/<name>/` of the namespace it is given. */
export const controllerElection = 'controller';

export function memberKey(node: string): string {
  return `${membersPrefix}${enc(node)}`;
}

export function forgottenKey(node: string): string {
  return `${forgottenPrefix}${enc(node)}`;
}

/** The node name a members/ or forgotten/ key holds, or undefined for a key outside that prefix. */
export function alarmKey(node: string): string {
  return `${alarmsPrefix}${enc(node)}`;
}

export function nodeOfKey(prefix: typeof membersPrefix | typeof forgottenPrefix | typeof alarmsPrefix, key: string): string | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const rest = key.slice(prefix.length);
  if (rest === '' || rest.includes('/')) return undefined;
  return decodeURIComponent(rest);
}

export function placementKey(vhost: string, name: string): string {
  return `${placementPrefix}${enc(vhost)}/${enc(name)}`;
}

export function parsePlacementKey(key: string): { vhost: string; name: string } | undefined {
  if (!key.startsWith(placementPrefix)) return undefined;
  const parts = key.slice(placementPrefix.length).split('/');
  if (parts.length !== 2) return undefined;
  const [vhost, name] = parts as [string, string];
  return { vhost: decodeURIComponent(vhost), name: decodeURIComponent(name) };
}

/** The definition kinds stored one object per key. */
export const defKinds = ['vhosts', 'users', 'permissions', 'policies', 'exchanges', 'queues', 'bindings'] as const;
export type DefKind = (typeof defKinds)[number];

/**
 * Key of one definition: `defs/<kind>/<seg>/<seg>…`. Users and vhosts are not inside a vhost and
 * have a single segment; everything else has (vhost, name-or-hash).
 */
export function defKey(kind: DefKind, ...segments: string[]): string {
  if (segments.length === 0) throw new RangeError(`a ${kind} definition key needs at least one segment`);
  return `${defsPrefix}${kind}/${segments.map(enc).join('/')}`;
}

/** The kind a defs/ key belongs to, or undefined for any other key. */
export function defKindOfKey(key: string): DefKind | undefined {
  if (!key.startsWith(defsPrefix)) return undefined;
  const kind = key.slice(defsPrefix.length).split('/', 1)[0];
  return defKinds.find((k) => k === kind);
}
