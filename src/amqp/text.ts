// Turning wire octets into strings. Short ASCII strings (exchange names, routing keys,
// consumer tags) are built in JS: cheaper than a native toString call for a few octets.
import { isUtf8 } from 'node:buffer';

/** Up to this many octets a pure-ASCII string is decoded in JS. */
const asciiInlineMaxBytes = 32;

/** The UTF-8 text in b[start, start + len); invalid sequences become U+FFFD. */
export function textAt(b: Buffer, start: number, len: number): string {
  if (len === 0) return '';
  if (len <= asciiInlineMaxBytes) {
    let s = '';
    const end = start + len;
    for (let i = start; i < end; i++) {
      const c = b[i] as number;
      if (c >= 0x80) return b.toString('utf8', start, end);
      s += String.fromCharCode(c);
    }
    return s;
  }
  return b.toString('utf8', start, start + len);
}

/** True when b[start, end) is well-formed UTF-8 (no overlongs, no surrogates). */
export function isUtf8At(b: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    if ((b[i] as number) >= 0x80) return isUtf8(b.subarray(start, end));
  }
  return true;
}
