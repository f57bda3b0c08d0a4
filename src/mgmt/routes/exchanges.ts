/** /api/exchanges: list, declare, delete, their bindings, and publishing a message. */
import { requirePermission } from '../auth.js';
import { argumentsTable, declareExchange, deleteExchange, propertiesFromJson, publish } from '../broker-ops.js';
import { bindingItems, exchangeItems } from '../format.js';
import { badRequest, notFound } from '../http-errors.js';
import { created, json, noContent, type Reply } from '../http-types.js';
import { itemReply, listReply } from '../listing.js';
import type { Ctx, Route } from '../router.js';
import { boolField, field, jsonBody, listedVhosts, queryFlag, stringField, vhostParam } from './common.js';

function exchangeName(ctx: Ctx): string {
  return ctx.params['exchange'] ?? '';
}

function getExchange(ctx: Ctx): Reply {
  const v = vhostParam(ctx);
  const name = exchangeName(ctx);
  const item = exchangeItems(ctx.b, [v.name]).find((e) => e['name'] === name);
  if (item === undefined) throw notFound();
  return itemReply(ctx.req.query, item);
}

async function putExchange(ctx: Ctx): Promise<Reply> {
  const v = vhostParam(ctx);
  const name = exchangeName(ctx);
  const body = jsonBody(ctx.req);
  requirePermission(ctx.user, v.name, 'configure', 'exchange', name);
  const isNew = await declareExchange(ctx.b, v, name, {
    type: stringField(body, 'type', 'direct'),
    durable: boolField(body, 'durable', false),
    autoDelete: boolField(body, 'auto_delete', false),
    internal: boolField(body, 'internal', false),
    arguments: argumentsTable(field(body, 'arguments')),
  });
  return created(isNew);
}

async function deleteExchangeRoute(ctx: Ctx): Promise<Reply> {
  const v = vhostParam(ctx);
  const name = exchangeName(ctx);
  if (v.graph.getExchange(name) === undefined) throw notFound();
  requirePermission(ctx.user, v.name, 'configure', 'exchange', name);
  await deleteExchange(ctx.b, v, name, queryFlag(ctx.req, 'if-unused'));
  return noContent();
}

/** POST .../publish {routing_key, payload, payload_encoding, properties} → {routed}. */
function publishRoute(ctx: Ctx): Reply {
  const v = vhostParam(ctx);
  const name = exchangeName(ctx);
  if (v.graph.getExchange(name) === undefined) throw notFound();
  const body = jsonBody(ctx.req);
  requirePermission(ctx.user, v.name, 'write', 'exchange', name);
  const routingKey = stringField(body, 'routing_key');
  const payloadText = stringField(body, 'payload');
  const encoding = stringField(body, 'payload_encoding', 'string');
  let payload: Buffer;
  if (encoding === 'string') payload = Buffer.from(payloadText, 'utf8');
  else if (encoding === 'base64') {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(payloadText.replace(/\s/g, ''))) throw badRequest('payload is not valid base64');
    payload = Buffer.from(payloadText, 'base64');
  } else throw badRequest(`payload_encoding must be string or base64, got '${encoding}'`);
  const routed = publish(ctx.b, v, name, routingKey, propertiesFromJson(field(body, 'properties')), payload);
  return json(200, { routed });
}

function exchangeBindings(direction: 'source' | 'destination') {
  return (ctx: Ctx): Reply => {
    const v = vhostParam(ctx);
    const name = exchangeName(ctx);
    if (v.graph.getExchange(name) === undefined) throw notFound();
    const items = bindingItems(ctx.b, [v.name]).filter((b) =>
      direction === 'source' ? b['source'] === name : b['destination_type'] === 'exchange' && b['destination'] === name,
    );
    return listReply(ctx.req.query, items, []);
  };
}

const list = (ctx: Ctx): Reply => listReply(ctx.req.query, exchangeItems(ctx.b, listedVhosts(ctx)));

export const exchangeRoutes: Route[] = [
  { path: '/api/exchanges', methods: { GET: { access: 'mgmt', run: list } } },
  { path: '/api/exchanges/:vhost', methods: { GET: { access: 'vhostSee', run: list } } },
  {
    path: '/api/exchanges/:vhost/:exchange',
    methods: {
      GET: { access: 'vhostSee', run: getExchange },
      PUT: { access: 'vhost', run: putExchange },
      DELETE: { access: 'vhost', run: deleteExchangeRoute },
    },
  },
  { path: '/api/exchanges/:vhost/:exchange/bindings/source', methods: { GET: { access: 'vhostSee', run: exchangeBindings('source') } } },
  { path: '/api/exchanges/:vhost/:exchange/bindings/destination', methods: { GET: { access: 'vhostSee', run: exchangeBindings('destination') } } },
  { path: '/api/exchanges/:vhost/:exchange/publish', methods: { POST: { access: 'vhost', run: publishRoute } } },
];
