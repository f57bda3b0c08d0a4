/** /api/overview, /api/cluster-name, /api/extensions. */
import { isMonitor, visibleVhosts } from '../auth.js';
import { json, type Reply } from '../http-types.js';
import type { Item } from '../listing.js';
import { exchangeTypes } from '../node-facts.js';
import { fetchQueueStats, type Totals } from '../stats-sampler.js';
import type { Ctx, Route } from '../router.js';
import { warrenVersion } from '../../node/version.js';

/** The history a chart asks for: RabbitMQ's lengths_age / msg_rates_age (seconds), capped by what the sampler keeps. */
function historyAgeS(ctx: Ctx): number | undefined {
  const raw = ctx.req.query.get('lengths_age') ?? ctx.req.query.get('msg_rates_age');
  if (raw === null || !/^[0-9]{1,6}$/.test(raw)) return undefined;
  return Number(raw);
}

const round = (r: number): number => Math.round(r * 10) / 10;

/** message_stats and queue_totals with rates and, when asked, samples (newest first, as RabbitMQ). */
function totalsSections(ctx: Ctx, now: Totals, rates: Totals, withHistory: boolean): { message_stats: Item; queue_totals: Item } {
  const ageS = withHistory ? historyAgeS(ctx) : undefined;
  const history = ageS === undefined ? undefined : ctx.m.sampler.totalsHistory(ageS).reverse();
  const details = (k: keyof Totals): Item => {
    const d: Item = { rate: round(rates[k]) };
    if (history !== undefined) d['samples'] = history.map((h) => ({ sample: h.totals[k], timestamp: h.atMs }));
    return d;
  };
  return {
    message_stats: {
      publish: now.publish,
      publish_details: details('publish'),
      deliver_get: now.deliver,
      deliver_get_details: details('deliver'),
      ack: now.ack,
      ack_details: details('ack'),
      redeliver: now.redeliver,
      redeliver_details: details('redeliver'),
    },
    queue_totals: {
      messages: now.messages,
      messages_details: details('messages'),
      messages_ready: now.messagesReady,
      messages_ready_details: details('messagesReady'),
      messages_unacknowledged: now.messagesUnacked,
      messages_unacknowledged_details: details('messagesUnacked'),
    },
  };
}

async function overview(ctx: Ctx): Promise<Reply> {
  const b = ctx.b;
  const monitor = isMonitor(ctx.user);
  const vhosts = visibleVhosts(b, ctx.user);
  const stats = await fetchQueueStats(b);
  let sections;
  if (monitor) {
    sections = totalsSections(ctx, ctx.m.sampler.totalsWith(stats), ctx.m.sampler.totalRates(), true);
  } else {
    // Only the user's vhosts: counters summed over their queues, rates likewise.
    const now: Totals = { messages: 0, messagesReady: 0, messagesUnacked: 0, publish: 0, deliver: 0, ack: 0, redeliver: 0 };
    const rates: Totals = { ...now };
    for (const v of vhosts) {
      for (const q of b.vhosts.get(v)?.queues.values() ?? []) {
        const s = stats.get(q.queueId);
        const r = ctx.m.sampler.queueRates(q.queueId);
        if (s === undefined) continue;
        now.messagesReady += s.ready;
        now.messagesUnacked += s.unacked;
        now.publish += s.published;
        now.deliver += s.delivered;
        now.ack += s.acked;
        now.redeliver += s.redelivered;
        rates.publish += r.publish;
        rates.deliver += r.deliver;
        rates.ack += r.ack;
        rates.redeliver += r.redeliver;
        rates.messagesReady += r.messagesReady;
        rates.messagesUnacked += r.messagesUnacked;
      }
    }
    now.messages = now.messagesReady + now.messagesUnacked;
    rates.messages = rates.messagesReady + rates.messagesUnacked;
    sections = totalsSections(ctx, now, rates, false);
  }
  const conns = [...b.connections].filter((c) => c.state !== 'header' && (monitor || c.user?.name === ctx.user.name));
  let queues = 0;
  let exchanges = 0;
  let consumers = 0;
  for (const v of vhosts) {
    const vh = b.vhosts.get(v);
    if (vh === undefined) continue;
    queues += vh.queues.size;
    exchanges += [...vh.graph.exchanges()].length;
    for (const q of vh.queues.values()) consumers += q.consumers.size;
  }
  const facts = ctx.m.facts;
  return json(200, {
    management_version: warrenVersion,
    rates_mode: 'basic',
    exchange_types: exchangeTypes(),
    product_version: warrenVersion,
    product_name: 'warren',
    rabbitmq_version: '3.13.0',
    cluster_name: b.config.clusterName,
    erlang_version: `Node.js ${process.version}`,
    erlang_full_version: `Node.js ${process.version} (${process.platform} ${process.arch})`,
    disable_stats: false,
    enable_queue_totals: true,
    ...sections,
    churn_rates: {},
    object_totals: {
      channels: conns.reduce((n, c) => n + c.channels.size, 0),
      connections: conns.length,
      consumers,
      exchanges,
      queues,
    },
    statistics_db_event_queue: 0,
    node: b.config.nodeName,
    listeners: facts.listeners.map((l) => ({ node: facts.nodeName, protocol: l.protocol, ip_address: l.ip, port: l.port, socket_opts: {} })),
    contexts: facts.listeners
      .filter((l) => l.protocol === 'http')
      .map((l) => ({ node: facts.nodeName, description: 'RabbitMQ Management', path: '/', ip: l.ip, port: String(l.port) })),
    alarms: facts.alarms(),
  });
}

export const overviewRoutes: Route[] = [
  { path: '/api/overview', methods: { GET: { access: 'mgmt', run: overview } } },
  { path: '/api/cluster-name', methods: { GET: { access: 'mgmt', run: (ctx) => json(200, { name: ctx.b.config.clusterName }) } } },
  { path: '/api/extensions', methods: { GET: { access: 'mgmt', run: () => json(200, []) } } },
];
