/**
 * The byte stream a connection speaks AMQP over: a TCP socket, or (later) a WebSocket.
 * The connection code is the same for both, so there is one protocol stack.
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';

export interface Transport {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localPort: number;
  /**
   * The common name of the client certificate a TLS connection presented and the node verified
   * (undefined otherwise): the login of the EXTERNAL mechanism.
   */
  readonly peerCertificateName?: string | undefined;
  /** For a TLS connection: the protocol version and cipher its handshake settled on. */
  readonly tls?: { readonly protocol: string; readonly cipher: string } | undefined;
  /** Returns false when the transport's buffer is past its high-water mark. */
  write(data: Buffer): boolean;
  /** Bytes accepted by write() and not yet handed to the OS. */
  readonly bufferedBytes: number;
  end(): void;
  destroy(): void;
  pause(): void;
  resume(): void;
  onData(cb: (chunk: Buffer) => void): void;
  onDrain(cb: () => void): void;
  onClose(cb: () => void): void;
}

/** The CN of a verified client certificate (RabbitMQ's ssl_cert_login_from = common_name). */
function verifiedCommonName(socket: Socket): string | undefined {
  if (!(socket instanceof TLSSocket) || !socket.authorized) return undefined;
  const cn: unknown = socket.getPeerCertificate().subject?.CN;
  return typeof cn === 'string' && cn !== '' ? cn : undefined;
}

export function socketTransport(socket: Socket): Transport {
  socket.setNoDelay(true);
  return {
    remoteAddress: socket.remoteAddress ?? '',
    remotePort: socket.remotePort ?? 0,
    localPort: socket.localPort ?? 0,
    peerCertificateName: verifiedCommonName(socket),
    tls: socket instanceof TLSSocket ? { protocol: socket.getProtocol() ?? '', cipher: socket.getCipher().name } : undefined,
    write: (data) => socket.write(data),
    get bufferedBytes() {
      return socket.writableLength;
    },
    end: () => socket.end(),
    destroy: () => socket.destroy(),
    pause: () => socket.pause(),
    resume: () => socket.resume(),
    onData: (cb) => socket.on('data', cb),
    onDrain: (cb) => socket.on('drain', cb),
    onClose: (cb) => {
      socket.on('close', cb);
      // Resets and other socket errors end in 'close'; without a listener they would crash the node.
      socket.on('error', () => socket.destroy());
    },
  };
}
