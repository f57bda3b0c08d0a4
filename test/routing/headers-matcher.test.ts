import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { FieldTable, FieldValue } from '../../src/amqp/field-table.js';
import { headerValueKey, headerValueMatches } from '../../src/routing/header-value-match.js';
import { validateHeadersBindingArgs } from '../../src/routing/headers-binding-args.js';
import { HeadersMatcher } from '../../src/routing/headers-matcher.js';
import type { MatcherBinding } from '../../src/routing/types.js';

interface NamedBinding extends MatcherBinding {
  readonly name: string;
}

const S = (value: string): FieldValue => ({ type: 'S', value });
const V: FieldValue = { type: 'V', value: null };

function matches(args: FieldTable, headers: FieldTable | undefined): boolean {
  const m = new HeadersMatcher<NamedBinding>();
  m.add({ name: 'b', routingKey: 'ignored', arguments: args });
  let visits = 0;
  m.match('any-key', () => headers, () => visits++);
  assert.ok(visits <= 1);
  return visits === 1;
}

test('x-match all (the default) needs every non-x- argument, ignoring x- keys', () => {
  const args = { a: S('1'), b: S('2'), 'x-foo': S('bar') };
  for (const binding of [args, { ...args, 'x-match': S('all') }]) {
    assert.equal(matches(binding, { a: S('1'), b: S('2') }), true);
    assert.equal(matches(binding, { a: S('1'), b: S('2'), c: S('extra') }), true);
    assert.equal(matches(binding, { a: S('1') }), false);
    assert.equal(matches(binding, { a: S('1'), b: S('3') }), false);
    assert.equal(matches(binding, undefined), false);
  }
});

test('x-match any needs one non-x- argument; x- arguments alone never match', () => {
  const args = { 'x-match': S('any'), a: S('1'), b: S('2'), 'x-foo': S('bar') };
  assert.equal(matches(args, { b: S('2') }), true);
  assert.equal(matches(args, { a: S('0'), b: S('2') }), true);
  assert.equal(matches(args, { a: S('0'), b: S('0') }), false);
  assert.equal(matches(args, { 'x-foo': S('bar') }), false);
  assert.equal(matches(args, {}), false);
  assert.equal(matches({ 'x-match': S('any'), 'x-foo': S('bar') }, { 'x-foo': S('bar') }), false);
});

test('all-with-x and any-with-x treat x- keys as conditions, but never x-match itself', () => {
  const allX = { 'x-match': S('all-with-x'), a: S('1'), 'x-foo': S('bar') };
  assert.equal(matches(allX, { a: S('1') }), false);
  assert.equal(matches(allX, { a: S('1'), 'x-foo': S('bar') }), true);
  assert.equal(matches(allX, { a: S('1'), 'x-foo': S('baz') }), false);
  const anyX = { 'x-match': S('any-with-x'), a: S('1'), 'x-foo': S('bar') };
  assert.equal(matches(anyX, { 'x-foo': S('bar') }), true);
  assert.equal(matches(anyX, { a: S('1') }), true);
  assert.equal(matches(anyX, { a: S('2'), 'x-foo': S('baz') }), false);
  // A message header named x-match is compared with nothing.
  assert.equal(matches({ 'x-match': S('any-with-x') }, { 'x-match': S('any-with-x') }), false);
  assert.equal(matches({ 'x-match': S('all-with-x') }, {}), true);
});

test('no conditions: all matches every message (even without headers), any matches none', () => {
  assert.equal(matches({}, undefined), true);
  assert.equal(matches({ 'x-match': S('all'), 'x-ignored': S('1') }, { q: S('1') }), true);
  assert.equal(matches({ 'x-match': S('any') }, { q: S('1') }), false);
  assert.equal(matches({ 'x-match': S('any') }, undefined), false);
});

test('a void binding value asks for presence only', () => {
  assert.equal(matches({ a: V }, { a: S('anything') }), true);
  assert.equal(matches({ a: V }, { a: { type: 'I', value: 7 } }), true);
  assert.equal(matches({ a: V }, { a: V }), true);
  assert.equal(matches({ a: V }, { b: S('x') }), false);
  assert.equal(matches({ a: V, b: S('1') }, { a: S('z'), b: S('1') }), true);
  assert.equal(matches({ a: V, b: S('1') }, { a: S('z'), b: S('2') }), false);
  // A void header meets only a void binding value.
  assert.equal(matches({ a: S('') }, { a: V }), false);
});

test('value comparison: integer types are one class, floats another, longstr and bytes compare as bytes', () => {
  const cases: ReadonlyArray<readonly [FieldValue, FieldValue, boolean]> = [
    [{ type: 'I', value: 1 }, { type: 'l', value: 1 }, true],
    [{ type: 'I', value: 1 }, { type: 'b', value: 1 }, true],
    [{ type: 'B', value: 200 }, { type: 'u', value: 200 }, true],
    [{ type: 'l', value: 2n ** 60n }, { type: 'l', value: 2n ** 60n }, true],
    [{ type: 'l', value: 5 }, { type: 'T', value: 5n }, true],
    [{ type: 'I', value: 1 }, { type: 'I', value: 2 }, false],
    [{ type: 'I', value: 1 }, { type: 'd', value: 1 }, false],
    [{ type: 'd', value: 1.5 }, { type: 'f', value: 1.5 }, true],
    [{ type: 'f', value: 1 }, { type: 'I', value: 1 }, false],
    [S('abc'), { type: 'x', value: Buffer.from('abc') }, true],
    [{ type: 'x', value: Buffer.from('abc') }, S('abc'), true],
    [S('abc'), S('abd'), false],
    [S('1'), { type: 'I', value: 1 }, false],
    [{ type: 't', value: true }, { type: 'I', value: 1 }, false],
    [{ type: 't', value: true }, { type: 't', value: true }, true],
    [{ type: 'D', value: { scale: 2, digits: 314 } }, { type: 'D', value: { scale: 2, digits: 314 } }, true],
    [{ type: 'D', value: { scale: 2, digits: 314 } }, { type: 'D', value: { scale: 1, digits: 314 } }, false],
    // Arrays and tables compare exactly, inner types included.
    [{ type: 'A', value: [{ type: 'I', value: 1 }] }, { type: 'A', value: [{ type: 'I', value: 1 }] }, true],
    [{ type: 'A', value: [{ type: 'I', value: 1 }] }, { type: 'A', value: [{ type: 'l', value: 1 }] }, false],
    [{ type: 'F', value: { a: S('1'), b: S('2') } }, { type: 'F', value: { b: S('2'), a: S('1') } }, true],
    [{ type: 'F', value: { a: S('1') } }, { type: 'F', value: { a: S('2') } }, false],
  ];
  for (const [binding, header, expected] of cases) {
    const label = `${JSON.stringify(binding, replacer)} vs ${JSON.stringify(header, replacer)}`;
    assert.equal(matches({ k: binding }, { k: header }), expected, label);
    assert.equal(headerValueKey(binding) === headerValueKey(header), expected, `key of ${label}`);
  }
});

function replacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? `${value}n` : value;
}

test('validateHeadersBindingArgs gives RabbitMQ’s texts', () => {
  assert.equal(validateHeadersBindingArgs({}), undefined);
  for (const mode of ['all', 'any', 'all-with-x', 'any-with-x']) {
    assert.equal(validateHeadersBindingArgs({ 'x-match': S(mode), other: S('x') }), undefined);
  }
  assert.equal(
    validateHeadersBindingArgs({ 'x-match': S('foo') }),
    'Invalid x-match field value <<"foo">>; expected all, any, all-with-x, or any-with-x',
  );
  assert.equal(
    validateHeadersBindingArgs({ 'x-match': S('ALL') }),
    'Invalid x-match field value <<"ALL">>; expected all, any, all-with-x, or any-with-x',
  );
  assert.equal(
    validateHeadersBindingArgs({ 'x-match': { type: 'I', value: 5 } }),
    'Invalid x-match field type signedint (value 5); expected longstr',
  );
  assert.equal(
    validateHeadersBindingArgs({ 'x-match': { type: 't', value: true } }),
    'Invalid x-match field type bool (value true); expected longstr',
  );
  assert.equal(
    validateHeadersBindingArgs({ 'x-match': { type: 'x', value: Buffer.from('all') } }),
    'Invalid x-match field type binary (value <<"all">>); expected longstr',
  );
});

test('an unvalidated x-match (bindings from old definitions) matches as all', () => {
  assert.equal(matches({ 'x-match': S('bogus'), a: S('1') }, { a: S('1') }), true);
  assert.equal(matches({ 'x-match': S('bogus'), a: S('1'), b: S('2') }, { a: S('1') }), false);
});

// ---- property: the index finds exactly what testing every binding would find

const keyArb = fc.constantFrom('a', 'b', 'c', 'x-k');
const valueArb: fc.Arbitrary<FieldValue> = fc.oneof(
  fc.constantFrom(0, 1, 2).map((value): FieldValue => ({ type: 'I', value })),
  fc.constantFrom(0, 1, 2).map((value): FieldValue => ({ type: 'l', value: BigInt(value) })),
  fc.constantFrom(0, 1, 1.5).map((value): FieldValue => ({ type: 'd', value })),
  fc.constantFrom('0', '1', 'é').map((value): FieldValue => ({ type: 'S', value })),
  fc.constantFrom('0', '1', 'é').map((value): FieldValue => ({ type: 'x', value: Buffer.from(value) })),
  fc.constantFrom(Buffer.from([0xff]), Buffer.from([0xc3])).map((value): FieldValue => ({ type: 'x', value })),
  fc.boolean().map((value): FieldValue => ({ type: 't', value })),
  fc.constant(V),
);
const tableArb = fc.dictionary(keyArb, valueArb, { maxKeys: 4 });
const modeArb = fc.constantFrom(undefined, 'all', 'any', 'all-with-x', 'any-with-x');

/** The semantics written out directly, testing one binding against one message. */
function reference(args: FieldTable, headers: FieldTable): boolean {
  const mode = args['x-match']?.type === 'S' ? args['x-match'].value : 'all';
  const withX = mode.endsWith('-with-x');
  const results: boolean[] = [];
  for (const [key, value] of Object.entries(args)) {
    if (key === 'x-match' || (!withX && key.startsWith('x-'))) continue;
    const header = headers[key];
    results.push(header !== undefined && (value.type === 'V' || headerValueMatches(value, header)));
  }
  return mode.startsWith('any') ? results.some(Boolean) : results.every(Boolean);
}

test('property: indexed matching equals testing every binding, across removals', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(modeArb, tableArb), { minLength: 1, maxLength: 20 }),
      fc.array(tableArb, { minLength: 1, maxLength: 10 }),
      (specs, messages) => {
        const m = new HeadersMatcher<NamedBinding>();
        const bindings = specs.map(([mode, table], i): NamedBinding => ({
          name: `b${i}`, routingKey: '', arguments: mode === undefined ? table : { ...table, 'x-match': S(mode) },
        }));
        for (const b of bindings) m.add(b);
        const check = (live: NamedBinding[]): void => {
          for (const headers of messages) {
            const got: string[] = [];
            m.match('', () => headers, (b) => got.push(b.name));
            const expected = live.filter((b) => reference(b.arguments, headers)).map((b) => b.name);
            assert.deepEqual(got.sort(), expected.sort());
          }
        };
        check(bindings);
        for (const b of bindings.filter((_, i) => i % 3 === 0)) m.remove(b);
        check(bindings.filter((_, i) => i % 3 !== 0));
      },
    ),
    { numRuns: 300 },
  );
});

test('property: equal value keys exactly when the values match', () => {
  fc.assert(
    fc.property(valueArb.filter((v) => v.type !== 'V'), valueArb, (binding, header) => {
      assert.equal(headerValueKey(binding) === headerValueKey(header), headerValueMatches(binding, header));
    }),
    { numRuns: 1000 },
  );
});
