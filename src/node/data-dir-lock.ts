/**
 * One node per data directory: two nodes replaying and appending to the same shard logs and
 * rewriting the same definitions file would corrupt both (RabbitMQ likewise refuses a second
 * node with the same name). Node.js has no flock, so the lock is a file, DATA_DIR/warren.lock,
 * created with O_EXCL semantics (written whole to a temp file, then link()ed into place, which
 * fails if the lock exists) and holding its owner's pid, host name and boot id:
 *
 *   {"pid":1234,"host":"db1","bootId":"…","startedAt":"2026-01-01T00:00:00.000Z"}
 *
 * A lock whose owner is gone — same host, and its pid not alive, or the machine rebooted since,
 * or the pid is this very process's (a container restarted with the same pid) — is stale: the
 * node takes it over and says so. A clean stop removes it; a SIGKILL leaves it, stale.
 * A lock from another host (a shared file system) cannot be checked, so it is obeyed.
 */
import { linkSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { StartError } from './start-error.js';

export const dataDirLockName = 'warren.lock';
/** Linux's id of this boot: a pid recorded before a reboot says nothing about the process that has it now. */
const bootIdPath = '/proc/sys/kernel/random/boot_id';
/** Tries to create the lock: a stale one taken away in between by another starting node makes us look again, at most this often. */
const acquireAttemptsMax = 3;

interface LockOwner {
  pid: number;
  host: string;
  bootId: string;
  startedAt: string;
}

export interface DataDirLock {
  readonly path: string;
  /** Removes the lock if it is still this node's (idempotent). */
  release(): void;
}

/** Locks held by this process: a second node started in the same process (tests) is refused too. */
const heldHere = new Set<string>();

export function acquireDataDirLock(dataDir: string, log: { warn(msg: string): void }): DataDirLock {
  const path = join(dataDir, dataDirLockName);
  const me: LockOwner = { pid: process.pid, host: hostname(), bootId: readBootId(), startedAt: new Date().toISOString() };
  const mine = JSON.stringify(me);
  if (heldHere.has(path)) throw new StartError(refusal(path, 'another node in this process'));
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
  };
  // A start that fails, or a stop that ends in process.exit(), lets go too.
  process.on('exit', release);
  return { path, release };
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

/** Why the lock's owner cannot be running, or undefined if it may be. */
function staleness(holder: LockOwner | 'unreadable', me: LockOwner): string | undefined {
  // link() puts a lock in place whole, so this is damage (e.g. a power loss before its data reached the disk).
  if (holder === 'unreadable') return 'it does not name its owner';
  if (holder.host !== me.host) return undefined;
  if (holder.bootId !== '' && me.bootId !== '' && holder.bootId !== me.bootId) return `pid ${holder.pid} ran before this machine rebooted`;
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
      return { pid: o.pid, host: o.host, bootId: typeof o.bootId === 'string' ? o.bootId : '', startedAt: typeof o.startedAt === 'string' ? o.startedAt : '?' };
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
