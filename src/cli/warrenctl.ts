#!/usr/bin/env node
/**
 * `warrenctl`: rabbitmqctl's commands for a running warren node, over the node's admin socket.
 *
 *   warrenctl [--data-dir DIR | -n/--socket PATH] [-p VHOST] [--formatter json] [-q] [-s] COMMAND [ARGS...]
 *
 * The socket is DATA_DIR/warren.sock: --socket PATH names it directly, --data-dir DIR (or
 * WARREN_DATA_DIR) names the node's data directory, and ./data/warren.sock (the node's
 * default data directory) is used otherwise. Output is rabbitmqctl's: a banner line
 * ("Listing queues for vhost / ..."; left out with -q), then tab-separated columns with a
 * header line (left out with -s or --no-table-headers); --formatter json prints the rows as
 * a JSON array. Errors go to stderr as "Error:" and a message, with rabbitmqctl's exit codes.
 */
import { createConnection } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { adminSocketName } from '../mgmt/admin-socket.js';
import type { AdminReply, AdminRequest } from '../mgmt/admin-dispatch.js';
import type { ClusterStatusDoc } from '../mgmt/cluster-ops.js';
import { clusterStatusText } from '../mgmt/cluster-status-text.js';

const exitUsage = 64;
const exitDataErr = 65;
const exitUnavailable = 69;
const exitTempFail = 75;
/** rabbitmqctl's default operation timeout. */
const defaultTimeoutS = 60;

interface Options {
  socket: string | undefined;
  dataDir: string | undefined;
  vhost: string;
  formatter: 'table' | 'json';
  quiet: boolean;
  silent: boolean;
  tableHeaders: boolean;
  priority: number | undefined;
  applyTo: string | undefined;
  queue: string | undefined;
  vhostPattern: string | undefined;
  queuePattern: string | undefined;
  errorsOnly: boolean;
  timeoutS: number;
  help: boolean;
  positionals: string[];
}

class UsageError extends Error {}

const valueFlags: Record<string, keyof Options> = {
  '--data-dir': 'dataDir',
  '-n': 'socket',
  '--socket': 'socket',
  '-p': 'vhost',
  '--vhost': 'vhost',
  '--formatter': 'formatter',
  '--priority': 'priority',
  '--apply-to': 'applyTo',
  '--queue': 'queue',
  '--vhost-pattern': 'vhostPattern',
  '--queue-pattern': 'queuePattern',
  '-t': 'timeoutS',
  '--timeout': 'timeoutS',
};

function parseArgv(argv: string[]): Options {
  const o: Options = {
    socket: undefined,
    dataDir: process.env['WARREN_DATA_DIR'],
    vhost: '/',
    formatter: 'table',
    quiet: false,
    silent: false,
    tableHeaders: true,
    priority: undefined,
    applyTo: undefined,
    queue: undefined,
    vhostPattern: undefined,
    queuePattern: undefined,
    errorsOnly: false,
    timeoutS: defaultTimeoutS,
    help: false,
    positionals: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') {
      o.positionals.push(...argv.slice(i + 1));
      break;
    }
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const flag = eq > 0 ? a.slice(0, eq) : a;
    const key = valueFlags[flag];
    if (key !== undefined) {
      const value = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (value === undefined) throw new UsageError(`option ${flag} needs a value`);
      setOption(o, key, flag, value);
    } else if (a === '-q' || a === '--quiet') o.quiet = true;
    else if (a === '-s' || a === '--silent') o.silent = true;
    else if (a === '--no-table-headers') o.tableHeaders = false;
    else if (a === '--errors-only') o.errorsOnly = true;
    else if (a === '-h' || a === '--help') o.help = true;
    else if (a.startsWith('-') && a.length > 1 && o.positionals.length === 0) throw new UsageError(`unknown option ${a}`);
    else o.positionals.push(a);
  }
  return o;
}

function setOption(o: Options, key: keyof Options, flag: string, value: string): void {
  if (key === 'priority' || key === 'timeoutS') {
    const n = Number(value);
    if (!Number.isFinite(n) || (key === 'priority' && !Number.isInteger(n))) throw new UsageError(`${flag} must be a number, got '${value}'`);
    if (key === 'priority') o.priority = n;
    else o.timeoutS = n;
  } else if (key === 'formatter') {
    if (value !== 'json' && value !== 'table') throw new UsageError(`--formatter must be json or table, got '${value}'`);
    o.formatter = value;
  } else if (key === 'socket' || key === 'dataDir' || key === 'vhost' || key === 'applyTo' || key === 'queue' || key === 'vhostPattern' || key === 'queuePattern') {
    o[key] = value;
  }
}

function socketPath(o: Options): string {
  if (o.socket !== undefined) return o.socket;
  return join(o.dataDir ?? './data', adminSocketName);
}

const usage = `Usage: warrenctl [--data-dir DIR | -n PATH] [-p VHOST] [--formatter json] [-q] [-s] COMMAND [ARGS...]

Finds the node by its admin socket: -n/--socket PATH, or DIR/warren.sock for
--data-dir DIR (or WARREN_DATA_DIR), else ./data/warren.sock.

Commands:
  add_user USER PASSWORD            delete_user USER            change_password USER PASSWORD
  clear_password USER               authenticate_user USER PASSWORD
  set_user_tags USER [TAG...]       list_users
  add_vhost VHOST                   delete_vhost VHOST          list_vhosts [COLUMN...]
  set_permissions [-p VHOST] USER CONF WRITE READ               clear_permissions [-p VHOST] USER
  list_permissions [-p VHOST]       list_user_permissions USER
  set_policy [-p VHOST] NAME PATTERN DEFINITION [--priority N] [--apply-to queues|exchanges|all|...]
  clear_policy [-p VHOST] NAME      list_policies [-p VHOST]
  list_queues [-p VHOST] [COLUMN...]   (default: name messages; also type leader members online in_sync epoch ...)
  list_exchanges [-p VHOST] [COLUMN...]   list_bindings [-p VHOST] [COLUMN...]
  list_connections [COLUMN...]      list_consumers [-p VHOST] [COLUMN...]
  close_connection NAME EXPLANATION
  export_definitions FILE|-         import_definitions FILE|-
  hash_password PASSWORD            ping
  set_vm_memory_high_watermark FRACTION | absolute SIZE
                                    block publishers while the node's memory is above it (0.4, 2GB)
  set_disk_free_limit SIZE | mem_relative FACTOR
                                    block publishers while free disk is below it (50MB, 1GiB)
  alarms                            the alarms blocking publishers on this node
  cluster_status                    members (disk, running), the controller, forgotten nodes,
                                    and this node's replicas with their watermarks
  forget_cluster_node NODE          remove a stopped NODE from the cluster; it may not rejoin
  join_cluster NODE                 let a forgotten NODE join again (run on any member; a node
                                    joins by starting with --cluster --etcd URL)
  add_member [-p VHOST] QUEUE NODE  add a replica of a quorum or mirrored QUEUE on running NODE
  delete_member [-p VHOST] QUEUE NODE
                                    remove NODE's replica of QUEUE (not the last member, not a
                                    running leader)
  grow NODE all|even [--vhost-pattern REGEX] [--queue-pattern REGEX] [--errors-only]
                                    add NODE to every matching replicated queue (even: only
                                    queues with an even number of members)
  shrink NODE [--errors-only]       remove NODE from every replicated queue it is a member of
  latency [--queue QUEUE]           the broker's HDR latency histograms (µs): publish→confirm,
                                    enqueue→deliver per queue, ring transit, fsync; with --queue,
                                    that queue's full percentile distribution (HdrHistogram format)
`;

/** rabbitmqctl's banner for a command (printed unless -q). */
function banner(cmd: string, args: string[], o: Options): string | undefined {
  const v = o.vhost;
  const first = args[0] ?? '';
  const banners: Record<string, string> = {
    add_user: `Adding user "${first}" ...`,
    delete_user: `Deleting user "${first}" ...`,
    change_password: `Changing password for user "${first}" ...`,
    clear_password: `Clearing password for user "${first}" ...`,
    authenticate_user: `Authenticating user "${first}" ...`,
    set_user_tags: `Setting tags for user "${first}" to [${args.slice(1).join(', ')}] ...`,
    list_users: 'Listing users ...',
    add_vhost: `Adding vhost "${first}" ...`,
    delete_vhost: `Deleting vhost "${first}" ...`,
    list_vhosts: 'Listing vhosts ...',
    set_permissions: `Setting permissions for user "${first}" in vhost "${v}" ...`,
    clear_permissions: `Clearing permissions for user "${first}" in vhost "${v}" ...`,
    list_permissions: `Listing permissions for vhost "${v}" ...`,
    list_user_permissions: `Listing permissions for user "${first}" ...`,
    set_policy: `Setting policy "${first}" for pattern "${args[1] ?? ''}" to "${args[2] ?? ''}" with priority "${o.priority ?? 0}" for vhost "${v}" ...`,
    clear_policy: `Clearing policy "${first}" on vhost "${v}" ...`,
    list_policies: `Listing policies for vhost "${v}" ...`,
    list_queues: `Listing queues for vhost ${v} ...`,
    list_exchanges: `Listing exchanges for vhost ${v} ...`,
    list_bindings: `Listing bindings for vhost ${v}...`,
    list_connections: 'Listing connections ...',
    list_consumers: `Listing consumers in vhost ${v} ...`,
    close_connection: `Closing connection ${first}, reason: ${args[1] ?? ''}...`,
    export_definitions: `Exporting definitions in JSON to a file at "${first}" ...`,
    import_definitions: `Importing definitions in JSON from a file at "${first}" ...`,
    forget_cluster_node: `Removing node ${first} from the cluster`,
    join_cluster: `Re-admitting node ${first} to the cluster`,
    add_member: `Adding a replica for queue ${first} on node ${args[1] ?? ''}...`,
    delete_member: `Removing a replica of queue ${first} on node ${args[1] ?? ''}...`,
    grow: `Growing ${args[1] ?? ''} replicated queues on ${first}...`,
    shrink: `Shrinking replicated queues on ${first}...`,
  };
  return banners[cmd];
}

function ask(path: string, req: AdminRequest, timeoutS: number): Promise<AdminReply> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    let buffered = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(Object.assign(new Error(`Error: operation ${req.cmd} on node at ${path} timed out. Timeout value used: ${timeoutS * 1000}`), { exitCode: exitTempFail }));
    }, timeoutS * 1000);
    s.setEncoding('utf8');
    s.once('connect', () => s.write(`${JSON.stringify(req)}\n`));
    s.on('data', (chunk: string) => {
      buffered += chunk;
      const nl = buffered.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      s.end();
      try {
        resolve(JSON.parse(buffered.slice(0, nl)) as AdminReply);
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why = err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? 'nodedown (is the node running, and is this its data directory?)' : err.message;
      reject(Object.assign(new Error(`Error: unable to connect to node at ${path}: ${why}`), { exitCode: exitUnavailable }));
    });
    s.once('close', () => {
      clearTimeout(timer);
      reject(Object.assign(new Error(`Error: the node at ${path} closed the connection without answering`), { exitCode: exitUnavailable }));
    });
  });
}

/** One table cell as rabbitmqctl prints it. */
function cell(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return `[${v.join(', ')}]`;
  return JSON.stringify(v);
}

function printRows(columns: string[], rows: Record<string, unknown>[], o: Options): void {
  if (o.formatter === 'json') {
    process.stdout.write(`${JSON.stringify(rows.map((r) => Object.fromEntries(columns.map((c) => [c, r[c] ?? null]))))}\n`);
    return;
  }
  const lines: string[] = [];
  if (o.tableHeaders && !o.silent) lines.push(columns.join('\t'));
  for (const r of rows) lines.push(columns.map((c) => cell(r[c])).join('\t'));
  if (lines.length > 0) process.stdout.write(`${lines.join('\n')}\n`);
}

function fail(message: string, code: number): never {
  process.stderr.write(`${message.startsWith('Error') ? message : `Error:\n${message}`}\n`);
  process.exit(code);
}

function readDefinitionsFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    return fail(`Error: could not read definitions file ${file}: ${err instanceof Error ? err.message : String(err)}`, exitDataErr);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    return fail(`Error: failed to parse definitions file ${file} as JSON: ${err instanceof Error ? err.message : String(err)}`, exitDataErr);
  }
}

/** rabbitmqctl's cluster_status: its banner names the node, so it follows the answer. */
function printClusterStatus(doc: ClusterStatusDoc, o: Options, quiet: boolean): void {
  if (o.formatter === 'json') {
    process.stdout.write(`${JSON.stringify(doc)}\n`);
    return;
  }
  if (!quiet) process.stdout.write(`Cluster status of node ${doc.node} ...\n`);
  process.stdout.write(`${clusterStatusText(doc)}\n`);
}

async function main(): Promise<void> {
  let o: Options;
  try {
    o = parseArgv(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`warrenctl: ${err instanceof Error ? err.message : String(err)}\n\n${usage}`);
    process.exit(exitUsage);
  }
  const [cmd, ...args] = o.positionals;
  if (o.help || cmd === undefined || cmd === 'help') {
    process.stdout.write(usage);
    process.exit(cmd === undefined && !o.help ? exitUsage : 0);
  }
  const req: AdminRequest = { cmd, args, vhost: o.vhost, formatter: o.formatter };
  const options: NonNullable<AdminRequest['options']> = {};
  if (o.priority !== undefined) options.priority = o.priority;
  if (o.applyTo !== undefined) options['apply-to'] = o.applyTo;
  if (o.queue !== undefined) options.queue = o.queue;
  if (o.vhostPattern !== undefined) options['vhost-pattern'] = o.vhostPattern;
  if (o.queuePattern !== undefined) options['queue-pattern'] = o.queuePattern;
  if (o.errorsOnly) options['errors-only'] = true;
  req.options = options;
  // The definitions file is the CLI's to read and write (relative paths are the caller's).
  let exportFile: string | undefined;
  if (cmd === 'export_definitions' || cmd === 'import_definitions') {
    const file = args[0];
    if (file === undefined) return fail('Error (argument validation): not enough arguments.', exitUsage);
    req.args = [];
    if (cmd === 'export_definitions') exportFile = file;
    else req.definitions = readDefinitionsFile(file);
  }
  const quiet = o.quiet || o.silent || o.formatter === 'json' || exportFile === '-';
  const b = banner(cmd, args, o);
  if (!quiet && b !== undefined) process.stdout.write(`${b}\n`);

  let reply: AdminReply;
  try {
    reply = await ask(socketPath(o), req, o.timeoutS);
  } catch (err) {
    const code = (err as { exitCode?: unknown }).exitCode;
    return fail(err instanceof Error ? err.message : String(err), typeof code === 'number' ? code : exitUnavailable);
  }
  if (!reply.ok) return fail(reply.error, reply.exitCode);
  if (cmd === 'cluster_status') {
    printClusterStatus(reply.result as ClusterStatusDoc, o, quiet);
  } else if (reply.columns !== undefined && reply.rows !== undefined) {
    printRows(reply.columns, reply.rows, o);
  } else if (exportFile !== undefined) {
    const json = `${JSON.stringify(reply.result, null, 2)}\n`;
    if (exportFile === '-') process.stdout.write(json);
    else writeFileSync(exportFile, json);
  } else if (typeof reply.result === 'string' && cmd !== 'ping') {
    process.stdout.write(`${reply.result}\n`);
  } else if (cmd === 'add_user' && !quiet) {
    process.stdout.write("Done. Don't forget to grant the user permissions to some virtual hosts! See 'warrenctl help' to learn more.\n");
  }
}

main().catch((err: unknown) => fail(`Error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`, 70));
