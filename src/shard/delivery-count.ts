/**
 * x-delivery-count, the header RabbitMQ's quorum queues put on a message they hand out:
 * how many times it came back (nack/reject with requeue, a consumer or channel gone). A
 * consumer sees it from the first redelivery on; basic.get always carries it (0 the first
 * time), as rabbit_fifo_client does in RabbitMQ 3.10.
 */
import { peekHeaders, withHeaders } from '../amqp/content-header.js';
import type { FieldTable } from '../amqp/field-table.js';
import { payloadLayout } from '../ring/shard-records.js';

/** A copy of the payload whose headers carry x-delivery-count = returnCount (the stored payload is unchanged). */
export function withDeliveryCount(payload: Buffer, returnCount: number): Buffer {
  const layout = payloadLayout(payload);
  const props = payload.subarray(layout.propsStart, layout.propsEnd);
  const headers: FieldTable = Object.assign(Object.create(null) as FieldTable, peekHeaders(props) ?? {});
  headers['x-delivery-count'] = { type: 'l', value: returnCount };
  const newProps = withHeaders(props, headers);
  const out = Buffer.allocUnsafe(layout.exRkEnd + 4 + newProps.length + (payload.length - layout.propsEnd));
  payload.copy(out, 0, 0, layout.exRkEnd);
  out.writeUInt32LE(newProps.length, layout.exRkEnd);
  newProps.copy(out, layout.propsStart);
  payload.copy(out, layout.propsStart + newProps.length, layout.propsEnd);
  return out;
}
