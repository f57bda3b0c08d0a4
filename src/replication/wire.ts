/**
 * The replication link's wire format: after the cluster-secret handshake
 * (cluster/secret-handshake.ts) both directions carry frames
 *
 *   0                4        5
 *   +----------------+--------+--------------------------------------+
 *   | bodyBytes u32  | type   | protobuf message (proto/replication)  |
 *   | LE, = 1 + msg  | u8     | bodyBytes - 1 bytes                   |
 *   +----------------+--------+--------------------------------------+
 *
 * Follower → leader: Fetch, Ack. Leader → follower: FetchReply, Batch, Snapshot.
 * Decoders never assert on what a peer sent: a frame over frameBytesMax, an unknown type, a
 * truncated or garbage message, or a field out of range throws a WireError naming value and
 * limit; the link owner logs it and closes the link. Encoders assert on what they are given.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

export const FRAME_BODY_BYTES_OFFSET = 0;
export const FRAME_TYPE_OFFSET = 4;
export const FRAME_MESSAGE_OFFSET = 5;
export const FRAME_HEADER_BYTES = FRAME_MESSAGE_OFFSET;

export const FrameType = { fetch: 1, fetchReply: 2, batch: 3, ack: 4, snapshot: 5 } as const;
export type FrameTypeValue = (typeof FrameType)[keyof typeof FrameType];

/**
 * Largest frame body accepted by default: RabbitMQ's largest message (128 MiB by default) plus
 * room for the record header and the envelope. A batch carries at least one whole record, so
 * the limit must hold the largest record; anything larger is a broken or hostile peer.
 */
export const frameBytesMaxDefault = 128 * 1024 * 1024 + 64 * 1024;

export interface EpochStartMsg {
  epoch: number;
  startOffset: number;
}

export interface FetchMsg {
  queueId: number;
  queue: string;
  logEndOffset: number;
  epochs: EpochStartMsg[];
  epoch: number;
}

export interface FetchReplyMsg {
  queueId: number;
  queue: string;
  epoch: number;
  truncateTo: number;
  logStart: number;
}

export interface BatchMsg {
  queueId: number;
  queue: string;
  epoch: number;
  baseOffset: number;
  recordCount: number;
  commitOffset: number;
  checksum: number;
  records: Buffer;
}

export interface AckMsg {
  queueId: number;
  queue: string;
  epoch: number;
  ackedOffset: number;
  follower: string;
}

export interface SnapshotMsg {
  queueId: number;
  queue: string;
  epoch: number;
  offset: number;
  records: Buffer;
  checksum: number;
  last: boolean;
  epochs: EpochStartMsg[];
  chunkIndex: number;
}

export type Frame =
  | { type: typeof FrameType.fetch; msg: FetchMsg }
  | { type: typeof FrameType.fetchReply; msg: FetchReplyMsg }
  | { type: typeof FrameType.batch; msg: BatchMsg }
  | { type: typeof FrameType.ack; msg: AckMsg }
  | { type: typeof FrameType.snapshot; msg: SnapshotMsg };

/** Bytes from a peer that break the protocol. The link that carried them is closed. */
export class WireError extends Error {
  override name = 'WireError';
}

export class FrameTooLargeError extends WireError {
  override name = 'FrameTooLargeError';
  constructor(
    readonly frameBytes: number,
    readonly frameBytesMax: number,
  ) {
    super(`frame of ${frameBytes} bytes > max ${frameBytesMax}`);
  }
}

// The schema is loaded once per thread from the .proto file (dist/src/replication → repo root),
// so proto/ stays the one definition and no generated file can drift from it.
const protoPath = fileURLToPath(new URL('../../../proto/replication.proto', import.meta.url));
const root = protobuf.loadSync(protoPath);
const types: Record<FrameTypeValue, protobuf.Type> = {
  [FrameType.fetch]: root.lookupType('warren.replication.Fetch'),
  [FrameType.fetchReply]: root.lookupType('warren.replication.FetchReply'),
  [FrameType.batch]: root.lookupType('warren.replication.Batch'),
  [FrameType.ack]: root.lookupType('warren.replication.Ack'),
  [FrameType.snapshot]: root.lookupType('warren.replication.Snapshot'),
};
const typeNames: Record<number, string> = { 1: 'Fetch', 2: 'FetchReply', 3: 'Batch', 4: 'Ack', 5: 'Snapshot' };

export function frameTypeName(type: number): string {
  return typeNames[type] ?? `type ${type}`;
}

/** Header and message of one frame: written with two socket writes under cork, no copy of the body. */
export function encodeFrame(frame: Frame): [Buffer, Buffer] {
  const message = types[frame.type].encode(types[frame.type].fromObject(frame.msg)).finish();
  const body = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  header.writeUInt32LE(1 + body.length, FRAME_BODY_BYTES_OFFSET);
  header[FRAME_TYPE_OFFSET] = frame.type;
  return [header, body];
}

/** One frame as a single buffer (tests, and writers that want one write). */
export function encodeFrameBytes(frame: Frame): Buffer {
  return Buffer.concat(encodeFrame(frame));
}

// ---- decoding: every field checked, nothing asserted ----

interface LongLike {
  toNumber(): number;
}

function isLongLike(v: unknown): v is LongLike {
  return typeof v === 'object' && v !== null && 'toNumber' in v && typeof (v as { toNumber: unknown }).toNumber === 'function';
}

/** A 64-bit field as a safe integer >= min, or a WireError (values past 2^53 cannot be offsets). */
function int64Field(v: unknown, field: string, min: number): number {
  const n = typeof v === 'number' ? v : isLongLike(v) ? v.toNumber() : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min) throw new WireError(`field ${field} = ${String(n)} is not a safe integer >= ${min}`);
  return n;
}

function u32Field(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffff_ffff) throw new WireError(`field ${field} = ${String(v)} is not a u32`);
  return v;
}

function stringField(v: unknown, field: string): string {
  if (typeof v !== 'string') throw new WireError(`field ${field} is not a string`);
  return v;
}

function bytesField(v: unknown, field: string): Buffer {
  // An unset bytes field reads as protobufjs's shared empty array.
  if (Array.isArray(v) && v.length === 0) return Buffer.alloc(0);
  if (!(v instanceof Uint8Array)) throw new WireError(`field ${field} is not bytes`);
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

function epochsField(v: unknown, field: string): EpochStartMsg[] {
  if (!Array.isArray(v)) throw new WireError(`field ${field} is not a list`);
  const out: EpochStartMsg[] = [];
  for (const e of v as unknown[]) {
    const o = e as { epoch?: unknown; startOffset?: unknown };
    out.push({ epoch: int64Field(o.epoch, `${field}.epoch`, 0), startOffset: int64Field(o.startOffset, `${field}.start_offset`, 0) });
  }
  return out;
}

type Fields = Record<string, unknown>;

const decoders: Record<FrameTypeValue, (m: Fields) => Frame> = {
  [FrameType.fetch]: (m) => ({
    type: FrameType.fetch,
    msg: {
      queueId: u32Field(m['queueId'], 'queue_id'),
      queue: stringField(m['queue'], 'queue'),
      logEndOffset: int64Field(m['logEndOffset'], 'log_end_offset', 0),
      epochs: epochsField(m['epochs'], 'epochs'),
      epoch: int64Field(m['epoch'], 'epoch', 0),
    },
  }),
  [FrameType.fetchReply]: (m) => ({
    type: FrameType.fetchReply,
    msg: {
      queueId: u32Field(m['queueId'], 'queue_id'),
      queue: stringField(m['queue'], 'queue'),
      epoch: int64Field(m['epoch'], 'epoch', 0),
      truncateTo: int64Field(m['truncateTo'], 'truncate_to', 0),
      logStart: int64Field(m['logStart'], 'log_start', 0),
    },
  }),
  [FrameType.batch]: (m) => ({
    type: FrameType.batch,
    msg: {
      queueId: u32Field(m['queueId'], 'queue_id'),
      queue: stringField(m['queue'], 'queue'),
      epoch: int64Field(m['epoch'], 'epoch', 0),
      baseOffset: int64Field(m['baseOffset'], 'base_offset', 0),
      recordCount: u32Field(m['recordCount'], 'record_count'),
      commitOffset: int64Field(m['commitOffset'], 'commit_offset', -1),
      checksum: u32Field(m['checksum'], 'checksum'),
      records: bytesField(m['records'], 'records'),
    },
  }),
  [FrameType.ack]: (m) => ({
    type: FrameType.ack,
    msg: {
      queueId: u32Field(m['queueId'], 'queue_id'),
      queue: stringField(m['queue'], 'queue'),
      epoch: int64Field(m['epoch'], 'epoch', 0),
      ackedOffset: int64Field(m['ackedOffset'], 'acked_offset', -1),
      follower: stringField(m['follower'], 'follower'),
    },
  }),
  [FrameType.snapshot]: (m) => ({
    type: FrameType.snapshot,
    msg: {
      queueId: u32Field(m['queueId'], 'queue_id'),
      queue: stringField(m['queue'], 'queue'),
      epoch: int64Field(m['epoch'], 'epoch', 0),
      offset: int64Field(m['offset'], 'offset', 0),
      records: bytesField(m['records'], 'records'),
      checksum: u32Field(m['checksum'], 'checksum'),
      last: m['last'] === true,
      epochs: epochsField(m['epochs'], 'epochs'),
      chunkIndex: u32Field(m['chunkIndex'], 'chunk_index'),
    },
  }),
};

function isFrameType(type: number): type is FrameTypeValue {
  return type >= FrameType.fetch && type <= FrameType.snapshot;
}

/** Decodes one frame body (type byte + message). Throws WireError for anything a peer got wrong. */
export function decodeFrameBody(type: number, message: Buffer): Frame {
  if (!isFrameType(type)) throw new WireError(`unknown frame type ${type}`);
  let decoded: protobuf.Message;
  try {
    decoded = types[type].decode(message);
  } catch (error: unknown) {
    throw new WireError(`${frameTypeName(type)} of ${message.length} bytes does not decode: ${error instanceof Error ? error.message : String(error)}`);
  }
  // Unset proto3 fields read as their defaults through the prototype, so every field is present here.
  return decoders[type](decoded as unknown as Fields);
}

/**
 * Splits the byte stream of one link into frames. push() hands complete frames to onFrame in
 * order and keeps a partial one; the first protocol error throws and the reader stays failed.
 */
export class FrameReader {
  private buffered: Buffer = Buffer.alloc(0);
  private failed: WireError | undefined;

  constructor(
    private readonly frameBytesMax: number,
    private readonly onFrame: (frame: Frame) => void,
  ) {
    assert.ok(Number.isInteger(frameBytesMax) && frameBytesMax > 0, `frameBytesMax ${frameBytesMax}`);
  }

  /** Bytes held for a frame that has not arrived whole yet. */
  get bufferedBytes(): number {
    return this.buffered.length;
  }

  push(chunk: Buffer): void {
    if (this.failed !== undefined) throw this.failed;
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    let position = 0;
    try {
      for (;;) {
        const available = this.buffered.length - position;
        if (available < FRAME_TYPE_OFFSET) break;
        const bodyBytes = this.buffered.readUInt32LE(position + FRAME_BODY_BYTES_OFFSET);
        if (bodyBytes > this.frameBytesMax) throw new FrameTooLargeError(bodyBytes, this.frameBytesMax);
        if (bodyBytes < 1) throw new WireError('frame with an empty body (no type byte)');
        if (available < FRAME_TYPE_OFFSET + bodyBytes) break;
        const type = this.buffered[position + FRAME_TYPE_OFFSET] ?? 0;
        const message = this.buffered.subarray(position + FRAME_MESSAGE_OFFSET, position + FRAME_TYPE_OFFSET + bodyBytes);
        position += FRAME_TYPE_OFFSET + bodyBytes;
        this.onFrame(decodeFrameBody(type, message));
      }
    } catch (error: unknown) {
      if (error instanceof WireError) this.failed = error;
      throw error;
    }
    // Keep only the unread tail; a copy so a small remainder does not pin a large chunk.
    this.buffered = position === this.buffered.length ? Buffer.alloc(0) : Buffer.from(this.buffered.subarray(position));
  }
}
