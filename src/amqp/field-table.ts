// AMQP field tables with RabbitMQ's type tags (its 0-9-1 errata, not the spec's list):
//
//   t bool (octet)   b int8    B uint8    s int16   u uint16   I int32   i uint32
//   l int64          f float32 d float64  D decimal (scale octet + uint32 digits)
//   S longstr        x bytes   A array    T timestamp (uint64)   F table   V void
//
// A table on the wire:  [u32 length][entry...]  entry = [u8 nameLen][name][tag][value]
// An array:             [u32 length][tag value...]
//
// Decoded values re-encode byte-exact, with these documented exceptions:
// - 'S' whose octets are not UTF-8 keeps them in `raw`; the encoder writes `raw` when present.
// - 'L' (RabbitMQ reads it as signed 64-bit like 'l') decodes to 'l' and re-encodes as 'l',
//   which is what RabbitMQ itself does.
// - 't' with an octet other than 0/1 is true and re-encodes as 1 (RabbitMQ: any non-zero).
// - a repeated name keeps the first value (RabbitMQ's lookups find the first); names that
//   are not UTF-8 become U+FFFD; NaN payload bits of 'f'/'d' may be canonicalised.
// Tables are objects with a null prototype, so a '__proto__' name is an ordinary key.
import { AmqpError } from './errors.js';
import { internedTextAt, isUtf8At, textAt } from './text.js';

export type FieldValue =
  | { type: 't'; value: boolean }
  | { type: 'b' | 'B' | 's' | 'u' | 'I' | 'i' | 'f' | 'd'; value: number }
  /** number when it is a safe integer, bigint otherwise */
  | { type: 'l' | 'T'; value: number | bigint }
  | { type: 'D'; value: { scale: number; digits: number } }
  /** raw: the octets, only when they are not valid UTF-8 (value then holds a lossy rendering) */
  | { type: 'S'; value: string; raw?: Buffer }
  | { type: 'x'; value: Buffer }
  | { type: 'A'; value: FieldValue[] }
  | { type: 'F'; value: FieldTable }
  | { type: 'V'; value: null };

export type FieldTable = Record<string, FieldValue>;
export type FieldType = FieldValue['type'];

const frameError = 501;
/** Deeper nesting of A/F is refused rather than risking the stack on hostile input. */
export const tableNestingMax = 64;
const shortstrMaxBytes = 255;
const twoTo32 = 0x1_0000_0000;

/** A new empty table (null prototype). */
export function emptyTable(): FieldTable {
  return Object.create(null) as FieldTable;
}

function tableError(explanation: string): AmqpError {
  return AmqpError.of(frameError, `cannot decode field table: ${explanation}`);
}

// ---------------------------------------------------------------- decode

/**
 * Decodes the length-prefixed table at buf[offset] without reading at or past end.
 * next is the offset after the table.
 */
export function decodeTable(buf: Buffer, offset: number, end: number): { table: FieldTable; next: number } {
  if (offset + 4 > end) throw tableError('length past the end');
  const len = buf.readUInt32BE(offset);
  if (len > end - offset - 4) throw tableError(`length ${len} past the end`);
  const next = offset + 4 + len;
  return { table: decodeTableEntries(buf, offset + 4, next), next };
}

/** Decodes the entries of a table that fill buf[start, end) exactly (no length prefix, as in AMQPLAIN). */
export function decodeTableEntries(buf: Buffer, start: number, end: number): FieldTable {
  return entriesAt(buf, start, end, 0);
}

// offset after the value last decoded by valueAt; saves allocating {value, next} per value
let valueEnd = 0;

function entriesAt(b: Buffer, start: number, end: number, depth: number): FieldTable {
  if (depth > tableNestingMax) throw tableError(`nested deeper than ${tableNestingMax}`);
  const t = emptyTable();
  let o = start;
  while (o < end) {
    const nameLen = b[o] as number;
    // the name and at least the tag must fit
    if (nameLen >= end - o - 1) throw tableError('field name past the end');
    const name = internedTextAt(b, o + 1, nameLen);
    o += 1 + nameLen;
    const v = valueAt(b, o, end, depth);
    o = valueEnd;
    if (t[name] === undefined) t[name] = v;
  }
  return t;
}

function arrayAt(b: Buffer, start: number, end: number, depth: number): FieldValue[] {
  if (depth > tableNestingMax) throw tableError(`nested deeper than ${tableNestingMax}`);
  const items: FieldValue[] = [];
  let o = start;
  while (o < end) {
    items.push(valueAt(b, o, end, depth));
    o = valueEnd;
  }
  return items;
}

function need(o: number, bytes: number, end: number, tag: number): void {
  if (o + bytes > end) throw tableError(`'${String.fromCharCode(tag)}' value past the end`);
}

/** Reads the tag at b[o] and its value; sets valueEnd. */
function valueAt(b: Buffer, o: number, end: number, depth: number): FieldValue {
  const tag = b[o] as number;
  o += 1;
  switch (tag) {
    case 0x53: { // S
      need(o, 4, end, tag);
      const len = b.readUInt32BE(o);
      if (len > end - o - 4) throw tableError(`'S' length ${len} past the end`);
      const s = o + 4;
      valueEnd = s + len;
      if (isUtf8At(b, s, s + len)) return { type: 'S', value: textAt(b, s, len) };
      return { type: 'S', value: b.toString('utf8', s, s + len), raw: Buffer.from(b.subarray(s, s + len)) };
    }
    case 0x49: need(o, 4, end, tag); valueEnd = o + 4; return { type: 'I', value: b.readInt32BE(o) };
    case 0x69: need(o, 4, end, tag); valueEnd = o + 4; return { type: 'i', value: b.readUInt32BE(o) };
    case 0x6c: // l
    case 0x4c: { // L
      need(o, 8, end, tag);
      valueEnd = o + 8;
      return { type: 'l', value: int64At(b, o) };
    }
    case 0x54: need(o, 8, end, tag); valueEnd = o + 8; return { type: 'T', value: uint64At(b, o) };
    case 0x74: need(o, 1, end, tag); valueEnd = o + 1; return { type: 't', value: b[o] !== 0 };
    case 0x62: need(o, 1, end, tag); valueEnd = o + 1; return { type: 'b', value: b.readInt8(o) };
    case 0x42: need(o, 1, end, tag); valueEnd = o + 1; return { type: 'B', value: b[o] as number };
    case 0x73: need(o, 2, end, tag); valueEnd = o + 2; return { type: 's', value: b.readInt16BE(o) };
    case 0x75: need(o, 2, end, tag); valueEnd = o + 2; return { type: 'u', value: b.readUInt16BE(o) };
    case 0x66: need(o, 4, end, tag); valueEnd = o + 4; return { type: 'f', value: b.readFloatBE(o) };
    case 0x64: need(o, 8, end, tag); valueEnd = o + 8; return { type: 'd', value: b.readDoubleBE(o) };
    case 0x44: // D
      need(o, 5, end, tag);
      valueEnd = o + 5;
      return { type: 'D', value: { scale: b[o] as number, digits: b.readUInt32BE(o + 1) } };
    case 0x78: { // x
      need(o, 4, end, tag);
      const len = b.readUInt32BE(o);
      if (len > end - o - 4) throw tableError(`'x' length ${len} past the end`);
      valueEnd = o + 4 + len;
      return { type: 'x', value: Buffer.from(b.subarray(o + 4, o + 4 + len)) };
    }
    case 0x46: { // F
      need(o, 4, end, tag);
      const len = b.readUInt32BE(o);
      if (len > end - o - 4) throw tableError(`'F' length ${len} past the end`);
      const stop = o + 4 + len;
      const table = entriesAt(b, o + 4, stop, depth + 1);
      valueEnd = stop;
      return { type: 'F', value: table };
    }
    case 0x41: { // A
      need(o, 4, end, tag);
      const len = b.readUInt32BE(o);
      if (len > end - o - 4) throw tableError(`'A' length ${len} past the end`);
      const stop = o + 4 + len;
      const items = arrayAt(b, o + 4, stop, depth + 1);
      valueEnd = stop;
      return { type: 'A', value: items };
    }
    case 0x56: valueEnd = o; return { type: 'V', value: null };
    default:
      throw tableError(`unknown field type tag ${tag} ('${String.fromCharCode(tag)}')`);
  }
}

function int64At(b: Buffer, o: number): number | bigint {
  const high = b.readInt32BE(o);
  const v = high * twoTo32 + b.readUInt32BE(o + 4);
  // exact whenever |high| < 2^21; past that, or at -2^53, it needs a bigint
  return Number.isSafeInteger(v) ? v : b.readBigInt64BE(o);
}

function uint64At(b: Buffer, o: number): number | bigint {
  const v = b.readUInt32BE(o) * twoTo32 + b.readUInt32BE(o + 4);
  return Number.isSafeInteger(v) ? v : b.readBigUInt64BE(o);
}

// ---------------------------------------------------------------- validate without building

/** Checks the length-prefixed table at b[offset] as decodeTable would, allocating nothing; returns the offset after it. */
export function skipTable(b: Buffer, offset: number, end: number): number {
  if (offset + 4 > end) throw tableError('length past the end');
  const len = b.readUInt32BE(offset);
  if (len > end - offset - 4) throw tableError(`length ${len} past the end`);
  skipEntries(b, offset + 4, offset + 4 + len, 0, true);
  return offset + 4 + len;
}

function skipEntries(b: Buffer, start: number, end: number, depth: number, named: boolean): void {
  if (depth > tableNestingMax) throw tableError(`nested deeper than ${tableNestingMax}`);
  let o = start;
  while (o < end) {
    if (named) {
      const nameLen = b[o] as number;
      if (nameLen >= end - o - 1) throw tableError('field name past the end');
      o += 1 + nameLen;
    }
    o = skipValue(b, o, end, depth);
  }
}

const fixedValueBytes = new Int8Array(128).fill(-1);
for (const [tag, bytes] of [['I', 4], ['i', 4], ['l', 8], ['L', 8], ['T', 8], ['t', 1], ['b', 1], ['B', 1], ['s', 2], ['u', 2], ['f', 4], ['d', 8], ['D', 5], ['V', 0]] as const) {
  fixedValueBytes[tag.charCodeAt(0)] = bytes;
}

function skipValue(b: Buffer, o: number, end: number, depth: number): number {
  const tag = b[o] as number;
  o += 1;
  const fixed = tag < 128 ? (fixedValueBytes[tag] as number) : -1;
  if (fixed >= 0) {
    need(o, fixed, end, tag);
    return o + fixed;
  }
  if (tag !== 0x53 && tag !== 0x78 && tag !== 0x46 && tag !== 0x41) {
    throw tableError(`unknown field type tag ${tag} ('${String.fromCharCode(tag)}')`);
  }
  need(o, 4, end, tag);
  const len = b.readUInt32BE(o);
  if (len > end - o - 4) throw tableError(`'${String.fromCharCode(tag)}' length ${len} past the end`);
  const stop = o + 4 + len;
  if (tag === 0x46) skipEntries(b, o + 4, stop, depth + 1, true);
  else if (tag === 0x41) skipEntries(b, o + 4, stop, depth + 1, false);
  return stop;
}

// ---------------------------------------------------------------- encode

/** Octets of the encoded table including its 4-octet length. */
export function encodedTableBytes(t: FieldTable): number {
  let n = 4;
  for (const name in t) {
    const v = t[name] as FieldValue;
    const nameBytes = Buffer.byteLength(name);
    if (nameBytes > shortstrMaxBytes) throw new RangeError(`field name of ${nameBytes} bytes exceeds ${shortstrMaxBytes}`);
    n += 1 + nameBytes + valueBytes(v);
  }
  return n;
}

/** The table with its 4-octet length prefix. */
export function encodeTable(t: FieldTable): Buffer {
  const b = Buffer.allocUnsafe(encodedTableBytes(t));
  writeTable(b, 0, t);
  return b;
}

/** Writes the table (length prefix, entries) at buf[offset]; returns the offset after it. buf must have encodedTableBytes(t) room. */
export function writeTable(buf: Buffer, offset: number, t: FieldTable): number {
  let o = offset + 4;
  for (const name in t) {
    const v = t[name] as FieldValue;
    const n = name.length === 0 ? 0 : buf.write(name, o + 1);
    if (n > shortstrMaxBytes) throw new RangeError(`field name of ${n} bytes exceeds ${shortstrMaxBytes}`);
    buf[o] = n;
    o = writeValue(buf, o + 1 + n, v);
  }
  // the length is back-filled so nested tables are measured once
  buf.writeUInt32BE(o - offset - 4, offset);
  return o;
}

function valueBytes(v: FieldValue): number {
  switch (v.type) {
    case 't': case 'b': case 'B': return 2;
    case 's': case 'u': return 3;
    case 'I': case 'i': case 'f': return 5;
    case 'l': case 'T': case 'd': return 9;
    case 'D': return 6;
    case 'V': return 1;
    case 'S': return 5 + (v.raw !== undefined ? v.raw.length : Buffer.byteLength(v.value));
    case 'x': return 5 + v.value.length;
    case 'F': return 1 + encodedTableBytes(v.value);
    case 'A': {
      let n = 5;
      for (const item of v.value) n += valueBytes(item);
      return n;
    }
    default:
      return unknownType(v);
  }
}

function unknownType(v: never): never {
  throw new RangeError(`unknown field type ${(v as { type: unknown }).type}`);
}

function writeValue(b: Buffer, o: number, v: FieldValue): number {
  b[o] = v.type.charCodeAt(0);
  o += 1;
  switch (v.type) {
    case 't': b[o] = v.value ? 1 : 0; return o + 1;
    case 'b': return b.writeInt8(v.value, o);
    case 'B': return b.writeUInt8(v.value, o);
    case 's': return b.writeInt16BE(v.value, o);
    case 'u': return b.writeUInt16BE(v.value, o);
    case 'I': return b.writeInt32BE(v.value, o);
    case 'i': return b.writeUInt32BE(v.value, o);
    case 'f': return b.writeFloatBE(v.value, o);
    case 'd': return b.writeDoubleBE(v.value, o);
    case 'l': return writeInt64(b, o, v.value);
    case 'T': return writeUint64(b, o, v.value);
    case 'D':
      b.writeUInt8(v.value.scale, o);
      return b.writeUInt32BE(v.value.digits, o + 1);
    case 'V': return o;
    case 'S': {
      if (v.raw !== undefined) {
        b.writeUInt32BE(v.raw.length, o);
        b.set(v.raw, o + 4);
        return o + 4 + v.raw.length;
      }
      const n = v.value.length === 0 ? 0 : b.write(v.value, o + 4);
      b.writeUInt32BE(n, o);
      return o + 4 + n;
    }
    case 'x':
      b.writeUInt32BE(v.value.length, o);
      b.set(v.value, o + 4);
      return o + 4 + v.value.length;
    case 'F': return writeTable(b, o, v.value);
    case 'A': {
      let p = o + 4;
      for (const item of v.value) p = writeValue(b, p, item);
      b.writeUInt32BE(p - o - 4, o);
      return p;
    }
    default:
      return unknownType(v);
  }
}

function writeInt64(b: Buffer, o: number, v: number | bigint): number {
  if (typeof v === 'bigint') return b.writeBigInt64BE(v, o);
  if (!Number.isSafeInteger(v)) throw new RangeError(`'l' needs a safe integer or a bigint, got ${v}`);
  const high = Math.floor(v / twoTo32);
  b.writeInt32BE(high, o);
  return b.writeUInt32BE(v - high * twoTo32, o + 4);
}

function writeUint64(b: Buffer, o: number, v: number | bigint): number {
  if (typeof v === 'bigint') return b.writeBigUInt64BE(v, o);
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`'T' needs a safe non-negative integer or a bigint, got ${v}`);
  const high = Math.floor(v / twoTo32);
  b.writeUInt32BE(high, o);
  return b.writeUInt32BE(v - high * twoTo32, o + 4);
}

// ---------------------------------------------------------------- JS conversions

/**
 * Plain JS values, e.g. for JSON: integers and floats -> number; 'l'/'T' bigints -> number
 * when safe else decimal string; 'D' -> number (digits / 10^scale); 'S' -> string (lossy
 * when raw); 'x' -> base64 string; 'A' -> array; 'F' -> object; 'V' -> null.
 */
export function tableToJs(t: FieldTable): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const name in t) {
    // defineProperty so a '__proto__' field stays data, not a prototype change
    Object.defineProperty(o, name, { value: valueToJs(t[name] as FieldValue), enumerable: true, writable: true, configurable: true });
  }
  return o;
}

export function valueToJs(v: FieldValue): unknown {
  switch (v.type) {
    case 'l':
    case 'T':
      return typeof v.value === 'bigint' ? bigintToJs(v.value) : v.value;
    case 'D':
      return v.value.digits / 10 ** v.value.scale;
    case 'x':
      return v.value.toString('base64');
    case 'A':
      return v.value.map(valueToJs);
    case 'F':
      return tableToJs(v.value);
    default:
      return v.value;
  }
}

function bigintToJs(v: bigint): number | string {
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : v.toString();
}

/**
 * Infers field types the way RabbitMQ's management API converts JSON: integers -> 'l',
 * other numbers -> 'd', strings -> 'S', booleans -> 't', arrays -> 'A', objects -> 'F',
 * null -> 'V'. Also: bigint -> 'l', Buffer/Uint8Array -> 'x', Date -> 'T' (seconds).
 * undefined entries are left out. Throws TypeError on other values.
 */
export function tableFromJs(o: Record<string, unknown>): FieldTable {
  const t = emptyTable();
  for (const name of Object.keys(o)) {
    const v = o[name];
    if (v === undefined) continue;
    t[name] = valueFromJs(v, name);
  }
  return t;
}

export function valueFromJs(v: unknown, path = 'value'): FieldValue {
  switch (typeof v) {
    case 'boolean':
      return { type: 't', value: v };
    case 'number':
      return Number.isSafeInteger(v) ? { type: 'l', value: v } : { type: 'd', value: v };
    case 'bigint':
      return { type: 'l', value: v };
    case 'string':
      return { type: 'S', value: v };
    case 'object': {
      if (v === null) return { type: 'V', value: null };
      if (Array.isArray(v)) return { type: 'A', value: v.map((item: unknown, i) => valueFromJs(item, `${path}[${i}]`)) };
      if (v instanceof Uint8Array) return { type: 'x', value: Buffer.from(v) };
      if (v instanceof Date) return { type: 'T', value: Math.floor(v.getTime() / 1000) };
      return { type: 'F', value: tableFromJs(v as Record<string, unknown>) };
    }
    default:
      throw new TypeError(`cannot convert ${typeof v} at ${path} to an AMQP field value`);
  }
}

// ---------------------------------------------------------------- readers for x-arguments

/** The value of any integer field type (b B s u I i l T) as a number; undefined for other types. Bigints past 2^53 come back rounded. */
export function fieldInt(v: FieldValue | undefined): number | undefined {
  if (v === undefined) return undefined;
  switch (v.type) {
    case 'b': case 'B': case 's': case 'u': case 'I': case 'i':
      return v.value;
    case 'l': case 'T':
      return Number(v.value);
    default:
      return undefined;
  }
}

/** The text of an 'S' field; undefined for other types. */
export function fieldString(v: FieldValue | undefined): string | undefined {
  return v !== undefined && v.type === 'S' ? v.value : undefined;
}

/** The value of a 't' field; undefined for other types. */
export function fieldBool(v: FieldValue | undefined): boolean | undefined {
  return v !== undefined && v.type === 't' ? v.value : undefined;
}

// ---------------------------------------------------------------- equality

/** Same type tag and same value (deep for A/F; 'S' compares octets; NaN equals NaN). */
export function fieldEquals(a: FieldValue, b: FieldValue): boolean {
  if (a.type !== b.type) return false;
  return sameValue(a, b);
}

const integerTypes: ReadonlySet<string> = new Set(['b', 'B', 's', 'u', 'I', 'i', 'l']);

/**
 * RabbitMQ's rule for "inequivalent arg" checks: integer types of any width compare by
 * value (it folds byte/short/signedint/long into one class), everything else as fieldEquals.
 */
export function fieldEquivalent(a: FieldValue, b: FieldValue): boolean {
  if (integerTypes.has(a.type) && integerTypes.has(b.type)) {
    // loose equality compares number and bigint by value
    // eslint-disable-next-line eqeqeq
    return (a.value as number | bigint) == (b.value as number | bigint);
  }
  return fieldEquals(a, b);
}

function sameValue(a: FieldValue, b: FieldValue): boolean {
  switch (a.type) {
    case 'l':
    case 'T':
      // eslint-disable-next-line eqeqeq
      return a.value == (b.value as number | bigint);
    case 'f':
    case 'd':
      return Object.is(a.value, b.value) || a.value === b.value;
    case 'D': {
      const d = b.value as { scale: number; digits: number };
      return a.value.scale === d.scale && a.value.digits === d.digits;
    }
    case 'S': {
      const bs = b as { value: string; raw?: Buffer };
      if (a.raw === undefined && bs.raw === undefined) return a.value === bs.value;
      return stringOctets(a).equals(stringOctets(bs));
    }
    case 'x':
      return a.value.equals(b.value as Buffer);
    case 'A': {
      const items = b.value as FieldValue[];
      if (a.value.length !== items.length) return false;
      for (let i = 0; i < items.length; i++) {
        if (!fieldEquals(a.value[i] as FieldValue, items[i] as FieldValue)) return false;
      }
      return true;
    }
    case 'F':
      return tablesEqual(a.value, b.value as FieldTable);
    default:
      return a.value === b.value;
  }
}

function stringOctets(v: { value: string; raw?: Buffer }): Buffer {
  return v.raw ?? Buffer.from(v.value);
}

/** Same names with fieldEquals values, in any order. */
export function tablesEqual(a: FieldTable, b: FieldTable): boolean {
  let count = 0;
  for (const name in a) {
    const other = b[name];
    if (other === undefined || !fieldEquals(a[name] as FieldValue, other)) return false;
    count++;
  }
  for (const _ in b) count--;
  return count === 0;
}
