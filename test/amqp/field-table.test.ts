import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AmqpError } from '../../src/amqp/errors.js';
import type { FieldTable, FieldValue } from '../../src/amqp/field-table.js';
import {
  decodeTable,
  decodeTableEntries,
  emptyTable,
  encodeTable,
  encodedTableBytes,
  fieldBool,
  fieldEquals,
  fieldEquivalent,
  fieldInt,
  fieldString,
  skipTable,
  tableFromJs,
  tableNestingMax,
  tableToJs,
  tablesEqual,
  writeTable,
} from '../../src/amqp/field-table.js';
import { fieldTableArb } from './arbitraries.js';

function table(entries: Record<string, FieldValue>): FieldTable {
  const t = emptyTable();
  for (const k of Object.keys(entries)) t[k] = entries[k] as FieldValue;
  return t;
}

/** A table's wire form built by hand: [u32 len][entries]. */
function wire(...entries: number[][]): Buffer {
  const body = Buffer.from(entries.flat());
  const b = Buffer.alloc(4 + body.length);
  b.writeUInt32BE(body.length, 0);
  body.copy(b, 4);
  return b;
}
const name = (s: string): number[] => [s.length, ...Buffer.from(s)];
const u32 = (n: number): number[] => [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];

function assertAmqpError(fn: () => unknown, code: number, pattern?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof AmqpError, `expected AmqpError, got ${String(err)}`);
    assert.equal(err.replyCode, code);
    if (pattern !== undefined) assert.match(err.replyText, pattern);
    return true;
  });
}

test('every field type decodes from hand-written bytes and re-encodes byte-exact', () => {
  const bytes = wire(
    [...name('t'), 0x74, 1],
    [...name('b'), 0x62, 0xff],
    [...name('B'), 0x42, 0xff],
    [...name('s'), 0x73, 0xff, 0xfe],
    [...name('u'), 0x75, 0xff, 0xfe],
    [...name('I'), 0x49, 0xff, 0xff, 0xff, 0xfe],
    [...name('i'), 0x69, 0xff, 0xff, 0xff, 0xfe],
    [...name('l'), 0x6c, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfd],
    [...name('big'), 0x6c, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    [...name('f'), 0x66, 0x3f, 0xc0, 0, 0],
    [...name('d'), 0x64, 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18],
    [...name('D'), 0x44, 2, ...u32(12345)],
    [...name('S'), 0x53, ...u32(3), 0x61, 0x62, 0x63],
    [...name('x'), 0x78, ...u32(2), 0x00, 0xff],
    [...name('A'), 0x41, ...u32(7), 0x62, 5, 0x53, ...u32(0)],
    [...name('T'), 0x54, 0, 0, 0, 0, 0x65, 0x5f, 0x1c, 0x00],
    [...name('F'), 0x46, ...u32(3), ...name('v'), 0x56],
    [...name('V'), 0x56],
  );
  const { table: t, next } = decodeTable(bytes, 0, bytes.length);
  assert.equal(next, bytes.length);
  assert.deepEqual(t['t'], { type: 't', value: true });
  assert.deepEqual(t['b'], { type: 'b', value: -1 });
  assert.deepEqual(t['B'], { type: 'B', value: 255 });
  assert.deepEqual(t['s'], { type: 's', value: -2 });
  assert.deepEqual(t['u'], { type: 'u', value: 65534 });
  assert.deepEqual(t['I'], { type: 'I', value: -2 });
  assert.deepEqual(t['i'], { type: 'i', value: 4294967294 });
  assert.deepEqual(t['l'], { type: 'l', value: -3 });
  assert.deepEqual(t['big'], { type: 'l', value: 2n ** 63n - 1n });
  assert.deepEqual(t['f'], { type: 'f', value: 1.5 });
  assert.deepEqual(t['d'], { type: 'd', value: Math.PI });
  assert.deepEqual(t['D'], { type: 'D', value: { scale: 2, digits: 12345 } });
  assert.deepEqual(t['S'], { type: 'S', value: 'abc' });
  assert.deepEqual(t['x'], { type: 'x', value: Buffer.from([0, 255]) });
  assert.deepEqual(t['A'], { type: 'A', value: [{ type: 'b', value: 5 }, { type: 'S', value: '' }] });
  assert.deepEqual(t['T'], { type: 'T', value: 0x655f1c00 });
  assert.equal(t['F']?.type, 'F');
  assert.deepEqual({ ...(t['F']?.value as FieldTable) }, { v: { type: 'V', value: null } });
  assert.deepEqual(t['V'], { type: 'V', value: null });
  assert.ok(encodeTable(t).equals(bytes));
  assert.equal(encodedTableBytes(t), bytes.length);
  skipTable(bytes, 0, bytes.length);
});

test('int64 and uint64 past 2^53 come back as bigint and round-trip', () => {
  const t = table({
    max: { type: 'l', value: 2n ** 63n - 1n },
    min: { type: 'l', value: -(2n ** 63n) },
    edgeNeg: { type: 'l', value: -(2n ** 53n) },
    safe: { type: 'l', value: Number.MAX_SAFE_INTEGER },
    safeNeg: { type: 'l', value: -Number.MAX_SAFE_INTEGER },
    ts: { type: 'T', value: 2n ** 64n - 1n },
    ts53: { type: 'T', value: 2n ** 53n },
  });
  const bytes = encodeTable(t);
  const back = decodeTable(bytes, 0, bytes.length).table;
  assert.deepEqual(back['max'], { type: 'l', value: 2n ** 63n - 1n });
  assert.deepEqual(back['min'], { type: 'l', value: -(2n ** 63n) });
  assert.deepEqual(back['edgeNeg'], { type: 'l', value: -(2n ** 53n) });
  assert.deepEqual(back['safe'], { type: 'l', value: Number.MAX_SAFE_INTEGER });
  assert.deepEqual(back['safeNeg'], { type: 'l', value: -Number.MAX_SAFE_INTEGER });
  assert.deepEqual(back['ts'], { type: 'T', value: 2n ** 64n - 1n });
  assert.deepEqual(back['ts53'], { type: 'T', value: 2n ** 53n });
  assert.ok(encodeTable(back).equals(bytes));
});

test('empty table, empty nested containers, and the __proto__ name', () => {
  const empty = encodeTable(emptyTable());
  assert.deepEqual([...empty], [0, 0, 0, 0]);
  assert.deepEqual(Object.keys(decodeTable(empty, 0, 4).table), []);

  const t = table({ a: { type: 'A', value: [] }, f: { type: 'F', value: emptyTable() } });
  t['__proto__'] = { type: 'S', value: 'not a prototype' };
  const bytes = encodeTable(t);
  const back = decodeTable(bytes, 0, bytes.length).table;
  assert.equal(Object.getPrototypeOf(back), null);
  assert.deepEqual(back['__proto__'], { type: 'S', value: 'not a prototype' });
  assert.ok(encodeTable(back).equals(bytes));
  const js = tableToJs(back);
  assert.equal(Object.getPrototypeOf(js), Object.prototype);
  assert.equal(Object.getOwnPropertyDescriptor(js, '__proto__')?.value, 'not a prototype');
});

test('longstr that is not UTF-8 keeps its octets', () => {
  const raw = Buffer.from([0x68, 0xc3, 0x28, 0xff, 0x00]);
  const bytes = wire([...name('k'), 0x53, ...u32(raw.length), ...raw]);
  const back = decodeTable(bytes, 0, bytes.length).table;
  const v = back['k'];
  assert.ok(v !== undefined && v.type === 'S');
  assert.ok(v.raw?.equals(raw));
  assert.ok(encodeTable(back).equals(bytes));
  assert.ok(fieldEquals(v, { type: 'S', value: raw.toString(), raw }));
  assert.ok(!fieldEquals(v, { type: 'S', value: raw.toString() }), 'the lossy text is not the same octets');
});

test("'L' reads as a signed 64-bit 'l', as RabbitMQ does", () => {
  const bytes = wire([...name('n'), 0x4c, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
  assert.deepEqual(decodeTable(bytes, 0, bytes.length).table['n'], { type: 'l', value: -1 });
});

test('a repeated name keeps the first value', () => {
  const bytes = wire([...name('k'), 0x62, 1], [...name('k'), 0x62, 2]);
  assert.deepEqual(decodeTable(bytes, 0, bytes.length).table['k'], { type: 'b', value: 1 });
});

test('property: encode -> decode -> encode is byte-exact and values are equal', () => {
  fc.assert(
    fc.property(fieldTableArb, (t) => {
      const bytes = encodeTable(t);
      assert.equal(bytes.length, encodedTableBytes(t));
      assert.equal(skipTable(bytes, 0, bytes.length), bytes.length);
      const { table: back, next } = decodeTable(bytes, 0, bytes.length);
      assert.equal(next, bytes.length);
      assert.ok(tablesEqual(back, t));
      assert.ok(encodeTable(back).equals(bytes));
    }),
    { numRuns: 300 },
  );
});

test('writeTable writes at an offset and returns the end', () => {
  const t = table({ a: { type: 'S', value: 'héllo' }, n: { type: 'I', value: 7 } });
  const buf = Buffer.alloc(3 + encodedTableBytes(t) + 2, 0xee);
  const end = writeTable(buf, 3, t);
  assert.equal(end, 3 + encodedTableBytes(t));
  assert.equal(buf[end], 0xee);
  assert.ok(tablesEqual(decodeTable(buf, 3, end).table, t));
});

test('malformed tables throw FRAME_ERROR', () => {
  const cases: Array<[string, Buffer, RegExp]> = [
    ['unknown type tag', wire([...name('k'), 0x5a, 0]), /unknown field type tag 90/],
    ["the 0-9-1 spec's 'U' tag RabbitMQ does not use", wire([...name('k'), 0x55, 0, 1]), /unknown field type/],
    ['string length past the end', wire([...name('k'), 0x53, ...u32(100), 0x61]), /length 100 past the end/],
    ['nested table length past the end', wire([...name('k'), 0x46, ...u32(50)]), /past the end/],
    ['array length past the end', wire([...name('k'), 0x41, ...u32(9), 0x62]), /past the end/],
    ['byte array length past the end', wire([...name('k'), 0x78, ...u32(0xffffffff)]), /past the end/],
    ['int32 cut short', wire([...name('k'), 0x49, 1, 2]), /past the end/],
    ['name past the end', wire([9, 0x61, 0x62]), /field name past the end/],
    ['name without a tag', wire([...name('abc')]), /field name past the end/],
    ['bad tag inside an array', wire([...name('k'), 0x41, ...u32(2), 0x21, 0]), /unknown field type/],
  ];
  for (const [what, bytes] of cases) {
    assertAmqpError(() => decodeTable(bytes, 0, bytes.length), 501);
    assertAmqpError(() => skipTable(bytes, 0, bytes.length), 501);
    void what;
  }
  for (const [, bytes, pattern] of cases) assertAmqpError(() => decodeTable(bytes, 0, bytes.length), 501, pattern);
  // the table's own length past the end / no room for it
  assertAmqpError(() => decodeTable(Buffer.from([0, 0, 0, 9, 1]), 0, 5), 501, /length 9 past the end/);
  assertAmqpError(() => decodeTable(Buffer.from([0, 0]), 0, 2), 501);
  // end is respected even when the buffer goes on
  const ok = wire([...name('k'), 0x62, 1]);
  assertAmqpError(() => decodeTable(Buffer.concat([ok, Buffer.alloc(8)]), 0, ok.length - 1), 501);
});

test('nesting deeper than the limit is refused, not a stack overflow', () => {
  let inner = Buffer.alloc(0);
  for (let i = 0; i < tableNestingMax + 5; i++) {
    const entry = Buffer.concat([Buffer.from([1, 0x6b, 0x46]), Buffer.from(u32(inner.length)), inner]);
    inner = entry;
  }
  const bytes = Buffer.concat([Buffer.from(u32(inner.length)), inner]);
  assertAmqpError(() => decodeTable(bytes, 0, bytes.length), 501, /nested deeper/);
  assertAmqpError(() => skipTable(bytes, 0, bytes.length), 501, /nested deeper/);
});

test('decodeTableEntries reads a body without the length prefix', () => {
  const body = Buffer.from([...name('LOGIN'), 0x53, ...u32(5), ...Buffer.from('guest')]);
  assert.deepEqual(decodeTableEntries(body, 0, body.length)['LOGIN'], { type: 'S', value: 'guest' });
});

test('tableFromJs infers types like the management API; tableToJs goes back', () => {
  const t = tableFromJs({
    int: 5,
    neg: -70000,
    float: 1.5,
    str: 'x',
    yes: true,
    nothing: null,
    list: [1, 'a', [2]],
    obj: { inner: 2 },
    big: 2n ** 60n,
    bytes: Buffer.from([1, 2]),
    when: new Date(1_700_000_000_500),
    skipped: undefined,
  });
  assert.deepEqual(t['int'], { type: 'l', value: 5 });
  assert.deepEqual(t['neg'], { type: 'l', value: -70000 });
  assert.deepEqual(t['float'], { type: 'd', value: 1.5 });
  assert.deepEqual(t['str'], { type: 'S', value: 'x' });
  assert.deepEqual(t['yes'], { type: 't', value: true });
  assert.deepEqual(t['nothing'], { type: 'V', value: null });
  assert.deepEqual(t['list'], {
    type: 'A',
    value: [{ type: 'l', value: 1 }, { type: 'S', value: 'a' }, { type: 'A', value: [{ type: 'l', value: 2 }] }],
  });
  assert.equal(t['obj']?.type, 'F');
  assert.deepEqual(t['big'], { type: 'l', value: 2n ** 60n });
  assert.deepEqual(t['bytes'], { type: 'x', value: Buffer.from([1, 2]) });
  assert.deepEqual(t['when'], { type: 'T', value: 1_700_000_000 });
  assert.equal(t['skipped'], undefined);
  assert.throws(() => tableFromJs({ f: () => 1 }), TypeError);
  assert.throws(() => tableFromJs({ s: Symbol('x') }), TypeError);

  const js = tableToJs(t);
  assert.deepEqual(js, {
    int: 5,
    neg: -70000,
    float: 1.5,
    str: 'x',
    yes: true,
    nothing: null,
    list: [1, 'a', [2]],
    obj: { inner: 2 },
    big: (2n ** 60n).toString(),
    bytes: 'AQI=',
    when: 1_700_000_000,
  });
  assert.equal(tableToJs(table({ d: { type: 'D', value: { scale: 2, digits: 314 } } }))['d'], 3.14);
  assert.equal(tableToJs(table({ l: { type: 'l', value: 2n ** 40n } }))['l'], 2 ** 40);
});

test('fieldInt/fieldString/fieldBool read x-arguments of any integer width', () => {
  for (const type of ['b', 'B', 's', 'u', 'I', 'i'] as const) assert.equal(fieldInt({ type, value: 7 }), 7);
  assert.equal(fieldInt({ type: 'l', value: 60000 }), 60000);
  assert.equal(fieldInt({ type: 'l', value: 2n ** 62n }), 2 ** 62);
  assert.equal(fieldInt({ type: 'T', value: 3 }), 3);
  assert.equal(fieldInt({ type: 'd', value: 1.5 }), undefined);
  assert.equal(fieldInt({ type: 'S', value: '5' }), undefined);
  assert.equal(fieldInt(undefined), undefined);
  assert.equal(fieldString({ type: 'S', value: 'lazy' }), 'lazy');
  assert.equal(fieldString({ type: 'x', value: Buffer.from('lazy') }), undefined);
  assert.equal(fieldString(undefined), undefined);
  assert.equal(fieldBool({ type: 't', value: false }), false);
  assert.equal(fieldBool({ type: 'b', value: 1 }), undefined);
});

test('fieldEquals is strict on type; fieldEquivalent folds integer widths like RabbitMQ', () => {
  assert.ok(fieldEquals({ type: 'l', value: 5 }, { type: 'l', value: 5n }));
  assert.ok(!fieldEquals({ type: 'l', value: 5 }, { type: 'I', value: 5 }));
  assert.ok(fieldEquivalent({ type: 'l', value: 5 }, { type: 'I', value: 5 }));
  assert.ok(fieldEquivalent({ type: 'b', value: -1 }, { type: 'l', value: -1n }));
  assert.ok(!fieldEquivalent({ type: 'l', value: 5 }, { type: 'I', value: 6 }));
  assert.ok(!fieldEquivalent({ type: 'l', value: 5 }, { type: 'd', value: 5 }));
  assert.ok(!fieldEquivalent({ type: 'S', value: '5' }, { type: 'l', value: 5 }));
  assert.ok(fieldEquals({ type: 'd', value: Number.NaN }, { type: 'd', value: Number.NaN }));
  assert.ok(!fieldEquals({ type: 'x', value: Buffer.from([1]) }, { type: 'x', value: Buffer.from([2]) }));
  assert.ok(!fieldEquals({ type: 'A', value: [{ type: 'V', value: null }] }, { type: 'A', value: [] }));
  assert.ok(!fieldEquals({ type: 'D', value: { scale: 1, digits: 10 } }, { type: 'D', value: { scale: 2, digits: 100 } }));
});

test('tablesEqual ignores order and notices missing, extra and different entries', () => {
  const a = table({ x: { type: 'S', value: 'q' }, y: { type: 'l', value: 1 } });
  const b = table({ y: { type: 'l', value: 1 }, x: { type: 'S', value: 'q' } });
  assert.ok(tablesEqual(a, b));
  assert.ok(encodeTable(a).length === encodeTable(b).length && !encodeTable(a).equals(encodeTable(b)));
  assert.ok(!tablesEqual(a, table({ x: { type: 'S', value: 'q' } })));
  assert.ok(!tablesEqual(table({ x: { type: 'S', value: 'q' } }), a));
  assert.ok(!tablesEqual(a, table({ x: { type: 'S', value: 'q' }, y: { type: 'l', value: 2 } })));
  const voidValue: FieldValue = { type: 'V', value: null };
  assert.ok(!tablesEqual(table({ toString: voidValue }), {}));
  assert.ok(!tablesEqual({}, table({ toString: voidValue })));
  assert.ok(tablesEqual(emptyTable(), {}));
});

test('encoders reject values that do not fit their type', () => {
  assert.throws(() => encodeTable(table({ b: { type: 'b', value: 128 } })), RangeError);
  assert.throws(() => encodeTable(table({ u: { type: 'u', value: -1 } })), RangeError);
  assert.throws(() => encodeTable(table({ l: { type: 'l', value: 1.5 } })), RangeError);
  assert.throws(() => encodeTable(table({ l: { type: 'l', value: 2n ** 63n } })), RangeError);
  assert.throws(() => encodeTable(table({ T: { type: 'T', value: -1 } })), RangeError);
  assert.throws(() => encodeTable(table({ ['k'.repeat(256)]: { type: 'V', value: null } })), RangeError);
});
