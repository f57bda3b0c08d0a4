/**
 * A uWebSockets.js WebSocket as the byte stream an AMQP Connection speaks over (the same
 * front code as TCP). Binary messages carry raw AMQP bytes in either direction; message
 * boundaries mean nothing (a frame may span messages, a message may hold many frames).
 *
 * Backpressure, both ways:
 * - Output: uWS buffers what the peer has not taken; bufferedBytes reports it, so the
 *   Connection pauses its consumers past socketHighWaterBytes, and drain (once the buffer is
 *   back under drainLowWaterBytes) resumes them. Past outputBytesMax the peer is not reading
 *   at all and the socket is dropped rather than buffered further.
 * - Input: uWS cannot stop reading a WebSocket, so pause() holds received messages (in
 *   order) until resume(). A peer that keeps sending while held past heldBytesMax is dropped.
 */
import type { WebSocket } from 'uWebSockets.js';
import type { Transport } from '../front/transport.js';
import type { Logger } from '../node/logger.js';

/** Output buffered in uWS below which a congested connection is told it drained. */
const drainLowWaterBytes = 256 * 1024;
/** Output buffered for one peer past which it is taken for dead (the Connection pauses consumers at 1 MiB). */
export const outputBytesMax = 64 * 1024 * 1024;
/** Input held while paused (shard rings full) past which the peer is dropped. */
export const heldBytesMax = 64 * 1024 * 1024;
/** WebSocket close codes (RFC 6455 §7.4.1). */
const closeNormal = 1000;
const closeUnsupportedData = 1003;
const closePolicy = 1008;

export interface WsUserData {
  transport: WsTransport | undefined;
  remoteAddress: string;
}

export class WsTransport implements Transport {
  private ws: WebSocket<WsUserData> | undefined;
  private paused = false;
  private readonly held: Buffer[] = [];
  private heldBytes = 0;
  private congested = false;
  private dataCb: (chunk: Buffer) => void = () => {};
  private drainCb: () => void = () => {};
  private closeCb: () => void = () => {};

  constructor(
    ws: WebSocket<WsUserData>,
    readonly remoteAddress: string,
    /** uWS does not expose the peer's port: a per-listener sequence number stands in, so connection names stay unique. */
    readonly remotePort: number,
    readonly localAddress: string,
    readonly localPort: number,
    private readonly log: Logger,
  ) {
    this.ws = ws;
  }

  write(data: Buffer): boolean {
    const ws = this.ws;
    if (ws === undefined) return false;
    const status = ws.send(data, true, false);
    const buffered = ws.getBufferedAmount();
    if (status === 2 || buffered > outputBytesMax) {
      this.log.warn(`closing WebSocket connection from ${this.remoteAddress}: peer is not reading (${buffered} bytes buffered)`);
      this.destroy();
      return false;
    }
    if (status === 0) this.congested = true;
    return status === 1;
  }

  get bufferedBytes(): number {
    return this.ws?.getBufferedAmount() ?? 0;
  }

  end(): void {
    this.ws?.end(closeNormal, 'closed');
  }

  destroy(): void {
    // close() calls the close handler at once; closed() defers the Connection's callback.
    this.ws?.close();
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    while (!this.paused && this.held.length > 0) {
      const chunk = this.held.shift() as Buffer;
      this.heldBytes -= chunk.length;
      this.dataCb(chunk);
    }
  }

  onData(cb: (chunk: Buffer) => void): void {
    this.dataCb = cb;
  }

  onDrain(cb: () => void): void {
    this.drainCb = cb;
  }

  onClose(cb: () => void): void {
    this.closeCb = cb;
  }

  // ---- from the uWS handlers -------------------------------------------------------

  /** A message arrived; its ArrayBuffer is uWS's and valid only during this call. */
  received(message: ArrayBuffer, isBinary: boolean): void {
    if (this.ws === undefined) return;
    if (!isBinary) {
      this.log.warn(`closing WebSocket connection from ${this.remoteAddress}: text message (AMQP needs binary messages)`);
      this.ws.end(closeUnsupportedData, 'AMQP 0-9-1 needs binary messages');
      return;
    }
    const chunk = Buffer.from(new Uint8Array(message)); // a copy
    if (!this.paused && this.held.length === 0) {
      this.dataCb(chunk);
      return;
    }
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    if (this.heldBytes > heldBytesMax) {
      this.log.warn(`closing WebSocket connection from ${this.remoteAddress}: ${this.heldBytes} bytes received while publishers are paused`);
      this.ws.end(closePolicy, 'too much input while flow-controlled');
    }
  }

  drained(): void {
    if (!this.congested || this.bufferedBytes > drainLowWaterBytes) return;
    this.congested = false;
    this.drainCb();
  }

  /** The socket is gone (either side). The ws object is invalid from here on. */
  closed(): void {
    if (this.ws === undefined) return;
    this.ws = undefined;
    this.held.length = 0;
    this.heldBytes = 0;
    // Deferred: close() runs this synchronously, in the middle of the Connection's own teardown.
    queueMicrotask(() => this.closeCb());
  }
}
