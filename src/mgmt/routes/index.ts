/** Every route of the management API, in one table (see docs/management.md for the list). */
import type { Route } from '../router.js';
import { accessRoutes } from './access.js';
import { bindingRoutes } from './bindings.js';
import { connectionRoutes } from './connections.js';
import { definitionRoutes } from './definitions.js';
import { exchangeRoutes } from './exchanges.js';
import { healthRoutes } from './health.js';
import { latencyRoutes } from './latency.js';
import { nodeRoutes } from './nodes.js';
import { overviewRoutes } from './overview.js';
import { policyRoutes } from './policies.js';
import { queueRoutes } from './queues.js';

export const apiRoutes: readonly Route[] = [
  ...overviewRoutes,
  ...nodeRoutes,
  ...connectionRoutes,
  ...exchangeRoutes,
  ...queueRoutes,
  ...bindingRoutes,
  ...accessRoutes,
  ...policyRoutes,
  ...definitionRoutes,
  ...healthRoutes,
  ...latencyRoutes,
];
