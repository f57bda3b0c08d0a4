/** The cluster secret's fingerprint in etcd: the first node writes it, a node with another secret is stopped at start. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import { startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { startBroker } from '../helpers/broker.js';
import { checkClusterSecret, ClusterSecretMismatchError } from '../../src/cluster/secret-check.js';

let etcd: TestEtcd;
before(async () => {
  etcd = await startEtcd();
});
after(async () => {
  await etcd?.stop();
});

test('the first secret is recorded; the same one passes, another is refused; etcd never holds the secret', async () => {
  const client = new Etcd3({ hosts: [etcd.endpoint] });
  try {
    const ns = client.namespace('/warren/secret-check-test/');
    await checkClusterSecret(ns, 'the-first-secret-0123');
    await checkClusterSecret(ns, 'the-first-secret-0123');
    await assert.rejects(checkClusterSecret(ns, 'another-secret-456789'), ClusterSecretMismatchError);
    const stored = await ns.get('secret-check').string();
    assert.ok(stored !== null && /^[0-9a-f]{64}$/.test(stored), 'a hex fingerprint is stored');
    assert.ok(!stored.includes('the-first-secret'), 'the secret itself is not stored');
  } finally {
    client.close();
  }
});

test('a node started with another secret than its cluster exits with a clear message', async () => {
  const args = (secret: string, name: string) => ['--cluster', '--etcd', etcd.endpoint, '--cluster-name', 'secretcheck', '--cluster-secret', secret, '--node-name', name, '--peer-port', '0', '--repl-port', '0', '--mgmt-port', 'off', '--prometheus-port', 'off', '--ws-port', 'off'];
  const first = await startBroker({ args: args('cluster-secret-aaaaaaaa', 'n1') });
  try {
    await assert.rejects(startBroker({ args: args('cluster-secret-bbbbbbbb', 'n2') }), /cluster secret is not the one the cluster uses/);
  } finally {
    await first.stop();
  }
});
