/**
 * Malformed queue arguments get RabbitMQ's answer: channel.close 406 PRECONDITION_FAILED
 * naming queue.declare, with rabbit_amqqueue's reply text; the connection stays up.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { expectChannelClose } from '../helpers/amqp-expect.js';
import { unique } from '../helpers/feature-kit.js';
import { ctl } from '../helpers/warrenctl.js';
import { definitionsFileName } from '../../src/node/definitions-file.js';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe('malformed queue arguments', () => {
  let broker: TestBroker;
  let conn: amqp.ChannelModel;
  before(async () => {
    broker = await startBroker();
    conn = await amqp.connect(broker.url);
  });
  after(async () => {
    await conn.close();
    assert.equal(await broker.stop(), 0);
  });

  const cases: [string, Record<string, unknown>, (q: string) => string][] = [
    ['negative TTL', { 'x-message-ttl': -1 }, (q) => `invalid arg 'x-message-ttl' for queue '${q}' in vhost '/': {value_negative,-1}`],
    ['a string where a number belongs', { 'x-max-length': 'ten' }, (q) => `invalid arg 'x-max-length' for queue '${q}' in vhost '/': "expected integer, got longstr"`],
    ['an unknown overflow mode', { 'x-overflow': 'drop-tail' }, (q) => `invalid arg 'x-overflow' for queue '${q}' in vhost '/': invalid_overflow`],
    ['x-expires 0', { 'x-expires': 0 }, (q) => `invalid arg 'x-expires' for queue '${q}' in vhost '/': {value_zero,0}`],
    ['negative x-expires', { 'x-expires': -5 }, (q) => `invalid arg 'x-expires' for queue '${q}' in vhost '/': {value_negative,-5}`],
    // RabbitMQ's bound is ten years in ms (measured against RabbitMQ 3.10: 315360000000 is accepted).
    ['a TTL past the timer limit', { 'x-message-ttl': 315360000001 }, (q) => `invalid arg 'x-message-ttl' for queue '${q}' in vhost '/': {value_too_large,315360000001}`],
    ['negative max-length-bytes', { 'x-max-length-bytes': -1 }, (q) => `invalid arg 'x-max-length-bytes' for queue '${q}' in vhost '/': {value_negative,-1}`],
    ['x-max-priority over 255', { 'x-max-priority': 256 }, (q) => `invalid arg 'x-max-priority' for queue '${q}' in vhost '/': {max_value_exceeded,256}`],
    ['a dead-letter routing key without a DLX', { 'x-dead-letter-routing-key': 'rk' }, (q) => `invalid arg 'x-dead-letter-routing-key' for queue '${q}' in vhost '/': routing_key_but_no_dlx_defined`],
    ['a non-boolean x-single-active-consumer', { 'x-single-active-consumer': 'yes' }, (q) => `invalid arg 'x-single-active-consumer' for queue '${q}' in vhost '/': {unacceptable_type,longstr}`],
    ['a DLX that is not a string', { 'x-dead-letter-exchange': 7 }, (q) => `invalid type 'byte' for arg 'x-dead-letter-exchange' in queue '${q}' in vhost '/'`],
    ['a queue type nobody knows', { 'x-queue-type': 'foo' }, (q) => `invalid arg 'x-queue-type' for queue '${q}' in vhost '/': "unsupported queue type 'foo'"`],
    // Arguments of another queue type: refused as RabbitMQ 3.10 refuses them (measured against it).
    ['x-delivery-limit on a classic queue', { 'x-delivery-limit': 3 }, (q) => `invalid arg 'x-delivery-limit' for queue '${q}' in vhost '/' of queue type rabbit_classic_queue`],
    ['x-quorum-initial-group-size on a classic queue', { 'x-quorum-initial-group-size': 3 }, (q) => `invalid arg 'x-quorum-initial-group-size' for queue '${q}' in vhost '/' of queue type rabbit_classic_queue`],
    ['x-max-age (a stream argument) on a classic queue', { 'x-max-age': '1D' }, (q) => `invalid arg 'x-max-age' for queue '${q}' in vhost '/' of queue type rabbit_classic_queue`],
    ['x-max-priority on a quorum queue', { 'x-queue-type': 'quorum', 'x-max-priority': 5 }, (q) => `invalid arg 'x-max-priority' for queue '${q}' in vhost '/' of queue type rabbit_quorum_queue`],
    ['x-queue-mode on a quorum queue', { 'x-queue-type': 'quorum', 'x-queue-mode': 'lazy' }, (q) => `invalid arg 'x-queue-mode' for queue '${q}' in vhost '/' of queue type rabbit_quorum_queue`],
    // Streams are not implemented: refused rather than run as a queue, whose consumers would take messages away.
    ['a stream', { 'x-queue-type': 'stream' }, (q) => `invalid arg 'x-queue-type' for queue '${q}' in vhost '/': "unsupported queue type 'stream'"`],
  ];

  for (const [what, args, text] of cases) {
    test(`${what} → 406 PRECONDITION_FAILED on queue.declare, channel only`, async () => {
      const ch = await conn.createChannel();
      const q = unique('bad-args');
      await expectChannelClose(conn, ch, (c) => c.assertQueue(q, { arguments: args }), {
        code: 406,
        method: [50, 10],
        // amqplib quotes the reply text: the whole of it must match.
        text: new RegExp(`PRECONDITION_FAILED - ${escape(text(q))}"$`),
      });
      // Nothing was created.
      const probe = await conn.createChannel();
      await expectChannelClose(conn, probe, (c) => c.checkQueue(q), { code: 404, method: [50, 10] });
    });
  }

  test('valid arguments of every integer width are accepted', async () => {
    const ch = await conn.createChannel();
    const q = unique('good-args');
    // amqplib sends small numbers as byte/short and big ones as int/long.
    await ch.assertQueue(q, { exclusive: true, arguments: { 'x-message-ttl': 100000, 'x-max-length': 5, 'x-max-length-bytes': 5_000_000_000, 'x-expires': 60000, 'x-max-priority': 255 } });
    await ch.close();
  });

  test("each type's own arguments, and arguments nobody knows, are accepted", async () => {
    const ch = await conn.createChannel();
    const classic = unique('classic-args');
    await ch.assertQueue(classic, { exclusive: true, arguments: { 'x-queue-mode': 'lazy', 'x-queue-version': 2, 'x-queue-master-locator': 'min-masters', 'x-foo': 1 } });
    const quorum = unique('quorum-args');
    await ch.assertQueue(quorum, { arguments: { 'x-queue-type': 'quorum', 'x-delivery-limit': 3, 'x-quorum-initial-group-size': 1, 'x-dead-letter-strategy': 'at-most-once', 'x-max-in-memory-length': 5 } });
    await ch.deleteQueue(quorum);
    await ch.close();
  });

  test('a redeclare with different arguments is 406 inequivalent arg', async () => {
    const ch = await conn.createChannel();
    const q = unique('redeclare');
    await ch.assertQueue(q, { exclusive: true, maxLength: 5 });
    await expectChannelClose(conn, ch, (c) => c.assertQueue(q, { exclusive: true, maxLength: 6 }), {
      code: 406,
      method: [50, 10],
      text: /inequivalent arg 'x-max-length'/,
    });
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('queue-type checks apply to new queues only', () => {
  test('a node brings back queues an older version accepted (a classic x-delivery-limit, a stream); an uploaded definitions file with such a new queue is refused', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'warren-qargs-'));
    try {
      let broker = await startBroker({ dataDir });
      const conn = await amqp.connect(broker.url);
      const ch = await conn.createChannel();
      await ch.assertQueue('old-classic', { durable: true });
      await ch.assertQueue('old-stream', { durable: true });
      await conn.close();
      assert.equal(await broker.stop({ keepData: true }), 0);
      // What an older warren wrote: the same queues with arguments it no longer takes at declare.
      const path = join(dataDir, definitionsFileName);
      const defs = JSON.parse(readFileSync(path, 'utf8')) as { queues: { name: string; arguments: Record<string, unknown> }[] };
      for (const q of defs.queues) {
        if (q.name === 'old-classic') q.arguments = { 'x-delivery-limit': 3 };
        if (q.name === 'old-stream') q.arguments = { 'x-queue-type': 'stream' };
      }
      writeFileSync(path, JSON.stringify(defs));
      broker = await startBroker({ dataDir });
      try {
        const again = await amqp.connect(broker.url);
        const probe = await again.createChannel();
        assert.equal((await probe.checkQueue('old-classic')).queue, 'old-classic');
        assert.equal((await probe.checkQueue('old-stream')).queue, 'old-stream');
        await again.close();
        // The same arguments on a queue new to the node, in an uploaded document, are refused as a declare would be.
        const upload = join(dataDir, 'upload.json');
        writeFileSync(upload, JSON.stringify({ queues: [{ name: 'new-classic', vhost: '/', durable: true, auto_delete: false, arguments: { 'x-delivery-limit': 3 } }] }));
        const r = await ctl(broker.dataDir, 'import_definitions', upload);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr + r.stdout, /invalid arg 'x-delivery-limit' for queue 'new-classic' in vhost '\/' of queue type rabbit_classic_queue/);
      } finally {
        assert.equal(await broker.stop({ keepData: true }), 0);
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
