// Which queues exist, how they are bound, where each client publishes or consumes, and
// how many queue copies each published message becomes (for the end-of-run accounting).
import type { BenchOptions, ExchangeType } from './options.js';

export interface ProducerPlan {
  readonly client: number;
  readonly routingKey: string;
  /** Indexes of the queues a message from this producer lands in. */
  readonly routedQueues: readonly number[];
}

export interface ConsumerPlan {
  readonly client: number;
  readonly queue: string;
  readonly queueIndex: number;
}

export interface Binding {
  readonly queue: string;
  readonly bindingKey: string;
}

export interface Topology {
  readonly exchange: string;
  readonly exchangeType: ExchangeType;
  /** Whether this run declares (and later deletes) the exchange. */
  readonly ownsExchange: boolean;
  readonly queues: readonly string[];
  readonly bindings: readonly Binding[];
  readonly producers: readonly ProducerPlan[];
  readonly consumers: readonly ConsumerPlan[];
}

export function queueName(prefix: string, queueIndex: number): string {
  return `${prefix}-${queueIndex + 1}`;
}

/**
 * Clients are numbered producers first, then consumers; producer i and consumer i use
 * queue i mod N, so N producers and N consumers over N queues pair up one to one.
 */
export function planTopology(options: BenchOptions): Topology {
  const queues = Array.from({ length: options.queueCount }, (_, index) => queueName(options.queuePrefix, index));
  const named = options.exchange !== '';
  const bindings: Binding[] = named
    ? queues.map((queue) => ({ queue, bindingKey: options.bindingKey ?? options.routingKey ?? queue }))
    : [];
  const producers: ProducerPlan[] = [];
  for (let index = 0; index < options.producers; index++) {
    const routingKey = options.routingKey ?? queues[index % queues.length] ?? '';
    producers.push({ client: index, routingKey, routedQueues: routeToQueues(options.exchange, options.exchangeType, routingKey, queues, bindings) });
  }
  const consumers: ConsumerPlan[] = [];
  for (let index = 0; index < options.consumers; index++) {
    const queueIndex = index % queues.length;
    consumers.push({ client: options.producers + index, queue: queues[queueIndex] ?? '', queueIndex });
  }
  return {
    exchange: options.exchange,
    exchangeType: options.exchangeType,
    ownsExchange: named && !options.exchange.startsWith('amq.') && options.exchange === `${options.queuePrefix}-exchange`,
    queues,
    bindings,
    producers,
    consumers,
  };
}

/** The queues (by index) a message with this routing key reaches, by the exchange type's rule. */
export function routeToQueues(exchange: string, exchangeType: ExchangeType, routingKey: string, queues: readonly string[], bindings: readonly Binding[]): number[] {
  if (exchange === '') {
    const index = queues.indexOf(routingKey);
    return index < 0 ? [] : [index];
  }
  const matched = new Set<number>();
  for (const binding of bindings) {
    if (bindingMatches(exchangeType, binding.bindingKey, routingKey)) matched.add(queues.indexOf(binding.queue));
  }
  return [...matched].filter((index) => index >= 0).sort((a, b) => a - b);
}

function bindingMatches(exchangeType: ExchangeType, bindingKey: string, routingKey: string): boolean {
  switch (exchangeType) {
    case 'direct':
      return bindingKey === routingKey;
    case 'topic':
      return topicMatches(bindingKey, routingKey);
    // Bound with no arguments, a headers exchange matches every message (x-match all of nothing).
    case 'fanout':
    case 'headers':
      return true;
  }
}

/** AMQP topic matching: words split on '.', '*' is exactly one word, '#' zero or more. */
export function topicMatches(pattern: string, routingKey: string): boolean {
  return matchWords(pattern.split('.'), 0, routingKey.split('.'), 0);
}

function matchWords(pattern: readonly string[], patternIndex: number, words: readonly string[], wordIndex: number): boolean {
  if (patternIndex === pattern.length) return wordIndex === words.length;
  const head = pattern[patternIndex];
  if (head === '#') {
    for (let skip = wordIndex; skip <= words.length; skip++) if (matchWords(pattern, patternIndex + 1, words, skip)) return true;
    return false;
  }
  if (wordIndex === words.length) return false;
  if (head !== '*' && head !== words[wordIndex]) return false;
  return matchWords(pattern, patternIndex + 1, words, wordIndex + 1);
}

/** Queue copies routed so far, given each producer's published count. */
export function routedCopies(topology: Topology, publishedByProducer: (client: number) => number): number {
  let copies = 0;
  for (const producer of topology.producers) copies += publishedByProducer(producer.client) * producer.routedQueues.length;
  return copies;
}

/** Copies routed to queues that have a consumer: what consumers can be expected to drain. */
export function consumableCopies(topology: Topology, publishedByProducer: (client: number) => number): number {
  const consumed = new Set(topology.consumers.map((consumer) => consumer.queueIndex));
  let copies = 0;
  for (const producer of topology.producers) {
    copies += publishedByProducer(producer.client) * producer.routedQueues.filter((index) => consumed.has(index)).length;
  }
  return copies;
}
