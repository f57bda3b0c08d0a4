// The x-match argument of a headers-exchange binding (rabbit_exchange_type_headers).
import type { FieldTable } from '../amqp/field-table.js';
import { ERLANG_TYPE_NAMES, erlangBinaryText, erlangValueText } from './erlang-term-text.js';
import { longstrBytes } from './field-value-identity.js';

export const X_MATCH = 'x-match';
export type XMatchMode = 'all' | 'any' | 'all-with-x' | 'any-with-x';
const X_MATCH_MODES: ReadonlySet<string> = new Set<XMatchMode>(['all', 'any', 'all-with-x', 'any-with-x']);

function isXMatchMode(text: string): text is XMatchMode {
  return X_MATCH_MODES.has(text);
}

/**
 * undefined when the arguments are acceptable for a headers binding; otherwise RabbitMQ's
 * explanation, which the caller sends as a 406 PRECONDITION_FAILED channel close with reply
 * text `PRECONDITION_FAILED - ${text}`.
 */
export function validateHeadersBindingArgs(args: FieldTable): string | undefined {
  const xMatch = Object.hasOwn(args, X_MATCH) ? args[X_MATCH] : undefined;
  if (xMatch === undefined) return undefined; // omitting it means 'all'
  if (xMatch.type === 'S') {
    if (xMatch.raw === undefined && isXMatchMode(xMatch.value)) return undefined;
    return `Invalid x-match field value ${erlangBinaryText(longstrBytes(xMatch))}; ` +
      'expected all, any, all-with-x, or any-with-x';
  }
  return `Invalid x-match field type ${ERLANG_TYPE_NAMES[xMatch.type]} (value ${erlangValueText(xMatch)}); ` +
    'expected longstr';
}

/** The mode a binding matches with. Anything unrecognised is 'all', as RabbitMQ does for bindings made before it validated. */
export function xMatchMode(args: FieldTable): XMatchMode {
  const xMatch = Object.hasOwn(args, X_MATCH) ? args[X_MATCH] : undefined;
  if (xMatch?.type === 'S' && xMatch.raw === undefined && isXMatchMode(xMatch.value)) return xMatch.value;
  return 'all';
}
