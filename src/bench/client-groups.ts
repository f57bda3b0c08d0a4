// How clients are dealt to worker threads: one group (one long Piscina task) per thread.
import type { ConsumerSpec, ProducerSpec } from './group-task.js';
import type { Topology } from './topology.js';

export interface ClientGroup {
  readonly producers: readonly ProducerSpec[];
  readonly consumers: readonly ConsumerSpec[];
}

/**
 * Deals clients in the order p0, c0, p1, c1, … round-robin over the groups, so with two
 * threads a 1→1 run puts the producer and the consumer on different threads.
 */
export function dealClients(topology: Topology, threads: number): ClientGroup[] {
  const dealt: Array<ProducerSpec | ConsumerSpec> = [];
  const pairs = Math.max(topology.producers.length, topology.consumers.length);
  for (let index = 0; index < pairs; index++) {
    const producer = topology.producers[index];
    if (producer !== undefined) {
      dealt.push({ client: producer.client, exchange: topology.exchange, routingKey: producer.routingKey, scheduleOffset: index / topology.producers.length });
    }
    const consumer = topology.consumers[index];
    if (consumer !== undefined) dealt.push({ client: consumer.client, queue: consumer.queue });
  }
  const groupCount = Math.max(1, Math.min(threads, dealt.length));
  const groups = Array.from({ length: groupCount }, () => ({ producers: [] as ProducerSpec[], consumers: [] as ConsumerSpec[] }));
  dealt.forEach((client, index) => {
    const group = groups[index % groupCount];
    if (group === undefined) return;
    if ('routingKey' in client) group.producers.push(client);
    else group.consumers.push(client);
  });
  return groups;
}
