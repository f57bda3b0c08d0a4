/**
 * Applies the cluster's definitions document (from etcd) to this node's broker: what is new
 * is imported as an import would, and durable objects the document no longer has are removed
 * here too, so a delete on any node reaches every node. Queues are not part of it: each
 * queue's placement key carries its declaration (cluster-member.ts).
 */
import type { Broker } from '../front/broker.js';
import { DefinitionsError, exportDefinitions, importDefinitions, type Definitions } from '../front/definitions.js';
import { tableFromJs } from '../amqp/field-table.js';
import { definitionKeys } from '../cluster/definitions-sync.js';
import type { Logger } from './logger.js';

export function withoutQueues(d: Definitions): Definitions {
  const { queues: _queues, warren: _warren, ...rest } = d;
  return { ...rest, queues: [] };
}

function keyOf(part: Definitions): string | undefined {
  return [...definitionKeys(part).keys()][0];
}

export function applyClusterDefinitions(broker: Broker, doc: Definitions, log: Logger): void {
  const wanted = withoutQueues(doc);
  try {
    importDefinitions(broker, wanted);
  } catch (e) {
    if (!(e instanceof DefinitionsError)) throw e;
    log.error(`cluster definitions could not be applied: ${e.message}`);
    return;
  }
  const keep = definitionKeys(wanted);
  const here = exportDefinitions(broker, false);
  const gone = (part: Definitions): boolean => {
    const k = keyOf(part);
    return k !== undefined && !keep.has(k);
  };
  for (const b of here.bindings ?? []) {
    if (!gone({ bindings: [b] })) continue;
    broker.vhosts.get(b.vhost)?.graph.unbind({ source: b.source, destination: b.destination, destinationKind: b.destination_type, routingKey: b.routing_key, arguments: tableFromJs(b.arguments) });
  }
  for (const e of here.exchanges ?? []) {
    const v = broker.vhosts.get(e.vhost);
    if (v !== undefined && gone({ exchanges: [e] })) broker.deleteExchange(v, e.name);
  }
  for (const p of here.policies ?? []) {
    if (gone({ policies: [p] })) broker.policies.clear(p.vhost, p.name);
  }
  if ((here.policies ?? []).some((p) => gone({ policies: [p] }))) broker.applyPolicies();
  for (const p of here.permissions ?? []) {
    if (gone({ permissions: [p] })) broker.users.users.get(p.user)?.permissions.delete(p.vhost);
  }
  for (const u of here.users ?? []) {
    if (!gone({ users: [u] })) continue;
    broker.users.users.delete(u.name);
    broker.closeConnections((c) => c.user?.name === u.name, `user '${u.name}' is deleted`);
  }
  for (const v of here.vhosts ?? []) {
    if (!gone({ vhosts: [v] })) continue;
    broker.closeConnections((c) => c.vhostName === v.name, `vhost '${v.name}' is deleted`);
    broker.policies.dropVhost(v.name);
    for (const u of broker.users.users.values()) u.permissions.delete(v.name);
    broker.vhosts.delete(v.name);
  }
}
