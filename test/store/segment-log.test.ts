import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { RECORD_HEADER_BYTES } from '../../src/store/record-layout.js';
import { encodeRecord } from '../../src/store/record-codec.js';
import { RecordBatchError } from '../../src/store/store-errors.js';
import { appendRange, kindFor, openLog, payloadFor, withTempDir } from './store-test-kit.js';
import type { LogOffset } from '../../src/store/log-offset.js';
import type { LogRecord } from '../../src/store/log-record.js';

function assertRecords(records: LogRecord[], from: number, to: number, seed = 0): void {
  assert.equal(records.length, to - from, 'record count');
  records.forEach((record, i) => {
    const offset = from + i;
    assert.equal(record.offset, offset);
    assert.equal(record.kind, kindFor(offset), `kind of ${offset}`);
    assert.deepEqual(record.payload, payloadFor(offset, seed), `payload of ${offset}`);
  });
}

for (const preallocate of [false, true]) {
  describe(`segment log (preallocate ${preallocate})`, () => {
    test('append, commit, reopen replays the same records in order', async () => {
      await withTempDir(async (dir) => {
        const first = await openLog(dir, { preallocate });
        assert.equal(first.log.nextOffset, 0);
        assert.equal(first.log.flushedOffset, -1);
        appendRange(first.log, 0, 10);
        assert.equal(await first.log.commit(), 9);
        assert.equal(first.log.flushedOffset, 9);
        appendRange(first.log, 10, 25);
        assert.equal(await first.log.commit(), 24);
        await first.log.close();

        const second = await openLog(dir, { preallocate });
        assertRecords(second.records, 0, 25);
        assert.equal(second.report.records, 25);
        assert.equal(second.report.truncatedBytes, 0);
        assert.equal(second.log.nextOffset, 25);
        appendRange(second.log, 25, 30);
        await second.log.close();
        const third = await openLog(dir, { preallocate });
        assertRecords(third.records, 0, 30);
        await third.log.close();
      });
    });

    test('rolls over many segments, each within segmentBytes', async () => {
      await withTempDir(async (dir) => {
        const segmentBytes = 4096;
        const opened = await openLog(dir, { preallocate, segmentBytes });
        for (let from = 0; from < 1000; from += 100) {
          appendRange(opened.log, from, from + 100);
          await opened.log.commit();
        }
        const files = opened.log.segmentFiles();
        assert.ok(files.length >= 20, `expected many segments, got ${files.length}`);
        await opened.log.close();
        const onDisk = (await readdir(dir)).filter((name) => name.endsWith('.wseg')).sort();
        assert.deepEqual(onDisk, files);
        const sizes = await Promise.all(onDisk.map(async (name) => (await stat(join(dir, name))).size));
        sizes.forEach((size, i) => assert.ok(size <= segmentBytes, `${onDisk[i]} larger than a segment`));
        if (preallocate) assert.ok(sizes.filter((size) => size === segmentBytes).length >= files.length / 2, 'most segments were preallocated spares');
        const reopened = await openLog(dir, { preallocate, segmentBytes });
        assertRecords(reopened.records, 0, 1000);
        assert.equal(reopened.report.segments, files.length);
        await reopened.log.close();
      });
    });

    test('read(offset) across segments, before and after reopen', async () => {
      await withTempDir(async (dir) => {
        const opened = await openLog(dir, { preallocate, indexStrideRecords: 8 });
        appendRange(opened.log, 0, 600);
        // Not committed yet: read waits for the write.
        const early = await opened.log.read(599 as LogOffset);
        assert.deepEqual(early.payload, payloadFor(599));
        const order = [...Array(600).keys()].sort((a, b) => ((a * 7919) % 600) - ((b * 7919) % 600));
        for (const offset of order) {
          const record = await opened.log.read(offset as LogOffset);
          assert.equal(record.offset, offset);
          assert.equal(record.kind, kindFor(offset));
          assert.deepEqual(record.payload, payloadFor(offset));
        }
        await assert.rejects(opened.log.read(600 as LogOffset), RangeError);
        await opened.log.close();
        const reopened = await openLog(dir, { preallocate, indexStrideRecords: 8 });
        for (let offset = 0; offset < 600; offset++) assert.deepEqual((await reopened.log.read(offset as LogOffset)).payload, payloadFor(offset));
        const concurrent = await Promise.all([5, 405, 123, 599, 0, 300].map((offset) => reopened.log.read(offset as LogOffset)));
        assert.deepEqual(concurrent.map((record) => record.offset), [5, 405, 123, 599, 0, 300]);
        await reopened.log.close();
      });
    });

    test('releaseBefore deletes only fully released segments; offsets continue after reopen', async () => {
      await withTempDir(async (dir) => {
        const opened = await openLog(dir, { preallocate });
        appendRange(opened.log, 0, 500);
        await opened.log.commit();
        const before = opened.log.segmentFiles();
        const secondBase = Number(before[1]?.slice(0, 20));
        const thirdBase = Number(before[2]?.slice(0, 20));
        assert.equal(await opened.log.releaseBefore((secondBase - 1) as LogOffset), 0, 'first segment still holds a needed record');
        assert.equal(await opened.log.releaseBefore(thirdBase as LogOffset), 2);
        assert.deepEqual(opened.log.segmentFiles(), before.slice(2));
        assert.equal(opened.log.firstOffset, thirdBase);
        await assert.rejects(opened.log.read((thirdBase - 1) as LogOffset), RangeError);
        assert.deepEqual((await opened.log.read(thirdBase as LogOffset)).payload, payloadFor(thirdBase));
        // Releasing everything never deletes the segment being written.
        const deleted = await opened.log.releaseBefore(500 as LogOffset);
        assert.equal(deleted, before.length - 3);
        assert.deepEqual(opened.log.segmentFiles(), before.slice(-1));
        await opened.log.close();
        const reopened = await openLog(dir, { preallocate });
        const lastBase = Number(before[before.length - 1]?.slice(0, 20));
        assertRecords(reopened.records.map((r) => r), lastBase, 500);
        assert.equal(reopened.log.nextOffset, 500);
        appendRange(reopened.log, 500, 510);
        await reopened.log.commit();
        assert.deepEqual((await reopened.log.read(505 as LogOffset)).payload, payloadFor(505));
        await reopened.log.close();
      });
    });

    test('concurrent commit() calls coalesce into far fewer fsyncs', async () => {
      await withTempDir(async (dir) => {
        const opened = await openLog(dir, { preallocate, segmentBytes: 1024 * 1024 });
        const fsyncs: number[] = [];
        opened.log.onFsync = (fsyncMs, bytes) => {
          assert.ok(fsyncMs >= 0 && bytes > 0);
          fsyncs.push(bytes);
        };
        const commits: Promise<LogOffset>[] = [];
        for (let offset = 0; offset < 400; offset++) {
          appendRange(opened.log, offset, offset + 1);
          commits.push(opened.log.commit());
        }
        const results = await Promise.all(commits);
        results.forEach((flushed, i) => assert.ok(flushed >= i, `commit ${i} resolved with ${flushed}`));
        assert.equal(opened.log.flushedOffset, 399);
        assert.ok(opened.log.stats().commits <= 3, `expected at most 3 rounds, got ${opened.log.stats().commits}`);
        assert.ok(fsyncs.length <= 3, `expected at most 3 fsyncs, got ${fsyncs.length}`);
        opened.log.onFsync = undefined;
        await opened.log.close();
      });
    });
  });
}

test('a burst far larger than the write buffer is written in one round and read back', async () => {
  await withTempDir(async (dir) => {
    const opened = await openLog(dir, { segmentBytes: 8 * 1024 * 1024, preallocate: true });
    // ~1.2 MB appended before one commit: the run buffer (256 KiB) must grow, several times.
    const big = Buffer.alloc(3000, 0x33);
    for (let offset = 0; offset < 400; offset++) opened.log.appendParts(kindFor(offset), payloadFor(offset), big);
    assert.equal(await opened.log.commit(), 399);
    assert.equal(opened.log.stats().commits, 1);
    const record = await opened.log.read(250 as LogOffset);
    assert.deepEqual(record.payload, Buffer.concat([payloadFor(250), big]));
    await opened.log.close();
    const reopened = await openLog(dir, { segmentBytes: 8 * 1024 * 1024, preallocate: true });
    assert.equal(reopened.records.length, 400);
    reopened.records.forEach((r, offset) => assert.deepEqual(r.payload, Buffer.concat([payloadFor(offset), big])));
    await reopened.log.close();
  });
});

test('preallocation follows the write size: small commits get zero-filled segments, large ones growing files', async () => {
  await withTempDir(async (dir) => {
    const segmentBytes = 1024 * 1024;
    const opened = await openLog(dir, { segmentBytes, preallocate: true });
    const body = Buffer.alloc(1000, 0x44);
    // ~200 KB per commit: bandwidth-bound, zero-filling would double the bytes written.
    for (let commit = 0; commit < 30; commit++) {
      for (let i = 0; i < 200; i++) opened.log.append(1, body);
      await opened.log.commit();
    }
    const files = opened.log.segmentFiles();
    assert.ok(files.length >= 5, `${files.length} segments`);
    await opened.log.close();
    const sizes = await Promise.all(files.map(async (name) => (await stat(join(dir, name))).size));
    // The first segment and the one after it may come from the spare prepared at open.
    for (const size of sizes.slice(2)) assert.ok(size < segmentBytes, `segment of ${size} bytes was zero-filled`);
  });
});

test('appendAt and truncateTo, within and across segments', async () => {
  await withTempDir(async (dir) => {
    const opened = await openLog(dir);
    for (let offset = 0; offset < 300; offset++) opened.log.appendAt(offset as LogOffset, kindFor(offset), payloadFor(offset));
    assert.throws(() => opened.log.appendAt(7 as LogOffset, 1, Buffer.alloc(1)), RangeError);
    await opened.log.commit();
    const segmentsBefore = opened.log.segmentFiles().length;
    await opened.log.truncateTo(290 as LogOffset);
    assert.equal(opened.log.nextOffset, 290);
    assert.equal(opened.log.flushedOffset, 289);
    await opened.log.truncateTo(50 as LogOffset);
    assert.ok(opened.log.segmentFiles().length < segmentsBefore);
    assert.equal(opened.log.nextOffset, 50);
    await assert.rejects(opened.log.read(50 as LogOffset), RangeError);
    // The follower continues with the new leader's records (different payloads).
    for (let offset = 50; offset < 120; offset++) opened.log.appendAt(offset as LogOffset, kindFor(offset), payloadFor(offset, 9));
    await opened.log.commit();
    assert.deepEqual((await opened.log.read(60 as LogOffset)).payload, payloadFor(60, 9));
    // Pending records are written before the cut.
    appendRange(opened.log, 120, 130, 9);
    await opened.log.truncateTo(125 as LogOffset);
    assert.equal(opened.log.nextOffset, 125);
    // Truncating to nextOffset only writes what is pending, and durably (fsync always).
    appendRange(opened.log, 125, 126, 9);
    await opened.log.truncateTo(126 as LogOffset);
    assert.equal(await opened.log.commit(), 125);
    assert.equal(opened.log.flushedOffset, 125);
    await opened.log.truncateTo(125 as LogOffset);
    await opened.log.close();
    const reopened = await openLog(dir);
    assertRecords(reopened.records.slice(0, 50), 0, 50);
    assertRecords(reopened.records.slice(50), 50, 125, 9);
    assert.equal(reopened.report.truncatedBytes, 0);
    // Truncating to a segment's base leaves that segment empty but usable.
    const base = Number(reopened.log.segmentFiles()[1]?.slice(0, 20));
    await reopened.log.truncateTo(base as LogOffset);
    appendRange(reopened.log, base, base + 3, 4);
    await reopened.log.close();
    const last = await openLog(dir);
    assertRecords(last.records.slice(base), base, base + 3, 4);
    await last.log.close();
  });
});

test('appendRecords appends encoded records verbatim and refuses a bad batch whole', async () => {
  await withTempDir(async (leaderDir) => {
    await withTempDir(async (followerDir) => {
      const batch = Buffer.alloc(25 * (RECORD_HEADER_BYTES + 200) + 600 * 1024);
      let used = 0;
      for (let offset = 0; offset < 20; offset++) used += encodeRecord(batch, used, offset, kindFor(offset), payloadFor(offset));
      const follower = await openLog(followerDir);
      assert.equal(follower.log.appendRecords(batch.subarray(0, used)), 19);
      const damaged = Buffer.from(batch.subarray(0, used));
      for (let offset = 20; offset < 25; offset++) used += encodeRecord(batch, used, offset, kindFor(offset), payloadFor(offset));
      assert.throws(() => follower.log.appendRecords(damaged), RecordBatchError, 'offsets must continue');
      const corrupt = Buffer.from(batch.subarray(damaged.length, used));
      corrupt.writeUInt8(corrupt.readUInt8(corrupt.length - 1) ^ 0x40, corrupt.length - 1);
      assert.throws(() => follower.log.appendRecords(corrupt), /checksum/);
      assert.equal(follower.log.nextOffset, 20);
      // A batch bigger than the write buffer (256 KiB).
      const large = Buffer.alloc(600 * 1024 + RECORD_HEADER_BYTES);
      encodeRecord(large, 0, 20, 9, Buffer.alloc(600 * 1024, 0x77));
      assert.equal(follower.log.appendRecords(large), 20);
      await follower.log.commit();
      assert.deepEqual((await follower.log.read(20 as LogOffset)).payload, Buffer.alloc(600 * 1024, 0x77));
      await follower.log.close();
      const reopened = await openLog(followerDir);
      assertRecords(reopened.records.slice(0, 20), 0, 20);
      assert.equal(reopened.records.length, 21);
      await reopened.log.close();
      void leaderDir;
    });
  });
});

test('fsync batch-ms: commit resolves after the write, the timer syncs and reports through onFlushed', async () => {
  await withTempDir(async (dir) => {
    const opened = await openLog(dir, { fsync: { mode: 'batch', batchMs: 5 } });
    const flushed = new Promise<LogOffset>((resolve) => {
      opened.log.onFlushed = (offset) => {
        if (offset === 49) resolve(offset);
      };
    });
    appendRange(opened.log, 0, 50);
    assert.equal(await opened.log.commit(), 49);
    assert.equal(opened.log.writtenOffset, 49);
    assert.equal(await flushed, 49);
    assert.equal(opened.log.flushedOffset, 49);
    assert.equal(opened.log.stats().unsyncedBytes, 0);
    await opened.log.close();
  });
});

test('fsync never: flushedOffset follows writtenOffset, no fsync per commit', async () => {
  await withTempDir(async (dir) => {
    const opened = await openLog(dir, { fsync: { mode: 'never' }, segmentBytes: 1024 * 1024 });
    const fsyncsAtStart = opened.log.stats().fsyncs;
    for (let round = 0; round < 5; round++) {
      appendRange(opened.log, round * 10, round * 10 + 10);
      assert.equal(await opened.log.commit(), round * 10 + 9);
      assert.equal(opened.log.flushedOffset, round * 10 + 9);
    }
    assert.equal(opened.log.stats().fsyncs, fsyncsAtStart);
    await opened.log.close();
    const reopened = await openLog(dir);
    assertRecords(reopened.records, 0, 50);
    await reopened.log.close();
  });
});

test('a record larger than segmentBytes gets a segment of its own', async () => {
  await withTempDir(async (dir) => {
    const opened = await openLog(dir, { segmentBytes: 4096, preallocate: true });
    appendRange(opened.log, 0, 3);
    const big = Buffer.alloc(10_000, 0x5a);
    assert.equal(opened.log.append(1, big), 3);
    appendRange(opened.log, 4, 6);
    await opened.log.commit();
    assert.deepEqual((await opened.log.read(3 as LogOffset)).payload, big);
    await opened.log.close();
    const reopened = await openLog(dir, { segmentBytes: 4096, preallocate: true });
    assert.equal(reopened.records.length, 6);
    assert.deepEqual(reopened.records[3]?.payload, big);
    assert.deepEqual(reopened.records[5]?.payload, payloadFor(5));
    await reopened.log.close();
  });
});

test('appendParts stores the concatenation; append validates kind and size', async () => {
  await withTempDir(async (dir) => {
    const opened = await openLog(dir);
    opened.log.appendParts(3, Buffer.from('head:'), Buffer.from('body'));
    assert.throws(() => opened.log.append(256, Buffer.alloc(1)), RangeError);
    assert.throws(() => opened.log.append(-1, Buffer.alloc(1)), RangeError);
    assert.equal(opened.log.nextOffset, 1);
    await opened.log.commit();
    const record = await opened.log.read(0 as LogOffset);
    assert.equal(record.payload.toString(), 'head:body');
    assert.equal(record.kind, 3);
    await opened.log.close();
    assert.throws(() => opened.log.append(1, Buffer.alloc(1)), /closed/);
  });
});
