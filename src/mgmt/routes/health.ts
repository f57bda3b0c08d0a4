/**
 * Health checks as RabbitMQ's management API answers them: 200 {"status":"ok"}, or 503
 * {"status":"failed","reason":...} with what failed. Any management user may call them.
 */
import { declareQueue, getMessages, publish } from '../broker-ops.js';
import { json, type Reply } from '../http-types.js';
import type { Ctx, Route } from '../router.js';
import { vhostParam } from './common.js';

const ok = (): Reply => json(200, { status: 'ok' });
const failed = (reason: string, extra: Record<string, unknown> = {}): Reply => json(503, { status: 'failed', reason, ...extra });

function alarms(ctx: Ctx, scope: 'cluster' | 'node'): Reply {
  // The cluster's alarms include the other nodes' (cluster/alarm-sync.ts); local ones are this node's own.
  const list = ctx.m.facts.alarms().filter((a) => scope === 'cluster' || a.node === ctx.m.facts.nodeName);
  if (list.length === 0) return ok();
  return failed(`There are alarms in effect ${scope === 'cluster' ? 'in the cluster' : 'on the node'}`, {
    alarms: list.map((a) => ({ node: a.node, resource: a.resource })),
  });
}

function portListener(ctx: Ctx): Reply {
  const port = Number(ctx.params['port']);
  const ports = ctx.m.facts.listeners.map((l) => l.port);
  return ports.includes(port) ? ok() : failed(`No active listener on port ${String(ctx.params['port'])}`, { missing: port, ports });
}

/** RabbitMQ's protocol names, and the ones warren's listeners register under. */
const protocolAliases: Record<string, string> = { amqp: 'amqp', amqp091: 'amqp', 'amqp0-9-1': 'amqp', http: 'http', prometheus: 'http/prometheus', 'http/prometheus': 'http/prometheus', 'http/web-amqp': 'http/web-amqp', 'web-amqp': 'http/web-amqp' };

function protocolListener(ctx: Ctx): Reply {
  const asked = (ctx.params['protocol'] ?? '').toLowerCase();
  const protocols = ctx.m.facts.listeners.map((l) => l.protocol);
  const wanted = protocolAliases[asked] ?? asked;
  return protocols.includes(wanted) ? ok() : failed(`No active listener for protocol ${asked}`, { missing: asked, protocols });
}

/** Declares aliveness-test, publishes a message to it and gets it back (as RabbitMQ). */
async function aliveness(ctx: Ctx): Promise<Reply> {
  const v = vhostParam(ctx);
  const name = 'aliveness-test';
  const payload = 'test_message';
  await declareQueue(ctx.b, v, name, { durable: false, autoDelete: false, arguments: Object.create(null) as Record<string, never> });
  const q = v.queues.get(name);
  if (q === undefined) return failed('aliveness-test queue vanished');
  publish(ctx.b, v, '', name, {}, Buffer.from(payload));
  const got = await getMessages(ctx.b, q, 1, 'ack_requeue_false', 'auto', undefined);
  return got[0]?.payload === payload ? ok() : failed('aliveness test message did not come back');
}

export const healthRoutes: Route[] = [
  { path: '/api/health/checks/alarms', methods: { GET: { access: 'mgmt', run: (ctx) => alarms(ctx, 'cluster') } } },
  { path: '/api/health/checks/local-alarms', methods: { GET: { access: 'mgmt', run: (ctx) => alarms(ctx, 'node') } } },
  { path: '/api/health/checks/virtual-hosts', methods: { GET: { access: 'mgmt', run: ok } } },
  { path: '/api/health/checks/node-is-quorum-critical', methods: { GET: { access: 'mgmt', run: ok } } },
  { path: '/api/health/checks/port-listener/:port', methods: { GET: { access: 'mgmt', run: portListener } } },
  { path: '/api/health/checks/protocol-listener/:protocol', methods: { GET: { access: 'mgmt', run: protocolListener } } },
  { path: '/api/aliveness-test/:vhost', methods: { GET: { access: 'vhost', run: aliveness } } },
];
