/**
 * Direct replies go straight to the requester's socket, past the shards' flow control, so a
 * requester that stops reading must not make the node buffer replies without bound: past
 * replyBacklogMaxBytes of unsent output a reply is unroutable (returned to a mandatory
 * publisher). Warren's own limit (RabbitMQ would hold them until its memory alarm), so warren only.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { startBroker, waitFor, type TestBroker } from '../helpers/broker.js';
import { RawAmqp, bodyFrame, frame, publishFrame } from '../helpers/raw-amqp.js';
import { encodeProperties } from '../../src/amqp/content-header.js';
import { FrameType, Method } from '../../src/amqp/spec.generated.js';
import { Inbox, within } from '../helpers/amqp-expect.js';
import { replyBacklogMaxBytes } from '../../src/front/direct-reply.js';
import { unique } from '../helpers/feature-kit.js';

const replyBytes = 1024 * 1024;
/** Twice the backlog limit, plus room for what the kernel's socket buffers take first. */
const replies = (2 * replyBacklogMaxBytes) / replyBytes + 16;

describe('direct reply-to backlog', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startBroker();
  });
  after(async () => {
    assert.equal(await broker.stop(), 0);
  });

  test('replies to a requester that stopped reading are returned past the backlog limit, and the node stays up', { timeout: 120_000 }, async () => {
    // The requester speaks raw AMQP so that the test can stop it reading its socket.
    const requester = await RawAmqp.connect(broker.host, broker.port);
    await requester.handshake();
    await requester.openChannel(1);
    await requester.sendMethod(1, { id: Method.BasicConsume, args: { ticket: 0, queue: 'amq.rabbitmq.reply-to', consumerTag: '', noLocal: false, noAck: true, exclusive: false, nowait: false, arguments: {} } });
    await requester.expectMethod(1, Method.BasicConsumeOk);
    const responderConn = await amqp.connect(broker.url);
    const responder = await responderConn.createConfirmChannel();
    const requests = unique('drt-backlog');
    await responder.assertQueue(requests, { exclusive: true });
    const requestBody = Buffer.from('send me a lot');
    const props = encodeProperties({ replyTo: 'amq.rabbitmq.reply-to' });
    const header = Buffer.alloc(12);
    header.writeUInt16BE(60, 0);
    header.writeUInt32BE(requestBody.length, 8);
    await requester.send(Buffer.concat([publishFrame(1, '', requests), frame(FrameType.header, 1, Buffer.concat([header, props])), bodyFrame(1, requestBody)]));
    const request = await waitFor(async () => (await responder.get(requests, { noAck: true })) || undefined, 'the request');
    const name = String(request.properties.replyTo);
    assert.ok(name.startsWith('amq.rabbitmq.reply-to.'), name);
    requester.socket.pause();
    const returned = new Inbox<amqp.Message>();
    responder.on('return', returned.push);
    const body = Buffer.alloc(replyBytes, 7);
    for (let i = 0; i < replies; i++) {
      body.writeUInt32BE(i, 0);
      responder.sendToQueue(name, body, { mandatory: true });
      await within(responder.waitForConfirms(), `the confirm of reply ${i}`, 30_000);
    }
    const numbers = returned.items.map((m) => m.content.readUInt32BE(0));
    assert.ok(numbers.length > 0, 'past the limit replies are returned');
    assert.ok((numbers[0] ?? 0) > 0, 'the first replies were taken');
    assert.deepEqual(numbers, Array.from({ length: numbers.length }, (_, i) => replies - numbers.length + i), 'every reply after the first returned one is returned too');
    // The node still serves everyone else.
    const other = await amqp.connect(broker.url);
    await (await other.createChannel()).checkExchange('amq.direct');
    await other.close();
    requester.socket.destroy();
    await responderConn.close();
  });
});
