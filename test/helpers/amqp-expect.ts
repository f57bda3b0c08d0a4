/**
 * Assertions for end-to-end tests with amqplib: which close (channel or connection) an
 * operation provokes, with which reply code, class and method — and that the other side
 * (the connection after a channel error) keeps working.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import type { EventEmitter } from 'node:events';
import type { Channel, ChannelModel, GetMessage } from 'amqplib';
import { startBroker, type StartOptions, type TestBroker } from './broker.js';

/**
 * Set WARREN_E2E_REFERENCE_URL (e.g. amqp://guest:guest@127.0.0.1:5672) to run an e2e file
 * against a real RabbitMQ instead of warren: that is how the assertions are checked to be
 * RabbitMQ's behaviour rather than warren's.
 */
export const referenceUrl = process.env['WARREN_E2E_REFERENCE_URL'];

/** startBroker(), or the reference RabbitMQ when WARREN_E2E_REFERENCE_URL is set (nothing is started or stopped then). */
export async function startE2eBroker(opts?: StartOptions): Promise<TestBroker> {
  if (referenceUrl === undefined) return startBroker(opts);
  const u = new URL(referenceUrl);
  return {
    url: referenceUrl,
    host: u.hostname,
    port: Number(u.port),
    dataDir: '',
    // No child process: the reference broker is not ours to signal.
    process: undefined as unknown as ChildProcess,
    log: () => '',
    stop: () => Promise.resolve(0),
    kill: () => Promise.resolve(),
    waitForLog: (re: RegExp) => Promise.reject(new Error(`no log to search for ${re} on a reference broker`)),
  };
}

/** How long a test waits for an event the broker owes it. */
export const eventDeadlineMs = 5_000;

/** What amqplib attaches to the Error it emits for a channel.close or connection.close from the server. */
export interface CloseInfo {
  code: number | undefined;
  classId: number | undefined;
  methodId: number | undefined;
  message: string;
}

function closeInfo(err: unknown): CloseInfo {
  const e = err as { code?: unknown; classId?: unknown; methodId?: unknown; message?: unknown };
  return {
    code: typeof e.code === 'number' ? e.code : undefined,
    classId: typeof e.classId === 'number' ? e.classId : undefined,
    methodId: typeof e.methodId === 'number' ? e.methodId : undefined,
    message: typeof e.message === 'string' ? e.message : String(err),
  };
}

/** Resolves with the value, or rejects after ms with a message naming what we waited for. */
export function within<T>(p: Promise<T>, what: string, ms = eventDeadlineMs): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/** The next 'error' event of an amqplib channel or connection (a listener is attached at once, so none is unhandled). */
export function nextError(emitter: EventEmitter): Promise<CloseInfo> {
  return new Promise((resolve) => emitter.once('error', (err: unknown) => resolve(closeInfo(err))));
}

function nextEvent(emitter: EventEmitter, name: string): Promise<void> {
  return new Promise((resolve) => emitter.once(name, () => resolve()));
}

export interface ExpectedClose {
  code: number;
  /** [classId, methodId] of the method that failed, when the server names it. */
  method?: [number, number];
  /** A fragment of the reply text. */
  text?: RegExp;
}

function checkClose(got: CloseInfo, want: ExpectedClose, what: string): void {
  assert.equal(got.code, want.code, `${what}: reply code (${got.message})`);
  if (want.method !== undefined) {
    assert.deepEqual([got.classId, got.methodId], want.method, `${what}: class/method (${got.message})`);
  }
  if (want.text !== undefined) assert.match(got.message, want.text, `${what}: reply text`);
}

/**
 * Runs op on ch and asserts the server answers with channel.close (not connection.close):
 * the channel ends with the expected code, the connection stays open and a new channel works.
 */
export async function expectChannelClose(
  conn: ChannelModel,
  ch: Channel,
  op: (ch: Channel) => unknown,
  want: ExpectedClose,
): Promise<void> {
  let connError: CloseInfo | undefined;
  const onConnError = (err: unknown): void => {
    connError = closeInfo(err);
  };
  conn.on('error', onConnError);
  try {
    const err = nextError(ch);
    const closed = nextEvent(ch, 'close');
    try {
      await op(ch);
    } catch {
      // the rejected operation is expected; the channel's 'error' event says why
    }
    checkClose(await within(err, `channel.close ${want.code} ${want.text?.source ?? ''}`), want, 'channel close');
    await within(closed, 'the channel to close');
    const probe = await within(conn.createChannel(), 'a new channel after the channel error');
    await probe.checkExchange('amq.direct');
    await probe.close();
    assert.equal(connError, undefined, 'the connection must survive a channel error');
  } finally {
    conn.off('error', onConnError);
  }
}

/** Runs op and asserts the server closes the whole connection with the expected code. */
export async function expectConnectionClose(conn: ChannelModel, op: () => unknown, want: ExpectedClose): Promise<void> {
  const err = nextError(conn);
  const closed = nextEvent(conn, 'close');
  try {
    await op();
  } catch {
    // expected: the operation fails because the connection went
  }
  checkClose(await within(err, `connection.close ${want.code} ${want.text?.source ?? ''}`), want, 'connection close');
  await within(closed, 'the connection to close');
}

/** Collects messages pushed to a callback and lets a test wait for the nth one. */
export class Inbox<T> {
  readonly items: T[] = [];
  private waiters: { n: number; resolve: () => void }[] = [];

  readonly push = (item: T): void => {
    this.items.push(item);
    this.waiters = this.waiters.filter((w) => {
      if (this.items.length < w.n) return true;
      w.resolve();
      return false;
    });
  };

  /** Waits until at least n items arrived. */
  async atLeast(n: number, what = `${n} messages`, ms = eventDeadlineMs): Promise<T[]> {
    if (this.items.length < n) {
      await within(new Promise<void>((resolve) => this.waiters.push({ n, resolve })), what, ms);
    }
    return this.items;
  }
}

/** Resolves after the event loop has had a chance to run several round trips (a sync point). */
export async function roundTrip(ch: Channel): Promise<void> {
  await ch.checkExchange('amq.direct');
}

/** basic.get until a message is there (a publish on another channel may still be on its way). */
export async function getOne(ch: Channel, queue: string, opts: { noAck?: boolean } = {}, ms = eventDeadlineMs): Promise<GetMessage> {
  const start = Date.now();
  for (;;) {
    const m = await ch.get(queue, opts);
    if (m !== false) return m;
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for a message in '${queue}'`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
