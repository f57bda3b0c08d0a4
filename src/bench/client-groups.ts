// How clients are dealt to worker threads: one group (one long Piscina task) per thread.
import type { ConsumerSpec, ProducerSpec } from './group-task.js';
import type { Topology } from './topology.js';

export interface ClientGroup {
  readonly producers: readonly ProducerSpec[];
  readonly consumers: readonly ConsumerSpec[];
}

/**
 * The node client k connects to: round-robin over the broker's URLs in client order (producers
 * first, then consumers), so with one producer and one consumer on a cluster they sit on
 * different nodes, and N clients spread evenly over the nodes.
 */
export function urlOfClient(urls: readonly string[], client: number): string {
  const url = urls[client % urls.length];
  if (url === undefined) throw new RangeError(`no URL for client ${client}: the URL list is empty`);
  return url;
}

/**
 * Deals clients in the order p0, p1, …, c0, c1, … round-robin over the groups: a 1→1 run on
 * two threads puts producer and consumer on different threads, and 4→4 gives each thread two
 * of each, so no thread holds all the (CPU-hungry, unlimited-rate) producers.
 */
export function dealClients(topology: Topology, threads: number, urls: readonly string[]): ClientGroup[] {
  const dealt: Array<ProducerSpec | ConsumerSpec> = [
    ...topology.producers.map((producer, index) => ({
      client: producer.client,
      url: urlOfClient(urls, producer.client),
      exchange: topology.exchange,
      routingKey: producer.routingKey,
      scheduleOffset: index / topology.producers.length,
    })),
    ...topology.consumers.map((consumer) => ({ client: consumer.client, url: urlOfClient(urls, consumer.client), queue: consumer.queue })),
  ];
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
