import assert from 'node:assert/strict';
import { readFile, readdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { RECORD_CHECKED_OFFSET, SEGMENT_HEADER_BYTES } from '../../src/store/record-layout.js';
import { LogCorruptionError } from '../../src/store/store-errors.js';
import { appendRange, openLog, payloadFor, withTempDir } from './store-test-kit.js';
import type { SegmentLogOptions } from '../../src/store/segment-log.js';

/** Record start positions in a segment file, by walking the length words (test-side, independent of recovery). */
function recordStarts(file: Buffer): number[] {
  const starts: number[] = [];
  let position = SEGMENT_HEADER_BYTES;
  while (position + 4 <= file.length) {
    const bodyBytes = file.readUInt32LE(position);
    if (bodyBytes === 0) break;
    starts.push(position);
    position += RECORD_CHECKED_OFFSET + bodyBytes;
  }
  return starts;
}

function recordEnd(file: Buffer, start: number): number {
  return start + RECORD_CHECKED_OFFSET + file.readUInt32LE(start);
}

/** Writes `count` records into a log in `dir` and returns its segment file names. */
async function buildLog(dir: string, count: number, options: Partial<SegmentLogOptions> = {}): Promise<string[]> {
  const opened = await openLog(dir, options);
  appendRange(opened.log, 0, count);
  await opened.log.commit();
  const files = opened.log.segmentFiles();
  await opened.log.close();
  return files;
}

function offsets(records: { offset: number }[]): number[] {
  return records.map((record) => record.offset);
}

function range(from: number, to: number): number[] {
  return [...Array(to - from).keys()].map((i) => from + i);
}

for (const preallocate of [false, true]) {
  test(`torn tail at every byte of the last record is cut, reported, and appending goes on (preallocate ${preallocate})`, async () => {
    await withTempDir(async (dir) => {
      const count = 120;
      const files = await buildLog(dir, count, { preallocate });
      assert.ok(files.length >= 3);
      const lastName = files[files.length - 1] ?? '';
      const lastPath = join(dir, lastName);
      const pristine = await readFile(lastPath);
      const starts = recordStarts(pristine);
      const tailStart = starts[starts.length - 1] ?? 0;
      const tailEnd = recordEnd(pristine, tailStart);
      for (let cut = tailStart + 1; cut < tailEnd; cut++) {
        // Without preallocation a torn write leaves a short file; with it, zeros where the write did not land.
        const torn = preallocate ? Buffer.concat([pristine.subarray(0, cut), Buffer.alloc(pristine.length - cut)]) : pristine.subarray(0, cut);
        await writeFile(lastPath, torn);
        const dirtyPrefix = torn.subarray(tailStart, cut);
        const lastNonZero = dirtyPrefix.findLastIndex((byte) => byte !== 0);
        const opened = await openLog(dir, { preallocate });
        assert.deepEqual(offsets(opened.records), range(0, count - 1), `cut at ${cut}`);
        assert.equal(opened.report.truncatedBytes, lastNonZero + 1, `truncated bytes for cut at ${cut}`);
        if (lastNonZero >= 0) {
          assert.equal(opened.report.truncatedAt?.file, lastName);
          assert.equal(opened.report.truncatedAt?.position, tailStart);
          assert.ok(opened.messages.some((m) => m.startsWith('warn: truncated the torn tail')), 'logged the truncation');
        }
        appendRange(opened.log, count - 1, count, 5);
        await opened.log.commit();
        await opened.log.close();
        const reopened = await openLog(dir, { preallocate });
        assert.deepEqual(offsets(reopened.records), range(0, count));
        assert.deepEqual(reopened.records[count - 1]?.payload, payloadFor(count - 1, 5));
        assert.equal(reopened.report.truncatedBytes, 0);
        await reopened.log.close();
      }
    });
  });
}

test('a flipped byte in a non-last segment stops the start with file and position; --repair keeps what is sound', async () => {
  await withTempDir(async (dir) => {
    const count = 200;
    const files = await buildLog(dir, count);
    const damagedName = files[1] ?? '';
    const damagedPath = join(dir, damagedName);
    const pristine = await readFile(damagedPath);
    const starts = recordStarts(pristine);
    const victim = starts[Math.floor(starts.length / 2)] ?? 0;
    const victimOffset = Number(damagedName.slice(0, 20)) + Math.floor(starts.length / 2);
    // Every byte of the victim record (length, checksum, version, kind, offset, payload) is covered.
    for (let at = victim; at < recordEnd(pristine, victim); at += 3) {
      const damaged = Buffer.from(pristine);
      damaged.writeUInt8(damaged.readUInt8(at) ^ 0x10, at);
      await writeFile(damagedPath, damaged);
      await assert.rejects(
        openLog(dir),
        (error: unknown) => {
          assert.ok(error instanceof LogCorruptionError, String(error));
          assert.equal(error.file, damagedName);
          assert.equal(error.position, victim, `flip at ${at}`);
          assert.match(error.message, new RegExp(`${damagedName} at byte ${victim}`));
          assert.match(error.message, /restart with --repair to keep the records before this point and move the rest aside/);
          return true;
        },
        `flip at byte ${at}`,
      );
    }
    const repaired = await openLog(dir, { repair: true });
    assert.deepEqual(offsets(repaired.records), range(0, victimOffset));
    assert.equal(repaired.report.repaired?.file, damagedName);
    assert.equal(repaired.report.repaired?.position, victim);
    assert.equal(repaired.report.repaired?.movedAside.length, files.length - 1);
    assert.ok(repaired.messages.some((m) => m.startsWith('error: repair:')));
    assert.equal(repaired.log.nextOffset, victimOffset);
    appendRange(repaired.log, victimOffset, victimOffset + 10, 3);
    await repaired.log.close();
    const names = await readdir(dir);
    assert.ok(names.includes(`${damagedName}.from-${victim}.corrupt`));
    for (const later of files.slice(2)) assert.ok(names.includes(`${later}.corrupt`), `${later} moved aside`);
    const aside = await readFile(join(dir, `${damagedName}.from-${victim}.corrupt`));
    assert.deepEqual(aside.subarray(aside.length - 10), pristine.subarray(pristine.length - 10), 'the moved tail holds the original bytes');
    const after = await openLog(dir);
    assert.deepEqual(offsets(after.records), range(0, victimOffset + 10));
    await after.log.close();
  });
});

test('a flipped byte in the tail record of the last segment is cut as torn', async () => {
  await withTempDir(async (dir) => {
    const files = await buildLog(dir, 100);
    const lastPath = join(dir, files[files.length - 1] ?? '');
    const pristine = await readFile(lastPath);
    const starts = recordStarts(pristine);
    const tail = starts[starts.length - 1] ?? 0;
    for (const at of [tail + 2, tail + 5, tail + 9, tail + 20, recordEnd(pristine, tail) - 1]) {
      const damaged = Buffer.from(pristine);
      damaged.writeUInt8(damaged.readUInt8(at) ^ 0x01, at);
      await writeFile(lastPath, damaged);
      const opened = await openLog(dir);
      assert.deepEqual(offsets(opened.records), range(0, 99), `flip at ${at}`);
      assert.equal(opened.report.truncatedAt?.position, tail);
      await opened.log.close();
      await writeFile(lastPath, pristine);
    }
  });
});

test('damage in the last segment followed by sound records is corruption, not a torn tail', async () => {
  await withTempDir(async (dir) => {
    const files = await buildLog(dir, 100);
    const lastName = files[files.length - 1] ?? '';
    const lastPath = join(dir, lastName);
    const pristine = await readFile(lastPath);
    const starts = recordStarts(pristine);
    assert.ok(starts.length >= 4);
    const victim = starts[1] ?? 0;
    for (const edit of ['flip payload', 'zero length word', 'flip length']) {
      const damaged = Buffer.from(pristine);
      if (edit === 'flip payload') damaged.writeUInt8(damaged.readUInt8(victim + 20) ^ 0xff, victim + 20);
      if (edit === 'zero length word') damaged.writeUInt32LE(0, victim);
      if (edit === 'flip length') damaged.writeUInt8(damaged.readUInt8(victim) ^ 0x04, victim);
      await writeFile(lastPath, damaged);
      await assert.rejects(openLog(dir), (error: unknown) => error instanceof LogCorruptionError && error.file === lastName && error.position === victim, edit);
    }
  });
});

test('a missing middle segment stops the start', async () => {
  await withTempDir(async (dir) => {
    const files = await buildLog(dir, 200);
    await unlink(join(dir, files[2] ?? ''));
    await assert.rejects(openLog(dir), (error: unknown) => {
      assert.ok(error instanceof LogCorruptionError);
      assert.equal(error.file, files[3]);
      assert.equal(error.position, 0);
      assert.match(error.reason, /previous segment ends before offset/);
      return true;
    });
    const repaired = await openLog(dir, { repair: true });
    const base2 = Number(files[2]?.slice(0, 20));
    assert.deepEqual(offsets(repaired.records), range(0, base2));
    assert.equal(repaired.log.nextOffset, base2);
    await repaired.log.close();
  });
});

test('a last segment whose creation was cut short is removed and the log continues', async () => {
  await withTempDir(async (dir) => {
    let next = 0;
    for (const leftover of [Buffer.alloc(0), Buffer.from([0x57, 0x53, 0x45]), Buffer.alloc(4096)]) {
      const opened = await openLog(dir);
      assert.equal(opened.log.nextOffset, next);
      appendRange(opened.log, next, next + 40);
      await opened.log.close();
      next += 40;
      const name = String(next).padStart(20, '0') + '.wseg';
      await writeFile(join(dir, name), leftover);
      const reopened = await openLog(dir);
      assert.deepEqual(offsets(reopened.records), range(0, next));
      assert.equal(reopened.report.truncatedAt?.file, name);
      assert.equal(reopened.report.truncatedAt?.position, 0);
      assert.ok(!(await readdir(dir)).includes(name), `${name} removed`);
      appendRange(reopened.log, next, next + 1);
      next += 1;
      await reopened.log.close();
    }
    const final = await openLog(dir);
    assert.deepEqual(offsets(final.records), range(0, next));
    await final.log.close();
  });
});
