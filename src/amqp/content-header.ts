// Content header frames and basic properties. Layouts are drawn in constants.ts.
//
// The broker forwards `propertyBytes` (flags word(s) + property list) untouched; the
// peeks read one property without building the object, and withHeaders /
// withoutExpiration splice one property, leaving every other octet as it was.
import assert from 'node:assert/strict';
import { AmqpError } from './errors.js';
import type { FieldTable } from './field-table.js';
import { decodeTable, encodedTableBytes, skipTable, writeTable } from './field-table.js';
import { BasicPropertyFlag, basicPropertySpecs } from './spec.generated.js';
import { contentHeaderPrefixBytes, propertyFlagsBytes, propertyFlagsContinuation } from './constants.js';
import { textAt } from './text.js';

export interface BasicProperties {
  contentType?: string;
  contentEncoding?: string;
  headers?: FieldTable;
  deliveryMode?: number;
  priority?: number;
  correlationId?: string;
  replyTo?: string;
  expiration?: string;
  messageId?: string;
  /** seconds since the epoch; values past 2^53 are rounded (the octets stay exact in propertyBytes) */
  timestamp?: number;
  type?: string;
  userId?: string;
  appId?: string;
  clusterId?: string;
}

export interface ContentHeader {
  classId: number;
  weight: number;
  bodySize: number;
  /** a view into the frame payload: copy it to keep it past the frame callback */
  propertyBytes: Buffer;
}

const frameError = 501;
const shortstrMaxBytes = 255;
const twoTo32 = 0x1_0000_0000;
const safeHighWordMax = 0x1f_ffff;
/** Flag bits of the first word that name properties (bits 15..2); bit 1 is reserved. */
const knownFlagsMask = 0xfffc;

function headerError(explanation: string): AmqpError {
  return AmqpError.of(frameError, explanation);
}

function propertiesError(explanation: string): AmqpError {
  return AmqpError.of(frameError, `cannot decode content properties: ${explanation}`, 60, 0);
}

/** Splits a content header frame payload; throws 501 when it is too short or the body size is not a safe integer. */
export function decodeContentHeader(payload: Buffer): ContentHeader {
  if (payload.length < contentHeaderPrefixBytes + propertyFlagsBytes) {
    throw headerError(`content header of ${payload.length} octets is shorter than ${contentHeaderPrefixBytes + propertyFlagsBytes}`);
  }
  const high = payload.readUInt32BE(4);
  const low = payload.readUInt32BE(8);
  if (high > safeHighWordMax) {
    throw headerError(`content body size ${(BigInt(high) << 32n) | BigInt(low)} exceeds 2^53-1`);
  }
  return {
    classId: payload.readUInt16BE(0),
    weight: payload.readUInt16BE(2),
    bodySize: high * twoTo32 + low,
    propertyBytes: payload.subarray(contentHeaderPrefixBytes),
  };
}

// ---------------------------------------------------------------- walking the property list

/** Offset of the property list, set by flagsOf (saves allocating a pair per call). */
let listStart = 0;

/**
 * Reads the flags word(s); returns the first word's property bits and sets listStart to
 * the offset of the property list. Continuation words may only carry no flags: the basic
 * class has 14 properties, so a set bit there names a property nobody can decode.
 */
function flagsOf(pb: Buffer): number {
  if (pb.length < propertyFlagsBytes) throw propertiesError('no property flags');
  const first = pb.readUInt16BE(0);
  let o = propertyFlagsBytes;
  let word = first;
  while ((word & propertyFlagsContinuation) !== 0) {
    if (o + propertyFlagsBytes > pb.length) throw propertiesError('property flags continuation past the end');
    word = pb.readUInt16BE(o);
    o += propertyFlagsBytes;
    if ((word & ~propertyFlagsContinuation) !== 0) throw propertiesError(`unknown property flags 0x${word.toString(16)}`);
  }
  listStart = o;
  return first & knownFlagsMask;
}

/** Offset just after the property at o of the given wire type; validates tables fully. */
function skipProperty(pb: Buffer, o: number, type: string): number {
  switch (type) {
    case 'shortstr': {
      if (o >= pb.length) throw propertiesError('shortstr past the end');
      const next = o + 1 + (pb[o] as number);
      if (next > pb.length) throw propertiesError('shortstr past the end');
      return next;
    }
    case 'octet':
      if (o + 1 > pb.length) throw propertiesError('octet past the end');
      return o + 1;
    case 'timestamp':
      if (o + 8 > pb.length) throw propertiesError('timestamp past the end');
      return o + 8;
    case 'table':
      return skipTable(pb, o, pb.length);
    default:
      throw new RangeError(`unknown property type ${type}`);
  }
}

/** Offset of the property with this flag, or -1 when absent. Properties before it are bounds-checked. */
function locate(pb: Buffer, flag: number): number {
  const flags = flagsOf(pb);
  if ((flags & flag) === 0) return -1;
  let o = listStart;
  for (const p of basicPropertySpecs) {
    if (p.flag === flag) return o;
    if ((flags & p.flag) !== 0) o = skipPropertyFast(pb, o, p.type);
  }
  return -1;
}

/** Like skipProperty, but a table ahead of the wanted property is only length-checked. */
function skipPropertyFast(pb: Buffer, o: number, type: string): number {
  if (type !== 'table') return skipProperty(pb, o, type);
  if (o + 4 > pb.length) throw propertiesError('headers past the end');
  const next = o + 4 + pb.readUInt32BE(o);
  if (next > pb.length) throw propertiesError('headers past the end');
  return next;
}

function shortstrAtProp(pb: Buffer, o: number): string {
  if (o >= pb.length || o + 1 + (pb[o] as number) > pb.length) throw propertiesError('shortstr past the end');
  return textAt(pb, o + 1, pb[o] as number);
}

function timestampAt(pb: Buffer, o: number): number {
  if (o + 8 > pb.length) throw propertiesError('timestamp past the end');
  return pb.readUInt32BE(o) * twoTo32 + pb.readUInt32BE(o + 4);
}

// ---------------------------------------------------------------- peeks

/** delivery-mode, 0 when absent (2 = persistent). */
export function peekDeliveryMode(propertyBytes: Buffer): number {
  const o = locate(propertyBytes, BasicPropertyFlag.deliveryMode);
  if (o < 0) return 0;
  if (o >= propertyBytes.length) throw propertiesError('delivery-mode past the end');
  return propertyBytes[o] as number;
}

export function peekPriority(propertyBytes: Buffer): number | undefined {
  const o = locate(propertyBytes, BasicPropertyFlag.priority);
  if (o < 0) return undefined;
  if (o >= propertyBytes.length) throw propertiesError('priority past the end');
  return propertyBytes[o] as number;
}

export function peekExpiration(propertyBytes: Buffer): string | undefined {
  const o = locate(propertyBytes, BasicPropertyFlag.expiration);
  return o < 0 ? undefined : shortstrAtProp(propertyBytes, o);
}

export function peekHeaders(propertyBytes: Buffer): FieldTable | undefined {
  const o = locate(propertyBytes, BasicPropertyFlag.headers);
  if (o < 0) return undefined;
  return decodeTable(propertyBytes, o, propertyBytes.length).table;
}

export function peekTimestamp(propertyBytes: Buffer): number | undefined {
  const o = locate(propertyBytes, BasicPropertyFlag.timestamp);
  return o < 0 ? undefined : timestampAt(propertyBytes, o);
}

/** reply-to, undefined when absent; the flag is tested before anything is parsed (most publishes have none). */
export function peekReplyTo(propertyBytes: Buffer): string | undefined {
  if ((flagsOf(propertyBytes) & BasicPropertyFlag.replyTo) === 0) return undefined;
  const o = locate(propertyBytes, BasicPropertyFlag.replyTo);
  return o < 0 ? undefined : shortstrAtProp(propertyBytes, o);
}

export function peekUserId(propertyBytes: Buffer): string | undefined {
  const o = locate(propertyBytes, BasicPropertyFlag.userId);
  return o < 0 ? undefined : shortstrAtProp(propertyBytes, o);
}

/**
 * Checks the whole property list (headers table included, structurally) as
 * decodeProperties would, without building anything. Throws AmqpError 501.
 */
export function validateProperties(propertyBytes: Buffer): void {
  const flags = flagsOf(propertyBytes);
  let o = listStart;
  for (const p of basicPropertySpecs) {
    if ((flags & p.flag) !== 0) o = skipProperty(propertyBytes, o, p.type);
  }
  if (o !== propertyBytes.length) throw propertiesError(`${propertyBytes.length - o} octets after the last property`);
}

// ---------------------------------------------------------------- full decode / encode

export function decodeProperties(propertyBytes: Buffer): BasicProperties {
  const pb = propertyBytes;
  const flags = flagsOf(pb);
  let o = listStart;
  const p: BasicProperties = {};
  if (flags === 0) {
    if (o !== pb.length) throw propertiesError(`${pb.length - o} octets after the last property`);
    return p;
  }
  for (const spec of basicPropertySpecs) {
    if ((flags & spec.flag) === 0) continue;
    switch (spec.type) {
      case 'shortstr': {
        const s = shortstrAtProp(pb, o);
        o += 1 + (pb[o] as number);
        (p as Record<string, unknown>)[spec.name] = s;
        break;
      }
      case 'octet':
        if (o + 1 > pb.length) throw propertiesError(`${spec.name} past the end`);
        (p as Record<string, unknown>)[spec.name] = pb[o] as number;
        o += 1;
        break;
      case 'timestamp':
        p.timestamp = timestampAt(pb, o);
        o += 8;
        break;
      case 'table': {
        const { table, next } = decodeTable(pb, o, pb.length);
        p.headers = table;
        o = next;
        break;
      }
    }
  }
  if (o !== pb.length) throw propertiesError(`${pb.length - o} octets after the last property`);
  return p;
}

/** Flags word + property list. Throws RangeError on a shortstr over 255 bytes or an octet out of range. */
export function encodeProperties(p: BasicProperties): Buffer {
  const values = p as Record<string, unknown>;
  let bytes = propertyFlagsBytes;
  for (const spec of basicPropertySpecs) {
    const v = values[spec.name];
    if (v === undefined) continue;
    switch (spec.type) {
      case 'shortstr': {
        const n = Buffer.byteLength(v as string);
        if (n > shortstrMaxBytes) throw new RangeError(`${spec.name} of ${n} bytes exceeds ${shortstrMaxBytes}`);
        bytes += 1 + n;
        break;
      }
      case 'octet': bytes += 1; break;
      case 'timestamp': bytes += 8; break;
      case 'table': bytes += encodedTableBytes(v as FieldTable); break;
    }
  }
  const b = Buffer.allocUnsafe(bytes);
  let flags = 0;
  let o = propertyFlagsBytes;
  for (const spec of basicPropertySpecs) {
    const v = values[spec.name];
    if (v === undefined) continue;
    flags |= spec.flag;
    switch (spec.type) {
      case 'shortstr': {
        const n = (v as string).length === 0 ? 0 : b.write(v as string, o + 1);
        b[o] = n;
        o += 1 + n;
        break;
      }
      case 'octet': o = b.writeUInt8(v as number, o); break;
      case 'timestamp': {
        const t = v as number;
        if (!Number.isSafeInteger(t) || t < 0) throw new RangeError(`timestamp must be a safe non-negative integer, got ${t}`);
        const high = Math.floor(t / twoTo32);
        b.writeUInt32BE(high, o);
        o = b.writeUInt32BE(t - high * twoTo32, o + 4);
        break;
      }
      case 'table': o = writeTable(b, o, v as FieldTable); break;
    }
  }
  b.writeUInt16BE(flags, 0);
  return b;
}

// ---------------------------------------------------------------- splicing

/** Octet range [start, end) of the property with this flag (start = end = insertion point when absent). */
function rangeOf(pb: Buffer, flag: number): { start: number; end: number; present: boolean } {
  const flags = flagsOf(pb);
  let o = listStart;
  for (const p of basicPropertySpecs) {
    const present = (flags & p.flag) !== 0;
    if (p.flag === flag) return { start: o, end: present ? skipProperty(pb, o, p.type) : o, present };
    if (present) o = skipPropertyFast(pb, o, p.type);
  }
  throw new RangeError(`no basic property with flag 0x${flag.toString(16)}`);
}

/** The same properties with headers replaced (added if absent); every other octet unchanged. For dead-lettering. */
export function withHeaders(propertyBytes: Buffer, headers: FieldTable): Buffer {
  const r = rangeOf(propertyBytes, BasicPropertyFlag.headers);
  const tableBytes = encodedTableBytes(headers);
  const out = Buffer.allocUnsafe(propertyBytes.length - (r.end - r.start) + tableBytes);
  propertyBytes.copy(out, 0, 0, r.start);
  writeTable(out, r.start, headers);
  propertyBytes.copy(out, r.start + tableBytes, r.end);
  out.writeUInt16BE(propertyBytes.readUInt16BE(0) | BasicPropertyFlag.headers, 0);
  return out;
}

/** The same properties with reply-to set to replyTo (a shortstr, at most 255 bytes); every other octet unchanged. */
export function withReplyTo(propertyBytes: Buffer, replyTo: string): Buffer {
  const text = Buffer.from(replyTo);
  assert.ok(text.length <= 255, `reply-to of ${text.length} bytes does not fit a shortstr`);
  const r = rangeOf(propertyBytes, BasicPropertyFlag.replyTo);
  const out = Buffer.allocUnsafe(propertyBytes.length - (r.end - r.start) + 1 + text.length);
  propertyBytes.copy(out, 0, 0, r.start);
  out[r.start] = text.length;
  text.copy(out, r.start + 1);
  propertyBytes.copy(out, r.start + 1 + text.length, r.end);
  out.writeUInt16BE(propertyBytes.readUInt16BE(0) | BasicPropertyFlag.replyTo, 0);
  return out;
}

/** The same properties without expiration; every other octet unchanged. Returns the input when there is none. */
export function withoutExpiration(propertyBytes: Buffer): Buffer {
  const r = rangeOf(propertyBytes, BasicPropertyFlag.expiration);
  if (!r.present) return propertyBytes;
  const out = Buffer.allocUnsafe(propertyBytes.length - (r.end - r.start));
  propertyBytes.copy(out, 0, 0, r.start);
  propertyBytes.copy(out, r.start, r.end);
  out.writeUInt16BE(propertyBytes.readUInt16BE(0) & ~BasicPropertyFlag.expiration, 0);
  return out;
}
