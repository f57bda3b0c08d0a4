// fast-check generators for the codec tests: field values, tables, method arguments, properties.
import fc from 'fast-check';
import type { FieldTable, FieldValue } from '../../src/amqp/field-table.js';
import { emptyTable } from '../../src/amqp/field-table.js';
import type { BasicProperties } from '../../src/amqp/content-header.js';
import type { AmqpMethod, MethodSpec, SpecFieldType } from '../../src/amqp/spec.generated.js';

const twoTo63 = 2n ** 63n;
const twoTo64 = 2n ** 64n;

function numberWhenSafe(v: bigint): number | bigint {
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : v;
}

// fc.string({ unit: 'binary' }) takes seconds to build its code point table; this mix is instant
const codePointArb = fc.oneof(
  { arbitrary: fc.integer({ min: 0x20, max: 0x7e }), weight: 4 },
  { arbitrary: fc.integer({ min: 0, max: 0xd7ff }), weight: 2 },
  { arbitrary: fc.integer({ min: 0xe000, max: 0x10ffff }), weight: 1 },
);
/** Any well-formed text (no lone surrogates) of up to maxCodePoints code points. */
export function textArb(maxCodePoints: number): fc.Arbitrary<string> {
  return fc.array(codePointArb, { maxLength: maxCodePoints }).map((cps) => String.fromCodePoint(...cps));
}
/** A shortstr-sized string: at most 255 UTF-8 bytes (40 code points of at most 4 bytes). */
export const shortstrArb = textArb(40);
const nameArb = fc.oneof(fc.string({ maxLength: 12 }), shortstrArb, fc.constantFrom('__proto__', 'constructor', 'x-match', ''));

/** Octets that are never valid UTF-8 (0xFF cannot appear in it). */
const nonUtf8Arb = fc
  .tuple(fc.uint8Array({ maxLength: 8 }), fc.uint8Array({ maxLength: 8 }))
  .map(([a, b]) => Buffer.concat([a, Buffer.from([0xff]), b]));

const int64Arb = fc.oneof(
  fc.bigInt(-twoTo63, twoTo63 - 1n),
  fc.constantFrom(-twoTo63, twoTo63 - 1n, 2n ** 53n, -(2n ** 53n), 2n ** 53n - 1n, -(2n ** 53n) + 1n, 0n, -1n),
);
const uint64Arb = fc.oneof(fc.bigInt(0n, twoTo64 - 1n), fc.constantFrom(0n, twoTo64 - 1n, 2n ** 53n, 2n ** 53n - 1n));

const scalarArb: fc.Arbitrary<FieldValue> = fc.oneof(
  fc.boolean().map((value): FieldValue => ({ type: 't', value })),
  fc.integer({ min: -128, max: 127 }).map((value): FieldValue => ({ type: 'b', value })),
  fc.integer({ min: 0, max: 255 }).map((value): FieldValue => ({ type: 'B', value })),
  fc.integer({ min: -32768, max: 32767 }).map((value): FieldValue => ({ type: 's', value })),
  fc.integer({ min: 0, max: 65535 }).map((value): FieldValue => ({ type: 'u', value })),
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }).map((value): FieldValue => ({ type: 'I', value })),
  fc.integer({ min: 0, max: 2 ** 32 - 1 }).map((value): FieldValue => ({ type: 'i', value })),
  int64Arb.map((v): FieldValue => ({ type: 'l', value: numberWhenSafe(v) })),
  uint64Arb.map((v): FieldValue => ({ type: 'T', value: numberWhenSafe(v) })),
  fc.float({ noNaN: true }).map((value): FieldValue => ({ type: 'f', value })),
  fc.double({ noNaN: true }).map((value): FieldValue => ({ type: 'd', value })),
  fc
    .record({ scale: fc.integer({ min: 0, max: 255 }), digits: fc.integer({ min: 0, max: 2 ** 32 - 1 }) }, { noNullPrototype: true })
    .map((value): FieldValue => ({ type: 'D', value })),
  textArb(30).map((value): FieldValue => ({ type: 'S', value })),
  nonUtf8Arb.map((raw): FieldValue => ({ type: 'S', value: raw.toString('utf8'), raw })),
  fc.uint8Array({ maxLength: 20 }).map((a): FieldValue => ({ type: 'x', value: Buffer.from(a) })),
  fc.constant<FieldValue>({ type: 'V', value: null }),
);

function toTable(entries: ReadonlyArray<readonly [string, FieldValue]>): FieldTable {
  const t = emptyTable();
  for (const [k, v] of entries) t[k] = v;
  return t;
}

const { value: fieldValueArb, table: fieldTableArb } = fc.letrec<{ value: FieldValue; table: FieldTable; array: FieldValue[] }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalarArb,
    tie('array').map((value): FieldValue => ({ type: 'A', value })),
    tie('table').map((value): FieldValue => ({ type: 'F', value })),
  ),
  array: fc.array(tie('value'), { maxLength: 4 }),
  table: fc
    .uniqueArray(fc.tuple(nameArb, tie('value')), { selector: (e) => e[0], maxLength: 5 })
    .map(toTable),
}));
export { fieldTableArb, fieldValueArb };

function fieldArb(type: SpecFieldType): fc.Arbitrary<unknown> {
  switch (type) {
    case 'octet': return fc.integer({ min: 0, max: 255 });
    case 'short': return fc.integer({ min: 0, max: 65535 });
    case 'long': return fc.integer({ min: 0, max: 2 ** 32 - 1 });
    case 'longlong':
    case 'timestamp':
      return fc.oneof(fc.maxSafeNat(), fc.constantFrom(0, 1, 2 ** 32, Number.MAX_SAFE_INTEGER));
    case 'bit': return fc.boolean();
    case 'shortstr': return shortstrArb;
    case 'longstr': return textArb(60);
    case 'longstr-bytes': return fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a));
    case 'table': return fieldTableArb;
  }
}

/** Random arguments for one method. */
export function methodArb(spec: MethodSpec): fc.Arbitrary<AmqpMethod> {
  const shape: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of spec.fields) shape[f.name] = fieldArb(f.type);
  return fc.record(shape, { noNullPrototype: true }).map((args) => ({ id: spec.id, args }) as AmqpMethod);
}

/** Random basic properties: any subset of the 14. */
export const propertiesArb: fc.Arbitrary<BasicProperties> = fc.record(
  {
    contentType: shortstrArb,
    contentEncoding: shortstrArb,
    headers: fieldTableArb,
    deliveryMode: fc.integer({ min: 0, max: 255 }),
    priority: fc.integer({ min: 0, max: 255 }),
    correlationId: shortstrArb,
    replyTo: shortstrArb,
    expiration: shortstrArb,
    messageId: shortstrArb,
    timestamp: fc.maxSafeNat(),
    type: shortstrArb,
    userId: shortstrArb,
    appId: shortstrArb,
    clusterId: shortstrArb,
  },
  { requiredKeys: [], noNullPrototype: true },
);
