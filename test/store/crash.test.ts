/**
 * Crash test: a child process (this same file, started with WARREN_STORE_CRASH_DIR set) appends
 * and commits in a loop, printing each offset that commit() reported durable; the parent kills
 * it with SIGKILL at a random moment, reopens the log and checks that every printed offset is
 * there, intact. Three kill points, each within a couple of seconds.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SegmentLog } from '../../src/store/segment-log.js';
import { kindFor, openLog, payloadFor, withTempDir } from './store-test-kit.js';

const crashDirVariable = 'WARREN_STORE_CRASH_DIR';
const crashOptions = { segmentBytes: 64 * 1024, fsync: { mode: 'always' } as const, preallocate: true };
/** A child left behind by a dead parent must not run forever. */
const childLifetimeMs = 30_000;
const killRounds = 3;

async function runCrashWriter(dir: string): Promise<void> {
  setTimeout(() => process.exit(2), childLifetimeMs).unref();
  const { log } = await SegmentLog.open(dir, { ...crashOptions, log: () => undefined }, () => undefined);
  writeSync(1, `ready ${log.nextOffset}\n`);
  // Two writers sharing the log, so commits overlap and coalesce as in a shard.
  const writer = async (seed: number): Promise<void> => {
    for (let round = 0; ; round++) {
      const batch = 1 + ((round * 7 + seed * 13) % 40);
      for (let i = 0; i < batch; i++) {
        const offset = log.nextOffset;
        log.append(kindFor(offset), payloadFor(offset));
      }
      const durable = await log.commit();
      writeSync(1, `committed ${durable}\n`);
    }
  };
  await Promise.all([writer(1), writer(2)]);
}

interface ChildRun {
  committedMax: number;
  printedCommits: number;
}

/** Runs the writer until it has printed `killAfterCommits` commits, then SIGKILLs it. */
function runChildUntilKilled(dir: string, killAfterCommits: number): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
      env: { ...process.env, [crashDirVariable]: dir },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const run: ChildRun = { committedMax: -1, printedCommits: 0 };
    let partial = '';
    const deadline = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`writer printed only ${run.printedCommits} commits in time`));
    }, 20_000);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        const match = /^committed (-?\d+)$/.exec(line);
        if (match === null) continue;
        run.committedMax = Math.max(run.committedMax, Number(match[1]));
        run.printedCommits += 1;
        if (run.printedCommits === killAfterCommits) child.kill('SIGKILL');
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(deadline);
      if (signal === 'SIGKILL') resolve(run);
      else reject(new Error(`writer exited by itself (code ${code}, signal ${signal})`));
    });
  });
}

if (process.env[crashDirVariable] !== undefined) {
  await runCrashWriter(process.env[crashDirVariable]);
} else {
  test('after SIGKILL at random moments, every offset reported committed is present and intact', async () => {
    await withTempDir(async (dir) => {
      let committedMax = -1;
      for (let round = 0; round < killRounds; round++) {
        const killAfterCommits = 20 + Math.floor(Math.random() * 300);
        const run = await runChildUntilKilled(dir, killAfterCommits);
        assert.ok(run.committedMax > committedMax, `round ${round} made progress`);
        committedMax = run.committedMax;
        const opened = await openLog(dir, crashOptions);
        assert.ok(opened.records.length > committedMax, `round ${round}: ${opened.records.length} records recovered, ${committedMax} was confirmed`);
        opened.records.forEach((record, offset) => {
          assert.equal(record.offset, offset);
          assert.equal(record.kind, kindFor(offset));
          assert.deepEqual(record.payload, payloadFor(offset), `round ${round}: payload of ${offset}`);
        });
        await opened.log.close();
      }
    });
  });
}
