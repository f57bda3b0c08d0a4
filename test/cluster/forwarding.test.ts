/**
 * Inter-node forwarding: a client on node B uses a queue that node A leads. Two real nodes run
 * in this process (startNode, one shard each, their own temp data dirs and ephemeral ports),
 * each with its peer listener; B learns where the queue lives through addRemoteQueue, as
 * cluster placement will tell it. B reaches A through a small TCP relay the test can freeze,
 * so "A goes down with a publish unconfirmed" happens at a known moment rather than by luck.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqp from 'amqplib';
import { startNode, type RunningNode } from '../../src/node/node.js';
import { defaultConfig } from '../../src/node/config.js';
import { createLogger } from '../../src/node/logger.js';
import { startPeerListener, type RunningPeerListener } from '../../src/front/peer-session.js';
import { PeerLink } from '../../src/cluster/peer-link.js';
import { waitFor } from '../helpers/broker.js';
import { Inbox, within } from '../helpers/amqp-expect.js';

const secret = 'forwarding-test-secret';

interface TestNode {
  name: string;
  node: RunningNode;
  peer: RunningPeerListener;
  url: string;
  logs: string[];
  dataDir: string;
}

async function startTestNode(name: string): Promise<TestNode> {
  const dataDir = mkdtempSync(join(tmpdir(), 'warren-fwd-'));
  const logs: string[] = [];
  const log = createLogger('info', (line) => logs.push(line));
  const config = { ...defaultConfig(), port: 0, shards: 1, dataDir, nodeName: name, mgmtPort: 'off' as const, prometheusPort: 'off' as const, wsPort: 'off' as const };
  const node = await startNode(config, log);
  const peer = await startPeerListener(node.broker, { host: '127.0.0.1', port: 0, secret, nodeName: name, log });
  return { name, node, peer, url: `amqp://guest:guest@127.0.0.1:${node.port}`, logs, dataDir };
}

async function stopTestNode(n: TestNode): Promise<void> {
  await n.peer.close();
  await n.node.stop();
  rmSync(n.dataDir, { recursive: true, force: true });
}

/** A TCP relay to a port; freeze() holds what the dialling side sends (the other way keeps flowing). */
async function startRelay(targetPort: number): Promise<{ address: string; freeze(): void; dropAll(): void; close(): Promise<void> }> {
  let frozen = false;
  const sockets = new Set<Socket>();
  const server = createServer((down) => {
    const up = createConnection({ host: '127.0.0.1', port: targetPort });
    sockets.add(down).add(up);
    const end = (): void => {
      down.destroy();
      up.destroy();
    };
    down.on('data', (d: Buffer) => {
      if (!frozen) up.write(d);
    });
    up.on('data', (d: Buffer) => down.write(d));
    for (const s of [down, up]) {
      s.on('error', end);
      s.on('close', () => {
        sockets.delete(s);
        end();
      });
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    address: `127.0.0.1:${port}`,
    freeze: () => {
      frozen = true;
    },
    /** Cuts the connections through the relay (a network blip); new ones get through. */
    dropAll: () => {
      for (const s of sockets) s.destroy();
    },
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

describe('forwarding to a queue led by another node', () => {
  let a: TestNode;
  let b: TestNode;
  let relay: Awaited<ReturnType<typeof startRelay>>;
  let connA: amqp.ChannelModel;
  let connB: amqp.ChannelModel;
  let chA: amqp.Channel;
  let chB: amqp.Channel;
  let aStopped = false;

  /** Declares a queue on A and registers it on B as led by A. */
  async function remoteQueue(name: string): Promise<void> {
    await chA.assertQueue(name, { durable: false });
    const q = a.node.broker.vhost('/').queues.get(name);
    assert.ok(q !== undefined);
    b.node.broker.addRemoteQueue(
      b.node.broker.vhost('/'),
      { name, durable: false, exclusive: false, autoDelete: false, arguments: {}, owner: undefined },
      { queueId: q.queueId, node: a.name, peer: relay.address },
    );
  }

  /** basic.get until a message comes (for a message on its way back to a queue). */
  async function getEventually(ch: amqp.Channel, queue: string): Promise<amqp.GetMessage> {
    return waitFor(async () => {
      const m = await ch.get(queue, { noAck: true });
      return m === false ? undefined : m;
    }, `a message in ${queue}`);
  }

  async function readyOnA(queue: string): Promise<number> {
    return (await chA.checkQueue(queue)).messageCount;
  }

  before(async () => {
    a = await startTestNode('a@forwarding');
    b = await startTestNode('b@forwarding');
    relay = await startRelay(a.peer.port);
    connA = await amqp.connect(a.url);
    connB = await amqp.connect(b.url);
    chA = await connA.createChannel();
    chB = await connB.createChannel();
    // Queues first: B registers A's ids, and then declares none of its own that could take one.
    for (const q of ['fwd.publish', 'fwd.consume', 'fwd.get', 'fwd.purge', 'fwd.delete', 'fwd.move', 'fwd.down']) await remoteQueue(q);
  });

  after(async () => {
    await connB.close().catch(() => {});
    await connA.close().catch(() => {});
    await relay.close();
    if (!aStopped) await stopTestNode(a);
    await stopTestNode(b);
    if (process.env['FWD_LOGS'] !== undefined) console.log(['--- A', ...a.logs, '--- B', ...b.logs].join(''));
  });

  test('a publish with confirms on B lands on A, through the default exchange and a binding made on B', async () => {
    const conf = await connB.createConfirmChannel();
    conf.sendToQueue('fwd.publish', Buffer.from('one'));
    await conf.bindQueue('fwd.publish', 'amq.direct', 'fwd-key');
    conf.publish('amq.direct', 'fwd-key', Buffer.from('two'), { headers: { h: 1 } });
    await within(conf.waitForConfirms(), 'confirms from A through B');
    await conf.close();
    const one = await chA.get('fwd.publish', { noAck: true });
    const two = await chA.get('fwd.publish', { noAck: true });
    assert.ok(one !== false && two !== false);
    assert.equal(one.content.toString(), 'one');
    assert.equal(two.content.toString(), 'two');
    assert.equal(two.fields.exchange, 'amq.direct');
    assert.deepEqual(two.properties.headers, { h: 1 });
    assert.equal(await chA.get('fwd.publish'), false);
  });

  test('a direct reply-to reply published on B reaches the requester on A over the peer link', async () => {
    // The cluster tells every node its members' peer addresses (cluster-member.ts noteMember).
    b.node.broker.setPeerAddress(a.name, `127.0.0.1:${a.peer.port}`);
    const requester = await connA.createChannel();
    const replies = new Inbox<amqp.ConsumeMessage>();
    await requester.consume('amq.rabbitmq.reply-to', (m) => m !== null && replies.push(m), { noAck: true });
    const requests = 'fwd.rpc-requests';
    await requester.assertQueue(requests, { exclusive: true });
    for (let i = 0; i < 3; i++) requester.sendToQueue(requests, Buffer.from(`q${i}`), { replyTo: 'amq.rabbitmq.reply-to', correlationId: `c${i}` });
    const responder = await connB.createConfirmChannel();
    const returns = new Inbox<amqp.Message>();
    responder.on('return', returns.push);
    for (let i = 0; i < 3; i++) {
      const request = await waitFor(async () => {
        const m = await chA.get(requests, { noAck: true });
        return m === false ? undefined : m;
      }, `request ${i} on A`);
      responder.sendToQueue(String(request.properties.replyTo), Buffer.from(`re:${request.content.toString()}`), { correlationId: request.properties.correlationId, mandatory: true });
    }
    await within(responder.waitForConfirms(), 'confirms of the replies on B');
    const got = await replies.atLeast(3, 'three replies forwarded from B');
    assert.deepEqual(got.map((m) => [m.content.toString(), m.properties.correlationId]), [['re:q0', 'c0'], ['re:q1', 'c1'], ['re:q2', 'c2']]);
    assert.ok(got.every((m) => m.fields.exchange === '' && String(m.fields.routingKey).startsWith('amq.rabbitmq.reply-to.')));
    // A name of B's own that nobody holds is unroutable on B itself.
    const stray = `amq.rabbitmq.reply-to.${b.node.broker.directReplies.token}.gone`;
    responder.sendToQueue(stray, Buffer.from('stray'), { mandatory: true });
    await within(responder.waitForConfirms(), 'the confirm of the stray reply');
    const [returned] = await returns.atLeast(1, 'the return of the stray reply');
    assert.equal(returned?.fields.routingKey, stray);
    assert.equal(returns.items.length, 1, 'the forwarded replies were routed');
    await responder.close();
    await requester.close();
  });

  test('passive declare on B answers with the leader counts', async () => {
    for (let i = 0; i < 3; i++) chA.sendToQueue('fwd.get', Buffer.from(`g${i}`));
    await waitFor(async () => (await readyOnA('fwd.get')) === 3, '3 ready on A');
    const ok = await chB.checkQueue('fwd.get');
    assert.deepEqual([ok.queue, ok.messageCount, ok.consumerCount], ['fwd.get', 3, 0]);
  });

  test('basic.get through B gives B delivery tags; ack and noAck settle on A', async () => {
    const ch = await connB.createChannel();
    const m1 = await ch.get('fwd.get');
    assert.ok(m1 !== false);
    assert.equal(m1.content.toString(), 'g0');
    assert.equal(m1.fields.deliveryTag, 1);
    assert.equal(m1.fields.messageCount, 2);
    const m2 = await ch.get('fwd.get', { noAck: true });
    assert.ok(m2 !== false);
    assert.equal(m2.fields.deliveryTag, 2);
    ch.ack(m1);
    const m3 = await ch.get('fwd.get');
    assert.ok(m3 !== false);
    assert.equal(m3.content.toString(), 'g2');
    ch.nack(m3, false, true);
    const again = await ch.get('fwd.get');
    assert.ok(again !== false);
    assert.equal(again.content.toString(), 'g2');
    assert.equal(again.fields.redelivered, true);
    ch.ack(again);
    assert.equal(await ch.get('fwd.get'), false);
    await ch.close();
    assert.equal(await readyOnA('fwd.get'), 0);
  });

  test('a consumer on B with manual acks and prefetch: B tags, acks settle on A, a requeue comes back redelivered', async () => {
    for (let i = 0; i < 5; i++) chA.sendToQueue('fwd.consume', Buffer.from(`c${i}`));
    const ch = await connB.createChannel();
    await ch.prefetch(2);
    const inbox = new Inbox<amqp.ConsumeMessage>();
    const { consumerTag } = await ch.consume('fwd.consume', (m) => m !== null && inbox.push(m));
    await inbox.atLeast(2);
    // Prefetch 2 holds the rest on A: three ready there, one consumer (B's, through its proxy).
    await waitFor(async () => (await readyOnA('fwd.consume')) === 3, '3 still ready on A');
    assert.equal(inbox.items.length, 2);
    assert.equal((await chA.checkQueue('fwd.consume')).consumerCount, 1);
    assert.deepEqual(inbox.items.map((m) => [m.content.toString(), m.fields.deliveryTag, m.fields.redelivered]), [['c0', 1, false], ['c1', 2, false]]);

    ch.ack(inbox.items[0] as amqp.Message);
    await inbox.atLeast(3);
    assert.deepEqual([inbox.items[2]?.content.toString(), inbox.items[2]?.fields.deliveryTag], ['c2', 3]);

    ch.nack(inbox.items[1] as amqp.Message, false, true); // c1 back to A, redelivered first
    await inbox.atLeast(4);
    const redelivered = inbox.items[3];
    assert.deepEqual([redelivered?.content.toString(), redelivered?.fields.deliveryTag, redelivered?.fields.redelivered], ['c1', 4, true]);

    for (let seen = 4; seen < 6; seen++) {
      ch.ack(inbox.items[seen - 2] as amqp.Message);
      await inbox.atLeast(seen + 1);
    }
    ch.ackAll();
    await waitFor(async () => (await chA.checkQueue('fwd.consume')).messageCount === 0, 'queue drained on A');
    assert.deepEqual(inbox.items.map((m) => m.content.toString()).sort(), ['c0', 'c1', 'c1', 'c2', 'c3', 'c4']);
    await ch.cancel(consumerTag);
    await waitFor(async () => (await chA.checkQueue('fwd.consume')).consumerCount === 0, 'the proxy consumer gone on A');
    await ch.close();
  });

  test('unacked deliveries on B go back to A when the channel on B closes', async () => {
    chA.sendToQueue('fwd.consume', Buffer.from('held'));
    const ch = await connB.createChannel();
    const inbox = new Inbox<amqp.ConsumeMessage>();
    await ch.consume('fwd.consume', (m) => m !== null && inbox.push(m));
    await inbox.atLeast(1);
    await ch.close();
    const m = await getEventually(chA, 'fwd.consume');
    assert.equal(m.content.toString(), 'held');
    assert.equal(m.fields.redelivered, true);
  });

  test('purge and delete through B act on A', async () => {
    for (let i = 0; i < 3; i++) chA.sendToQueue('fwd.purge', Buffer.from('p'));
    for (let i = 0; i < 2; i++) chA.sendToQueue('fwd.delete', Buffer.from('d'));
    await waitFor(async () => (await readyOnA('fwd.purge')) === 3 && (await readyOnA('fwd.delete')) === 2, 'messages on A');
    assert.equal((await chB.purgeQueue('fwd.purge')).messageCount, 3);
    assert.equal(await readyOnA('fwd.purge'), 0);
    assert.equal((await chB.deleteQueue('fwd.delete')).messageCount, 2);
    assert.equal(a.node.broker.vhost('/').queues.has('fwd.delete'), false);
    assert.equal(b.node.broker.vhost('/').queues.has('fwd.delete'), false);
  });

  test('a dropped link cancels B\'s consumer and requeues on A; B redials, and acks of deliveries before the drop settle nothing', async () => {
    chA.sendToQueue('fwd.consume', Buffer.from('x'));
    const ch = await connB.createChannel();
    await ch.prefetch(1);
    const inbox = new Inbox<amqp.ConsumeMessage | null>();
    await ch.consume('fwd.consume', inbox.push);
    await inbox.atLeast(1);
    const before = inbox.items[0];
    assert.ok(before !== null && before !== undefined);
    relay.dropAll();
    await inbox.atLeast(2, 'basic.cancel after the drop');
    assert.equal(inbox.items[1], null);

    // Consuming again dials a new link; A requeued x when the old one closed.
    const again = new Inbox<amqp.ConsumeMessage>();
    const { consumerTag } = await ch.consume('fwd.consume', (m) => m !== null && again.push(m));
    await again.atLeast(1);
    const redelivery = again.items[0];
    assert.deepEqual([redelivery?.content.toString(), redelivery?.fields.redelivered, redelivery?.fields.deliveryTag], ['x', true, 2]);
    // The tag from before the drop is still valid for the client, but must not settle the redelivery.
    ch.ack(before);
    await ch.cancel(consumerTag);
    await ch.close(); // requeues the redelivery, which is still unacked on A
    const m = await getEventually(chA, 'fwd.consume');
    assert.deepEqual([m.content.toString(), m.fields.redelivered], ['x', true]);
  });

  test('moveQueue switches a queue between led here and led by A (consumers cancelled); removeQueueMeta forgets it on B only', async () => {
    const broker = b.node.broker;
    const q = broker.vhost('/').queues.get('fwd.move');
    assert.ok(q !== undefined);
    const ch = await connB.createChannel();
    const inbox = new Inbox<amqp.ConsumeMessage | null>();
    await ch.consume('fwd.move', inbox.push);
    await waitFor(async () => (await chA.checkQueue('fwd.move')).consumerCount === 1, 'B\'s consumer on A');

    broker.moveQueue(q, { shardIndex: 0 });
    await inbox.atLeast(1, 'basic.cancel when the leader moves');
    assert.equal(inbox.items[0], null);
    await waitFor(async () => (await chA.checkQueue('fwd.move')).consumerCount === 0, 'the proxy consumer gone on A');
    ch.sendToQueue('fwd.move', Buffer.from('kept on B'));
    await waitFor(async () => (await ch.checkQueue('fwd.move')).messageCount === 1, 'the message in B\'s own shard');
    assert.equal(await readyOnA('fwd.move'), 0);

    broker.moveQueue(q, { node: a.name, peer: relay.address });
    chA.sendToQueue('fwd.move', Buffer.from('on A'));
    await waitFor(async () => (await ch.checkQueue('fwd.move')).messageCount === 1 && (await readyOnA('fwd.move')) === 1, 'B answering with A\'s count');
    const m = await ch.get('fwd.move', { noAck: true });
    assert.ok(m !== false);
    assert.equal(m.content.toString(), 'on A');

    broker.removeQueueMeta(q, 'deleted in the cluster (test)');
    const closed = new Promise<Error>((resolve) => ch.once('error', resolve));
    ch.checkQueue('fwd.move').catch(() => {});
    assert.match((await within(closed, 'channel close')).message, /404/);
    assert.equal(a.node.broker.vhost('/').queues.has('fwd.move'), true);
  });

  test('a peer without the cluster secret is refused and logged', async () => {
    const reason = await new Promise<string>((resolve) => {
      PeerLink.dial(`127.0.0.1:${a.peer.port}`, { secret: 'wrong', nodeName: 'intruder@x' }, undefined, {
        onOpen: () => resolve('opened'),
        onRecord: () => {},
        onBatchEnd: () => {},
        onDrain: () => {},
        onClose: resolve,
      });
    });
    assert.match(reason, /handshake failed/);
    await waitFor(() => a.logs.some((l) => /peer link from .* refused: peer "intruder@x" does not know the cluster secret/.test(l)), 'the refusal in A\'s log');
  });

  test('A stops: B\'s consumer gets basic.cancel, an unconfirmed publish a nack, requests a 404, and B stays up', async () => {
    const consumerCh = await connB.createChannel();
    const cancelled = new Promise<void>((resolve) => {
      void consumerCh.consume('fwd.down', (m) => {
        if (m === null) resolve();
      });
    });
    // The consumer is registered on A before the link is frozen.
    await waitFor(async () => (await chA.checkQueue('fwd.down')).consumerCount === 1, 'B\'s consumer on A');

    const conf = await connB.createConfirmChannel();
    relay.freeze(); // what B sends from now on never reaches A
    const nacked = new Promise<Error | null>((resolve) => conf.sendToQueue('fwd.down', Buffer.from('lost'), {}, (err) => resolve(err as Error | null)));
    await connA.close();
    await stopTestNode(a);
    aStopped = true;

    await within(cancelled, 'basic.cancel on B');
    assert.ok((await within(nacked, 'the publish outcome')) !== null, 'the unconfirmed publish is nacked');
    await waitFor(() => b.logs.some((l) => /peer link to node a@forwarding .* closed/.test(l)), 'the closed link in B\'s log');

    // A publish while A is unreachable is nacked too (B dials, fails, says so).
    const later = await new Promise<Error | null>((resolve) => conf.sendToQueue('fwd.down', Buffer.from('later'), {}, (err) => resolve(err as Error | null)));
    assert.ok(later !== null, 'a publish to the unreachable leader is nacked');

    // basic.get on a queue whose leader is gone: 404, as RabbitMQ says for a queue whose node is down.
    const getCh = await connB.createChannel();
    const closed = new Promise<Error>((resolve) => getCh.once('error', resolve));
    getCh.get('fwd.down').catch(() => {});
    assert.match((await within(closed, 'channel close')).message, /404.*home node 'a@forwarding'.*down or inaccessible/);

    // B itself is fine: a local queue works end to end.
    const ch = await connB.createChannel();
    await ch.assertQueue('b.local', { durable: false, exclusive: true });
    ch.sendToQueue('b.local', Buffer.from('still here'));
    const m = await getEventually(ch, 'b.local');
    assert.equal(m.content.toString(), 'still here');
  });
});
