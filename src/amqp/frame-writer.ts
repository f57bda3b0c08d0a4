// Coalesces outgoing frames into one buffer so a connection writes its socket in large
// chunks. take() hands out everything written since the last take as a view; writing
// then continues after it, and a new buffer is allocated when the current one is full,
// so memory handed out is never written again. The delivery path (basicDeliver,
// contentHeader, body) writes pre-encoded names and allocates nothing per call.
import { frameHeaderBytes, frameOverheadBytes } from './constants.js';
import { methodPayloadBytes, writeMethodPayload } from './method-codec.js';
import type { AmqpMethod } from './spec.generated.js';
import { FRAME_END, FrameType, Method } from './spec.generated.js';

const defaultInitialBytes = 64 * 1024;
const shortstrMaxBytes = 255;
const twoTo32 = 0x1_0000_0000;
/** Below this many octets a byte loop beats TypedArray#set's call overhead. */
const inlineCopyMaxBytes = 24;

export class FrameWriter {
  readonly #initialBytes: number;
  #buf: Buffer;
  /** first octet not yet taken */
  #start = 0;
  /** next octet to write */
  #pos = 0;

  constructor(initialBytes = defaultInitialBytes) {
    if (!Number.isInteger(initialBytes) || initialBytes < frameOverheadBytes) {
      throw new RangeError(`initialBytes must be an integer >= ${frameOverheadBytes}, got ${initialBytes}`);
    }
    this.#initialBytes = initialBytes;
    this.#buf = Buffer.allocUnsafeSlow(initialBytes);
  }

  /** Octets written and not yet taken. */
  get length(): number {
    return this.#pos - this.#start;
  }

  /** Everything written since the last take (possibly empty); the writer then starts afresh. */
  take(): Buffer {
    const out = this.#buf.subarray(this.#start, this.#pos);
    this.#start = this.#pos;
    return out;
  }

  /** Returns the offset to write `bytes` octets at, making room first. */
  #reserve(bytes: number): number {
    if (this.#pos + bytes > this.#buf.length) this.#grow(bytes);
    return this.#pos;
  }

  #grow(bytes: number): void {
    const untaken = this.#pos - this.#start;
    const size = Math.max(this.#initialBytes, 2 * (untaken + bytes));
    const next = Buffer.allocUnsafeSlow(size);
    this.#buf.copy(next, 0, this.#start, this.#pos);
    this.#buf = next;
    this.#start = 0;
    this.#pos = untaken;
  }

  /** Frame header at b[o]; returns the payload offset. */
  #header(o: number, type: number, channel: number, payloadBytes: number): number {
    if ((channel & 0xffff) !== channel) throw new RangeError(`channel must be 0..65535, got ${channel}`);
    const b = this.#buf;
    b[o] = type;
    put16(b, o + 1, channel);
    put32(b, o + 3, payloadBytes);
    return o + frameHeaderBytes;
  }

  /** Any method frame. Throws RangeError (and writes nothing) on arguments that cannot be encoded. */
  method(channel: number, m: AmqpMethod): void {
    const payloadBytes = methodPayloadBytes(m);
    const o = this.#reserve(payloadBytes + frameOverheadBytes);
    const p = this.#header(o, FrameType.method, channel, payloadBytes);
    const end = writeMethodPayload(this.#buf, p, m);
    this.#buf[end] = FRAME_END;
    this.#pos = end + 1;
  }

  /**
   * basic.deliver with pre-encoded names: consumerTag is a shortstr with its length octet,
   * exchangeAndRoutingKey two shortstrs back to back (see encodeShortstr / encodeShortstrPair).
   */
  basicDeliver(channel: number, consumerTag: Uint8Array, deliveryTag: number, redelivered: boolean, exchangeAndRoutingKey: Uint8Array): void {
    const payloadBytes = 4 + consumerTag.length + 8 + 1 + exchangeAndRoutingKey.length;
    const o = this.#reserve(payloadBytes + frameOverheadBytes);
    const b = this.#buf;
    let p = this.#header(o, FrameType.method, channel, payloadBytes);
    put32(b, p, Method.BasicDeliver);
    p = copyInto(b, p + 4, consumerTag);
    p = writeTag(b, p, deliveryTag);
    b[p] = redelivered ? 1 : 0;
    p = copyInto(b, p + 1, exchangeAndRoutingKey);
    b[p] = FRAME_END;
    this.#pos = p + 1;
  }

  basicGetOk(channel: number, deliveryTag: number, redelivered: boolean, exchangeAndRoutingKey: Uint8Array, messageCount: number): void {
    const payloadBytes = 4 + 8 + 1 + exchangeAndRoutingKey.length + 4;
    const o = this.#reserve(payloadBytes + frameOverheadBytes);
    const b = this.#buf;
    let p = this.#header(o, FrameType.method, channel, payloadBytes);
    put32(b, p, Method.BasicGetOk);
    p = writeTag(b, p + 4, deliveryTag);
    b[p] = redelivered ? 1 : 0;
    p = copyInto(b, p + 1, exchangeAndRoutingKey);
    p = b.writeUInt32BE(messageCount, p);
    b[p] = FRAME_END;
    this.#pos = p + 1;
  }

  basicReturn(channel: number, replyCode: number, replyText: string, exchangeAndRoutingKey: Uint8Array): void {
    const textBytes = Buffer.byteLength(replyText);
    if (textBytes > shortstrMaxBytes) throw new RangeError(`reply text of ${textBytes} bytes exceeds ${shortstrMaxBytes}`);
    const payloadBytes = 4 + 2 + 1 + textBytes + exchangeAndRoutingKey.length;
    const o = this.#reserve(payloadBytes + frameOverheadBytes);
    const b = this.#buf;
    let p = this.#header(o, FrameType.method, channel, payloadBytes);
    b.writeUInt32BE(Method.BasicReturn, p);
    p = b.writeUInt16BE(replyCode, p + 4);
    b[p] = textBytes;
    if (textBytes > 0) b.write(replyText, p + 1);
    p = copyInto(b, p + 1 + textBytes, exchangeAndRoutingKey);
    b[p] = FRAME_END;
    this.#pos = p + 1;
  }

  /** Content header; propertyBytes = flags word(s) + property list, e.g. as received from the publisher. */
  contentHeader(channel: number, classId: number, bodySize: number, propertyBytes: Uint8Array): void {
    const payloadBytes = 12 + propertyBytes.length;
    const o = this.#reserve(payloadBytes + frameOverheadBytes);
    const b = this.#buf;
    let p = this.#header(o, FrameType.header, channel, payloadBytes);
    put16(b, p, classId);
    b[p + 2] = 0;
    b[p + 3] = 0;
    p = writeTag(b, p + 4, bodySize);
    p = copyInto(b, p, propertyBytes);
    b[p] = FRAME_END;
    this.#pos = p + 1;
  }

  /** Body frames of at most frameMaxBytes - 8 payload each (frameMaxBytes 0: one frame); none for an empty body. */
  body(channel: number, body: Uint8Array, frameMaxBytes: number): void {
    const total = body.length;
    if (total === 0) return;
    if (frameMaxBytes !== 0 && frameMaxBytes <= frameOverheadBytes) {
      throw new RangeError(`frameMaxBytes ${frameMaxBytes} leaves no room for a payload`);
    }
    const chunkMax = frameMaxBytes === 0 ? total : frameMaxBytes - frameOverheadBytes;
    const frames = Math.ceil(total / chunkMax);
    let p = this.#reserve(total + frames * frameOverheadBytes);
    const b = this.#buf;
    for (let from = 0; from < total; from += chunkMax) {
      const n = Math.min(chunkMax, total - from);
      p = this.#header(p, FrameType.body, channel, n);
      p = copyInto(b, p, n === total ? body : body.subarray(from, from + n));
      b[p] = FRAME_END;
      p += 1;
    }
    this.#pos = p;
  }

  heartbeat(): void {
    const o = this.#reserve(frameOverheadBytes);
    const p = this.#header(o, FrameType.heartbeat, 0, 0);
    this.#buf[p] = FRAME_END;
    this.#pos = p + 1;
  }

  /** Any frame from a ready payload. */
  frame(type: number, channel: number, payload: Uint8Array): void {
    const o = this.#reserve(payload.length + frameOverheadBytes);
    const p = copyInto(this.#buf, this.#header(o, type, channel, payload.length), payload);
    this.#buf[p] = FRAME_END;
    this.#pos = p + 1;
  }
}

function copyInto(b: Buffer, o: number, src: Uint8Array): number {
  const n = src.length;
  if (n <= inlineCopyMaxBytes) {
    for (let i = 0; i < n; i++) b[o + i] = src[i] as number;
  } else {
    b.set(src, o);
  }
  return o + n;
}

function writeTag(b: Buffer, o: number, v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`longlong must be an integer within 0..2^53-1, got ${v}`);
  const high = Math.floor(v / twoTo32);
  put32(b, o, high);
  put32(b, o + 4, v - high * twoTo32);
  return o + 8;
}

// Plain octet stores: on the delivery path they beat Buffer#writeUInt*BE's argument checks.
// Callers pass values already known to fit (channel, ids, sizes from lengths).
function put16(b: Buffer, o: number, v: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v;
}

function put32(b: Buffer, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

/** A shortstr with its length octet, for basicDeliver's consumer tag. Throws RangeError past 255 bytes. */
export function encodeShortstr(s: string): Buffer {
  const bytes = Buffer.from(s);
  if (bytes.length > shortstrMaxBytes) throw new RangeError(`shortstr of ${bytes.length} bytes exceeds ${shortstrMaxBytes}`);
  const out = Buffer.allocUnsafe(1 + bytes.length);
  out[0] = bytes.length;
  bytes.copy(out, 1);
  return out;
}

/** Two shortstrs back to back (exchange, routing key), for basicDeliver / basicGetOk / basicReturn. */
export function encodeShortstrPair(a: string, b: string): Buffer {
  return Buffer.concat([encodeShortstr(a), encodeShortstr(b)]);
}
