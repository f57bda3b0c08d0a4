/**
 * The node's HTTP faces on uWebSockets.js, in the main thread: the management API and
 * dashboard, Prometheus /metrics, and AMQP 0-9-1 over WebSocket. One entry, called by
 * node.ts once the AMQP listener is up. A listener that cannot bind is logged as an error
 * and left out (as the admin socket): the broker's AMQP service does not depend on it.
 */
import uWS from 'uWebSockets.js';
import type { Broker } from '../front/broker.js';
import type { ListenerPort } from '../node/config.js';
import type { Logger } from '../node/logger.js';
import { createApiHandler } from './api.js';
import { DashboardFiles } from './dashboard-files.js';
import { listen, serveAll, type Listener } from './http-server.js';
import { NodeFacts, type RingGauge } from './node-facts.js';
import { PrometheusMetrics } from './prometheus.js';
import type { Mgmt } from './router.js';
import { StatsSampler } from './stats-sampler.js';
import { createWsApp, wsPath } from './ws-listener.js';

/** A request body past this is refused with 413 (the connection is closed, nothing is buffered beyond it). */
export const bodyBytesMax = 8 * 1024 * 1024;
/** Definitions of a large RabbitMQ setup run to tens of MB; the admin socket takes 64 MiB too. */
export const definitionsBodyBytesMax = 64 * 1024 * 1024;

export interface ManagementOptions {
  host: string;
  mgmtPort: ListenerPort;
  prometheusPort: ListenerPort;
  wsPort: ListenerPort;
  dataDir: string;
  amqp: { host: string; port: number; tlsPort?: number | undefined };
  /** Rings the broker does not hold (shard→front readers), for the ring gauges. */
  rings?: readonly RingGauge[];
}

export interface Management {
  /** Bound ports; undefined when off or when the port could not be bound. */
  readonly mgmtPort: number | undefined;
  readonly prometheusPort: number | undefined;
  readonly wsPort: number | undefined;
  /** The dashboard's URL, for the startup log line. */
  readonly url: string | undefined;
  close(): void;
}

function hostInUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

async function tryListen(start: () => Promise<Listener>, log: Logger): Promise<Listener | undefined> {
  try {
    return await start();
  } catch (err) {
    log.error(err instanceof Error ? err.message : String(err));
    return undefined;
  }
}

export async function startManagement(broker: Broker, opts: ManagementOptions, log: Logger): Promise<Management> {
  const facts = new NodeFacts(broker, opts.dataDir, opts.rings ?? []);
  facts.listeners.push({ protocol: 'amqp', port: opts.amqp.port, ip: opts.amqp.host });
  // RabbitMQ's name for its TLS listener.
  if (opts.amqp.tlsPort !== undefined) facts.listeners.push({ protocol: 'amqp/ssl', port: opts.amqp.tlsPort, ip: opts.amqp.host });
  const sampler = new StatsSampler(broker);
  const m: Mgmt = { broker, sampler, facts, log };
  const host = opts.host;
  const listeners: Listener[] = [];
  const urlOf = (port: number, path = ''): string => `http://${hostInUrl(host)}:${port}${path}`;

  let mgmtPort: number | undefined;
  if (opts.mgmtPort !== 'off') {
    const app = uWS.App();
    const maxBody = (path: string): number => (path.startsWith('/api/definitions') ? definitionsBodyBytesMax : bodyBytesMax);
    serveAll(app, createApiHandler(m, new DashboardFiles(log)), maxBody, log);
    const port = opts.mgmtPort;
    const l = await tryListen(() => listen(app, host, port, 'management'), log);
    if (l !== undefined) {
      listeners.push(l);
      mgmtPort = l.port;
      facts.listeners.push({ protocol: 'http', port: l.port, ip: host });
      log.info(`management listening on ${urlOf(l.port)}`);
    }
  }

  let prometheusPort: number | undefined;
  if (opts.prometheusPort !== 'off') {
    const app = uWS.App();
    const metrics = new PrometheusMetrics(m);
    serveAll(
      app,
      async (req) => {
        if (req.rawPath !== '/metrics') return { status: 404, raw: { contentType: 'text/plain', data: 'metrics are at /metrics\n' } };
        if (req.method !== 'GET') return { status: 405, raw: { contentType: 'text/plain', data: 'GET only\n' }, headers: { Allow: 'GET' } };
        return { status: 200, raw: { contentType: metrics.contentType, data: await metrics.scrape() } };
      },
      () => 0,
      log,
    );
    const port = opts.prometheusPort;
    const l = await tryListen(() => listen(app, host, port, 'prometheus'), log);
    if (l !== undefined) {
      listeners.push(l);
      prometheusPort = l.port;
      facts.listeners.push({ protocol: 'http/prometheus', port: l.port, ip: host });
      log.info(`prometheus listening on ${urlOf(l.port, '/metrics')}`);
    }
  }

  let wsPort: number | undefined;
  if (opts.wsPort !== 'off') {
    const app = createWsApp(broker, host, () => wsPort ?? 0, log);
    const port = opts.wsPort;
    const l = await tryListen(() => listen(app, host, port, 'amqp-over-websocket'), log);
    if (l !== undefined) {
      listeners.push(l);
      wsPort = l.port;
      facts.listeners.push({ protocol: 'http/web-amqp', port: l.port, ip: host });
      log.info(`amqp-over-websocket listening on ws://${hostInUrl(host)}:${l.port}${wsPath}`);
    }
  }

  // Rates feed the API and the metrics; with neither listening there is nothing to sample for.
  if (mgmtPort !== undefined || prometheusPort !== undefined) sampler.start();
  return {
    mgmtPort,
    prometheusPort,
    wsPort,
    url: mgmtPort === undefined ? undefined : urlOf(mgmtPort, '/'),
    close: () => {
      sampler.stop();
      for (const l of listeners) l.close();
    },
  };
}
