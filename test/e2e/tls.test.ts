/**
 * AMQPS: the TLS listener (--tls-port) beside the plain one, with the throwaway CA of
 * test/fixtures/tls. amqplib connects over amqps:// and works as over amqp://; a client that
 * does not trust the CA, or speaks plain AMQP to the TLS port, fails its handshake and the
 * node stays up and says why; client certificates are checked as RabbitMQ's verify_peer and
 * fail_if_no_peer_cert say; bad settings stop the node at start with a clear message.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { once } from 'node:events';
import amqp from 'amqplib';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { nextError, within } from '../helpers/amqp-expect.js';
import { ctlOk, ctlRows } from '../helpers/warrenctl.js';

const fixtures = new URL('../../../test/fixtures/tls/', import.meta.url).pathname;
const pem = (name: string): Buffer => readFileSync(`${fixtures}${name}`);
const serverArgs = ['--tls-port', '0', '--tls-cert', `${fixtures}server.pem`, '--tls-key', `${fixtures}server.key`];

async function amqpsUrl(broker: TestBroker): Promise<string> {
  const m = await broker.waitForLog(/AMQPS \(TLS\) listener at (amqps:\/\/\S+), client certificates: (\w+)/);
  return m[1] ?? '';
}

/** Publishes one message to a server-named queue and reads it back: the connection really works. */
async function roundTripMessage(conn: amqp.ChannelModel, body: string): Promise<string | undefined> {
  const ch = await conn.createConfirmChannel();
  const { queue } = await ch.assertQueue('', { exclusive: true });
  ch.sendToQueue(queue, Buffer.from(body));
  await ch.waitForConfirms();
  const m = await ch.get(queue, { noAck: true });
  await ch.close();
  return m === false ? undefined : m.content.toString();
}

async function refusedConnect(url: string, opts: object): Promise<string> {
  try {
    const conn = await amqp.connect(url, opts);
    await conn.close();
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  return assert.fail(`connecting to ${url} should have failed`);
}

/** Starts a node that must refuse to start; resolves with its error (exit code and log). */
async function startRefused(args: string[]): Promise<string> {
  return startBroker({ args }).then(
    async (b) => {
      await b.stop();
      return assert.fail(`the node started with ${args.join(' ')}`);
    },
    (err: unknown) => (err instanceof Error ? err.message : String(err)),
  );
}

describe('AMQPS listener', () => {
  let broker: TestBroker;
  let url: string;
  before(async () => {
    broker = await startBroker({ args: serverArgs });
    url = await amqpsUrl(broker);
  });
  after(async () => {
    assert.equal(await broker.stop(), 0);
  });

  test('amqplib over amqps:// with the CA: publish, confirm, get; the plain port still serves', async () => {
    assert.match(url, /^amqps:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(url.replace('amqps', 'amqp'), broker.url, 'a port of its own');
    const conn = await amqp.connect(url, { ca: [pem('ca.pem')] });
    assert.equal(await roundTripMessage(conn, 'over TLS'), 'over TLS');
    await conn.close();
    const plain = await amqp.connect(broker.url);
    assert.equal(await roundTripMessage(plain, 'over TCP'), 'over TCP');
    await plain.close();
    await broker.waitForLog(/accepted connection 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+ \(user 'guest', vhost '\/'\)/);
  });

  test('a client that does not trust the CA fails its handshake; the node logs it and stays up', async () => {
    const message = await refusedConnect(url, {});
    assert.match(message, /unable to verify the first certificate|self.signed certificate/);
    await broker.waitForLog(/TLS handshake with .* failed/);
    const conn = await amqp.connect(url, { ca: [pem('ca.pem')] });
    await conn.close();
  });

  test('plain AMQP sent to the TLS port is a failed handshake, logged with its reason', async () => {
    const socket = tcpConnect(Number(new URL(url).port), '127.0.0.1');
    await once(socket, 'connect');
    socket.write(Buffer.from('AMQP\x00\x00\x09\x01', 'latin1'));
    socket.on('data', () => undefined);
    await within(once(socket, 'close'), 'the node to drop the plain client');
    await broker.waitForLog(/TLS handshake with 127\.0\.0\.1:\d+ failed: wrong version number/);
    const conn = await amqp.connect(url, { ca: [pem('ca.pem')] });
    await conn.close();
  });
});

describe('AMQPS failed-handshake logging', () => {
  test('a flood of bad handshakes logs 20 lines a window and a count of the rest, and the node keeps serving', { timeout: 60_000 }, async () => {
    const broker = await startBroker({ args: serverArgs });
    try {
      const url = await amqpsUrl(broker);
      const port = Number(new URL(url).port);
      const floods = 50;
      await Promise.all(
        Array.from({ length: floods }, async () => {
          const socket = tcpConnect(port, '127.0.0.1');
          await once(socket, 'connect');
          socket.write(Buffer.from('AMQP\x00\x00\x09\x01', 'latin1'));
          socket.on('data', () => undefined);
          await within(once(socket, 'close'), 'the node to drop a plain client');
        }),
      );
      const summary = await broker.waitForLog(/TLS: (\d+) more failed handshake\(s\) within 10 s were not logged one by one/, 20_000);
      const lines = (broker.log().match(/TLS handshake with .* failed/g) ?? []).length;
      assert.equal(lines, 20);
      assert.equal(Number(summary[1]), floods - lines);
      const conn = await amqp.connect(url, { ca: [pem('ca.pem')] });
      await conn.close();
    } finally {
      assert.equal(await broker.stop(), 0);
    }
  });
});

describe('AMQPS client certificates', () => {
  test("--tls-verify require (RabbitMQ's fail_if_no_peer_cert): a client without a certificate is refused, one with a CA-signed one works", async () => {
    const broker = await startBroker({ args: [...serverArgs, '--tls-verify', 'require', '--tls-ca', `${fixtures}ca.pem`] });
    try {
      const url = await amqpsUrl(broker);
      assert.match(await refusedConnect(url, { ca: [pem('ca.pem')] }), /alert|socket hang up|ECONNRESET|closed/i);
      await broker.waitForLog(/TLS handshake with .* failed: .*certificate/);
      const conn = await amqp.connect(url, { ca: [pem('ca.pem')], cert: pem('client.pem'), key: pem('client.key') });
      assert.equal(await roundTripMessage(conn, 'mutual TLS'), 'mutual TLS');
      await conn.close();
      // A self-signed certificate, not the CA's, is refused.
      assert.match(await refusedConnect(url, { ca: [pem('ca.pem')], cert: pem('stranger.pem'), key: pem('stranger.key') }), /alert|socket hang up|ECONNRESET|closed/i);
    } finally {
      assert.equal(await broker.stop(), 0);
    }
  });

  test("--tls-verify peer (verify_peer only): a client without a certificate gets in, one with a certificate the CA did not sign does not", async () => {
    const broker = await startBroker({ args: [...serverArgs, '--tls-verify', 'peer', '--tls-ca', `${fixtures}server.pem`] });
    try {
      const url = await amqpsUrl(broker);
      const conn = await amqp.connect(url, { ca: [pem('ca.pem')] });
      assert.equal(await roundTripMessage(conn, 'no client certificate'), 'no client certificate');
      await conn.close();
      // --tls-ca here trusts only the server's certificate: the client's (signed by the CA) does not chain to it.
      assert.match(await refusedConnect(url, { ca: [pem('ca.pem')], cert: pem('client.pem'), key: pem('client.key') }), /socket hang up|ECONNRESET|closed/i);
      await broker.waitForLog(/TLS client 127\.0\.0\.1:\d+ refused: its certificate does not verify/);
    } finally {
      assert.equal(await broker.stop(), 0);
    }
  });
});

describe('EXTERNAL: the client certificate as the login', () => {
  let broker: TestBroker;
  let url: string;
  const clientTls = { ca: [pem('ca.pem')], cert: pem('client.pem'), key: pem('client.key') };
  before(async () => {
    broker = await startBroker({ args: [...serverArgs, '--tls-verify', 'peer', '--tls-ca', `${fixtures}ca.pem`, '--mgmt-port', '0'] });
    url = await amqpsUrl(broker);
  });
  after(async () => {
    assert.equal(await broker.stop(), 0);
  });

  test('a user named as the certificate\'s CN logs in with EXTERNAL, no password, with that user\'s permissions', async () => {
    await ctlOk(broker.dataDir, 'add_user', 'warren-test-client', 'unused-password');
    await ctlOk(broker.dataDir, 'set_permissions', '-p', '/', 'warren-test-client', '^cert\\.', '^cert\\.', '^cert\\.');
    const conn = await amqp.connect(url, { ...clientTls, credentials: amqp.credentials.external() });
    const tuned = conn.connection as unknown as { serverProperties: unknown };
    assert.ok(tuned.serverProperties !== undefined);
    const ch = await conn.createChannel();
    await ch.assertQueue('cert.q', { exclusive: true });
    // The management API shows it as RabbitMQ's does: ssl, the protocol, the certificate's subject, the mechanism.
    const mgmtPort = (await broker.waitForLog(/management listening on http:\/\/127\.0\.0\.1:(\d+)/))[1];
    const res = await fetch(`http://127.0.0.1:${mgmtPort}/api/connections`, { headers: { authorization: `Basic ${Buffer.from('guest:guest').toString('base64')}` } });
    const rows = (await res.json()) as { user: string; ssl: boolean; ssl_protocol: string | null; peer_cert_subject: string | null; auth_mechanism: string }[];
    const row = rows.find((r) => r.user === 'warren-test-client');
    assert.ok(row !== undefined, JSON.stringify(rows));
    assert.deepEqual([row.ssl, row.peer_cert_subject, row.auth_mechanism], [true, 'CN=warren-test-client', 'EXTERNAL']);
    assert.match(String(row.ssl_protocol), /^TLSv1\.[23]$/);
    // And warrenctl, with rabbitmqctl's info items.
    const listed = await ctlRows(broker.dataDir, 'list_connections', 'user', 'ssl', 'ssl_protocol', 'peer_cert_subject', 'auth_mechanism');
    const mine = listed.find((r) => r['user'] === 'warren-test-client');
    assert.deepEqual(mine === undefined ? undefined : [mine['ssl'], mine['peer_cert_subject'], mine['auth_mechanism']], [true, 'CN=warren-test-client', 'EXTERNAL']);
    await conn.close();
    await broker.waitForLog(/accepted connection 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+ \(user 'warren-test-client', vhost '\/'\)/);
    // The user's permissions apply: another queue name is refused.
    const again = await amqp.connect(url, { ...clientTls, credentials: amqp.credentials.external() });
    const denied = await again.createChannel();
    const error = nextError(denied);
    await denied.assertQueue('other.q', { exclusive: true }).catch(() => undefined);
    assert.equal((await within(error, 'the 403')).code, 403);
    await again.close();
  });

  test('EXTERNAL is refused when no user has the certificate\'s name, and is not offered without a client certificate', async () => {
    await ctlOk(broker.dataDir, 'delete_user', 'warren-test-client').catch(() => undefined);
    const refused = await refusedConnect(url, { ...clientTls, credentials: amqp.credentials.external() });
    assert.match(refused, /ACCESS_REFUSED - Login was refused using authentication mechanism EXTERNAL/);
    await broker.waitForLog(/login refused for user 'warren-test-client' \(mechanism EXTERNAL\)/);
    // Without a certificate the mechanism is not offered, and a client that tries it anyway is refused.
    const noCert = await refusedConnect(url, { ca: [pem('ca.pem')], credentials: amqp.credentials.external() });
    assert.match(noCert, /EXTERNAL|ACCESS_REFUSED/);
    // PLAIN still works on the same listener.
    const conn = await amqp.connect(url, { ca: [pem('ca.pem')] });
    await conn.close();
  });
});

describe('AMQPS settings the node refuses at start', () => {
  test('--tls-port without a certificate and key', async () => {
    assert.match(await startRefused(['--tls-port', '0']), /--tls-port needs --tls-cert and --tls-key/);
  });

  test('a certificate file that does not exist', async () => {
    assert.match(await startRefused(['--tls-port', '0', '--tls-cert', `${fixtures}missing.pem`, '--tls-key', `${fixtures}server.key`]), /--tls-cert .*missing\.pem: ENOENT/);
  });

  test('a key that does not belong to the certificate', async () => {
    assert.match(await startRefused(['--tls-port', '0', '--tls-cert', `${fixtures}server.pem`, '--tls-key', `${fixtures}client.key`]), /TLS: --tls-cert .*server\.pem with --tls-key .*client\.key: .*key values mismatch/);
  });

  test('--tls-verify without --tls-ca, and an unknown mode', async () => {
    assert.match(await startRefused([...serverArgs, '--tls-verify', 'require']), /--tls-verify require needs --tls-ca/);
    assert.match(await startRefused([...serverArgs, '--tls-verify', 'sometimes']), /--tls-verify must be none, peer or require, got 'sometimes'/);
  });
});
