/** /api/vhosts, /api/users, /api/permissions, /api/whoami. */
import { addVhost, clearPermissions, deleteUser, deleteVhost, listPermissions, setPermissions } from '../admin-commands.js';
import { hashPassword, isHashingAlgorithm, type User } from '../../front/users.js';
import { visibleVhosts } from '../auth.js';
import { badRequest, notFound } from '../http-errors.js';
import { created, json, noContent, type Reply } from '../http-types.js';
import { itemReply, listReply, type Item } from '../listing.js';
import { fetchQueueStats } from '../stats-sampler.js';
import type { Ctx, Route } from '../router.js';
import { field, jsonBody, stringField, vhostParam } from './common.js';

// ---- vhosts -----------------------------------------------------------------------

async function vhostItems(ctx: Ctx, names: readonly string[]): Promise<Item[]> {
  const stats = await fetchQueueStats(ctx.b);
  return names.map((name) => {
    let ready = 0;
    let unacked = 0;
    for (const q of ctx.b.vhosts.get(name)?.queues.values() ?? []) {
      const s = stats.get(q.queueId);
      ready += s?.ready ?? 0;
      unacked += s?.unacked ?? 0;
    }
    return {
      name,
      description: '',
      tags: [],
      metadata: { description: '', tags: [] },
      default_queue_type: 'classic',
      tracing: false,
      cluster_state: { [ctx.b.config.nodeName]: 'running' },
      messages: ready + unacked,
      messages_ready: ready,
      messages_unacknowledged: unacked,
    };
  });
}

async function putVhost(ctx: Ctx): Promise<Reply> {
  const name = ctx.params['vhost'] ?? '';
  jsonBody(ctx.req); // description, tags, tracing: accepted and not kept
  const isNew = !ctx.b.vhosts.has(name);
  await addVhost(ctx.b, name);
  return created(isNew);
}

async function deleteVhostRoute(ctx: Ctx): Promise<Reply> {
  const v = vhostParam(ctx);
  await deleteVhost(ctx.b, v.name);
  return noContent();
}

// ---- users ------------------------------------------------------------------------

function userItem(u: User): Item {
  return { name: u.name, password_hash: u.passwordHash, hashing_algorithm: u.hashingAlgorithm ?? 'rabbit_password_hashing_sha256', tags: [...u.tags], limits: {} };
}

function userParam(ctx: Ctx): User {
  const u = ctx.b.users.users.get(ctx.params['user'] ?? '');
  if (u === undefined) throw notFound();
  return u;
}

function tagList(v: unknown): string[] {
  if (Array.isArray(v) && v.every((t) => typeof t === 'string')) return v.map((t) => t.trim()).filter((t) => t !== '');
  if (typeof v === 'string') return v.split(',').map((t) => t.trim()).filter((t) => t !== '');
  throw badRequest('tags must be a comma-separated string or a list of strings');
}

/** PUT /api/users/:user {password | password_hash [, hashing_algorithm], tags}: creates or updates. */
async function putUser(ctx: Ctx): Promise<Reply> {
  const name = ctx.params['user'] ?? '';
  if (name === '') throw badRequest('user name cannot be empty');
  const body = jsonBody(ctx.req);
  if (field(body, 'tags') === undefined) throw badRequest('tags_not_present');
  const tags = tagList(field(body, 'tags'));
  const password = field(body, 'password');
  const hash = field(body, 'password_hash');
  const algorithm = stringField(body, 'hashing_algorithm', 'rabbit_password_hashing_sha256');
  if (!isHashingAlgorithm(algorithm)) throw badRequest(`hashing algorithm '${algorithm}' is not supported`);
  if (password !== undefined && typeof password !== 'string') throw badRequest('password must be a string');
  if (hash !== undefined && (typeof hash !== 'string' || (hash !== '' && Buffer.from(hash, 'base64').length <= 4))) {
    throw badRequest('password_hash must be a base64 salted hash');
  }
  const existing = ctx.b.users.users.get(name);
  const u: User = existing ?? { name, passwordHash: '', tags: [], permissions: new Map() };
  u.tags = tags;
  if (typeof password === 'string') {
    u.passwordHash = hashPassword(password);
    delete u.hashingAlgorithm;
  } else if (typeof hash === 'string') {
    u.passwordHash = hash;
    if (algorithm === 'rabbit_password_hashing_sha256') delete u.hashingAlgorithm;
    else u.hashingAlgorithm = algorithm;
  }
  ctx.b.users.users.set(name, u);
  await ctx.b.definitionsChanged();
  return created(existing === undefined);
}

// ---- permissions -----------------------------------------------------------------

function permissionItems(ctx: Ctx, vhosts: readonly string[]): Item[] {
  return vhosts.flatMap((v) => listPermissions(ctx.b, v).rows.map((r) => ({ user: r['user'], vhost: v, configure: r['configure'], write: r['write'], read: r['read'] })));
}

function permissionItem(ctx: Ctx): Item {
  const v = vhostParam(ctx);
  const u = userParam(ctx);
  const p = u.permissions.get(v.name);
  if (p === undefined) throw notFound();
  return { user: u.name, vhost: v.name, configure: p.configure, write: p.write, read: p.read };
}

async function putPermission(ctx: Ctx): Promise<Reply> {
  const v = vhostParam(ctx);
  const u = userParam(ctx);
  const body = jsonBody(ctx.req);
  const isNew = !u.permissions.has(v.name);
  await setPermissions(ctx.b, v.name, u.name, stringField(body, 'configure'), stringField(body, 'write'), stringField(body, 'read'));
  return created(isNew);
}

async function deletePermission(ctx: Ctx): Promise<Reply> {
  permissionItem(ctx);
  await clearPermissions(ctx.b, ctx.params['vhost'] ?? '', ctx.params['user'] ?? '');
  return noContent();
}

const allVhostNames = (ctx: Ctx): string[] => [...ctx.b.vhosts.keys()];

export const accessRoutes: Route[] = [
  { path: '/api/whoami', methods: { GET: { access: 'mgmt', run: (ctx) => json(200, { name: ctx.user.name, tags: [...ctx.user.tags] }) } } },
  { path: '/api/vhosts', methods: { GET: { access: 'mgmt', run: async (ctx) => listReply(ctx.req.query, await vhostItems(ctx, visibleVhosts(ctx.b, ctx.user)), ['name']) } } },
  {
    path: '/api/vhosts/:vhost',
    methods: {
      GET: { access: 'vhostSee', run: async (ctx) => itemReply(ctx.req.query, (await vhostItems(ctx, [vhostParam(ctx).name]))[0] as Item) },
      PUT: { access: 'admin', run: putVhost },
      DELETE: { access: 'admin', run: deleteVhostRoute },
    },
  },
  { path: '/api/vhosts/:vhost/permissions', methods: { GET: { access: 'admin', run: (ctx) => listReply(ctx.req.query, permissionItems(ctx, [vhostParam(ctx).name]), ['vhost', 'user']) } } },
  { path: '/api/users', methods: { GET: { access: 'admin', run: (ctx) => listReply(ctx.req.query, [...ctx.b.users.users.values()].map(userItem), ['name']) } } },
  {
    path: '/api/users/:user',
    methods: {
      GET: { access: 'admin', run: (ctx) => itemReply(ctx.req.query, userItem(userParam(ctx))) },
      PUT: { access: 'admin', run: putUser },
      DELETE: { access: 'admin', run: async (ctx) => (await deleteUser(ctx.b, userParam(ctx).name), noContent()) },
    },
  },
  {
    path: '/api/users/:user/permissions',
    methods: { GET: { access: 'admin', run: (ctx) => listReply(ctx.req.query, permissionItems(ctx, allVhostNames(ctx)).filter((p) => p['user'] === userParam(ctx).name), ['vhost', 'user']) } },
  },
  { path: '/api/permissions', methods: { GET: { access: 'admin', run: (ctx) => listReply(ctx.req.query, permissionItems(ctx, allVhostNames(ctx)), ['vhost', 'user']) } } },
  {
    path: '/api/permissions/:vhost/:user',
    methods: {
      GET: { access: 'admin', run: (ctx) => itemReply(ctx.req.query, permissionItem(ctx)) },
      PUT: { access: 'admin', run: putPermission },
      DELETE: { access: 'admin', run: deletePermission },
    },
  },
];
