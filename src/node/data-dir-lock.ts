/**
 * One node per data directory: two nodes replaying and appending to the same shard logs and
 * rewriting the same definitions file would corrupt both (RabbitMQ likewise refuses a second
 * node with the same name). Node.js has no flock, so the lock has two parts:
 *
 * - A token the kernel lets go of when its process dies, however it dies: on Linux, a
 *   listening socket in the abstract namespace named for the directory's real path. A
 *   second bind fails with EADDRINUSE while the holder lives; a SIGKILL closes it at once.
 *   This is what decides, on one host: pid checks alone mistake zombies (a container whose
 *   init does not reap), reused pids and pid namespaces for live nodes, or the reverse.
 * - A file, DATA_DIR/warren.lock, created with O_EXCL semantics (written whole to a temp file,
 *   then link()ed into place, which fails if the lock exists), naming its owner for people
 *   and for other hosts sharing the directory:
 *
 *   {"pid":1234,"host":"db1","bootId":"…","netns":"net:[4026531840]","startedAt":"2026-01-01T00:00:00.000Z"}
 *
 * A node that holds the token and finds a lock file written on this host in this network
 * namespace knows its owner is gone: it takes the file over and says so. A lock from another
 * namespace (whose tokens this one cannot see) or from before the token existed is judged by
 * its pid, boot id and start time. A lock from another host cannot be checked, so it is obeyed.
 * A clean stop removes the file; a SIGKILL leaves it, stale.
 */
import { linkSync, readFileSync, readlinkSync, realpathSync, unlinkSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { StartError } from './start-error.js';

export const dataDirLockName = 'warren.lock';
/** Linux's id of this boot: a pid recorded before a reboot says nothing about the process that has it now. */
const bootIdPath = '/proc/sys/kernel/random/boot_id';
/** Tries to create the lock: a stale one taken away in between by another starting node makes us look again, at most this often. */
const acquireAttemptsMax = 3;
/** A killed node whose threads are still exiting (a flush in the kernel) holds its token a moment longer: how long to wait for that. */
const dyingHolderWaitMs = 10_000;
const dyingHolderPollMs = 50;

interface LockOwner {
  pid: number;
  host: string;
  bootId: string;
  /** The network namespace the owner's token lives in ('' where unknown: not Linux, or written before tokens). */
  netns: string;
  startedAt: string;
}

export interface DataDirLock {
  readonly path: string;
  /** Removes the lock if it is still this node's (idempotent). */
  release(): void;
}

/** Locks held by this process: a second node started in the same process (tests) is refused too. */
const heldHere = new Set<string>();

export async function acquireDataDirLock(dataDir: string, log: { warn(msg: string): void }): Promise<DataDirLock> {
  const path = join(dataDir, dataDirLockName);
  if (heldHere.has(path)) throw new StartError(refusal(path, 'another node in this process'));
  const token = await holdToken(dataDir, path);
  const me: LockOwner = { pid: process.pid, host: hostname(), bootId: readBootId(), netns: token === undefined ? '' : readNetns(), startedAt: new Date().toISOString() };
  const mine = JSON.stringify(me);
  try {
    let acquired = false;
    for (let attempt = 1; attempt <= acquireAttemptsMax && !acquired; attempt++) {
      acquired = tryCreate(path, mine);
      if (acquired) break;
      const holder = readOwner(path);
      if (holder === 'gone') continue; // released meanwhile: try again
      const stale = staleness(holder, me);
      if (stale === undefined) throw new StartError(refusal(path, holder === 'unreadable' ? 'an unknown node' : ownerText(holder)));
      log.warn(`taking over the stale lock ${path} (${stale}): the node that held it did not stop cleanly`);
      removeIfGone(path);
    }
    if (!acquired) throw new StartError(`${path}: could not take the lock in ${acquireAttemptsMax} attempts (another node starting on ${dataDir} at the same time?)`);
  } catch (err: unknown) {
    token?.close();
    throw err;
  }
  heldHere.add(path);
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    heldHere.delete(path);
    process.off('exit', release);
    try {
      // Only our own lock: never one a later node took over after we were taken for dead.
      if (readOwnerText(path) === mine) removeIfGone(path);
    } catch {
      // Runs at exit too, where a throw helps no one: a lock left behind is found stale next time.
    }
    token?.close();
  };
  // A start that fails, or a stop that ends in process.exit(), lets go too.
  process.on('exit', release);
  return { path, release };
}

/**
 * Binds the directory's token: a listening socket in Linux's abstract namespace (no file, and
 * closed by the kernel with its process). EADDRINUSE means a live process holds the directory,
 * unless the lock file names a process that is already dead or a zombie: then its last threads
 * are still exiting, and the token comes free within moments. Undefined where there are no
 * abstract sockets (not Linux): the lock file's pid checks decide alone.
 */
async function holdToken(dataDir: string, path: string): Promise<Server | undefined> {
  if (process.platform !== 'linux') return undefined;
  const name = `\0warren-data-dir-${createHash('sha256').update(realpathSync(dataDir)).digest('hex').slice(0, 40)}`;
  const deadlineMs = Date.now() + dyingHolderWaitMs;
  for (;;) {
    const server = createServer((socket) => socket.destroy()); // a token, not a service
    const err = await new Promise<Error | undefined>((resolve) => {
      server.once('error', resolve);
      server.listen(name, () => resolve(undefined));
    });
    if (err === undefined) {
      server.on('error', () => {}); // a listening socket has nothing left to fail on; never crash the node for it
      server.unref();
      return server;
    }
    if (codeOf(err) !== 'EADDRINUSE') throw new StartError(`${path}: cannot bind the data directory's lock socket: ${err.message}`);
    const holder = readOwner(path);
    const dying = typeof holder === 'object' && holder.host === hostname() && !pidAlive(holder.pid);
    if (!dying || Date.now() >= deadlineMs) throw new StartError(refusal(path, typeof holder === 'object' ? ownerText(holder) : 'a running node'));
    await delay(dyingHolderPollMs);
  }
}

/** Creates the lock holding `content`, whole or not at all; false if a lock exists. */
function tryCreate(path: string, content: string): boolean {
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, content, { mode: 0o644 });
  try {
    linkSync(temp, path);
    return true;
  } catch (err: unknown) {
    if (codeOf(err) === 'EEXIST') return false;
    throw err;
  } finally {
    unlinkSync(temp);
  }
}

/** Why the lock's owner cannot be running, or undefined if it may be; `me` holds the token if its netns is known. */
function staleness(holder: LockOwner | 'unreadable', me: LockOwner): string | undefined {
  // link() puts a lock in place whole, so this is damage (e.g. a power loss before its data reached the disk).
  if (holder === 'unreadable') return 'it does not name its owner';
  if (holder.host !== me.host) return undefined;
  if (holder.bootId !== '' && me.bootId !== '' && holder.bootId !== me.bootId) return `pid ${holder.pid} ran before this machine rebooted`;
  // Its token lived where ours now does: had its process lived, our bind would have failed.
  if (holder.netns !== '' && holder.netns === me.netns) return `pid ${holder.pid} no longer holds the directory`;
  if (holder.pid === me.pid) return `pid ${holder.pid} is this process: its previous holder is gone`;
  if (!pidAlive(holder.pid)) return `pid ${holder.pid} is not running`;
  const startedMs = processStartMs(holder.pid);
  const lockedMs = Date.parse(holder.startedAt);
  // The lock is written after its process starts: a process that started later reuses the pid.
  if (startedMs !== undefined && Number.isFinite(lockedMs) && startedMs > lockedMs + pidReuseSlackMs) return `pid ${holder.pid} now belongs to a process started after the lock`;
  return undefined;
}

/** Clock-tick rounding of /proc start times and clock steps: a pid reused within this is not told apart. */
const pidReuseSlackMs = 2_000;
/** USER_HZ: the unit of /proc/<pid>/stat start times on Linux. */
const procTicksPerSecond = 100;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err: unknown) {
    // EPERM: it exists, owned by another user.
    return codeOf(err) !== 'ESRCH';
  }
  // A killed node whose parent never reaps it (a container whose init does not) stays a zombie.
  return procStat(pid)?.state !== 'Z';
}

function procStat(pid: number): { state: string; startTicks: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name (which may hold spaces): state is field 3, starttime field 22.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0] ?? '', startTicks: Number(rest[19]) };
  } catch {
    return undefined; // no /proc (not Linux): kill(pid, 0) is all there is
  }
}

/** When a process started (ms since the epoch), from /proc; undefined where /proc cannot say. */
function processStartMs(pid: number): number | undefined {
  const stat = procStat(pid);
  if (stat === undefined || !Number.isFinite(stat.startTicks)) return undefined;
  try {
    const btime = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'));
    return btime === null ? undefined : Number(btime[1]) * 1000 + (stat.startTicks / procTicksPerSecond) * 1000;
  } catch {
    return undefined;
  }
}

function readOwner(path: string): LockOwner | 'unreadable' | 'gone' {
  const text = readOwnerText(path);
  if (text === undefined) return 'gone';
  try {
    const o = JSON.parse(text) as Partial<LockOwner>;
    if (typeof o.pid === 'number' && Number.isInteger(o.pid) && o.pid > 0 && typeof o.host === 'string') {
      return { pid: o.pid, host: o.host, bootId: typeof o.bootId === 'string' ? o.bootId : '', netns: typeof o.netns === 'string' ? o.netns : '', startedAt: typeof o.startedAt === 'string' ? o.startedAt : '?' };
    }
  } catch {
    // not JSON: below
  }
  return 'unreadable';
}

function readOwnerText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err: unknown) {
    if (codeOf(err) === 'ENOENT') return undefined;
    throw err;
  }
}

function removeIfGone(path: string): void {
  try {
    unlinkSync(path);
  } catch (err: unknown) {
    if (codeOf(err) !== 'ENOENT') throw err;
  }
}

function ownerText(holder: LockOwner): string {
  return `a node with pid ${holder.pid} on host ${holder.host}, started ${holder.startedAt}`;
}

function refusal(path: string, holder: string): string {
  const dir = path.slice(0, -dataDirLockName.length - 1);
  return (
    `data directory ${dir} is in use by ${holder} (lock file ${path}); one node per data directory: ` +
    `stop that node or give this one its own --data-dir (if that node is not running, e.g. on another host sharing the directory, delete the lock file)`
  );
}

/** This process's network namespace, e.g. 'net:[4026531840]': abstract sockets are per namespace. */
function readNetns(): string {
  try {
    return readlinkSync('/proc/self/ns/net');
  } catch {
    return '';
  }
}

function readBootId(): string {
  try {
    return readFileSync(bootIdPath, 'utf8').trim();
  } catch {
    return ''; // not Linux: the pid check alone
  }
}

function codeOf(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err ? String((err as NodeJS.ErrnoException).code) : undefined;
}
