import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import { ControlPlane, ForgottenError, leaseTtlSeconds, memberEvents, type MemberEvent, type MemberInfo } from '../../src/cluster/control-plane.js';
import { clusterPrefix, memberKey } from '../../src/cluster/etcd-keys.js';
import { startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/broker.js';

/** A 1 s lease (the shortest etcd grants) expires within TTL + etcd's 0.5 s expiry sweep; allow for a loaded machine. */
const leaseGoneDeadlineMs = 6_000;

function member(name: string, startedAtMs = 1): MemberInfo {
  return { name, amqp: `127.0.0.1:${5000}`, peer: '127.0.0.1:25672', repl: '127.0.0.1:25673', startedAtMs };
}

describe('control plane (real etcd)', () => {
  let etcd: TestEtcd;
  let cluster = 0;
  const opened: ControlPlane[] = [];
  const plane = (clusterName: string, leaseMs = 1000): ControlPlane => {
    const p = new ControlPlane({ hosts: [etcd.endpoint], clusterName, leaseMs });
    opened.push(p);
    return p;
  };
  const freshCluster = (): string => `cp${++cluster}`;

  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    for (const p of opened) await p.close();
    await etcd.stop();
  });

  test('lease TTL is the lease rounded up to whole seconds, at least one', () => {
    assert.equal(leaseTtlSeconds(1), 1);
    assert.equal(leaseTtlSeconds(1000), 1);
    assert.equal(leaseTtlSeconds(1001), 2);
    assert.equal(leaseTtlSeconds(3000), 3);
    assert.throws(() => leaseTtlSeconds(0), RangeError);
  });

  test('join writes a lease-bound member key; members() and watchMembers() see joins and a clean leave at once', async () => {
    const name = freshCluster();
    const observer = plane(name);
    const events: MemberEvent[] = [];
    const watch = await observer.watchMembers((ev) => void events.push(ev), { replay: true });
    const a = plane(name);
    const b = plane(name);
    await a.join(member('a'));
    await b.join(member('b'));
    assert.ok(a.leaseValid, 'a holds a valid lease after join');
    assert.deepEqual((await observer.members()).map((m) => m.name).sort(), ['a', 'b']);
    assert.deepEqual(await observer.members().then((ms) => ms.find((m) => m.name === 'a')), member('a'));
    await waitFor(() => events.length >= 2, 'two add events');
    assert.deepEqual(events.slice(0, 2), [{ kind: 'add', member: member('a') }, { kind: 'add', member: member('b') }]);

    // The key really carries a lease (so it vanishes with it).
    const raw = new Etcd3({ hosts: [etcd.endpoint] });
    const res = await raw.namespace(clusterPrefix(name)).get(memberKey('a')).exec();
    assert.notEqual(res.kvs[0]?.lease, '0', 'member key is bound to a lease');
    raw.close();

    // close() revokes: the key goes without waiting for the TTL.
    const closedAt = Date.now();
    await b.close();
    await waitFor(() => events.some((e) => e.kind === 'remove' && e.name === 'b'), 'remove event for b', 2_000);
    assert.ok(Date.now() - closedAt < 1_000, 'a revoked lease removes the member at once, not after its TTL');
    assert.deepEqual((await observer.members()).map((m) => m.name), ['a']);
    await watch.close();
  });

  test('a member whose lease is not kept alive (a crashed node) disappears after its TTL', async () => {
    const name = freshCluster();
    const observer = plane(name);
    const removed: string[] = [];
    const watch = await observer.watchMembers((ev) => {
      if (ev.kind === 'remove') removed.push(ev.name);
    });
    // A second client grants a lease and never keeps it alive, as a kill -9'd node would.
    const crashed = new Etcd3({ hosts: [etcd.endpoint] });
    const lease = crashed.namespace(clusterPrefix(name)).lease(1, { autoKeepAlive: false });
    await lease.put(memberKey('dead')).value(JSON.stringify(member('dead')));
    assert.deepEqual((await observer.members()).map((m) => m.name), ['dead']);
    const putAt = Date.now();
    await waitFor(async () => (await observer.members()).length === 0, 'the unrenewed member key to expire', leaseGoneDeadlineMs);
    assert.ok(Date.now() - putAt >= 900, `the key lives for its 1 s TTL (gone after ${Date.now() - putAt} ms)`);
    await waitFor(() => removed.includes('dead'), 'a remove event for the expired member', 2_000);
    crashed.close();
    await watch.close();
  });

  test('a live member keeps its key well past its TTL (keepalives work)', async () => {
    const name = freshCluster();
    const a = plane(name);
    await a.join(member('a'));
    const raw = new Etcd3({ hosts: [etcd.endpoint] });
    const ns = raw.namespace(clusterPrefix(name));
    const firstLease = (await ns.get(memberKey('a')).exec()).kvs[0]?.lease;
    a.onLeaseLost(() => assert.fail('lease lost while etcd is up'));
    // Watch the key over 2.5 TTLs: without keepalives it would be gone after one.
    const since = Date.now();
    await waitFor(async () => {
      const kv = (await ns.get(memberKey('a')).exec()).kvs[0];
      assert.ok(kv !== undefined, `member key present ${Date.now() - since} ms after join`);
      assert.equal(kv.lease, firstLease, 'same lease throughout');
      assert.ok(a.leaseValid, 'lease valid throughout');
      return Date.now() - since >= 2_500;
    }, 'an observation window of 2.5 TTLs', 5_000);
    raw.close();
  });

  test('restart under the same name is a remove then an add (pure)', () => {
    const kv = (m: MemberInfo) => ({ key: Buffer.from(memberKey(m.name)), value: Buffer.from(JSON.stringify(m)), create_revision: '1', mod_revision: '1', version: '1', lease: '1' });
    const a1 = member('a', 1);
    const a2 = member('a', 2);
    assert.deepEqual(memberEvents([{ key: memberKey('a'), value: kv(a1), previous: undefined }]), [{ kind: 'add', member: a1 }]);
    assert.deepEqual(memberEvents([{ key: memberKey('a'), value: kv(a1), previous: kv(a1) }]), [], 'same incarnation re-put (lease moved) is not an event');
    assert.deepEqual(memberEvents([{ key: memberKey('a'), value: kv(a2), previous: kv(a1) }]), [
      { kind: 'remove', name: 'a', member: a1 },
      { kind: 'add', member: a2 },
    ]);
    assert.deepEqual(memberEvents([{ key: memberKey('a'), value: undefined, previous: kv(a2) }]), [{ kind: 'remove', name: 'a', member: a2 }]);
  });

  test('forget removes the member and marks it forgotten; the node is told; it cannot join again until unforgotten', async () => {
    const name = freshCluster();
    const admin = plane(name);
    const victim = plane(name);
    await victim.join(member('v'));
    let forgottenCalls = 0;
    victim.onForgotten(() => forgottenCalls++);
    await admin.forget('v');
    assert.deepEqual(await admin.members(), []);
    assert.deepEqual(await admin.forgottenNodes(), ['v']);
    await waitFor(() => forgottenCalls === 1, 'the forgotten node to be told', 2_000);
    assert.equal(victim.leaseValid, false, 'a forgotten node holds no lease');
    // It does not quietly rejoin.
    assert.deepEqual(await admin.members(), []);

    const again = plane(name);
    await assert.rejects(again.join(member('v')), ForgottenError);
    await admin.unforget('v');
    await again.join(member('v', 2));
    assert.deepEqual((await admin.members()).map((m) => m.name), ['v']);
  });
});

describe('control plane when etcd goes away', () => {
  test('onLeaseLost fires within the TTL of the last keepalive, and the lease is no longer valid', async () => {
    const etcd = await startEtcd();
    const p = new ControlPlane({ hosts: [etcd.endpoint], clusterName: 'lost', leaseMs: 1000, callTimeoutMs: 500 });
    try {
      await p.join(member('a'));
      assert.ok(p.leaseValid);
      const reasons: string[] = [];
      p.onLeaseLost((r) => reasons.push(r));
      const killedAt = Date.now();
      etcd.process.kill('SIGKILL');
      await waitFor(() => reasons.length > 0, 'onLeaseLost', 3_000);
      const lostAfterMs = Date.now() - killedAt;
      assert.ok(lostAfterMs <= 1_500, `lost within the 1 s TTL of the last answered keepalive (took ${lostAfterMs} ms)`);
      assert.equal(p.leaseValid, false);
      assert.equal(reasons.length, 1, 'told once');
    } finally {
      await p.close();
      await etcd.stop();
    }
  });
});
