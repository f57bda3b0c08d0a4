/**
 * /api/nodes and /api/nodes/{node}: this node in full (node-facts.ts), and in cluster mode
 * every other member as RabbitMQ lists a node it cannot query in detail — name, type and
 * running — with what the membership record tells (uptime, listeners). Running is the
 * membership's word (a live etcd lease); stopped members are those cluster_status calls disk
 * nodes (cluster-ops.ts).
 */
import type { ClusterMemberView } from '../../cluster/cluster-view.js';
import { diskNodes, splitAddress } from '../cluster-ops.js';
import { HttpError, notFound } from '../http-errors.js';
import type { Reply } from '../http-types.js';
import { itemReply, listReply, type Item } from '../listing.js';
import type { Ctx, Route } from '../router.js';

function memberEntry(name: string, m: ClusterMemberView | undefined, nowMs: number): Item {
  const advertised: [protocol: string, address: string][] = m === undefined ? [] : [['amqp', m.amqp], ['clustering', m.peer], ['replication', m.repl]];
  const listeners = advertised.flatMap(([protocol, address]) => {
    const a = splitAddress(address);
    return a === undefined ? [] : [{ node: name, protocol, ip_address: a.host, port: a.port }];
  });
  return {
    name,
    type: 'disc',
    running: m !== undefined,
    being_drained: false,
    ...(m === undefined ? {} : { uptime: Math.max(0, nowMs - m.startedAtMs) }),
    partitions: [],
    listeners,
  };
}

/** Every node of the cluster, this one first in full; a node alone lists itself. */
export async function nodeItems(ctx: Ctx): Promise<Item[]> {
  const self = ctx.m.facts.nodeEntry();
  const c = ctx.b.cluster;
  if (c === undefined) return [self];
  const view = await c.status().catch((err: unknown) => {
    throw new HttpError(503, 'service_unavailable', `the cluster's membership could not be read from etcd: ${err instanceof Error ? err.message : String(err)}`);
  });
  const running = new Map(view.members.map((m) => [m.name, m]));
  const nowMs = Date.now();
  const others = diskNodes(view, c.queues()).filter((n) => n !== view.node);
  return [{ ...self, running: running.has(view.node) }, ...others.map((n) => memberEntry(n, running.get(n), nowMs))];
}

async function node(ctx: Ctx): Promise<Reply> {
  const name = ctx.params['node'];
  const entry = (await nodeItems(ctx)).find((n) => n['name'] === name);
  if (entry === undefined) throw notFound();
  return itemReply(ctx.req.query, entry);
}

export const nodeRoutes: Route[] = [
  { path: '/api/nodes', methods: { GET: { access: 'monitor', run: async (ctx) => listReply(ctx.req.query, await nodeItems(ctx), ['name']) } } },
  { path: '/api/nodes/:node', methods: { GET: { access: 'monitor', run: node } } },
];
