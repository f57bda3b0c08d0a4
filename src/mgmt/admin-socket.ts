/**
 * The node's admin socket: a Unix domain socket at DATA_DIR/warren.sock that warrenctl talks
 * to. The protocol is JSON lines: each request line is an AdminRequest
 * ({cmd, args, vhost?, formatter?, options?, definitions?}), answered in order by one
 * AdminReply line ({ok: true, columns?, rows?, result?} or {ok: false, error, exitCode}).
 *
 * Access is the file system's: the socket is created mode 0600, so only the user the node
 * runs as (and root) can administer it — the role RabbitMQ's Erlang cookie plays.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Broker } from '../front/broker.js';
import type { Logger } from '../node/logger.js';
import { dispatchAdminRequest, type AdminReply, type AdminRequest } from './admin-dispatch.js';

export const adminSocketName = 'warren.sock';
/** A request line longer than this is refused (a definitions import of a big RabbitMQ setup fits well within it). */
const requestBytesMax = 64 * 1024 * 1024;
/** sun_path is 108 bytes on Linux (104 on macOS); longer paths cannot be bound. */
const socketPathBytesMax = 103;
/** How long a leftover socket file gets to answer before it is taken for stale. */
const staleProbeMs = 500;

export interface AdminSocket {
  /** The socket path, or undefined when it could not be bound (the node runs without it). */
  readonly path: string | undefined;
  close(): Promise<void>;
}

export function adminSocketPath(dataDir: string): string {
  return join(dataDir, adminSocketName);
}

/** Whether something answers on the socket path (another node using the same data directory). */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    const done = (answers: boolean): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(answers);
    };
    const timer = setTimeout(() => done(false), staleProbeMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

function serve(broker: Broker, socket: Socket, log: Logger): void {
  let buffered = '';
  let chain = Promise.resolve();
  socket.setEncoding('utf8');
  socket.on('error', () => socket.destroy());
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    if (buffered.length > requestBytesMax) {
      socket.end(`${JSON.stringify({ ok: false, error: `request larger than ${requestBytesMax} bytes`, exitCode: 65 })}\n`);
      buffered = '';
      return;
    }
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.trim() === '') continue;
      // Requests on one connection are answered in order, one at a time.
      chain = chain.then(async () => {
        const reply = await handleLine(broker, line, log);
        if (!socket.destroyed) socket.write(`${JSON.stringify(reply)}\n`);
      });
    }
  });
}

async function handleLine(broker: Broker, line: string, log: Logger): Promise<AdminReply> {
  let req: AdminRequest;
  try {
    req = JSON.parse(line) as AdminRequest;
  } catch {
    return { ok: false, error: 'Error: the request is not valid JSON', exitCode: 65 };
  }
  if (typeof req !== 'object' || req === null) return { ok: false, error: 'Error: the request must be a JSON object', exitCode: 65 };
  log.debug(`admin socket: ${String(req.cmd)}`);
  const reply = await dispatchAdminRequest(broker, req);
  if (!reply.ok) log.debug(`admin socket: ${String(req.cmd)} failed: ${reply.error}`);
  return reply;
}

/** Binds the admin socket; a node whose data directory path is too long for one runs without it (logged). */
export async function startAdminSocket(broker: Broker, config: { dataDir: string }, log: Logger): Promise<AdminSocket> {
  const path = adminSocketPath(config.dataDir);
  if (Buffer.byteLength(path) > socketPathBytesMax) {
    log.error(`admin socket not started: ${path} is longer than ${socketPathBytesMax} bytes (use a shorter --data-dir); warrenctl cannot reach this node`);
    return { path: undefined, close: () => Promise.resolve() };
  }
  if (existsSync(path)) {
    if (await socketAnswers(path)) throw new Error(`another node is using ${config.dataDir} (its admin socket ${path} answers)`);
    unlinkSync(path);
  }
  const clients = new Set<Socket>();
  const server: Server = createServer((socket) => {
    clients.add(socket);
    socket.on('close', () => clients.delete(socket));
    serve(broker, socket, log);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(path, 0o600);
  server.on('error', (err) => log.error(`admin socket error: ${err.message}`));
  log.info(`admin socket listening at ${path}`);
  return {
    path,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of clients) c.destroy();
        server.close(() => resolve());
      }),
  };
}
