import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import { AmqpError } from '../../src/amqp/errors.js';
import type { BasicProperties } from '../../src/amqp/content-header.js';
import {
  decodeContentHeader,
  decodeProperties,
  encodeProperties,
  peekDeliveryMode,
  peekExpiration,
  peekHeaders,
  peekPriority,
  peekReplyTo,
  peekTimestamp,
  peekUserId,
  validateProperties,
  withHeaders,
  withReplyTo,
  withoutExpiration,
} from '../../src/amqp/content-header.js';
import { encodeTable, tableFromJs, tableToJs, tablesEqual } from '../../src/amqp/field-table.js';
import { fieldTableArb, propertiesArb } from './arbitraries.js';

function assertAmqpError(fn: () => unknown, code: number, pattern?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof AmqpError, `expected AmqpError, got ${String(err)}`);
    assert.equal(err.replyCode, code);
    if (pattern !== undefined) assert.match(err.replyText, pattern);
    return true;
  });
}

const sstr = (s: string): number[] => [Buffer.byteLength(s), ...Buffer.from(s)];

test('properties written by hand decode and peek', () => {
  // content-type, delivery-mode, expiration, timestamp, user-id
  const pb = Buffer.from([
    0x91, 0x50,
    ...sstr('text/plain'),
    2,
    ...sstr('60000'),
    0, 0, 0, 0, 0x65, 0x5f, 0x1c, 0x00,
    ...sstr('guest'),
  ]);
  assert.deepEqual(decodeProperties(pb), {
    contentType: 'text/plain',
    deliveryMode: 2,
    expiration: '60000',
    timestamp: 0x655f1c00,
    userId: 'guest',
  });
  assert.equal(peekDeliveryMode(pb), 2);
  assert.equal(peekPriority(pb), undefined);
  assert.equal(peekExpiration(pb), '60000');
  assert.equal(peekHeaders(pb), undefined);
  assert.equal(peekTimestamp(pb), 0x655f1c00);
  assert.equal(peekUserId(pb), 'guest');
  validateProperties(pb);
  assert.ok(encodeProperties(decodeProperties(pb)).equals(pb));
});

test('no properties: a zero flags word', () => {
  const pb = Buffer.from([0, 0]);
  assert.deepEqual(decodeProperties(pb), {});
  assert.equal(peekDeliveryMode(pb), 0);
  assert.ok(encodeProperties({}).equals(pb));
});

test('a content header payload splits into class, weight, body size and a view of the properties', () => {
  const payload = Buffer.from([0x00, 0x3c, 0x00, 0x00, 0, 0, 0, 1, 0, 0, 0, 5, 0x18, 0x00, 2, 9]);
  const h = decodeContentHeader(payload);
  assert.equal(h.classId, 60);
  assert.equal(h.weight, 0);
  assert.equal(h.bodySize, 2 ** 32 + 5);
  assert.equal(h.propertyBytes.buffer, payload.buffer, 'a view, not a copy');
  assert.equal(h.propertyBytes.byteOffset, payload.byteOffset + 12);
  assert.equal(peekDeliveryMode(h.propertyBytes), 2);
  assert.equal(peekPriority(h.propertyBytes), 9);
  assertAmqpError(() => decodeContentHeader(payload.subarray(0, 13)), 501);
  const huge = Buffer.from(payload);
  huge.writeUInt32BE(0x00200000, 4);
  assertAmqpError(() => decodeContentHeader(huge), 501, /exceeds 2\^53-1/);
});

test('property: all 14 properties, any subset, round-trip and peek', () => {
  fc.assert(
    fc.property(propertiesArb, (p) => {
      const pb = encodeProperties(p);
      validateProperties(pb);
      const back = decodeProperties(pb);
      assert.deepStrictEqual(back, p);
      assert.ok(encodeProperties(back).equals(pb));
      assert.equal(peekDeliveryMode(pb), p.deliveryMode ?? 0);
      assert.equal(peekPriority(pb), p.priority);
      assert.equal(peekExpiration(pb), p.expiration);
      assert.equal(peekTimestamp(pb), p.timestamp);
      assert.equal(peekUserId(pb), p.userId);
      const headers = peekHeaders(pb);
      if (p.headers === undefined) assert.equal(headers, undefined);
      else assert.ok(headers !== undefined && tablesEqual(headers, p.headers));
    }),
    { numRuns: 300 },
  );
});

test('property: withHeaders replaces only the headers, withoutExpiration drops only the expiration', () => {
  fc.assert(
    fc.property(propertiesArb, fieldTableArb, (p, headers) => {
      const pb = encodeProperties(p);
      const replaced = withHeaders(pb, headers);
      assert.ok(replaced.equals(encodeProperties({ ...p, headers })));
      validateProperties(replaced);
      if (p.headers !== undefined) assert.ok(withHeaders(pb, p.headers).equals(pb));

      const stripped = withoutExpiration(pb);
      const { expiration: _dropped, ...rest } = p;
      assert.ok(stripped.equals(encodeProperties(rest)));
      if (p.expiration === undefined) assert.equal(stripped, pb);
    }),
    { numRuns: 200 },
  );
});

test('property: withReplyTo sets only the reply-to (direct reply-to rewrites it), peekReplyTo reads it', () => {
  const replyName = fc.string({ maxLength: 120 }).map((s) => `amq.rabbitmq.reply-to.${s}`).filter((s) => Buffer.byteLength(s) <= 255);
  fc.assert(
    fc.property(propertiesArb, replyName, (p, name) => {
      const pb = encodeProperties(p);
      assert.equal(peekReplyTo(pb), p.replyTo);
      const replaced = withReplyTo(pb, name);
      assert.ok(replaced.equals(encodeProperties({ ...p, replyTo: name })));
      validateProperties(replaced);
      assert.equal(peekReplyTo(replaced), name);
      if (p.replyTo !== undefined) assert.ok(withReplyTo(pb, p.replyTo).equals(pb));
    }),
    { numRuns: 200 },
  );
  assert.throws(() => withReplyTo(encodeProperties({}), 'x'.repeat(256)), /does not fit a shortstr/);
});

test('splicing keeps octets the decoder cannot reproduce (timestamp past 2^53, non-UTF-8 strings)', () => {
  const pb = Buffer.from([
    0xe1, 0x49, // content-type, content-encoding, headers, expiration, timestamp, app-id; continuation bit
    0x00, 0x00, // continuation word without flags
    2, 0xc3, 0x28, // content-type: invalid UTF-8
    1, 0x78,
    ...encodeTable(tableFromJs({ a: 1 })),
    ...sstr('5000'),
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // timestamp 2^64-1
    ...sstr('app'),
  ]);
  validateProperties(pb);
  const newHeaders = tableFromJs({ 'x-death': [{ count: 1 }] });
  const replaced = withHeaders(pb, newHeaders);
  const expected = Buffer.concat([pb.subarray(0, 9), encodeTable(newHeaders), pb.subarray(9 + encodeTable(tableFromJs({ a: 1 })).length)]);
  assert.ok(replaced.equals(expected));
  assert.deepEqual(tableToJs(peekHeaders(replaced) ?? {}), { 'x-death': [{ count: 1 }] });
  const stripped = withoutExpiration(replaced);
  assert.equal(peekExpiration(stripped), undefined);
  assert.equal(peekUserId(stripped), undefined);
  assert.ok(stripped.subarray(stripped.length - 12).equals(pb.subarray(pb.length - 12)), 'timestamp and app-id octets kept');
  assert.equal(stripped.readUInt16BE(0), pb.readUInt16BE(0) & ~0x0100);
});

test('headers are added where they belong when absent', () => {
  const pb = encodeProperties({ contentType: 'a', deliveryMode: 2, messageId: 'm' });
  const withH = withHeaders(pb, tableFromJs({ k: 'v' }));
  assert.deepEqual(decodeProperties(withH), { contentType: 'a', deliveryMode: 2, messageId: 'm', headers: tableFromJs({ k: 'v' }) });
});

test('cross-check with amqplib: it decodes ours, we decode its', () => {
  const requireCjs = createRequire(import.meta.url);
  const defs = requireCjs(join(dirname(requireCjs.resolve('amqplib')), 'lib', 'defs.js')) as {
    encodeProperties(id: number, channel: number, size: number, fields: Record<string, unknown>): Buffer;
    decode(id: number, buf: Buffer): Record<string, unknown>;
  };
  const fields = {
    contentType: 'application/json',
    headers: { 'x-retry': 3, nested: { a: 'b' } },
    deliveryMode: 2,
    priority: 5,
    correlationId: 'c-1',
    replyTo: 'amq.rabbitmq.reply-to',
    expiration: '1000',
    messageId: 'm-1',
    timestamp: 1_700_000_000,
    type: 't',
    userId: 'guest',
    appId: 'app',
  };
  const frame = defs.encodeProperties(60, 1, 42, fields);
  const h = decodeContentHeader(frame.subarray(7, frame.length - 1));
  assert.equal(h.bodySize, 42);
  const p = decodeProperties(h.propertyBytes);
  const { headers, ...rest } = p;
  assert.deepEqual({ ...rest, headers: tableToJs(headers ?? {}) }, fields);

  const ours = encodeProperties({ ...fields, headers: tableFromJs(fields.headers) });
  const theirs = defs.decode(60, ours);
  const plain: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(theirs)) if (v !== undefined) plain[k] = v;
  assert.deepEqual(plain, fields);
});

test('the flags continuation bit is followed; unknown flags and truncation are FRAME_ERROR', () => {
  const cont = Buffer.from([0x10, 0x01, 0x00, 0x00, 2]);
  assert.deepEqual(decodeProperties(cont), { deliveryMode: 2 });
  assert.equal(peekDeliveryMode(cont), 2);
  validateProperties(cont);
  assertAmqpError(() => decodeProperties(Buffer.from([0x10, 0x01, 0x80, 0x00, 2])), 501, /unknown property flags/);
  assertAmqpError(() => decodeProperties(Buffer.from([0x10, 0x01])), 501, /continuation past the end/);
  assertAmqpError(() => decodeProperties(Buffer.from([0x10])), 501);
  assertAmqpError(() => peekDeliveryMode(Buffer.from([0x10, 0x00])), 501);
  assertAmqpError(() => decodeProperties(Buffer.from([0x80, 0x00, 5, 0x61])), 501, /shortstr past the end/);
  assertAmqpError(() => peekExpiration(Buffer.from([0x81, 0x00, 0x05])), 501);
  assertAmqpError(() => decodeProperties(Buffer.from([0x10, 0x00, 2, 0])), 501, /1 octets after the last property/);
  assertAmqpError(() => validateProperties(Buffer.from([0x10, 0x00, 2, 0])), 501);
  assertAmqpError(() => decodeProperties(Buffer.from([0x00, 0x40, 0, 0, 0])), 501, /timestamp past the end/);
  const badHeaders = Buffer.from([0x20, 0x00, 0, 0, 0, 4, 1, 0x6b, 0x5a, 0]);
  assertAmqpError(() => decodeProperties(badHeaders), 501, /unknown field type/);
  assertAmqpError(() => validateProperties(badHeaders), 501, /unknown field type/);
  assertAmqpError(() => peekHeaders(badHeaders), 501);
  // a peek past a headers table only checks its length
  assert.equal(peekPriority(Buffer.from([0x28, 0x00, 0, 0, 0, 4, 1, 0x6b, 0x5a, 0, 7])), 7);
  assertAmqpError(() => peekPriority(Buffer.from([0x28, 0x00, 0, 0, 0, 9, 1])), 501, /headers past the end/);
});

test('encodeProperties refuses what does not fit', () => {
  assert.throws(() => encodeProperties({ messageId: 'm'.repeat(256) }), RangeError);
  assert.throws(() => encodeProperties({ priority: 256 }), RangeError);
  assert.throws(() => encodeProperties({ timestamp: -1 }), RangeError);
  const p: BasicProperties = { deliveryMode: 1 };
  assert.deepEqual(decodeProperties(encodeProperties(p)), p);
});
