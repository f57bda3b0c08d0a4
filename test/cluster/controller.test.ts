import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ControlPlane, type MemberInfo } from '../../src/cluster/control-plane.js';
import { chooseLeader, Controller, failoverPlacement, majority, planFailover, type ReplicaPosition } from '../../src/cluster/controller.js';
import { PlacementStore, type PlacedQueue, type PlacementSpec } from '../../src/cluster/placement.js';
import { etcdForSuite } from '../helpers/etcd.js';
import { waitFor } from '../helpers/broker.js';

const spec = (over: Partial<PlacementSpec> = {}): PlacementSpec => ({
  type: 'quorum',
  leader: 'n1',
  members: ['n1', 'n2', 'n3'],
  isr: ['n1', 'n2', 'n3'],
  epoch: 4,
  minInsync: 1,
  ...over,
});
const pos = (node: string, epoch: number, offset: number): ReplicaPosition => ({ node, epoch, offset });

describe('failover decisions (pure)', () => {
  test('majority', () => {
    assert.deepEqual([1, 2, 3, 4, 5].map(majority), [1, 2, 2, 3, 3]);
  });

  test('a live leader with live followers needs nothing; dead followers leave the ISR at the same epoch', () => {
    assert.deepEqual(planFailover(spec(), new Set()), { kind: 'healthy' });
    assert.deepEqual(planFailover(spec(), new Set(['n9'])), { kind: 'healthy' }, 'a dead non-member changes nothing');
    assert.deepEqual(planFailover(spec(), new Set(['n3'])), { kind: 'shrinkIsr', next: spec({ isr: ['n1', 'n2'] }) });
    assert.deepEqual(planFailover(spec({ isr: ['n1', 'n2'] }), new Set(['n3'])), { kind: 'healthy' }, 'a dead member already out of the ISR');
  });

  test('a dead quorum leader: any live member may follow it, while a majority lives', () => {
    assert.deepEqual(planFailover(spec({ isr: ['n1'] }), new Set(['n1'])), { kind: 'elect', candidates: ['n2', 'n3'] }, 'quorum candidates are members, not just the ISR');
    const stuck = planFailover(spec(), new Set(['n1', 'n2']));
    assert.equal(stuck.kind, 'stuck', 'one of three is not a majority');
    const five = spec({ members: ['n1', 'n2', 'n3', 'n4', 'n5'], isr: ['n1', 'n2', 'n3', 'n4', 'n5'] });
    assert.deepEqual(planFailover(five, new Set(['n1', 'n5'])), { kind: 'elect', candidates: ['n2', 'n3', 'n4'] });
    assert.equal(planFailover(five, new Set(['n1', 'n4', 'n5'])).kind, 'stuck');
  });

  test('a dead mirrored leader: only a live ISR member may follow it; a classic queue has no successor', () => {
    const m = spec({ type: 'mirrored', isr: ['n1', 'n3'] });
    assert.deepEqual(planFailover(m, new Set(['n1'])), { kind: 'elect', candidates: ['n3'] });
    assert.equal(planFailover(m, new Set(['n1', 'n3'])).kind, 'stuck', 'n2 is out of sync and may not lead');
    assert.equal(planFailover(spec({ type: 'classic', members: ['n1'], isr: ['n1'] }), new Set(['n1'])).kind, 'stuck');
  });

  test('the new leader is the candidate with the highest (epoch, offset); a quorum needs a majority of answers', () => {
    const p = spec();
    assert.deepEqual(chooseLeader(p, ['n2', 'n3'], [pos('n2', 4, 100), pos('n3', 4, 120)]), pos('n3', 4, 120));
    assert.deepEqual(chooseLeader(p, ['n2', 'n3'], [pos('n2', 5, 3), pos('n3', 4, 120)]), pos('n2', 5, 3), 'a later epoch wins over a longer log');
    assert.deepEqual(chooseLeader(p, ['n2', 'n3'], [pos('n3', 4, 7), pos('n2', 4, 7)]), pos('n2', 4, 7), 'ties go to the earlier candidate');
    assert.equal(chooseLeader(p, ['n2', 'n3'], [pos('n3', 4, 120)]), undefined, 'one answer of three members is not a majority');
    assert.equal(chooseLeader(p, ['n2', 'n3'], [pos('n3', 4, 1), pos('n1', 9, 999)]), undefined, 'answers from non-candidates do not count');
    assert.deepEqual(chooseLeader(spec({ type: 'mirrored' }), ['n2', 'n3'], [pos('n3', 4, 1)]), pos('n3', 4, 1), 'a mirrored queue needs one ISR answer');
  });

  test('the failover placement bumps the epoch, names the leader and drops the dead from the ISR', () => {
    const dead = new Set(['n1']);
    assert.deepEqual(failoverPlacement(spec(), dead, ['n2', 'n3'], pos('n3', 4, 120)), spec({ leader: 'n3', isr: ['n3', 'n2'], epoch: 5 }));
    assert.deepEqual(failoverPlacement(spec({ isr: ['n1', 'n2'] }), dead, ['n2', 'n3'], pos('n3', 4, 120)), spec({ leader: 'n3', isr: ['n3', 'n2'], epoch: 5 }), 'a quorum member out of the ISR that is chosen joins it');
    assert.equal(failoverPlacement(spec(), dead, ['n2', 'n3'], pos('n1', 4, 999)), undefined, 'the dead leader is never chosen');
    assert.equal(failoverPlacement(spec(), dead, ['n2'], pos('n3', 4, 1)), undefined, 'nor a non-candidate');
  });
});

describe('controller (real etcd)', () => {
  const etcd = etcdForSuite();
  let n = 0;
  const cleanup = etcd.cleanup;
  const member = (name: string): MemberInfo => ({ name, amqp: '127.0.0.1:1', peer: '127.0.0.1:2', repl: '127.0.0.1:3', startedAtMs: Date.now() });

  /** A cluster of three joined nodes and a controller candidate on n2 and n3. */
  async function cluster(pick: (q: PlacedQueue, candidates: string[]) => Promise<ReplicaPosition | undefined>): Promise<{
    planes: Map<string, ControlPlane>;
    store: PlacementStore;
    controllers: Map<string, Controller>;
  }> {
    const clusterName = `ctl${++n}`;
    const planes = new Map<string, ControlPlane>();
    for (const name of ['n1', 'n2', 'n3']) {
      const p = new ControlPlane({ hosts: [etcd.endpoint], clusterName, leaseMs: 1000 });
      await p.join(member(name));
      planes.set(name, p);
      cleanup.push(() => p.close());
    }
    const admin = new ControlPlane({ hosts: [etcd.endpoint], clusterName, leaseMs: 1000 });
    cleanup.push(() => admin.close());
    const store = new PlacementStore(admin.ns);
    const controllers = new Map<string, Controller>();
    for (const name of ['n2', 'n3']) {
      const plane = planes.get(name);
      assert.ok(plane);
      const c = new Controller({ plane, placements: new PlacementStore(plane.ns), nodeName: name, pickNewLeader: pick, retryMs: 50 });
      controllers.set(name, c);
      cleanup.unshift(() => c.stop());
    }
    return { planes, store, controllers };
  }


  test('of two candidates exactly one is controller; when it stops the other takes over', async () => {
    const { controllers } = await cluster(async () => undefined);
    for (const c of controllers.values()) c.start();
    const first = await waitFor(() => {
      const names = [...controllers].filter(([, c]) => c.isController).map(([name]) => name);
      return names.length > 0 ? names : undefined;
    }, 'a controller to be elected');
    assert.equal(first.length, 1, `exactly one controller, got ${first.join(', ')}`);
    const winner = first[0] ?? '';
    const loser = winner === 'n2' ? 'n3' : 'n2';
    assert.equal(await controllers.get(loser)?.leader(), winner, 'everyone sees the winner in etcd');
    await controllers.get(winner)?.stop();
    await waitFor(() => controllers.get(loser)?.isController, 'the other candidate to take over', 5_000);
    assert.equal(controllers.get(winner)?.isController, false);
  });

  test("when a leader's member key disappears the controller elects the best replica and fences with the epoch", async () => {
    const asked: string[][] = [];
    const reports = [pos('n2', 1, 10), pos('n3', 1, 12)];
    const { planes, store, controllers } = await cluster(async (q, candidates) => {
      asked.push(candidates);
      return chooseLeader(q.placement, candidates, reports);
    });
    const led = await store.create('/', 'led-by-n1', spec({ epoch: 1 }));
    const followed = await store.create('/', 'followed-by-n1', spec({ leader: 'n2', epoch: 1 }));
    const mirrored = await store.create('/', 'mirrored', spec({ type: 'mirrored', isr: ['n1', 'n2'], epoch: 3 }));
    for (const c of controllers.values()) c.start();
    await waitFor(() => [...controllers.values()].some((c) => c.isController), 'a controller');
    assert.equal(asked.length, 0, 'nothing to do while every member lives');

    await planes.get('n1')?.close(); // revokes n1's lease: its member key goes at once
    const moved = await waitFor(async () => {
      const p = await store.get('/', 'led-by-n1');
      return p?.leader !== 'n1' ? p : undefined;
    }, 'the quorum queue to get a new leader', 5_000);
    assert.equal(moved.leader, 'n3', 'n3 has the longer log');
    assert.equal(moved.epoch, 2, 'epoch bumped once');
    assert.deepEqual(moved.isr, ['n3', 'n2']);
    assert.equal(moved.id, led.id);
    assert.deepEqual(asked[0], ['n2', 'n3']);

    const m = await waitFor(async () => {
      const p = await store.get('/', 'mirrored');
      return p?.leader !== 'n1' ? p : undefined;
    }, 'the mirrored queue to get a new leader', 5_000);
    assert.equal(m.leader, 'n2', 'the only in-sync survivor');
    assert.equal(m.epoch, 4);
    assert.deepEqual(m.isr, ['n2']);

    const f = await waitFor(async () => {
      const p = await store.get('/', 'followed-by-n1');
      return p !== undefined && !p.isr.includes('n1') ? p : undefined;
    }, 'n1 to leave the ISR of the queue it followed', 5_000);
    assert.equal(f.leader, 'n2');
    assert.equal(f.epoch, 1, 'an ISR change keeps the epoch');
    assert.deepEqual(f.isr, ['n2', 'n3']);
    assert.equal(f.id, followed.id);
    assert.ok(mirrored.id > 0);

    // The deposed leader, with its epoch-1 view, cannot write over the new epoch.
    assert.equal(await store.compareAndSet('/', 'led-by-n1', 1, spec({ epoch: 1, isr: ['n1'] })), false);
    // Once settled, nothing more happens: one election per queue.
    for (const c of controllers.values()) await c.idle();
    assert.equal(asked.filter((c) => c.join() === 'n2,n3').length, 1, 'the quorum queue was decided once');
  });

  test('a suspected node (links closed, lease still alive) has its queues moved at once, once', async () => {
    const calls: string[] = [];
    const { store, controllers } = await cluster(async (q, candidates) => {
      calls.push(q.name);
      return chooseLeader(q.placement, candidates, [pos('n2', 1, 5), pos('n3', 1, 5)]);
    });
    await store.create('/', 'q', spec({ epoch: 1 }));
    for (const c of controllers.values()) c.start();
    const controller = await waitFor(() => [...controllers.values()].find((c) => c.isController), 'a controller');
    // A non-controller ignores suspicion: only the controller acts.
    for (const c of controllers.values()) if (c !== controller) c.suspect('n1');
    controller.suspect('n1');
    const moved = await waitFor(async () => {
      const p = await store.get('/', 'q');
      return p?.leader !== 'n1' ? p : undefined;
    }, 'the suspected leader to be replaced', 3_000);
    assert.equal(moved.leader, 'n2', 'equal positions: the first candidate');
    assert.equal(moved.epoch, 2);
    assert.deepEqual(moved.isr, ['n2', 'n3'], 'the suspect leaves the ISR');
    await controller.idle();
    assert.deepEqual(calls, ['q'], 'decided once; n1 is live again afterwards and nothing more moves');
    assert.equal((await store.get('/', 'q'))?.epoch, 2);
  });

  test('a queue with no eligible replica waits, and is failed over once one answers', async () => {
    let answer = false;
    let asked = 0;
    const { planes, store, controllers } = await cluster(async (q, candidates) => {
      asked++;
      return answer ? chooseLeader(q.placement, candidates, [pos('n2', 1, 1), pos('n3', 1, 2)]) : undefined;
    });
    await store.create('/', 'q', spec({ epoch: 1 }));
    for (const c of controllers.values()) c.start();
    await waitFor(() => [...controllers.values()].some((c) => c.isController), 'a controller');
    await planes.get('n1')?.close();
    await waitFor(() => asked >= 2, 'the controller to ask, get no answer, and ask again', 3_000);
    assert.equal((await store.get('/', 'q'))?.leader, 'n1', 'no answer: no change');
    answer = true;
    const moved = await waitFor(async () => {
      const p = await store.get('/', 'q');
      return p?.leader !== 'n1' ? p : undefined;
    }, 'the retry to fail the queue over', 3_000);
    assert.equal(moved.leader, 'n3');
    assert.equal(moved.epoch, 2);
  });
});
