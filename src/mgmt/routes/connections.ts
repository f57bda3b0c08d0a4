/**
 * /api/connections, /api/channels, /api/consumers. As in RabbitMQ, a plain management user
 * sees only its own connections and channels; monitoring and administrator users see all;
 * closing another user's connection takes an administrator.
 */
import { closeConnection } from '../admin-commands.js';
import { isAdmin, isMonitor } from '../auth.js';
import { channelItem, channelItems, connectionByName, connectionItems, consumerItems } from '../format.js';
import { notAuthorised, notFound } from '../http-errors.js';
import { noContent, type Reply } from '../http-types.js';
import { itemReply, listReply, type Item } from '../listing.js';
import type { Ctx, Route } from '../router.js';
import { listedVhosts, vhostParam } from './common.js';

/** Items of the vhost in the path (if any) that the user may see. */
function scoped(ctx: Ctx, items: Item[]): Item[] {
  const vhost = ctx.params['vhost'] === undefined ? undefined : vhostParam(ctx).name;
  return items.filter((i) => (vhost === undefined || i['vhost'] === vhost) && (isMonitor(ctx.user) || i['user'] === ctx.user.name));
}

function ownOrMonitor(ctx: Ctx, item: Item, deleting: boolean): void {
  const allowed = (deleting ? isAdmin(ctx.user) : isMonitor(ctx.user)) || item['user'] === ctx.user.name;
  if (!allowed) throw notAuthorised('User not authorised to access object');
}

function connectionItem(ctx: Ctx): Item {
  const item = connectionItems(ctx.b, ctx.m.sampler).find((c) => c['name'] === ctx.params['connection']);
  if (item === undefined) throw notFound();
  return item;
}

function getConnection(ctx: Ctx): Reply {
  const item = connectionItem(ctx);
  ownOrMonitor(ctx, item, false);
  return itemReply(ctx.req.query, item);
}

/** DELETE closes with 320 CONNECTION_FORCED; the X-Reason header supplies the text. */
function deleteConnection(ctx: Ctx): Reply {
  const item = connectionItem(ctx);
  ownOrMonitor(ctx, item, true);
  closeConnection(ctx.b, String(item['name']), ctx.req.headers.get('x-reason') ?? 'Closed via management plugin');
  return noContent();
}

function connectionChannels(ctx: Ctx): Reply {
  const item = connectionItem(ctx);
  ownOrMonitor(ctx, item, false);
  const conn = connectionByName(ctx.b, String(item['name']));
  const channels = conn === undefined ? [] : [...conn.channels.values()].map((ch) => channelItem(ctx.b, ch));
  return listReply(ctx.req.query, channels);
}

function getChannel(ctx: Ctx): Reply {
  const item = channelItems(ctx.b).find((c) => c['name'] === ctx.params['channel']);
  if (item === undefined) throw notFound();
  ownOrMonitor(ctx, item, false);
  return itemReply(ctx.req.query, item);
}

const connections = (ctx: Ctx): Reply => listReply(ctx.req.query, scoped(ctx, connectionItems(ctx.b, ctx.m.sampler)));
const channels = (ctx: Ctx): Reply => listReply(ctx.req.query, scoped(ctx, channelItems(ctx.b)));
const consumers = (ctx: Ctx): Reply => listReply(ctx.req.query, consumerItems(ctx.b, listedVhosts(ctx)), ['queue.vhost', 'queue.name', 'consumer_tag']);

export const connectionRoutes: Route[] = [
  { path: '/api/connections', methods: { GET: { access: 'mgmt', run: connections } } },
  { path: '/api/vhosts/:vhost/connections', methods: { GET: { access: 'vhostSee', run: connections } } },
  { path: '/api/connections/:connection', methods: { GET: { access: 'mgmt', run: getConnection }, DELETE: { access: 'mgmt', run: deleteConnection } } },
  { path: '/api/connections/:connection/channels', methods: { GET: { access: 'mgmt', run: connectionChannels } } },
  { path: '/api/channels', methods: { GET: { access: 'mgmt', run: channels } } },
  { path: '/api/vhosts/:vhost/channels', methods: { GET: { access: 'vhostSee', run: channels } } },
  { path: '/api/channels/:channel', methods: { GET: { access: 'mgmt', run: getChannel } } },
  { path: '/api/consumers', methods: { GET: { access: 'mgmt', run: consumers } } },
  { path: '/api/consumers/:vhost', methods: { GET: { access: 'vhostSee', run: consumers } } },
];
