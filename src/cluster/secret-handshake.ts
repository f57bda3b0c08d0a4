/**
 * Authenticates an inter-node TCP link (forwarding or replication) with the cluster secret,
 * as RabbitMQ's Erlang cookie does: the server sends a random nonce, the client proves it
 * knows the secret with HMAC-SHA256(secret, nonce ‖ name) without ever sending it. A peer
 * that cannot is refused, and the refusal is logged by the caller.
 *
 * Wire (before any link traffic): server → `W1` nonce(32); client → u8 nameBytes, name,
 * mac(32); server → u8 0 (ok) + u8 nameBytes + its name, or the socket is closed.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';

const magic = Buffer.from('W1');
const nonceBytes = 32;
const macBytes = 32;
const nameBytesMax = 255;
/** A peer that does not finish the handshake in this time is dropped. */
export const handshakeTimeoutMs = 5_000;

export class HandshakeError extends Error {}

function mac(secret: string, nonce: Buffer, name: string): Buffer {
  return createHmac('sha256', secret).update(nonce).update(name, 'utf8').digest();
}

function nameBuffer(name: string): Buffer {
  const b = Buffer.from(name, 'utf8');
  if (b.length === 0 || b.length > nameBytesMax) throw new HandshakeError(`node name must be 1..${nameBytesMax} bytes`);
  return Buffer.concat([Buffer.from([b.length]), b]);
}

/**
 * Reads exactly the bytes the handshake needs and leaves anything after them unread, so the
 * link protocol starts on a clean boundary. Resolves with the bytes or rejects on close/timeout.
 */
class HandshakeReader {
  private buffered: Buffer = Buffer.alloc(0);
  private waiting: { bytes: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private failed: Error | undefined;
  private readonly onData = (chunk: Buffer): void => {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    this.pump();
  };
  private readonly onEnd = (): void => this.fail(new HandshakeError('peer closed the link during the handshake'));
  private readonly onError = (e: Error): void => this.fail(new HandshakeError(`link error during the handshake: ${e.message}`));
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly socket: Socket) {
    socket.on('data', this.onData);
    socket.once('close', this.onEnd);
    socket.once('error', this.onError);
    this.timer = setTimeout(() => this.fail(new HandshakeError(`handshake not finished within ${handshakeTimeoutMs} ms`)), handshakeTimeoutMs);
  }

  read(bytes: number): Promise<Buffer> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.waiting = { bytes, resolve, reject };
      this.pump();
    });
  }

  /** Stops listening; returns bytes that arrived after the handshake (the link's first bytes). */
  finish(): Buffer {
    clearTimeout(this.timer);
    this.socket.off('data', this.onData);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
    this.socket.pause();
    return this.buffered;
  }

  private pump(): void {
    const w = this.waiting;
    if (w === undefined || this.buffered.length < w.bytes) return;
    this.waiting = undefined;
    const out = this.buffered.subarray(0, w.bytes);
    this.buffered = this.buffered.subarray(w.bytes);
    w.resolve(out);
  }

  private fail(e: Error): void {
    if (this.failed !== undefined) return;
    this.failed = e;
    clearTimeout(this.timer);
    const w = this.waiting;
    this.waiting = undefined;
    w?.reject(e);
  }
}

export interface HandshakeResult {
  /** The authenticated peer's node name. */
  peer: string;
  /** Link bytes that arrived together with the handshake's last message; feed them to the link parser first. */
  rest: Buffer;
}

/** Server side: resolves with the client's name, or rejects (and destroys the socket) if it cannot prove the secret. */
export async function acceptPeer(socket: Socket, secret: string, ownName: string): Promise<HandshakeResult> {
  const reader = new HandshakeReader(socket);
  try {
    const nonce = randomBytes(nonceBytes);
    socket.write(Buffer.concat([magic, nonce]));
    const [nameLength] = await reader.read(1);
    if (nameLength === undefined || nameLength === 0) throw new HandshakeError('peer sent an empty node name');
    const name = (await reader.read(nameLength)).toString('utf8');
    const given = await reader.read(macBytes);
    if (!timingSafeEqual(given, mac(secret, nonce, name))) throw new HandshakeError(`peer "${name}" does not know the cluster secret`);
    socket.write(Buffer.concat([Buffer.from([0]), nameBuffer(ownName)]));
    return { peer: name, rest: reader.finish() };
  } catch (e) {
    reader.finish();
    socket.destroy();
    throw e;
  }
}

/** Client side: proves the secret; resolves with the server's name. */
export async function connectPeer(socket: Socket, secret: string, ownName: string): Promise<HandshakeResult> {
  const reader = new HandshakeReader(socket);
  try {
    const hello = await reader.read(magic.length + nonceBytes);
    if (!hello.subarray(0, magic.length).equals(magic)) throw new HandshakeError('peer is not a warren node link (bad greeting)');
    const nonce = hello.subarray(magic.length);
    socket.write(Buffer.concat([nameBuffer(ownName), mac(secret, nonce, ownName)]));
    const [status] = await reader.read(1);
    if (status !== 0) throw new HandshakeError(`peer refused the handshake (status ${status})`);
    const [nameLength] = await reader.read(1);
    const name = (await reader.read(nameLength ?? 0)).toString('utf8');
    return { peer: name, rest: reader.finish() };
  } catch (e) {
    reader.finish();
    socket.destroy();
    throw e;
  }
}
