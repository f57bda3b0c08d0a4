/** The replication frame codec: round trips, every split point, and refusals with value and limit. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FrameReader, FrameTooLargeError, FrameType, WireError, encodeFrameBytes } from '../../src/replication/wire.js';
import type { Frame } from '../../src/replication/wire.js';

const frames: Frame[] = [
  { type: FrameType.fetch, msg: { queueId: 4_000_000_000, queue: 'v/q', logEndOffset: 2 ** 40, epochs: [{ epoch: 1, startOffset: 0 }, { epoch: 3, startOffset: 17 }], epoch: 3 } },
  { type: FrameType.fetchReply, msg: { queueId: 1, queue: 'v/q', epoch: 3, truncateTo: 17, logStart: 0 } },
  { type: FrameType.batch, msg: { queueId: 1, queue: 'v/q', epoch: 3, baseOffset: 17, recordCount: 2, commitOffset: -1, checksum: 0xdeadbeef, records: Buffer.from('0123456789') } },
  { type: FrameType.ack, msg: { queueId: 1, queue: 'v/q', epoch: 3, ackedOffset: -1, follower: 'n2' } },
  { type: FrameType.ack, msg: { queueId: 1, queue: 'v/q', epoch: 3, ackedOffset: 2 ** 53 - 1, follower: 'n2' } },
  {
    type: FrameType.snapshot,
    msg: { queueId: 1, queue: 'v/q', epoch: 3, offset: 99, records: Buffer.alloc(0), checksum: 0, last: true, epochs: [{ epoch: 3, startOffset: 17 }], chunkIndex: 2 },
  },
];

function decodeAll(bytes: Buffer, splits: number[] = []): Frame[] {
  const out: Frame[] = [];
  const reader = new FrameReader(1024, (frame) => out.push(frame));
  let from = 0;
  for (const at of [...splits, bytes.length]) {
    reader.push(bytes.subarray(from, at));
    from = at;
  }
  return out;
}

describe('replication wire', () => {
  test('every frame type round-trips, whole and split at every byte', () => {
    const stream = Buffer.concat(frames.map(encodeFrameBytes));
    assert.deepEqual(decodeAll(stream), frames);
    for (let at = 1; at < stream.length; at++) {
      assert.deepEqual(decodeAll(stream, [at]), frames, `split at ${at}`);
    }
  });

  test('a frame over the limit is refused from its length word alone', () => {
    const header = Buffer.alloc(5);
    header.writeUInt32LE(1025, 0);
    assert.throws(() => decodeAll(header), (error: unknown) => error instanceof FrameTooLargeError && error.frameBytes === 1025 && error.frameBytesMax === 1024);
  });

  test('unknown types, empty bodies and undecodable or out-of-range messages are WireErrors', () => {
    const frame = (type: number, body: Buffer): Buffer => {
      const header = Buffer.alloc(5);
      header.writeUInt32LE(1 + body.length, 0);
      header[4] = type;
      return Buffer.concat([header, body]);
    };
    assert.throws(() => decodeAll(frame(42, Buffer.alloc(0))), /unknown frame type 42/);
    assert.throws(() => decodeAll(Buffer.from([0, 0, 0, 0])), /empty body/);
    assert.throws(() => decodeAll(frame(FrameType.batch, Buffer.from([0x0a, 0x7f, 0x41]))), WireError);
    // An Ack whose acked_offset (sint64, field 3) decodes to -5: below the -1 floor.
    assert.throws(() => decodeAll(frame(FrameType.ack, Buffer.from([0x18, 0x09]))), /acked_offset = -5/);
    // A FetchReply with truncate_to (uint64, field 4) = 2^60: not a safe integer.
    assert.throws(() => decodeAll(frame(FrameType.fetchReply, Buffer.from([0x20, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]))), /truncate_to/);
    // After an error the reader stays failed.
    const reader = new FrameReader(1024, () => undefined);
    assert.throws(() => reader.push(frame(42, Buffer.alloc(0))));
    assert.throws(() => reader.push(encodeFrameBytes(frames[1] as Frame)), /unknown frame type 42/);
  });
});
