// The exchanges and bindings of one virtual host, and routing through them.
//
// Routing follows RabbitMQ's rabbit_exchange:route: starting from the published-to exchange,
// each exchange reached is matched once (so exchange-to-exchange cycles end); an exchange
// whose own bindings matched nothing at all hands the message to its alternate exchange,
// which is matched the same way; exchanges that do not exist are skipped. The default
// exchange routes to the queue named by the routing key, and has no stored bindings.
//
// The route path allocates nothing of its own: queue and exchange records carry the number of
// the last route that reached them, so duplicates are dropped without a Set.
import assert from 'node:assert/strict';
import type { FieldTable } from '../amqp/field-table.js';
import { DirectMatcher } from './direct-matcher.js';
import { FanoutMatcher } from './fanout-matcher.js';
import { fieldTableIdentity } from './field-value-identity.js';
import { HeadersMatcher } from './headers-matcher.js';
import { DEFAULT_EXCHANGE, predeclaredExchanges } from './predeclared-exchanges.js';
import { TopicMatcher } from './topic-matcher.js';
import type { Binding, DestinationKind, ExchangeDef, ExchangeType, Matcher, MatcherBinding } from './types.js';

export const ALTERNATE_EXCHANGE_ARG = 'alternate-exchange';

interface QueueRecord {
  readonly name: string;
  readonly inbound: Set<StoredBinding>;
  /** The last route that delivered to this queue. */
  mark: number;
}

interface StoredBinding extends MatcherBinding {
  readonly identity: string;
  readonly binding: Readonly<Binding>;
  readonly source: ExchangeRecord;
  readonly queue: QueueRecord | null;
  readonly exchange: ExchangeRecord | null;
}

class ExchangeRecord {
  /** Bindings with this exchange as source, by identity (destination, key, arguments). */
  readonly outbound = new Map<string, StoredBinding>();
  readonly inbound = new Set<StoredBinding>();
  /** The last route that reached this exchange. */
  mark = 0;

  constructor(
    public def: Readonly<ExchangeDef>,
    public alternate: string | undefined,
    /** null for the default exchange, whose bindings are implicit. */
    readonly matcher: Matcher<StoredBinding> | null,
  ) {}

  /** An alternate exchange set by policy; the exchange's own argument wins over it. */
  policyAlternate: string | undefined;
}

function newMatcher(type: ExchangeType): Matcher<StoredBinding> {
  switch (type) {
    case 'direct': return new DirectMatcher<StoredBinding>();
    case 'fanout': return new FanoutMatcher<StoredBinding>();
    case 'topic': return new TopicMatcher<StoredBinding>();
    case 'headers': return new HeadersMatcher<StoredBinding>();
  }
}

/** RabbitMQ takes the argument's value whatever its type; only a string can name an exchange. */
function alternateOf(args: FieldTable): string | undefined {
  const arg = Object.hasOwn(args, ALTERNATE_EXCHANGE_ARG) ? args[ALTERNATE_EXCHANGE_ARG] : undefined;
  if (arg?.type === 'S') return arg.value;
  if (arg?.type === 'x') return arg.value.toString('utf8');
  return undefined;
}

function bindingIdentity(b: Binding): string {
  return JSON.stringify([b.destinationKind, b.destination, b.routingKey]) + fieldTableIdentity(b.arguments);
}

export class ExchangeGraph {
  private readonly exchangesByName = new Map<string, ExchangeRecord>();
  private readonly queues = new Map<string, QueueRecord>();
  private autoDeleteCandidates: string[] = [];

  // State of the route in progress, in fields so that the callbacks below are made once.
  private routeNumber = 0;
  private routeOut: string[] = [];
  private readonly pending: ExchangeRecord[] = [];
  private pendingCount = 0;
  private matchedCount = 0;
  private getHeaders: () => FieldTable | undefined = () => undefined;
  private headersFetched = false;
  private headers: FieldTable | undefined = undefined;
  private readonly oneKey: string[] = [''];

  constructor() {
    for (const def of predeclaredExchanges()) this.declareExchange(def);
  }

  /** Sets (or clears) the alternate exchange a policy gives an exchange (RabbitMQ's `alternate-exchange` policy key). */
  setPolicyAlternate(name: string, alternate: string | undefined): void {
    const record = this.exchangesByName.get(name);
    if (record !== undefined) record.policyAlternate = alternate;
  }

  getExchange(name: string): ExchangeDef | undefined {
    return this.exchangesByName.get(name)?.def;
  }

  *exchanges(): IterableIterator<ExchangeDef> {
    for (const record of this.exchangesByName.values()) yield record.def;
  }

  /** Declares, or replaces the definition of an exchange of the same type (bindings are kept). */
  declareExchange(def: ExchangeDef): void {
    const frozen = Object.freeze({ ...def });
    const existing = this.exchangesByName.get(def.name);
    if (existing !== undefined) {
      assert.equal(existing.def.type, def.type, `exchange ${def.name} redeclared with another type`);
      existing.def = frozen;
      existing.alternate = alternateOf(def.arguments);
      return;
    }
    const matcher = def.name === DEFAULT_EXCHANGE ? null : newMatcher(def.type);
    this.exchangesByName.set(def.name, new ExchangeRecord(frozen, alternateOf(def.arguments), matcher));
  }

  /** Removes the exchange and its bindings in both directions; sources left bare may become auto-delete candidates. */
  deleteExchange(name: string): void {
    assert.notEqual(name, DEFAULT_EXCHANGE, 'the default exchange cannot be deleted');
    const record = this.exchangesByName.get(name);
    if (record === undefined) return;
    for (const stored of record.outbound.values()) this.detachDestination(stored);
    record.outbound.clear();
    for (const stored of [...record.inbound]) this.removeStored(stored);
    this.exchangesByName.delete(name);
  }

  hasBindingsAsSource(name: string): boolean {
    return (this.exchangesByName.get(name)?.outbound.size ?? 0) > 0;
  }

  hasBindingsAsDestination(name: string): boolean {
    return (this.exchangesByName.get(name)?.inbound.size ?? 0) > 0;
  }

  /** false if an identical binding exists. Source and destination exchanges must exist and not be the default exchange. */
  bind(b: Binding): boolean {
    const source = this.exchangesByName.get(b.source);
    assert.ok(source !== undefined, `bind: no source exchange ${b.source}`);
    assert.ok(source.matcher !== null, 'bind: the default exchange takes no bindings');
    const identity = bindingIdentity(b);
    if (source.outbound.has(identity)) return false;
    let queue: QueueRecord | null = null;
    let exchange: ExchangeRecord | null = null;
    if (b.destinationKind === 'queue') {
      queue = this.queues.get(b.destination) ?? null;
      if (queue === null) {
        queue = { name: b.destination, inbound: new Set(), mark: 0 };
        this.queues.set(b.destination, queue);
      }
    } else {
      exchange = this.exchangesByName.get(b.destination) ?? null;
      assert.ok(exchange !== null, `bind: no destination exchange ${b.destination}`);
      assert.notEqual(b.destination, DEFAULT_EXCHANGE, 'bind: the default exchange takes no bindings');
    }
    const binding = Object.freeze({ ...b });
    const stored: StoredBinding = {
      identity, binding, source, queue, exchange, routingKey: binding.routingKey, arguments: binding.arguments,
    };
    source.outbound.set(identity, stored);
    source.matcher.add(stored);
    (queue ?? exchange)?.inbound.add(stored);
    return true;
  }

  /** false if absent. When the source is auto-delete and this removed its last binding-as-source, the graph reports it. */
  unbind(b: Binding): boolean {
    const stored = this.exchangesByName.get(b.source)?.outbound.get(bindingIdentity(b));
    if (stored === undefined) return false;
    this.removeStored(stored);
    return true;
  }

  /** Auto-delete exchanges that lost their last binding-as-source since the last call; the caller deletes them (which may cascade). */
  takeAutoDeleteCandidates(): string[] {
    const names = new Set<string>();
    for (const name of this.autoDeleteCandidates) {
      const record = this.exchangesByName.get(name);
      if (record !== undefined && record.def.autoDelete && record.outbound.size === 0) names.add(name);
    }
    this.autoDeleteCandidates = [];
    return [...names];
  }

  /** Removes every binding whose destination is this queue (queue deleted). */
  removeQueueBindings(queue: string): void {
    const record = this.queues.get(queue);
    if (record === undefined) return;
    for (const stored of [...record.inbound]) this.removeStored(stored);
  }

  /** Explicit bindings; the default exchange's implicit ones are not listed. */
  *bindings(): IterableIterator<Binding> {
    for (const record of this.exchangesByName.values()) {
      for (const stored of record.outbound.values()) yield stored.binding;
    }
  }

  bindingsForDestination(name: string, kind: DestinationKind): Binding[] {
    const inbound = kind === 'queue' ? this.queues.get(name)?.inbound : this.exchangesByName.get(name)?.inbound;
    return inbound === undefined ? [] : [...inbound].map((stored) => stored.binding);
  }

  bindingsForSource(name: string): Binding[] {
    const outbound = this.exchangesByName.get(name)?.outbound;
    return outbound === undefined ? [] : [...outbound.values()].map((stored) => stored.binding);
  }

  /**
   * Appends to `out` the names of the queues a message reaches, each once. `getHeaders` is
   * called at most once, and only if a headers exchange is reached; `queueExists` only by the
   * default exchange.
   */
  route(
    exchange: string,
    routingKey: string,
    getHeaders: () => FieldTable | undefined,
    queueExists: (q: string) => boolean,
    out: string[],
  ): void {
    this.oneKey[0] = routingKey;
    this.routeKeys(exchange, this.oneKey, getHeaders, queueExists, out);
  }

  /**
   * route() for a message with several routing keys (the routing key plus its CC and BCC
   * headers): each exchange matches every key, and its alternate exchange is used only if no
   * key matched there. `routingKeys` must not be empty.
   */
  routeKeys(
    exchange: string,
    routingKeys: readonly string[],
    getHeaders: () => FieldTable | undefined,
    queueExists: (q: string) => boolean,
    out: string[],
  ): void {
    assert.ok(routingKeys.length > 0, 'a message has at least one routing key');
    if (exchange === DEFAULT_EXCHANGE) {
      routeByQueueName(routingKeys, queueExists, out);
      return;
    }
    const start = this.exchangesByName.get(exchange);
    if (start === undefined) return;
    const routeNumber = ++this.routeNumber;
    this.routeOut = out;
    this.getHeaders = getHeaders;
    this.headersFetched = false;
    this.headers = undefined;
    start.mark = routeNumber;
    this.pending[0] = start;
    this.pendingCount = 1;
    while (this.pendingCount > 0) {
      const record = this.pending[--this.pendingCount] as ExchangeRecord;
      this.matchedCount = 0;
      this.matchExchange(record, routingKeys);
      const alternateName = record.alternate ?? record.policyAlternate;
      if (this.matchedCount === 0 && alternateName !== undefined) {
        const alternate = this.exchangesByName.get(alternateName);
        if (alternate !== undefined) this.enqueue(alternate);
      }
    }
    this.routeOut = NO_OUTPUT;
    this.getHeaders = NO_HEADERS;
    this.headers = undefined;
  }

  private matchExchange(record: ExchangeRecord, routingKeys: readonly string[]): void {
    // The default exchange reached as an alternate: it has no bindings rows, so nothing matches.
    const matcher = record.matcher;
    if (matcher === null) return;
    if (!matcher.usesRoutingKey) {
      matcher.match(routingKeys[0] ?? '', this.headersOnce, this.onMatch);
      return;
    }
    for (let i = 0; i < routingKeys.length; i++) {
      matcher.match(routingKeys[i] ?? '', this.headersOnce, this.onMatch);
    }
  }

  private readonly onMatch = (stored: StoredBinding): void => {
    this.matchedCount++;
    const queue = stored.queue;
    if (queue !== null) {
      if (queue.mark === this.routeNumber) return;
      queue.mark = this.routeNumber;
      this.routeOut.push(queue.name);
      return;
    }
    if (stored.exchange !== null) this.enqueue(stored.exchange);
  };

  private readonly headersOnce = (): FieldTable | undefined => {
    if (!this.headersFetched) {
      this.headersFetched = true;
      this.headers = this.getHeaders();
    }
    return this.headers;
  };

  private enqueue(record: ExchangeRecord): void {
    if (record.mark === this.routeNumber) return;
    record.mark = this.routeNumber;
    this.pending[this.pendingCount++] = record;
  }

  private removeStored(stored: StoredBinding): void {
    const source = stored.source;
    source.outbound.delete(stored.identity);
    source.matcher?.remove(stored);
    this.detachDestination(stored);
    if (source.def.autoDelete && source.outbound.size === 0) this.autoDeleteCandidates.push(source.def.name);
  }

  private detachDestination(stored: StoredBinding): void {
    if (stored.exchange !== null) {
      stored.exchange.inbound.delete(stored);
      return;
    }
    const queue = stored.queue;
    if (queue === null) return;
    queue.inbound.delete(stored);
    if (queue.inbound.size === 0) this.queues.delete(queue.name);
  }
}

// Placeholders held between routes, so the graph keeps no reference to a caller's array or closure.
const NO_OUTPUT: string[] = [];
const NO_HEADERS = (): FieldTable | undefined => undefined;

/** The default exchange: each key that names an existing queue, once. */
function routeByQueueName(routingKeys: readonly string[], queueExists: (q: string) => boolean, out: string[]): void {
  const first = routingKeys[0] ?? '';
  if (routingKeys.length === 1) {
    if (queueExists(first)) out.push(first);
    return;
  }
  const start = out.length;
  for (const key of routingKeys) {
    if (out.indexOf(key, start) < 0 && queueExists(key)) out.push(key);
  }
}
