// Splits a byte stream into frames. A frame inside one chunk is handed out as a view of
// that chunk (no copy); a frame that straddles chunks is reassembled in a buffer that is
// reused for the next straddling frame. Either way the payload is valid only during the
// callback. Checks follow rabbit_reader: the size against frame-max as soon as the header
// is in, then the frame-end octet, then the frame type (see errors.ts).
import { AmqpError, octetsSnippet } from './errors.js';
import { FRAME_END, FrameType } from './spec.generated.js';
import { frameChannelOffset, frameHeaderBytes, frameOverheadBytes, frameSizeOffset } from './constants.js';

export type FrameHandler = (type: number, channel: number, payload: Buffer) => void;

const frameError = 501;
/** A reassembly buffer up to this size is kept for the next straddling frame; larger ones are dropped after use. */
const reassemblyKeepMaxBytes = 256 * 1024;

export class FrameParser {
  #frameMaxBytes: number;
  /** header octets of a frame split inside its header */
  readonly #header = Buffer.alloc(frameHeaderBytes);
  #headerHaveBytes = 0;
  /** payload + frame-end of a frame split after its header; undefined when none is in progress */
  #pending: Buffer | undefined;
  #pendingHaveBytes = 0;
  #pendingNeedBytes = 0;
  #pendingType = 0;
  #pendingChannel = 0;
  #spare: Buffer | undefined;

  /** frameMaxBytes counts the whole frame (8 octets of framing included); 0 means no limit. */
  constructor(frameMaxBytes: number) {
    this.#frameMaxBytes = frameMaxBytes;
  }

  setFrameMax(frameMaxBytes: number): void {
    this.#frameMaxBytes = frameMaxBytes;
  }

  get frameMaxBytes(): number {
    return this.#frameMaxBytes;
  }

  /** Octets of a partial frame received so far (its header included). */
  get bufferedBytes(): number {
    return this.#pending === undefined ? this.#headerHaveBytes : frameHeaderBytes + this.#pendingHaveBytes;
  }

  /** Feeds a chunk; calls onFrame for each complete frame. Throws AmqpError (501) on bad framing; exceptions from onFrame propagate. */
  push(chunk: Buffer, onFrame: FrameHandler): void {
    const n = chunk.length;
    let o = 0;
    if (this.#headerHaveBytes > 0 || this.#pending !== undefined) {
      o = this.#resume(chunk, onFrame);
    }
    while (n - o >= frameHeaderBytes) {
      const type = chunk[o] as number;
      const size = chunk.readUInt32BE(o + frameSizeOffset);
      this.#checkSize(type, size);
      const endAt = o + frameHeaderBytes + size;
      if (endAt >= n) break;
      const channel = chunk.readUInt16BE(o + frameChannelOffset);
      const payload = chunk.subarray(endAt - size, endAt);
      checkEndAndType(type, payload, chunk[endAt] as number);
      o = endAt + 1;
      onFrame(type, channel, payload);
    }
    if (o < n) this.#stash(chunk, o);
  }

  #checkSize(type: number, size: number): void {
    // RabbitMQ lets the payload reach frame-max itself (FRAME_SIZE_FUDGE): some clients forget the framing octets
    const max = this.#frameMaxBytes;
    if (max !== 0 && size > max) {
      throw AmqpError.of(frameError, `type ${type}, all octets = <<>>: {frame_too_large,${size},${max - frameOverheadBytes}}`);
    }
  }

  /** Keeps chunk[o..] as the start of a frame. */
  #stash(chunk: Buffer, o: number): void {
    const rest = chunk.length - o;
    if (rest < frameHeaderBytes) {
      chunk.copy(this.#header, 0, o);
      this.#headerHaveBytes = rest;
      return;
    }
    // the header is complete (and its size was checked by the caller's loop)
    this.#begin(chunk[o] as number, chunk.readUInt16BE(o + frameChannelOffset), chunk.readUInt32BE(o + frameSizeOffset));
    this.#fill(chunk, o + frameHeaderBytes);
  }

  #begin(type: number, channel: number, size: number): void {
    const need = size + 1;
    let buf = this.#spare;
    if (buf === undefined || buf.length < need) {
      // not from the shared pool: a kept spare would pin a pool slab
      buf = Buffer.allocUnsafeSlow(need);
      this.#spare = need <= reassemblyKeepMaxBytes ? buf : undefined;
    }
    this.#pending = buf;
    this.#pendingHaveBytes = 0;
    this.#pendingNeedBytes = need;
    this.#pendingType = type;
    this.#pendingChannel = channel;
  }

  /** Copies what fits of chunk[o..] into the pending frame; returns the offset after what was used. */
  #fill(chunk: Buffer, o: number): number {
    const pending = this.#pending as Buffer;
    const take = Math.min(this.#pendingNeedBytes - this.#pendingHaveBytes, chunk.length - o);
    chunk.copy(pending, this.#pendingHaveBytes, o, o + take);
    this.#pendingHaveBytes += take;
    return o + take;
  }

  /** Continues a frame split across chunks; returns the offset in chunk where whole-frame parsing resumes. */
  #resume(chunk: Buffer, onFrame: FrameHandler): number {
    let o = 0;
    if (this.#headerHaveBytes > 0) {
      const take = Math.min(frameHeaderBytes - this.#headerHaveBytes, chunk.length);
      chunk.copy(this.#header, this.#headerHaveBytes, 0, take);
      this.#headerHaveBytes += take;
      o = take;
      if (this.#headerHaveBytes < frameHeaderBytes) return chunk.length;
      const h = this.#header;
      const type = h[0] as number;
      const size = h.readUInt32BE(frameSizeOffset);
      this.#checkSize(type, size);
      this.#headerHaveBytes = 0;
      this.#begin(type, h.readUInt16BE(frameChannelOffset), size);
    }
    o = this.#fill(chunk, o);
    if (this.#pendingHaveBytes < this.#pendingNeedBytes) return o;
    const pending = this.#pending as Buffer;
    const size = this.#pendingNeedBytes - 1;
    const type = this.#pendingType;
    const channel = this.#pendingChannel;
    this.#pending = undefined;
    this.#pendingHaveBytes = 0;
    this.#pendingNeedBytes = 0;
    const payload = pending.subarray(0, size);
    checkEndAndType(type, payload, pending[size] as number);
    onFrame(type, channel, payload);
    return o;
  }
}

function checkEndAndType(type: number, payload: Buffer, endOctet: number): void {
  if (endOctet !== FRAME_END) {
    throw AmqpError.of(frameError, `type ${type}, ${snippetOf(payload)}: {invalid_frame_end_marker,${endOctet}}`);
  }
  switch (type) {
    case FrameType.method:
    case FrameType.header:
    case FrameType.body:
      return;
    case FrameType.heartbeat:
      if (payload.length === 0) return;
      break;
    default:
      break;
  }
  throw AmqpError.of(frameError, `type ${type}, ${snippetOf(payload)}: unknown_frame`);
}

function snippetOf(payload: Buffer): string {
  return `${payload.length <= 16 ? 'all' : 'first 16'} octets = ${octetsSnippet(payload, 0, payload.length)}`;
}
