/** /api/queues: list, declare, delete, purge, bindings, and fetching messages (get). */
import { requirePermission } from '../auth.js';
import { ackModes, argumentsTable, declareQueue, deleteQueue, getCountMax, getMessages, purgeQueue, type AckMode } from '../broker-ops.js';
import { bindingItems, queueItems } from '../format.js';
import { badRequest, notFound } from '../http-errors.js';
import { created, json, noContent } from '../http-types.js';
import { itemReply, listReply } from '../listing.js';
import type { Ctx, Route } from '../router.js';
import { boolField, field, intField, jsonBody, listedVhosts, queryFlag, queueParam, stringField, vhostParam } from './common.js';

function queueName(ctx: Ctx): string {
  return ctx.params['queue'] ?? '';
}

async function getQueue(ctx: Ctx): Promise<ReturnType<typeof itemReply>> {
  const v = vhostParam(ctx);
  const q = queueParam(ctx, v);
  const [item] = await queueItems(ctx.b, ctx.m.sampler, [v.name]).then((all) => all.filter((i) => i['name'] === q.name));
  if (item === undefined) throw notFound();
  return itemReply(ctx.req.query, item);
}

async function putQueue(ctx: Ctx): Promise<ReturnType<typeof created>> {
  const v = vhostParam(ctx);
  const name = queueName(ctx);
  const body = jsonBody(ctx.req);
  requirePermission(ctx.user, v.name, 'configure', 'queue', name);
  const isNew = await declareQueue(ctx.b, v, name, {
    durable: boolField(body, 'durable', false),
    autoDelete: boolField(body, 'auto_delete', false),
    arguments: argumentsTable(field(body, 'arguments')),
  });
  return created(isNew);
}

async function deleteQueueRoute(ctx: Ctx): Promise<ReturnType<typeof noContent>> {
  const v = vhostParam(ctx);
  const q = queueParam(ctx, v);
  requirePermission(ctx.user, v.name, 'configure', 'queue', q.name);
  await deleteQueue(ctx.b, q, queryFlag(ctx.req, 'if-unused'), queryFlag(ctx.req, 'if-empty'));
  return noContent();
}

async function purge(ctx: Ctx): Promise<ReturnType<typeof noContent>> {
  const v = vhostParam(ctx);
  const q = queueParam(ctx, v);
  requirePermission(ctx.user, v.name, 'read', 'queue', q.name);
  await purgeQueue(ctx.b, q);
  return noContent();
}

async function get(ctx: Ctx): Promise<ReturnType<typeof json>> {
  const v = vhostParam(ctx);
  const q = queueParam(ctx, v);
  const body = jsonBody(ctx.req);
  requirePermission(ctx.user, v.name, 'read', 'queue', q.name);
  const ackMode = stringField(body, 'ackmode');
  if (!ackModes.has(ackMode)) throw badRequest(`ackmode must be one of ${[...ackModes].join(', ')}, got '${ackMode}'`);
  const count = intField(body, 'count', 1, getCountMax);
  const encoding = stringField(body, 'encoding', 'auto');
  if (encoding !== 'auto' && encoding !== 'base64') throw badRequest(`encoding must be auto or base64, got '${encoding}'`);
  const truncate = field(body, 'truncate') === undefined ? undefined : intField(body, 'truncate', 0, Number.MAX_SAFE_INTEGER);
  return json(200, await getMessages(ctx.b, q, count, ackMode as AckMode, encoding, truncate));
}

function queueBindings(ctx: Ctx): ReturnType<typeof listReply> {
  const v = vhostParam(ctx);
  const q = queueParam(ctx, v);
  const items = bindingItems(ctx.b, [v.name]).filter((b) => b['destination_type'] === 'queue' && b['destination'] === q.name);
  return listReply(ctx.req.query, items, []);
}

const list = { access: 'vhostSee', run: async (ctx: Ctx) => listReply(ctx.req.query, await queueItems(ctx.b, ctx.m.sampler, listedVhosts(ctx))) } as const;

export const queueRoutes: Route[] = [
  { path: '/api/queues', methods: { GET: { access: 'mgmt', run: list.run } } },
  { path: '/api/queues/:vhost', methods: { GET: list } },
  {
    path: '/api/queues/:vhost/:queue',
    methods: {
      GET: { access: 'vhostSee', run: getQueue },
      PUT: { access: 'vhost', run: putQueue },
      DELETE: { access: 'vhost', run: deleteQueueRoute },
    },
  },
  { path: '/api/queues/:vhost/:queue/bindings', methods: { GET: { access: 'vhostSee', run: queueBindings } } },
  { path: '/api/queues/:vhost/:queue/contents', methods: { DELETE: { access: 'vhost', run: purge } } },
  { path: '/api/queues/:vhost/:queue/get', methods: { POST: { access: 'vhost', run: get } } },
];
