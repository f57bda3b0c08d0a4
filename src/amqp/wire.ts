// Field readers and writers shared by the generated method codec (spec.generated.ts).
// Readers throw AmqpError on bad input from the peer; writers assert (RangeError) on
// values the broker itself got wrong, after the caller sized the buffer.
import { AmqpError, octetsSnippet } from './errors.js';
import type { FieldTable } from './field-table.js';
import { decodeTableEntries, encodedTableBytes, writeTable } from './field-table.js';
import { internedTextAt, isUtf8At } from './text.js';

const frameError = 501;
const syntaxError = 502;
const shortstrMaxBytes = 255;
const twoTo32 = 0x1_0000_0000;
/** Largest high word of a longlong that still gives a safe integer (2^53 - 1). */
const safeHighWordMax = 0x1f_ffff;

/** The error RabbitMQ gives when a method's arguments do not match its layout. */
export function fieldsError(id: number, b: Buffer, start: number, end: number): AmqpError {
  return AmqpError.of(frameError, `cannot decode ${octetsSnippet(b, start, end)}`, id >>> 16, id & 0xffff);
}

export function shortstrAt(b: Buffer, start: number, len: number): string {
  return internedTextAt(b, start, len);
}

/** A shortstr that must be UTF-8, as RabbitMQ asserts for names outside the publish path. */
export function utf8ShortstrAt(b: Buffer, start: number, len: number, id: number): string {
  if (!isUtf8At(b, start, start + len)) {
    throw AmqpError.of(frameError, 'Malformed UTF-8 in shortstr', id >>> 16, id & 0xffff);
  }
  return internedTextAt(b, start, len);
}

/** An unsigned 64-bit field as a number; past 2^53-1 it cannot be exact, so it is refused. */
export function longlongAt(b: Buffer, o: number, id: number): number {
  const high = b.readUInt32BE(o);
  const low = b.readUInt32BE(o + 4);
  if (high > safeHighWordMax) {
    const value = (BigInt(high) << 32n) | BigInt(low);
    throw AmqpError.of(syntaxError, `longlong ${value} exceeds 2^53-1`, id >>> 16, id & 0xffff);
  }
  return high * twoTo32 + low;
}

/** The table field at b[o] (4-octet length, then entries), checked against end. */
export function decodeMethodTable(b: Buffer, o: number, end: number, id: number): FieldTable {
  if (o + 4 > end) throw fieldsError(id, b, o, end);
  const len = b.readUInt32BE(o);
  if (len > end - o - 4) throw fieldsError(id, b, o, end);
  try {
    return decodeTableEntries(b, o + 4, o + 4 + len);
  } catch (err) {
    if (err instanceof AmqpError) throw err.withMethod(id);
    throw err;
  }
}

// ---- writers ----

/** Octets of a shortstr including its length octet. */
export function shortstrBytes(s: string): number {
  const n = Buffer.byteLength(s);
  if (n > shortstrMaxBytes) throw new RangeError(`shortstr of ${n} bytes exceeds ${shortstrMaxBytes}: ${s.slice(0, 40)}...`);
  return 1 + n;
}

export function writeShortstr(b: Buffer, o: number, s: string): number {
  const n = s.length === 0 ? 0 : b.write(s, o + 1);
  if (n > shortstrMaxBytes) throw new RangeError(`shortstr of ${n} bytes exceeds ${shortstrMaxBytes}`);
  b[o] = n;
  return o + 1 + n;
}

export function longstrBytes(s: string): number {
  return 4 + Buffer.byteLength(s);
}

export function writeLongstr(b: Buffer, o: number, s: string): number {
  const n = s.length === 0 ? 0 : b.write(s, o + 4);
  b.writeUInt32BE(n, o);
  return o + 4 + n;
}

export function octetsBytes(v: Uint8Array): number {
  return 4 + v.length;
}

export function writeOctets(b: Buffer, o: number, v: Uint8Array): number {
  b.writeUInt32BE(v.length, o);
  b.set(v, o + 4);
  return o + 4 + v.length;
}

export function tableBytes(t: FieldTable): number {
  return encodedTableBytes(t);
}

export function writeTableField(b: Buffer, o: number, t: FieldTable): number {
  return writeTable(b, o, t);
}

/** Unsigned 64-bit from a safe non-negative integer (delivery tags, timestamps). */
export function writeLonglong(b: Buffer, o: number, v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`longlong must be a safe non-negative integer, got ${v}`);
  const high = Math.floor(v / twoTo32);
  b.writeUInt32BE(high, o);
  b.writeUInt32BE(v - high * twoTo32, o + 4);
  return o + 8;
}
