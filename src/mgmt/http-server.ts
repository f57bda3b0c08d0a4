/**
 * HTTP plumbing on uWebSockets.js for the management and Prometheus listeners: listening,
 * reading a request (headers synchronously, the body through res.onData, bounded), and
 * answering once, never after the client went away.
 *
 * uWS rules this file keeps: `req` is valid only during the handler call, so everything is
 * copied out first; res.onAborted is registered before any asynchronous step, and after an
 * abort `res` is never touched again; body chunks are copied, because their ArrayBuffer is
 * reused once the callback returns; answers given outside a uWS callback are corked.
 */
import uWS from 'uWebSockets.js';
import type { HttpResponse, TemplatedApp, us_listen_socket, us_socket } from 'uWebSockets.js';
import type { Logger } from '../node/logger.js';
import { reasonPhrase, type HttpRequest, type Reply } from './http-types.js';

/** Methods whose body is read; a GET's body, if any, is ignored. */
const bodyMethods = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** Headers the handlers may look at (everything else is not copied out of the request). */
const keptHeaders = ['authorization', 'content-type', 'content-length', 'transfer-encoding', 'x-reason', 'x-requested-with', 'if-none-match'];

export type RequestHandler = (req: HttpRequest) => Promise<Reply>;

export interface Listener {
  readonly port: number;
  close(): void;
}

/** uSockets' LIBUS_LISTEN_EXCLUSIVE_PORT (the typings declare it in an enum the addon does not export). */
const listenExclusivePort = 1;

/**
 * uWS's listen(host, port, options, cb): present in 20.30 though its typings list only
 * (host, port, cb) and (port, options, cb).
 */
interface ListenWithOptions {
  listen(host: string, port: number, options: number, cb: (socket: us_listen_socket | false) => void): TemplatedApp;
}

/**
 * Listens on host:port (0 = a free port); resolves with the bound port, rejects when it
 * cannot bind. The port is taken exclusively: uWS otherwise sets SO_REUSEPORT, and a second
 * node on the same port would silently share (and split) its connections.
 */
export function listen(app: TemplatedApp, host: string, port: number, what: string): Promise<Listener> {
  return new Promise((resolve, reject) => {
    (app as unknown as ListenWithOptions).listen(host, port, listenExclusivePort, (socket: us_listen_socket | false) => {
      if (socket === false) {
        reject(new Error(`${what}: cannot listen on ${host}:${port} (in use, or not an address of this host)`));
        return;
      }
      let open = true;
      resolve({
        port: uWS.us_socket_local_port(socket as unknown as us_socket),
        close: () => {
          if (open) uWS.us_listen_socket_close(socket);
          open = false;
        },
      });
    });
  });
}

/** One response: answered at most once, and not at all once the client aborted. */
class Exchange {
  private aborted = false;
  private answered = false;
  private readonly abortHandlers: (() => void)[] = [];

  constructor(private readonly res: HttpResponse) {
    res.onAborted(() => {
      this.aborted = true;
      for (const h of this.abortHandlers) h();
    });
  }

  get open(): boolean {
    return !this.aborted && !this.answered;
  }

  onAbort(h: () => void): void {
    this.abortHandlers.push(h);
  }

  send(reply: Reply, closeConnection = false): void {
    if (!this.open) return;
    this.answered = true;
    const res = this.res;
    res.cork(() => {
      res.writeStatus(`${reply.status} ${reasonPhrase[reply.status] ?? 'Unknown'}`);
      res.writeHeader('Cache-Control', 'no-cache');
      res.writeHeader('X-Content-Type-Options', 'nosniff');
      for (const [k, v] of Object.entries(reply.headers ?? {})) res.writeHeader(k, v);
      if (reply.status === 204 || reply.status === 304) {
        // uWS 20.30 writes a bogus Content-Length for endWithoutBody() without a length; 0 is what clients expect.
        res.end(undefined, closeConnection);
        return;
      }
      let body: string | Buffer = '';
      if (reply.raw !== undefined) {
        res.writeHeader('Content-Type', reply.raw.contentType);
        body = reply.raw.data;
      } else if (reply.json !== undefined) {
        res.writeHeader('Content-Type', 'application/json');
        body = JSON.stringify(reply.json);
      }
      res.end(body, closeConnection);
    });
  }
}

function text(buf: ArrayBuffer): string {
  return Buffer.from(buf).toString('latin1');
}

/** uWS writes IPv6 addresses in full; IPv4-mapped ones become dotted IPv4, loopback '::1'. */
export function normalizeAddress(raw: string): string {
  const m = /^(?:0{1,4}:){5}ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(raw);
  if (m !== null) {
    const hi = parseInt(m[1] ?? '0', 16);
    const lo = parseInt(m[2] ?? '0', 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  if (/^(?:0{1,4}:){7}0{0,3}1$/.test(raw)) return '::1';
  return raw;
}

export function remoteAddressOf(res: HttpResponse): string {
  return normalizeAddress(text(res.getRemoteAddressAsText()));
}

function tooLarge(maxBodyBytes: number): Reply {
  return { status: 413, json: { error: 'payload_too_large', reason: `request body larger than ${maxBodyBytes} bytes` } };
}

/** Reads the body into one Buffer, or answers 413 (and closes the connection) past maxBodyBytes. */
function readBody(res: HttpResponse, ex: Exchange, declaredBytes: number | undefined, maxBodyBytes: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    if (declaredBytes !== undefined && declaredBytes > maxBodyBytes) {
      ex.send(tooLarge(maxBodyBytes), true);
      resolve(undefined);
      return;
    }
    const chunks: Buffer[] = [];
    let receivedBytes = 0;
    let done = false;
    ex.onAbort(() => {
      if (done) return;
      done = true;
      resolve(undefined);
    });
    res.onData((chunk: ArrayBuffer, isLast: boolean) => {
      if (done) return;
      receivedBytes += chunk.byteLength;
      if (receivedBytes > maxBodyBytes) {
        done = true;
        ex.send(tooLarge(maxBodyBytes), true);
        resolve(undefined);
        return;
      }
      // Buffer.from(Uint8Array) copies: the chunk's memory is uWS's and is reused after this call.
      chunks.push(Buffer.from(new Uint8Array(chunk)));
      if (isLast) {
        done = true;
        resolve(Buffer.concat(chunks, receivedBytes));
      }
    });
  });
}

/** Routes every request of the app to handler; handler errors become 500s, never a crash. maxBodyBytes is per path. */
export function serveAll(app: TemplatedApp, handler: RequestHandler, maxBodyBytes: (rawPath: string) => number, log: Logger): void {
  app.any('/*', (res, req) => {
    const ex = new Exchange(res);
    const method = req.getCaseSensitiveMethod().toUpperCase();
    const rawPath = req.getUrl();
    const query = new URLSearchParams(req.getQuery() ?? '');
    const headers = new Map<string, string>();
    for (const h of keptHeaders) {
      const v = req.getHeader(h);
      if (v !== '') headers.set(h, v);
    }
    const remoteAddress = remoteAddressOf(res);
    const lengthHeader = headers.get('content-length');
    const declaredBytes = lengthHeader === undefined || !/^[0-9]+$/.test(lengthHeader) ? undefined : Number(lengthHeader);
    if (bodyMethods.has(method) && /chunked/i.test(headers.get('transfer-encoding') ?? '')) {
      // uWS 20.30 can end a chunked body early (a prefix taken for the whole), so none is read.
      ex.send({ status: 411, json: { error: 'length_required', reason: 'send the request body with a Content-Length (chunked bodies are not accepted)' } }, true);
      return;
    }
    const bodyPromise = bodyMethods.has(method) ? readBody(res, ex, declaredBytes, maxBodyBytes(rawPath)) : Promise.resolve(Buffer.alloc(0));
    void bodyPromise.then(async (body) => {
      if (body === undefined || !ex.open) return;
      let reply: Reply;
      try {
        reply = await handler({ method, rawPath, query, headers, body, remoteAddress });
      } catch (err) {
        log.error(`management: ${method} ${rawPath} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        reply = { status: 500, json: { error: 'internal_server_error', reason: err instanceof Error ? err.message : String(err) } };
      }
      ex.send(reply);
    });
  });
}
