/**
 * `warrenctl cluster_status` as text: rabbitmqctl's sections in rabbitmqctl's order and
 * wording (Basics, Disk Nodes, Running Nodes, Versions, CPU Cores, Maintenance status,
 * Alarms, Network Partitions, Listeners; versions, cores and alarms are the answering
 * node's, the only one it can speak for), then warren's own for a clustered node: the
 * controller, forgotten nodes, and this node's replicas with their watermarks. A node outside
 * cluster mode prints what RabbitMQ prints for a node alone. Pure: the CLI renders the
 * document the node sends (cluster-ops.ts ClusterStatusDoc).
 */
import type { ClusterStatusDoc, ReplicaDoc } from './cluster-ops.js';

function section(title: string, lines: readonly string[]): string[] {
  return [`\n${title}\n`, ...(lines.length === 0 ? ['(none)'] : lines)];
}

function replicaLines(r: ReplicaDoc): string[] {
  const head = `Queue: ${r.queue}, role: ${r.role}, epoch: ${r.epoch}, log start: ${r.log_start}, log end: ${r.log_end}, commit offset: ${r.commit_offset}, flushed offset: ${r.flushed_offset}, live messages: ${r.live_messages}`;
  if (r.role !== 'leader') {
    const following = r.leader === null ? '' : `, leader: ${r.leader}, streaming: ${r.streaming === true}`;
    return [`${head}${following}`];
  }
  return [
    head,
    ...r.followers.map((f) => `  Follower: ${f.node}, acked offset: ${f.acked_offset}, in sync: ${f.in_sync}, connected: ${f.connected}, lag: ${f.lag_ms} ms`),
  ];
}

export function clusterStatusText(d: ClusterStatusDoc): string {
  // RabbitMQ's "Total CPU cores available cluster-wide" is left out: a node knows only its own.
  const lines = [
    'Basics\n',
    `Cluster name: ${d.cluster_name}`,
    ...section('Disk Nodes', d.disk_nodes),
    ...section('Running Nodes', d.running_nodes),
    ...section(
      'Versions',
      Object.entries(d.versions).map(([n, v]) => `${n}: ${v.rabbitmq_name} ${v.rabbitmq_version} on ${v.erlang_version}`),
    ),
    ...section('CPU Cores', Object.entries(d.cpu_cores).map(([n, c]) => `Node: ${n}, available CPU cores: ${c}`)),
    ...section('Maintenance status', Object.entries(d.maintenance_status).map(([n, s]) => `Node: ${n}, status: ${s}`)),
    ...section('Alarms', d.alarms.map((a) => `${a.resource === 'memory' ? 'Memory' : 'Free disk space'} alarm on node ${a.node}: ${a.reason}`)),
    ...section('Network Partitions', Object.entries(d.partitions).map(([n, peers]) => `Node ${n} cannot communicate with ${peers.join(', ')}`)),
    ...section(
      'Listeners',
      Object.values(d.listeners).flatMap((ls) => ls.map((l) => `Node: ${l.node}, interface: ${l.interface}, port: ${l.port}, protocol: ${l.protocol}, purpose: ${l.purpose}`)),
    ),
  ];
  if (d.clustered) {
    lines.push(
      ...section('Controller', d.controller === null ? [] : [d.controller]),
      ...section('Forgotten Nodes', d.forgotten_nodes),
      ...section(`Replicas on node ${d.node}`, d.replicas.flatMap(replicaLines)),
    );
  }
  return lines.join('\n');
}
