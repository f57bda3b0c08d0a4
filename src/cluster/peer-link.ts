/**
 * The inter-node forwarding link ("peer port"): one authenticated TCP connection between the
 * fronts of two nodes, carrying length-prefixed records. What the records mean is the front's
 * business (src/front/peer-records.ts); this module frames them, batches writes, keeps the
 * link alive with heartbeats and reports when it closes.
 *
 *   frame
 *   +-------------+---------+----------------------------+
 *   | u32 length  | u8 kind | body (length - 1 bytes)    |
 *   +-------------+---------+----------------------------+
 *   length counts the kind byte and the body; little-endian, like the rings. Kind 0 is a
 *   heartbeat with an empty body; every other kind is handed to the link's owner.
 *
 * Before any frame, the dialling side proves the cluster secret (secret-handshake.ts); a peer
 * that cannot is refused and the refusal is logged.
 */
import assert from 'node:assert/strict';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import type { Logger } from '../node/logger.js';
import { HandshakeError, acceptPeer, connectPeer } from './secret-handshake.js';

export const frameLengthBytes = 4;
export const frameKindOffset = 4;
export const frameHeaderBytes = 5;
/** Frame kind 0: nothing to say, but still here. */
export const heartbeatKind = 0;
/**
 * Largest frame accepted: one message payload (RabbitMQ's 512 MiB ceiling on max_message_size)
 * plus the record header. A longer length is garbage on the wire, not a message.
 */
export const peerFrameBytesMax = 512 * 1024 * 1024 + 64 * 1024;
/** A heartbeat goes out when a link has sent nothing for this long. */
export const peerHeartbeatIntervalMs = 1_000;
/**
 * A peer heard from for none of this long is gone (a frozen or partitioned node; a crashed
 * one closes the socket at once). Several heartbeats, so one slow GC pause does not cut a link.
 */
export const peerSilenceMaxMs = 5_000;
/** Initial size of a link's write batch; it grows for large messages. */
const batchBytesInitial = 64 * 1024;

export class PeerFrameTooLarge extends Error {
  constructor(
    readonly frameBytes: number,
    readonly frameBytesMax: number,
  ) {
    super(`peer frame of ${frameBytes} bytes is larger than the maximum ${frameBytesMax}`);
  }
}

export interface PeerLinkHandlers {
  /** The handshake is done: written records now leave. */
  onOpen(): void;
  /** One record; body is valid only during the call (copy what you keep). */
  onRecord(kind: number, body: Buffer): void;
  /** After the records of one socket read: a good moment to flush what they produced. */
  onBatchEnd(): void;
  /** The link is gone (once); reason says why, for the log. */
  onClose(reason: string): void;
  /** Everything written has left this process (backpressure released). */
  onDrain(): void;
}

const noHandlers: PeerLinkHandlers = { onOpen: () => {}, onRecord: () => {}, onBatchEnd: () => {}, onClose: () => {}, onDrain: () => {} };

export interface PeerIdentity {
  secret: string;
  /** This node's name, proven to the peer in the handshake. */
  nodeName: string;
}

export class PeerLink {
  handlers: PeerLinkHandlers = noHandlers;
  state: 'authenticating' | 'open' | 'closed' = 'authenticating';
  /** The authenticated peer's node name (once open). */
  peerName = '';

  // writing: frames are appended to one batch; flush hands the unflushed tail to the socket.
  private batch = Buffer.allocUnsafe(batchBytesInitial);
  private batchStart = 0;
  private batchEnd = 0;
  private flushScheduled = false;
  private wroteSinceTick = false;

  // reading: a frame split across socket reads is assembled in header + body.
  private readonly header = Buffer.allocUnsafe(frameHeaderBytes);
  private headerFill = 0;
  private body: Buffer | undefined;
  private bodyKind = 0;
  private bodyFill = 0;
  private lastHeardMs = performance.now();
  private handshaking = false;
  private heartbeat: NodeJS.Timeout | undefined;

  private constructor(
    readonly socket: Socket,
    readonly label: string,
    private readonly frameBytesMax: number,
  ) {
    socket.setNoDelay(true);
    // During the handshake its own error says more (refused, bad greeting, timeout).
    socket.on('error', (e) => this.handshaking || this.close(`socket error: ${e.message}`));
    socket.on('close', () => this.handshaking || this.close('socket closed'));
    socket.on('drain', () => this.handlers.onDrain());
  }

  /**
   * Dials a peer; the link buffers writes until the handshake is done. expectName: the node
   * the caller means to reach; a different node answering at that address is refused.
   */
  static dial(address: string, id: PeerIdentity, expectName: string | undefined, handlers: PeerLinkHandlers, frameBytesMax = peerFrameBytesMax): PeerLink {
    const { host, port } = parseAddress(address);
    const socket = createConnection({ host, port });
    const link = new PeerLink(socket, address, frameBytesMax);
    link.handlers = handlers;
    socket.once('connect', () => {
      link.handshaking = true;
      connectPeer(socket, id.secret, id.nodeName).then(
        ({ peer, rest }) => {
          link.handshaking = false;
          if (link.state === 'closed') return;
          if (socket.destroyed) {
            link.close('socket closed right after the handshake');
            return;
          }
          if (expectName !== undefined && peer !== expectName) {
            link.close(`dialled node '${expectName}' at ${address}, but node '${peer}' answered`);
            return;
          }
          link.open(peer, rest);
        },
        (e: unknown) => {
          link.handshaking = false;
          link.close(`handshake failed: ${e instanceof Error ? e.message : String(e)}`);
        },
      );
    });
    return link;
  }

  /** Server side, after acceptPeer: handlers must be set before start(). */
  static accepted(socket: Socket, peer: string, rest: Buffer, frameBytesMax = peerFrameBytesMax): { link: PeerLink; start: () => void } {
    const link = new PeerLink(socket, `${peer} (${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'})`, frameBytesMax);
    return { link, start: () => link.open(peer, rest) };
  }

  private open(peer: string, rest: Buffer): void {
    this.state = 'open';
    this.peerName = peer;
    this.lastHeardMs = performance.now();
    this.heartbeat = setInterval(() => this.tick(), peerHeartbeatIntervalMs);
    this.heartbeat.unref();
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    if (rest.length > 0) this.onData(rest);
    this.socket.resume();
    this.handlers.onOpen();
    this.flush();
  }

  // ---- writing --------------------------------------------------------------

  /** Appends one record (body, then extra: a header and a payload without concatenating them). */
  write(kind: number, body: Uint8Array, extra?: Uint8Array): void {
    if (this.state === 'closed') return;
    const extraBytes = extra?.length ?? 0;
    const frameBytes = frameHeaderBytes + body.length + extraBytes;
    this.ensure(frameBytes);
    const b = this.batch;
    b.writeUInt32LE(1 + body.length + extraBytes, this.batchEnd);
    b[this.batchEnd + frameKindOffset] = kind;
    b.set(body, this.batchEnd + frameHeaderBytes);
    if (extra !== undefined) b.set(extra, this.batchEnd + frameHeaderBytes + body.length);
    this.batchEnd += frameBytes;
    this.wroteSinceTick = true;
    if (!this.flushScheduled && this.state === 'open') {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Room for frameBytes more; bytes already handed to the socket are never moved or overwritten. */
  private ensure(frameBytes: number): void {
    if (this.batchEnd + frameBytes <= this.batch.length) return;
    const unflushed = this.batchEnd - this.batchStart;
    const next = Buffer.allocUnsafe(Math.max(batchBytesInitial, 2 * (unflushed + frameBytes)));
    this.batch.copy(next, 0, this.batchStart, this.batchEnd);
    this.batch = next;
    this.batchStart = 0;
    this.batchEnd = unflushed;
  }

  flush(): void {
    this.flushScheduled = false;
    if (this.state !== 'open' || this.batchEnd === this.batchStart) return;
    this.socket.write(this.batch.subarray(this.batchStart, this.batchEnd));
    this.batchStart = this.batchEnd;
  }

  /** Bytes written but not yet taken by the kernel: the link's backpressure signal. */
  get pendingBytes(): number {
    return this.socket.writableLength + (this.batchEnd - this.batchStart);
  }

  pauseReading(): void {
    if (this.state === 'open') this.socket.pause();
  }

  resumeReading(): void {
    if (this.state === 'open') this.socket.resume();
  }

  private tick(): void {
    const silentMs = performance.now() - this.lastHeardMs;
    if (silentMs > peerSilenceMaxMs) {
      this.close(`peer silent for ${Math.round(silentMs)} ms (limit ${peerSilenceMaxMs} ms)`);
      return;
    }
    if (!this.wroteSinceTick) this.write(heartbeatKind, emptyBody);
    this.wroteSinceTick = false;
  }

  // ---- reading --------------------------------------------------------------

  private onData(chunk: Buffer): void {
    this.lastHeardMs = performance.now();
    let pos = 0;
    while (pos < chunk.length && this.state === 'open') {
      if (this.body !== undefined) {
        pos = this.fillBody(chunk, pos);
        continue;
      }
      if (this.headerFill === 0 && chunk.length - pos >= frameHeaderBytes) {
        const length = chunk.readUInt32LE(pos);
        if (!this.checkLength(length)) return;
        const kind = chunk[pos + frameKindOffset] ?? heartbeatKind;
        const end = pos + frameLengthBytes + length;
        if (end <= chunk.length) {
          this.deliver(kind, chunk.subarray(pos + frameHeaderBytes, end));
          pos = end;
        } else {
          this.startBody(kind, length);
          pos += frameHeaderBytes;
        }
        continue;
      }
      // A header split across reads.
      const n = Math.min(frameHeaderBytes - this.headerFill, chunk.length - pos);
      chunk.copy(this.header, this.headerFill, pos, pos + n);
      this.headerFill += n;
      pos += n;
      if (this.headerFill < frameHeaderBytes) break;
      this.headerFill = 0;
      const length = this.header.readUInt32LE(0);
      if (!this.checkLength(length)) return;
      const kind = this.header[frameKindOffset] ?? heartbeatKind;
      if (length === 1) this.deliver(kind, emptyBody);
      else this.startBody(kind, length);
    }
    if (this.state === 'open') this.handlers.onBatchEnd();
  }

  private checkLength(length: number): boolean {
    if (length >= 1 && length <= this.frameBytesMax) return true;
    const e = length < 1 ? new Error('peer frame with length 0 (no kind byte)') : new PeerFrameTooLarge(length, this.frameBytesMax);
    this.close(`protocol error: ${e.message}`);
    return false;
  }

  private startBody(kind: number, length: number): void {
    this.body = Buffer.allocUnsafe(length - 1);
    this.bodyKind = kind;
    this.bodyFill = 0;
  }

  private fillBody(chunk: Buffer, pos: number): number {
    const body = this.body;
    assert.ok(body !== undefined);
    const n = Math.min(body.length - this.bodyFill, chunk.length - pos);
    chunk.copy(body, this.bodyFill, pos, pos + n);
    this.bodyFill += n;
    if (this.bodyFill === body.length) {
      this.body = undefined;
      this.deliver(this.bodyKind, body);
    }
    return pos + n;
  }

  private deliver(kind: number, body: Buffer): void {
    if (kind !== heartbeatKind) this.handlers.onRecord(kind, body);
  }

  // ---- closing --------------------------------------------------------------

  close(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
    this.socket.destroy();
    this.batch = Buffer.alloc(0);
    this.batchStart = 0;
    this.batchEnd = 0;
    this.handlers.onClose(reason);
  }
}

const emptyBody = Buffer.alloc(0);

/** 'host:port' or '[v6]:port'. */
export function parseAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  const port = Number(address.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`peer address must be host:port, got '${address}'`);
  return { host, port };
}

export interface PeerListenerOptions extends PeerIdentity {
  host: string;
  /** 0 picks a free port. */
  port: number;
  log: Logger;
}

export interface PeerListener {
  readonly port: number;
  /** Stops accepting and closes every accepted link. */
  close(): Promise<void>;
}

/** Accepts peer links; each authenticated one is handed to onLink, which sets handlers and starts it. */
export async function listenPeers(opts: PeerListenerOptions, onLink: (link: PeerLink, start: () => void) => void): Promise<PeerListener> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    const from = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    // The handshake has its own listeners; without this one an early reset would be unhandled.
    socket.on('error', () => {});
    // A peer that closes without sending a byte is no failed login: other nodes probe this port
    // to tell a dead node from a live one (death-evidence.ts) and close at once.
    let bytesIn = 0;
    const countBytes = (chunk: Buffer): void => {
      bytesIn += chunk.length;
    };
    socket.on('data', countBytes);
    acceptPeer(socket, opts.secret, opts.nodeName).then(
      ({ peer, rest }) => {
        socket.off('data', countBytes);
        const { link, start } = PeerLink.accepted(socket, peer, rest);
        onLink(link, start);
      },
      (e: unknown) => {
        const reason = e instanceof Error ? e.message : String(e);
        const closedSilently = bytesIn === 0 && e instanceof HandshakeError && !e.message.startsWith('handshake not finished');
        if (closedSilently) opts.log.info(`connection from ${from} closed before any handshake (a liveness probe, or not a warren node): ${reason}`);
        else opts.log.warn(`peer link from ${from} refused: ${reason}`);
      },
    );
  });
  server.on('error', (e) => opts.log.error(`peer listener error: ${e.message}`));
  server.listen(opts.port, opts.host);
  await once(server, 'listening');
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : opts.port;
  return {
    port,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
