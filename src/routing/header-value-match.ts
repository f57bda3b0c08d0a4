// How a headers exchange compares a binding value with a message header value.
//
// RabbitMQ 3.13+/4.x (rabbit_exchange_type_headers:match/2) compares the values with =:= after
// dropping their AMQP type tags. So every integer type (byte … long, and timestamp) is one
// class compared by value, float and double are another (an integer never equals a float),
// longstr and byte array are compared as bytes, booleans, decimals, and arrays and tables
// compare exactly, inner type tags included. A void binding value means "header present"
// and is handled by the caller, never by these functions.
//
// One deliberate difference: RabbitMQ 4.x scales a timestamp *header* to milliseconds before
// comparing (mc_amqpl:routing_value), so a timestamp binding can never match the same timestamp
// in a header; warren compares the seconds as sent, as RabbitMQ up to 3.12 did.
import type { FieldValue } from '../amqp/field-table.js';
import { fieldValueEquals, fieldValueIdentity, integerText, longstrBytes, sameFloat, sameInteger } from './field-value-identity.js';

export function headerValueMatches(bindingValue: FieldValue, headerValue: FieldValue): boolean {
  switch (bindingValue.type) {
    case 'b': case 'B': case 's': case 'u': case 'I': case 'i': case 'l': case 'T':
      return isIntegerValue(headerValue) && sameInteger(bindingValue.value, headerValue.value);
    case 'f': case 'd':
      return (headerValue.type === 'f' || headerValue.type === 'd') && sameFloat(bindingValue.value, headerValue.value);
    case 'S':
      if (headerValue.type === 'S') return fieldValueEquals(bindingValue, headerValue);
      return headerValue.type === 'x' && headerValue.value.equals(longstrBytes(bindingValue));
    case 'x':
      if (headerValue.type === 'x') return bindingValue.value.equals(headerValue.value);
      return headerValue.type === 'S' && bindingValue.value.equals(longstrBytes(headerValue));
    case 't': case 'D': case 'A': case 'F': case 'V':
      return fieldValueEquals(bindingValue, headerValue);
  }
}

/** Octets that are valid UTF-8 get the key of the longstr holding the same text. */
function bytesKey(bytes: Buffer): string {
  const text = bytes.toString('utf8');
  return Buffer.from(text, 'utf8').equals(bytes) ? 'b:' + text : 'x:' + bytes.toString('hex');
}

type IntegerValue = Extract<FieldValue, { type: 'b' | 'B' | 's' | 'u' | 'I' | 'i' | 'l' | 'T' }>;

function isIntegerValue(v: FieldValue): v is IntegerValue {
  switch (v.type) {
    case 'b': case 'B': case 's': case 'u': case 'I': case 'i': case 'l': case 'T':
      return true;
    default:
      return false;
  }
}

/**
 * A string equal for two values exactly when headerValueMatches holds between them, so the
 * headers matcher can find candidate bindings by (header name, value) with one Map probe.
 */
export function headerValueKey(v: FieldValue): string {
  switch (v.type) {
    case 'b': case 'B': case 's': case 'u': case 'I': case 'i': case 'l': case 'T':
      return 'i:' + integerText(v.value);
    case 'f': case 'd':
      return 'f:' + String(v.value);
    case 'S':
      return v.raw === undefined ? 'b:' + v.value : bytesKey(v.raw);
    case 'x':
      return bytesKey(v.value);
    case 't': case 'D': case 'A': case 'F': case 'V':
      return '=' + fieldValueIdentity(v);
  }
}
