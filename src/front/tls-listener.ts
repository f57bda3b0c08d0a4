/**
 * The AMQPS listener: AMQP 0-9-1 over TLS on a port of its own, as RabbitMQ's 5671 beside
 * 5672. The same Connection runs over the TLS socket. Client certificates follow RabbitMQ's
 * ssl_options: 'none' does not ask for one; 'peer' (verify_peer) asks and refuses one that
 * does not chain to the CA file, but lets a client without one in; 'require' (verify_peer
 * with fail_if_no_peer_cert) refuses a client without one too.
 */
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { createSecureContext, createServer, type TLSSocket } from 'node:tls';
import type { Logger } from '../node/logger.js';
import { StartError } from '../node/start-error.js';
import type { Broker } from './broker.js';
import { Connection } from './connection.js';
import { socketTransport } from './transport.js';

export type TlsVerify = 'none' | 'peer' | 'require';

const handshakeFailureWindowMs = 10_000;
const handshakeFailureLinesPerWindow = 20;

/** RabbitMQ's ssl_handshake_timeout is 5 s; Node's default, 120 s, would let idle sockets pile up. */
const tlsHandshakeTimeoutMs = 10_000;

export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** '' when client certificates are not verified. */
  caFile: string;
  verify: TlsVerify;
}

export interface TlsSettings {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer | undefined;
  readonly verify: TlsVerify;
}

function readPem(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new StartError(`${flag} ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Reads and checks the PEM files at start-up, so a wrong path or a key that does not match the certificate stops the node with a clear message. */
export function loadTlsSettings(files: TlsFiles): TlsSettings {
  const cert = readPem('--tls-cert', files.certFile);
  const key = readPem('--tls-key', files.keyFile);
  const ca = files.caFile === '' ? undefined : readPem('--tls-ca', files.caFile);
  try {
    createSecureContext({ cert, key, ca, minVersion: 'TLSv1.2' });
  } catch (err) {
    throw new StartError(`TLS: --tls-cert ${files.certFile} with --tls-key ${files.keyFile}${ca === undefined ? '' : ` and --tls-ca ${files.caFile}`}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return { cert, key, ca, verify: files.verify };
}

export interface TlsListener {
  readonly port: number;
  close(): void;
}

function peerLabel(socket: TLSSocket): string {
  return `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
}

export async function startTlsListener(broker: Broker, settings: TlsSettings, host: string, port: number, log: Logger): Promise<TlsListener> {
  const server = createServer(
    {
      cert: settings.cert,
      key: settings.key,
      ca: settings.ca,
      requestCert: settings.verify !== 'none',
      // 'peer' lets a client without a certificate in, so the handshake cannot refuse for us: see below.
      rejectUnauthorized: settings.verify === 'require',
      minVersion: 'TLSv1.2',
      // A client that opens the port and says nothing is dropped as the AMQP handshake timer would drop it.
      handshakeTimeout: tlsHandshakeTimeoutMs,
    },
    (socket: TLSSocket) => {
      if (settings.verify === 'peer' && !socket.authorized && Object.keys(socket.getPeerCertificate()).length > 0) {
        log.warn(`TLS client ${peerLabel(socket)} refused: its certificate does not verify (${String(socket.authorizationError)})`);
        socket.destroy();
        return;
      }
      const conn = new Connection(broker, socketTransport(socket));
      broker.connections.add(conn);
    },
  );
  // One line per failed handshake, up to handshakeFailureLinesPerWindow a window; past that they
  // are counted and summed up, so a flood of bad handshakes cannot flood the log.
  let windowStartMs = 0;
  let linesInWindow = 0;
  let suppressed = 0;
  let summaryTimer: NodeJS.Timeout | undefined;
  const summarize = (): void => {
    clearTimeout(summaryTimer);
    summaryTimer = undefined;
    if (suppressed > 0) log.warn(`TLS: ${suppressed} more failed handshake(s) within ${handshakeFailureWindowMs / 1000} s were not logged one by one`);
    suppressed = 0;
  };
  server.on('tlsClientError', (err, socket) => {
    const nowMs = performance.now();
    if (nowMs - windowStartMs >= handshakeFailureWindowMs) {
      summarize();
      windowStartMs = nowMs;
      linesInWindow = 0;
    }
    if (linesInWindow >= handshakeFailureLinesPerWindow) {
      suppressed++;
      summaryTimer ??= setTimeout(summarize, windowStartMs + handshakeFailureWindowMs - nowMs).unref();
      return;
    }
    linesInWindow++;
    // OpenSSL's reason ("wrong version number": plain AMQP sent to the TLS port) reads better than its whole error string.
    const reason = (err as { reason?: unknown }).reason;
    const who = socket.remoteAddress === undefined ? 'a client that hung up' : peerLabel(socket);
    log.warn(`TLS handshake with ${who} failed: ${typeof reason === 'string' ? reason : err.message}`);
  });
  server.on('error', (err) => log.error(`TLS listener error: ${err.message}`));
  server.listen(port, host);
  await once(server, 'listening');
  const addr = server.address();
  const bound = typeof addr === 'object' && addr !== null ? addr.port : port;
  return {
    port: bound,
    close: () => {
      clearTimeout(summaryTimer);
      server.close();
    },
  };
}
