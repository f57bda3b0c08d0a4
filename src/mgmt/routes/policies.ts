/** /api/policies: list, set and clear policies (administrators, or policymakers in their vhosts). */
import { clearPolicy, listPolicies, setPolicy } from '../admin-commands.js';
import { isAdmin } from '../auth.js';
import { badRequest, notFound } from '../http-errors.js';
import { created, noContent, type Reply } from '../http-types.js';
import { itemReply, listReply, type Item } from '../listing.js';
import type { Ctx, Route } from '../router.js';
import { field, intField, jsonBody, listedVhosts, stringField, vhostParam } from './common.js';

function policyItems(ctx: Ctx): Item[] {
  const vhosts = listedVhosts(ctx).filter((v) => isAdmin(ctx.user) || ctx.user.permissions.has(v));
  return vhosts.flatMap((v) => listPolicies(ctx.b, v).rows);
}

function policyItem(ctx: Ctx): Item {
  const v = vhostParam(ctx);
  const item = listPolicies(ctx.b, v.name).rows.find((p) => p['name'] === ctx.params['name']);
  if (item === undefined) throw notFound();
  return item;
}

async function putPolicy(ctx: Ctx): Promise<Reply> {
  const v = vhostParam(ctx);
  const name = ctx.params['name'] ?? '';
  const body = jsonBody(ctx.req);
  const definition = field(body, 'definition');
  if (typeof definition !== 'object' || definition === null || Array.isArray(definition)) throw badRequest('definition must be a JSON object');
  const isNew = !ctx.b.policies.list(v.name).some((p) => p.name === name);
  await setPolicy(ctx.b, {
    vhost: v.name,
    name,
    pattern: stringField(body, 'pattern'),
    definition: definition as Record<string, unknown>,
    priority: intField(body, 'priority', -2147483648, 2147483647, 0),
    applyTo: stringField(body, 'apply-to', 'all'),
  });
  return created(isNew);
}

async function deletePolicy(ctx: Ctx): Promise<Reply> {
  policyItem(ctx);
  await clearPolicy(ctx.b, vhostParam(ctx).name, ctx.params['name'] ?? '');
  return noContent();
}

const list = (ctx: Ctx): Reply => listReply(ctx.req.query, policyItems(ctx));

export const policyRoutes: Route[] = [
  { path: '/api/policies', methods: { GET: { access: 'policies', run: list } } },
  { path: '/api/policies/:vhost', methods: { GET: { access: 'policies', run: list } } },
  {
    path: '/api/policies/:vhost/:name',
    methods: {
      GET: { access: 'policies', run: (ctx) => itemReply(ctx.req.query, policyItem(ctx)) },
      PUT: { access: 'policies', run: putPolicy },
      DELETE: { access: 'policies', run: deletePolicy },
    },
  },
];
