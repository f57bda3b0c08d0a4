/**
 * One authenticated replication TCP link, either direction: frames in through a FrameReader,
 * frames out with cork so a burst of frames leaves in few segments (PLATFORM.md: an uncorked
 * write per frame loses ~20x). Bytes that break the protocol close the link with a logged
 * refusal; the owner hears it through onClose and decides about reconnecting.
 */
import type { Socket } from 'node:net';
import { FrameReader, WireError, encodeFrame, frameTypeName } from './wire.js';
import type { Frame } from './wire.js';
import type { ReplicatorLogger } from './types.js';

/** Above this many unsent bytes a link counts as congested and leaders stop pumping batches into it. */
export const linkBufferBytesMax = 4 * 1024 * 1024;
/** Dead-peer detection for idle links, under the lease that catches silent nodes anyway. */
const keepAliveDelayMs = 1_000;

export class FramedLink {
  onFrame: (frame: Frame) => void = () => undefined;
  /** Once, when the link is gone; `error` when it closed because of bad input or a socket error. */
  onClose: (error: Error | undefined) => void = () => undefined;
  /** The socket's buffer emptied after congestion. */
  onDrain: () => void = () => undefined;

  private readonly reader: FrameReader;
  private closedValue = false;
  private corked = false;
  private closeError: Error | undefined;
  private framesSent = 0;
  private framesReceived = 0;
  private firstBytes: Buffer;

  constructor(
    private readonly socket: Socket,
    readonly peer: string,
    firstBytes: Buffer,
    frameBytesMax: number,
    private readonly log: ReplicatorLogger,
    private readonly what: string,
  ) {
    this.reader = new FrameReader(frameBytesMax, (frame) => {
      this.framesReceived += 1;
      this.onFrame(frame);
    });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, keepAliveDelayMs);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('drain', () => this.onDrain());
    socket.on('error', (error: Error) => {
      this.closeError ??= error;
    });
    socket.on('close', () => this.closed());
    this.firstBytes = firstBytes;
  }

  /** Begins reading (after the owner set onFrame/onClose): the handshake's leftover bytes first. */
  start(): void {
    const first = this.firstBytes;
    this.firstBytes = Buffer.alloc(0);
    if (first.length > 0) this.receive(first);
    this.socket.resume();
  }

  get isClosed(): boolean {
    return this.closedValue;
  }

  get congested(): boolean {
    return this.socket.writableLength > linkBufferBytesMax;
  }

  get stats(): { framesSent: number; framesReceived: number; bufferedBytes: number } {
    return { framesSent: this.framesSent, framesReceived: this.framesReceived, bufferedBytes: this.socket.writableLength };
  }

  /** fn runs once, when the socket drains or the link closes (whichever first). */
  onDrainOnce(fn: () => void): void {
    if (this.closedValue) {
      fn();
      return;
    }
    const done = (): void => {
      this.socket.off('drain', done);
      this.socket.off('close', done);
      fn();
    };
    this.socket.on('drain', done);
    this.socket.on('close', done);
  }

  send(frame: Frame): void {
    if (this.closedValue) return;
    const [header, body] = encodeFrame(frame);
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      // Everything sent in this turn of the event loop leaves together.
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(header);
    this.socket.write(body);
    this.framesSent += 1;
  }

  /** Closes the link; `reason` is logged as a refusal of what the peer sent. */
  close(reason?: Error): void {
    if (reason !== undefined) this.closeError ??= reason;
    this.socket.destroy();
  }

  private receive(chunk: Buffer): void {
    if (this.closedValue) return;
    try {
      this.reader.push(chunk);
    } catch (error: unknown) {
      if (!(error instanceof WireError)) throw error;
      this.log('warn', `refused ${this.what} ${this.peer}: ${error.message}; closing the link`);
      this.close(error);
    }
  }

  private closed(): void {
    if (this.closedValue) return;
    this.closedValue = true;
    this.onClose(this.closeError);
  }
}

export { frameTypeName };
