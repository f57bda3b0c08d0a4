/**
 * The byte stream a connection speaks AMQP over: a TCP socket, or (later) a WebSocket.
 * The connection code is the same for both, so there is one protocol stack.
 */
import type { Socket } from 'node:net';

export interface Transport {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localPort: number;
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

export function socketTransport(socket: Socket): Transport {
  socket.setNoDelay(true);
  return {
    remoteAddress: socket.remoteAddress ?? '',
    remotePort: socket.remotePort ?? 0,
    localPort: socket.localPort ?? 0,
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
