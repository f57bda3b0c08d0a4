import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { RECORD_CHECKED_OFFSET, RECORD_OFFSET_OFFSET, SEGMENT_HEADER_BYTES } from '../../src/store/record-layout.js';
import { StoreWriteError } from '../../src/store/store-errors.js';
import { FaultyFileSystem, appendRange, openLog, payloadFor, withTempDir } from './store-test-kit.js';
import type { LogOffset } from '../../src/store/log-offset.js';
import type { SegmentLog } from '../../src/store/segment-log.js';

/** Offsets of the records in a segment file, walking length words (0 or end of file stops). */
async function offsetsInFile(path: string): Promise<number[]> {
  const file = await readFile(path);
  const offsets: number[] = [];
  let position = SEGMENT_HEADER_BYTES;
  while (position + RECORD_CHECKED_OFFSET <= file.length) {
    const bodyBytes = file.readUInt32LE(position);
    if (bodyBytes === 0 || position + RECORD_CHECKED_OFFSET + bodyBytes > file.length) break;
    offsets.push(file.readUInt32LE(position + RECORD_OFFSET_OFFSET));
    position += RECORD_CHECKED_OFFSET + bodyBytes;
  }
  return offsets;
}

function flushedReaches(log: SegmentLog, offset: number): Promise<void> {
  return new Promise((resolve) => {
    if (log.flushedOffset >= offset) resolve();
    log.onFlushed = (flushed) => {
      if (flushed >= offset) resolve();
    };
  });
}

async function expectAllRecords(dir: string, count: number): Promise<void> {
  const reopened = await openLog(dir);
  assert.equal(reopened.records.length, count);
  reopened.records.forEach((record, offset) => assert.deepEqual(record.payload, payloadFor(offset), `record ${offset}`));
  assert.equal(reopened.report.truncatedBytes, 0, 'nothing torn: failed writes were rolled back');
  await reopened.log.close();
}

test('ENOSPC in the middle of a write: StoreWriteError, the partial write is rolled back, a later commit succeeds', async () => {
  await withTempDir(async (dir) => {
    const fs = new FaultyFileSystem();
    const opened = await openLog(dir, { fileSystem: fs, preallocate: false, segmentBytes: 1024 * 1024 });
    const errors: StoreWriteError[] = [];
    opened.log.onWriteError = (error) => errors.push(error);
    appendRange(opened.log, 0, 10);
    assert.equal(await opened.log.commit(), 9);
    appendRange(opened.log, 10, 30);
    fs.fail('write', 'ENOSPC');
    await assert.rejects(opened.log.commit(), (error: unknown) => error instanceof StoreWriteError && error.code === 'ENOSPC' && /ENOSPC/.test(error.message));
    assert.equal(opened.log.flushedOffset, 9);
    assert.equal(opened.log.writtenOffset, 9);
    assert.deepEqual(await offsetsInFile(join(dir, opened.log.segmentFiles()[0] ?? '')), [...Array(10).keys()], 'half-written records were cut');
    await Promise.resolve();
    assert.ok(errors.length >= 1, 'onWriteError heard of it');
    // Appending goes on while the disk is full; nothing is lost.
    appendRange(opened.log, 30, 40);
    await assert.rejects(opened.log.commit(), StoreWriteError);
    fs.heal();
    const recovered = flushedReaches(opened.log, 39);
    assert.equal(await opened.log.commit(), 39);
    await recovered;
    assert.ok(opened.messages.some((m) => m.startsWith('info: writes to')), 'logged the recovery');
    assert.deepEqual((await opened.log.read(25 as LogOffset)).payload, payloadFor(25));
    await opened.log.close();
    await expectAllRecords(dir, 40);
  });
});

test('ENOSPC with preallocation: commits go on inside the preallocated segment, the next one fails until space returns', async () => {
  await withTempDir(async (dir) => {
    const fs = new FaultyFileSystem();
    const segmentBytes = 16 * 1024;
    const opened = await openLog(dir, { fileSystem: fs, preallocate: true, segmentBytes });
    appendRange(opened.log, 0, 5);
    await opened.log.commit();
    fs.fail('write', 'ENOSPC');
    appendRange(opened.log, 5, 60);
    assert.equal(await opened.log.commit(), 59, 'overwriting preallocated blocks needs no space');
    // Past this segment: the spare cannot be zero-filled and a growing file cannot grow.
    let next = 60;
    let failure: unknown;
    while (failure === undefined && next < 2000) {
      appendRange(opened.log, next, next + 20);
      next += 20;
      failure = await opened.log.commit().then(() => undefined, (error: unknown) => error);
    }
    assert.ok(failure instanceof StoreWriteError && failure.code === 'ENOSPC', String(failure));
    assert.ok(opened.messages.some((m) => m.startsWith('warn: could not preallocate')), 'the spare could not be zero-filled');
    fs.heal();
    assert.equal(await opened.log.commit(), next - 1);
    await opened.log.close();
    await expectAllRecords(dir, next);
  });
});

for (const fsyncOnThread of [false, true]) {
  test(`EIO on fdatasync (${fsyncOnThread ? "on the log's thread" : 'in the thread pool'}): the unsynced records are rewritten and synced once the disk answers again`, async () => {
    await withTempDir(async (dir) => {
      const fs = new FaultyFileSystem();
      const opened = await openLog(dir, { fileSystem: fs, fsyncOnThread });
      appendRange(opened.log, 0, 5);
      await opened.log.commit();
      appendRange(opened.log, 5, 20);
      fs.fail('datasync', 'EIO');
      await assert.rejects(opened.log.commit(), (error: unknown) => error instanceof StoreWriteError && error.code === 'EIO');
      assert.equal(opened.log.flushedOffset, 4);
      const writesBefore = fs.calls.get('write') ?? 0;
      fs.heal();
      assert.equal(await opened.log.commit(), 19);
      assert.ok((fs.calls.get('write') ?? 0) > writesBefore, 'records written again after the failed sync');
      await opened.log.close();
      await expectAllRecords(dir, 20);
    });
  });
}

test('a segment that cannot be created (ENOSPC on open) fails the commit; the roll is retried', async () => {
  await withTempDir(async (dir) => {
    const fs = new FaultyFileSystem();
    const opened = await openLog(dir, { fileSystem: fs, segmentBytes: 4096 });
    appendRange(opened.log, 0, 20);
    await opened.log.commit();
    const segments = opened.log.segmentFiles().length;
    appendRange(opened.log, 20, 200);
    fs.fail('open', 'ENOSPC');
    await assert.rejects(opened.log.commit(), (error: unknown) => error instanceof StoreWriteError && error.code === 'ENOSPC');
    assert.equal(opened.log.segmentFiles().length, segments);
    fs.heal();
    assert.equal(await opened.log.commit(), 199);
    assert.ok(opened.log.segmentFiles().length > segments);
    await opened.log.close();
    await expectAllRecords(dir, 200);
  });
});

test('batch-ms: a failed timer sync is reported through onWriteError and retried in the background', async () => {
  await withTempDir(async (dir) => {
    const fs = new FaultyFileSystem();
    const opened = await openLog(dir, { fileSystem: fs, fsync: { mode: 'batch', batchMs: 2 } });
    const failed = new Promise<StoreWriteError>((resolve) => {
      opened.log.onWriteError = resolve;
    });
    appendRange(opened.log, 0, 30);
    fs.fail('datasync', 'EIO');
    assert.equal(await opened.log.commit(), 29, 'batch commit resolves after the write');
    const error = await failed;
    assert.equal(error.code, 'EIO');
    assert.equal(opened.log.flushedOffset, -1);
    const durable = flushedReaches(opened.log, 29);
    fs.heal();
    await durable;
    await opened.log.close();
    await expectAllRecords(dir, 30);
  });
});

test('when even the rollback fails the log refuses further work, and reopening recovers', async () => {
  await withTempDir(async (dir) => {
    const fs = new FaultyFileSystem();
    const opened = await openLog(dir, { fileSystem: fs });
    appendRange(opened.log, 0, 10);
    await opened.log.commit();
    appendRange(opened.log, 10, 20);
    fs.fail('write', 'ENOSPC');
    fs.fail('truncate', 'EIO');
    await assert.rejects(opened.log.commit(), (error: unknown) => error instanceof StoreWriteError && error.code === 'EIO');
    assert.throws(() => opened.log.append(1, Buffer.alloc(1)), StoreWriteError);
    await assert.rejects(opened.log.commit(), StoreWriteError);
    assert.ok(opened.messages.some((m) => /must be reopened/.test(m)));
    fs.heal();
    await opened.log.close();
    // Whole records of the half-done write may survive (never confirmed, harmless); the torn one is cut.
    const reopened = await openLog(dir);
    assert.ok(reopened.records.length >= 10 && reopened.records.length < 20, `${reopened.records.length} records`);
    reopened.records.forEach((record, offset) => assert.deepEqual(record.payload, payloadFor(offset)));
    assert.equal(reopened.log.nextOffset, reopened.records.length);
    await reopened.log.close();
  });
});
