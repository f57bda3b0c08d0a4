// Turning wire octets into strings. Names on the hot path (exchange, routing key, queue,
// consumer tag, table field names) repeat from message to message, so short ones are
// interned: a hit costs a hash and a compare over the octets and allocates nothing,
// where decoding calls into native code and allocates a string each time.
import { isUtf8 } from 'node:buffer';

/** Longest name that is interned; longer ones are decoded each time. */
const internMaxBytes = 48;
/** Direct-mapped slots (a power of two); a collision just replaces the slot. */
const internSlots = 1024;
const internSlotMask = internSlots - 1;

const internOctets = new Uint8Array(internSlots * internMaxBytes);
const internLengths = new Int16Array(internSlots).fill(-1);
const internStrings: string[] = new Array<string>(internSlots).fill('');

/** The UTF-8 text in b[start, start + len); invalid sequences become U+FFFD. */
export function textAt(b: Buffer, start: number, len: number): string {
  if (len === 0) return '';
  return b.toString('utf8', start, start + len);
}

/** textAt through the intern table, for names that repeat. */
export function internedTextAt(b: Buffer, start: number, len: number): string {
  if (len === 0) return '';
  if (len > internMaxBytes) return b.toString('utf8', start, start + len);
  // FNV-1a over the octets
  let h = 0x811c9dc5;
  const end = start + len;
  for (let i = start; i < end; i++) h = Math.imul(h ^ (b[i] as number), 0x01000193);
  const slot = (h ^ (h >>> 15) ^ len) & internSlotMask;
  const base = slot * internMaxBytes;
  if (internLengths[slot] === len) {
    let same = true;
    for (let i = 0; i < len; i++) {
      if (internOctets[base + i] !== b[start + i]) {
        same = false;
        break;
      }
    }
    if (same) return internStrings[slot] as string;
  }
  const s = b.toString('utf8', start, end);
  for (let i = 0; i < len; i++) internOctets[base + i] = b[start + i] as number;
  internLengths[slot] = len;
  internStrings[slot] = s;
  return s;
}

/** True when b[start, end) is well-formed UTF-8 (no overlongs, no surrogates). */
export function isUtf8At(b: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    if ((b[i] as number) >= 0x80) return isUtf8(b.subarray(start, end));
  }
  return true;
}
