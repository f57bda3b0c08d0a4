/** Helpers the route handlers share: the request body, typed fields, the vhost in the path. */
import type { QueueMeta } from '../../front/queue-meta.js';
import type { VHost } from '../../front/vhost.js';
import { visibleVhosts } from '../auth.js';
import { HttpError, badRequest, notFound } from '../http-errors.js';
import type { HttpRequest } from '../http-types.js';
import type { Ctx } from '../router.js';

export type JsonObject = Record<string, unknown>;

/**
 * The body as a JSON object, as RabbitMQ decodes it: an empty body (or `null`) is {}; any
 * content type is read as JSON (curl -d sends form-urlencoded), except multipart uploads.
 */
export function jsonBody(req: HttpRequest): JsonObject {
  const contentType = req.headers.get('content-type') ?? '';
  if (/^multipart\//i.test(contentType)) {
    throw new HttpError(415, 'unsupported_media_type', `cannot read a ${contentType.split(';')[0] ?? ''} body: send the JSON document itself`);
  }
  const text = req.body.toString('utf8').trim();
  if (text === '' || text === 'null' || text === 'undefined') return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw badRequest(`invalid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (typeof v === 'string') throw badRequest('invalid payload: the request body JSON-decoded to a string. Is the input doubly-JSON-encoded?');
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw badRequest('invalid payload: the request body must be a JSON object');
  return v as JsonObject;
}

export function field(o: JsonObject, key: string): unknown {
  return Object.hasOwn(o, key) ? o[key] : undefined;
}

export function boolField(o: JsonObject, key: string, fallback: boolean): boolean {
  const v = field(o, key);
  if (v === undefined || v === null) return fallback;
  if (v === true || v === 'true') return true;
  if (v === false || v === 'false') return false;
  throw badRequest(`${key} must be true or false, got ${JSON.stringify(v)}`);
}

export function stringField(o: JsonObject, key: string, fallback?: string): string {
  const v = field(o, key);
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw badRequest(`key_missing: ${key}`);
  }
  if (typeof v !== 'string') throw badRequest(`${key} must be a string, got ${JSON.stringify(v)}`);
  return v;
}

export function intField(o: JsonObject, key: string, min: number, max: number, fallback?: number): number {
  const v = field(o, key);
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw badRequest(`key_missing: ${key}`);
  }
  const n = typeof v === 'string' && /^-?[0-9]+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min || n > max) {
    throw badRequest(`${key} must be an integer between ${min} and ${max}, got ${JSON.stringify(v)}`);
  }
  return n;
}

/** A query flag such as if-unused=true. */
export function queryFlag(req: HttpRequest, name: string): boolean {
  return req.query.get(name) === 'true';
}

/** The :vhost of the path, or 404. */
export function vhostParam(ctx: Ctx): VHost {
  const name = ctx.params['vhost'] ?? '';
  const v = ctx.b.vhosts.get(name);
  if (v === undefined) throw notFound();
  return v;
}

/** The vhosts a listing covers: the one in the path (404 if unknown), else all the user sees. */
export function listedVhosts(ctx: Ctx): string[] {
  if (ctx.params['vhost'] !== undefined) return [vhostParam(ctx).name];
  return visibleVhosts(ctx.b, ctx.user);
}

/** The :queue of the path in vhost v, or 404 (as RabbitMQ's resource_exists). */
export function queueParam(ctx: Ctx, v: VHost): QueueMeta {
  const q = v.queues.get(ctx.params['queue'] ?? '');
  if (q === undefined) throw notFound();
  return q;
}
