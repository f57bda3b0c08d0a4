/**
 * Membership changes of replicated queues after declaration (rabbitmq-queues add_member,
 * delete_member, grow, shrink, and forget_cluster_node's removal from every queue).
 *
 * First the rules as pure functions: a member added counts against the quorum at once, one
 * change at a time, the refusals. Then a real three-node cluster (real etcd, real node
 * processes, the real warrenctl): a quorum queue of two grows to three and survives the kill of
 * its original leader with every confirmed message; a follower removed deletes its replica
 * while publishing goes on; shrink and grow print rabbitmq-queues' table; bad input is refused
 * with a clear error and a non-zero exit while the nodes stay up; forgetting a stopped node
 * removes it from every queue, and it deletes its replicas when it comes back.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import amqp from 'amqplib';
import { startCluster, withNodeLogs, type TestCluster } from '../helpers/cluster.js';
import { waitFor } from '../helpers/broker.js';
import { within } from '../helpers/amqp-expect.js';
import { ctl, ctlOk, ctlRows } from '../helpers/warrenctl.js';
import { commitCandidate } from '../../src/replication/watermark.js';
import { LogKind, enqueuePayload, startNode, waitFor as waitUntil, withTempDir, type TestNode } from '../replication/replication-kit.js';
import { addRefusal, changeBlocker, growsInto, minInsyncFor, removeRefusal, withMemberAdded, withMemberRemoved } from '../../src/cluster/membership.js';
import type { PlacementSpec } from '../../src/cluster/placement.js';
import type { ClusterStatusDoc } from '../../src/mgmt/cluster-ops.js';

/** A cluster change (a failover, a follower catching up, a node leaving) shows within this. */
const settleMs = 20_000;

function spec(over: Partial<PlacementSpec> = {}): PlacementSpec {
  return { type: 'quorum', leader: 'n1', members: ['n1', 'n2', 'n3'], isr: ['n1', 'n2', 'n3'], epoch: 4, minInsync: 2, ...over };
}

describe('membership rules', () => {
  test('a member added counts against the quorum at once: four members commit what three of them hold', () => {
    const rule = (members: string[]) => ({ type: 'quorum' as const, leader: 'n1', members, isr: ['n1', 'n2', 'n3'], minInsync: 1 });
    const held = new Map([['n1', 10], ['n2', 10], ['n3', 7], ['n4', -1]]);
    const heldBy = (n: string): number => held.get(n) ?? -1;
    assert.equal(commitCandidate(rule(['n1', 'n2', 'n3']), heldBy), 10, 'three members: two acks commit');
    assert.equal(commitCandidate(rule(['n1', 'n2', 'n3', 'n4']), heldBy), 7, 'n4 added and empty: the third ack is needed');
    held.set('n3', -1);
    assert.equal(commitCandidate(rule(['n1', 'n2', 'n3', 'n4']), heldBy), -1, 'two of four hold nothing: nothing commits');
    assert.equal(commitCandidate(rule(['n1', 'n2']), heldBy), 10, 'back to two members: both acks');
  });

  test('a change adds or removes one node, keeps the rest, and is pending until the leader applies it', () => {
    const added = withMemberAdded(spec(), 'n4', minInsyncFor(spec(), 4, 1));
    assert.deepEqual(added, { ...spec(), members: ['n1', 'n2', 'n3', 'n4'], isr: ['n1', 'n2', 'n3'], minInsync: 3, membersPending: true });
    const removed = withMemberRemoved(spec(), 'n3', minInsyncFor(spec(), 2, 1));
    assert.deepEqual(removed, { ...spec(), members: ['n1', 'n2'], isr: ['n1', 'n2'], minInsync: 2, membersPending: true });
    assert.equal(changeBlocker(added, 'n2', 'remove'), 'change_pending', 'one change at a time');
    assert.equal(changeBlocker(spec(), 'n1', 'remove'), 'leader_moving', 'a leader is moved off first');
    assert.equal(changeBlocker(spec(), 'n2', 'remove'), undefined);
    const mirrored = spec({ type: 'mirrored', minInsync: 3 });
    assert.equal(minInsyncFor(mirrored, 2, 3), 2, "a mirrored queue's min-insync never exceeds its members");
    assert.equal(minInsyncFor(mirrored, 4, 3), 3);
  });

  test('refusals: no queue, a classic queue, a stopped node, the last member, a running leader; adding a member or removing a non-member is no refusal', () => {
    const running = new Set(['n1', 'n2', 'n3', 'n4']);
    const kind = (e: { refusal: string } | undefined): string | undefined => e?.refusal;
    assert.equal(kind(addRefusal('/', 'q', undefined, 'n4', running)), 'not_found');
    assert.equal(kind(addRefusal('/', 'q', spec({ type: 'classic', members: ['n1'], isr: ['n1'] }), 'n4', running)), 'not_replicated');
    assert.equal(kind(addRefusal('/', 'q', spec(), 'n5', running)), 'node_not_running');
    assert.equal(kind(addRefusal('/', 'q', spec(), 'n2', running)), undefined, 'already a member: a no-op, not an error');
    assert.equal(kind(addRefusal('/', 'q', spec(), 'n4', running)), undefined);
    assert.equal(kind(removeRefusal('/', 'q', spec(), 'n4', running)), undefined, 'not a member: a no-op, not an error');
    assert.equal(kind(removeRefusal('/', 'q', spec({ members: ['n1'], isr: ['n1'] }), 'n1', running)), 'last_node');
    assert.equal(kind(removeRefusal('/', 'q', spec(), 'n1', running)), 'leader_running');
    assert.equal(kind(removeRefusal('/', 'q', spec(), 'n1', new Set(['n2', 'n3']))), undefined, 'a stopped leader is failed over, then removed');
    assert.equal(growsInto(spec(), 'n4', 'all'), true);
    assert.equal(growsInto(spec(), 'n4', 'even'), false, 'even: only queues with an even member count');
    assert.equal(growsInto(spec({ members: ['n1', 'n2'], isr: ['n1', 'n2'] }), 'n4', 'even'), true);
    assert.equal(growsInto(spec(), 'n3', 'all'), false, 'already a member');
    assert.equal(growsInto(spec({ type: 'classic', members: ['n1'], isr: ['n1'] }), 'n4', 'all'), false);
  });
});

describe("a leader's replicator when its members change", () => {
  const queueId = 11;
  const name = '/grown';
  const members = (...nodes: TestNode[]) => nodes.map((n) => n.member);
  const acked = (leader: TestNode, node: string): number =>
    leader.replicator.status().find((s) => s.queueId === queueId)?.followers.find((f) => f.node === node)?.ackedOffset ?? -2;

  test('a member added counts at once (three acks of four); its fetch before the leader counts it is held, not dropped', async () => {
    await withTempDir(async (dir) => {
      const nodes = await Promise.all(['a', 'b', 'c', 'd'].map((n) => startNode(n, join(dir, n))));
      const [la, lb, lc, ld] = nodes as [TestNode, TestNode, TestNode, TestNode];
      try {
        await la.replicator.lead({ queueId, name, epoch: 1, type: 'quorum', members: members(la, lb, lc), isr: ['a', 'b', 'c'], minInsync: 2 });
        for (const f of [lb, lc]) f.replicator.follow({ queueId, name, epoch: 1, leader: la.member });
        la.replicator.append(queueId, LogKind.enqueue, enqueuePayload(queueId, 'one'));
        await waitUntil(() => la.sink.committed(queueId) === 1, 'offset 1 committed by the three members');

        // c stops; d dials before the leader's placement names it.
        await lc.replicator.stop(queueId);
        ld.replicator.follow({ queueId, name, epoch: 1, leader: la.member });
        await waitUntil(() => la.logs.some((l) => l.includes('fetch from d, which is not a member')), "the leader holding d's fetch");
        la.replicator.append(queueId, LogKind.enqueue, enqueuePayload(queueId, 'two'));
        await waitUntil(() => la.sink.committed(queueId) === 2, 'offset 2 committed by a and b, two of three');

        // d added: the held fetch attaches and d catches up.
        await la.replicator.updatePlacement(queueId, { epoch: 1, members: members(la, lb, lc, ld), isr: ['a', 'b', 'c'], minInsync: 3, leader: la.member });
        await waitUntil(() => acked(la, 'd') === 2, 'd to catch up through its held fetch');

        // With d stopped as well, a and b are two of four: not a majority.
        await ld.replicator.stop(queueId);
        la.replicator.append(queueId, LogKind.enqueue, enqueuePayload(queueId, 'three'));
        await waitUntil(() => acked(la, 'b') === 3, "b's ack of offset 3");
        assert.equal(la.sink.committed(queueId), 2, 'two acks of four commit nothing');
        ld.replicator.follow({ queueId, name, epoch: 1, leader: la.member });
        await waitUntil(() => la.sink.committed(queueId) === 3, 'offset 3 committed once d, the third of four, holds it');
      } finally {
        await Promise.all(nodes.map((n) => n.replicator.close()));
      }
    });
  });
});

describe('queue membership changes on a three-node cluster', () => {
  let cluster: TestCluster;
  const conns: amqp.ChannelModel[] = [];
  const dir = (node: string): string => cluster.node(node).dataDir;
  const isUp = (node: string): boolean => {
    const p = cluster.node(node).broker.process;
    return p.exitCode === null && p.signalCode === null;
  };
  const rowOf = async (node: string, queue: string): Promise<Record<string, unknown> | undefined> =>
    (await ctlRows(dir(node), 'list_queues', 'name', 'type', 'leader', 'members', 'in_sync', 'epoch', 'messages')).find((r) => r['name'] === queue);
  const sorted = (v: unknown): string[] => [...(v as string[])].sort();
  const status = async (node: string): Promise<ClusterStatusDoc> => JSON.parse(await ctlOk(dir(node), 'cluster_status', '--formatter', 'json')) as ClusterStatusDoc;
  const replicaDirs = (node: string): string[] => {
    const root = join(dir(node), 'replicas');
    return existsSync(root) ? readdirSync(root) : [];
  };

  async function connect(node: string): Promise<amqp.ChannelModel> {
    const c = await amqp.connect(cluster.node(node).url());
    c.on('error', () => {});
    conns.push(c);
    return c;
  }

  /** Publishes bodies with confirms through node and waits for every confirm. */
  async function publishConfirmed(node: string, queue: string, bodies: string[]): Promise<void> {
    const c = await connect(node);
    const ch = await c.createConfirmChannel();
    for (const b of bodies) ch.sendToQueue(queue, Buffer.from(b), { persistent: true });
    await within(ch.waitForConfirms(), `${bodies.length} confirms on ${queue} through ${node}`, settleMs);
    await ch.close();
  }

  /** Consumes through node until every wanted body came (acking each); returns how many deliveries there were. */
  async function consumeAll(node: string, queue: string, want: ReadonlySet<string>): Promise<number> {
    const c = await connect(node);
    const ch = await c.createChannel();
    await ch.prefetch(200);
    const got = new Set<string>();
    let deliveries = 0;
    await within(
      new Promise<void>((resolve, reject) => {
        ch.consume(queue, (m) => {
          if (m === null) return reject(new Error(`the consumer of ${queue} on ${node} was cancelled`));
          deliveries += 1;
          got.add(m.content.toString());
          ch.ack(m);
          if ([...want].every((w) => got.has(w))) resolve();
        }).catch(reject);
      }),
      `every confirmed message of ${queue} consumed through ${node}`,
      settleMs,
    );
    await ch.close();
    return deliveries;
  }

  /** The queue's leader and epoch once the leader logged that it serves that epoch (the newest epoch any running node logged). */
  function servingLeader(queue: string): { node: string; epoch: number } | undefined {
    let best: { node: string; epoch: number } | undefined;
    for (const n of cluster.nodes) {
      if (!isUp(n.name)) continue;
      for (const m of n.broker.log().matchAll(new RegExp(`cluster: leading ${queue} at epoch (\\d+)`, 'g'))) {
        const epoch = Number(m[1]);
        if (best === undefined || epoch > best.epoch) best = { node: n.name, epoch };
      }
    }
    return best;
  }

  async function declare(node: string, queue: string, args: Record<string, unknown> = {}): Promise<void> {
    const c = await connect(node);
    const ch = await c.createChannel();
    await ch.assertQueue(queue, { durable: true, arguments: args });
    await ch.close();
  }

  /** Waits until node's listing shows the queue with these members, all of them in sync. */
  async function settledMembers(node: string, queue: string, members: string[]): Promise<Record<string, unknown>> {
    const want = JSON.stringify([...members].sort());
    return waitFor(async () => {
      const r = await rowOf(node, queue);
      return r !== undefined && JSON.stringify(sorted(r['members'])) === want && JSON.stringify(sorted(r['in_sync'])) === want ? r : undefined;
    }, `${queue} with members and in_sync ${want} as ${node} lists it`, settleMs);
  }

  before(async () => {
    cluster = await startCluster({ nodes: 3 });
  });

  after(async () => {
    for (const c of conns) await c.close().catch(() => {});
    await cluster?.stop();
  });

  test('add_member: a third node catches up and joins members and in_sync; with the original leader killed, every confirmed message is consumed', () =>
    withNodeLogs(cluster, async () => {
      const queue = 'grow-q';
      await declare('n1', queue, { 'x-queue-type': 'quorum', 'x-quorum-initial-group-size': 2 });
      const declared = await waitFor(() => rowOf('n1', queue), 'the queue listed');
      const members = sorted(declared['members']);
      assert.equal(members.length, 2, `two members: ${members.join(', ')}`);
      assert.equal(declared['leader'], 'n1', 'the declaring node leads');
      const third = ['n2', 'n3'].find((n) => !members.includes(n)) as string;
      const confirmed = new Set<string>();
      const firstBatch = Array.from({ length: 400 }, (_, i) => `m${i}`);
      await publishConfirmed('n1', queue, firstBatch);
      for (const b of firstBatch) confirmed.add(b);

      const added = await ctl(dir('n2'), 'add_member', queue, third);
      assert.equal(added.code, 0, added.stderr);
      assert.equal(added.stdout, `Adding a replica for queue ${queue} on node ${third}...\n`);
      // Every node lists the new member, in sync once it caught up.
      for (const n of ['n1', 'n2', 'n3']) await settledMembers(n, queue, ['n1', 'n2', 'n3']);
      const caughtUp = await waitFor(async () => {
        const r = (await status('n1')).replicas.find((x) => x.queue === queue);
        const f = r?.followers.find((x) => x.node === third);
        return r !== undefined && f !== undefined && f.in_sync && f.acked_offset === r.log_end - 1 ? r : undefined;
      }, `${third} acked the whole log`, settleMs);
      assert.equal(caughtUp.role, 'leader');
      const copy = (await status(third)).replicas.find((x) => x.queue === queue);
      assert.equal(copy?.role, 'follower');
      assert.equal(copy?.live_messages, 400, `${third} holds every message`);

      const secondBatch = Array.from({ length: 100 }, (_, i) => `m${400 + i}`);
      await publishConfirmed(third, queue, secondBatch);
      for (const b of secondBatch) confirmed.add(b);

      const before = servingLeader(queue);
      assert.deepEqual(before, { node: 'n1', epoch: 1 });
      await cluster.kill('n1');
      const next = await waitFor(() => {
        const l = servingLeader(queue);
        return l !== undefined && l.epoch > 1 ? l : undefined;
      }, 'a new leader serving the queue', settleMs);
      assert.ok(['n2', 'n3'].includes(next.node), `new leader ${next.node}`);
      const consumeVia = next.node === 'n2' ? 'n3' : 'n2';
      await waitFor(async () => (await rowOf(consumeVia, queue))?.['leader'] === next.node, `${consumeVia} to know the new leader`, settleMs);
      const deliveries = await consumeAll(consumeVia, queue, confirmed);
      assert.ok(deliveries >= confirmed.size);

      await cluster.restart('n1');
      await waitFor(async () => (await status('n2')).running_nodes.length === 3, 'n1 running again', settleMs);
    }));

  test('delete_member of a follower: it leaves members and in_sync, its replica directory is deleted, confirms go on', () =>
    withNodeLogs(cluster, async () => {
      const queue = 'shrink-q';
      const dirsBefore = new Set(replicaDirs('n3'));
      await declare('n1', queue, { 'x-queue-type': 'quorum' });
      await settledMembers('n1', queue, ['n1', 'n2', 'n3']);
      await publishConfirmed('n2', queue, ['a0', 'a1', 'a2']);
      const queueDir = await waitFor(() => {
        const fresh = replicaDirs('n3').filter((d) => !dirsBefore.has(d));
        return fresh.length === 1 ? join(dir('n3'), 'replicas', fresh[0] as string) : undefined;
      }, "n3's replica directory of the new queue", settleMs);

      const removed = await ctl(dir('n1'), 'delete_member', queue, 'n3');
      assert.equal(removed.code, 0, removed.stderr);
      assert.equal(removed.stdout, `Removing a replica of queue ${queue} on node n3...\n`);
      for (const n of ['n1', 'n2', 'n3']) await settledMembers(n, queue, ['n1', 'n2']);
      await waitFor(() => !existsSync(queueDir), `${queueDir} deleted`, settleMs);
      assert.equal((await status('n3')).replicas.some((r) => r.queue === queue), false, 'n3 holds no replica of it');

      // Publishing with confirms goes on: through the removed node (forwarded) and through a member.
      await publishConfirmed('n3', queue, ['b0', 'b1']);
      await publishConfirmed('n2', queue, ['b2']);
      await waitFor(async () => (await rowOf('n1', queue))?.['messages'] === 6, 'six messages in the queue', settleMs);
    }));

  test('shrink NODE removes it from every replicated queue, grow NODE all adds it back, as rabbitmq-queues tables', () =>
    withNodeLogs(cluster, async () => {
      await ctlOk(dir('n1'), 'set_policy', 'ha-all', '^ha\\.', '{"ha-mode":"all","min-insync":3}', '--apply-to', 'queues');
      await declare('n1', 'ha.q');
      await settledMembers('n1', 'ha.q', ['n1', 'n2', 'n3']);
      await declare('n1', 'classic-q');
      // The node to move: one that leads no queue (grow-q moved to n2 or n3 when n1 was killed).
      const growLeader = String((await rowOf('n1', 'grow-q'))?.['leader']);
      const node = growLeader === 'n2' ? 'n3' : 'n2';
      const replicated = async (): Promise<Record<string, unknown>[]> =>
        (await ctlRows(dir('n1'), 'list_queues', 'name', 'type', 'members', 'in_sync')).filter((r) => r['name'] !== 'classic-q');
      const holding = (await replicated()).filter((r) => (r['members'] as string[]).includes(node)).map((r) => r['name'] as string).sort();
      assert.ok(holding.includes('grow-q') && holding.includes('ha.q'), holding.join(', '));

      const shrunk = await ctl(dir('n1'), 'shrink', node);
      assert.equal(shrunk.code, 0, shrunk.stderr);
      const lines = shrunk.stdout.trimEnd().split('\n');
      assert.equal(lines[0], `Shrinking replicated queues on ${node}...`);
      assert.equal(lines[1], 'vhost\tname\tsize\tresult');
      const after = await waitFor(async () => {
        const rs = await replicated();
        return rs.every((r) => !(r['members'] as string[]).includes(node)) ? rs : undefined;
      }, `every replicated queue without ${node}`, settleMs);
      const sizes = new Map(after.map((r) => [r['name'] as string, (r['members'] as string[]).length]));
      assert.deepEqual(lines.slice(2), holding.map((q) => `/\t${q}\t${sizes.get(q) ?? '?'}\tok`), shrunk.stdout);
      // min-insync 3 of a mirrored queue that has two members now: its confirms must not wait for a third.
      await publishConfirmed(node, 'ha.q', ['h0']);

      const none = await ctl(dir('n3'), '-q', 'grow', node, 'all', '--queue-pattern', '^no-such-queue$');
      assert.equal(none.code, 0, none.stderr);
      assert.equal(none.stdout, 'vhost\tname\tsize\tresult\n', 'no queue matches');
      const grown = await ctl(dir('n3'), 'grow', node, 'all', '--formatter', 'json');
      assert.equal(grown.code, 0, grown.stderr);
      const rows = JSON.parse(grown.stdout) as Record<string, unknown>[];
      // Every replicated queue lacks node now, shrink-q included if node was never one of its members.
      assert.deepEqual(rows.map((r) => r['name']), [...sizes.keys()].sort());
      for (const r of rows) {
        assert.equal(r['vhost'], '/');
        assert.equal(r['result'], 'ok');
        assert.equal(r['size'], (sizes.get(r['name'] as string) ?? 0) + 1);
      }
      for (const q of sizes.keys()) {
        const r = await waitFor(async () => (await replicated()).find((x) => x['name'] === q && (x['members'] as string[]).includes(node)), `${node} back in ${q}`, settleMs);
        await settledMembers('n1', q, r['members'] as string[]);
      }
      await publishConfirmed('n1', 'ha.q', ['h1']);
      const again = await ctl(dir('n1'), '-q', 'grow', node, 'all');
      assert.equal(again.stdout, 'vhost\tname\tsize\tresult\n', 'a member everywhere already: nothing to grow');
    }));

  test('bad input: unknown queue or node, a classic queue, a running leader, the last member, missing arguments; re-adding a member and removing a non-member are no-ops', () =>
    withNodeLogs(cluster, async () => {
      await declare('n1', 'solo-q', { 'x-queue-type': 'quorum', 'x-quorum-initial-group-size': 1 });
      await waitFor(() => rowOf('n1', 'solo-q'), 'solo-q listed');
      const leader = String((await rowOf('n1', 'grow-q'))?.['leader']);
      const refusals: [string[], number, RegExp][] = [
        [['add_member', 'no-such-q', 'n2'], 69, /^Error:\nqueue 'no-such-q' in vhost '\/' does not exist \(not_found\)\n$/],
        [['add_member', '-p', 'no-such-vhost', 'grow-q', 'n2'], 69, /queue 'grow-q' in vhost 'no-such-vhost' does not exist \(not_found\)/],
        [['add_member', 'grow-q', 'n9'], 69, /node n9 is not a running member of the cluster \(node_not_running\)/],
        [['add_member', 'classic-q', 'n2'], 69, /Cannot add members to a classic queue: queue 'classic-q' in vhost '\/' is not replicated/],
        [['add_member', 'grow-q'], 64, /not enough arguments/],
        [['add_member'], 64, /not enough arguments/],
        [['add_member', 'grow-q', 'n2', 'n3'], 64, /too many arguments/],
        [['delete_member', 'grow-q'], 64, /not enough arguments/],
        [['delete_member', 'classic-q', 'n2'], 69, /Cannot remove members from a classic queue/],
        [['delete_member', 'grow-q', leader], 69, new RegExp(`node ${leader} leads queue 'grow-q' in vhost '/' and is running: a leader is not removed`)],
        [['delete_member', 'solo-q', 'n1'], 69, /the last node cannot be removed \(last_node\)/],
        [['grow', 'n9', 'all'], 69, /node n9 is not a running member of the cluster/],
        [['grow', 'n2', 'some'], 64, /strategy 'some' is not recognised/],
        [['grow', 'n2'], 64, /not enough arguments/],
        [['grow', 'n2', 'all', '--queue-pattern', '('], 64, /--queue-pattern '\(' is not a regular expression/],
        [['shrink'], 64, /not enough arguments/],
        [['shrink', 'n9'], 69, /node n9 is not running and is not a member of any queue/],
      ];
      // Independent refusals (none changes anything), so they run side by side.
      const answers = await Promise.all(refusals.map(([args]) => ctl(dir('n2'), ...args)));
      for (const [i, [args, code, stderr]] of refusals.entries()) {
        const r = answers[i];
        assert.equal(r?.code, code, `warrenctl ${args.join(' ')}: ${r?.stderr}`);
        assert.match(r.stderr, stderr, `warrenctl ${args.join(' ')}`);
        assert.equal(r.stdout.includes('Error'), false, 'errors go to stderr');
      }
      // Nothing changed, and every node is up and answers.
      for (const n of ['n1', 'n2', 'n3']) {
        assert.ok(isUp(n), `${n} is up`);
        assert.equal((await ctl(dir(n), 'ping')).code, 0);
      }
      assert.deepEqual(sorted((await rowOf('n1', 'grow-q'))?.['members']), ['n1', 'n2', 'n3']);
      assert.deepEqual((await rowOf('n1', 'solo-q'))?.['members'], ['n1']);
      // Idempotent, as rabbitmq-queues is: a member added again and a non-member removed
      // succeed (banner only, exit 0) and change nothing.
      const readded = await ctl(dir('n2'), 'add_member', 'grow-q', 'n1');
      assert.equal(readded.code, 0, readded.stderr);
      assert.equal(readded.stdout, "Adding a replica for queue grow-q on node n1...\n");
      const unremoved = await ctl(dir('n2'), 'delete_member', 'solo-q', 'n3');
      assert.equal(unremoved.code, 0, unremoved.stderr);
      assert.equal(unremoved.stdout, "Removing a replica of queue solo-q on node n3...\n");
      assert.deepEqual(sorted((await rowOf('n1', 'grow-q'))?.['members']), ['n1', 'n2', 'n3']);
      assert.deepEqual((await rowOf('n1', 'solo-q'))?.['members'], ['n1']);
      // shrink goes on past the queues it must leave alone, with a row for each: n1 leads
      // ha.q and shrink-q (declared there) and is solo-q's only member; it leaves grow-q.
      const shrunk = await ctl(dir('n2'), '-q', 'shrink', 'n1', '--errors-only');
      assert.equal(shrunk.code, 0, shrunk.stderr);
      const lines = shrunk.stdout.trimEnd().split('\n');
      assert.equal(lines.length, 4, shrunk.stdout);
      assert.equal(lines[0], 'vhost\tname\tsize\tresult');
      assert.match(lines[1] ?? '', /^\/\tha\.q\t3\terror: node n1 leads queue 'ha\.q' in vhost '\/' and is running/);
      assert.match(lines[2] ?? '', /^\/\tshrink-q\t3\terror: node n1 leads queue 'shrink-q'/);
      assert.match(lines[3] ?? '', /^\/\tsolo-q\t1\terror: the last node cannot be removed \(last_node\)/);
      await waitFor(async () => JSON.stringify(sorted((await rowOf('n1', 'grow-q'))?.['members'])) === '["n2","n3"]', 'n1 out of grow-q (--errors-only hid that row)', settleMs);
      const back = await ctl(dir('n2'), '-q', 'grow', 'n1', 'all');
      assert.equal(back.stdout, 'vhost\tname\tsize\tresult\n/\tgrow-q\t3\tok\n');
      await settledMembers('n1', 'grow-q', ['n1', 'n2', 'n3']);
    }));

  test('forget_cluster_node of a stopped node removes it from every queue; back again, it deletes its replicas', () =>
    withNodeLogs(cluster, async () => {
      await cluster.node('n3').broker.stop({ keepData: true });
      await waitFor(async () => (await status('n1')).running_nodes.length === 2, 'n3 stopped', settleMs);
      const forgot = await ctl(dir('n1'), 'forget_cluster_node', 'n3');
      assert.equal(forgot.code, 0, forgot.stderr);
      assert.equal(forgot.stdout, 'Removing node n3 from the cluster\n');
      const rows = await waitFor(async () => {
        const rs = await ctlRows(dir('n2'), 'list_queues', 'name', 'type', 'leader', 'members', 'in_sync');
        return rs.every((r) => !(r['members'] as string[]).includes('n3')) ? rs : undefined;
      }, 'n3 out of every queue as n2 lists them', settleMs);
      for (const r of rows) {
        assert.equal((r['members'] as string[]).includes('n3'), false, `${String(r['name'])}: ${JSON.stringify(r)}`);
        assert.equal((r['in_sync'] as string[]).includes('n3'), false, `${String(r['name'])}: ${JSON.stringify(r)}`);
        assert.notEqual(r['leader'], 'n3');
      }
      assert.deepEqual((await status('n1')).disk_nodes, ['n1', 'n2']);
      await publishConfirmed('n2', 'grow-q', ['f0']);

      assert.ok(replicaDirs('n3').length > 0, 'n3 still has its replicas on disk');
      await ctlOk(dir('n2'), 'join_cluster', 'n3');
      await cluster.restart('n3');
      await waitFor(() => replicaDirs('n3').length === 0, "n3's replicas of queues it no longer belongs to deleted", settleMs);
      assert.match(cluster.node('n3').broker.log(), /cluster: no longer a member of grow-q \(members \[[^\]]*\]\): deleted its replica/);
      assert.equal((await rowOf('n3', 'grow-q'))?.['messages'], (await rowOf('n1', 'grow-q'))?.['messages'], 'n3 serves the queue by forwarding');
    }));
});
