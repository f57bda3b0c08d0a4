import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseFsyncPolicy, formatFsyncPolicy } from '../../src/store/fsync-policy.js';
import { RecordView, checkRecord, checkSegmentHeader, encodeRecord, encodeSegmentHeader, findRecordAfter, readU64, writeU64 } from '../../src/store/record-codec.js';
import { RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES, parseSegmentFileName, segmentFileName } from '../../src/store/record-layout.js';
import { SparseIndex } from '../../src/store/sparse-index.js';

function encoded(offset: number, kind: number, payload: Uint8Array, tail?: Uint8Array): Buffer {
  const buf = Buffer.alloc(RECORD_HEADER_BYTES + payload.length + (tail?.length ?? 0));
  assert.equal(encodeRecord(buf, 0, offset, kind, payload, tail), buf.length);
  return buf;
}

test('records round-trip: offset, kind and payload come back, the length covers the record', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 600 }), fc.uint8Array({ maxLength: 50 }), (offset, kind, a, b) => {
      const buf = encoded(offset, kind, a, b);
      const view = new RecordView();
      assert.equal(checkRecord(buf, 0, buf.length, view), 'ok');
      assert.equal(view.offset, offset);
      assert.equal(view.kind, kind);
      assert.equal(view.recordBytes, buf.length);
      assert.deepEqual(buf.subarray(view.payloadStart, view.payloadEnd), Buffer.concat([a, b]));
    }),
  );
});

test('a record cut at every byte is short, never ok', () => {
  const buf = encoded(123456789, 7, Buffer.from('a payload of some length, more than a few bytes'));
  const view = new RecordView();
  for (let cut = 0; cut < buf.length; cut++) {
    assert.equal(checkRecord(buf.subarray(0, cut), 0, cut, view), 'short', `cut at ${cut}`);
    if (cut >= 8) assert.equal(view.recordBytes, buf.length, 'says how many bytes it needs');
  }
});

test('any single flipped bit anywhere in a record is caught', () => {
  const buf = encoded(42, 200, Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz'));
  const view = new RecordView();
  for (let at = 0; at < buf.length; at++) {
    for (let bit = 0; bit < 8; bit++) {
      const damaged = Buffer.from(buf);
      damaged.writeUInt8(damaged.readUInt8(at) ^ (1 << bit), at);
      const check = checkRecord(damaged, 0, damaged.length, view);
      assert.ok(check === 'bad' || check === 'short', `bit ${bit} of byte ${at}: ${check}`);
    }
  }
});

test('a zero length word is the end of data; records are found again after garbage', () => {
  const view = new RecordView();
  assert.equal(checkRecord(Buffer.alloc(64), 0, 64, view), 'end');
  const record = encoded(1000, 1, Buffer.from('found me'));
  const garbage = Buffer.from('garbage!garbage!garbage!', 'utf8');
  const buf = Buffer.concat([garbage, record]);
  assert.equal(findRecordAfter(buf, 0, buf.length, 999, view), garbage.length);
  assert.equal(findRecordAfter(buf, 0, buf.length, 1001, view), -1, 'an older offset than expected does not count');
});

test('segment headers round-trip and any damage is named', () => {
  for (const base of [0, 1, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER]) {
    const header = encodeSegmentHeader(base);
    assert.equal(header.length, SEGMENT_HEADER_BYTES);
    assert.deepEqual(checkSegmentHeader(header), { baseOffset: base });
    for (let at = 0; at < SEGMENT_HEADER_BYTES; at++) {
      const damaged = Buffer.from(header);
      damaged.writeUInt8(damaged.readUInt8(at) ^ 0x80, at);
      const result = checkSegmentHeader(damaged);
      assert.ok('reason' in result, `flip at ${at}`);
    }
  }
});

test('u64 fields hold every safe integer', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (value) => {
      const buf = Buffer.alloc(8);
      writeU64(buf, 0, value);
      assert.equal(readU64(buf, 0), value);
      assert.equal(buf.readBigUInt64LE(0), BigInt(value));
    }),
  );
});

test('segment file names are the zero-padded base offset', () => {
  assert.equal(segmentFileName(0), '00000000000000000000.wseg');
  assert.equal(segmentFileName(123456), '00000000000000123456.wseg');
  assert.equal(parseSegmentFileName(segmentFileName(987654321)), 987654321);
  for (const other of ['00000000000000000000.wseg.corrupt', 'spare.wseg.tmp', '0000000000000000000x.wseg', '1.wseg', '00000000000000000000.wsek']) {
    assert.equal(parseSegmentFileName(other), undefined, other);
  }
});

test('parseFsyncPolicy accepts the three forms and explains anything else', () => {
  assert.deepEqual(parseFsyncPolicy('always'), { mode: 'always' });
  assert.deepEqual(parseFsyncPolicy('never'), { mode: 'never' });
  assert.deepEqual(parseFsyncPolicy('batch-ms=5'), { mode: 'batch', batchMs: 5 });
  assert.equal(formatFsyncPolicy(parseFsyncPolicy('batch-ms=20')), 'batch-ms=20');
  assert.throws(() => parseFsyncPolicy('sometimes'), /expected always, batch-ms=N \(milliseconds\) or never/);
  assert.throws(() => parseFsyncPolicy('batch-ms=0'), /between 1 and 60000/);
  assert.throws(() => parseFsyncPolicy('batch-ms=100000'), /between 1 and 60000/);
  assert.throws(() => parseFsyncPolicy('batch-ms=1.5'), /expected always/);
  assert.throws(() => parseFsyncPolicy('batch-ms='), /expected always/);
});

test('the sparse index returns the indexed record at or before any record', () => {
  const index = new SparseIndex(4);
  for (let record = 0; record < 100; record++) index.note(record, 1000 + record * 10);
  assert.deepEqual(index.floor(0), { recordIndex: 0, position: 1000 });
  assert.deepEqual(index.floor(7), { recordIndex: 4, position: 1040 });
  assert.deepEqual(index.floor(99), { recordIndex: 96, position: 1960 });
  index.truncate(50);
  assert.deepEqual(index.floor(49), { recordIndex: 48, position: 1480 });
  assert.throws(() => index.floor(52));
  for (let record = 50; record < 60; record++) index.note(record, 5000 + record);
  assert.deepEqual(index.floor(53), { recordIndex: 52, position: 5052 });
});
