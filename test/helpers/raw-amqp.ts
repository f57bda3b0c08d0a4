/**
 * A test-side AMQP 0-9-1 client over a raw node:net socket, for feeding a broker bytes no
 * real client would send. It frames and reads frames itself (7-octet header, payload,
 * 0xCE), so a bug in warren's frame parser cannot hide a bug here; method arguments are
 * built and read with warren's codec. Every wait has a deadline.
 */
import { connect, type Socket } from 'node:net';
import assert from 'node:assert/strict';
import { decodeMethod, encodeMethod } from '../../src/amqp/method-codec.js';
import { FRAME_END, FrameType, Method, methodName } from '../../src/amqp/spec.generated.js';
import type { AmqpMethod, MethodArgsMap, MethodId } from '../../src/amqp/spec.generated.js';
import type { FieldTable } from '../../src/amqp/field-table.js';

export const AMQP_0091_HEADER: Buffer = Buffer.from('AMQP\x00\x00\x09\x01', 'latin1');

/** How long a test waits for one expected frame or event unless told otherwise. */
export const frameDeadlineMs = 3_000;

const frameHeaderBytes = 7;

export interface RawFrame {
  type: number;
  channel: number;
  /** a copy: safe to keep */
  payload: Buffer;
}

export interface HandshakeOptions {
  username?: string;
  password?: string;
  vhost?: string;
  /** 0 = take the server's value */
  channelMax?: number;
  /** 0 = take the server's value */
  frameMax?: number;
  heartbeatS?: number;
  /** announce the authentication_failure_close capability (default true, as amqplib does) */
  authFailureClose?: boolean;
  /** announce the connection.blocked capability (default false) */
  connectionBlocked?: boolean;
}

/** Frame bytes: type, channel, size, payload, end octet (end octet overridable to break it). */
export function frame(type: number, channel: number, payload: Uint8Array, endOctet: number = FRAME_END): Buffer {
  const b = Buffer.alloc(frameHeaderBytes + payload.length + 1);
  b[0] = type;
  b.writeUInt16BE(channel, 1);
  b.writeUInt32BE(payload.length, 3);
  b.set(payload, frameHeaderBytes);
  b[frameHeaderBytes + payload.length] = endOctet;
  return b;
}

export function methodFrame(channel: number, m: AmqpMethod): Buffer {
  return frame(FrameType.method, channel, encodeMethod(m));
}

/** Content header payload for class 60 with no properties (flags word 0). */
export function contentHeaderFrame(channel: number, bodySize: number, classId = 60): Buffer {
  const p = Buffer.alloc(14);
  p.writeUInt16BE(classId, 0);
  p.writeUInt16BE(0, 2);
  p.writeUInt32BE(Math.floor(bodySize / 0x1_0000_0000), 4);
  p.writeUInt32BE(bodySize % 0x1_0000_0000, 8);
  p.writeUInt16BE(0, 12);
  return frame(FrameType.header, channel, p);
}

export function bodyFrame(channel: number, body: Uint8Array): Buffer {
  return frame(FrameType.body, channel, body);
}

export function publishFrame(channel: number, exchange: string, routingKey: string): Buffer {
  return methodFrame(channel, {
    id: Method.BasicPublish,
    args: { ticket: 0, exchange, routingKey, mandatory: false, immediate: false },
  });
}

export function plainResponse(username: string, password: string): Buffer {
  return Buffer.from(`\0${username}\0${password}`);
}

export class RawAmqp {
  /** Every octet the broker sent, in order. */
  received = Buffer.alloc(0);
  /** Offset in `received` of the next frame to read. */
  private readPos = 0;
  /** The broker ended its side (FIN) or the socket was reset. */
  peerEnded = false;
  closed = false;
  /** Socket errors seen (ECONNRESET, EPIPE): recorded, never thrown. */
  readonly errors: Error[] = [];
  private readonly waiters = new Set<() => void>();

  private constructor(readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => {
      this.received = Buffer.concat([this.received, d]);
      this.wake();
    });
    socket.on('end', () => {
      this.peerEnded = true;
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.peerEnded = true;
      this.wake();
    });
    socket.on('error', (err) => {
      this.errors.push(err);
    });
  }

  static async connect(host: string, port: number): Promise<RawAmqp> {
    const socket = connect({ host, port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawAmqp(socket);
  }

  private wake(): void {
    for (const w of this.waiters) w();
  }

  /** Resolves when check() returns a value, rejects with `what` past the deadline. */
  private until<T>(check: () => T | undefined, what: string, deadlineMs: number): Promise<T> {
    const now = check();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise<T>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(onWake);
      };
      const onWake = (): void => {
        let v: T | undefined;
        try {
          v = check();
        } catch (err) {
          done();
          reject(err);
          return;
        }
        if (v !== undefined) {
          done();
          resolve(v);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${deadlineMs} ms waiting for ${what}; received ${this.received.length} octets, peer ended: ${this.peerEnded}`));
      }, deadlineMs);
      this.waiters.add(onWake);
    });
  }

  // ---- sending ----------------------------------------------------------------

  /** Writes raw octets; resolves once handed to the OS (or the socket is gone). */
  send(bytes: Uint8Array | string): Promise<void> {
    if (this.socket.destroyed || this.socket.writableEnded) return Promise.resolve();
    const data = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes;
    return new Promise((resolve) => this.socket.write(data, () => resolve()));
  }

  sendMethod(channel: number, m: AmqpMethod): Promise<void> {
    return this.send(methodFrame(channel, m));
  }

  /** Each octet in its own write, each write given a moment to leave as its own segment. */
  async sendSplit(bytes: Uint8Array, pieceBytes = 1): Promise<void> {
    for (let i = 0; i < bytes.length; i += pieceBytes) {
      await this.send(bytes.subarray(i, i + pieceBytes));
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  // ---- reading ----------------------------------------------------------------

  /** The next whole frame from the broker, or undefined if the socket ended first. */
  nextFrame(deadlineMs = frameDeadlineMs): Promise<RawFrame | undefined> {
    return this.until<RawFrame | 'ended'>(
      () => {
        const f = this.tryReadFrame();
        if (f !== undefined) return f;
        return this.peerEnded ? 'ended' : undefined;
      },
      'a frame from the broker',
      deadlineMs,
    ).then((f) => (f === 'ended' ? undefined : f));
  }

  private tryReadFrame(): RawFrame | undefined {
    const b = this.received;
    const o = this.readPos;
    if (b.length - o < frameHeaderBytes) return undefined;
    const size = b.readUInt32BE(o + 3);
    const end = o + frameHeaderBytes + size;
    if (b.length < end + 1) return undefined;
    assert.equal(b[end], FRAME_END, `frame from the broker at offset ${o} does not end with 0xCE`);
    this.readPos = end + 1;
    return { type: b[o] as number, channel: b.readUInt16BE(o + 1), payload: Buffer.from(b.subarray(o + frameHeaderBytes, end)) };
  }

  /** Next frame that is not a heartbeat; fails if the socket ends first. */
  async nextNonHeartbeat(deadlineMs = frameDeadlineMs): Promise<RawFrame> {
    for (;;) {
      const f = await this.nextFrame(deadlineMs);
      assert.ok(f !== undefined, 'the broker closed the socket while a frame was expected');
      if (f.type !== FrameType.heartbeat) return f;
    }
  }

  /** Reads frames until a method arrives; asserts it is `id` on `channel`. */
  async expectMethod<K extends MethodId>(channel: number, id: K, deadlineMs = frameDeadlineMs): Promise<MethodArgsMap[K]> {
    const f = await this.nextNonHeartbeat(deadlineMs);
    assert.equal(f.type, FrameType.method, `expected a method frame, got frame type ${f.type} on channel ${f.channel}`);
    const m = decodeMethod(f.payload);
    assert.equal(
      methodName(m.id),
      methodName(id),
      `expected ${methodName(id)} on channel ${channel}, got ${methodName(m.id)} on channel ${f.channel}: ${JSON.stringify(m.args)}`,
    );
    assert.equal(f.channel, channel, `${methodName(id)} came on channel ${f.channel}, expected ${channel}`);
    return m.args as MethodArgsMap[K];
  }

  /** Resolves once the broker has ended or reset the connection. */
  async waitPeerClosed(deadlineMs = frameDeadlineMs): Promise<void> {
    await this.until(() => (this.peerEnded ? true : undefined), 'the broker to close the socket', deadlineMs);
  }

  /** Asserts nothing but heartbeats arrives before the broker closes the socket. */
  async expectSilentClose(deadlineMs = frameDeadlineMs): Promise<void> {
    for (;;) {
      const f = await this.nextFrame(deadlineMs);
      if (f === undefined) return;
      if (f.type === FrameType.heartbeat) continue;
      const what = f.type === FrameType.method ? `${methodName(decodeMethod(f.payload).id)} ${JSON.stringify(decodeMethod(f.payload).args)}` : `type ${f.type}`;
      assert.fail(`expected the broker to close the socket without a frame, got ${what} on channel ${f.channel}`);
    }
  }

  /**
   * Expects connection.close with this code and class/method ids, answers close-ok, and
   * expects the broker to close the socket. Returns the reply text.
   */
  async expectConnectionClose(replyCode: number, classId: number, methodId: number, deadlineMs = frameDeadlineMs): Promise<string> {
    const c = await this.expectMethod(0, Method.ConnectionClose, deadlineMs);
    assert.deepEqual(
      { replyCode: c.replyCode, classId: c.classId, methodId: c.methodId },
      { replyCode, classId, methodId },
      `connection.close was ${c.replyCode} (${c.classId},${c.methodId}) '${c.replyText}'`,
    );
    await this.sendMethod(0, { id: Method.ConnectionCloseOk, args: {} });
    await this.expectSilentClose(deadlineMs);
    return c.replyText;
  }

  /** Expects channel.close on this channel with this code and ids, answers close-ok; returns the reply text. */
  async expectChannelClose(channel: number, replyCode: number, classId: number, methodId: number, deadlineMs = frameDeadlineMs): Promise<string> {
    const c = await this.expectMethod(channel, Method.ChannelClose, deadlineMs);
    assert.deepEqual(
      { replyCode: c.replyCode, classId: c.classId, methodId: c.methodId },
      { replyCode, classId, methodId },
      `channel.close was ${c.replyCode} (${c.classId},${c.methodId}) '${c.replyText}'`,
    );
    await this.sendMethod(channel, { id: Method.ChannelCloseOk, args: {} });
    return c.replyText;
  }

  // ---- handshake --------------------------------------------------------------

  /** Protocol header, then connection.start; returns its arguments. */
  async sendHeader(): Promise<MethodArgsMap[typeof Method.ConnectionStart]> {
    await this.send(AMQP_0091_HEADER);
    return this.expectMethod(0, Method.ConnectionStart);
  }

  startOk(opts: HandshakeOptions = {}): Promise<void> {
    const capabilities: FieldTable = {};
    if (opts.authFailureClose ?? true) capabilities['authentication_failure_close'] = { type: 't', value: true };
    if (opts.connectionBlocked === true) capabilities['connection.blocked'] = { type: 't', value: true };
    return this.sendMethod(0, {
      id: Method.ConnectionStartOk,
      args: {
        clientProperties: { product: { type: 'S', value: 'warren raw-amqp test' }, capabilities: { type: 'F', value: capabilities } },
        mechanism: 'PLAIN',
        response: plainResponse(opts.username ?? 'guest', opts.password ?? 'guest'),
        locale: 'en_US',
      },
    });
  }

  /** Header, start-ok, tune-ok; returns connection.tune's arguments (before open). */
  async tuned(opts: HandshakeOptions = {}): Promise<MethodArgsMap[typeof Method.ConnectionTune]> {
    await this.sendHeader();
    await this.startOk(opts);
    const tune = await this.expectMethod(0, Method.ConnectionTune);
    await this.sendMethod(0, {
      id: Method.ConnectionTuneOk,
      args: {
        channelMax: opts.channelMax ?? tune.channelMax,
        frameMax: opts.frameMax ?? tune.frameMax,
        heartbeat: opts.heartbeatS ?? 0,
      },
    });
    return tune;
  }

  /** The whole handshake up to connection.open-ok. */
  async handshake(opts: HandshakeOptions = {}): Promise<MethodArgsMap[typeof Method.ConnectionTune]> {
    const tune = await this.tuned(opts);
    await this.sendMethod(0, { id: Method.ConnectionOpen, args: { virtualHost: opts.vhost ?? '/', capabilities: '', insist: false } });
    await this.expectMethod(0, Method.ConnectionOpenOk);
    return tune;
  }

  async openChannel(channel: number): Promise<void> {
    await this.sendMethod(channel, { id: Method.ChannelOpen, args: { outOfBand: '' } });
    await this.expectMethod(channel, Method.ChannelOpenOk);
  }

  /** Frames received so far that have not been read, as method names (for failure messages). */
  describeUnread(): string {
    const out: string[] = [];
    for (let f = this.tryReadFrame(); f !== undefined; f = this.tryReadFrame()) {
      out.push(f.type === FrameType.method ? methodName(decodeMethod(f.payload).id) : `type ${f.type}`);
    }
    return out.join(', ');
  }

  /** Drops the TCP connection without any AMQP close. */
  destroy(): void {
    this.socket.destroy();
  }
}

/** Heartbeat frames the broker sent after `from` (an offset in raw.received). */
export function countHeartbeats(raw: RawAmqp, from: number): number {
  let n = 0;
  let o = from;
  const b = raw.received;
  while (b.length - o >= 8) {
    const size = b.readUInt32BE(o + 3);
    if (b[o] === FrameType.heartbeat && size === 0) n++;
    o += 8 + size;
  }
  return n;
}
