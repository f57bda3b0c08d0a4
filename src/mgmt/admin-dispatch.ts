/**
 * The admin protocol's request → command table. A request names a rabbitmqctl command with
 * its positional arguments (and the vhost, options and definitions document where the
 * command takes them); the reply carries either a listing (columns + rows), a result
 * document, or nothing. One flat table, one short handler per command.
 */
import {
  AdminError, ExitCode, addUser, addVhost, authenticateUser, changePassword, clearPassword, clearPermissions, clearPolicy, closeConnection,
  deleteUser, deleteVhost, exportAllDefinitions, hashUserPassword, importAllDefinitions, listBindings, listConnections, listConsumers,
  listAlarms, listExchanges, listPermissions, listPolicies, listQueues, listUserPermissions, listUsers, listVhosts, setDiskFreeLimit, setPermissions, setPolicy,
  setUserTags, setVmMemoryHighWatermark,
  type Listing,
} from './admin-commands.js';
import type { Broker } from '../front/broker.js';
import { addMember, clusterStatus, deleteMember, forgetClusterNode, growNode, joinClusterNode, shrinkNode } from './cluster-ops.js';
import { latencyColumns, latencyRows } from './latency-report.js';

/** One request line on the admin socket. */
export interface AdminRequest {
  cmd: string;
  args?: string[];
  /** -p VHOST; '/' when absent. */
  vhost?: string;
  /** The client's output format; the node answers the same data either way. */
  formatter?: string;
  /** Command options: set_policy's priority and apply-to, latency's queue, grow's patterns, grow's and shrink's errors-only. */
  options?: { priority?: number; 'apply-to'?: string; queue?: string; 'vhost-pattern'?: string; 'queue-pattern'?: string; 'errors-only'?: boolean };
  /** import_definitions: the parsed definitions document. */
  definitions?: unknown;
}

export type AdminReply =
  | { ok: true; columns?: string[]; rows?: Record<string, unknown>[]; result?: unknown }
  | { ok: false; error: string; exitCode: number };

type Handler = (b: Broker, args: string[], req: AdminRequest, vhost: string) => Promise<AdminReply | undefined> | AdminReply | undefined;

interface Command {
  /** Positional arguments: at least min, at most max (Infinity for column lists and tag lists). */
  min: number;
  max: number;
  run: Handler;
}

const listing = (l: Listing): AdminReply => ({ ok: true, columns: l.columns, rows: l.rows });
/** A command's line for the operator, if it has one. */
const result = (line: string | undefined): AdminReply => (line === undefined ? { ok: true } : { ok: true, result: line });
const arg = (args: string[], i: number): string => args[i] ?? '';

/** rabbitmqctl's commands that warrenctl supports. */
export const adminCommands: Record<string, Command> = {
  ping: { min: 0, max: 0, run: () => ({ ok: true, result: 'pong' }) },
  /** warren's own: the broker's HDR latency histograms; with --queue, that queue's full distribution. */
  latency: {
    min: 0,
    max: 0,
    run: async (b, _a, req) => {
      const queue = req.options?.queue;
      const rows = await latencyRows(b, queue === undefined ? {} : { queue, distributions: true });
      if (queue !== undefined && rows.length === 0) {
        return { ok: false, error: `Error: no latency recorded for queue '${queue}' (no deliveries yet, or no such queue)`, exitCode: ExitCode.dataErr };
      }
      if (queue !== undefined && req.formatter !== 'json') {
        return { ok: true, result: rows.map((r) => `# ${r.stage} ${r.queue} (values in ms)\n${r.distribution ?? ''}`).join('\n') };
      }
      return { ok: true, columns: latencyColumns, rows: rows.map((r) => ({ ...r })) };
    },
  },
  add_user: { min: 2, max: 2, run: async (b, a) => void (await addUser(b, arg(a, 0), arg(a, 1))) },
  delete_user: { min: 1, max: 1, run: async (b, a) => void (await deleteUser(b, arg(a, 0))) },
  change_password: { min: 2, max: 2, run: async (b, a) => void (await changePassword(b, arg(a, 0), arg(a, 1))) },
  clear_password: { min: 1, max: 1, run: async (b, a) => void (await clearPassword(b, arg(a, 0))) },
  authenticate_user: { min: 2, max: 2, run: (b, a) => void authenticateUser(b, arg(a, 0), arg(a, 1)) },
  set_user_tags: { min: 1, max: Infinity, run: async (b, a) => void (await setUserTags(b, arg(a, 0), a.slice(1))) },
  list_users: { min: 0, max: 0, run: (b) => listing(listUsers(b)) },
  add_vhost: { min: 1, max: 1, run: async (b, a) => void (await addVhost(b, arg(a, 0))) },
  delete_vhost: { min: 1, max: 1, run: async (b, a) => void (await deleteVhost(b, arg(a, 0))) },
  list_vhosts: { min: 0, max: Infinity, run: (b, a) => listing(listVhosts(b, a.length > 0 ? a : undefined)) },
  set_permissions: {
    min: 4,
    max: 4,
    run: async (b, a, _r, vhost) => void (await setPermissions(b, vhost, arg(a, 0), arg(a, 1), arg(a, 2), arg(a, 3))),
  },
  clear_permissions: { min: 1, max: 1, run: async (b, a, _r, vhost) => void (await clearPermissions(b, vhost, arg(a, 0))) },
  list_permissions: { min: 0, max: 0, run: (b, _a, _r, vhost) => listing(listPermissions(b, vhost)) },
  list_user_permissions: { min: 1, max: 1, run: (b, a) => listing(listUserPermissions(b, arg(a, 0))) },
  set_policy: {
    min: 3,
    max: 3,
    run: async (b, a, r, vhost) => {
      const priority = r.options?.priority;
      const applyTo = r.options?.['apply-to'];
      await setPolicy(b, {
        vhost,
        name: arg(a, 0),
        pattern: arg(a, 1),
        definition: arg(a, 2),
        ...(priority === undefined ? {} : { priority }),
        ...(applyTo === undefined ? {} : { applyTo }),
      });
      return undefined;
    },
  },
  clear_policy: { min: 1, max: 1, run: async (b, a, _r, vhost) => void (await clearPolicy(b, vhost, arg(a, 0))) },
  list_policies: { min: 0, max: 0, run: (b, _a, _r, vhost) => listing(listPolicies(b, vhost)) },
  list_queues: { min: 0, max: Infinity, run: async (b, a, _r, vhost) => listing(await listQueues(b, vhost, a.length > 0 ? a : undefined)) },
  list_exchanges: { min: 0, max: Infinity, run: (b, a, _r, vhost) => listing(listExchanges(b, vhost, a.length > 0 ? a : undefined)) },
  list_bindings: { min: 0, max: Infinity, run: (b, a, _r, vhost) => listing(listBindings(b, vhost, a.length > 0 ? a : undefined)) },
  list_connections: { min: 0, max: Infinity, run: (b, a) => listing(listConnections(b, a.length > 0 ? a : undefined)) },
  list_consumers: { min: 0, max: Infinity, run: (b, a, _r, vhost) => listing(listConsumers(b, vhost, a.length > 0 ? a : undefined)) },
  close_connection: { min: 2, max: 2, run: (b, a) => void closeConnection(b, arg(a, 0), arg(a, 1)) },
  export_definitions: { min: 0, max: 0, run: (b) => ({ ok: true, result: exportAllDefinitions(b) }) },
  import_definitions: { min: 0, max: 0, run: async (b, _a, r) => void (await importAllDefinitions(b, r.definitions)) },
  hash_password: { min: 1, max: 1, run: (_b, a) => ({ ok: true, result: hashUserPassword(arg(a, 0)) }) },
  /** Resource alarms (resource-alarms.ts): the limits change at once; `alarms` lists what blocks publishers. */
  set_vm_memory_high_watermark: { min: 1, max: 2, run: async (b, a) => result(await setVmMemoryHighWatermark(b, a)) },
  set_disk_free_limit: { min: 1, max: 2, run: async (b, a) => result(await setDiskFreeLimit(b, a)) },
  alarms: { min: 0, max: 0, run: (b) => listing(listAlarms(b)) },
  /** The status document (cluster-ops.ts ClusterStatusDoc); warrenctl renders it as text or prints it as JSON. */
  cluster_status: { min: 0, max: 0, run: async (b) => ({ ok: true, result: await clusterStatus(b) }) },
  /** Answers nothing, or a line per replicated queue that still names the node (cluster-ops.ts). */
  forget_cluster_node: { min: 1, max: 1, run: async (b, a) => result(await forgetClusterNode(b, arg(a, 0))) },
  /** rabbitmq-queues' replica commands, on replicated queues (quorum and mirrored). */
  add_member: { min: 2, max: 2, run: async (b, a, _r, vhost) => result(await addMember(b, vhost, arg(a, 0), arg(a, 1))) },
  delete_member: { min: 2, max: 2, run: async (b, a, _r, vhost) => result(await deleteMember(b, vhost, arg(a, 0), arg(a, 1))) },
  grow: {
    min: 2,
    max: 2,
    run: async (b, a, r) =>
      listing(await growNode(b, arg(a, 0), arg(a, 1), { vhostPattern: r.options?.['vhost-pattern'], queuePattern: r.options?.['queue-pattern'], errorsOnly: r.options?.['errors-only'] })),
  },
  shrink: { min: 1, max: 1, run: async (b, a, r) => listing(await shrinkNode(b, arg(a, 0), { errorsOnly: r.options?.['errors-only'] })) },
  /** warren's join_cluster re-admits a forgotten NODE (see docs/warrenctl.md); answers a line for the operator. */
  join_cluster: { min: 1, max: 1, run: async (b, a) => ({ ok: true, result: await joinClusterNode(b, arg(a, 0)) }) },
};

/** Runs one request; never throws (errors become { ok: false } replies). */
export async function dispatchAdminRequest(b: Broker, req: AdminRequest): Promise<AdminReply> {
  const command = typeof req.cmd === 'string' ? adminCommands[req.cmd] : undefined;
  if (command === undefined || !Object.hasOwn(adminCommands, req.cmd)) {
    return { ok: false, error: `Error: could not recognise command '${String(req.cmd)}'`, exitCode: ExitCode.usage };
  }
  const args = Array.isArray(req.args) ? req.args.map(String) : [];
  if (args.length < command.min) return { ok: false, error: 'Error (argument validation): not enough arguments.', exitCode: ExitCode.usage };
  if (args.length > command.max) return { ok: false, error: 'Error (argument validation): too many arguments.', exitCode: ExitCode.usage };
  const vhost = typeof req.vhost === 'string' ? req.vhost : '/';
  try {
    return (await command.run(b, args, req, vhost)) ?? { ok: true };
  } catch (err) {
    if (err instanceof AdminError) return { ok: false, error: err.message, exitCode: err.exitCode };
    return { ok: false, error: `Error: ${err instanceof Error ? err.message : String(err)}`, exitCode: ExitCode.software };
  }
}
