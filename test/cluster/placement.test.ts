import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Etcd3, type Namespace } from 'etcd3';
import { clusterPrefix } from '../../src/cluster/etcd-keys.js';
import { chooseMembers, nodeLoad, PlacementError, PlacementStore, type Placement, type PlacementSpec } from '../../src/cluster/placement.js';
import { startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/broker.js';

const spec = (over: Partial<PlacementSpec> = {}): PlacementSpec => ({
  type: 'quorum',
  leader: 'n1',
  members: ['n1', 'n2', 'n3'],
  isr: ['n1', 'n2', 'n3'],
  epoch: 1,
  minInsync: 1,
  ...over,
});

describe('choosing members (pure)', () => {
  test('least loaded first, ties by name, preferred node first, never more than there are nodes', () => {
    const load = new Map([
      ['a', 5],
      ['b', 1],
      ['c', 1],
      ['d', 0],
    ]);
    assert.deepEqual(chooseMembers(['a', 'b', 'c', 'd'], load, 3), ['d', 'b', 'c']);
    assert.deepEqual(chooseMembers(['a', 'b', 'c', 'd'], load, 3, 'a'), ['a', 'd', 'b'], 'the preferred node leads even when loaded');
    assert.deepEqual(chooseMembers(['a', 'b', 'c', 'd'], load, 2, 'zz'), ['d', 'b'], 'an unknown preferred node is ignored');
    assert.deepEqual(chooseMembers(['c', 'a'], new Map(), 5), ['a', 'c']);
    assert.deepEqual(chooseMembers(['a', 'a', 'b'], new Map(), 3), ['a', 'b'], 'duplicates count once');
    assert.throws(() => chooseMembers(['a'], new Map(), 0), RangeError);
  });

  test('load counts each replica, and a leader once more', () => {
    const load = nodeLoad([spec(), spec({ leader: 'n2', members: ['n2', 'n3'], isr: ['n2'] })]);
    assert.deepEqual(Object.fromEntries(load), { n1: 2, n2: 3, n3: 2 });
  });
});

describe('placement store (real etcd)', () => {
  let etcd: TestEtcd;
  let client: Etcd3;
  let n = 0;
  const fresh = (): { ns: Namespace; store: PlacementStore } => {
    const ns = client.namespace(clusterPrefix(`pl${++n}`));
    return { ns, store: new PlacementStore(ns) };
  };

  before(async () => {
    etcd = await startEtcd();
    client = new Etcd3({ hosts: [etcd.endpoint] });
  });
  after(async () => {
    client.close();
    await etcd.stop();
  });

  test('create is idempotent; the id is the key create_revision, distinct per queue and new after a remove', async () => {
    const { ns, store } = fresh();
    const p1 = await store.create('/', 'q', spec());
    const again = await store.create('/', 'q', spec({ leader: 'n2', epoch: 7 }));
    assert.deepEqual(again, p1, 'the second create returns the first placement unchanged');
    const raw = (await ns.get('queues/%2F/q').exec()).kvs[0];
    assert.equal(String(p1.id), raw?.create_revision, 'id = create_revision of queues/<vhost>/<name>');
    const other = await store.create('v/h', 'q/2', spec());
    assert.ok(other.id > p1.id, 'ids grow');
    assert.deepEqual((await store.get('v/h', 'q/2'))?.id, other.id);
    const listed = await store.list();
    assert.deepEqual(listed.map((q) => [q.vhost, q.name, q.placement.id]).sort(), [['/', 'q', p1.id], ['v/h', 'q/2', other.id]].sort());
    assert.equal(await store.remove('/', 'q'), true);
    assert.equal(await store.get('/', 'q'), undefined);
    const recreated = await store.create('/', 'q', spec());
    assert.ok(recreated.id > other.id, 'a queue created again gets a new id');
  });

  test('concurrent creates of one queue agree on one placement', async () => {
    const { store } = fresh();
    const results = await Promise.all(['n1', 'n2', 'n3'].map((leader) => store.create('/', 'race', spec({ leader }))));
    assert.equal(new Set(results.map((r) => r.id)).size, 1, 'one id');
    assert.equal(new Set(results.map((r) => r.leader)).size, 1, 'one leader');
  });

  test('fencing: a deposed leader holding an old epoch cannot change the placement', async () => {
    const { store } = fresh();
    const start = await store.create('/', 'q', spec());
    // The controller fails the queue over: epoch 1 → 2, leader n1 → n2.
    const failover = spec({ leader: 'n2', isr: ['n2', 'n3'], epoch: 2 });
    assert.equal(await store.compareAndSet('/', 'q', 1, failover), true);
    // The old leader n1 (paused, now resumed) still believes it leads epoch 1 and tries to shrink the ISR.
    const stale = spec({ leader: 'n1', isr: ['n1'], epoch: 1 });
    assert.equal(await store.compareAndSet('/', 'q', 1, stale), false, 'epoch-1 write refused');
    assert.equal(await store.compareAndSet('/', 'q', 1, stale, { expectedVersion: start.version }), false, 'version-pinned epoch-1 write refused');
    // Nor can it claim the next epoch from its stale view.
    assert.equal(await store.compareAndSet('/', 'q', 1, spec({ leader: 'n1', epoch: 2 })), false, 'a stale node cannot bump the epoch either');
    const now = await store.get('/', 'q');
    assert.equal(now?.leader, 'n2');
    assert.equal(now?.epoch, 2);
    assert.deepEqual(now?.isr, ['n2', 'n3']);
    assert.equal(now?.id, start.id, 'the id never changes');
  });

  test('a version-pinned write is refused after any change, an epoch-only one only after an epoch change', async () => {
    const { store } = fresh();
    const read = await store.create('/', 'q', spec());
    // The leader shrinks the ISR (same epoch).
    assert.equal(await store.compareAndSet('/', 'q', 1, spec({ isr: ['n1', 'n2'] }), { expectedVersion: read.version }), true);
    // A writer that read before that change and pins the version is refused…
    assert.equal(await store.compareAndSet('/', 'q', 1, spec({ isr: ['n1', 'n3'] }), { expectedVersion: read.version }), false);
    // …while one that only names the epoch applies.
    assert.equal(await store.compareAndSet('/', 'q', 1, spec({ isr: ['n1'] })), true);
    assert.deepEqual((await store.get('/', 'q'))?.isr, ['n1']);
    // An epoch never goes back, a leader is a member, and a missing queue is a refusal.
    await assert.rejects(store.compareAndSet('/', 'q', 1, spec({ epoch: 0 })), PlacementError);
    await assert.rejects(store.compareAndSet('/', 'q', 1, spec({ leader: 'n9' })), PlacementError);
    assert.equal(await store.compareAndSet('/', 'missing', 1, spec()), false);
    // remove with an epoch is fenced the same way.
    assert.equal(await store.remove('/', 'q', 0), false);
    assert.equal(await store.remove('/', 'q', 1), true);
  });

  test('watch reports creates, changes and removes in order', async () => {
    const { store } = fresh();
    const seen: [string, string, Placement | undefined][] = [];
    const pre = await store.create('/', 'before', spec());
    const w = await store.watch((vhost, name, p) => void seen.push([vhost, name, p]), { replay: true });
    const q = await store.create('/', 'q', spec());
    await store.compareAndSet('/', 'q', 1, spec({ leader: 'n3', epoch: 2 }));
    await store.remove('/', 'q');
    await waitFor(() => seen.length >= 4, 'four placement events');
    assert.deepEqual(seen[0], ['/', 'before', pre], 'replayed first');
    assert.deepEqual(seen[1], ['/', 'q', q]);
    assert.equal(seen[2]?.[2]?.leader, 'n3');
    assert.equal(seen[2]?.[2]?.id, q.id);
    assert.ok((seen[2]?.[2]?.version ?? 0) > q.version);
    assert.deepEqual(seen[3], ['/', 'q', undefined]);
    await w.close();
  });
});
