/**
 * RabbitMQ's sender-selected distribution: the CC and BCC headers of a publish (arrays of
 * longstr) add routing keys to the one in basic.publish, and BCC is taken out of the message
 * before it is stored or delivered (so receivers do not see it).
 */
import { AmqpError } from '../amqp/errors.js';
import { peekHeaders, withHeaders } from '../amqp/content-header.js';
import type { FieldTable, FieldValue } from '../amqp/field-table.js';
import { ReplyCode } from '../amqp/spec.generated.js';
import { buildPayload } from '../ring/shard-records.js';
import { typeNames } from './queue-args.js';

/** The header keys as they appear in an encoded table (shortstr length octet + name): a cheap pre-check. */
const ccKeyBytes = Buffer.from('\x02CC', 'latin1');
const bccKeyBytes = Buffer.from('\x03BCC', 'latin1');

export interface SenderSelected {
  /** The publish's routing key first, then the CC and BCC entries. */
  routingKeys: string[];
  /** The message payload, rebuilt without BCC when it had one. */
  payload: Buffer;
  propsStart: number;
  propsEnd: number;
}

/** undefined (the common case, found without decoding) when the message has neither CC nor BCC. */
export function senderSelected(exchange: string, routingKey: string, payload: Buffer, propsStart: number, propsEnd: number): SenderSelected | undefined {
  const props = payload.subarray(propsStart, propsEnd);
  if (props.indexOf(ccKeyBytes) < 0 && props.indexOf(bccKeyBytes) < 0) return undefined;
  const headers = peekHeaders(props);
  const cc = headers?.['CC'];
  const bcc = headers?.['BCC'];
  if (headers === undefined || (cc === undefined && bcc === undefined)) return undefined;
  const routingKeys = [routingKey, ...routes('CC', cc), ...routes('BCC', bcc)];
  if (bcc === undefined) return { routingKeys, payload, propsStart, propsEnd };
  const kept: FieldTable = Object.create(null) as FieldTable;
  for (const [k, v] of Object.entries(headers)) if (k !== 'BCC') kept[k] = v;
  const newProps = withHeaders(props, kept);
  const rebuilt = buildPayload(exchange, routingKey, newProps, payload.subarray(propsEnd));
  return { routingKeys, payload: rebuilt, propsStart, propsEnd: propsStart + newProps.length };
}

/** The longstr entries of a CC/BCC array; any other header type is refused as RabbitMQ refuses it. */
function routes(name: string, v: FieldValue | undefined): string[] {
  if (v === undefined) return [];
  if (v.type !== 'A') {
    throw new AmqpError(ReplyCode.preconditionFailed, `PRECONDITION_FAILED - invalid message: {unacceptable_type_in_header,"${name}",${typeNames[v.type] ?? v.type}}`, 60, 40);
  }
  const out: string[] = [];
  for (const e of v.value) if (e.type === 'S') out.push(e.value);
  return out;
}
