/**
 * /api/definitions: export (GET) and import (POST) in RabbitMQ's format, node-wide or for
 * one vhost (then only its queues, exchanges, bindings and policies, without vhost fields
 * on export, and taking the path's vhost on import, as RabbitMQ does).
 */
import type { Definitions } from '../../front/definitions.js';
import { exportAllDefinitions, importAllDefinitions } from '../admin-commands.js';
import { json, noContent, type Reply } from '../http-types.js';
import type { Ctx, Route } from '../router.js';
import { jsonBody, vhostParam } from './common.js';

function vhostExport(all: Definitions, vhost: string): Record<string, unknown> {
  const strip = <T extends { vhost: string }>(list: T[] | undefined): Omit<T, 'vhost'>[] =>
    (list ?? []).filter((x) => x.vhost === vhost).map(({ vhost: _v, ...rest }) => rest);
  return {
    rabbit_version: all.rabbit_version,
    rabbitmq_version: all.rabbitmq_version,
    product_name: all.product_name,
    product_version: all.product_version,
    parameters: [],
    policies: strip(all.policies),
    queues: strip(all.queues),
    exchanges: strip(all.exchanges),
    bindings: strip(all.bindings),
  };
}

/** Puts the path's vhost on every vhost-scoped entry of a document. */
function intoVhost(d: Record<string, unknown>, vhost: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of ['policies', 'queues', 'exchanges', 'bindings']) {
    const list = d[key];
    if (Array.isArray(list)) out[key] = list.map((x: unknown) => (typeof x === 'object' && x !== null ? { ...x, vhost } : x));
  }
  return out;
}

function download(ctx: Ctx, name: string): Record<string, string> {
  // ?download=FILE makes browsers save the export, as RabbitMQ's UI link does.
  const file = ctx.req.query.get('download');
  return file === null ? {} : { 'Content-Disposition': `attachment; filename="${(file === '' ? name : file).replace(/[^A-Za-z0-9._-]/g, '_')}"` };
}

export const definitionRoutes: Route[] = [
  {
    path: '/api/definitions',
    methods: {
      GET: { access: 'admin', run: (ctx): Reply => json(200, exportAllDefinitions(ctx.b), download(ctx, 'definitions.json')) },
      POST: { access: 'admin', run: async (ctx) => (await importAllDefinitions(ctx.b, jsonBody(ctx.req)), noContent()) },
    },
  },
  {
    path: '/api/definitions/:vhost',
    methods: {
      GET: { access: 'admin', run: (ctx): Reply => json(200, vhostExport(exportAllDefinitions(ctx.b), vhostParam(ctx).name), download(ctx, 'definitions.json')) },
      POST: { access: 'admin', run: async (ctx) => (await importAllDefinitions(ctx.b, intoVhost(jsonBody(ctx.req), vhostParam(ctx).name)), noContent()) },
    },
  },
];
