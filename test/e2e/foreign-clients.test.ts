/**
 * The README says pika and the RabbitMQ Java client talk to warren unchanged: this runs the
 * real ones (Debian's python3-pika and librabbitmq-client-java) as child processes through
 * the core flows, and compares what they saw with what they see against RabbitMQ 3.10.
 * The scenarios (test/e2e/peers/) print one JSON object; every field is asserted here.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import amqp from 'amqplib';
import type { TestBroker } from '../helpers/broker.js';
import { expectChannelClose, startE2eBroker, within } from '../helpers/amqp-expect.js';

/** Debian's interpreter: python3-pika installs into its dist-packages only (a pyenv python3 on PATH has no pika). */
const debianPython = '/usr/bin/python3';
const pikaPackageDir = '/usr/lib/python3/dist-packages/pika';
const debianJava = '/usr/bin/java';
const javaClientJar = '/usr/share/java/amqp-client.jar';
const slf4jApiJar = '/usr/share/java/slf4j-api.jar';
// From the compiled test in dist/test/e2e back to the sources, which are not compiled.
const pikaScenario = new URL('../../../test/e2e/peers/pika_scenario.py', import.meta.url).pathname;
const javaScenario = new URL('../../../test/e2e/peers/JavaScenario.java', import.meta.url).pathname;
/** A scenario waits at most 5 s for any one event; the Java one also compiles itself first (~2 s on a busy core). */
const scenarioDeadlineMs = 60_000;

/** What RabbitMQ 3.10 advertises in server-properties capabilities (as the client reports them, sorted). */
const rabbitCapabilities = [
  'authentication_failure_close',
  'basic.nack',
  'connection.blocked',
  'consumer_cancel_notify',
  'consumer_priorities',
  'direct_reply_to',
  'exchange_exchange_bindings',
  'per_consumer_qos',
  'publisher_confirms',
];

function requirePeer(path: string, debianPackage: string): void {
  assert.ok(existsSync(path), `${path} is missing: install Debian's ${debianPackage} (apt-get install ${debianPackage}; .ci/run does)`);
}

/** Runs a scenario to completion and parses the one JSON object it prints. */
function runScenario(file: string, args: string[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: scenarioDeadlineMs, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err !== null) {
        reject(new Error(`${file} ${args.join(' ')} failed (${err.message}):\n${stdout}\n${stderr}`));
        return;
      }
      try {
        resolve(JSON.parse(stdout) as Record<string, unknown>);
      } catch {
        reject(new Error(`${file} printed no JSON object:\n${stdout}\n${stderr}`));
      }
    });
  });
}

/** Checks server.product and server.capabilities, and returns the rest of what the scenario saw. */
function checkServer(seen: Record<string, unknown>): Record<string, unknown> {
  const { server, ...rest } = seen;
  const { product, capabilities } = server as { product: unknown; capabilities: unknown };
  assert.ok(product === 'warren' || product === 'RabbitMQ', `server product ${String(product)}`);
  assert.ok(Array.isArray(capabilities), 'capabilities is a list');
  assert.deepEqual([...capabilities].sort(), rabbitCapabilities, 'the capabilities RabbitMQ advertises, no more, no fewer');
  return rest;
}

describe('foreign clients', () => {
  let broker: TestBroker;
  let url: string;
  let conn: amqp.ChannelModel;
  before(async () => {
    broker = await startE2eBroker();
    // Both clients take the vhost from the URL path, percent-encoded: '/' is %2F.
    url = `amqp://guest:guest@${broker.host}:${broker.port}/%2F`;
    conn = await within(amqp.connect(broker.url), 'an amqplib connection');
  });
  after(async () => {
    await conn.close();
    assert.equal(await broker.stop(), 0);
  });

  /** The scenario deleted what it declared: passive declares of its queues and exchange answer 404. */
  async function assertCleanedUp(queues: string[], exchange: string): Promise<void> {
    for (const queue of queues) {
      await expectChannelClose(conn, await conn.createChannel(), (ch) => ch.checkQueue(queue), { code: 404, method: [50, 10] });
    }
    await expectChannelClose(conn, await conn.createChannel(), (ch) => ch.checkExchange(exchange), { code: 404, method: [40, 10] });
  }

  test('pika: confirms, topic routing, returns, get, nack, qos + consume, tx, direct reply-to, errors', async () => {
    requirePeer(debianPython, 'python3');
    requirePeer(pikaPackageDir, 'python3-pika');
    const prefix = `fc.pika.${process.pid}.${Date.now()}`;
    const seen = checkServer(await runScenario(debianPython, [pikaScenario, url, prefix]));
    assert.deepEqual(seen, {
      declare: { queue: `${prefix}.q`, messages: 0, consumers: 0 },
      unroutable: [312],
      first_get: {
        body: 'order 0',
        redelivered: false,
        remaining: 9,
        routing_key: 'order.new',
        delivery_mode: 2,
        content_type: 'text/plain',
        correlation_id: 'c0',
        headers: { n: 0, nested: { list: [1, 'x', true], price: '3.25' }, who: 'pika' },
      },
      after_nack: { body: 'order 0', redelivered: true },
      consumed: Array.from({ length: 9 }, (_, i) => `order ${i + 1}`),
      tx: { body: 'committed', remaining: 0 },
      direct_reply_to: { reply: 'pong:ping', correlation_id: 'rpc-1', reply_name_given: true },
      passive_missing: { code: 404, text: `NOT_FOUND - no queue '${prefix}.missing' in vhost '/'` },
      delete: 0,
      closed: true,
    });
    await assertCleanedUp([`${prefix}.q`], `${prefix}.ex`);
  });

  test('Java client: confirms, returns, field-table types, get, nack, qos + consume, cancel notify, tx, RpcClient over direct reply-to, errors', async () => {
    requirePeer(debianJava, 'default-jre-headless');
    requirePeer(javaClientJar, 'librabbitmq-client-java');
    requirePeer(slf4jApiJar, 'libslf4j-java');
    const prefix = `fc.java.${process.pid}.${Date.now()}`;
    const seen = checkServer(await runScenario(debianJava, ['-cp', `${javaClientJar}:${slf4jApiJar}`, javaScenario, url, prefix]));
    const channelClosed = { hard_error: false, channel_open: false, connection_open: true, code: 404 };
    assert.deepEqual(seen, {
      // channel_max and frame_max are RabbitMQ's defaults; the client asks for a 10 s heartbeat, below the server's 60.
      tune: { channel_max: 2047, frame_max: 131072, heartbeat: 10 },
      declare: { queue: `${prefix}.q`, messages: 0, consumers: 0 },
      returned_before_confirm: true,
      unroutable: [{ code: 312, text: 'NO_ROUTE', exchange: `${prefix}.ex`, routing_key: 'invoice.new', body: 'nobody wants this' }],
      first_get: {
        body: 'order 0',
        redelivered: false,
        remaining: 9,
        exchange: `${prefix}.ex`,
        routing_key: 'order.new',
        delivery_mode: 2,
        content_type: 'text/plain',
        correlation_id: 'c0',
        message_id: 'm0',
        priority: 1,
        timestamp_s: 1_700_000_000,
        // Each header as the Java type the client decoded: every field-table type survives the broker unchanged.
        headers: {
          byte: 'Byte -5',
          double: 'Double 2.5',
          flag: 'Boolean false',
          float: 'Float 0.5',
          int: 'Integer 42',
          long_string: 'LongString long string',
          n: 'Long 0',
          negative: 'Long -7',
          nested: { list: ['Integer 1', 'LongString x', 'Boolean true', 'Long 2'], price: 'BigDecimal 3.25' },
          raw: 'byte[] 0001ff',
          short: 'Short -300',
          void: 'null',
          when: 'Date 1700000000000',
          who: 'LongString java',
        },
      },
      after_nack: { body: 'order 0', redelivered: true },
      consumer_tag: true,
      all_consumed: true,
      consumed: Array.from({ length: 9 }, (_, i) => `order ${i + 1}`),
      cancel_ok: true,
      cancel_notify: { notified: true, consumer_tag: `${prefix}.doomed-ctag`, deleted_messages: 0, channel_open: true },
      tx: { body: 'committed', remaining: 0 },
      direct_reply_to: { reply: 'pong:ping', reply_name_given: true },
      passive_missing_queue: {
        ...channelClosed,
        text: `NOT_FOUND - no queue '${prefix}.missing' in vhost '/'`,
        class_id: 50,
        method_id: 10,
      },
      passive_missing_exchange: {
        ...channelClosed,
        text: `NOT_FOUND - no exchange '${prefix}.missing-ex' in vhost '/'`,
        class_id: 40,
        method_id: 10,
      },
      delete: 0,
      closed: true,
    });
    await assertCleanedUp([`${prefix}.q`, `${prefix}.doomed`], `${prefix}.ex`);
  });
});
