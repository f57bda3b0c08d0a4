/**
 * Who may use the management API: HTTP basic auth against the broker's users, then
 * RabbitMQ's tag rules (rabbit_mgmt_util):
 *
 *   management    — may log in; sees and manages the vhosts it has permissions on, and only
 *                   its own connections and channels
 *   policymaker   — management, plus policies of its vhosts
 *   monitoring    — management, plus every vhost, connection and channel, node details
 *   administrator — everything: users, vhosts, permissions, definitions, closing any connection
 *
 * Resource operations (declare, delete, bind, publish, get) also need the user's AMQP
 * permissions (configure/write/read regexes) on the vhost, as over AMQP.
 */
import type { Broker } from '../front/broker.js';
import type { User } from '../front/users.js';
import { notAuthenticated, notAuthorised } from './http-errors.js';
import type { HttpRequest } from './http-types.js';

export function hasTag(u: User, ...tags: string[]): boolean {
  return u.tags.some((t) => tags.includes(t));
}
export const isAdmin = (u: User): boolean => hasTag(u, 'administrator');
export const isMonitor = (u: User): boolean => hasTag(u, 'administrator', 'monitoring');
export const isPolicymaker = (u: User): boolean => hasTag(u, 'administrator', 'policymaker');
export const isMgmtUser = (u: User): boolean => hasTag(u, 'administrator', 'monitoring', 'policymaker', 'management');

function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.') || address === 'localhost';
}

/** `Authorization: Basic base64(user:password)` → the credentials, or undefined. */
export function parseBasicAuth(header: string | undefined): { username: string; password: string } | undefined {
  if (header === undefined) return undefined;
  const m = /^basic\s+([A-Za-z0-9+/=_-]+)\s*$/i.exec(header);
  if (m === null) return undefined;
  const decoded = Buffer.from(m[1] ?? '', 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * The authenticated management user, or a 401 in RabbitMQ's words. The dashboard sends
 * X-Requested-With, and gets no WWW-Authenticate challenge so browsers do not pop up their
 * own login dialog over the page's.
 */
export function authenticate(broker: Broker, req: HttpRequest): User {
  const challenge = req.headers.get('x-requested-with') !== 'XMLHttpRequest';
  const creds = parseBasicAuth(req.headers.get('authorization'));
  if (creds === undefined) throw notAuthenticated(challenge);
  const user = broker.users.authenticate(creds.username, creds.password);
  if (user === undefined) {
    broker.log.warn(`HTTP access denied: user '${creds.username}' - invalid credentials (from ${req.remoteAddress})`);
    throw notAuthenticated(challenge);
  }
  if (broker.config.loopbackUsers.includes(user.name) && !isLoopback(req.remoteAddress)) {
    throw notAuthorised('User can only log in via localhost');
  }
  if (!isMgmtUser(user)) throw notAuthorised('Not management user');
  return user;
}

/** Vhosts whose contents the user sees in listings: all for monitors, else those it may log into. */
export function visibleVhosts(broker: Broker, u: User): string[] {
  const all = [...broker.vhosts.keys()];
  return isMonitor(u) ? all : all.filter((v) => u.permissions.has(v));
}

export function canSeeVhost(u: User, vhost: string): boolean {
  return isMonitor(u) || u.permissions.has(vhost);
}

/** Throws RabbitMQ's 401 unless the user may act in the vhost (administrators always may). */
export function requireVhostAccess(u: User, vhost: string): void {
  if (!isAdmin(u) && !u.permissions.has(vhost)) throw notAuthorised('User not authorised to access virtual host');
}

const patternCache = new Map<string, RegExp>();
/** Bound on the cache: permission patterns are few, but a hostile admin could set many. */
const patternCacheMax = 1000;

function permissionRegex(pattern: string): RegExp {
  let r = patternCache.get(pattern);
  if (r === undefined) {
    // As rabbit_access_control: unanchored regex; '' matches nothing.
    r = pattern === '' ? /(?!)/ : new RegExp(pattern);
    if (patternCache.size >= patternCacheMax) patternCache.clear();
    patternCache.set(pattern, r);
  }
  return r;
}

/** configure/write/read on a queue or exchange, with RabbitMQ's ACCESS_REFUSED text (as a 401). */
export function requirePermission(u: User, vhost: string, perm: 'configure' | 'write' | 'read', kind: 'queue' | 'exchange', name: string): void {
  const p = u.permissions.get(vhost);
  const resource = kind === 'exchange' && name === '' ? 'amq.default' : name;
  if (p !== undefined && permissionRegex(p[perm]).test(resource)) return;
  throw notAuthorised(`access to ${kind} '${resource}' in vhost '${vhost}' refused for user '${u.name}'`);
}
