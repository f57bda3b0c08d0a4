/**
 * /api/bindings: list, create (POST → 201 with a Location naming the binding's
 * properties_key), inspect and delete one binding, between an exchange and a queue (e/q)
 * or two exchanges (e/e).
 */
import { tableToJs } from '../../amqp/field-table.js';
import type { DestinationKind } from '../../routing/types.js';
import type { VHost } from '../../front/vhost.js';
import { requirePermission } from '../auth.js';
import { argumentsTable, bind, unbind, type BindingSpec } from '../broker-ops.js';
import { bindingItems, propertiesKey } from '../format.js';
import { notFound } from '../http-errors.js';
import { noContent, type Reply } from '../http-types.js';
import { itemReply, listReply, type Item } from '../listing.js';
import type { Ctx, Route } from '../router.js';
import { field, jsonBody, listedVhosts, stringField, vhostParam } from './common.js';

/** Both ends of the path must exist (404 as RabbitMQ's resource_exists). */
function ends(ctx: Ctx, kind: DestinationKind): { v: VHost; source: string; destination: string } {
  const v = vhostParam(ctx);
  const source = ctx.params['source'] ?? '';
  const destination = ctx.params['destination'] ?? '';
  if (v.graph.getExchange(source) === undefined) throw notFound();
  if (kind === 'queue' ? !v.queues.has(destination) : v.graph.getExchange(destination) === undefined) throw notFound();
  return { v, source, destination };
}

function between(ctx: Ctx, kind: DestinationKind): Item[] {
  const { v, source, destination } = ends(ctx, kind);
  return bindingItems(ctx.b, [v.name]).filter((b) => b['source'] === source && b['destination'] === destination && b['destination_type'] === kind);
}

function checkBindPermissions(ctx: Ctx, v: VHost, kind: DestinationKind, source: string, destination: string): void {
  requirePermission(ctx.user, v.name, 'write', kind, destination);
  requirePermission(ctx.user, v.name, 'read', 'exchange', source);
}

function create(kind: DestinationKind) {
  return async (ctx: Ctx): Promise<Reply> => {
    const { v, source, destination } = ends(ctx, kind);
    const body = jsonBody(ctx.req);
    checkBindPermissions(ctx, v, kind, source, destination);
    const spec: BindingSpec = {
      source,
      destination,
      destinationKind: kind,
      routingKey: stringField(body, 'routing_key', ''),
      arguments: argumentsTable(field(body, 'arguments')),
    };
    await bind(ctx.b, v, spec);
    const item = between(ctx, kind).find((b) => b['routing_key'] === spec.routingKey && JSON.stringify(b['arguments']) === JSON.stringify(field(body, 'arguments') ?? {}));
    const props = String(item?.['properties_key'] ?? '~');
    const enc = encodeURIComponent;
    const location = `/api/bindings/${enc(v.name)}/e/${enc(source === '' ? 'amq.default' : source)}/${kind === 'queue' ? 'q' : 'e'}/${enc(destination)}/${enc(props)}`;
    return { status: 201, headers: { Location: location } };
  };
}

/** The binding named by :props (its properties_key, percent-decoded once more by some clients). */
function one(ctx: Ctx, kind: DestinationKind): Item {
  const props = ctx.params['props'] ?? '';
  const item = between(ctx, kind).find((b) => b['properties_key'] === props || safeDecode(String(b['properties_key'])) === props);
  if (item === undefined) throw notFound();
  return item;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function remove(kind: DestinationKind) {
  return async (ctx: Ctx): Promise<Reply> => {
    const { v, source, destination } = ends(ctx, kind);
    const key = one(ctx, kind)['properties_key'];
    checkBindPermissions(ctx, v, kind, source, destination);
    // Unbind with the graph's own binding: its arguments keep their AMQP field types.
    const binding = [...v.graph.bindings()].find(
      (b) => b.source === source && b.destination === destination && b.destinationKind === kind && propertiesKey(b.routingKey, tableToJs(b.arguments)) === key,
    );
    if (binding === undefined || !(await unbind(ctx.b, v, binding))) throw notFound();
    return noContent();
  };
}

const list = (ctx: Ctx): Reply => listReply(ctx.req.query, bindingItems(ctx.b, listedVhosts(ctx)), []);

function pairRoutes(letter: 'q' | 'e', kind: DestinationKind): Route[] {
  return [
    {
      path: `/api/bindings/:vhost/e/:source/${letter}/:destination`,
      methods: {
        GET: { access: 'vhostSee', run: (ctx) => listReply(ctx.req.query, between(ctx, kind), []) },
        POST: { access: 'vhost', run: create(kind) },
      },
    },
    {
      path: `/api/bindings/:vhost/e/:source/${letter}/:destination/:props`,
      methods: {
        GET: { access: 'vhostSee', run: (ctx) => itemReply(ctx.req.query, one(ctx, kind)) },
        DELETE: { access: 'vhost', run: remove(kind) },
      },
    },
  ];
}

export const bindingRoutes: Route[] = [
  { path: '/api/bindings', methods: { GET: { access: 'mgmt', run: list } } },
  { path: '/api/bindings/:vhost', methods: { GET: { access: 'vhostSee', run: list } } },
  ...pairRoutes('q', 'queue'),
  ...pairRoutes('e', 'exchange'),
];
