/**
 * A warren node with its management, Prometheus and WebSocket listeners on free ports, and
 * small clients for them: JSON over fetch with basic auth, and raw HTTP over a socket for
 * requests fetch would normalise or refuse to send.
 */
import { connect } from 'node:net';
import { startBroker, type TestBroker } from '../helpers/broker.js';

export interface MgmtBroker {
  broker: TestBroker;
  /** http://127.0.0.1:PORT */
  mgmt: string;
  mgmtPort: number;
  metrics: string;
  /** ws://127.0.0.1:PORT/ws */
  ws: string;
  wsPort: number;
  stop(): Promise<void>;
}

export async function startMgmtBroker(extraArgs: string[] = []): Promise<MgmtBroker> {
  const broker = await startBroker({ args: ['--mgmt-port', '0', '--prometheus-port', '0', '--ws-port', '0', ...extraArgs] });
  const port = async (re: RegExp): Promise<number> => Number((await broker.waitForLog(re))[1]);
  const mgmtPort = await port(/management listening on http:\/\/127\.0\.0\.1:(\d+)/);
  const metricsPort = await port(/prometheus listening on http:\/\/127\.0\.0\.1:(\d+)/);
  const wsPort = await port(/amqp-over-websocket listening on ws:\/\/127\.0\.0\.1:(\d+)/);
  return {
    broker,
    mgmt: `http://127.0.0.1:${mgmtPort}`,
    mgmtPort,
    metrics: `http://127.0.0.1:${metricsPort}/metrics`,
    ws: `ws://127.0.0.1:${wsPort}/ws`,
    wsPort,
    stop: async () => {
      await broker.stop();
    },
  };
}

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

export const guest = basic('guest', 'guest');

export interface CallOptions {
  method?: string;
  /** Serialised as JSON unless a string or Buffer. */
  body?: unknown;
  auth?: string | null;
  headers?: Record<string, string>;
}

export interface CallResult {
  status: number;
  headers: Headers;
  text: string;
  /** The parsed body; undefined when empty or not JSON. */
  json: unknown;
}

/** One request to the management API (guest's credentials unless auth says otherwise). */
export async function call(base: string, path: string, opts: CallOptions = {}): Promise<CallResult> {
  const headers: Record<string, string> = { ...opts.headers };
  const auth = opts.auth === undefined ? guest : opts.auth;
  if (auth !== null) headers['Authorization'] = auth;
  let body: string | Buffer | undefined;
  if (typeof opts.body === 'string' || Buffer.isBuffer(opts.body)) body = opts.body;
  else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['Content-Type'] ??= 'application/json';
  }
  const init: RequestInit = { method: opts.method ?? 'GET', headers };
  if (body !== undefined) init.body = new Uint8Array(body instanceof Buffer ? body : Buffer.from(body));
  const res = await fetch(`${base}${path}`, init);
  const text = await res.text();
  let json: unknown;
  try {
    json = text === '' ? undefined : (JSON.parse(text) as unknown);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** The body as an object (fails the test with the text otherwise). */
export function obj(r: CallResult): Record<string, unknown> {
  if (typeof r.json !== 'object' || r.json === null || Array.isArray(r.json)) throw new Error(`expected a JSON object, got ${r.status} ${r.text.slice(0, 500)}`);
  return r.json as Record<string, unknown>;
}

export function list(r: CallResult): Record<string, unknown>[] {
  if (!Array.isArray(r.json)) throw new Error(`expected a JSON array, got ${r.status} ${r.text.slice(0, 500)}`);
  return r.json as Record<string, unknown>[];
}

/**
 * Sends raw bytes on a fresh TCP connection and resolves with what came back once the
 * response is complete (by Content-Length), the peer closed or reset, or deadlineMs passed.
 */
export function rawHttp(port: number, request: string | Buffer, deadlineMs = 5_000): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let got = Buffer.alloc(0);
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(got.toString('latin1'));
    };
    const timer = setTimeout(done, deadlineMs);
    socket.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      const text = got.toString('latin1');
      const headerEnd = text.indexOf('\r\n\r\n');
      if (headerEnd < 0) return;
      const m = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, headerEnd));
      if (m !== null && got.length >= headerEnd + 4 + Number(m[1])) done();
    });
    socket.on('close', done);
    // A reset is an answer too (what a server does to garbage): resolve with what came before it.
    socket.on('error', done);
    socket.write(request);
  });
}

/** The status code of a raw HTTP response ('HTTP/1.1 404 Not Found' → 404; 0 if none). */
export function statusOf(raw: string): number {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(raw);
  return m === null ? 0 : Number(m[1]);
}
