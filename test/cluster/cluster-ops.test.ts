/**
 * The operator's faces of a cluster, against a real three-node cluster (real etcd, real node
 * processes) and the real warrenctl: cluster_status (text and JSON), list_queues' placement
 * columns and leader-side counts from every node, the management API's /api/nodes and the
 * placement fields of /api/queues, then forget_cluster_node and join_cluster around a
 * stopped node. A node outside cluster mode answers as RabbitMQ's node alone does.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { startBroker, waitFor, type TestBroker } from '../helpers/broker.js';
import { within } from '../helpers/amqp-expect.js';
import { ctl, ctlOk, ctlRows } from '../helpers/warrenctl.js';
import { call } from '../mgmt/mgmt-kit.js';
import type { ClusterStatusDoc } from '../../src/mgmt/cluster-ops.js';

/** A cluster change (a node leaving, a leader elected) shows within this. */
const settleMs = 15_000;
const nodeNames = ['n1', 'n2', 'n3'];

/** cluster_status text (with -q) → its sections: title → lines. */
function sections(text: string): Map<string, string[]> {
  const chunks = text.trimEnd().split('\n\n');
  const out = new Map<string, string[]>();
  for (let i = 0; i + 1 < chunks.length; i += 2) out.set(chunks[i] as string, (chunks[i + 1] as string).split('\n'));
  return out;
}

async function status(dataDir: string): Promise<ClusterStatusDoc> {
  return JSON.parse(await ctlOk(dataDir, 'cluster_status', '--formatter', 'json')) as ClusterStatusDoc;
}

describe('cluster operations: warrenctl and the management API on a three-node cluster', () => {
  let cluster: TestCluster;
  let mgmt: string;
  const conns: amqp.ChannelModel[] = [];
  const dir = (node: string): string => cluster.node(node).dataDir;
  const rowOf = async (node: string, queue: string, ...columns: string[]): Promise<Record<string, unknown> | undefined> =>
    (await ctlRows(dir(node), 'list_queues', 'name', ...columns)).find((r) => r['name'] === queue);

  before(async () => {
    cluster = await startCluster({ nodes: 3, argsFor: { n1: ['--mgmt-port', '0'] } });
    const port = (await cluster.node('n1').broker.waitForLog(/management listening on http:\/\/127\.0\.0\.1:(\d+)/))[1];
    mgmt = `http://127.0.0.1:${port}`;
    // A quorum queue on all three nodes, declared on n1, with five confirmed messages.
    const c1 = await amqp.connect(cluster.node('n1').url());
    conns.push(c1);
    const ch1 = await c1.createConfirmChannel();
    await ch1.assertQueue('ops-quorum', { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    for (let i = 0; i < 5; i++) ch1.sendToQueue('ops-quorum', Buffer.from(`m${i}`), { persistent: true });
    await within(ch1.waitForConfirms(), 'confirms on the quorum queue', 10_000);
    // A classic queue declared on n2: it lives on n2 alone.
    const c2 = await amqp.connect(cluster.node('n2').url());
    conns.push(c2);
    const ch2 = await c2.createConfirmChannel();
    await ch2.assertQueue('ops-classic', { durable: true });
    for (let i = 0; i < 3; i++) ch2.sendToQueue('ops-classic', Buffer.from(`c${i}`), { persistent: true });
    await within(ch2.waitForConfirms(), 'confirms on the classic queue', 10_000);
  });

  after(async () => {
    for (const c of conns) await c.close().catch(() => {});
    await cluster?.stop();
  });

  test('cluster_status: three running disk nodes and the controller, as text and as JSON, on every node', async () => {
    for (const n of nodeNames) {
      const doc = await waitFor(async () => {
        const d = await status(dir(n));
        return d.controller !== null ? d : undefined;
      }, `a controller in ${n}'s cluster_status`, settleMs);
      assert.equal(doc.node, n);
      assert.equal(doc.cluster_name, cluster.clusterName);
      assert.equal(doc.clustered, true);
      assert.deepEqual(doc.running_nodes, nodeNames);
      assert.deepEqual(doc.disk_nodes, nodeNames);
      assert.deepEqual(doc.ram_nodes, []);
      assert.deepEqual(doc.forgotten_nodes, []);
      assert.ok(nodeNames.includes(doc.controller as string), `controller ${String(doc.controller)}`);
      assert.deepEqual(Object.keys(doc.listeners), nodeNames);
      const amqpListener = doc.listeners[n]?.find((l) => l.protocol === 'amqp');
      assert.equal(amqpListener?.port, cluster.node(n).broker.port, 'the node advertises its AMQP port');

      const text = await ctlOk(dir(n), 'cluster_status');
      assert.ok(text.startsWith(`Cluster status of node ${n} ...\nBasics\n\nCluster name: ${cluster.clusterName}\n`), text);
      const s = sections(await ctlOk(dir(n), '-q', 'cluster_status'));
      assert.deepEqual(s.get('Disk Nodes'), nodeNames, text);
      assert.deepEqual(s.get('Running Nodes'), nodeNames, text);
      assert.deepEqual(s.get('Network Partitions'), ['(none)']);
      assert.equal(s.get('Controller')?.length, 1);
      assert.ok(nodeNames.includes(s.get('Controller')?.[0] ?? ''), text);
      assert.deepEqual(s.get('Forgotten Nodes'), ['(none)']);
      assert.ok(s.get('Listeners')?.includes(`Node: ${n}, interface: 127.0.0.1, port: ${cluster.node(n).broker.port}, protocol: amqp, purpose: AMQP 0-9-1`), text);
    }
  });

  test("cluster_status: each node's replica of the quorum queue with role, epoch, watermarks and the followers' acks", async () => {
    const leader = String((await rowOf('n1', 'ops-quorum', 'leader'))?.['leader']);
    // Every follower acked all five records and is in sync (the leader's view).
    const led = await waitFor(async () => {
      const r = (await status(dir(leader))).replicas.find((x) => x.queue === 'ops-quorum');
      const done = r !== undefined && r.followers.length === 2 && r.followers.every((f) => f.in_sync && f.acked_offset >= r.commit_offset) && r.commit_offset >= 0;
      return done ? r : undefined;
    }, `the leader ${leader} to report both followers in sync`, settleMs);
    assert.equal(led.role, 'leader');
    assert.ok(led.epoch >= 1);
    assert.ok(led.log_end > led.commit_offset, `log end ${led.log_end} is past the commit offset ${led.commit_offset}`);
    assert.deepEqual(led.followers.map((f) => f.node).sort(), nodeNames.filter((n) => n !== leader));
    for (const n of nodeNames.filter((x) => x !== leader)) {
      const r = (await status(dir(n))).replicas.find((x) => x.queue === 'ops-quorum');
      assert.equal(r?.role, 'follower', `${n} follows`);
      assert.equal(r?.leader, leader);
      assert.equal(r?.epoch, led.epoch);
    }
    const s = sections(await ctlOk(dir(leader), '-q', 'cluster_status'));
    const lines = s.get(`Replicas on node ${leader}`) ?? [];
    assert.ok(lines.some((l) => l.startsWith(`Queue: ops-quorum, role: leader, epoch: ${led.epoch}, `)), lines.join('\n'));
    assert.equal(lines.filter((l) => /^ {2}Follower: n\d, acked offset: \d+, in sync: true, /.test(l)).length, 2, lines.join('\n'));
  });

  test('list_queues: type, leader, members, online, in_sync, epoch and the leader\'s message count on every node', async () => {
    const cols = ['type', 'leader', 'members', 'online', 'in_sync', 'epoch', 'messages', 'shard'];
    const rows = await Promise.all(nodeNames.map((n) => waitFor(async () => {
      const r = await rowOf(n, 'ops-quorum', ...cols);
      return r !== undefined && (r['in_sync'] as string[]).length === 3 ? r : undefined;
    }, `ops-quorum fully in sync as ${n} lists it`, settleMs)));
    const leader = rows[0]?.['leader'];
    for (const [i, r] of rows.entries()) {
      const n = nodeNames[i] as string;
      assert.equal(r['type'], 'quorum');
      assert.equal(r['leader'], leader, `${n} names the same leader`);
      assert.deepEqual([...(r['members'] as string[])].sort(), nodeNames);
      assert.deepEqual([...(r['online'] as string[])].sort(), nodeNames);
      assert.ok((r['epoch'] as number) >= 1);
      assert.equal(r['messages'], 5, `${n} counts the leader's messages`);
      assert.equal(r['shard'] === null, n !== leader, `only the leader ${String(leader)} holds the queue on a shard`);
    }
    // The classic queue declared on n2 is led by n2 alone; n1 and n3 ask n2 for its count.
    for (const n of nodeNames) {
      const r = await rowOf(n, 'ops-classic', 'type', 'leader', 'members', 'messages');
      assert.deepEqual(r, { name: 'ops-classic', type: 'classic', leader: 'n2', members: ['n2'], messages: 3 }, `as ${n} lists it`);
    }
    // The table prints lists as rabbitmqctl does.
    const table = await ctlOk(dir('n3'), '-q', 'list_queues', 'name', 'type', 'leader', 'members');
    const lines = table.trimEnd().split('\n');
    assert.equal(lines[0], 'name\ttype\tleader\tmembers');
    assert.ok(lines.includes('ops-classic\tclassic\tn2\t[n2]'), table);
  });

  test('management API: /api/nodes lists every member; /api/queues carries leader, members, online, in_sync, epoch', async () => {
    const nodes = (await call(mgmt, '/api/nodes')).json as Record<string, unknown>[];
    assert.deepEqual(nodes.map((x) => x['name']), nodeNames);
    assert.ok(nodes.every((x) => x['running'] === true && x['type'] === 'disc'));
    assert.ok(typeof nodes[0]?.['mem_used'] === 'number', 'this node in full');
    const n2 = nodes[1] as Record<string, unknown>;
    assert.ok((n2['listeners'] as { protocol: string; port: number }[]).some((l) => l.protocol === 'amqp' && l.port === cluster.node('n2').broker.port));
    assert.equal((await call(mgmt, '/api/nodes/n3')).status, 200);
    assert.equal((await call(mgmt, '/api/nodes/nobody')).status, 404);

    const queues = (await call(mgmt, '/api/queues')).json as Record<string, unknown>[];
    const quorum = queues.find((q) => q['name'] === 'ops-quorum');
    assert.equal(quorum?.['type'], 'quorum');
    assert.equal(quorum?.['node'], quorum?.['leader']);
    assert.deepEqual([...(quorum?.['members'] as string[])].sort(), nodeNames);
    assert.deepEqual([...(quorum?.['online'] as string[])].sort(), nodeNames);
    assert.ok(Array.isArray(quorum?.['in_sync']));
    assert.ok((quorum?.['epoch'] as number) >= 1);
    const classic = queues.find((q) => q['name'] === 'ops-classic');
    assert.equal(classic?.['node'], 'n2', 'a queue led elsewhere shows its leader node');
    assert.equal(classic?.['shard'], null);
    assert.equal(classic?.['messages'], 3);
  });

  test('forget_cluster_node refuses running nodes; forgets a stopped one; join_cluster re-admits it', async () => {
    const self = await ctl(dir('n1'), 'forget_cluster_node', 'n1');
    assert.equal(self.code, 70);
    assert.match(self.stderr, /^Error:\nwarren on node n1 must be stopped before it can be removed \(it is the node this command runs on/);
    const running = await ctl(dir('n1'), 'forget_cluster_node', 'n3');
    assert.equal(running.code, 70);
    assert.match(running.stderr, /warren on node n3 must be stopped before it can be removed/);
    assert.equal((await ctlOk(dir('n1'), 'join_cluster', 'n3')).trimEnd().split('\n').pop(), 'The node is already a member of this cluster');

    await cluster.node('n3').broker.stop({ keepData: true });
    const stopped = await waitFor(async () => {
      const d = await status(dir('n1'));
      return d.running_nodes.length === 2 ? d : undefined;
    }, 'n3 to leave the running nodes', settleMs);
    assert.deepEqual(stopped.running_nodes, ['n1', 'n2']);
    assert.deepEqual(stopped.disk_nodes, nodeNames, 'a stopped member is still a disk node');
    const listed = (await call(mgmt, '/api/nodes')).json as Record<string, unknown>[];
    assert.deepEqual(listed.map((x) => [x['name'], x['running']]), [['n1', true], ['n2', true], ['n3', false]]);

    const forgot = await ctl(dir('n1'), 'forget_cluster_node', 'n3');
    assert.equal(forgot.code, 0, forgot.stderr);
    assert.equal(forgot.stdout, 'Removing node n3 from the cluster\n');
    for (const n of ['n1', 'n2']) {
      const d = await status(dir(n));
      assert.deepEqual(d.forgotten_nodes, ['n3'], `${n} sees n3 forgotten`);
      assert.deepEqual(d.disk_nodes, ['n1', 'n2']);
      assert.deepEqual(d.running_nodes, ['n1', 'n2']);
    }
    const s = sections(await ctlOk(dir('n2'), '-q', 'cluster_status'));
    assert.deepEqual(s.get('Disk Nodes'), ['n1', 'n2']);
    assert.deepEqual(s.get('Forgotten Nodes'), ['n3']);
    assert.deepEqual(((await call(mgmt, '/api/nodes')).json as Record<string, unknown>[]).map((x) => x['name']), ['n1', 'n2']);
    // A forgotten node may not come back.
    await assert.rejects(cluster.restart('n3'), /removed from the cluster/);

    const joined = await ctl(dir('n2'), 'join_cluster', 'n3');
    assert.equal(joined.code, 0, joined.stderr);
    assert.equal(joined.stdout, `Re-admitting node n3 to the cluster\nNode n3 may join cluster ${cluster.clusterName} again: start it with --cluster and this cluster's --etcd and --cluster-name\n`);
    assert.deepEqual((await status(dir('n1'))).forgotten_nodes, []);
    await cluster.restart('n3');
    const back = await waitFor(async () => {
      const d = await status(dir('n1'));
      return d.running_nodes.length === 3 ? d : undefined;
    }, 'n3 running again', settleMs);
    assert.deepEqual(back.disk_nodes, nodeNames);
    assert.deepEqual((await status(dir('n3'))).running_nodes, nodeNames);
    await waitFor(async () => (await rowOf('n3', 'ops-quorum', 'messages'))?.['messages'] === 5, 'n3 to list the quorum queue with its messages again', settleMs);
  });
});

describe('cluster operations on a node outside cluster mode', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startBroker({ args: ['--node-name', 'solo', '--cluster-name', 'solo-cluster'] });
  });
  after(async () => {
    assert.equal(await broker.stop(), 0);
  });

  test('cluster_status shows the node alone, as RabbitMQ does; placement columns name it', async () => {
    const doc = JSON.parse(await ctlOk(broker.dataDir, 'cluster_status', '--formatter', 'json')) as ClusterStatusDoc;
    assert.equal(doc.clustered, false);
    assert.equal(doc.cluster_name, 'solo-cluster');
    assert.deepEqual(doc.disk_nodes, ['solo']);
    assert.deepEqual(doc.running_nodes, ['solo']);
    assert.equal(doc.controller, null);
    const text = await ctlOk(broker.dataDir, 'cluster_status');
    assert.ok(text.startsWith('Cluster status of node solo ...\nBasics\n\nCluster name: solo-cluster\n'), text);
    const s = sections(await ctlOk(broker.dataDir, '-q', 'cluster_status'));
    assert.deepEqual(s.get('Disk Nodes'), ['solo']);
    assert.deepEqual(s.get('Running Nodes'), ['solo']);
    assert.equal(s.has('Controller'), false, 'no warren cluster sections on a node alone');

    const c = await amqp.connect(broker.url);
    const ch = await c.createChannel();
    await ch.assertQueue('solo-q', { durable: true });
    const rows = await ctlRows(broker.dataDir, 'list_queues', 'name', 'type', 'leader', 'members', 'online', 'in_sync', 'epoch', 'shard');
    const { shard, ...placement } = rows.find((r) => r['name'] === 'solo-q') ?? {};
    assert.deepEqual(placement, { name: 'solo-q', type: 'classic', leader: 'solo', members: ['solo'], online: ['solo'], in_sync: ['solo'], epoch: null });
    assert.equal(typeof shard, 'number', 'the shard that holds it');
    await c.close();
  });

  test('forget_cluster_node and join_cluster fail as on a node alone', async () => {
    const self = await ctl(broker.dataDir, 'forget_cluster_node', 'solo');
    assert.equal(self.code, 70);
    assert.match(self.stderr, /warren on node solo must be stopped before it can be removed/);
    const other = await ctl(broker.dataDir, 'forget_cluster_node', 'n9');
    assert.equal(other.code, 70);
    assert.match(other.stderr, /not in cluster mode/);
    const join = await ctl(broker.dataDir, 'join_cluster', 'n9');
    assert.equal(join.code, 70);
    assert.match(join.stderr, /not in cluster mode/);
  });
});
