/**
 * Leader side of catch-up by snapshot: a follower's log end is below the leader's log start
 * (the records it needs were released), so it gets the queue's live messages as of
 * S = the leader's log end now, then the log from S. Publishing and consuming go on meanwhile:
 * the live set is copied at S (a Map copy), and the enqueue payloads below S never change.
 *
 * The snapshot is built here, on the replicator's thread, record by record from the replica's
 * reads (the sparse index and 64 KiB read-ahead make in-order reads one read per chunk): the
 * records must be re-framed byte for byte as the store frames them, which needs the same
 * record codec and the segment reader; a Piscina job would have to duplicate the segment
 * reader against files the writer is appending to. Each chunk is awaited against the link's
 * congestion, so a large snapshot never holds more than one chunk plus the socket buffer.
 */
import { crc32c } from '@node-rs/crc32';
import { encodeIdList, LogKind } from '../shard/log-records.js';
import { encodeRecord, recordBytesFor } from '../store/record-codec.js';
import { FrameType } from './wire.js';
import { describe } from './leader-queue.js';
import type { FollowerStream, LeaderQueue } from './leader-queue.js';
import type { ReplicatorLogger } from './types.js';

export async function sendSnapshot(leader: LeaderQueue, stream: FollowerStream, chunkBytesMax: number, log: ReplicatorLogger): Promise<void> {
  const replica = leader.replica;
  const pin = replica.pin(replica.logStart);
  try {
    await replica.commit();
    const offset = replica.nextOffset;
    const entries = replica.liveEntries();
    const epochs = replica.epochs.entries.filter((e) => e.startOffset < offset).map((e) => ({ epoch: e.epoch, startOffset: e.startOffset }));
    let parts: Buffer[] = [];
    let bytes = 0;
    let chunkIndex = 0;
    let total = 0;
    const flush = async (last: boolean): Promise<void> => {
      while (stream.active && stream.link.congested) await new Promise<void>((resolve) => stream.link.onDrainOnce(resolve));
      if (!stream.active) return;
      const records = Buffer.concat(parts, bytes);
      stream.link.send({
        type: FrameType.snapshot,
        msg: {
          queueId: leader.queueId,
          queue: leader.name,
          epoch: leader.epoch,
          offset,
          records,
          checksum: crc32c(records) >>> 0,
          last,
          epochs: last ? epochs : [],
          chunkIndex,
        },
      });
      chunkIndex += 1;
      total += bytes;
      parts = [];
      bytes = 0;
    };
    for (const [msgId, entry] of entries) {
      if (!stream.active) return;
      const payload = await replica.enqueuePayload(entry.offset);
      const framed = Buffer.allocUnsafe(recordBytesFor(payload.length));
      encodeRecord(framed, 0, entry.offset, LogKind.enqueue, payload);
      parts.push(framed);
      bytes += framed.length;
      if (entry.delivered) {
        const ids = encodeIdList(payload.readUInt32LE(0), [msgId]);
        const delivered = Buffer.allocUnsafe(recordBytesFor(ids.length));
        encodeRecord(delivered, 0, entry.offset, LogKind.delivered, ids);
        parts.push(delivered);
        bytes += delivered.length;
      }
      if (bytes >= chunkBytesMax) await flush(false);
    }
    await flush(true);
    if (!stream.active) return;
    log('info', `queue ${leader.name}: sent ${stream.node} a snapshot of ${entries.length} live message(s) as of offset ${offset} (${total} bytes, ${chunkIndex} chunk(s))`);
    stream.nextSend = offset;
  } catch (error: unknown) {
    log('error', `queue ${leader.name}: snapshot for ${stream.node} failed: ${describe(error)}; closing its link`);
    stream.link.close(error instanceof Error ? error : undefined);
  } finally {
    replica.unpin(pin);
    stream.snapshotting = false;
  }
  leader.pump(stream);
}
