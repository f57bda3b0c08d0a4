/**
 * The management API's objects, in RabbitMQ's field names: queues, exchanges, bindings,
 * connections, channels and consumers. Listings reuse admin-commands.ts (the same rows
 * warrenctl prints) and add what only HTTP carries: rates, node, nested details.
 */
import { createHash } from 'node:crypto';
import type { Broker } from '../front/broker.js';
import type { Channel } from '../front/channel.js';
import type { Connection } from '../front/connection.js';
import { listBindings, listConnections, listConsumers, listExchanges, listQueues } from './admin-commands.js';
import { placementLookup } from './cluster-ops.js';
import type { Item } from './listing.js';
import type { StatsSampler } from './stats-sampler.js';
import { WsTransport } from './ws-transport.js';

const rate = (r: number): { rate: number } => ({ rate: Math.round(r * 10) / 10 });

const queueColumns = [
  'name', 'vhost', 'durable', 'auto_delete', 'exclusive', 'arguments', 'policy', 'effective_policy_definition', 'messages',
  'messages_ready', 'messages_unacknowledged', 'message_bytes_ready', 'consumers', 'state', 'type',
  'exclusive_consumer_tag', 'single_active_consumer_tag', 'messages_published', 'messages_delivered', 'messages_acknowledged',
  'messages_redelivered', 'shard', 'leader', 'members', 'online', 'in_sync', 'epoch',
];

/** Queues of the given vhosts, with counts fresh from the shards and rates from the sampler. */
export async function queueItems(b: Broker, sampler: StatsSampler, vhosts: readonly string[]): Promise<Item[]> {
  const placement = await placementLookup(b);
  const listings = await Promise.all(vhosts.filter((v) => b.vhosts.has(v)).map((v) => listQueues(b, v, queueColumns, placement)));
  const items: Item[] = [];
  for (const { rows } of listings) {
    for (const row of rows) {
      const q = b.vhosts.get(String(row['vhost']))?.queues.get(String(row['name']));
      if (q === undefined) continue; // deleted while the counts were fetched
      items.push(queueItem(b, row, sampler.queueRates(q.queueId)));
    }
  }
  return items;
}

function queueItem(b: Broker, row: Item, r: ReturnType<StatsSampler['queueRates']>): Item {
  const consumers = Number(row['consumers']);
  const orNull = (v: unknown): unknown => (v === '' ? null : v);
  return {
    name: row['name'],
    vhost: row['vhost'],
    durable: row['durable'],
    auto_delete: row['auto_delete'],
    exclusive: row['exclusive'],
    arguments: row['arguments'],
    // As RabbitMQ's quorum queues: node is the leader's, wherever the API is asked.
    node: row['leader'] ?? b.config.nodeName,
    leader: row['leader'],
    members: row['members'],
    online: row['online'],
    in_sync: row['in_sync'],
    epoch: row['epoch'],
    state: row['state'],
    type: row['type'],
    policy: orNull(row['policy']),
    effective_policy_definition: row['effective_policy_definition'],
    consumers,
    consumer_capacity: consumers > 0 ? 1 : 0,
    consumer_utilisation: consumers > 0 ? 1 : 0,
    exclusive_consumer_tag: orNull(row['exclusive_consumer_tag']),
    single_active_consumer_tag: orNull(row['single_active_consumer_tag']),
    messages: row['messages'],
    messages_details: rate(r.messages),
    messages_ready: row['messages_ready'],
    messages_ready_details: rate(r.messagesReady),
    messages_unacknowledged: row['messages_unacknowledged'],
    messages_unacknowledged_details: rate(r.messagesUnacked),
    message_bytes_ready: row['message_bytes_ready'],
    message_stats: {
      publish: row['messages_published'],
      publish_details: rate(r.publish),
      deliver_get: row['messages_delivered'],
      deliver_get_details: rate(r.deliver),
      ack: row['messages_acknowledged'],
      ack_details: rate(r.ack),
      redeliver: row['messages_redelivered'],
      redeliver_details: rate(r.redeliver),
    },
    /** This node's shard holding the queue; null for a queue led by another node (see leader). */
    shard: row['shard'],
  };
}

export function exchangeItems(b: Broker, vhosts: readonly string[]): Item[] {
  const cols = ['name', 'vhost', 'type', 'durable', 'auto_delete', 'internal', 'arguments'];
  return vhosts.filter((v) => b.vhosts.has(v)).flatMap((v) => listExchanges(b, v, cols).rows.map((r) => ({ ...r, user_who_performed_action: 'rmq-internal', policy: null })));
}

/**
 * A binding's id in URLs (rabbit_mgmt_format:pack_binding_props): the percent-encoded routing
 * key with '~' escaped, '~' alone for an empty key, and '~' + a hash of the arguments when there are any.
 */
export function propertiesKey(routingKey: string, args: Item): string {
  const key = encodeURIComponent(routingKey).replace(/~/g, '%7E');
  if (Object.keys(args).length === 0) return routingKey === '' ? '~' : key;
  const hash = createHash('sha256').update(JSON.stringify(canonical(args))).digest('base64url').slice(0, 22);
  return `${key}~${hash}`;
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (typeof v === 'object' && v !== null) {
    return Object.keys(v).sort().map((k) => [k, canonical((v as Item)[k])]);
  }
  return v;
}

export function bindingItems(b: Broker, vhosts: readonly string[]): Item[] {
  const cols = ['source_name', 'destination_name', 'destination_kind', 'routing_key', 'arguments', 'vhost'];
  return vhosts
    .filter((v) => b.vhosts.has(v))
    .flatMap((v) =>
      listBindings(b, v, cols).rows.map((r) => {
        const args = (r['arguments'] ?? {}) as Item;
        return {
          source: r['source_name'],
          vhost: r['vhost'],
          destination: r['destination_name'],
          destination_type: r['destination_kind'],
          routing_key: r['routing_key'],
          arguments: args,
          properties_key: propertiesKey(String(r['routing_key']), args),
        };
      }),
    );
}

const connectionColumns = [
  'name', 'user', 'vhost', 'peer_host', 'peer_port', 'port', 'state', 'channels', 'protocol', 'timeout', 'frame_max', 'channel_max',
  'client_properties', 'connected_at', 'recv_oct', 'send_oct', 'recv_cnt',
];

export function connectionByName(b: Broker, name: string): Connection | undefined {
  for (const c of b.connections) if (c.name === name && c.state !== 'header') return c;
  return undefined;
}

/** Every open connection (owner filtering is the caller's). */
export function connectionItems(b: Broker, sampler: StatsSampler): Item[] {
  return listConnections(b, connectionColumns).rows.map((row) => {
    const c = connectionByName(b, String(row['name']));
    const rates = c === undefined ? { recv: 0, send: 0 } : sampler.connectionRates(c);
    const props = (row['client_properties'] ?? {}) as Item;
    const ws = c?.transport instanceof WsTransport;
    return {
      name: row['name'],
      node: b.config.nodeName,
      type: 'network',
      user: row['user'],
      vhost: row['vhost'],
      host: c?.transport instanceof WsTransport ? c.transport.localAddress : '127.0.0.1',
      port: row['port'],
      peer_host: row['peer_host'],
      peer_port: row['peer_port'],
      protocol: row['protocol'],
      transport: ws ? 'websocket' : 'tcp',
      state: row['state'],
      channels: row['channels'],
      channel_max: row['channel_max'],
      frame_max: row['frame_max'],
      timeout: row['timeout'],
      client_properties: props,
      user_provided_name: typeof props['connection_name'] === 'string' ? props['connection_name'] : null,
      connected_at: row['connected_at'],
      recv_oct: row['recv_oct'],
      recv_oct_details: rate(rates.recv),
      send_oct: row['send_oct'],
      send_oct_details: rate(rates.send),
      recv_cnt: row['recv_cnt'],
      send_pend: c?.transport.bufferedBytes ?? 0,
      ssl: c?.transport.tls !== undefined,
      ssl_protocol: c?.transport.tls?.protocol ?? null,
      ssl_cipher: c?.transport.tls?.cipher ?? null,
      peer_cert_subject: c?.transport.peerCertificateName === undefined ? null : `CN=${c.transport.peerCertificateName}`,
      auth_mechanism: c?.authMechanism ?? '',
      blocked: c?.blockedSent ?? false,
    };
  });
}

export function channelItem(b: Broker, ch: Channel): Item {
  const c = ch.conn;
  return {
    name: `${c.name} (${ch.id})`,
    node: b.config.nodeName,
    number: ch.id,
    user: c.user?.name ?? '',
    vhost: c.vhostName,
    connection_details: { name: c.name, peer_host: c.transport.remoteAddress, peer_port: c.transport.remotePort },
    state: ch.state === 'open' ? (ch.clientFlow ? 'running' : 'flow') : ch.state,
    consumer_count: ch.consumers.size,
    prefetch_count: ch.prefetchCount,
    global_prefetch_count: ch.globalPrefetch,
    messages_unacknowledged: ch.unacked.size,
    messages_uncommitted: ch.txPublishes.length,
    acks_uncommitted: ch.txSettles.reduce((n, s) => n + s.refs.length, 0),
    confirm: ch.confirmMode,
    transactional: ch.txMode,
  };
}

export function channelItems(b: Broker): Item[] {
  const out: Item[] = [];
  for (const c of b.connections) for (const ch of c.channels.values()) out.push(channelItem(b, ch));
  return out;
}

export function consumerItems(b: Broker, vhosts: readonly string[]): Item[] {
  return vhosts
    .filter((v) => b.vhosts.has(v))
    .flatMap((v) =>
      listConsumers(b, v, ['queue_name', 'connection_name', 'channel', 'consumer_tag', 'ack_required', 'exclusive', 'prefetch_count', 'active', 'activity_status', 'arguments']).rows.map((r) => {
        const conn = connectionByName(b, String(r['connection_name']));
        return {
          consumer_tag: r['consumer_tag'],
          queue: { name: r['queue_name'], vhost: v },
          channel_details: {
            name: `${String(r['connection_name'])} (${String(r['channel'])})`,
            number: r['channel'],
            connection_name: r['connection_name'],
            peer_host: conn?.transport.remoteAddress ?? '',
            peer_port: conn?.transport.remotePort ?? 0,
            user: conn?.user?.name ?? '',
            node: b.config.nodeName,
          },
          ack_required: r['ack_required'],
          exclusive: r['exclusive'],
          prefetch_count: r['prefetch_count'],
          active: r['active'],
          activity_status: r['activity_status'],
          arguments: r['arguments'],
        };
      }),
    );
}

