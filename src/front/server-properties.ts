import type { FieldTable } from '../amqp/field-table.js';
import type { BrokerConfig } from './broker-config.js';
import { warrenVersion } from '../node/version.js';

const bool = (value: boolean) => ({ type: 't' as const, value });
const str = (value: string) => ({ type: 'S' as const, value });

/** connection.start server-properties: the capabilities RabbitMQ advertises and clients look for. */
export function serverProperties(config: BrokerConfig): FieldTable {
  const capabilities: FieldTable = {
    publisher_confirms: bool(true),
    exchange_exchange_bindings: bool(true),
    'basic.nack': bool(true),
    consumer_cancel_notify: bool(true),
    'connection.blocked': bool(true),
    consumer_priorities: bool(true),
    authentication_failure_close: bool(true),
    per_consumer_qos: bool(true),
    direct_reply_to: bool(true),
  };
  return {
    capabilities: { type: 'F', value: capabilities },
    cluster_name: str(config.clusterName),
    copyright: str('Copyright (c) the warren authors'),
    information: str('Licensed under the MIT license. See https://www.rabbitmq.com/ for protocol documentation.'),
    platform: str(`Node.js ${process.version}`),
    product: str('warren'),
    version: str(warrenVersion),
  };
}
