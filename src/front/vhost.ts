import { ExchangeGraph } from '../routing/exchange-graph.js';
import type { QueueMeta } from './queue-meta.js';

/** One virtual host as the front sees it: its exchange graph and its queues (metadata only). */
export class VHost {
  readonly graph = new ExchangeGraph();
  readonly queues = new Map<string, QueueMeta>();
  constructor(readonly name: string) {}

  /** The default exchange routes to a queue by name if it exists. */
  readonly queueExists = (name: string): boolean => this.queues.has(name);
}
