/**
 * A real cluster for tests: one etcd (test/helpers/etcd.ts) and N warren node processes on
 * ephemeral ports, each with its own temp data dir, under a cluster name of their own.
 * Nodes can be killed (SIGKILL), stopped, suspended (SIGSTOP) and started again on the same
 * data directory.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker, type TestBroker } from './broker.js';
import { startEtcd, type TestEtcd } from './etcd.js';

export interface ClusterNode {
  readonly name: string;
  readonly dataDir: string;
  /** The running process (replaced by restart()). */
  broker: TestBroker;
  url(): string;
}

export interface TestCluster {
  readonly etcd: TestEtcd;
  readonly nodes: ClusterNode[];
  readonly secret: string;
  readonly clusterName: string;
  node(name: string): ClusterNode;
  /** SIGKILL a node (its data dir stays). */
  kill(name: string): Promise<void>;
  /** Start a stopped or killed node again on its data dir. */
  restart(name: string): Promise<ClusterNode>;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  nodes?: number;
  /** Extra flags for every node. */
  args?: string[];
  /** Extra flags for one node by name (after args; a flag given again wins, e.g. --mgmt-port 0). */
  argsFor?: Record<string, string[]>;
  /** Membership lease; short so that silent nodes are noticed quickly in tests. */
  leaseMs?: number;
}

function nodeArgs(c: { etcd: TestEtcd; secret: string; clusterName: string }, name: string, opts: ClusterOptions): string[] {
  return [
    '--cluster',
    '--etcd',
    c.etcd.endpoint,
    '--cluster-name',
    c.clusterName,
    '--cluster-secret',
    c.secret,
    '--node-name',
    name,
    '--peer-port',
    '0',
    '--repl-port',
    '0',
    '--lease-ms',
    String(opts.leaseMs ?? 2000),
    '--mgmt-port',
    'off',
    '--prometheus-port',
    'off',
    '--ws-port',
    'off',
    ...(opts.args ?? []),
    ...(opts.argsFor?.[name] ?? []),
  ];
}

export async function startCluster(opts: ClusterOptions = {}): Promise<TestCluster> {
  const etcd = await startEtcd();
  const base = { etcd, secret: randomBytes(16).toString('hex'), clusterName: `t${randomBytes(4).toString('hex')}` };
  const names = Array.from({ length: opts.nodes ?? 3 }, (_, i) => `n${i + 1}`);
  const nodes: ClusterNode[] = [];
  try {
    // One at a time: the first node seeds the cluster's definitions in etcd.
    for (const name of names) {
      const dataDir = mkdtempSync(join(tmpdir(), `warren-${name}-`));
      const broker = await startBroker({ dataDir, args: nodeArgs(base, name, opts) });
      const node: ClusterNode = { name, dataDir, broker, url: () => node.broker.url };
      nodes.push(node);
    }
  } catch (e) {
    for (const n of nodes) await n.broker.stop();
    await etcd.stop();
    throw e;
  }
  const byName = (name: string): ClusterNode => {
    const n = nodes.find((x) => x.name === name);
    if (n === undefined) throw new Error(`no node ${name} in the test cluster`);
    return n;
  };
  return {
    ...base,
    nodes,
    node: byName,
    async kill(name) {
      await byName(name).broker.kill();
    },
    async restart(name) {
      const n = byName(name);
      const p = n.broker.process;
      if (p.exitCode === null && p.signalCode === null) throw new Error(`restart(${name}): the node is still running (pid ${p.pid}); kill or stop it first`);
      n.broker = await startBroker({ dataDir: n.dataDir, args: nodeArgs(base, name, opts) });
      return n;
    },
    async stop() {
      for (const n of nodes) {
        if (n.broker.process.exitCode === null && n.broker.process.signalCode === null) {
          n.broker.process.kill('SIGCONT'); // a suspended node must be able to hear SIGTERM
          await n.broker.stop({ keepData: true });
        }
        rmSync(n.dataDir, { recursive: true, force: true });
      }
      await etcd.stop();
    },
  };
}

/** Runs a test body; if it fails, the nodes' recent log lines (what the cluster did) go to stderr with the error. */
export async function withNodeLogs(cluster: TestCluster, body: () => Promise<void>, lines = 60): Promise<void> {
  try {
    await body();
  } catch (e) {
    for (const n of cluster.nodes) process.stderr.write(`----- ${n.name} -----\n${n.broker.log().split('\n').slice(-lines).join('\n')}\n`);
    throw e;
  }
}
