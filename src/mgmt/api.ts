/**
 * The management listener's request handler: the dashboard's files, then /api/... through
 * the route table — match, method, authenticate, access rule, handler — with every failure
 * answered in RabbitMQ's error shapes (http-errors.ts).
 */
import { AmqpError } from '../amqp/errors.js';
import type { Broker } from '../front/broker.js';
import type { User } from '../front/users.js';
import { AdminError, ExitCode } from './admin-commands.js';
import { authenticate, isAdmin, isMonitor, isPolicymaker } from './auth.js';
import type { DashboardFiles } from './dashboard-files.js';
import { HttpError, badRequest, fromAmqpError, methodNotAllowed, notAuthorised, notFound } from './http-errors.js';
import type { RequestHandler } from './http-server.js';
import type { HttpRequest, Reply } from './http-types.js';
import { Router, splitPath, type Access, type Method, type Mgmt } from './router.js';
import { apiRoutes } from './routes/index.js';

function checkAccess(access: Access, user: User, params: Readonly<Record<string, string>>, b: Broker): void {
  const vhost = params['vhost'];
  // An unknown vhost passes here and is a 404 in the handler (RabbitMQ's resource_exists).
  const inVhost = vhost === undefined || !b.vhosts.has(vhost) || user.permissions.has(vhost);
  switch (access) {
    case 'mgmt':
      return;
    case 'monitor':
      if (!isMonitor(user)) throw notAuthorised('Not monitor user');
      return;
    case 'admin':
      if (!isAdmin(user)) throw notAuthorised('Not administrator user');
      return;
    case 'vhost':
      if (!isAdmin(user) && !inVhost) throw notAuthorised('User not authorised to access virtual host');
      return;
    case 'vhostSee':
      if (!isMonitor(user) && !inVhost) throw notAuthorised('User not authorised to access virtual host');
      return;
    case 'policies':
      if (!isAdmin(user) && !(isPolicymaker(user) && inVhost)) throw notAuthorised('User not authorised to access object');
      return;
  }
}

function errorReply(e: HttpError): Reply {
  return { status: e.status, json: { error: e.error, reason: e.reason }, headers: e.headers };
}

/** Errors the handlers raise → RabbitMQ's answers; anything else is a bug, rethrown (500). */
function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof AmqpError) return fromAmqpError(err);
  if (err instanceof AdminError) {
    if (err.exitCode === ExitCode.noUser || /does not exist/.test(err.message)) return notFound();
    return badRequest(err.message.replace(/^Validation failed\n\n/, ''));
  }
  throw err;
}

export function createApiHandler(m: Mgmt, dashboard: DashboardFiles): RequestHandler {
  const router = new Router(apiRoutes);
  return async (req: HttpRequest): Promise<Reply> => {
    try {
      const segments = splitPath(req.rawPath);
      if (segments[0] !== 'api') return dashboard.serve(req, segments);
      const found = router.match(segments);
      if (found === undefined) throw notFound();
      const allowed = Object.keys(found.route.methods);
      if (req.method === 'OPTIONS') return { status: 204, headers: { Allow: [...allowed, 'OPTIONS'].join(', ') } };
      const methods = found.route.methods as Record<string, (typeof found.route.methods)[Method]>;
      const endpoint = Object.hasOwn(methods, req.method) ? methods[req.method] : undefined;
      if (endpoint === undefined) throw methodNotAllowed(allowed);
      const user = authenticate(m.broker, req);
      checkAccess(endpoint.access, user, found.params, m.broker);
      return await endpoint.run({ m, b: m.broker, req, user, params: found.params });
    } catch (err) {
      return errorReply(toHttpError(err));
    }
  };
}
