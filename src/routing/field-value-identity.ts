// Exact equality of field values, as RabbitMQ compares binding arguments: two bindings that
// differ only in arguments are different bindings, and a value's type is part of it
// ({long, 1} and {signedint, 1} differ). Tables compare regardless of key order, as
// RabbitMQ sorts binding arguments before storing them.
import type { FieldTable, FieldValue } from '../amqp/field-table.js';

export function fieldValueEquals(a: FieldValue, b: FieldValue): boolean {
  switch (a.type) {
    case 't':
      return b.type === 't' && a.value === b.value;
    case 'b': case 'B': case 's': case 'u': case 'I': case 'i':
      return b.type === a.type && a.value === b.value;
    case 'f': case 'd':
      return (b.type === 'f' || b.type === 'd') && b.type === a.type && sameFloat(a.value, b.value);
    case 'l': case 'T':
      return (b.type === 'l' || b.type === 'T') && b.type === a.type && sameInteger(a.value, b.value);
    case 'D':
      return b.type === 'D' && a.value.scale === b.value.scale && a.value.digits === b.value.digits;
    case 'S':
      return b.type === 'S' && sameLongstr(a, b);
    case 'x':
      return b.type === 'x' && a.value.equals(b.value);
    case 'A':
      return b.type === 'A' && fieldArrayEquals(a.value, b.value);
    case 'F':
      return b.type === 'F' && fieldTableEquals(a.value, b.value);
    case 'V':
      return b.type === 'V';
  }
}

export function fieldTableEquals(a: FieldTable, b: FieldTable): boolean {
  if (a === b) return true;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const key of keys) {
    const va = a[key];
    const vb = Object.hasOwn(b, key) ? b[key] : undefined;
    if (va === undefined || vb === undefined || !fieldValueEquals(va, vb)) return false;
  }
  return true;
}

function fieldArrayEquals(a: readonly FieldValue[], b: readonly FieldValue[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const va = a[i];
    const vb = b[i];
    if (va === undefined || vb === undefined || !fieldValueEquals(va, vb)) return false;
  }
  return true;
}

type Longstr = Extract<FieldValue, { type: 'S' }>;

/** The octets of a longstr: kept in `raw` by the decoder when they are not UTF-8. */
export function longstrBytes(v: Longstr): Buffer {
  return v.raw ?? Buffer.from(v.value, 'utf8');
}

function sameLongstr(a: Longstr, b: Longstr): boolean {
  if (a.raw === undefined && b.raw === undefined) return a.value === b.value;
  return longstrBytes(a).equals(longstrBytes(b));
}

/** NaN cannot come from RabbitMQ's decoder; treating it as equal to itself keeps identity reflexive. */
export function sameFloat(a: number, b: number): boolean {
  return a === b || (Number.isNaN(a) && Number.isNaN(b));
}

/** 64-bit values may be decoded as number or bigint; equal when numerically equal. */
export function sameInteger(a: number | bigint, b: number | bigint): boolean {
  if (typeof a === typeof b) return a === b;
  // Mixed: == compares a bigint and a number by value, without precision loss.
  return a == b;
}

/** A string that is equal for two values exactly when fieldValueEquals holds. */
export function fieldValueIdentity(value: FieldValue): string {
  return JSON.stringify(canonicalValue(value));
}

/**
 * A string that is equal for two tables exactly when fieldTableEquals holds: used as part of a
 * binding's identity so lookups are one Map probe instead of a scan.
 */
export function fieldTableIdentity(table: FieldTable): string {
  const keys = Object.keys(table);
  if (keys.length === 0) return '{}';
  return JSON.stringify(canonicalTable(table));
}

type Canonical = string | number | boolean | null | Canonical[];

function canonicalTable(table: FieldTable): Canonical[] {
  const keys = Object.keys(table).sort();
  const out: Canonical[] = [];
  for (const key of keys) {
    const value = table[key];
    if (value !== undefined) out.push([key, ...canonicalValue(value)]);
  }
  return out;
}

function canonicalValue(v: FieldValue): [string, Canonical] {
  switch (v.type) {
    case 't':
      return [v.type, v.value];
    case 'b': case 'B': case 's': case 'u': case 'I': case 'i':
      return [v.type, integerText(v.value)];
    case 'f': case 'd':
      // String() spells every double uniquely (and -0 as "0", which === also equates).
      return [v.type, String(v.value)];
    case 'l': case 'T':
      return [v.type, integerText(v.value)];
    case 'D':
      return [v.type, [v.value.scale, integerText(v.value.digits)]];
    case 'S':
      // Non-UTF-8 octets cannot collide with text: they are spelled in hex under another tag.
      return v.raw === undefined ? [v.type, v.value] : ['S#', v.raw.toString('hex')];
    case 'x':
      return [v.type, v.value.toString('hex')];
    case 'A':
      return [v.type, v.value.map((item) => canonicalValue(item))];
    case 'F':
      return [v.type, canonicalTable(v.value)];
    case 'V':
      return [v.type, null];
  }
}

/** The same text for a number and a bigint of equal value (String(1e21) is "1e+21"). */
export function integerText(value: number | bigint): string {
  if (typeof value === 'bigint') return value.toString();
  if (Number.isInteger(value) && !Number.isSafeInteger(value)) return BigInt(value).toString();
  return String(value);
}
