import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { waitFor } from '../helpers/broker.js';

const repo = resolve(fileURLToPath(import.meta.url), '../../../..');
const script = join(repo, 'scripts', 'cluster.mjs');

interface NodePorts {
  name: string;
  amqp: number;
  mgmt: number;
  ws: number;
  prometheus: number;
  peer: number;
  repl: number;
}
interface ScriptModule {
  parseCommand(argv: string[]): { command: string; nodes?: number; basePort?: number; node?: string };
  clusterPorts(nodes: number, basePort: number): { etcdClient: number; etcdPeer: number; nodes: NodePorts[] };
  shardsPerNode(nodes: number, cores: number): number;
  v8PoolSizePerNode(nodes: number, cores: number): number;
}

async function loadScript(): Promise<ScriptModule> {
  return (await import(pathToFileURL(script).href)) as ScriptModule;
}

function run(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [script, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function allPorts(p: ReturnType<ScriptModule['clusterPorts']>): number[] {
  return [p.etcdClient, p.etcdPeer, ...p.nodes.flatMap((n) => [n.amqp, n.mgmt, n.ws, n.prometheus, n.peer, n.repl])];
}

async function portFree(port: number): Promise<boolean> {
  const srv = createServer();
  srv.listen(port, '127.0.0.1');
  const ok = await Promise.race([once(srv, 'listening').then(() => true), once(srv, 'error').then(() => false)]);
  if (ok) {
    srv.close();
    await once(srv, 'close');
  }
  return ok;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

describe('cluster script: arguments and ports', () => {
  test('commands, defaults and bounds', async () => {
    const { parseCommand } = await loadScript();
    assert.deepEqual(parseCommand(['start']), { command: 'start', nodes: 3, basePort: 5672 });
    assert.deepEqual(parseCommand(['start', '--nodes', '7', '--base-port', '6000']), { command: 'start', nodes: 7, basePort: 6000 });
    assert.deepEqual(parseCommand(['start', '--nodes=1']), { command: 'start', nodes: 1, basePort: 5672 });
    assert.deepEqual(parseCommand(['kill', 'n2']), { command: 'kill', node: 'n2' });
    assert.deepEqual(parseCommand(['restart', 'n1']), { command: 'restart', node: 'n1' });
    assert.deepEqual(parseCommand(['status']), { command: 'status', nodes: 3, basePort: 5672 });
    for (const bad of [['start', '--nodes', '0'], ['start', '--nodes', '8'], ['start', '--nodes', 'x'], ['start', '--nodes', '2.5'], ['kill'], ['kill', 'a', 'b'], ['status', '--nodes', '2'], ['bogus'], [], ['start', '--base-port', '80'], ['start', '--base-port', '60000']]) {
      assert.throws(() => parseCommand(bad), Error, `refuses ${JSON.stringify(bad)}`);
    }
  });

  test('n1 gets the usual RabbitMQ ports, and no two ports of a 7-node cluster clash', async () => {
    const { clusterPorts } = await loadScript();
    const p = clusterPorts(7, 5672);
    assert.deepEqual(p.nodes[0], { name: 'n1', amqp: 5672, mgmt: 15672, ws: 15680, prometheus: 15692, peer: 25672, repl: 25673 });
    assert.equal(p.etcdClient, 2379);
    const ports = allPorts(p);
    assert.equal(new Set(ports).size, ports.length, 'all distinct');
    const shifted = allPorts(clusterPorts(7, 6672));
    assert.deepEqual(shifted, ports.map((x) => x + 1000), '--base-port shifts every port');
    assert.ok(Math.max(...allPorts(clusterPorts(7, 5672 + 20_000))) <= 65_535);
  });

  test("each node's share of the cores: its shard threads and V8's helper threads", async () => {
    const { shardsPerNode, v8PoolSizePerNode } = await loadScript();
    assert.equal(shardsPerNode(3, 2), 1, 'three nodes on two cores: one shard each');
    assert.equal(shardsPerNode(1, 8), 8);
    assert.equal(shardsPerNode(3, 8), 2);
    // One core per node and fewer: one helper thread, never none (V8 needs one).
    assert.equal(v8PoolSizePerNode(3, 2), 1);
    assert.equal(v8PoolSizePerNode(1, 2), 1);
    assert.equal(v8PoolSizePerNode(7, 2), 1);
    // The node's cores less one, up to Node's own default of 4.
    assert.equal(v8PoolSizePerNode(1, 4), 3);
    assert.equal(v8PoolSizePerNode(1, 32), 4);
    assert.equal(v8PoolSizePerNode(3, 9), 2);
  });

  test('a missing etcd is reported with how to install it', () => {
    const r = run(['start'], { WARREN_ETCD_BIN: '/nonexistent/etcd', WARREN_CLUSTER_DIR: join(tmpdir(), 'warren-never-created') });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /install it: sudo apt-get install etcd-server/);
    assert.equal(existsSync(join(tmpdir(), 'warren-never-created')), false, 'nothing is created');
  });

  test('usage errors exit 2 with the usage text', () => {
    const r = run(['start', '--nodes', '9']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--nodes must be between 1 and 7/);
    assert.match(r.stderr, /usage: node scripts\/cluster\.mjs/);
  });
});

describe('cluster script: a real etcd and node', () => {
  test('start, status, kill, restart and stop one node', async () => {
    const { clusterPorts } = await loadScript();
    // A base port whose every derived port is free right now.
    let basePort = 0;
    for (let attempt = 0; attempt < 20 && basePort === 0; attempt++) {
      const candidate = 20_000 + Math.floor(Math.random() * 20_000);
      const free = await Promise.all(allPorts(clusterPorts(1, candidate)).map(portFree));
      if (free.every(Boolean)) basePort = candidate;
    }
    assert.ok(basePort > 0, 'found a free port block');
    const dir = await mkdtemp(join(tmpdir(), 'warren-cluster-script-'));
    const env = { WARREN_CLUSTER_DIR: dir };
    try {
      const started = run(['start', '--nodes', '1', '--base-port', String(basePort)], env);
      assert.equal(started.status, 0, `start failed:\n${started.stderr}`);
      assert.match(started.stdout, new RegExp(`amqp://127\\.0\\.0\\.1:${basePort}`));
      assert.match(started.stdout, new RegExp(`etcd http://127\\.0\\.0\\.1:${basePort - 5672 + 2379}`));
      const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { etcd: { pid: number }; nodes: { name: string; pid: number; args: string[] }[] };
      const n1 = state.nodes[0];
      assert.ok(n1 !== undefined && pidAlive(n1.pid) && pidAlive(state.etcd.pid), 'etcd and n1 run');
      assert.ok(n1.args.includes('--cluster') && n1.args.includes('--etcd'), 'n1 runs as a cluster member');
      assert.ok(n1.args[0]?.startsWith('--v8-pool-size='), `node is given its V8 helper threads first: ${n1.args.join(' ')}`);
      assert.ok(existsSync(join(dir, 'n1', '.cluster-secret')), 'the node has the cluster secret');
      const sock = connect(basePort, '127.0.0.1');
      await once(sock, 'connect');
      sock.destroy();

      const status = run(['status'], env);
      assert.equal(status.status, 0, status.stderr);
      assert.match(status.stdout, /etcd .*running \(pid \d+\)/);
      assert.match(status.stdout, new RegExp(`n1\\s+running \\(pid ${n1.pid}\\)`));

      assert.equal(run(['start', '--nodes', '1', '--base-port', String(basePort)], env).status, 1, 'a second start is refused while one runs');

      const killed = run(['kill', 'n1'], env);
      assert.equal(killed.status, 0, killed.stderr);
      await waitFor(() => !pidAlive(n1.pid), 'n1 to die of SIGKILL', 2_000);
      assert.match(run(['status'], env).stdout, /n1\s+not running/);

      const restarted = run(['restart', 'n1'], env);
      assert.equal(restarted.status, 0, restarted.stderr);
      const again = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as typeof state;
      const pid = again.nodes[0]?.pid ?? 0;
      assert.ok(pid !== n1.pid && pidAlive(pid), 'a new process');
      assert.deepEqual(again.nodes[0]?.args, n1.args, 'with the same arguments');

      const stopped = run(['stop'], env);
      assert.equal(stopped.status, 0, stopped.stderr);
      await waitFor(() => !pidAlive(pid) && !pidAlive(state.etcd.pid), 'n1 and etcd to have exited', 2_000);
    } finally {
      run(['stop'], env);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
