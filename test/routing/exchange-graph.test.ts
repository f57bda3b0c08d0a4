import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FieldTable, FieldValue } from '../../src/amqp/field-table.js';
import { ExchangeGraph } from '../../src/routing/exchange-graph.js';
import type { Binding, ExchangeDef, ExchangeType } from '../../src/routing/types.js';

const S = (value: string): FieldValue => ({ type: 'S', value });

function exchange(name: string, type: ExchangeType, extra: Partial<ExchangeDef> = {}): ExchangeDef {
  return { name, type, durable: false, autoDelete: false, internal: false, arguments: {}, ...extra };
}

function withAlternate(name: string, type: ExchangeType, alternate: string): ExchangeDef {
  return exchange(name, type, { arguments: { 'alternate-exchange': S(alternate) } });
}

function toQueue(source: string, queue: string, routingKey = '', args: FieldTable = {}): Binding {
  return { source, destination: queue, destinationKind: 'queue', routingKey, arguments: args };
}

function toExchange(source: string, destination: string, routingKey = '', args: FieldTable = {}): Binding {
  return { source, destination, destinationKind: 'exchange', routingKey, arguments: args };
}

const noQueues = (): boolean => false;

function route(g: ExchangeGraph, x: string, key: string, headers?: FieldTable): string[] {
  const out: string[] = [];
  g.route(x, key, () => headers, noQueues, out);
  assert.equal(new Set(out).size, out.length, 'a queue was routed twice');
  return out.sort();
}

test('a new graph holds RabbitMQ’s predeclared exchanges, all durable', () => {
  const g = new ExchangeGraph();
  const byName = new Map([...g.exchanges()].map((x) => [x.name, x]));
  const expected: Array<[string, ExchangeType]> = [
    ['', 'direct'], ['amq.direct', 'direct'], ['amq.fanout', 'fanout'], ['amq.topic', 'topic'],
    ['amq.headers', 'headers'], ['amq.match', 'headers'], ['amq.rabbitmq.trace', 'topic'],
  ];
  assert.equal(byName.size, expected.length);
  for (const [name, type] of expected) {
    const def = byName.get(name);
    assert.equal(def?.type, type, name);
    assert.equal(def.durable, true);
    assert.equal(def.autoDelete, false);
    assert.equal(def.internal, name === 'amq.rabbitmq.trace');
  }
  assert.deepEqual([...g.bindings()], []);
});

test('the default exchange routes to the queue named by the key, if it exists', () => {
  const g = new ExchangeGraph();
  const existing = new Set(['q1', '']);
  const out: string[] = [];
  g.route('', 'q1', () => assert.fail('headers not needed'), (q) => existing.has(q), out);
  assert.deepEqual(out, ['q1']);
  g.route('', 'nope', () => undefined, (q) => existing.has(q), out);
  assert.deepEqual(out, ['q1']);
  const cc: string[] = [];
  g.routeKeys('', ['q1', 'nope', 'q1', ''], () => undefined, (q) => existing.has(q), cc);
  assert.deepEqual(cc, ['q1', '']);
  assert.throws(() => g.bind(toQueue('', 'q1', 'q1')));
  assert.throws(() => g.bind(toExchange('amq.direct', '')));
  assert.throws(() => g.deleteExchange(''));
});

test('publishing to an exchange that does not exist routes nowhere', () => {
  assert.deepEqual(route(new ExchangeGraph(), 'missing', 'k'), []);
});

test('binding is idempotent; arguments are part of identity, their order is not', () => {
  const g = new ExchangeGraph();
  assert.equal(g.bind(toQueue('amq.direct', 'q', 'k')), true);
  assert.equal(g.bind(toQueue('amq.direct', 'q', 'k')), false);
  assert.equal(g.bind(toQueue('amq.direct', 'q', 'k', { a: S('1'), b: S('2') })), true);
  assert.equal(g.bind(toQueue('amq.direct', 'q', 'k', { b: S('2'), a: S('1') })), false);
  assert.equal(g.bind(toQueue('amq.direct', 'q', 'k', { a: { type: 'l', value: 1 } })), true);
  assert.equal(g.bind(toQueue('amq.direct', 'q', 'k', { a: { type: 'I', value: 1 } })), true);
  assert.equal(g.bind(toExchange('amq.direct', 'amq.fanout', 'k')), true);
  assert.equal(g.bindingsForSource('amq.direct').length, 5);
  assert.deepEqual(route(g, 'amq.direct', 'k'), ['q']);
});

test('unbind removes exactly the identical binding and reports absence', () => {
  const g = new ExchangeGraph();
  g.bind(toQueue('amq.direct', 'q1', 'k'));
  g.bind(toQueue('amq.direct', 'q2', 'k', { a: S('1') }));
  assert.equal(g.unbind(toQueue('amq.direct', 'q1', 'other')), false);
  assert.equal(g.unbind(toQueue('amq.direct', 'q2', 'k')), false);
  assert.equal(g.unbind(toQueue('amq.fanout', 'q1', 'k')), false);
  assert.equal(g.unbind(toQueue('missing', 'q1', 'k')), false);
  assert.deepEqual(route(g, 'amq.direct', 'k'), ['q1', 'q2']);
  assert.equal(g.unbind(toQueue('amq.direct', 'q1', 'k')), true);
  assert.equal(g.unbind(toQueue('amq.direct', 'q1', 'k')), false);
  assert.deepEqual(route(g, 'amq.direct', 'k'), ['q2']);
});

test('each exchange type routes by its own rule', () => {
  const g = new ExchangeGraph();
  g.bind(toQueue('amq.direct', 'd', 'a.b'));
  g.bind(toQueue('amq.fanout', 'f', 'whatever'));
  g.bind(toQueue('amq.topic', 't', 'a.*'));
  g.bind(toQueue('amq.headers', 'h', '', { 'x-match': S('any'), colour: S('red') }));
  assert.deepEqual(route(g, 'amq.direct', 'a.b'), ['d']);
  assert.deepEqual(route(g, 'amq.direct', 'a.c'), []);
  assert.deepEqual(route(g, 'amq.fanout', ''), ['f']);
  assert.deepEqual(route(g, 'amq.topic', 'a.c'), ['t']);
  assert.deepEqual(route(g, 'amq.topic', 'a.b.c'), []);
  assert.deepEqual(route(g, 'amq.headers', 'a.b', { colour: S('red') }), ['h']);
  assert.deepEqual(route(g, 'amq.headers', 'a.b', { colour: S('blue') }), []);
  assert.deepEqual(route(g, 'amq.headers', 'a.b'), []);
});

test('exchange-to-exchange chains deliver each queue once', () => {
  const g = new ExchangeGraph();
  g.declareExchange(exchange('fan', 'fanout'));
  g.declareExchange(exchange('dir', 'direct'));
  g.declareExchange(exchange('hdr', 'headers'));
  g.bind(toExchange('amq.topic', 'fan', 'orders.#'));
  g.bind(toExchange('fan', 'dir'));
  g.bind(toExchange('fan', 'hdr'));
  g.bind(toQueue('fan', 'all-orders'));
  g.bind(toQueue('dir', 'eu', 'orders.eu'));
  g.bind(toQueue('dir', 'all-orders', 'orders.eu'));
  g.bind(toQueue('hdr', 'urgent', '', { prio: S('high') }));
  g.bind(toQueue('hdr', 'all-orders', '', { prio: S('high') }));
  assert.deepEqual(route(g, 'amq.topic', 'orders.eu', { prio: S('high') }), ['all-orders', 'eu', 'urgent']);
  assert.deepEqual(route(g, 'amq.topic', 'orders.us'), ['all-orders']);
  assert.deepEqual(route(g, 'amq.topic', 'invoices.eu', { prio: S('high') }), []);
});

test('cycles of exchange bindings terminate and visit each exchange once', () => {
  const g = new ExchangeGraph();
  for (const name of ['a', 'b', 'c']) g.declareExchange(exchange(name, 'fanout'));
  g.bind(toExchange('a', 'b'));
  g.bind(toExchange('b', 'c'));
  g.bind(toExchange('c', 'a'));
  g.bind(toExchange('a', 'a'));
  g.bind(toQueue('b', 'qb'));
  g.bind(toQueue('c', 'qc'));
  assert.deepEqual(route(g, 'a', ''), ['qb', 'qc']);
  assert.deepEqual(route(g, 'c', ''), ['qb', 'qc']);
});

test('headers are fetched lazily: never for other types, once for several headers exchanges', () => {
  const g = new ExchangeGraph();
  g.declareExchange(exchange('h2', 'headers'));
  g.bind(toQueue('amq.direct', 'q', 'k'));
  g.bind(toExchange('amq.direct', 'amq.headers', 'k'));
  g.bind(toExchange('amq.direct', 'h2', 'k'));
  g.bind(toQueue('amq.headers', 'hq1', '', { a: S('1') }));
  g.bind(toQueue('h2', 'hq2', '', { a: S('1') }));
  let calls = 0;
  const out: string[] = [];
  g.route('amq.direct', 'k', () => { calls++; return { a: S('1') }; }, noQueues, out);
  assert.deepEqual(out.sort(), ['hq1', 'hq2', 'q']);
  assert.equal(calls, 1);
  g.route('amq.direct', 'other', () => { calls++; return undefined; }, noQueues, []);
  assert.equal(calls, 1);
});

test('an exchange that matched nothing hands the message to its alternate exchange', () => {
  const g = new ExchangeGraph();
  g.declareExchange(exchange('ae', 'fanout'));
  g.declareExchange(withAlternate('x', 'direct', 'ae'));
  g.bind(toQueue('ae', 'unrouted'));
  g.bind(toQueue('x', 'q', 'k'));
  assert.deepEqual(route(g, 'x', 'k'), ['q']);
  assert.deepEqual(route(g, 'x', 'other'), ['unrouted']);
  // With several routing keys (CC), the alternate is used only when no key matched.
  const out: string[] = [];
  g.routeKeys('x', ['other', 'k'], () => undefined, noQueues, out);
  assert.deepEqual(out, ['q']);
  g.routeKeys('x', ['other', 'nope'], () => undefined, noQueues, out);
  assert.deepEqual(out, ['q', 'unrouted']);
});

test('a missing alternate exchange is ignored, and an alternate can be added by redeclaring', () => {
  const g = new ExchangeGraph();
  g.declareExchange(withAlternate('x', 'direct', 'not-there'));
  assert.deepEqual(route(g, 'x', 'k'), []);
  g.declareExchange(exchange('not-there', 'fanout'));
  g.bind(toQueue('not-there', 'q'));
  assert.deepEqual(route(g, 'x', 'k'), ['q']);
  g.declareExchange(exchange('x', 'direct'));
  assert.deepEqual(route(g, 'x', 'k'), []);
  assert.throws(() => g.declareExchange(exchange('x', 'topic')));
});

test('alternate exchanges chain, and loops of them terminate', () => {
  const g = new ExchangeGraph();
  g.declareExchange(withAlternate('x', 'direct', 'ae1'));
  g.declareExchange(withAlternate('ae1', 'topic', 'ae2'));
  g.declareExchange(exchange('ae2', 'fanout'));
  g.bind(toQueue('ae1', 'q1', 'only.this'));
  g.bind(toQueue('ae2', 'q2'));
  assert.deepEqual(route(g, 'x', 'only.this'), ['q1']);
  assert.deepEqual(route(g, 'x', 'else'), ['q2']);

  g.declareExchange(withAlternate('p', 'direct', 'r'));
  g.declareExchange(withAlternate('r', 'direct', 'p'));
  g.declareExchange(withAlternate('self', 'direct', 'self'));
  assert.deepEqual(route(g, 'p', 'k'), []);
  assert.deepEqual(route(g, 'self', 'k'), []);
  // The default exchange as an alternate has no binding rows, so it routes nothing.
  g.declareExchange(withAlternate('to-default', 'direct', ''));
  const out: string[] = [];
  g.route('to-default', 'q1', () => undefined, () => true, out);
  assert.deepEqual(out, []);
});

test('an exchange that routed only to exchanges does not use its alternate, even if they routed nothing', () => {
  const g = new ExchangeGraph();
  g.declareExchange(exchange('ae', 'fanout'));
  g.declareExchange(exchange('empty', 'direct'));
  g.declareExchange(withAlternate('x', 'fanout', 'ae'));
  g.bind(toQueue('ae', 'unrouted'));
  g.bind(toExchange('x', 'empty'));
  assert.deepEqual(route(g, 'x', 'k'), []);
  // The inner exchange's own alternate does apply.
  g.declareExchange(withAlternate('empty', 'direct', 'ae'));
  assert.deepEqual(route(g, 'x', 'k'), ['unrouted']);
});

test('auto-delete: reported after unbinding the last source binding, once, and only if still bare', () => {
  const g = new ExchangeGraph();
  g.declareExchange(exchange('ad', 'direct', { autoDelete: true }));
  g.declareExchange(exchange('keep', 'direct'));
  assert.deepEqual(g.takeAutoDeleteCandidates(), []);
  g.bind(toQueue('ad', 'q1', 'a'));
  g.bind(toQueue('ad', 'q2', 'b'));
  g.bind(toQueue('keep', 'q1', 'a'));
  g.unbind(toQueue('ad', 'q1', 'a'));
  assert.deepEqual(g.takeAutoDeleteCandidates(), []);
  g.unbind(toQueue('keep', 'q1', 'a'));
  g.unbind(toQueue('ad', 'q2', 'b'));
  assert.deepEqual(g.takeAutoDeleteCandidates(), ['ad']);
  assert.deepEqual(g.takeAutoDeleteCandidates(), []);
  // Rebound before the caller acted: no longer a candidate.
  g.bind(toQueue('ad', 'q1', 'a'));
  g.unbind(toQueue('ad', 'q1', 'a'));
  g.bind(toQueue('ad', 'q1', 'a'));
  assert.deepEqual(g.takeAutoDeleteCandidates(), []);
  assert.equal(g.getExchange('ad')?.name, 'ad');
});

test('auto-delete: queue deletion and destination-exchange deletion report sources, and deletion cascades', () => {
  const g = new ExchangeGraph();
  g.declareExchange(exchange('outer', 'fanout', { autoDelete: true }));
  g.declareExchange(exchange('inner', 'fanout', { autoDelete: true }));
  g.declareExchange(exchange('other', 'fanout', { autoDelete: true }));
  g.bind(toExchange('outer', 'inner'));
  g.bind(toQueue('inner', 'q'));
  g.bind(toQueue('inner', 'q', 'second'));
  g.bind(toQueue('other', 'q'));
  g.removeQueueBindings('q');
  assert.deepEqual(g.takeAutoDeleteCandidates().sort(), ['inner', 'other']);
  assert.deepEqual(g.bindingsForDestination('q', 'queue'), []);
  g.deleteExchange('inner');
  g.deleteExchange('other');
  assert.deepEqual(g.takeAutoDeleteCandidates(), ['outer']);
  g.deleteExchange('outer');
  assert.deepEqual(g.takeAutoDeleteCandidates(), []);
  assert.deepEqual([...g.bindings()], []);
});

test('deleteExchange removes its bindings in both directions', () => {
  const g = new ExchangeGraph();
  g.declareExchange(exchange('mid', 'direct'));
  g.bind(toExchange('amq.fanout', 'mid'));
  g.bind(toExchange('mid', 'amq.topic', 'k'));
  g.bind(toQueue('mid', 'q', 'k'));
  assert.equal(g.hasBindingsAsSource('mid'), true);
  assert.equal(g.hasBindingsAsDestination('mid'), true);
  assert.equal(g.hasBindingsAsDestination('amq.topic'), true);
  g.deleteExchange('mid');
  assert.equal(g.getExchange('mid'), undefined);
  assert.equal(g.hasBindingsAsSource('amq.fanout'), false);
  assert.equal(g.hasBindingsAsDestination('amq.topic'), false);
  assert.deepEqual(g.bindingsForDestination('q', 'queue'), []);
  assert.deepEqual([...g.bindings()], []);
  assert.deepEqual(route(g, 'amq.fanout', 'k'), []);
  g.deleteExchange('mid'); // absent: nothing happens
  // Predeclared amq.* exchanges are not auto-delete, so losing bindings reports nothing.
  assert.deepEqual(g.takeAutoDeleteCandidates(), []);
});

test('binding listings by source, destination and in total', () => {
  const g = new ExchangeGraph();
  const b1 = toQueue('amq.direct', 'q', 'k1');
  const b2 = toQueue('amq.topic', 'q', 'k.#', { x: S('y') });
  const b3 = toExchange('amq.direct', 'amq.topic', 'k1');
  for (const b of [b1, b2, b3]) g.bind(b);
  const key = (b: Binding): string => JSON.stringify(b);
  assert.deepEqual([...g.bindings()].map(key).sort(), [b1, b2, b3].map(key).sort());
  assert.deepEqual(g.bindingsForSource('amq.direct').map(key).sort(), [b1, b3].map(key).sort());
  assert.deepEqual(g.bindingsForDestination('q', 'queue').map(key).sort(), [b1, b2].map(key).sort());
  assert.deepEqual(g.bindingsForDestination('amq.topic', 'exchange').map(key), [b3].map(key));
  assert.deepEqual(g.bindingsForDestination('amq.topic', 'queue'), []);
  assert.deepEqual(g.bindingsForSource('missing'), []);
  // Stored copies: changing the caller's object afterwards changes nothing.
  b1.routingKey = 'changed';
  assert.deepEqual(route(g, 'amq.direct', 'k1'), ['q']);
});

test('route appends to the caller’s array and reuses it without leaking state between calls', () => {
  const g = new ExchangeGraph();
  g.bind(toQueue('amq.direct', 'q1', 'k'));
  g.bind(toQueue('amq.fanout', 'q1'));
  const out: string[] = ['earlier'];
  g.route('amq.direct', 'k', () => undefined, noQueues, out);
  assert.deepEqual(out, ['earlier', 'q1']);
  out.length = 0;
  g.route('amq.fanout', 'k', () => undefined, noQueues, out);
  assert.deepEqual(out, ['q1']);
});
