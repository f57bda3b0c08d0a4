/**
 * Runs the real warrenctl CLI (a child process) against a test node, and a few helpers built
 * on it: queue counts read through the admin socket (which, unlike queue.declare, does not
 * count as use of a queue for x-expires).
 */
import { execFile } from 'node:child_process';

const warrenctlEntry = new URL('../../src/cli/warrenctl.js', import.meta.url);
/** A command that takes longer than this has hung. */
const runDeadlineMs = 20_000;

export interface CtlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CtlOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** Runs `warrenctl ARGS...` (no socket flag added: pass --data-dir or --socket in args). */
export function runWarrenctl(args: readonly string[], opts: CtlOptions = {}): Promise<CtlResult> {
  // An env value of undefined removes the variable (execFile would pass the text 'undefined').
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [warrenctlEntry.pathname, ...args],
      { cwd: opts.cwd, env, timeout: runDeadlineMs, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err !== null && typeof err.code !== 'number') {
          reject(new Error(`warrenctl ${args.join(' ')} did not finish: ${err.message}\n${stderr}`));
          return;
        }
        resolve({ code: err === null ? 0 : (err.code as number), stdout, stderr });
      },
    );
  });
}

/** `warrenctl --data-dir DIR ARGS...` for a node's data directory. */
export function ctl(dataDir: string, ...args: string[]): Promise<CtlResult> {
  return runWarrenctl(['--data-dir', dataDir, ...args]);
}

/** Like ctl, but fails the test unless the command succeeds; returns stdout. */
export async function ctlOk(dataDir: string, ...args: string[]): Promise<string> {
  const r = await ctl(dataDir, ...args);
  if (r.code !== 0) throw new Error(`warrenctl ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Rows of a listing command with --formatter json. */
export async function ctlRows(dataDir: string, ...args: string[]): Promise<Record<string, unknown>[]> {
  return JSON.parse(await ctlOk(dataDir, ...args, '--formatter', 'json')) as Record<string, unknown>[];
}

export interface QueueCounts {
  messages: number;
  ready: number;
  unacked: number;
  consumers: number;
}

/** A queue's counts as the node reports them (undefined when the queue does not exist). */
export async function queueCounts(dataDir: string, queue: string, vhost = '/'): Promise<QueueCounts | undefined> {
  const rows = await ctlRows(dataDir, 'list_queues', '-p', vhost, 'name', 'messages', 'messages_ready', 'messages_unacknowledged', 'consumers');
  const row = rows.find((r) => r['name'] === queue);
  if (row === undefined) return undefined;
  return {
    messages: Number(row['messages']),
    ready: Number(row['messages_ready']),
    unacked: Number(row['messages_unacknowledged']),
    consumers: Number(row['consumers']),
  };
}
