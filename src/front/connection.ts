/**
 * One AMQP connection on the front: protocol header, handshake (start/tune/open),
 * channel 0, heartbeats, frame dispatch to channels, coalesced output, and teardown.
 */
import { FrameParser } from '../amqp/frame-parser.js';
import { FrameWriter } from '../amqp/frame-writer.js';
import { decodeMethod } from '../amqp/method-codec.js';
import { AmqpError, octetsSnippet } from '../amqp/errors.js';
import { PROTOCOL_HEADER } from '../amqp/constants.js';
import { FrameType, Method, ReplyCode, frameMinBytes, isHardError, classIdOf, methodIdOf } from '../amqp/spec.generated.js';
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
/** After we end our side of the socket, how long the peer has to end its own before we reset it. */
const endTimeoutMs = 3_000;
/** The other protocol header RabbitMQ accepts and speaks 0-9-1 on: AMQP 0-9 ('AMQP' 1 1 0 9). */
const PROTOCOL_HEADER_0_9: Buffer = Buffer.from([0x41, 0x4d, 0x51, 0x50, 1, 1, 0, 9]);
/** The smallest channel_max a client may ask for (RabbitMQ's CHANNEL_MIN). */
const channelMinCount = 1;
/** RabbitMQ's names for the handshake states, used in its reply texts. */
const rabbitStateName: Record<State, string> = {
  header: 'handshake',
  start: 'starting',
  tune: 'tuning',
  open: 'opening',
  opened: 'running',
  closing: 'closing',
  closed: 'closed',
};
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
  /** The SASL mechanism the client logged in with ('' before it did). */
  authMechanism = '';
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
  private endTimer: NodeJS.Timeout | undefined;
  /** The frame parser failed: frame boundaries are lost and no more input is read. */
  private inputLost = false;
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
  /** Unroutable mandatory messages sent back with basic.return. */
  returnedMessages = 0;

  constructor(
    readonly broker: Broker,
    readonly transport: Transport,
  ) {
    this.id = broker.nextConnectionId();
    this.name = `${transport.remoteAddress}:${transport.remotePort} -> 127.0.0.1:${transport.localPort}`;
    this.channelMax = broker.config.channelMax;
    this.frameMaxBytes = broker.config.frameMaxBytes;
    // Until tune-ok the limit is frame-min (as rabbit_reader's initial frame_max), so no peer
    // makes us buffer more than 4 KiB before it has logged in.
    this.parser = new FrameParser(frameMinBytes);
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
    if (this.state === 'closed' || this.inputLost) return;
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
      // onFrame catches its own errors, so this one is the parser's: we have lost the frame
      // boundaries and read nothing more from this peer (rabbit_reader's fatal_frame_error).
      this.inputLost = true;
      this.fail(err);
    }
    // Publish what this chunk produced at once — records to the shards (one notify per ring)
    // and replies to sockets — rather than at the next setImmediate, which adds a loop turn
    // to every message's ring transit.
    this.broker.flushAll();
  }

  /**
   * Accumulates the 8-byte protocol header. As rabbit_reader does, 'AMQP' 0 0 9 1 and the
   * 0-9 header 'AMQP' 1 1 0 9 both start a 0-9-1 connection; anything else is answered with
   * our header and the socket closes (bytes that cannot begin with 'AMQP' at once).
   */
  private onHeaderBytes(chunk: Buffer): Buffer | undefined {
    const all = this.headerBytes.length === 0 ? chunk : Buffer.concat([this.headerBytes, chunk]);
    const need = PROTOCOL_HEADER.length;
    const protocolIdBytes = 4;
    const prefix = all.subarray(0, Math.min(protocolIdBytes, all.length));
    if (!PROTOCOL_HEADER.subarray(0, prefix.length).equals(prefix)) {
      this.refuseHeader(all);
      return undefined;
    }
    if (all.length < need) {
      this.headerBytes = Buffer.from(all);
      return undefined;
    }
    const header = all.subarray(0, need);
    if (!header.equals(PROTOCOL_HEADER) && !header.equals(PROTOCOL_HEADER_0_9)) {
      this.refuseHeader(all);
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
        // EXTERNAL only where a verified client certificate can name the user.
        mechanisms: this.transport.peerCertificateName === undefined ? 'PLAIN AMQPLAIN' : 'PLAIN AMQPLAIN EXTERNAL',
        locales: 'en_US',
      },
    });
    return all.subarray(need);
  }

  private refuseHeader(received: Buffer): void {
    this.broker.log.info(`closing connection ${this.name}: bad protocol header ${octetsSnippet(received, 0, received.length)}`);
    this.transport.write(PROTOCOL_HEADER);
    this.endSocket();
  }

  private readonly onFrame = (type: number, channel: number, payload: Buffer): void => {
    this.recvFrames++;
    if (this.state === 'closed') return;
    try {
      this.onFrameUnchecked(type, channel, payload);
    } catch (err) {
      this.fail(err);
    }
  };

  /** Dispatches one frame; the reply codes follow rabbit_reader:handle_frame and rabbit_command_assembler. */
  private onFrameUnchecked(type: number, channel: number, payload: Buffer): void {
    if (type === FrameType.heartbeat) {
      if (channel !== 0) throw unexpectedFrame(type, payload);
      return;
    }
    if (channel === 0) {
      if (type !== FrameType.method) throw unexpectedFrame(type, payload);
      this.onMethod0(decodeMethod(payload));
      return;
    }
    if (this.state === 'closing') return; // discard everything but channel-0 close/close-ok
    if (this.state !== 'opened') throw unexpectedFrame(type, payload);
    const ch = this.channels.get(channel);
    if (ch === undefined) {
      this.openChannel(channel, type, payload);
      return;
    }
    ch.onFrame(type, payload);
  }

  /** The first frame on a channel id not in use must be channel.open. */
  private openChannel(channel: number, type: number, payload: Buffer): void {
    const max = this.channelMax;
    if (max !== 0 && this.channels.size >= max) {
      throw AmqpError.of(ReplyCode.notAllowed, `number of channels opened (${this.channels.size}) has reached the negotiated channel_max (${max})`);
    }
    if (max !== 0 && channel > max) {
      // RabbitMQ counts channels but never checks their numbers; the spec allows 1..channel-max only.
      throw AmqpError.of(ReplyCode.notAllowed, `channel ${channel} is above the negotiated channel_max (${max})`);
    }
    if (type !== FrameType.method) {
      throw AmqpError.of(ReplyCode.unexpectedFrame, 'expected method frame, got non method frame instead');
    }
    const m = decodeMethod(payload);
    if (m.id !== Method.ChannelOpen) {
      throw AmqpError.of(ReplyCode.channelError, `expected 'channel.open'`, classIdOf(m.id), methodIdOf(m.id));
    }
    const ch = new Channel(this, channel);
    this.channels.set(channel, ch);
    this.sendMethod(channel, { id: Method.ChannelOpenOk, args: { channelId: '' } });
  }

  // ---- channel 0 --------------------------------------------------------------

  /** Channel-0 methods; anything out of place is rabbit_reader's 504 "unexpected method in connection state". */
  private onMethod0(m: AmqpMethod): void {
    const unexpected = (): AmqpError =>
      AmqpError.of(ReplyCode.channelError, `unexpected method in connection state ${rabbitStateName[this.state]}`, classIdOf(m.id), methodIdOf(m.id));
    const expect = (state: State): void => {
      if (this.state !== state) throw unexpected();
    };
    switch (m.id) {
      case Method.ConnectionStartOk:
        expect('start');
        return this.onStartOk(m.args.mechanism, m.args.response, m.args.clientProperties);
      case Method.ConnectionTuneOk:
        expect('tune');
        return this.onTuneOk(m.args.channelMax, m.args.frameMax, m.args.heartbeat);
      case Method.ConnectionOpen:
        expect('open');
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
        if (this.state !== 'closing') throw unexpected();
        this.finish();
        return;
      case Method.ConnectionUpdateSecret:
        expect('opened');
        this.sendMethod(0, { id: Method.ConnectionUpdateSecretOk, args: {} });
        return;
      default:
        // includes connection.blocked/unblocked from a client and channel methods on channel 0
        if (this.state === 'closing') return;
        throw unexpected();
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
    const { user, name } = this.login(mechanism, response);
    if (user === undefined) {
      this.broker.log.warn(`connection ${this.name}: login refused for user '${name}' (mechanism ${mechanism})`);
      // Sent only to clients with the authentication_failure_close capability (see close()); RabbitMQ names no method.
      throw AmqpError.of(ReplyCode.accessRefused, `Login was refused using authentication mechanism ${mechanism}. For details see the broker logfile.`);
    }
    this.user = user;
    this.authMechanism = mechanism;
    this.state = 'tune';
    this.sendMethod(0, {
      id: Method.ConnectionTune,
      args: { channelMax: this.broker.config.channelMax, frameMax: this.broker.config.frameMaxBytes, heartbeat: this.broker.config.heartbeatS },
    });
  }

  /**
   * The user a start-ok names and proves (undefined: refused), and the name it claimed, for the
   * refusal's log line. EXTERNAL: the verified client certificate is the credential.
   */
  private login(mechanism: string, response: Buffer): { user: User | undefined; name: string } {
    const remote = this.transport.remoteAddress;
    if (mechanism === 'EXTERNAL') {
      const name = this.transport.peerCertificateName;
      return { user: name === undefined ? undefined : this.broker.certificateUser(name, remote), name: name ?? '' };
    }
    let creds: { username: string; password: string } | undefined;
    if (mechanism === 'PLAIN') creds = parsePlain(response);
    else if (mechanism === 'AMQPLAIN') creds = parseAmqplain(response);
    else throw AmqpError.of(ReplyCode.commandInvalid, `unknown authentication mechanism '${mechanism}'`, 10, 11);
    if (creds === undefined) return { user: undefined, name: '' };
    return { user: this.broker.authenticate(creds.username, creds.password, remote), name: creds.username };
  }

  private onTuneOk(channelMax: number, frameMax: number, heartbeat: number): void {
    const serverFrameMax = this.broker.config.frameMaxBytes;
    const serverChannelMax = this.broker.config.channelMax;
    checkNegotiated('frame_max', frameMinBytes, serverFrameMax, frameMax);
    checkNegotiated('channel_max', channelMinCount, serverChannelMax, channelMax);
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
    if (this.broker.holds.blockedReason !== undefined) this.setBlocked(this.broker.holds.blockedReason);
  }

  // ---- heartbeats -------------------------------------------------------------

  private startHeartbeats(): void {
    if (this.heartbeatS === 0) return;
    const intervalMs = (this.heartbeatS * 1000) / 2;
    this.heartbeatTimer = setInterval(() => {
      if (this.state === 'closed') return;
      // Dead peer: nothing at all received for two heartbeat intervals. A socket this node does
      // not read (flow, a resource alarm) is not judged, as RabbitMQ disables heartbeat monitoring then.
      if (this.readPaused) this.lastRecvMs = Date.now();
      else if (Date.now() - this.lastRecvMs > this.heartbeatS * 2000) {
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
    // Nothing after connection.close: a closing connection stays as it was told.
    if (!this.blockedSent || this.state !== 'opened') return;
    this.blockedSent = false;
    this.sendMethod(0, { id: Method.ConnectionUnblocked, args: {} });
  }

  hasConsumers(): boolean {
    for (const ch of this.channels.values()) if (ch.consumers.size > 0) return true;
    return false;
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

  /**
   * Server-initiated connection.close; the socket goes once close-ok arrives (or after a
   * timeout), at once when we no longer read input. During the handshake only the errors
   * rabbit_reader:handle_exception answers get a connection.close; the rest just lose the socket.
   */
  close(replyCode: number, replyText: string, classId = 0, methodId = 0): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    if (!isHardError(replyCode) && replyCode !== ReplyCode.connectionForced && replyCode !== ReplyCode.accessRefused) {
      this.broker.log.warn(`connection ${this.name}: closing with soft error code ${replyCode}`);
    }
    this.broker.log.warn(`closing connection ${this.name}: ${replyText}`);
    const answered = this.answersWithClose(replyCode);
    this.state = 'closing';
    this.cleanupChannels();
    if (!answered) {
      this.finish();
      return;
    }
    this.sendMethod(0, { id: Method.ConnectionClose, args: { replyCode, replyText: replyText.slice(0, 255), classId, methodId } });
    this.flush();
    if (this.inputLost) {
      this.finish();
      return;
    }
    this.closeTimer = setTimeout(() => this.finish(), closeOkTimeoutMs);
    this.closeTimer.unref();
  }

  /** Whether an error in the current state is told to the peer (rabbit_reader:handle_exception's clauses). */
  private answersWithClose(replyCode: number): boolean {
    switch (this.state) {
      case 'opened':
      case 'open':
        return true;
      case 'start':
        return replyCode === ReplyCode.accessRefused && this.capabilities.authFailureClose;
      case 'tune':
        return replyCode === ReplyCode.notAllowed;
      default:
        return false;
    }
  }

  private cleanupChannels(): void {
    for (const ch of this.channels.values()) ch.cleanup();
    this.channels.clear();
  }

  private finish(): void {
    if (this.state === 'closed') return;
    this.flush();
    this.endSocket();
    this.teardown();
  }

  /** Ends our side after what was written; a peer that does not end its side in time is reset. */
  private endSocket(): void {
    this.state = 'closed';
    this.transport.end();
    if (this.endTimer !== undefined) return;
    this.endTimer = setTimeout(() => this.transport.destroy(), endTimeoutMs);
    this.endTimer.unref();
  }

  private onTransportClosed(): void {
    if (this.state !== 'closed' && this.state !== 'header') {
      this.broker.log.info(`connection ${this.name} closed (socket)`);
    }
    if (this.endTimer !== undefined) clearTimeout(this.endTimer);
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

/**
 * rabbit_reader:validate_negotiated_integer_value: a tune-ok value under the minimum, or 0
 * ("no limit") or over the maximum when the server has one, is 530 naming connection.tune.
 */
function checkNegotiated(field: string, min: number, serverValue: number, clientValue: number): void {
  let bound: string | undefined;
  if (clientValue !== 0 && clientValue < min) bound = `lower than the minimum allowed value (${min})`;
  else if (serverValue !== 0 && (clientValue === 0 || clientValue > serverValue)) bound = `higher than the maximum allowed value (${serverValue})`;
  if (bound === undefined) return;
  const detail = field === 'channel_max' && clientValue === 0 ? ' (no limit)' : '';
  throw AmqpError.of(ReplyCode.notAllowed, `negotiated ${field} = ${clientValue}${detail} is ${bound}`, classIdOf(Method.ConnectionTune), methodIdOf(Method.ConnectionTune));
}

/** 505 as rabbit_reader:unexpected_frame words it: "type 2, all octets = <<...>>". */
function unexpectedFrame(type: number, payload: Buffer): AmqpError {
  const which = payload.length <= 16 ? 'all' : 'first 16';
  return AmqpError.of(ReplyCode.unexpectedFrame, `type ${type}, ${which} octets = ${octetsSnippet(payload, 0, payload.length)}`);
}
