/**
 * AMQP 0-9-1 over WebSocket (/ws): @cloudamqp/amqp-client's AMQPWebSocketClient connects,
 * publishes with confirms, consumes and acks through the same front code as TCP; the
 * subprotocol handshake; refused paths, subprotocols and text frames; and a consumer whose
 * socket stops reading does not make the node buffer everything it could deliver.
 *
 * Node 20 has no global WebSocket: the `ws` package (installed with uWebSockets.js, which
 * depends on it) provides one, loaded by a computed name since it ships no types.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { AMQPWebSocketClient } from '@cloudamqp/amqp-client';
import type { AMQPMessage } from '@cloudamqp/amqp-client';
import { waitFor } from '../helpers/broker.js';
import { call, list, obj, startMgmtBroker, type MgmtBroker } from './mgmt-kit.js';

interface WsSocket {
  readonly protocol: string;
  readonly readyState: number;
  pause(): void;
  resume(): void;
  send(data: Uint8Array | string): void;
  close(): void;
  on(event: string, cb: (...args: unknown[]) => void): void;
}
type WsClass = new (url: string, protocols?: string | string[]) => WsSocket;

const wsModuleName = 'ws';
const sockets: WsSocket[] = [];
let Ws: WsClass;

function opened(s: WsSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    s.on('open', () => resolve());
    s.on('error', (e) => reject(e instanceof Error ? e : new Error(String(e))));
  });
}

/** The HTTP status a refused upgrade got. */
function refusedWith(s: WsSocket): Promise<number> {
  return new Promise((resolve, reject) => {
    s.on('unexpected-response', (_req, res) => resolve((res as { statusCode: number }).statusCode));
    s.on('open', () => reject(new Error('the upgrade was accepted')));
    s.on('error', () => {});
  });
}

function closedWith(s: WsSocket): Promise<number> {
  return new Promise((resolve) => s.on('close', (code) => resolve(code as number)));
}

describe('AMQP over WebSocket', () => {
  let m: MgmtBroker;
  before(async () => {
    const mod = (await import(wsModuleName)) as { WebSocket: WsClass };
    Ws = mod.WebSocket;
    // The client library constructs `new WebSocket(url)`; keep each one to pause it later.
    class TrackedWebSocket extends mod.WebSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols);
        sockets.push(this);
      }
    }
    (globalThis as Record<string, unknown>)['WebSocket'] = TrackedWebSocket;
    m = await startMgmtBroker();
  });
  after(async () => {
    await m.stop();
  });

  test('AMQPWebSocketClient publishes with confirms, consumes and acks', async () => {
    const client = new AMQPWebSocketClient(m.ws, '/', 'guest', 'guest', 'ws-test');
    const conn = await client.connect();
    const ch = await conn.channel();
    await ch.queueDeclare('ws-q', { durable: true });
    await ch.confirmSelect();
    const bodies = Array.from({ length: 50 }, (_, i) => `ws message ${i}`);
    await Promise.all(bodies.map((b) => ch.basicPublish('', 'ws-q', b, { deliveryMode: 2 })));
    assert.equal(obj(await call(m.mgmt, '/api/queues/%2F/ws-q'))['messages_ready'], 50);

    const got: string[] = [];
    await ch.prefetch(10);
    const consumer = await ch.basicConsume('ws-q', { noAck: false }, async (msg: AMQPMessage) => {
      got.push(msg.bodyToString() ?? '');
      await msg.ack();
    });
    await waitFor(() => got.length === 50, 'all 50 deliveries over the WebSocket');
    assert.deepEqual(got, bodies, 'in order');
    await waitFor(async () => obj(await call(m.mgmt, '/api/queues/%2F/ws-q'))['messages'] === 0, 'all acked');

    const conns = list(await call(m.mgmt, '/api/connections'));
    const mine = conns.find((c) => (c['client_properties'] as Record<string, unknown>)['connection_name'] === 'ws-test');
    assert.ok(mine !== undefined, 'the WebSocket connection is listed');
    assert.equal(mine['transport'], 'websocket');
    assert.equal(mine['peer_host'], '127.0.0.1');
    assert.equal(mine['port'], m.wsPort);
    assert.equal(mine['user'], 'guest');

    await consumer.cancel();
    await conn.close();
    await waitFor(async () => !list(await call(m.mgmt, '/api/connections')).some((c) => c['transport'] === 'websocket'), 'the connection to be gone');
  });

  test("the 'amqp' subprotocol is answered; other subprotocols, paths and text frames are refused", async () => {
    const withAmqp = new Ws(m.ws, ['amqp']);
    await opened(withAmqp);
    assert.equal(withAmqp.protocol, 'amqp');
    const textClosed = closedWith(withAmqp);
    withAmqp.send('AMQP as text');
    assert.equal(await textClosed, 1003);

    assert.equal(await refusedWith(new Ws(m.ws, ['mqtt'])), 400);
    assert.equal(await refusedWith(new Ws(m.ws.replace('/ws', '/other'))), 404);

    // Not AMQP: answered with the protocol header and closed, as over TCP.
    const junk = new Ws(m.ws);
    await opened(junk);
    const reply = new Promise<Buffer>((resolve) => junk.on('message', (d) => resolve(d as Buffer)));
    const closed = closedWith(junk);
    junk.send(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    assert.deepEqual(await reply, Buffer.from('AMQP\x00\x00\x09\x01', 'latin1'));
    await closed;
    assert.equal((await call(m.mgmt, '/api/overview')).status, 200);
  });

  test('a consumer that stops reading pauses delivery instead of filling the node', async () => {
    const messageBytes = 8192;
    // 48 MiB: more than the socket buffers, a shard→front ring and the pause threshold hold together.
    const messages = 6000;
    /** What the node may hold for one peer: the 1 MiB pause threshold plus what was in flight from a shard (its 8 MiB ring). */
    const sendPendMaxBytes = 16 * 1024 * 1024;
    const client = new AMQPWebSocketClient({ url: m.ws, name: 'slow-reader', frameMax: 131072 });
    const conn = await client.connect();
    const socket = sockets[sockets.length - 1];
    assert.ok(socket !== undefined);
    const ch = await conn.channel();
    await ch.queueDeclare('ws-slow', { durable: false });
    let received = 0;
    await ch.basicConsume('ws-slow', { noAck: true }, () => {
      received++;
    });
    socket.pause();

    const pub = await amqp.connect(m.broker.url);
    const pch = await pub.createConfirmChannel();
    const body = Buffer.alloc(messageBytes, 0x61);
    for (let i = 0; i < messages; i++) pch.sendToQueue('ws-slow', body);
    await pch.waitForConfirms();

    // The WebSocket's buffer fills past the pause threshold, delivery stops, the rest waits in the queue.
    let maxPendBytes = 0;
    await waitFor(async () => {
      const c = list(await call(m.mgmt, '/api/connections')).find((x) => (x['client_properties'] as Record<string, unknown>)['connection_name'] === 'slow-reader');
      const pend = Number(c?.['send_pend'] ?? 0);
      maxPendBytes = Math.max(maxPendBytes, pend);
      const ready = Number(obj(await call(m.mgmt, '/api/queues/%2F/ws-slow'))['messages_ready']);
      return pend > 1024 * 1024 && ready > 0;
    }, 'a paused consumer with messages left in its queue', 15_000);
    assert.ok(maxPendBytes < sendPendMaxBytes, `the node buffered ${maxPendBytes} bytes for a peer that does not read`);
    const rss = Number(list(await call(m.mgmt, '/api/nodes'))[0]?.['mem_used'] ?? 0);
    assert.ok(rss < 1024 * 1024 * 1024, `node memory ${rss}`);

    socket.resume();
    await waitFor(() => received === messages, 'every message once the reader reads again', 60_000);
    await pub.close();
    await conn.close();
  });
});
