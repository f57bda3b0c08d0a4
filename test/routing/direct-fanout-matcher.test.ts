import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DirectMatcher } from '../../src/routing/direct-matcher.js';
import { FanoutMatcher } from '../../src/routing/fanout-matcher.js';
import type { Matcher, MatcherBinding } from '../../src/routing/types.js';

interface NamedBinding extends MatcherBinding {
  readonly name: string;
}

function nb(name: string, routingKey: string, args: MatcherBinding['arguments'] = {}): NamedBinding {
  return { name, routingKey, arguments: args };
}

function matchNames(matcher: Matcher<NamedBinding>, routingKey: string): string[] {
  const names: string[] = [];
  matcher.match(routingKey, () => undefined, (b) => names.push(b.name));
  return names.sort();
}

test('direct matches the exact key only, whatever the arguments', () => {
  const m = new DirectMatcher<NamedBinding>();
  const a1 = nb('a1', 'a');
  const a2 = nb('a2', 'a', { k: { type: 'S', value: 'v' } });
  m.add(a1);
  m.add(a2);
  m.add(nb('ab', 'a.b'));
  m.add(nb('empty', ''));
  assert.deepEqual(matchNames(m, 'a'), ['a1', 'a2']);
  assert.deepEqual(matchNames(m, 'A'), []);
  assert.deepEqual(matchNames(m, 'a.b'), ['ab']);
  assert.deepEqual(matchNames(m, ''), ['empty']);
  assert.deepEqual(matchNames(m, 'a '), []);
  assert.equal(m.size, 4);
  m.remove(a1);
  assert.deepEqual(matchNames(m, 'a'), ['a2']);
  m.remove(a2);
  assert.deepEqual(matchNames(m, 'a'), []);
  assert.equal(m.size, 2);
});

test('direct refuses a binding added twice or removed without being added', () => {
  const m = new DirectMatcher<NamedBinding>();
  const b = nb('b', 'k');
  m.add(b);
  assert.throws(() => m.add(b));
  assert.throws(() => m.remove(nb('other', 'k')));
});

test('fanout matches every binding for any key, and removal in any order keeps the rest', () => {
  const m = new FanoutMatcher<NamedBinding>();
  const bindings = Array.from({ length: 50 }, (_, i) => nb(`q${String(i).padStart(2, '0')}`, `ignored-${i}`));
  for (const b of bindings) m.add(b);
  assert.equal(matchNames(m, 'anything').length, 50);
  // Remove every third, from the middle out, to exercise swap-removal.
  const removed = bindings.filter((_, i) => i % 3 === 0).reverse();
  for (const b of removed) m.remove(b);
  const expected = bindings.filter((_, i) => i % 3 !== 0).map((b) => b.name);
  assert.deepEqual(matchNames(m, ''), expected);
  assert.equal(m.size, expected.length);
});
