import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AmqpError } from '../../src/amqp/errors.js';
import { FrameParser } from '../../src/amqp/frame-parser.js';
import { FrameWriter, encodeShortstr, encodeShortstrPair } from '../../src/amqp/frame-writer.js';
import { encodeProperties } from '../../src/amqp/content-header.js';
import { tableFromJs } from '../../src/amqp/field-table.js';
import { Method } from '../../src/amqp/spec.generated.js';

interface Frame {
  type: number;
  channel: number;
  payload: Buffer;
}

/** A stream of mixed frames, the longest 1 000 octets of body split at frame-max 300. */
function sampleStream(): Buffer {
  const w = new FrameWriter(256);
  w.heartbeat();
  w.method(0, { id: Method.ConnectionTuneOk, args: { channelMax: 2047, frameMax: 131072, heartbeat: 60 } });
  w.method(1, { id: Method.QueueDeclare, args: { ticket: 0, queue: 'jobs', passive: false, durable: true, exclusive: false, autoDelete: false, nowait: false, arguments: tableFromJs({ 'x-max-length': 10 }) } });
  w.method(1, { id: Method.BasicPublish, args: { ticket: 0, exchange: '', routingKey: 'jobs', mandatory: true, immediate: false } });
  const props = encodeProperties({ contentType: 'text/plain', deliveryMode: 2, headers: tableFromJs({ a: 'b' }) });
  w.contentHeader(1, 60, 1000, props);
  w.body(1, Buffer.alloc(1000, 0x5a), 300);
  w.basicDeliver(7, encodeShortstr('ctag'), 42, true, encodeShortstrPair('ex', 'rk'));
  w.contentHeader(7, 60, 0, encodeProperties({}));
  w.method(65535, { id: Method.ChannelClose, args: { replyCode: 200, replyText: 'bye', classId: 0, methodId: 0 } });
  return w.take();
}

function parseInChunks(bytes: Buffer, cuts: number[], frameMaxBytes = 4096): Frame[] {
  const parser = new FrameParser(frameMaxBytes);
  const out: Frame[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    parser.push(bytes.subarray(from, cut), (type, channel, payload) => out.push({ type, channel, payload: Buffer.from(payload) }));
    from = cut;
  }
  assert.equal(parser.bufferedBytes, 0);
  return out;
}

function assertAmqpError(fn: () => unknown, code: number, pattern?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof AmqpError, `expected AmqpError, got ${String(err)}`);
    assert.equal(err.replyCode, code);
    if (pattern !== undefined) assert.match(err.replyText, pattern);
    return true;
  });
}

const stream = sampleStream();
const reference = parseInChunks(stream, []);

test('the sample stream parses into the frames written', () => {
  assert.equal(reference.length, 12);
  assert.deepEqual(reference.map((f) => f.type), [8, 1, 1, 1, 2, 3, 3, 3, 3, 1, 2, 1]);
  assert.deepEqual(reference.map((f) => f.channel), [0, 0, 1, 1, 1, 1, 1, 1, 1, 7, 7, 65535]);
  assert.deepEqual(reference.slice(5, 9).map((f) => f.payload.length), [292, 292, 292, 124]);
});

test('split at every byte offset, the stream yields identical frames', () => {
  for (let cut = 0; cut <= stream.length; cut++) {
    assert.deepEqual(parseInChunks(stream, [cut]), reference, `cut at ${cut}`);
  }
});

test('split into three pieces at every pair of offsets near frame boundaries', () => {
  // every pair would be ~800k parses; the first 64 octets cover header/payload/end splits of several frames
  for (let a = 0; a <= 64; a++) {
    for (let b = a; b <= 64; b++) assert.deepEqual(parseInChunks(stream, [a, b]), reference, `cuts at ${a}, ${b}`);
  }
});

test('one byte at a time', () => {
  const cuts = Array.from({ length: stream.length - 1 }, (_, i) => i + 1);
  assert.deepEqual(parseInChunks(stream, cuts), reference);
});

test('property: any chunking yields identical frames', () => {
  fc.assert(
    fc.property(fc.uniqueArray(fc.integer({ min: 0, max: stream.length }), { maxLength: 40 }), (cuts) => {
      cuts.sort((x, y) => x - y);
      assert.deepEqual(parseInChunks(stream, cuts), reference);
    }),
    { numRuns: 300 },
  );
});

test('a frame inside one chunk is a view of the chunk (no copy); a straddling one is reassembled', () => {
  const parser = new FrameParser(4096);
  const buffers: ArrayBufferLike[] = [];
  const chunk = Buffer.alloc(stream.length);
  stream.copy(chunk);
  parser.push(chunk, (_t, _c, payload) => buffers.push(payload.buffer));
  assert.ok(buffers.length === reference.length && buffers.every((b) => b === chunk.buffer));

  // Buffer.alloc never hands out the shared pool, so buffer identity tells views from copies
  const first = Buffer.alloc(12);
  stream.copy(first, 0, 0, 12);
  const rest = Buffer.alloc(stream.length - 12);
  stream.copy(rest, 0, 12);
  const seen: Array<{ own: boolean; len: number }> = [];
  const p2 = new FrameParser(4096);
  p2.push(first, (_t, _c, payload) => seen.push({ own: payload.buffer === first.buffer, len: payload.length }));
  assert.equal(p2.bufferedBytes, 4, 'heartbeat (8 octets) delivered, 4 octets of the next header held');
  p2.push(rest, (_t, _c, payload) => seen.push({ own: payload.buffer === rest.buffer, len: payload.length }));
  assert.deepEqual(seen.slice(0, 2), [{ own: true, len: 0 }, { own: false, len: 12 }]);
  assert.ok(seen.slice(2).every((s) => s.own));
});

test('frame-max counts the whole frame but, like RabbitMQ, a payload may reach frame-max', () => {
  const frame = (payloadBytes: number): Buffer => {
    const b = Buffer.alloc(8 + payloadBytes);
    b[0] = 3;
    b.writeUInt16BE(1, 1);
    b.writeUInt32BE(payloadBytes, 3);
    b[7 + payloadBytes] = 0xce;
    return b;
  };
  let count = 0;
  new FrameParser(4096).push(frame(4096), () => count++);
  assert.equal(count, 1);
  assertAmqpError(() => new FrameParser(4096).push(frame(4097), () => count++), 501, /^FRAME_ERROR - type 3, all octets = <<>>: \{frame_too_large,4097,4088\}$/);
  // refused as soon as the header is in, before the payload arrives
  assertAmqpError(() => new FrameParser(4096).push(frame(100000).subarray(0, 7), () => count++), 501, /frame_too_large/);
  const split = new FrameParser(4096);
  split.push(frame(100000).subarray(0, 3), () => count++);
  assertAmqpError(() => split.push(frame(100000).subarray(3, 9), () => count++), 501, /frame_too_large/);
  // 0 is no limit; setFrameMax applies to the next frame
  new FrameParser(0).push(frame(100000), () => count++);
  const p = new FrameParser(0);
  p.setFrameMax(4096);
  assertAmqpError(() => p.push(frame(5000), () => count++), 501);
  assert.equal(count, 2);
});

test('a frame-end octet other than 0xCE is FRAME_ERROR, whole or split', () => {
  const bad = Buffer.from([1, 0, 1, 0, 0, 0, 4, 0, 0x5a, 0, 0x0a, 0xcd]);
  assertAmqpError(() => new FrameParser(4096).push(bad, () => undefined), 501, /invalid_frame_end_marker,205/);
  for (let cut = 1; cut < bad.length; cut++) {
    const p = new FrameParser(4096);
    assertAmqpError(() => {
      p.push(bad.subarray(0, cut), () => undefined);
      p.push(bad.subarray(cut), () => undefined);
    }, 501, /invalid_frame_end_marker/);
  }
});

test('unknown frame types and heartbeats with a payload are FRAME_ERROR', () => {
  assertAmqpError(() => new FrameParser(4096).push(Buffer.from([4, 0, 0, 0, 0, 0, 0, 0xce]), () => undefined), 501, /type 4, all octets = <<>>: unknown_frame/);
  assertAmqpError(() => new FrameParser(4096).push(Buffer.from([8, 0, 0, 0, 0, 0, 1, 7, 0xce]), () => undefined), 501, /type 8, all octets = <<7>>: unknown_frame/);
  // an AMQP 1.0 / HTTP preamble is not a frame either (the front checks the protocol header first)
  assertAmqpError(() => new FrameParser(4096).push(Buffer.from('GET / HTTP/1.1\r\n\r\n'), () => undefined), 501, /frame_too_large/);
});

test('frames delivered before a bad one in the same chunk are still delivered', () => {
  const good = Buffer.from([8, 0, 0, 0, 0, 0, 0, 0xce]);
  const bad = Buffer.from([8, 0, 0, 0, 0, 0, 0, 0x00]);
  const seen: number[] = [];
  assertAmqpError(() => new FrameParser(4096).push(Buffer.concat([good, good, bad]), (t) => seen.push(t)), 501);
  assert.deepEqual(seen, [8, 8]);
});

test('an exception from the callback propagates out of push', () => {
  const p = new FrameParser(4096);
  assert.throws(() => p.push(stream, () => {
    throw new Error('handler failed');
  }), /handler failed/);
});

test('bufferedBytes counts the partial frame held', () => {
  const p = new FrameParser(4096);
  const seen: number[] = [];
  p.push(stream.subarray(0, 3), (t) => seen.push(t));
  assert.equal(p.bufferedBytes, 3);
  p.push(stream.subarray(3, 8 + 10), (t) => seen.push(t));
  assert.equal(p.bufferedBytes, 10);
  assert.deepEqual(seen, [8]);
});
