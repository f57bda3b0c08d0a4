/**
 * The management API's route table: one flat list of path patterns (`:name` segments are
 * parameters), each with a handler per method and the access rule it needs. Paths are split
 * on '/' before percent-decoding, so a vhost '/' arrives as the segment `%2F`.
 */
import type { Broker } from '../front/broker.js';
import type { User } from '../front/users.js';
import type { Logger } from '../node/logger.js';
import { badRequest } from './http-errors.js';
import type { HttpRequest, Reply } from './http-types.js';
import type { NodeFacts } from './node-facts.js';
import type { StatsSampler } from './stats-sampler.js';

/** The node-wide state handlers read. */
export interface Mgmt {
  readonly broker: Broker;
  readonly sampler: StatsSampler;
  readonly facts: NodeFacts;
  readonly log: Logger;
}

export interface Ctx {
  readonly m: Mgmt;
  readonly b: Broker;
  readonly req: HttpRequest;
  readonly user: User;
  readonly params: Readonly<Record<string, string>>;
}

/**
 * Who may call an endpoint (RabbitMQ's is_authorized_* family):
 *   mgmt     any management user        monitor  monitoring or administrator
 *   admin    administrator              vhost    administrator, or permissions on :vhost
 *   vhostSee like vhost, monitors too   policies administrator, or policymaker on :vhost
 */
export type Access = 'mgmt' | 'monitor' | 'admin' | 'vhost' | 'vhostSee' | 'policies';

export interface Endpoint {
  readonly access: Access;
  run(ctx: Ctx): Reply | Promise<Reply>;
}

export type Method = 'GET' | 'PUT' | 'POST' | 'DELETE';

export interface Route {
  readonly path: string;
  readonly methods: Partial<Record<Method, Endpoint>>;
}

interface CompiledRoute {
  readonly segments: readonly string[];
  readonly route: Route;
}

/** Exchange names in paths: RabbitMQ spells the default exchange 'amq.default'. */
const exchangeParams = new Set(['exchange', 'source', 'destination']);

export class Router {
  private readonly routes: CompiledRoute[];

  constructor(routes: readonly Route[]) {
    this.routes = routes.map((route) => ({ route, segments: route.path.split('/').slice(1) }));
  }

  /** The route and its decoded parameters; undefined when no pattern fits. */
  match(segments: readonly string[]): { route: Route; params: Record<string, string> } | undefined {
    for (const c of this.routes) {
      if (c.segments.length !== segments.length) continue;
      const params: Record<string, string> = Object.create(null) as Record<string, string>;
      let ok = true;
      for (let i = 0; i < segments.length && ok; i++) {
        const pattern = c.segments[i] as string;
        const actual = segments[i] as string;
        if (pattern.startsWith(':')) {
          const name = pattern.slice(1);
          params[name] = exchangeParams.has(name) && actual === 'amq.default' ? '' : actual;
        } else ok = pattern === actual;
      }
      if (ok) return { route: c.route, params };
    }
    return undefined;
  }
}

/**
 * Splits a raw path into decoded segments. Refuses what could walk out of the tree if a
 * proxy or a later change joined segments into a file path: a segment that is or decodes to
 * '.' or '..', an encoded NUL, malformed percent-escapes.
 */
export function splitPath(rawPath: string): string[] {
  const parts = rawPath.split('/').slice(1);
  if (parts.length > 0 && parts[parts.length - 1] === '') parts.pop(); // a trailing slash
  return parts.map((p) => {
    let s: string;
    try {
      s = decodeURIComponent(p);
    } catch {
      throw badRequest(`malformed percent-encoding in path segment '${p}'`);
    }
    if (s === '.' || s === '..') throw badRequest('path traversal is not allowed');
    if (s.includes('\u0000')) throw badRequest('NUL is not allowed in a path');
    return s;
  });
}
