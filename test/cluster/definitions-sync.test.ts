import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import { bindingHash, canonicalJson, definitionKeys, definitionsOf, DefinitionsSync, txnOpsMax } from '../../src/cluster/definitions-sync.js';
import { clusterPrefix, defsPrefix } from '../../src/cluster/etcd-keys.js';
import type { Definitions } from '../../src/front/definitions.js';
import { startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/broker.js';

type Queue = NonNullable<Definitions['queues']>[number];
type Binding = NonNullable<Definitions['bindings']>[number];

const queue = (name: string, vhost = '/', args: Record<string, unknown> = {}): Queue => ({ name, vhost, durable: true, auto_delete: false, arguments: args, type: 'classic' });
const binding = (destination: string, routing_key: string, vhost = '/'): Binding => ({ source: 'ex', vhost, destination, destination_type: 'queue', routing_key, arguments: {} });

function doc(parts: Partial<Definitions>): Definitions {
  return {
    vhosts: [{ name: '/', metadata: { description: '', tags: [] } }],
    users: [{ name: 'guest', password_hash: 'h', hashing_algorithm: 'rabbit_password_hashing_sha256', tags: ['administrator'] }],
    permissions: [{ user: 'guest', vhost: '/', configure: '.*', write: '.*', read: '.*' }],
    policies: [],
    exchanges: [{ name: 'ex', vhost: '/', type: 'direct', durable: true, auto_delete: false, internal: false, arguments: {} }],
    queues: [],
    bindings: [],
    ...parts,
  };
}

const names = (d: Definitions): string[] => (d.queues ?? []).map((q) => `${q.vhost}|${q.name}`).sort();
const routes = (d: Definitions): string[] => (d.bindings ?? []).map((b) => `${b.destination}:${b.routing_key}`).sort();

describe('definitions as etcd keys (pure)', () => {
  test('canonical JSON ignores key order; a binding hash depends only on what identifies the binding', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } }), canonicalJson({ a: { c: null, d: [1, { x: 1, y: 2 }] }, b: 1 }));
    const b = binding('q', 'k');
    assert.equal(bindingHash(b), bindingHash({ ...b, vhost: 'other' }), 'the vhost is a key segment, not part of the hash');
    assert.notEqual(bindingHash(b), bindingHash(binding('q', 'k2')));
    assert.notEqual(bindingHash(b), bindingHash({ ...b, arguments: { 'x-match': 'all' } }));
    assert.notEqual(bindingHash(b), bindingHash({ ...b, destination_type: 'exchange' }));
  });

  test('a document round-trips through its keys; names with / and odd characters stay apart', () => {
    const d = doc({ queues: [queue('a/b'), queue('a', 'b/'), queue('ü %2F')], bindings: [binding('a/b', 'x'), binding('a/b', 'y')] });
    const keys = definitionKeys(d);
    assert.equal(keys.size, 1 + 1 + 1 + 1 + 3 + 2, 'one key per object');
    for (const k of keys.keys()) assert.ok(k.startsWith(defsPrefix));
    const back = definitionsOf(keys);
    assert.deepEqual(names(back), names(d));
    assert.deepEqual(routes(back), routes(d));
    assert.deepEqual(back.users, d.users);
    assert.deepEqual(definitionKeys(back), keys, 'the same keys and values again');
  });
});

describe('definitions sync (real etcd)', () => {
  let etcd: TestEtcd;
  let client: Etcd3;
  let n = 0;
  const syncs: DefinitionsSync[] = [];
  /** Two nodes' syncs on a fresh cluster prefix, each watching into its own list of delivered documents. */
  async function pair(): Promise<{ a: DefinitionsSync; b: DefinitionsSync; seenA: Definitions[]; seenB: Definitions[] }> {
    const ns = client.namespace(clusterPrefix(`defs${++n}`));
    const a = new DefinitionsSync(ns);
    const b = new DefinitionsSync(ns);
    syncs.push(a, b);
    const seenA: Definitions[] = [];
    const seenB: Definitions[] = [];
    await a.load();
    await b.load();
    await a.watch((d) => void seenA.push(d));
    await b.watch((d) => void seenB.push(d));
    return { a, b, seenA, seenB };
  }
  const last = (seen: Definitions[]): Definitions => seen[seen.length - 1] ?? {};

  before(async () => {
    etcd = await startEtcd();
    client = new Etcd3({ hosts: [etcd.endpoint] });
  });
  after(async () => {
    for (const s of syncs) await s.close();
    client.close();
    await etcd.stop();
  });

  test("each node sees the other's puts and deletes, in order", async () => {
    const { a, b, seenA, seenB } = await pair();
    const first = doc({ queues: [queue('q1'), queue('q2')], bindings: [binding('q1', 'k1'), binding('q2', 'k2')] });
    const r1 = await a.publish(first);
    assert.equal(r1.puts, 8, 'every object is new (vhost, user, permission, exchange, 2 queues, 2 bindings)');
    assert.equal(r1.deletes, 0);
    await waitFor(() => names(last(seenB)).length === 2, 'b to see both queues');
    assert.deepEqual(names(last(seenB)), ['/|q1', '/|q2']);
    assert.deepEqual(routes(last(seenB)), ['q1:k1', 'q2:k2']);
    assert.deepEqual(last(seenB).exchanges?.map((e) => e.name), ['ex']);

    // b deletes q2 and its binding, adds q3; a sees exactly that.
    const fromB = doc({ queues: [queue('q1'), queue('q3', '/', { 'x-queue-type': 'quorum' })], bindings: [binding('q1', 'k1')] });
    const r2 = await b.publish(fromB);
    assert.deepEqual({ puts: r2.puts, deletes: r2.deletes }, { puts: 1, deletes: 2 }, 'only the difference is written');
    await waitFor(() => names(last(seenA)).includes('/|q3'), 'a to see q3');
    assert.deepEqual(names(last(seenA)), ['/|q1', '/|q3']);
    assert.deepEqual(routes(last(seenA)), ['q1:k1']);
    assert.deepEqual(last(seenA).queues?.find((q) => q.name === 'q3')?.arguments, { 'x-queue-type': 'quorum' });

    // Documents arrive in etcd order: the queue count a sees never goes back to an older state.
    const counts = seenA.map((d) => names(d).join(','));
    assert.equal(counts[counts.length - 1], '/|q1,/|q3');
    assert.ok(!counts.slice(counts.indexOf('/|q1,/|q3')).some((c) => c.includes('q2')), 'no document after the delete still has q2');

    // Publishing what is already there writes nothing.
    const r3 = await a.publish(last(seenA));
    assert.deepEqual({ puts: r3.puts, deletes: r3.deletes }, { puts: 0, deletes: 0 });
  });

  test('a node publishing before it has applied a remote change does not undo that change', async () => {
    const ns = client.namespace(clusterPrefix(`defs${++n}`));
    const a = new DefinitionsSync(ns);
    const b = new DefinitionsSync(ns);
    syncs.push(a, b);
    const seenA: Definitions[] = [];
    const seenB: Definitions[] = [];
    // a's owner is slow to apply: while the gate is shut it holds the document it had before.
    let gate: Promise<void> | undefined;
    let openGate = (): void => undefined;
    await a.load();
    await b.load();
    await a.watch(async (d) => {
      await gate;
      seenA.push(d);
    });
    await b.watch((d) => void seenB.push(d));
    await a.publish(doc({ queues: [queue('shared')] }));
    await waitFor(() => names(last(seenB)).includes('/|shared'), 'b to see the shared queue');
    await waitFor(() => names(last(seenA)).includes('/|shared'), 'a to be handed its own queue back');
    gate = new Promise((resolve) => (openGate = resolve));
    await b.publish(doc({ queues: [queue('shared'), queue('from-b')] }));
    await waitFor(() => names(a.current()).includes('/|from-b'), "a's sync to have received from-b");
    // a's owner has not applied from-b yet and publishes its own new queue from what it holds.
    const r = await a.publish(doc({ queues: [queue('shared'), queue('from-a')] }));
    assert.deepEqual({ puts: r.puts, deletes: r.deletes }, { puts: 1, deletes: 0 }, "a writes its queue and does not delete b's");
    openGate();
    await waitFor(() => names(last(seenB)).includes('/|from-a'), 'b to see from-a');
    await waitFor(() => names(last(seenA)).includes('/|from-a'), 'a to be handed from-a back');
    assert.deepEqual(names(last(seenA)), ['/|from-a', '/|from-b', '/|shared']);
    assert.deepEqual(names(last(seenB)), ['/|from-a', '/|from-b', '/|shared']);
  });

  test('a document delivered right after a publish already contains that publish', async () => {
    const { a, b, seenA, seenB } = await pair();
    // a's own write is laid over anything delivered before etcd reports it back: here the
    // transaction has not even been sent when a.current() is read.
    const pending = a.publish(doc({ queues: [queue('mine')] }));
    assert.deepEqual(names(a.current()), ['/|mine'], 'visible in the current document at once');
    await pending;
    await waitFor(() => names(last(seenB)).includes('/|mine'), 'b to see mine');
    await b.publish(doc({ queues: [queue('mine'), queue('theirs')] }));
    await waitFor(() => names(last(seenA)).includes('/|theirs'), 'a to see theirs');
    for (const d of seenA) assert.ok(names(d).includes('/|mine'), `every document a was handed has its own queue: ${names(d).join(',')}`);
  });

  test(`a change larger than one transaction (${txnOpsMax} ops) is written in several and arrives whole`, async () => {
    const { a, seenB } = await pair();
    const many = Array.from({ length: 2 * txnOpsMax + 17 }, (_, i) => queue(`bulk-${i}`));
    const r = await a.publish(doc({ queues: many }));
    assert.equal(r.puts, many.length + 4);
    await waitFor(() => names(last(seenB)).length === many.length, `b to see ${many.length} queues`, 10_000);
    const fresh = new DefinitionsSync(client.namespace(clusterPrefix(`defs${n}`)));
    syncs.push(fresh);
    const loaded = await fresh.load();
    assert.equal(loaded.queues?.length, many.length, 'a fresh node loads them all');
    // And deletes all of them again.
    const d = await a.publish(doc({ queues: [] }));
    assert.equal(d.deletes, many.length);
    await waitFor(() => names(last(seenB)).length === 0, 'b to see them all deleted', 10_000);
  });
});
