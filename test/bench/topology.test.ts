import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dealClients, urlOfClient } from '../../src/bench/client-groups.js';
import { parseBenchArgs } from '../../src/bench/parse-args.js';
import type { BenchOptions } from '../../src/bench/options.js';
import { consumableCopies, planTopology, routedCopies, topicMatches } from '../../src/bench/topology.js';

function options(argv: string[]): BenchOptions {
  const command = parseBenchArgs(['--queue-prefix', 'q', ...argv], 2);
  if (command.kind !== 'run') throw new Error('expected a run');
  return command.options;
}

describe('topology', () => {
  it('pairs producer i and consumer i on queue i mod N over the default exchange', () => {
    const topology = planTopology(options(['-x', '4', '-y', '4', '--queues', '4']));
    assert.deepEqual(topology.queues, ['q-1', 'q-2', 'q-3', 'q-4']);
    assert.deepEqual(topology.bindings, []);
    assert.deepEqual(topology.producers.map((producer) => [producer.client, producer.routingKey, producer.routedQueues]), [
      [0, 'q-1', [0]],
      [1, 'q-2', [1]],
      [2, 'q-3', [2]],
      [3, 'q-4', [3]],
    ]);
    assert.deepEqual(topology.consumers.map((consumer) => [consumer.client, consumer.queue]), [
      [4, 'q-1'],
      [5, 'q-2'],
      [6, 'q-3'],
      [7, 'q-4'],
    ]);
    assert.equal(topology.ownsExchange, false);
  });

  it('copies a fanout message into every queue', () => {
    const topology = planTopology(options(['--exchange-type', 'fanout', '--queues', '3', '-y', '1']));
    assert.equal(topology.exchange, 'q-exchange');
    assert.equal(topology.ownsExchange, true);
    assert.equal(topology.bindings.length, 3);
    assert.deepEqual(topology.producers[0]?.routedQueues, [0, 1, 2]);
    assert.equal(routedCopies(topology, () => 10), 30);
    // Only q-1 has a consumer: 10 of the 30 copies can be drained.
    assert.equal(consumableCopies(topology, () => 10), 10);
  });

  it('routes a shared routing key to every queue bound with it', () => {
    const topology = planTopology(options(['--exchange', 'ex', '--routing-key', 'k', '--queues', '2']));
    assert.deepEqual(topology.bindings, [{ queue: 'q-1', bindingKey: 'k' }, { queue: 'q-2', bindingKey: 'k' }]);
    assert.deepEqual(topology.producers[0]?.routedQueues, [0, 1]);
    assert.equal(topology.ownsExchange, false);
  });

  it('routes nowhere when the default exchange gets a key that names no queue', () => {
    const topology = planTopology(options(['--routing-key', 'elsewhere']));
    assert.deepEqual(topology.producers[0]?.routedQueues, []);
    assert.equal(routedCopies(topology, () => 5), 0);
  });

  it('applies topic patterns', () => {
    const topology = planTopology(options(['--exchange-type', 'topic', '--routing-key', 'a.b.c', '--binding-key', 'a.#', '--queues', '2']));
    assert.deepEqual(topology.producers[0]?.routedQueues, [0, 1]);
    assert.equal(topicMatches('a.*.c', 'a.b.c'), true);
    assert.equal(topicMatches('a.*', 'a.b.c'), false);
    assert.equal(topicMatches('#', ''), true);
    assert.equal(topicMatches('#.c', 'c'), true);
    assert.equal(topicMatches('a.#.d', 'a.b.c.d'), true);
    assert.equal(topicMatches('a.#.d', 'a.b.c'), false);
    assert.equal(topicMatches('*', 'a.b'), false);
  });

  it('matches every queue on a headers exchange bound without arguments', () => {
    const topology = planTopology(options(['--exchange-type', 'headers', '--queues', '2']));
    assert.deepEqual(topology.producers[0]?.routedQueues, [0, 1]);
  });
});

const ONE_URL = ['amqp://localhost'];

describe('dealing clients to threads', () => {
  it('puts the producer and the consumer of a 1 → 1 run on different threads', () => {
    const groups = dealClients(planTopology(options([])), 2, ONE_URL);
    assert.equal(groups.length, 2);
    assert.deepEqual(groups.map((group) => [group.producers.length, group.consumers.length]), [[1, 0], [0, 1]]);
  });

  it('gives each of two threads two producers and two consumers in a 4 → 4 run', () => {
    const groups = dealClients(planTopology(options(['-x', '4', '-y', '4', '--queues', '4'])), 2, ONE_URL);
    assert.deepEqual(groups.map((group) => [group.producers.length, group.consumers.length]), [[2, 2], [2, 2]]);
  });

  it('deals every client exactly once and never makes more groups than clients', () => {
    const topology = planTopology(options(['-x', '3', '-y', '5', '--queues', '2', '--threads', '4']));
    const groups = dealClients(topology, 4, ONE_URL);
    assert.equal(groups.length, 4);
    const clients = groups.flatMap((group) => [...group.producers, ...group.consumers].map((client) => client.client)).sort((a, b) => a - b);
    assert.deepEqual(clients, [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.equal(dealClients(planTopology(options(['-y', '0'])), 2, ONE_URL).length, 1);
  });

  it('spreads the producers\' fixed-rate schedules evenly over one interval', () => {
    const groups = dealClients(planTopology(options(['-x', '4', '-y', '0', '--threads', '2'])), 2, ONE_URL);
    const offsets = groups.flatMap((group) => group.producers.map((producer) => producer.scheduleOffset)).sort((a, b) => a - b);
    assert.deepEqual(offsets, [0, 0.25, 0.5, 0.75]);
  });

  it('sends every client to the one URL of a single broker', () => {
    const groups = dealClients(planTopology(options(['-x', '2', '-y', '2'])), 2, ONE_URL);
    const urls = groups.flatMap((group) => [...group.producers, ...group.consumers].map((client) => client.url));
    assert.deepEqual(new Set(urls), new Set(ONE_URL));
  });
});

describe('spreading clients over a cluster\'s nodes', () => {
  const nodes = ['amqp://n1', 'amqp://n2', 'amqp://n3'];

  it('puts the producer and the consumer of a 1 → 1 run on different nodes', () => {
    assert.equal(urlOfClient(nodes, 0), 'amqp://n1');
    assert.equal(urlOfClient(nodes, 1), 'amqp://n2');
  });

  it('deals clients round-robin over the nodes, producers first, then consumers', () => {
    const groups = dealClients(planTopology(options(['-x', '2', '-y', '3'])), 2, nodes);
    const byClient = new Map(groups.flatMap((group) => [...group.producers, ...group.consumers]).map((client) => [client.client, client.url]));
    assert.deepEqual([0, 1, 2, 3, 4].map((client) => byClient.get(client)), ['amqp://n1', 'amqp://n2', 'amqp://n3', 'amqp://n1', 'amqp://n2']);
  });

  it('refuses an empty URL list rather than connect nowhere', () => {
    assert.throws(() => urlOfClient([], 0), RangeError);
  });
});
