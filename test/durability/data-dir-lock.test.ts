/**
 * One node per data directory: a second node started on a directory a running node uses exits
 * at once, non-zero, naming the directory, the lock file and the running node's pid, and
 * leaves the running node and its lock alone. A node killed with SIGKILL leaves its lock
 * behind, stale: the next node on the directory takes it over (and says so) and starts, with
 * the messages the killed one held. A clean stop removes the lock.
 *
 * What decides on one host is the kernel-held token (an abstract socket), not the pid in the
 * file: a lock naming a live pid is stale when no process holds the token, and a running node
 * whose lock file was deleted still refuses a second one.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { connect, drainQueue, makeDataDir, publishConfirmed, removeDataDir } from './durability-kit.js';
import { dataDirLockName } from '../../src/node/data-dir-lock.js';

const queue = 'lock-q';

function lockOwnerPid(dataDir: string): number {
  return (JSON.parse(readFileSync(join(dataDir, dataDirLockName), 'utf8')) as { pid: number }).pid;
}

/** Starts a node that must refuse; resolves with its error (its exit code and log). */
async function startRefused(dataDir: string): Promise<Error> {
  return startBroker({ dataDir }).then(
    async (b) => {
      await b.stop({ keepData: true });
      assert.fail('a second node started on a data directory in use');
    },
    (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
  );
}

describe('data directory lock', () => {
  test('a second node on the same directory refuses; after a SIGKILL of the first a restart takes the stale lock over', { timeout: 60_000 }, async () => {
    const dataDir = makeDataDir();
    let first: TestBroker | undefined;
    try {
      first = await startBroker({ dataDir });
      assert.equal(lockOwnerPid(dataDir), first.process.pid);
      const conn = await connect(first.url);
      conn.on('error', () => {}); // the SIGKILL below drops it
      const ch = await conn.createConfirmChannel();
      await ch.assertQueue(queue, { durable: true });
      await publishConfirmed(ch, '', queue, Buffer.from('kept'), { persistent: true });

      const refused = await startRefused(dataDir);
      assert.match(refused.message, /exited with 1 before listening/);
      assert.match(refused.message, new RegExp(`data directory ${dataDir} is in use by a node with pid ${first.process.pid}`));
      assert.match(refused.message, new RegExp(`lock file ${join(dataDir, dataDirLockName)}`));
      assert.equal(lockOwnerPid(dataDir), first.process.pid, 'the refused node leaves the lock alone');
      // The first node still serves.
      await publishConfirmed(ch, '', queue, Buffer.from('still up'), { persistent: true });

      await first.kill();
      assert.ok(existsSync(join(dataDir, dataDirLockName)), 'a SIGKILL leaves the lock behind');
      first = await startBroker({ dataDir });
      await first.waitForLog(/taking over the stale lock .*pid \d+ no longer holds the directory/); // stderr may trail the URL on stdout
      assert.equal(lockOwnerPid(dataDir), first.process.pid);
      const conn2 = await connect(first.url);
      const got = await drainQueue(await conn2.createChannel(), queue);
      assert.deepEqual(
        got.map((m) => m.content.toString()),
        ['kept', 'still up'],
      );
      await conn2.close();

      assert.equal(await first.stop({ keepData: true }), 0);
      assert.equal(existsSync(join(dataDir, dataDirLockName)), false, 'a clean stop removes the lock');
    } finally {
      await first?.stop({ keepData: true });
      removeDataDir(dataDir);
    }
  });

  test('a damaged lock file is taken for stale; a lock from another host is obeyed', { timeout: 30_000 }, async () => {
    const dataDir = makeDataDir();
    const lockPath = join(dataDir, dataDirLockName);
    let broker: TestBroker | undefined;
    try {
      writeFileSync(lockPath, '');
      broker = await startBroker({ dataDir });
      await broker.waitForLog(/taking over the stale lock .*it does not name its owner/);
      // The node serves on the directory it took over.
      await (await connect(broker.url)).close();
      assert.equal(await broker.stop({ keepData: true }), 0);

      writeFileSync(lockPath, JSON.stringify({ pid: 1, host: 'elsewhere.example', bootId: 'x', startedAt: '2026-01-01T00:00:00.000Z' }));
      const refused = await startRefused(dataDir);
      assert.match(refused.message, /is in use by a node with pid 1 on host elsewhere\.example/);
      assert.ok(existsSync(lockPath), 'a lock from another host stays');

      // A live pid of this host that started long after the lock was written is a reused pid:
      // pid 1 started at boot, after a lock dated 2000.
      writeFileSync(lockPath, JSON.stringify({ pid: 1, host: hostname(), bootId: '', startedAt: '2000-01-01T00:00:00.000Z' }));
      broker = await startBroker({ dataDir });
      await broker.waitForLog(/taking over the stale lock .*pid 1 now belongs to a process started after the lock/);
    } finally {
      await broker?.stop({ keepData: true });
      removeDataDir(dataDir);
    }
  });

  test('the token decides: a lock naming a live pid with no token is stale; a running node without its lock file still refuses', { timeout: 30_000 }, async () => {
    const dataDir = makeDataDir();
    const lockPath = join(dataDir, dataDirLockName);
    let broker: TestBroker | undefined;
    try {
      // What a zombie or a reused pid looks like to pid checks: pid 1 lives, started before the lock.
      const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
      writeFileSync(lockPath, JSON.stringify({ pid: 1, host: hostname(), bootId, netns: readlinkSync('/proc/self/ns/net'), startedAt: new Date().toISOString() }));
      broker = await startBroker({ dataDir });
      await broker.waitForLog(/taking over the stale lock .*pid 1 no longer holds the directory/);
      assert.equal(lockOwnerPid(dataDir), broker.process.pid);

      rmSync(lockPath);
      const refused = await startRefused(dataDir);
      assert.match(refused.message, /exited with 1 before listening/);
      assert.match(refused.message, /is in use by a running node/);
      // The running node still serves.
      await (await connect(broker.url)).close();
    } finally {
      await broker?.stop({ keepData: true });
      removeDataDir(dataDir);
    }
  });
});
