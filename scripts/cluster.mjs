#!/usr/bin/env node
// A local warren cluster for trying things by hand: one etcd and N warren nodes on 127.0.0.1,
// each with its own data directory and ports, all under ./.cluster/ (see docs/cluster.md).
//
//   node scripts/cluster.mjs start [--nodes N] [--base-port P]   (npm run cluster:start -- --nodes 5)
//   node scripts/cluster.mjs status | stop | kill NODE | restart NODE
//
// Ports, with offset = base-port − 5672 (default 0) and i = 1..N:
//   etcd client 2379+offset, etcd peer 2380+offset
//   node nI: AMQP 5672+offset+(i−1)   management 15672+offset+(i−1)   WebSocket 15680+offset+(i−1)
//            Prometheus 15692+offset+(i−1)   peer link 25672+offset+10(i−1)   replication 25673+offset+10(i−1)
// so n1 keeps RabbitMQ's usual ports and the others sit next to them.
//
// State (pids, arguments, ports) is in .cluster/state.json; logs in .cluster/etcd.log and
// .cluster/nI.log; node data in .cluster/nI/; etcd's data in .cluster/etcd/. The directory can
// be moved with WARREN_CLUSTER_DIR, and the etcd binary named with WARREN_ETCD_BIN (tests use both).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dir = resolve(process.env.WARREN_CLUSTER_DIR ?? join(repo, '.cluster'));
const stateFile = join(dir, 'state.json');
const warrenJs = join(repo, 'dist', 'src', 'cli', 'warren.js');
const clusterName = 'warren';

const nodesMax = 7;
const basePortDefault = 5672;
/** etcd starts in well under a second; a node (shards, recovery of its log) in a few. */
const etcdStartDeadlineMs = 15_000;
const nodeStartDeadlineMs = 30_000;
/** After SIGTERM a node closes its connections and flushes its logs; past this it is killed. */
const stopDeadlineMs = 10_000;
/** Polling interval while waiting for a process to answer or exit. */
const pollMs = 50;

const usage = `usage: node scripts/cluster.mjs <command>
  start [--nodes N] [--base-port P]   start etcd and N warren nodes (N 1..${nodesMax}, default 3; P default ${basePortDefault})
  status                              members in etcd, the controller, and which processes are alive
  stop                                stop every node, then etcd (SIGTERM, then SIGKILL after ${stopDeadlineMs / 1000} s)
  kill NODE                           SIGKILL one node (e.g. n2), to try failover
  restart NODE                        start a stopped or killed node again with the same arguments`;

class UsageError extends Error {}

function fail(msg, code = 1) {
  process.stderr.write(`${msg}\n`);
  process.exit(code);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function intOption(name, raw, min, max) {
  if (!/^\d+$/.test(raw)) throw new UsageError(`--${name} must be a whole number, got '${raw}'`);
  const n = Number(raw);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

/** Parses the command line; throws UsageError. Exported shape: { command, nodes, basePort, node }. */
export function parseCommand(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      nodes: { type: 'string' },
      'base-port': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return { command: 'help' };
  const [command, ...rest] = positionals;
  const commands = ['start', 'status', 'stop', 'kill', 'restart'];
  if (command === undefined) throw new UsageError('no command given');
  if (!commands.includes(command)) throw new UsageError(`unknown command '${command}'`);
  if (command !== 'start' && (values.nodes !== undefined || values['base-port'] !== undefined)) {
    throw new UsageError(`--nodes and --base-port belong to start, not ${command}`);
  }
  if (command === 'kill' || command === 'restart') {
    if (rest.length !== 1) throw new UsageError(`${command} takes one node name (e.g. n2)`);
    return { command, node: rest[0] };
  }
  if (rest.length > 0) throw new UsageError(`${command} takes no arguments, got '${rest.join(' ')}'`);
  const nodes = values.nodes === undefined ? 3 : intOption('nodes', values.nodes, 1, nodesMax);
  // The highest port used is the last node's replication port: 25673 + offset + 10·(N−1).
  const basePort = values['base-port'] === undefined ? basePortDefault : intOption('base-port', values['base-port'], 1024, 65535 - (25673 - basePortDefault) - 10 * (nodesMax - 1));
  return { command, nodes, basePort };
}

/** Every port of the cluster for N nodes from basePort (see the table at the top). */
export function clusterPorts(nodes, basePort) {
  const offset = basePort - basePortDefault;
  const list = [];
  for (let i = 1; i <= nodes; i++) {
    list.push({
      name: `n${i}`,
      amqp: 5672 + offset + (i - 1),
      mgmt: 15672 + offset + (i - 1),
      ws: 15680 + offset + (i - 1),
      prometheus: 15692 + offset + (i - 1),
      peer: 25672 + offset + 10 * (i - 1),
      repl: 25673 + offset + 10 * (i - 1),
    });
  }
  return { etcdClient: 2379 + offset, etcdPeer: 2380 + offset, nodes: list };
}

function findEtcd() {
  const named = process.env.WARREN_ETCD_BIN;
  if (named !== undefined) return existsSync(named) ? named : undefined;
  for (const d of (process.env.PATH ?? '').split(delimiter)) {
    if (d !== '' && existsSync(join(d, 'etcd'))) return join(d, 'etcd');
  }
  return existsSync('/usr/bin/etcd') ? '/usr/bin/etcd' : undefined;
}

function readState() {
  if (!existsSync(stateFile)) return undefined;
  return JSON.parse(readFileSync(stateFile, 'utf8'));
}

function writeState(state) {
  writeFileSync(`${stateFile}.tmp`, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(`${stateFile}.tmp`, stateFile);
}

/** True if pid is alive and still the program we started (pids are reused). */
function alive(pid, marker) {
  if (typeof pid !== 'number') return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (cmdline.includes(marker)) {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return !/^\d+ \(.*\) Z/.test(stat); // a zombie is dead
    }
    return false;
  } catch {
    return true; // no /proc (not Linux): trust the signal check
  }
}

function health(endpoint) {
  return new Promise((resolvePromise) => {
    const req = request(`${endpoint}/health`, { timeout: 1_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolvePromise(res.statusCode === 200 && /"health"\s*:\s*"true"/.test(body)));
    });
    req.on('error', () => resolvePromise(false));
    req.on('timeout', () => {
      req.destroy();
      resolvePromise(false);
    });
    req.end();
  });
}

/** Starts a detached process with stdout and stderr appended to logPath; returns its pid. */
function spawnDetached(cmd, args, logPath) {
  const fd = openSync(logPath, 'a');
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd], cwd: repo });
  closeSync(fd);
  child.unref();
  return child.pid;
}

async function waitUntil(check, deadlineMs, what) {
  const start = Date.now();
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() - start > deadlineMs) throw new Error(`timed out after ${deadlineMs / 1000} s waiting for ${what}`);
    await sleep(pollMs);
  }
}

function logTail(path, lines = 15) {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Shard threads per node: the machine's cores shared among the nodes, since they all run
 * here (three nodes of two shards each on a two-core machine just contend for the CPU).
 */
export function shardsPerNode(nodes, cores = availableParallelism()) {
  return Math.max(1, Math.floor(cores / nodes));
}

/**
 * V8's helper threads per node (Node's --v8-pool-size, 4 by default): the cores each node
 * gets, less one for its own front and shard threads, at least 1 and at most Node's 4. More
 * helpers than cores compete with the broker's threads at the moments that set its tail
 * latency (docs/benchmarks.md, "V8's helper threads").
 */
export function v8PoolSizePerNode(nodes, cores = availableParallelism()) {
  return Math.min(4, Math.max(1, Math.floor(cores / nodes) - 1));
}

function nodeArgs(ports, etcdEndpoint, shards, v8PoolSize) {
  return [
    `--v8-pool-size=${v8PoolSize}`,
    warrenJs,
    '--cluster',
    '--etcd', etcdEndpoint,
    '--node-name', ports.name,
    '--port', String(ports.amqp),
    '--peer-port', String(ports.peer),
    '--repl-port', String(ports.repl),
    '--data-dir', join(dir, ports.name),
    '--mgmt-port', String(ports.mgmt),
    '--prometheus-port', String(ports.prometheus),
    '--ws-port', String(ports.ws),
    '--shards', String(shards),
  ];
}

/** Starts one node and waits for its amqp:// line (it prints it on stdout once it listens). */
async function startNode(node) {
  const logPath = join(dir, `${node.name}.log`);
  const before = existsSync(logPath) ? readFileSync(logPath, 'utf8').length : 0;
  const pid = spawnDetached(process.execPath, node.args, logPath);
  node.pid = pid;
  await waitUntil(
    () => {
      const text = readFileSync(logPath, 'utf8').slice(before);
      const m = /^amqp:\/\/\S+$/m.exec(text);
      if (m) return m[0];
      if (!alive(pid, 'warren.js')) throw new Error(`${node.name} exited during start-up; the end of ${logPath}:\n${logTail(logPath)}`);
      return undefined;
    },
    nodeStartDeadlineMs,
    `${node.name} to listen (see ${logPath})`,
  );
}

async function terminate(pid, marker) {
  if (!alive(pid, marker)) return 'not running';
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return 'not running';
  }
  try {
    await waitUntil(() => !alive(pid, marker), stopDeadlineMs, `pid ${pid} to exit`);
    return 'stopped';
  } catch {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* exited meanwhile */
    }
    await waitUntil(() => !alive(pid, marker), stopDeadlineMs, `pid ${pid} to die`);
    return 'killed after the deadline';
  }
}

function table(rows) {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)));
  return rows.map((r) => r.map((v, c) => String(v).padEnd(widths[c])).join('  ').trimEnd()).join('\n');
}

/** The cluster secret a node directory under the cluster dir already holds, if any. */
function existingSecret() {
  for (let i = 1; i <= nodesMax; i++) {
    const file = join(dir, `n${i}`, '.cluster-secret');
    if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  }
  return undefined;
}

function ensureSecret(nodeDir, secret) {
  mkdirSync(nodeDir, { recursive: true });
  const file = join(nodeDir, '.cluster-secret');
  if (!existsSync(file)) writeFileSync(file, `${secret}\n`, { mode: 0o600 });
}

async function start({ nodes, basePort }) {
  const old = readState();
  if (old !== undefined && (alive(old.etcd?.pid, 'etcd') || old.nodes.some((n) => alive(n.pid, 'warren.js')))) {
    fail(`a cluster from ${stateFile} is still running: npm run cluster:stop first`);
  }
  const etcdBin = findEtcd();
  if (etcdBin === undefined) fail('etcd not found (on PATH or at /usr/bin/etcd); install it: sudo apt-get install etcd-server');
  if (!existsSync(warrenJs)) fail(`${warrenJs} is missing: run npm run build first`);
  mkdirSync(dir, { recursive: true });
  const ports = clusterPorts(nodes, basePort);
  const etcdEndpoint = `http://127.0.0.1:${ports.etcdClient}`;
  const etcdPeer = `http://127.0.0.1:${ports.etcdPeer}`;
  const state = {
    startedAt: new Date().toISOString(),
    basePort,
    etcd: { pid: undefined, endpoint: etcdEndpoint },
    nodes: [],
  };
  const stopAll = async () => {
    for (const n of state.nodes) await terminate(n.pid, 'warren.js');
    await terminate(state.etcd.pid, 'etcd');
  };
  try {
    if (await health(etcdEndpoint)) throw new Error(`something already answers as etcd at ${etcdEndpoint}: stop it or use --base-port`);
    // prettier-ignore
    const etcdArgs = [
      '--name', 'etcd0', '--data-dir', join(dir, 'etcd'),
      '--listen-client-urls', etcdEndpoint, '--advertise-client-urls', etcdEndpoint,
      '--listen-peer-urls', etcdPeer, '--initial-advertise-peer-urls', etcdPeer,
      '--initial-cluster', `etcd0=${etcdPeer}`, '--initial-cluster-state', 'new',
    ];
    state.etcd.pid = spawnDetached(etcdBin, etcdArgs, join(dir, 'etcd.log'));
    state.etcd.args = etcdArgs;
    writeState(state);
    await waitUntil(
      async () => {
        if (!alive(state.etcd.pid, 'etcd')) throw new Error(`etcd exited during start-up; the end of ${join(dir, 'etcd.log')}:\n${logTail(join(dir, 'etcd.log'))}`);
        return health(etcdEndpoint);
      },
      etcdStartDeadlineMs,
      `etcd at ${etcdEndpoint}`,
    );
    // A cluster started here before (even a start that failed half-way) left its secret in the
    // node directories, and its fingerprint in etcd: every node must keep using that one.
    const secret = existingSecret() ?? randomBytes(24).toString('hex');
    for (const p of ports.nodes) {
      ensureSecret(join(dir, p.name), secret);
      const node = { name: p.name, pid: undefined, ports: p, args: nodeArgs(p, etcdEndpoint, shardsPerNode(ports.nodes.length), v8PoolSizePerNode(ports.nodes.length)) };
      state.nodes.push(node);
      await startNode(node);
      writeState(state);
    }
  } catch (err) {
    process.stderr.write(`${err.message}\nstopping what was started\n`);
    await stopAll();
    writeState(state);
    process.exit(1);
  }
  const rows = [['node', 'pid', 'amqp', 'management', 'prometheus', 'websocket', 'peer', 'repl']];
  for (const n of state.nodes) {
    const p = n.ports;
    rows.push([n.name, n.pid, `amqp://127.0.0.1:${p.amqp}`, `http://127.0.0.1:${p.mgmt}`, `http://127.0.0.1:${p.prometheus}/metrics`, `ws://127.0.0.1:${p.ws}/ws`, p.peer, p.repl]);
  }
  process.stdout.write(`etcd ${etcdEndpoint} (pid ${state.etcd.pid}), cluster '${clusterName}', logs and data in ${dir}\n${table(rows)}\n`);
}

async function etcdMembers(endpoint) {
  const { Etcd3 } = await import('etcd3');
  const client = new Etcd3({ hosts: [endpoint], dialTimeout: 2_000, defaultCallOptions: () => ({ deadline: Date.now() + 2_000 }) });
  try {
    const ns = client.namespace(`/warren/${clusterName}/`);
    const members = await ns.getAll().prefix('members/').strings();
    const controller = await ns.election('controller').leader().catch(() => undefined);
    return { members: Object.values(members).map((v) => JSON.parse(v)), controller };
  } finally {
    client.close();
  }
}

async function status() {
  const state = readState();
  if (state === undefined) fail(`no cluster state in ${stateFile}: npm run cluster:start first`);
  const etcdUp = alive(state.etcd.pid, 'etcd');
  process.stdout.write(`etcd ${state.etcd.endpoint}: ${etcdUp ? `running (pid ${state.etcd.pid})` : 'not running'}\n`);
  let info = { members: [], controller: undefined };
  let etcdError;
  if (etcdUp) {
    try {
      info = await etcdMembers(state.etcd.endpoint);
    } catch (err) {
      etcdError = err.message;
    }
  }
  const rows = [['node', 'process', 'member', 'controller', 'amqp']];
  const names = new Set([...state.nodes.map((n) => n.name), ...info.members.map((m) => m.name)]);
  for (const name of [...names].sort()) {
    const n = state.nodes.find((x) => x.name === name);
    const m = info.members.find((x) => x.name === name);
    const proc = n === undefined ? '-' : alive(n.pid, 'warren.js') ? `running (pid ${n.pid})` : 'not running';
    rows.push([name, proc, m === undefined ? 'no' : 'yes', info.controller === name ? 'yes' : '', m?.amqp ?? (n ? `127.0.0.1:${n.ports.amqp}` : '')]);
  }
  process.stdout.write(`${table(rows)}\n`);
  if (etcdError !== undefined) process.stdout.write(`could not read the members from etcd: ${etcdError}\n`);
}

async function stop() {
  const state = readState();
  if (state === undefined) fail(`no cluster state in ${stateFile}: nothing to stop`);
  for (const n of state.nodes) process.stdout.write(`${n.name}: ${await terminate(n.pid, 'warren.js')}\n`);
  process.stdout.write(`etcd: ${await terminate(state.etcd.pid, 'etcd')}\n`);
  for (const n of state.nodes) n.pid = undefined;
  state.etcd.pid = undefined;
  writeState(state);
}

function nodeOf(state, name) {
  const n = state?.nodes.find((x) => x.name === name);
  if (n === undefined) fail(`no node '${name}' in ${stateFile}${state ? ` (nodes: ${state.nodes.map((x) => x.name).join(', ')})` : ''}`);
  return n;
}

function kill({ node }) {
  const state = readState();
  const n = nodeOf(state, node);
  if (!alive(n.pid, 'warren.js')) fail(`${node} is not running`);
  process.kill(n.pid, 'SIGKILL');
  process.stdout.write(`${node}: killed (pid ${n.pid})\n`);
  n.pid = undefined;
  writeState(state);
}

async function restart({ node }) {
  const state = readState();
  const n = nodeOf(state, node);
  if (!alive(state.etcd.pid, 'etcd')) fail('etcd is not running: npm run cluster:start (after cluster:stop) starts everything');
  if (alive(n.pid, 'warren.js')) process.stdout.write(`${node}: ${await terminate(n.pid, 'warren.js')}\n`);
  try {
    await startNode(n);
  } catch (err) {
    writeState(state);
    fail(err.message);
  }
  writeState(state);
  process.stdout.write(`${node}: running (pid ${n.pid}) on amqp://127.0.0.1:${n.ports.amqp}\n`);
}

async function main() {
  let cmd;
  try {
    cmd = parseCommand(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError || err?.code?.startsWith?.('ERR_PARSE_ARGS')) fail(`${err.message}\n${usage}`, 2);
    throw err;
  }
  switch (cmd.command) {
    case 'help':
      process.stdout.write(`${usage}\n`);
      return;
    case 'start':
      return start(cmd);
    case 'status':
      return status();
    case 'stop':
      return stop();
    case 'kill':
      return kill(cmd);
    case 'restart':
      return restart(cmd);
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main();
}
