/**
 * The suspect rule (death-evidence.ts) against a real etcd and a real controller: a closed
 * replication link is no evidence that its peer is gone. Only a peer whose port refuses
 * connections has its leases revoked and its queues failed over before its lease ends.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { describe, test } from 'node:test';
import { ControlPlane, type MemberInfo } from '../../src/cluster/control-plane.js';
import { Controller, chooseLeader } from '../../src/cluster/controller.js';
import { PeerDeathCheck } from '../../src/cluster/death-evidence.js';
import { PlacementStore } from '../../src/cluster/placement.js';
import { createLogger } from '../../src/node/logger.js';
import { etcdForSuite } from '../helpers/etcd.js';
import { waitFor } from '../helpers/broker.js';

async function listening(): Promise<{ server: Server; address: string }> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const a = server.address();
  assert.ok(a !== null && typeof a === 'object');
  return { server, address: `127.0.0.1:${a.port}` };
}

describe('peer death evidence (real etcd)', () => {
  const etcd = etcdForSuite();
  const cleanup = etcd.cleanup;


  test("a closed link to a peer whose port answers moves none of its queues; once the port refuses, its lease is revoked and its queues fail over", async () => {
    const lines: string[] = [];
    const log = createLogger('info', (l) => lines.push(l));
    const n1Port = await listening();
    cleanup.push(() => new Promise<void>((resolve) => n1Port.server.close(() => resolve())));
    const startedAtMs = Date.now();
    const member = (name: string, peer: string): MemberInfo => ({ name, amqp: '127.0.0.1:1', peer, repl: '127.0.0.1:3', startedAtMs });
    const planes = new Map<string, ControlPlane>();
    for (const [name, peer] of [['n1', n1Port.address], ['n2', '127.0.0.1:2'], ['n3', '127.0.0.1:2']] as const) {
      const p = new ControlPlane({ hosts: [etcd.endpoint], clusterName: 'deaths', leaseMs: 3000 });
      await p.join(member(name, peer));
      planes.set(name, p);
      cleanup.push(() => p.close());
    }
    const n2 = planes.get('n2');
    assert.ok(n2 !== undefined);
    const store = new PlacementStore(n2.ns);
    await store.create('/', 'q', { type: 'quorum', leader: 'n1', members: ['n1', 'n2', 'n3'], isr: ['n1', 'n2', 'n3'], epoch: 1, minInsync: 2 });
    const asked: string[] = [];
    const controller = new Controller({
      plane: n2,
      placements: store,
      nodeName: 'n2',
      retryMs: 50,
      pickNewLeader: async (q, candidates) => {
        asked.push(q.name);
        return chooseLeader(q.placement, candidates, [
          { node: 'n2', epoch: 1, offset: 9 },
          { node: 'n3', epoch: 1, offset: 7 },
        ]);
      },
    });
    cleanup.unshift(() => controller.stop());
    controller.start();
    await waitFor(() => controller.isController, 'n2 to be the controller');
    await controller.idle();

    const known = new Map((await n2.members()).map((m) => [m.name, m]));
    const gone: string[] = [];
    const deaths = new PeerDeathCheck({
      ns: n2.ns,
      log,
      member: (node) => known.get(node),
      onGone: (node) => {
        gone.push(node);
        controller.suspect(node);
      },
    });

    // A link to n1 closed (a restart of its follower stream, a blip) while n1 still answers.
    assert.equal(await deaths.linkClosed('n1'), false, "n1's port answers: no evidence it is gone");
    await controller.idle();
    assert.deepEqual(gone, []);
    assert.deepEqual(asked, [], 'no failover was even considered');
    const still = await store.get('/', 'q');
    assert.equal(still?.leader, 'n1');
    assert.equal(still?.epoch, 1);
    assert.ok((await n2.members()).some((m) => m.name === 'n1'), "n1's lease lives");

    // n1's process is gone: its port refuses connections.
    await new Promise<void>((resolve) => n1Port.server.close(() => resolve()));
    assert.equal(await deaths.linkClosed('n1'), true, "n1's port refuses: it is gone");
    assert.deepEqual(gone, ['n1']);
    const moved = await waitFor(async () => {
      const p = await store.get('/', 'q');
      return p?.leader !== 'n1' ? p : undefined;
    }, 'the queue to fail over from n1', 5_000);
    assert.equal(moved.leader, 'n2', 'the longest log');
    assert.equal(moved.epoch, 2);
    assert.ok(lines.some((l) => l.includes(`node n1 is down (its links closed and ${n1Port.address} refuses connections)`)), 'the revocation is logged');
  });
});
