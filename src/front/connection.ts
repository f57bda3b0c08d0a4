/**
 * One AMQP connection on the front: protocol header, handshake (start/tune/open),
 * channel 0, heartbeats, frame dispatch to channels, coalesced output, and teardown.
 */
import { FrameParser } from '../amqp/frame-parser.js';
import { FrameWriter } from '../amqp/frame-writer.js';
import { decodeMethod } from '../amqp/method-codec.js';
import { AmqpError } from '../amqp/errors.js';
import { PROTOCOL_HEADER } from '../amqp/constants.js';
import { FrameType, Method, ReplyCode, frameMinBytes, isHardError, classIdOf, methodIdOf, methodName } from '../amqp/spec.generated.js';
import type { AmqpMethod } from '../amqp/spec.generated.js';
import type { FieldTable } from '../amqp/field-table.js';
import { parseAmqplain, parsePlain } from '../amqp/sasl.js';
import type { Broker } from './broker.js';
import { Channel } from './channel.js';
import type { Transport } from './transport.js';
import type { User } from './users.js';
import { serverProperties } from './server-properties.js';

type State = 'header' | 'start' | 'tune' | 'open' | 'opened' | 'closing' | 'closed';

/** How long a peer may take from TCP connect to connection.open (RabbitMQ's handshake_timeout). */
const handshakeTimeoutMs = 10_000;
/** After we send connection.close, how long we wait for close-ok before dropping the socket. */
const closeOkTimeoutMs = 3_000;
/** Socket output past which the connection's consumers are paused (slow reader). */
export const socketHighWaterBytes = 1024 * 1024;

export interface ClientCapabilities {
  connectionBlocked: boolean;
  authFailureClose: boolean;
  consumerCancelNotify: boolean;
}

export class Connection {
  readonly id: number;
  readonly name: string;
  state: State = 'header';
  private headerBytes = Buffer.alloc(0);
  private readonly parser: FrameParser;
  readonly writer = new FrameWriter();
  readonly channels = new Map<number, Channel>();
  user: User | undefined;
  vhostName = '';
  clientProperties: FieldTable = {};
  capabilities: ClientCapabilities = { connectionBlocked: false, authFailureClose: false, consumerCancelNotify: false };
  channelMax: number;
  frameMaxBytes: number;
  heartbeatS = 0;
  private lastRecvMs = Date.now();
  private sentSinceTick = false;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private closeTimer: NodeJS.Timeout | undefined;
  /** connection.blocked sent and not yet unblocked. */
  blockedSent = false;
  /** Sockets paused because a shard ring is full (backpressure on publishers). */
  readPaused = false;
  /** Consumers paused because our socket output is backed up. */
  outputCongested = false;
  readonly connectedAtMs = Date.now();
  // counters for list_connections / management
  recvBytes = 0;
  sentBytes = 0;
  recvFrames = 0;
  publishedMessages = 0;

  constructor(
    readonly broker: Broker,
    readonly transport: Transport,
  ) {
    this.id = broker.nextConnectionId();
    this.name = `${transport.remoteAddress}:${transport.remotePort} -> 127.0.0.1:${transport.localPort}`;
    this.channelMax = broker.config.channelMax;
    this.frameMaxBytes = broker.config.frameMaxBytes;
    this.parser = new FrameParser(this.frameMaxBytes);
    transport.onData((chunk) => this.onData(chunk));
    transport.onDrain(() => this.onDrain());
    transport.onClose(() => this.onTransportClosed());
    this.handshakeTimer = setTimeout(() => {
      this.broker.log.warn(`closing connection ${this.name}: handshake timeout`);
      this.transport.destroy();
    }, handshakeTimeoutMs);
  }

  get vhost() {
    return this.broker.vhost(this.vhostName);
  }

  // ---- input ------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    this.recvBytes += chunk.length;
    this.lastRecvMs = Date.now();
    try {
      if (this.state === 'header') {
        const rest = this.onHeaderBytes(chunk);
        if (rest === undefined || rest.length === 0) return;
        chunk = rest;
      }
      this.parser.push(chunk, this.onFrame);
    } catch (err) {
      this.fail(err);
    }
    this.flush();
  }

  /** Accumulates the 8-byte protocol header; a wrong one is answered with ours, then the socket closes. */
  private onHeaderBytes(chunk: Buffer): Buffer | undefined {
    const all = this.headerBytes.length === 0 ? chunk : Buffer.concat([this.headerBytes, chunk]);
    const need = PROTOCOL_HEADER.length;
    const prefix = all.subarray(0, Math.min(need, all.length));
    if (!PROTOCOL_HEADER.subarray(0, prefix.length).equals(prefix)) {
      this.broker.log.info(`closing connection ${this.name}: bad protocol header`);
      this.transport.write(PROTOCOL_HEADER);
      this.state = 'closed';
      this.transport.end();
      return undefined;
    }
    if (all.length < need) {
      this.headerBytes = Buffer.from(all);
      return undefined;
    }
    this.headerBytes = Buffer.alloc(0);
    this.state = 'start';
    this.sendMethod(0, {
      id: Method.ConnectionStart,
      args: {
        versionMajor: 0,
        versionMinor: 9,
        serverProperties: serverProperties(this.broker.config),
        mechanisms: 'PLAIN AMQPLAIN',
        locales: 'en_US',
      },
    });
    return all.subarray(need);
  }

  private readonly onFrame = (type: number, channel: number, payload: Buffer): void => {
    this.recvFrames++;
    if (this.state === 'closed') return;
    if (type === FrameType.heartbeat) {
      if (channel !== 0) throw new AmqpError(ReplyCode.frameError, `FRAME_ERROR - heartbeat frame on channel ${channel}`);
      return;
    }
    if (channel === 0) {
      if (type !== FrameType.method) {
        throw new AmqpError(ReplyCode.unexpectedFrame, `UNEXPECTED_FRAME - ${frameTypeName(type)} frame on channel 0`);
      }
      this.onMethod0(decodeMethod(payload));
      return;
    }
    if (this.state === 'closing') return; // discard everything but channel-0 close/close-ok
    if (this.state !== 'opened') {
      throw new AmqpError(ReplyCode.channelError, `CHANNEL_ERROR - expected 'connection.open' before frames on channel ${channel}`);
    }
    if (channel > this.channelMax) {
      throw new AmqpError(ReplyCode.channelError, `CHANNEL_ERROR - channel ${channel} above the negotiated channel_max ${this.channelMax}`);
    }
    let ch = this.channels.get(channel);
    if (ch === undefined) {
      if (type !== FrameType.method) {
        throw new AmqpError(ReplyCode.channelError, `CHANNEL_ERROR - ${frameTypeName(type)} frame on channel ${channel} that is not open`);
      }
      const m = decodeMethod(payload);
      if (m.id !== Method.ChannelOpen) {
        throw new AmqpError(
          ReplyCode.channelError,
          `CHANNEL_ERROR - expected 'channel.open' on channel ${channel}, got '${methodName(m.id)}'`,
          classIdOf(m.id),
          methodIdOf(m.id),
        );
      }
      ch = new Channel(this, channel);
      this.channels.set(channel, ch);
      this.sendMethod(channel, { id: Method.ChannelOpenOk, args: { channelId: '' } });
      return;
    }
    ch.onFrame(type, payload);
  };

  // ---- channel 0 --------------------------------------------------------------

  private onMethod0(m: AmqpMethod): void {
    const expect = (state: State, id: number): void => {
      if (this.state !== state || m.id !== id) {
        throw new AmqpError(
          ReplyCode.commandInvalid,
          `COMMAND_INVALID - unexpected '${methodName(m.id)}' during the connection handshake`,
          classIdOf(m.id),
          methodIdOf(m.id),
        );
      }
    };
    switch (m.id) {
      case Method.ConnectionStartOk:
        expect('start', m.id);
        return this.onStartOk(m.args.mechanism, m.args.response, m.args.clientProperties);
      case Method.ConnectionTuneOk:
        expect('tune', m.id);
        return this.onTuneOk(m.args.channelMax, m.args.frameMax, m.args.heartbeat);
      case Method.ConnectionOpen:
        expect('open', m.id);
        return this.onOpen(m.args.virtualHost);
      case Method.ConnectionClose:
        if (this.state === 'closing') {
          // Both sides closed at once: answer and finish.
          this.sendMethod(0, { id: Method.ConnectionCloseOk, args: {} });
          this.finish();
          return;
        }
        this.broker.log.info(`connection ${this.name} closed by client (${m.args.replyCode} ${m.args.replyText})`);
        this.sendMethod(0, { id: Method.ConnectionCloseOk, args: {} });
        this.flush();
        this.finish();
        return;
      case Method.ConnectionCloseOk:
        if (this.state === 'closing') this.finish();
        return;
      case Method.ConnectionBlocked:
      case Method.ConnectionUnblocked:
        return; // a client telling us it is blocked has no effect on a broker
      case Method.ConnectionUpdateSecret:
        this.sendMethod(0, { id: Method.ConnectionUpdateSecretOk, args: {} });
        return;
      default:
        throw new AmqpError(
          ReplyCode.commandInvalid,
          `COMMAND_INVALID - '${methodName(m.id)}' is not allowed on channel 0`,
          classIdOf(m.id),
          methodIdOf(m.id),
        );
    }
  }

  private onStartOk(mechanism: string, response: Buffer, clientProperties: FieldTable): void {
    this.clientProperties = clientProperties;
    const caps = clientProperties['capabilities'];
    if (caps?.type === 'F') {
      const flag = (k: string): boolean => caps.value[k]?.type === 't' && caps.value[k]?.value === true;
      this.capabilities = {
        connectionBlocked: flag('connection.blocked'),
        authFailureClose: flag('authentication_failure_close'),
        consumerCancelNotify: flag('consumer_cancel_notify'),
      };
    }
    let creds: { username: string; password: string } | undefined;
    if (mechanism === 'PLAIN') creds = parsePlain(response);
    else if (mechanism === 'AMQPLAIN') creds = parseAmqplain(response);
    else {
      throw new AmqpError(ReplyCode.commandInvalid, `COMMAND_INVALID - unknown authentication mechanism '${mechanism}'`, 10, 11);
    }
    const user = creds === undefined ? undefined : this.broker.authenticate(creds.username, creds.password, this.transport.remoteAddress);
    if (user === undefined) {
      const name = creds?.username ?? '';
      this.broker.log.warn(`connection ${this.name}: login refused for user '${name}' (mechanism ${mechanism})`);
      if (this.capabilities.authFailureClose) {
        throw new AmqpError(
          ReplyCode.accessRefused,
          `ACCESS_REFUSED - Login was refused using authentication mechanism ${mechanism}. For details see the broker logfile.`,
          10,
          11,
        );
      }
      this.state = 'closed';
      this.transport.destroy();
      return;
    }
    this.user = user;
    this.state = 'tune';
    this.sendMethod(0, {
      id: Method.ConnectionTune,
      args: { channelMax: this.broker.config.channelMax, frameMax: this.broker.config.frameMaxBytes, heartbeat: this.broker.config.heartbeatS },
    });
  }

  private onTuneOk(channelMax: number, frameMax: number, heartbeat: number): void {
    const serverFrameMax = this.broker.config.frameMaxBytes;
    if (frameMax !== 0 && frameMax < frameMinBytes) {
      throw new AmqpError(ReplyCode.notAllowed, `NOT_ALLOWED - frame_max=${frameMax} < ${frameMinBytes} min size`, 10, 31);
    }
    if (frameMax > serverFrameMax) {
      throw new AmqpError(ReplyCode.notAllowed, `NOT_ALLOWED - frame_max=${frameMax} > ${serverFrameMax} max size`, 10, 31);
    }
    const serverChannelMax = this.broker.config.channelMax;
    if (channelMax > serverChannelMax) {
      throw new AmqpError(ReplyCode.notAllowed, `NOT_ALLOWED - channel_max=${channelMax} > ${serverChannelMax} max size`, 10, 31);
    }
    this.frameMaxBytes = frameMax === 0 ? serverFrameMax : frameMax;
    this.channelMax = channelMax === 0 ? serverChannelMax : channelMax;
    this.parser.setFrameMax(this.frameMaxBytes);
    this.heartbeatS = heartbeat;
    this.state = 'open';
    this.startHeartbeats();
  }

  private onOpen(vhostName: string): void {
    const user = this.user;
    if (user === undefined) throw new AmqpError(ReplyCode.commandInvalid, 'COMMAND_INVALID - not authenticated', 10, 40);
    if (this.broker.vhosts.get(vhostName) === undefined) {
      throw new AmqpError(ReplyCode.notAllowed, `NOT_ALLOWED - vhost ${vhostName} not found`, 10, 40);
    }
    if (!user.permissions.has(vhostName)) {
      throw new AmqpError(ReplyCode.notAllowed, `NOT_ALLOWED - access to vhost '${vhostName}' refused for user '${user.name}'`, 10, 40);
    }
    this.vhostName = vhostName;
    this.state = 'opened';
    if (this.handshakeTimer !== undefined) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = undefined;
    this.sendMethod(0, { id: Method.ConnectionOpenOk, args: { knownHosts: '' } });
    this.broker.log.info(`accepted connection ${this.name} (user '${user.name}', vhost '${vhostName}')`);
    if (this.broker.blockedReason !== undefined) this.setBlocked(this.broker.blockedReason);
  }

  // ---- heartbeats -------------------------------------------------------------

  private startHeartbeats(): void {
    if (this.heartbeatS === 0) return;
    const intervalMs = (this.heartbeatS * 1000) / 2;
    this.heartbeatTimer = setInterval(() => {
      if (this.state === 'closed') return;
      // Dead peer: nothing at all received for two heartbeat intervals.
      if (Date.now() - this.lastRecvMs > this.heartbeatS * 2000) {
        this.broker.log.warn(`closing connection ${this.name}: missed heartbeats from client, timeout: ${this.heartbeatS}s`);
        this.transport.destroy();
        return;
      }
      if (!this.sentSinceTick) {
        this.writer.heartbeat();
        this.flush();
      }
      this.sentSinceTick = false;
    }, intervalMs);
    this.heartbeatTimer.unref();
  }

  // ---- output -----------------------------------------------------------------

  sendMethod(channel: number, m: AmqpMethod): void {
    this.writer.method(channel, m);
    this.broker.markDirty(this);
  }

  /** Hands everything written so far to the socket in one write. */
  flush(): void {
    if (this.writer.length === 0 || this.state === 'closed') return;
    const buf = this.writer.take();
    this.sentBytes += buf.length;
    this.sentSinceTick = true;
    this.transport.write(buf);
    if (!this.outputCongested && this.transport.bufferedBytes > socketHighWaterBytes) {
      this.outputCongested = true;
      for (const ch of this.channels.values()) ch.updateFlow();
    }
  }

  private onDrain(): void {
    if (!this.outputCongested) return;
    this.outputCongested = false;
    for (const ch of this.channels.values()) ch.updateFlow();
  }

  setBlocked(reason: string): void {
    if (this.blockedSent || !this.capabilities.connectionBlocked || this.state !== 'opened') return;
    this.blockedSent = true;
    this.sendMethod(0, { id: Method.ConnectionBlocked, args: { reason } });
  }

  setUnblocked(): void {
    if (!this.blockedSent) return;
    this.blockedSent = false;
    this.sendMethod(0, { id: Method.ConnectionUnblocked, args: {} });
  }

  pauseReading(): void {
    if (this.readPaused) return;
    this.readPaused = true;
    this.transport.pause();
  }

  resumeReading(): void {
    if (!this.readPaused) return;
    this.readPaused = false;
    this.transport.resume();
  }

  // ---- errors and close -------------------------------------------------------

  /** Any error thrown while handling input: hard AMQP errors close the connection; anything else is a bug, reported as 541. */
  fail(err: unknown): void {
    if (err instanceof AmqpError) {
      this.close(err.replyCode, err.replyText, err.classId, err.methodId);
      return;
    }
    this.broker.log.error(`connection ${this.name}: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    this.close(ReplyCode.internalError, 'INTERNAL_ERROR', 0, 0);
  }

  /** Server-initiated connection.close; the socket goes once close-ok arrives (or after a timeout). */
  close(replyCode: number, replyText: string, classId = 0, methodId = 0): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    if (!isHardError(replyCode) && replyCode !== ReplyCode.connectionForced && replyCode !== ReplyCode.accessRefused) {
      this.broker.log.warn(`connection ${this.name}: closing with soft error code ${replyCode}`);
    }
    this.broker.log.warn(`closing connection ${this.name}: ${replyText}`);
    const wasHandshake = this.state !== 'opened';
    this.state = 'closing';
    this.cleanupChannels();
    this.sendMethod(0, { id: Method.ConnectionClose, args: { replyCode, replyText: replyText.slice(0, 255), classId, methodId } });
    this.flush();
    if (wasHandshake) {
      // During the handshake RabbitMQ does not wait for close-ok.
      this.finish();
      return;
    }
    this.closeTimer = setTimeout(() => this.finish(), closeOkTimeoutMs);
    this.closeTimer.unref();
  }

  private cleanupChannels(): void {
    for (const ch of this.channels.values()) ch.cleanup();
    this.channels.clear();
  }

  private finish(): void {
    if (this.state === 'closed') return;
    this.flush();
    this.state = 'closed';
    this.transport.end();
    this.teardown();
  }

  private onTransportClosed(): void {
    if (this.state !== 'closed' && this.state !== 'header') {
      this.broker.log.info(`connection ${this.name} closed (socket)`);
    }
    this.state = 'closed';
    this.teardown();
  }

  private tornDown = false;
  private teardown(): void {
    if (this.tornDown) return;
    this.tornDown = true;
    if (this.heartbeatTimer !== undefined) clearInterval(this.heartbeatTimer);
    if (this.handshakeTimer !== undefined) clearTimeout(this.handshakeTimer);
    if (this.closeTimer !== undefined) clearTimeout(this.closeTimer);
    this.cleanupChannels();
    this.broker.connectionClosed(this);
  }

  /** Called by a channel once it has fully closed. */
  channelClosed(ch: Channel): void {
    if (this.channels.get(ch.id) === ch) this.channels.delete(ch.id);
  }
}

function frameTypeName(type: number): string {
  switch (type) {
    case FrameType.method:
      return 'method';
    case FrameType.header:
      return 'content header';
    case FrameType.body:
      return 'content body';
    default:
      return `type ${type}`;
  }
}
