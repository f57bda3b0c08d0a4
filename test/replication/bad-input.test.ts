/**
 * Bad input on the replication link, from a fake leader that writes raw bytes to the socket:
 * stale epochs, bad checksums, records that do not continue the log, garbage and truncated
 * protobuf, oversized frames and unknown frame types are refused and logged, and the
 * follower's log stays exactly what the good batches made it.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import { acceptPeer } from '../../src/cluster/secret-handshake.js';
import { encodeRecord, recordBytesFor } from '../../src/store/record-codec.js';
import { FrameReader, FrameType, encodeFrameBytes } from '../../src/replication/wire.js';
import type { AckMsg, FetchMsg, Frame } from '../../src/replication/wire.js';
import { REPLICA_KIND_EPOCH_START, encodeEpochStart } from '../../src/replication/live-index.js';
import { LogKind, enqueuePayload, framedRecords, replicaDir, startNode, waitFor, withTempDir } from './replication-kit.js';

const queueId = 9;
const name = '/bad';

/** Framed records [from, from + payloads.length) as a leader's log holds them. */
function framed(from: number, records: Array<[number, Buffer]>): Buffer {
  const parts = records.map(([kind, payload], i) => {
    const buf = Buffer.allocUnsafe(recordBytesFor(payload.length));
    encodeRecord(buf, 0, from + i, kind, payload);
    return buf;
  });
  return Buffer.concat(parts);
}

function batch(epoch: number, baseOffset: number, records: Buffer, count: number, checksum = crc32c(records) >>> 0): Frame {
  return { type: FrameType.batch, msg: { queueId, queue: name, epoch, baseOffset, recordCount: count, commitOffset: -1, checksum, records } };
}

function fetchReply(epoch: number, truncateTo: number): Frame {
  return { type: FrameType.fetchReply, msg: { queueId, queue: name, epoch, truncateTo, logStart: 0 } };
}

class FakeLeader {
  readonly fetches: FetchMsg[] = [];
  readonly acks: AckMsg[] = [];
  connections = 0;
  socket: Socket | undefined;
  private server: Server | undefined;

  async listen(): Promise<number> {
    const server = createServer((socket) => {
      socket.on('error', () => undefined);
      void acceptPeer(socket, 'test-secret', 'fake').then(({ rest }) => {
        this.connections += 1;
        this.socket = socket;
        const reader = new FrameReader(1024 * 1024, (frame) => {
          if (frame.type === FrameType.fetch) this.fetches.push(frame.msg);
          if (frame.type === FrameType.ack) this.acks.push(frame.msg);
        });
        if (rest.length > 0) reader.push(rest);
        socket.on('data', (chunk: Buffer) => reader.push(chunk));
        socket.resume();
      });
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    assert.ok(address !== null && typeof address === 'object');
    return address.port;
  }

  send(frame: Frame): void {
    this.raw(encodeFrameBytes(frame));
  }

  raw(bytes: Buffer): void {
    assert.ok(this.socket !== undefined);
    this.socket.write(bytes);
  }

  /** Waits for Fetch number n (1-based) and returns it. */
  async fetch(n: number): Promise<FetchMsg> {
    return waitFor(() => this.fetches[n - 1], `fetch #${n}`);
  }

  async close(): Promise<void> {
    this.socket?.destroy();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }
}

describe('replication link: bad input from a leader', () => {
  test('every kind of bad frame is refused and logged; the follower log stays consistent', async () => {
    await withTempDir(async (dir) => {
      const leader = new FakeLeader();
      const port = await leader.listen();
      const f = await startNode('f', join(dir, 'f'), { frameBytesMax: 64 * 1024, batchBytesMax: 16 * 1024 });
      const logEnd = (): number => f.replicator.replicaState(queueId)?.logEnd ?? -1;
      const refusals = (re: RegExp): boolean => f.logs.some((line) => line.startsWith('warn') && re.test(line));
      try {
        f.replicator.follow({ queueId, name, epoch: 5, leader: { node: 'fake', repl: `127.0.0.1:${port}` } });
        const first = await leader.fetch(1);
        assert.deepEqual([first.logEndOffset, first.epoch, first.epochs], [0, 5, []]);
        const good = framed(0, [
          [REPLICA_KIND_EPOCH_START, encodeEpochStart(5)],
          [LogKind.enqueue, enqueuePayload(queueId, 'one')],
          [LogKind.enqueue, enqueuePayload(queueId, 'two')],
        ]);
        leader.send(fetchReply(5, 0));
        leader.send(batch(5, 0, good, 3));
        await waitFor(() => leader.acks.some((a) => a.ackedOffset === 2 && a.epoch === 5), 'the ack of offset 2');

        const more = framed(3, [[LogKind.enqueue, enqueuePayload(queueId, 'three')]]);
        // A batch from a stale epoch (a deposed leader): refused, the stream restarts with a new Fetch.
        leader.send(batch(4, 3, more, 1));
        await waitFor(() => refusals(/stale epoch 4 < known 5/), 'the stale-epoch refusal');
        assert.equal((await leader.fetch(2)).logEndOffset, 3);
        assert.equal(logEnd(), 3);

        // A FetchReply from a stale epoch is refused the same way.
        leader.send(fetchReply(4, 3));
        await waitFor(() => refusals(/FetchReply from stale epoch 4/), 'the stale FetchReply refusal');
        await leader.fetch(3);

        leader.send(fetchReply(5, 3));
        leader.send(batch(5, 3, more, 1, 0x12345678));
        await waitFor(() => refusals(/checksum 0x12345678/), 'the checksum refusal');
        await leader.fetch(4);

        leader.send(fetchReply(5, 3));
        leader.send(batch(5, 4, framed(4, [[LogKind.enqueue, enqueuePayload(queueId, 'gap')]]), 1));
        await waitFor(() => refusals(/starts at 4, this log continues at 3/), 'the gap refusal');
        await leader.fetch(5);

        // Records whose own offsets do not continue the log, under a correct envelope.
        leader.send(fetchReply(5, 3));
        leader.send(batch(5, 3, framed(7, [[LogKind.enqueue, enqueuePayload(queueId, 'bad offset')]]), 1));
        await waitFor(() => refusals(/record has offset 7, the log expects 3/), 'the record offset refusal');
        await leader.fetch(6);
        assert.equal(logEnd(), 3);

        // Link-level garbage: each closes the link; the follower reconnects and fetches from 3 again.
        const header = (bodyBytes: number, type: number): Buffer => {
          const h = Buffer.allocUnsafe(5);
          h.writeUInt32LE(bodyBytes, 0);
          h[4] = type;
          return h;
        };
        const garbage = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x07, 0x01]);
        const validBatch = encodeFrameBytes(batch(5, 3, more, 1));
        const truncatedMessage = validBatch.subarray(5, 5 + Math.floor((validBatch.length - 5) / 2));
        const badFrames: Array<[string, Buffer, RegExp]> = [
          ['garbage protobuf', Buffer.concat([header(1 + garbage.length, FrameType.batch), garbage]), /Batch of 7 bytes does not decode/],
          ['truncated protobuf', Buffer.concat([header(1 + truncatedMessage.length, FrameType.batch), truncatedMessage]), /Batch of \d+ bytes does not decode/],
          ['oversized frame', header(64 * 1024 + 1, FrameType.batch), /frame of 65537 bytes > max 65536/],
          ['unknown type', Buffer.concat([header(2, 99), Buffer.from([0])]), /unknown frame type 99/],
          ['leader sends a Fetch', encodeFrameBytes({ type: FrameType.fetch, msg: { ...first, queueId } }), /a leader sent Fetch/],
        ];
        let connections = leader.connections;
        let fetches = 6;
        for (const [what, bytes, expected] of badFrames) {
          leader.send(fetchReply(5, 3));
          leader.raw(bytes);
          await waitFor(() => refusals(expected), `the refusal of ${what}`);
          await waitFor(() => leader.connections > connections, `a reconnect after ${what}`);
          connections = leader.connections;
          fetches += 1;
          const again = await leader.fetch(fetches);
          assert.equal(again.logEndOffset, 3, `fetch from 3 after ${what}`);
          assert.equal(logEnd(), 3, `log unchanged after ${what}`);
        }

        // And the stream still works: the good record lands after all that.
        leader.send(fetchReply(5, 3));
        leader.send(batch(5, 3, more, 1));
        await waitFor(() => leader.acks.some((a) => a.ackedOffset === 3), 'the ack of offset 3');
        const records = await framedRecords(replicaDir(f, queueId));
        assert.ok(records.bytes.equals(Buffer.concat([good, more])), 'the log holds exactly the good records');
        assert.equal(f.replicator.status()[0]?.liveMessages, 3);
      } finally {
        await f.replicator.close();
        await leader.close();
      }
    });
  });
});
