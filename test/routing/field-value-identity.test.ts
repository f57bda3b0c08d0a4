import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { FieldTable, FieldValue } from '../../src/amqp/field-table.js';
import { fieldTableEquals, fieldTableIdentity, fieldValueEquals, fieldValueIdentity } from '../../src/routing/field-value-identity.js';

// Small domains so that generated pairs are often equal, or equal but for the type tag.
const { value: valueArb } = fc.letrec<{ value: FieldValue; table: FieldTable }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.boolean().map((value): FieldValue => ({ type: 't', value })),
    fc.tuple(fc.constantFrom('b', 'B', 's', 'u', 'I', 'i') as fc.Arbitrary<'b' | 'B' | 's' | 'u' | 'I' | 'i'>, fc.constantFrom(0, 1, 2))
      .map(([type, value]): FieldValue => ({ type, value })),
    fc.tuple(fc.constantFrom('f', 'd') as fc.Arbitrary<'f' | 'd'>, fc.constantFrom(0, -0, 1, 1.5, Number.NaN))
      .map(([type, value]): FieldValue => ({ type, value })),
    fc.tuple(fc.constantFrom('l', 'T') as fc.Arbitrary<'l' | 'T'>, fc.constantFrom<number | bigint>(0, 1, 1n, 2n ** 63n - 1n))
      .map(([type, value]): FieldValue => ({ type, value })),
    fc.tuple(fc.constantFrom(0, 2), fc.constantFrom(0, 314)).map(([scale, digits]): FieldValue => ({ type: 'D', value: { scale, digits } })),
    fc.constantFrom('', 'a', '"', 'é').map((value): FieldValue => ({ type: 'S', value })),
    fc.constantFrom('', 'a', '"').map((value): FieldValue => ({ type: 'x', value: Buffer.from(value) })),
    fc.constant<FieldValue>({ type: 'V', value: null }),
    fc.array(tie('value'), { maxLength: 3 }).map((value): FieldValue => ({ type: 'A', value })),
    tie('table').map((value): FieldValue => ({ type: 'F', value })),
  ),
  table: fc.dictionary(fc.constantFrom('a', 'b', 'c'), tie('value'), { maxKeys: 3 }),
}));

const tableArb = fc.dictionary(fc.constantFrom('a', 'b', 'c', 'x-match'), valueArb, { maxKeys: 4 });

test('property: value identity strings are equal exactly when the values are equal', () => {
  fc.assert(
    fc.property(valueArb, valueArb, (a, b) => {
      assert.equal(fieldValueIdentity(a) === fieldValueIdentity(b), fieldValueEquals(a, b));
      assert.ok(fieldValueEquals(a, a));
      assert.equal(fieldValueEquals(a, b), fieldValueEquals(b, a));
    }),
    { numRuns: 2000 },
  );
});

test('property: table identity ignores key order and agrees with table equality', () => {
  fc.assert(
    fc.property(tableArb, tableArb, (a, b) => {
      const reversed: FieldTable = Object.fromEntries(Object.entries(a).reverse());
      assert.ok(fieldTableEquals(a, reversed));
      assert.equal(fieldTableIdentity(a), fieldTableIdentity(reversed));
      assert.equal(fieldTableIdentity(a) === fieldTableIdentity(b), fieldTableEquals(a, b));
    }),
    { numRuns: 1000 },
  );
});

test('identity is type-sensitive and representation-insensitive', () => {
  assert.equal(fieldValueEquals({ type: 'I', value: 1 }, { type: 'l', value: 1 }), false);
  assert.equal(fieldValueEquals({ type: 'l', value: 1 }, { type: 'T', value: 1 }), false);
  assert.equal(fieldValueEquals({ type: 'l', value: 5 }, { type: 'l', value: 5n }), true);
  assert.equal(fieldValueIdentity({ type: 'l', value: 5 }), fieldValueIdentity({ type: 'l', value: 5n }));
  assert.equal(fieldValueEquals({ type: 'S', value: 'a' }, { type: 'x', value: Buffer.from('a') }), false);
  const raw = Buffer.from([0xff, 0x41]);
  const lossy = raw.toString('utf8');
  assert.equal(fieldValueEquals({ type: 'S', value: lossy, raw }, { type: 'S', value: lossy }), false);
  assert.equal(fieldValueEquals({ type: 'S', value: lossy, raw }, { type: 'S', value: lossy, raw: Buffer.from(raw) }), true);
  assert.notEqual(fieldValueIdentity({ type: 'S', value: lossy, raw }), fieldValueIdentity({ type: 'S', value: lossy }));
  assert.equal(fieldTableEquals({ a: { type: 'I', value: 1 } }, { a: { type: 'I', value: 1 }, b: { type: 'V', value: null } }), false);
});
