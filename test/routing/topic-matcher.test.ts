import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { TopicMatcher } from '../../src/routing/topic-matcher.js';
import { topicWords } from '../../src/routing/topic-words.js';
import type { MatcherBinding } from '../../src/routing/types.js';

interface NamedBinding extends MatcherBinding {
  readonly name: string;
}

function nb(name: string, routingKey: string): NamedBinding {
  return { name, routingKey, arguments: {} };
}

/** Names visited, sorted; fails if the matcher visits a binding twice. */
function matchNames(matcher: TopicMatcher<NamedBinding>, routingKey: string): string[] {
  const names: string[] = [];
  matcher.match(routingKey, () => undefined, (b) => names.push(b.name));
  const sorted = names.sort();
  assert.equal(new Set(sorted).size, sorted.length, `a binding was visited twice for ${routingKey}`);
  return sorted;
}

/** The AMQP definition, written as directly as possible: a backtracking match over words. */
function referenceMatches(pattern: string, key: string): boolean {
  const p = pattern === '' ? [] : pattern.split('.');
  const k = key === '' ? [] : key.split('.');
  const memo = new Map<number, boolean>();
  const go = (i: number, j: number): boolean => {
    const id = i * 1000 + j;
    const known = memo.get(id);
    if (known !== undefined) return known;
    let result: boolean;
    if (i === p.length) result = j === k.length;
    else if (p[i] === '#') result = go(i + 1, j) || (j < k.length && go(i, j + 1));
    else result = j < k.length && (p[i] === '*' || p[i] === k[j]) && go(i + 1, j + 1);
    memo.set(id, result);
    return result;
  };
  return go(0, 0);
}

const CASES: ReadonlyArray<readonly [pattern: string, key: string, matches: boolean]> = [
  ['#', '', true],
  ['#', 'a', true],
  ['#', 'a.b.c', true],
  ['#', '.', true],
  ['#.#', '', true],
  ['#.#', 'a.b.c', true],
  ['a.#.b', 'a.b', true],
  ['a.#.b', 'a.x.y.b', true],
  ['a.#.b', 'a.b.b', true],
  ['a.#.b', 'a.b.x', false],
  ['a.#.b', 'a', false],
  ['a.#.#.b', 'a.b', true],
  ['a.#', 'a', true],
  ['a.#', 'ab', false],
  ['#.a', 'a', true],
  ['#.a', 'b.a', true],
  ['#.a', 'a.b', false],
  ['*.*', 'a.b', true],
  ['*.*', 'a', false],
  ['*.*', 'a.b.c', false],
  ['*.*', '.', true],
  ['*', '', false],
  ['*', '.', false],
  ['*', 'a', true],
  ['#.*', '', false],
  ['#.*', 'a', true],
  ['*.#', 'a', true],
  ['*.#', 'a.b.c', true],
  ['*.#.*', 'a', false],
  ['*.#.*', 'a.b', true],
  ['', '', true],
  ['', 'a', false],
  ['a', '', false],
  ['a..b', 'a..b', true],
  ['a.*.b', 'a..b', true],
  ['a.b', 'a..b', false],
  ['a.#.b', 'a..b', true],
  ['a.', 'a.', true],
  ['a.', 'a', false],
  ['a.*', 'a.', true],
  ['.', '.', true],
  ['.#', '.', true],
  ['.#', '', false],
  ['a*', 'ab', false],
  ['a*', 'a*', true],
  ['a#', 'a.b', false],
  ['a.b', 'a.*', false],
  ['a.*', 'a.*', true],
  ['a.#', 'a.#', true],
  ['A.b', 'a.b', false],
];

test('topic matching follows RabbitMQ on wildcard and empty-word cases', () => {
  for (const [pattern, key, expected] of CASES) {
    assert.equal(referenceMatches(pattern, key), expected, `reference disagrees with the table on ${pattern} / ${key}`);
    const m = new TopicMatcher<NamedBinding>();
    m.add(nb('b', pattern));
    assert.deepEqual(matchNames(m, key), expected ? ['b'] : [], `${JSON.stringify(pattern)} vs ${JSON.stringify(key)}`);
  }
});

test('words are cut as RabbitMQ cuts them', () => {
  assert.deepEqual(topicWords(''), []);
  assert.deepEqual(topicWords('a'), ['a']);
  assert.deepEqual(topicWords('a..b'), ['a', '', 'b']);
  assert.deepEqual(topicWords('.'), ['', '']);
  assert.deepEqual(topicWords('a.'), ['a', '']);
});

test('one trie holds all cases at once and each binding is visited once', () => {
  const m = new TopicMatcher<NamedBinding>();
  CASES.forEach(([pattern], i) => m.add(nb(`p${i}`, pattern)));
  for (const [, key] of CASES) {
    const expected = CASES.map(([p], i) => [p, i] as const)
      .filter(([p]) => referenceMatches(p, key)).map(([, i]) => `p${i}`).sort();
    assert.deepEqual(matchNames(m, key), expected, `key ${JSON.stringify(key)}`);
  }
});

test('identical patterns keep separate bindings; removal prunes only what it should', () => {
  const m = new TopicMatcher<NamedBinding>();
  const x1 = nb('x1', 'a.*.c');
  const x2 = nb('x2', 'a.*.c');
  const y = nb('y', 'a.#');
  const z = nb('z', 'a.b.c');
  for (const b of [x1, x2, y, z]) m.add(b);
  assert.deepEqual(matchNames(m, 'a.b.c'), ['x1', 'x2', 'y', 'z']);
  m.remove(x1);
  assert.deepEqual(matchNames(m, 'a.b.c'), ['x2', 'y', 'z']);
  m.remove(z);
  assert.deepEqual(matchNames(m, 'a.b.c'), ['x2', 'y']);
  m.remove(x2);
  m.remove(y);
  assert.deepEqual(matchNames(m, 'a.b.c'), []);
  assert.equal(m.size, 0);
  assert.throws(() => m.remove(y));
  // The trie is usable after being emptied.
  m.add(z);
  assert.deepEqual(matchNames(m, 'a.b.c'), ['z']);
});

test('many consecutive # stay linear: 40 #s against a 255-byte key', () => {
  const m = new TopicMatcher<NamedBinding>();
  const pattern = Array.from({ length: 40 }, () => '#').join('.') + '.z';
  m.add(nb('hashes', pattern));
  m.add(nb('star-hash', Array.from({ length: 20 }, () => '*.#').join('.')));
  const key = Array.from({ length: 127 }, () => 'a').join('.') + '.b'; // 255 bytes, 128 words
  assert.equal(Buffer.byteLength(key), 255);
  const started = process.hrtime.bigint();
  assert.deepEqual(matchNames(m, key), ['star-hash']);
  assert.deepEqual(matchNames(m, key.slice(0, -1) + 'z'), ['hashes', 'star-hash']);
  // A backtracking matcher takes astronomically long here; generous bound for a slow CI machine.
  assert.ok(process.hrtime.bigint() - started < 2_000_000_000n);
});

const wordArb = fc.constantFrom('a', 'b', 'c', '', '*', '#');
const keyWordArb = fc.constantFrom('a', 'b', 'c', '');
const patternArb = fc.array(wordArb, { maxLength: 6 }).map((w) => w.join('.'));
const keyArb = fc.array(keyWordArb, { maxLength: 7 }).map((w) => w.join('.'));

test('property: the trie agrees with the reference matcher, before and after removals', () => {
  fc.assert(
    fc.property(fc.array(patternArb, { minLength: 1, maxLength: 25 }), fc.array(keyArb, { minLength: 1, maxLength: 15 }), (patterns, keys) => {
      const m = new TopicMatcher<NamedBinding>();
      const bindings = patterns.map((p, i) => nb(`b${i}`, p));
      for (const b of bindings) m.add(b);
      const check = (live: NamedBinding[]): void => {
        for (const key of keys) {
          const expected = live.filter((b) => referenceMatches(b.routingKey, key)).map((b) => b.name).sort();
          assert.deepEqual(matchNames(m, key), expected, `key ${JSON.stringify(key)}`);
        }
      };
      check(bindings);
      const removed = bindings.filter((_, i) => i % 2 === 1);
      for (const b of removed) m.remove(b);
      check(bindings.filter((_, i) => i % 2 === 0));
    }),
    { numRuns: 300 },
  );
});

test('100k bindings: thousands of keys route to exactly the expected bindings', () => {
  const m = new TopicMatcher<NamedBinding>();
  // 99,990 exact two-word keys t{a}.r{b}, plus wildcard patterns checked with the reference.
  const tenants = 500;
  const regions = 200;
  for (let b = 0; b < regions; b++) {
    for (let a = 0; a < tenants; a++) {
      const index = b * tenants + a;
      if (index < 99_990) m.add(nb(`q${index}`, `t${a}.r${b}`));
    }
  }
  const wildcards = ['t7.*', '*.r3', '#.r5', 't9.#', '#', '*.*.z', 't1.#.z', '*', '#.#', 't2.r2.#'];
  wildcards.forEach((p, i) => m.add(nb(`w${i}`, p)));
  assert.equal(m.size, 100_000);

  let seed = 42;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  for (let i = 0; i < 3000; i++) {
    const a = random(tenants + 10);
    const b = random(regions + 10);
    const shape = random(4);
    const key = shape === 0 ? `t${a}.r${b}` : shape === 1 ? `t${a}.r${b}.z` : shape === 2 ? `t${a}` : `t${a}.x.r${b}`;
    const index = b * tenants + a;
    const expected = wildcards.flatMap((p, w) => (referenceMatches(p, key) ? [`w${w}`] : []));
    if (shape === 0 && a < tenants && b < regions && index < 99_990) expected.push(`q${index}`);
    assert.deepEqual(matchNames(m, key), expected.sort(), `key ${key}`);
  }
});
