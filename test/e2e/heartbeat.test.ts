/**
 * Heartbeats (issue #3): a peer that negotiated heartbeat=1 and then goes silent is dropped
 * within ~2-3 s, as rabbit_heartbeat's receiver does ("time out between 2 and 3 intervals
 * after the last data"), with no connection.close; a peer that stays idle but alive is kept,
 * and the broker sends it heartbeats every half interval while it has nothing else to send.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { RawAmqp, countHeartbeats } from '../helpers/raw-amqp.js';
import { FrameType, Method } from '../../src/amqp/spec.generated.js';

/** Long enough to outlast two missed intervals of heartbeat=1 with room to spare. */
const idleMs = 3_000;

let broker: TestBroker;

describe('heartbeats', () => {
  before(async () => {
    broker = await startBroker();
  });

  after(async () => {
    if (broker !== undefined) assert.equal(await broker.stop(), 0, broker.log());
  });

  test('a silent peer with heartbeat=1 is dropped within 2-3 s, after being sent heartbeats; heartbeat=0 is not', { timeout: 10_000 }, async () => {
    const silent = await RawAmqp.connect(broker.host, broker.port);
    const noHeartbeat = await RawAmqp.connect(broker.host, broker.port);
    try {
      await noHeartbeat.handshake({ heartbeatS: 0 });
      const tune = await silent.tuned({ heartbeatS: 1 });
      assert.ok(tune.heartbeat > 0, 'the broker proposes heartbeats');
      await silent.sendMethod(0, { id: Method.ConnectionOpen, args: { virtualHost: '/', capabilities: '', insist: false } });
      const lastSentAt = Date.now();
      await silent.expectMethod(0, Method.ConnectionOpenOk);
      const afterOpenOk = silent.received.length;
      // Only heartbeats may arrive, then the broker drops the socket without connection.close.
      await silent.expectSilentClose(4_000);
      const silentForMs = Date.now() - lastSentAt;
      assert.ok(silentForMs >= 1_900, `dropped after only ${silentForMs} ms of silence`);
      assert.ok(silentForMs <= 3_500, `dropped only after ${silentForMs} ms of silence`);
      const heartbeats = countHeartbeats(silent, afterOpenOk);
      assert.ok(heartbeats >= 2, `the broker sent ${heartbeats} heartbeat frame(s) to the silent peer`);
      assert.match(broker.log(), /missed heartbeats/);
      // The peer that asked for no heartbeats was just as silent and is still connected.
      assert.equal(noHeartbeat.peerEnded, false, 'a heartbeat=0 peer was dropped for silence');
      assert.equal(countHeartbeats(noHeartbeat, 0), 0, 'a heartbeat=0 peer was sent heartbeats');
      await noHeartbeat.openChannel(1);
    } finally {
      silent.destroy();
      noHeartbeat.destroy();
    }
  });

  test('a raw peer with heartbeat=1 that sends heartbeats stays connected and receives them', { timeout: 10_000 }, async () => {
    const raw = await RawAmqp.connect(broker.host, broker.port);
    try {
      await raw.handshake({ heartbeatS: 1 });
      const from = raw.received.length;
      const heartbeat = Buffer.from([FrameType.heartbeat, 0, 0, 0, 0, 0, 0, 0xce]);
      const ticker = setInterval(() => void raw.send(heartbeat), 400);
      try {
        await new Promise((r) => setTimeout(r, idleMs));
      } finally {
        clearInterval(ticker);
      }
      assert.equal(raw.peerEnded, false, `the broker dropped a peer that sent heartbeats:\n${broker.log()}`);
      const heartbeats = countHeartbeats(raw, from);
      assert.ok(heartbeats >= 4, `received ${heartbeats} heartbeat frame(s) in ${idleMs} ms with heartbeat=1`);
      await raw.openChannel(1);
      await raw.sendMethod(0, { id: Method.ConnectionClose, args: { replyCode: 200, replyText: 'bye', classId: 0, methodId: 0 } });
      await raw.expectMethod(0, Method.ConnectionCloseOk);
      await raw.waitPeerClosed();
    } finally {
      raw.destroy();
    }
  });

  test('an idle amqplib client with heartbeat=1 is kept alive for 3 s and still round-trips', { timeout: 10_000 }, async () => {
    const conn = await amqp.connect(`${broker.url}?heartbeat=1`);
    const problems: string[] = [];
    conn.on('error', (err: Error) => problems.push(`error: ${err.message}`));
    conn.on('close', () => problems.push('closed'));
    try {
      const ch = await conn.createChannel();
      const { queue } = await ch.assertQueue('', { exclusive: true });
      await new Promise((r) => setTimeout(r, idleMs));
      assert.deepEqual(problems, [], 'amqplib gave up on the broker while idle (no heartbeats from it?)');
      const got = new Promise<string>((resolve) => {
        void ch.consume(queue, (m) => m !== null && resolve(m.content.toString()), { noAck: true });
      });
      ch.sendToQueue(queue, Buffer.from('still here'));
      let timer: NodeJS.Timeout | undefined;
      const body = await Promise.race([
        got,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('no delivery within 3 s after idling')), 3_000);
        }),
      ]).finally(() => clearTimeout(timer));
      assert.equal(body, 'still here');
      const drops = broker.log().match(/missed heartbeats/g) ?? [];
      assert.ok(drops.length <= 1, `the broker dropped ${drops.length} peers for missed heartbeats; only the silent raw one should be`);
    } finally {
      await conn.close();
    }
    assert.deepEqual(problems, ['closed']);
  });
});
