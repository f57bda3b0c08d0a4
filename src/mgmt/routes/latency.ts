/**
 * GET /api/latency (warren's own; see docs/management.md): the broker's HDR latency
 * histograms — per stage (publish_to_confirm, ring_transit, fsync, enqueue_to_deliver, ...)
 * merged over the front and every shard, and per queue — as summaries and percentile curves.
 */
import { latencyViews } from '../hdr-view.js';
import { json, type Reply } from '../http-types.js';
import type { Ctx, Route } from '../router.js';

async function latency(ctx: Ctx): Promise<Reply> {
  const exports = await ctx.b.collectLatency();
  const { stages, queues } = latencyViews(exports);
  const stage = ctx.req.query.get('stage');
  const queue = ctx.req.query.get('queue');
  return json(200, {
    node: ctx.b.config.nodeName,
    unit: 'microseconds',
    collected_at: Date.now(),
    stages: stages.filter((s) => stage === null || s.stage === stage),
    queues: queues.filter((q) => (stage === null || q.stage === stage) && (queue === null || q.queue === queue)),
  });
}

export const latencyRoutes: Route[] = [{ path: '/api/latency', methods: { GET: { access: 'monitor', run: latency } } }];
