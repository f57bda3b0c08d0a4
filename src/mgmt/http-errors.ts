/**
 * The management API's error answers, in the shapes RabbitMQ's management plugin gives
 * them (rabbit_mgmt_util:halt_response and cowboy's defaults):
 *
 *   401 {"error":"not_authorized","reason":"Not_Authorized"}   bad or missing credentials (+ WWW-Authenticate)
 *   401 {"error":"not_authorised","reason":"Not administrator user"}   logged in, but the tag or vhost is missing
 *   404 {"error":"Object Not Found","reason":"Not Found"}          unknown vhost, queue, exchange, path
 *   400 {"error":"bad_request","reason":"..."}                     malformed body or parameters
 */
import { AmqpError } from '../amqp/errors.js';
import { ReplyCode } from '../amqp/spec.generated.js';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly reason: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(`${status} ${error}: ${reason}`);
  }
}

/** RabbitMQ's realm; clients match on the scheme, browsers show the realm. */
export const authRealm = 'Basic realm="RabbitMQ Management"';

export function badRequest(reason: string): HttpError {
  return new HttpError(400, 'bad_request', reason);
}

export function notFound(): HttpError {
  return new HttpError(404, 'Object Not Found', 'Not Found');
}

/** Credentials missing or wrong. `challenge` = false for the dashboard's own requests (no browser login prompt). */
export function notAuthenticated(challenge: boolean): HttpError {
  return new HttpError(401, 'not_authorized', 'Not_Authorized', challenge ? { 'WWW-Authenticate': authRealm } : {});
}

/** Logged in, but not allowed (RabbitMQ answers 401 here too, not 403; see docs/management.md). */
export function notAuthorised(reason: string): HttpError {
  return new HttpError(401, 'not_authorised', reason);
}

export function methodNotAllowed(allowed: readonly string[]): HttpError {
  return new HttpError(405, 'method_not_allowed', `allowed: ${allowed.join(', ')}`, { Allow: allowed.join(', ') });
}

/**
 * An AMQP error raised by a check the API shares with the AMQP face, as the management
 * plugin maps a closed channel: 403 ACCESS_REFUSED → 401 not_authorised, 404 NOT_FOUND →
 * 404, anything else (406 PRECONDITION_FAILED, 405 RESOURCE_LOCKED, ...) → 400 bad_request.
 * The reply text loses its "CODE - " prefix, as RabbitMQ's reasons read.
 */
export function fromAmqpError(err: AmqpError): HttpError {
  const text = err.replyText.replace(/^[A-Z_]+ - /, '');
  if (err.replyCode === ReplyCode.accessRefused) return notAuthorised(text);
  if (err.replyCode === ReplyCode.notFound) return new HttpError(404, 'not_found', text);
  return badRequest(text);
}
