import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FrameParser } from '../../src/amqp/frame-parser.js';
import { FrameWriter, encodeShortstr, encodeShortstrPair } from '../../src/amqp/frame-writer.js';
import { decodeContentHeader, encodeProperties } from '../../src/amqp/content-header.js';
import { decodeMethod, encodeMethod } from '../../src/amqp/method-codec.js';
import type { AmqpMethod } from '../../src/amqp/spec.generated.js';
import { Method } from '../../src/amqp/spec.generated.js';
import { propertiesArb, shortstrArb } from './arbitraries.js';

interface Frame {
  type: number;
  channel: number;
  payload: Buffer;
}

function framesOf(bytes: Buffer): Frame[] {
  const out: Frame[] = [];
  const parser = new FrameParser(0);
  parser.push(bytes, (type, channel, payload) => out.push({ type, channel, payload: Buffer.from(payload) }));
  assert.equal(parser.bufferedBytes, 0, 'no partial frame left');
  return out;
}

function methodFrame(channel: number, m: AmqpMethod): Buffer {
  const w = new FrameWriter(64);
  w.method(channel, m);
  return w.take();
}

test('basicDeliver writes exactly what the generic basic.deliver encoder writes', () => {
  const w = new FrameWriter();
  w.basicDeliver(3, encodeShortstr('amq.ctag-1'), 2 ** 40 + 3, true, encodeShortstrPair('logs', 'app.info'));
  const expected = methodFrame(3, {
    id: Method.BasicDeliver,
    args: { consumerTag: 'amq.ctag-1', deliveryTag: 2 ** 40 + 3, redelivered: true, exchange: 'logs', routingKey: 'app.info' },
  });
  assert.ok(w.take().equals(expected));
});

test('basicGetOk and basicReturn match the generic encoders', () => {
  const w = new FrameWriter();
  w.basicGetOk(2, 9, false, encodeShortstrPair('', 'q'), 17);
  assert.ok(
    w.take().equals(methodFrame(2, { id: Method.BasicGetOk, args: { deliveryTag: 9, redelivered: false, exchange: '', routingKey: 'q', messageCount: 17 } })),
  );
  w.basicReturn(2, 312, 'NO_ROUTE', encodeShortstrPair('ex', 'nowhere'));
  assert.ok(
    w.take().equals(methodFrame(2, { id: Method.BasicReturn, args: { replyCode: 312, replyText: 'NO_ROUTE', exchange: 'ex', routingKey: 'nowhere' } })),
  );
  assert.throws(() => w.basicReturn(2, 312, 'x'.repeat(256), encodeShortstrPair('', '')), RangeError);
  assert.equal(w.length, 0);
});

test('contentHeader carries class, body size and the property octets untouched', () => {
  const props = encodeProperties({ contentType: 'application/json', deliveryMode: 2, timestamp: 1_700_000_000 });
  const w = new FrameWriter();
  w.contentHeader(5, 60, 2 ** 33 + 1, props);
  const [f] = framesOf(w.take());
  assert.ok(f !== undefined);
  assert.equal(f.type, 2);
  assert.equal(f.channel, 5);
  const h = decodeContentHeader(f.payload);
  assert.equal(h.classId, 60);
  assert.equal(h.weight, 0);
  assert.equal(h.bodySize, 2 ** 33 + 1);
  assert.ok(h.propertyBytes.equals(props));
});

test('body is split into frames of at most frame-max - 8 payload; none for an empty body', () => {
  const body = Buffer.from(Array.from({ length: 10_000 }, (_, i) => i & 0xff));
  const w = new FrameWriter(128);
  w.body(1, body, 4096);
  const frames = framesOf(w.take());
  assert.deepEqual(frames.map((f) => f.payload.length), [4088, 4088, 1824]);
  assert.ok(frames.every((f) => f.type === 3 && f.channel === 1));
  assert.ok(Buffer.concat(frames.map((f) => f.payload)).equals(body));

  w.body(1, Buffer.alloc(4088), 4096);
  assert.deepEqual(framesOf(w.take()).map((f) => f.payload.length), [4088]);
  w.body(1, Buffer.alloc(4089), 4096);
  assert.deepEqual(framesOf(w.take()).map((f) => f.payload.length), [4088, 1]);
  w.body(1, body, 0);
  assert.deepEqual(framesOf(w.take()).map((f) => f.payload.length), [10_000]);
  w.body(1, Buffer.alloc(0), 4096);
  assert.equal(w.length, 0);
  assert.throws(() => w.body(1, body, 8), RangeError);
});

test('heartbeat and raw frames', () => {
  const w = new FrameWriter(8);
  w.heartbeat();
  assert.deepEqual([...w.take()], [8, 0, 0, 0, 0, 0, 0, 0xce]);
  w.frame(1, 9, Buffer.from([0, 0x5a, 0, 0x0a]));
  assert.deepEqual([...w.take()], [1, 0, 9, 0, 0, 0, 4, 0, 0x5a, 0, 0x0a, 0xce]);
});

test('take hands out what was written since the last take; that memory is never written again', () => {
  const w = new FrameWriter(64);
  assert.equal(w.take().length, 0);
  w.heartbeat();
  w.heartbeat();
  assert.equal(w.length, 16);
  const first = w.take();
  const firstCopy = Buffer.from(first);
  assert.equal(w.length, 0);
  // fill the rest of the buffer, then force several growths
  for (let i = 0; i < 200; i++) w.method(1, { id: Method.BasicAck, args: { deliveryTag: i, multiple: false } });
  const second = w.take();
  w.body(1, Buffer.alloc(5000, 1), 131072);
  const third = w.take();
  assert.ok(first.equals(firstCopy));
  assert.equal(framesOf(second).length, 200);
  assert.equal(framesOf(third)[0]?.payload.length, 5000);
  assert.ok(first.equals(firstCopy), 'earlier takes unchanged');
  assert.throws(() => new FrameWriter(4), RangeError);
});

test('encodeShortstr / encodeShortstrPair include the length octets; over 255 bytes is refused', () => {
  assert.deepEqual([...encodeShortstr('ab')], [2, 0x61, 0x62]);
  assert.deepEqual([...encodeShortstr('')], [0]);
  assert.deepEqual([...encodeShortstrPair('a', 'é')], [1, 0x61, 2, 0xc3, 0xa9]);
  assert.equal(encodeShortstr('x'.repeat(255)).length, 256);
  assert.throws(() => encodeShortstr('x'.repeat(256)), RangeError);
  assert.throws(() => encodeShortstr('é'.repeat(128)), RangeError);
});

test('property: deliveries written on the fast path parse back to the same messages, across takes and growth', () => {
  const deliveryArb = fc.record({
    channel: fc.integer({ min: 0, max: 65535 }),
    consumerTag: shortstrArb,
    deliveryTag: fc.maxSafeNat(),
    redelivered: fc.boolean(),
    exchange: shortstrArb,
    routingKey: shortstrArb,
    properties: propertiesArb,
    bodyBytes: fc.integer({ min: 0, max: 3000 }),
    frameMaxBytes: fc.constantFrom(0, 4096, 9, 131072),
    takeAfter: fc.boolean(),
  });
  fc.assert(
    fc.property(fc.array(deliveryArb, { maxLength: 8 }), fc.integer({ min: 8, max: 512 }), (deliveries, initialBytes) => {
      const w = new FrameWriter(initialBytes);
      const taken: Buffer[] = [];
      for (const d of deliveries) {
        const body = Buffer.alloc(d.bodyBytes, d.deliveryTag & 0xff);
        const props = encodeProperties(d.properties);
        w.basicDeliver(d.channel, encodeShortstr(d.consumerTag), d.deliveryTag, d.redelivered, encodeShortstrPair(d.exchange, d.routingKey));
        w.contentHeader(d.channel, 60, body.length, props);
        w.body(d.channel, body, d.frameMaxBytes);
        if (d.takeAfter) taken.push(Buffer.from(w.take()));
      }
      taken.push(w.take());
      const frames = framesOf(Buffer.concat(taken));
      let i = 0;
      for (const d of deliveries) {
        const m = frames[i++];
        assert.ok(m !== undefined && m.type === 1 && m.channel === d.channel);
        assert.deepEqual(decodeMethod(m.payload), {
          id: Method.BasicDeliver,
          args: { consumerTag: d.consumerTag, deliveryTag: d.deliveryTag, redelivered: d.redelivered, exchange: d.exchange, routingKey: d.routingKey },
        });
        const h = frames[i++];
        assert.ok(h !== undefined && h.type === 2);
        const header = decodeContentHeader(h.payload);
        assert.equal(header.bodySize, d.bodyBytes);
        assert.ok(header.propertyBytes.equals(encodeProperties(d.properties)));
        let received = 0;
        while (received < d.bodyBytes) {
          const b = frames[i++];
          assert.ok(b !== undefined && b.type === 3 && b.channel === d.channel);
          if (d.frameMaxBytes !== 0) assert.ok(b.payload.length <= d.frameMaxBytes - 8);
          assert.ok(b.payload.every((x) => x === (d.deliveryTag & 0xff)));
          received += b.payload.length;
        }
        assert.equal(received, d.bodyBytes);
      }
      assert.equal(i, frames.length);
    }),
    { numRuns: 100 },
  );
});

test('the hot path matches encodeMethod for random deliveries', () => {
  fc.assert(
    fc.property(shortstrArb, fc.maxSafeNat(), fc.boolean(), shortstrArb, shortstrArb, (ct, tag, re, ex, rk) => {
      const w = new FrameWriter(16);
      w.basicDeliver(1, encodeShortstr(ct), tag, re, encodeShortstrPair(ex, rk));
      const [f] = framesOf(w.take());
      assert.ok(f !== undefined);
      assert.ok(f.payload.equals(encodeMethod({ id: Method.BasicDeliver, args: { consumerTag: ct, deliveryTag: tag, redelivered: re, exchange: ex, routingKey: rk } })));
    }),
    { numRuns: 200 },
  );
});

test('a channel outside 0..65535 is refused and nothing is written', () => {
  const w = new FrameWriter(64);
  assert.throws(() => w.basicDeliver(65536, encodeShortstr('c'), 1, false, encodeShortstrPair('', 'q')), RangeError);
  assert.throws(() => w.method(-1, { id: Method.ChannelOpenOk, args: { channelId: '' } }), RangeError);
  assert.equal(w.length, 0);
});
