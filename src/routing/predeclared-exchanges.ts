// The exchanges every virtual host starts with (RabbitMQ's rabbit_vhost:do_add).
import type { FieldTable } from '../amqp/field-table.js';
import type { ExchangeDef, ExchangeType } from './types.js';

export const DEFAULT_EXCHANGE = '';

const PREDECLARED: ReadonlyArray<readonly [name: string, type: ExchangeType, internal: boolean]> = [
  [DEFAULT_EXCHANGE, 'direct', false],
  ['amq.direct', 'direct', false],
  ['amq.fanout', 'fanout', false],
  ['amq.topic', 'topic', false],
  ['amq.headers', 'headers', false], // the name in the 0-9-1 XML spec
  ['amq.match', 'headers', false], // the name in the 0-9-1 PDF spec
  ['amq.rabbitmq.trace', 'topic', true], // firehose tracer's target; internal, as in RabbitMQ
];

export function predeclaredExchanges(): ExchangeDef[] {
  return PREDECLARED.map(([name, type, internal]) => ({
    // Null prototype, as the codec's tables: a lookup of 'constructor' finds nothing.
    name, type, durable: true, autoDelete: false, internal, arguments: Object.create(null) as FieldTable,
  }));
}
