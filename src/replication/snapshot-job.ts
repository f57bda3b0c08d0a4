/**
 * Piscina task (ARCHITECTURE.md §1, "Piscina pool"): builds the snapshot a follower below the
 * leader's log start receives, off the replicator's thread. Given the replica's directory, the
 * snapshot offset S and the live messages at S as columns, it reads each enqueue payload from the
 * replica's files read-only (snapshot-job-reader.ts: the store's segment reader) and writes the
 * Snapshot frames' records to `outPath`: each message's enqueue record with its original offset,
 * then, if a consumer already got it, a `delivered` record with the same offset — framed by the
 * store's record codec, byte for byte what the follower stores (snapshot-file.ts).
 *
 * The file is cut into chunks the way the sender sends them: a chunk closes once it holds
 * chunkBytesMax bytes or more, at a message boundary, and the last chunk (possibly empty) holds
 * the rest. The result gives each chunk's end and CRC32C, so the sender only reads and sends.
 * No fsync: the file is a transient artifact, deleted once sent (or at the replica's next open).
 */
import { crc32c } from '@node-rs/crc32';
import { encodeIdList, LogKind } from '../shard/log-records.js';
import { encodeRecord, recordBytesFor } from '../store/record-codec.js';
import { nodeStoreFileSystem, writeFully } from '../store/store-file-system.js';
import type { StoreFile } from '../store/store-file-system.js';
import { ReplicaFileReader } from './snapshot-job-reader.js';

/** Offset of the msgId in an enqueue payload (shard/log-records.ts). */
const ENQUEUE_MSG_ID_OFFSET = 4;
/** Offset of the queue id in every shard payload. */
const PAYLOAD_QUEUE_ID_OFFSET = 0;

export interface SnapshotJobTask {
  /** The replica's directory (`<dataDir>/replicas/<queueId>`). */
  dir: string;
  /** Its segment file names, oldest first, once everything below `offset` was committed. */
  segmentFiles: string[];
  /** Its own snapshot file (ReplicaLog.snapshotFile), or null. */
  ownSnapshotFile: string | null;
  /** S: the snapshot holds the live messages as of this offset; every read is below it. */
  offset: number;
  /** The live messages at S in queue order (LiveColumns), transferred, not copied. */
  msgIds: Float64Array;
  offsets: Float64Array;
  delivered: Uint8Array;
  /** Where the records go (created or emptied). */
  outPath: string;
  chunkBytesMax: number;
}

export interface SnapshotJobResult {
  messages: number;
  records: number;
  bytes: number;
  /** Byte position in the file where each chunk ends; the last chunk may be empty. */
  chunkEnds: number[];
  /** CRC32C of each chunk's bytes (the Snapshot frame's checksum). */
  chunkChecksums: number[];
}

/** Why a task cannot be built, or undefined (the replicator made it; this catches a bug there early). */
export function snapshotTaskProblem(task: SnapshotJobTask): string | undefined {
  const count = task.msgIds.length;
  if (task.offsets.length !== count || task.delivered.length !== count) {
    return `columns of different lengths (msgIds ${count}, offsets ${task.offsets.length}, delivered ${task.delivered.length})`;
  }
  if (!Number.isSafeInteger(task.offset) || task.offset < 0) return `snapshot offset ${task.offset} is not an offset`;
  if (!Number.isSafeInteger(task.chunkBytesMax) || task.chunkBytesMax <= 0) return `chunkBytesMax ${task.chunkBytesMax} is not a positive integer`;
  let previous = -1;
  for (let i = 0; i < count; i++) {
    const offset = task.offsets[i] ?? -1;
    // The follower refuses enqueue offsets that do not ascend below S (snapshotRecordsProblem).
    if (!Number.isSafeInteger(offset) || offset <= previous || offset >= task.offset) {
      return `message ${i} has offset ${offset}; offsets must ascend from ${previous + 1} and stay below the snapshot offset ${task.offset}`;
    }
    previous = offset;
  }
  return undefined;
}

/** Gathers framed records into chunks and writes each one to the file as it closes. */
class ChunkWriter {
  readonly chunkEnds: number[] = [];
  readonly chunkChecksums: number[] = [];
  bytes = 0;
  records = 0;
  private parts: Buffer[] = [];
  private chunkBytes = 0;

  constructor(private readonly file: StoreFile) {}

  get pendingBytes(): number {
    return this.chunkBytes;
  }

  add(offset: number, kind: number, payload: Uint8Array): void {
    const framed = Buffer.allocUnsafe(recordBytesFor(payload.length));
    encodeRecord(framed, 0, offset, kind, payload);
    this.parts.push(framed);
    this.chunkBytes += framed.length;
    this.records += 1;
  }

  async closeChunk(): Promise<void> {
    const chunk = Buffer.concat(this.parts, this.chunkBytes);
    await writeFully(this.file, chunk, chunk.length, this.bytes);
    this.bytes += chunk.length;
    this.chunkEnds.push(this.bytes);
    this.chunkChecksums.push(crc32c(chunk) >>> 0);
    this.parts = [];
    this.chunkBytes = 0;
  }
}

export default async function buildSnapshot(task: SnapshotJobTask): Promise<SnapshotJobResult> {
  const problem = snapshotTaskProblem(task);
  if (problem !== undefined) throw new Error(`snapshot of ${task.dir} as of ${task.offset}: ${problem}`);
  const reader = await ReplicaFileReader.open(task.dir, task.segmentFiles, task.ownSnapshotFile ?? undefined, task.offset);
  let file: StoreFile | undefined;
  try {
    file = await nodeStoreFileSystem.open(task.outPath, 'w+');
    const out = new ChunkWriter(file);
    const count = task.msgIds.length;
    for (let i = 0; i < count; i++) {
      const msgId = task.msgIds[i] ?? 0;
      const offset = task.offsets[i] ?? 0;
      const payload = await reader.enqueuePayload(offset);
      const stored = payload.length >= ENQUEUE_MSG_ID_OFFSET + 8 ? payload.readDoubleLE(ENQUEUE_MSG_ID_OFFSET) : undefined;
      if (stored !== msgId) throw new Error(`the enqueue record at ${offset} of ${task.dir} holds message ${String(stored)}, the live index says ${msgId}`);
      out.add(offset, LogKind.enqueue, payload);
      if (task.delivered[i] === 1) out.add(offset, LogKind.delivered, encodeIdList(payload.readUInt32LE(PAYLOAD_QUEUE_ID_OFFSET), [msgId]));
      if (out.pendingBytes >= task.chunkBytesMax) await out.closeChunk();
    }
    await out.closeChunk();
    return { messages: count, records: out.records, bytes: out.bytes, chunkEnds: out.chunkEnds, chunkChecksums: out.chunkChecksums };
  } finally {
    await file?.close();
    await reader.close();
  }
}
