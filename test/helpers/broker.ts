/**
 * Starts a real warren node as a child process on an ephemeral port with its own temp
 * data directory, and stops it (SIGTERM, then SIGKILL past a deadline) when the test is done.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const warrenEntry = new URL('../../src/cli/warren.js', import.meta.url);
const startDeadlineMs = 15_000;
const stopDeadlineMs = 10_000;
/** How often waitFor re-checks its condition (it gives up at its deadline, never after a fixed time). */
const conditionPollMs = 10;

export interface TestBroker {
  /** amqp://guest:guest@127.0.0.1:PORT */
  url: string;
  host: string;
  port: number;
  dataDir: string;
  process: ChildProcess;
  /** Everything the node wrote to stderr (its log). */
  log(): string;
  /** SIGTERM and wait for exit; returns the exit code. Removes the data dir unless keepData. */
  stop(opts?: { keepData?: boolean }): Promise<number | null>;
  /** SIGKILL and wait for exit (data dir kept). */
  kill(): Promise<void>;
  /** Waits until the node's log (stderr) matches re, e.g. the port a listener bound; returns the match. */
  waitForLog(re: RegExp, deadlineMs?: number): Promise<RegExpMatchArray>;
}

export interface StartOptions {
  args?: string[];
  /** Reuse a data directory (restart tests); a fresh temp dir otherwise. */
  dataDir?: string;
  env?: NodeJS.ProcessEnv;
}

export async function startBroker(opts: StartOptions = {}): Promise<TestBroker> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'warren-test-'));
  const args = [warrenEntry.pathname, '--port', '0', '--data-dir', dataDir, '--shards', '2', ...(opts.args ?? [])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`warren did not start within ${startDeadlineMs} ms:\n${stderr}`)), startDeadlineMs);
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on('line', (line) => {
      if (line.startsWith('amqp://')) {
        clearTimeout(timer);
        resolve(line.trim());
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`warren exited with ${code} before listening:\n${stderr}`));
    });
  });
  const u = new URL(address);
  const port = Number(u.port);
  const host = u.hostname;
  let stopped = false;
  return {
    url: `amqp://guest:guest@${host}:${port}`,
    host,
    port,
    dataDir,
    process: child,
    log: () => stderr,
    async stop({ keepData = false } = {}) {
      if (!stopped) {
        stopped = true;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), stopDeadlineMs);
        const code = await exited;
        clearTimeout(timer);
        if (!keepData && opts.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
        return code;
      }
      return exited;
    },
    async kill() {
      stopped = true;
      child.kill('SIGKILL');
      await exited;
    },
    waitForLog: (re, deadlineMs = startDeadlineMs) => waitFor(() => stderr.match(re), `a log line matching ${re}`, deadlineMs),
  };
}

/** Waits until check() is truthy, polling, or fails after deadlineMs with the message. */
export async function waitFor<T>(check: () => T | Promise<T>, what: string, deadlineMs = 5_000): Promise<NonNullable<T>> {
  const start = Date.now();
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() - start > deadlineMs) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, conditionPollMs));
  }
}
