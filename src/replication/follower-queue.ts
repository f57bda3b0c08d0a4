/**
 * A queue this node follows (follower side of one queue's stream). On every link up it sends a
 * Fetch from its own log end with its epoch history; the leader's FetchReply says where to cut
 * (the leader-epoch rule), then Batches are appended verbatim, group-committed, and acked with
 * the fsynced offset. A Snapshot replaces the log when the leader no longer has its log end.
 *
 * Poll fence: once this replica answered a replica poll at placement epoch e (cluster/
 * replica-poll.ts), it takes nothing more from a leader of epoch e or older — no batch, no
 * fetch answer, no snapshot, and no ack, not even for what it already holds (its answer counted
 * that) — until a placement of a newer epoch arrives (raiseEpoch) or the fence's time is up. A
 * leader that still streams epoch e therefore cannot commit past what the answer reported.
 *
 * Refusals (logged; the log is left as it was): a FetchReply or Batch from an epoch older than
 * the highest this node knows (fencing of deposed leaders), a checksum mismatch, records that
 * do not continue the log, a malformed snapshot. After a refusal the stream is restarted with a
 * new Fetch after a backoff; frames of the old stream that are still in flight are ignored.
 *
 * Frames of one queue are handled strictly in order through one promise chain, so a truncation
 * or snapshot installation finishes before the next batch touches the log.
 */
import { crc32c } from '@node-rs/crc32';
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { RECORD_BODY_BYTES_OFFSET, RECORD_CHECKED_OFFSET } from '../store/record-layout.js';
import { RecordBatchError } from '../store/store-errors.js';
import { epochListProblem } from './epoch-history.js';
import { describe } from './leader-queue.js';
import { SNAPSHOT_INCOMING_FILE } from './replica-log.js';
import type { ReplicaLog } from './replica-log.js';
import { lastEnqueueOffset, snapshotRecordsProblem } from './snapshot-file.js';
import { FrameType } from './wire.js';
import type { BatchMsg, FetchReplyMsg, Frame, SnapshotMsg } from './wire.js';
import type { FramedLink } from './framed-link.js';
import type { ReplicaMember, ReplicatorLogger } from './types.js';

/** First retry after a refusal; doubles up to the max, so a persistent fault does not spin. */
const refetchBackoffMsMin = 50;
const refetchBackoffMsMax = 2_000;
/** Settled segments are looked for at most this often (an fsync'ed directory change each time). */
const releaseIntervalMs = 1_000;

export interface FollowerContext {
  nodeName: string;
  log: ReplicatorLogger;
  /** Commit this replica in the next group commit (one per received burst). */
  scheduleCommit: (replica: ReplicaLog) => void;
}

export type FollowerState = 'idle' | 'fetching' | 'streaming' | 'snapshot' | 'refused' | 'fenced';

/** Set by a replica poll's answer: leaders of epochs <= epoch are refused until untilMs (Date.now() clock). */
export interface PollFence {
  epoch: number;
  untilMs: number;
}

interface SnapshotReceive {
  offset: number;
  epoch: number;
  nextChunk: number;
  lastEnqueue: number;
  file: FileHandle;
  bytes: number;
}

/** Number of whole records in a framed buffer, or -1 if the length words do not tile it exactly. */
function countFramedRecords(buf: Buffer): number {
  let count = 0;
  let position = 0;
  while (position < buf.length) {
    if (buf.length - position < RECORD_CHECKED_OFFSET) return -1;
    position += RECORD_CHECKED_OFFSET + buf.readUInt32LE(position + RECORD_BODY_BYTES_OFFSET);
    count += 1;
  }
  return position === buf.length ? count : -1;
}

export class FollowerQueue {
  state: FollowerState = 'idle';
  /** The highest epoch this node knows for the queue (placement or its log); older leaders are refused. */
  knownEpoch: number;
  /** The epoch of the stream being applied (acks carry it). */
  private streamEpoch = -1;
  /** The leader's commit watermark as the last batch carried it. */
  leaderCommitOffset = -1;
  refusals = 0;
  private link: FramedLink | undefined;
  private chain: Promise<void> = Promise.resolve();
  private refetchTimer: NodeJS.Timeout | undefined;
  private backoffMs = refetchBackoffMsMin;
  private receiving: SnapshotReceive | undefined;
  private stopped = false;
  private lastReleaseMs = 0;
  private pollFence: PollFence | undefined;

  constructor(
    readonly queueId: number,
    readonly name: string,
    readonly replica: ReplicaLog,
    public leader: ReplicaMember,
    epoch: number,
    private readonly ctx: FollowerContext,
  ) {
    this.knownEpoch = Math.max(epoch, replica.latestEpoch);
    replica.onFlushed = (flushed) => this.sendAck(flushed);
  }

  get streaming(): boolean {
    return this.state === 'streaming';
  }

  /** A newer placement (epoch) is known: older leaders are refused from now on; a poll fence below it lifts. */
  raiseEpoch(epoch: number): void {
    this.knownEpoch = Math.max(this.knownEpoch, epoch);
    if (this.pollFence !== undefined && epoch > this.pollFence.epoch) this.liftPollFence(`placement epoch ${epoch} is known`);
  }

  /**
   * This replica answers a replica poll at placement epoch fence.epoch: from now on it takes
   * and acks nothing from a leader of that epoch or older, until a newer placement or
   * fence.untilMs. Takes effect at once (the caller reads the log end after this).
   */
  fenceForPoll(fence: PollFence): void {
    // knownEpoch already refuses every epoch below it.
    if (fence.epoch < this.knownEpoch || Date.now() >= fence.untilMs) return;
    const current = this.pollFence;
    this.pollFence = current === undefined ? { ...fence } : { epoch: Math.max(current.epoch, fence.epoch), untilMs: Math.max(current.untilMs, fence.untilMs) };
    if (this.state === 'fenced') this.armPollFenceTimer();
    else if (this.state !== 'idle' && this.streamEpoch <= fence.epoch) this.holdForPoll(`the rest of its stream of epoch ${this.streamEpoch}`);
  }

  /** True while the poll fence refuses a leader of `epoch`; a fence whose time is up lifts here. */
  private fencedAgainst(epoch: number): boolean {
    const f = this.pollFence;
    if (f === undefined) return false;
    if (Date.now() >= f.untilMs) {
      this.liftPollFence('its time ran out');
      return false;
    }
    return epoch <= f.epoch;
  }

  /** Takes nothing more from this stream; fetches again once the fence lifts. */
  private holdForPoll(what: string): void {
    const f = this.pollFence;
    if (f === undefined) return;
    this.state = 'fenced';
    this.dropSnapshot();
    this.ctx.log(
      'info',
      `queue ${this.name}: answered a replica poll at epoch ${f.epoch}: refusing ${what} from leader ${this.leader.node} until a newer placement (at most ${Math.max(0, f.untilMs - Date.now())} ms); the log stays at ${this.replica.nextOffset}`,
    );
    this.armPollFenceTimer();
  }

  private armPollFenceTimer(): void {
    clearTimeout(this.refetchTimer);
    const f = this.pollFence;
    if (f === undefined) return;
    this.refetchTimer = setTimeout(() => {
      this.refetchTimer = undefined;
      if (this.state !== 'fenced') return;
      // Extended by a later poll: wait on; else lift, which fetches again.
      if (this.pollFence !== undefined && Date.now() < this.pollFence.untilMs) this.armPollFenceTimer();
      else this.liftPollFence('its time ran out');
    }, Math.max(0, f.untilMs - Date.now()));
  }

  /** State 'fenced' is only ever entered with a fence set, and left here (or by linkDown). */
  private liftPollFence(why: string): void {
    const f = this.pollFence;
    if (f === undefined) return;
    this.pollFence = undefined;
    // Said only where the fence held a stream back (holdForPoll said so): after a crash the link is down anyway.
    if (this.state !== 'fenced') return;
    this.ctx.log('info', `queue ${this.name}: the poll fence at epoch ${f.epoch} lifts (${why}); fetching again`);
    clearTimeout(this.refetchTimer);
    this.refetchTimer = undefined;
    this.sendFetch();
  }

  linkUp(link: FramedLink): void {
    this.link = link;
    this.sendFetch();
  }

  linkDown(): void {
    this.link = undefined;
    this.state = 'idle';
    clearTimeout(this.refetchTimer);
    this.refetchTimer = undefined;
    this.dropSnapshot();
  }

  stop(): void {
    this.stopped = true;
    this.linkDown();
    if (this.replica.onFlushed !== undefined) this.replica.onFlushed = undefined;
  }

  /** Waits until every frame handed over so far is applied. */
  settled(): Promise<void> {
    return this.chain;
  }

  onFrame(frame: Frame): void {
    this.chain = this.chain
      .then(() => this.handle(frame))
      .catch((error: unknown) => this.refuse(`${describe(error)}`));
  }

  private async handle(frame: Frame): Promise<void> {
    if (this.stopped) return;
    switch (frame.type) {
      case FrameType.fetchReply:
        return this.onFetchReply(frame.msg);
      case FrameType.batch:
        return this.onBatch(frame.msg);
      case FrameType.snapshot:
        return this.onSnapshot(frame.msg);
      default:
        return;
    }
  }

  private sendFetch(): void {
    const link = this.link;
    if (link === undefined || this.stopped) return;
    this.state = 'fetching';
    link.send({
      type: FrameType.fetch,
      msg: {
        queueId: this.queueId,
        queue: this.name,
        logEndOffset: this.replica.nextOffset,
        epochs: this.replica.epochs.entries.map((e) => ({ epoch: e.epoch, startOffset: e.startOffset })),
        epoch: this.knownEpoch,
      },
    });
  }

  private async onFetchReply(msg: FetchReplyMsg): Promise<void> {
    if (this.state !== 'fetching') return;
    if (msg.epoch < this.knownEpoch) return this.refuse(`FetchReply from stale epoch ${msg.epoch} < known ${this.knownEpoch}`);
    if (this.fencedAgainst(msg.epoch)) return this.holdForPoll(`a stream of epoch ${msg.epoch}`);
    const replica = this.replica;
    if (msg.truncateTo > replica.nextOffset) return this.refuse(`FetchReply says truncate to ${msg.truncateTo}, past this log's end ${replica.nextOffset}`);
    if (msg.truncateTo < replica.nextOffset) {
      if (msg.truncateTo < replica.logStart) {
        // Only committed records are ever released, and those never diverge: a leader asking for this is wrong.
        return this.refuse(`FetchReply says truncate to ${msg.truncateTo}, below this log's start ${replica.logStart}`);
      }
      this.ctx.log('info', `queue ${this.name}: truncating to ${msg.truncateTo} (log ended at ${replica.nextOffset}) by the leader-epoch rule of epoch ${msg.epoch}`);
      await replica.truncateTo(msg.truncateTo);
    }
    this.knownEpoch = msg.epoch;
    this.streamEpoch = msg.epoch;
    this.backoffMs = refetchBackoffMsMin;
    this.state = msg.logStart > msg.truncateTo ? 'snapshot' : 'streaming';
    if (this.state === 'streaming') this.sendAck(replica.flushedOffset);
  }

  private async onBatch(msg: BatchMsg): Promise<void> {
    if (this.state !== 'streaming') return;
    if (msg.epoch < this.knownEpoch) return this.refuse(`Batch from stale epoch ${msg.epoch} < known ${this.knownEpoch} (base offset ${msg.baseOffset})`);
    if (this.fencedAgainst(msg.epoch)) return this.holdForPoll(`a batch of epoch ${msg.epoch} at ${msg.baseOffset}`);
    const actualChecksum = crc32c(msg.records) >>> 0;
    if (actualChecksum !== msg.checksum) return this.refuse(`Batch at ${msg.baseOffset}: checksum ${hex(msg.checksum)} but the records hash to ${hex(actualChecksum)}`);
    if (msg.baseOffset !== this.replica.nextOffset) return this.refuse(`Batch starts at ${msg.baseOffset}, this log continues at ${this.replica.nextOffset}`);
    const count = countFramedRecords(msg.records);
    if (count !== msg.recordCount || count === 0) return this.refuse(`Batch at ${msg.baseOffset} claims ${msg.recordCount} records, holds ${count === -1 ? 'a partial record' : count}`);
    try {
      this.replica.appendRecords(msg.records);
    } catch (error: unknown) {
      if (error instanceof RecordBatchError) return this.refuse(`Batch at ${msg.baseOffset}: ${error.message}`);
      throw error;
    }
    if (msg.epoch > this.streamEpoch) {
      this.streamEpoch = msg.epoch;
      this.knownEpoch = Math.max(this.knownEpoch, msg.epoch);
    }
    this.leaderCommitOffset = Math.max(this.leaderCommitOffset, Math.min(msg.commitOffset, this.replica.nextOffset - 1));
    this.ctx.scheduleCommit(this.replica);
    // Awaited in the chain: a truncation or snapshot that follows must not race a reclamation.
    await this.maybeRelease();
  }

  /** A follower reclaims like its leader: settled segments below the leader's commit watermark. */
  private async maybeRelease(): Promise<void> {
    const nowMs = Date.now();
    if (nowMs - this.lastReleaseMs < releaseIntervalMs || this.replica.segmentFiles.length < 2) return;
    this.lastReleaseMs = nowMs;
    await this.replica.releaseSettled(this.leaderCommitOffset, this.replica.nextOffset).catch((error: unknown) => this.ctx.log('warn', `queue ${this.name}: releasing settled segments failed: ${describe(error)}`));
  }

  private async onSnapshot(msg: SnapshotMsg): Promise<void> {
    if (this.state !== 'snapshot') return;
    if (msg.epoch < this.knownEpoch) return this.refuse(`Snapshot from stale epoch ${msg.epoch} < known ${this.knownEpoch}`);
    if (this.fencedAgainst(msg.epoch)) return this.holdForPoll(`a snapshot of epoch ${msg.epoch}`);
    const actualChecksum = crc32c(msg.records) >>> 0;
    if (actualChecksum !== msg.checksum) return this.refuse(`Snapshot chunk ${msg.chunkIndex}: checksum ${hex(msg.checksum)} but the records hash to ${hex(actualChecksum)}`);
    let rx = this.receiving;
    if (rx === undefined) {
      if (msg.chunkIndex !== 0) return this.refuse(`Snapshot begins with chunk ${msg.chunkIndex}`);
      const file = await open(join(this.replica.dir, SNAPSHOT_INCOMING_FILE), 'w');
      rx = { offset: msg.offset, epoch: msg.epoch, nextChunk: 0, lastEnqueue: -1, file, bytes: 0 };
      this.receiving = rx;
    }
    if (msg.chunkIndex !== rx.nextChunk || msg.offset !== rx.offset) {
      return this.refuse(`Snapshot chunk ${msg.chunkIndex} at ${msg.offset}, expected chunk ${rx.nextChunk} at ${rx.offset}`);
    }
    const problem = snapshotRecordsProblem(msg.records, rx.offset, rx.lastEnqueue);
    if (problem !== undefined) return this.refuse(`Snapshot chunk ${msg.chunkIndex}: ${problem}`);
    rx.lastEnqueue = lastEnqueueOffset(msg.records, rx.lastEnqueue);
    await rx.file.write(msg.records, 0, msg.records.length, rx.bytes);
    rx.bytes += msg.records.length;
    rx.nextChunk += 1;
    if (!msg.last) return;
    const epochProblem = epochListProblem(msg.epochs);
    if (epochProblem !== undefined) return this.refuse(`Snapshot epochs: ${epochProblem}`);
    await rx.file.sync();
    await rx.file.close();
    this.receiving = undefined;
    await this.replica.installSnapshot(rx.offset, msg.epochs, join(this.replica.dir, SNAPSHOT_INCOMING_FILE));
    this.replica.onFlushed = (flushed) => this.sendAck(flushed);
    this.ctx.log('info', `queue ${this.name}: installed a snapshot of ${this.replica.liveCount} live message(s) as of offset ${rx.offset} (${rx.bytes} bytes); streaming from there`);
    this.state = 'streaming';
    this.sendAck(this.replica.flushedOffset);
  }

  private sendAck(flushedOffset: number): void {
    const link = this.link;
    if (link === undefined || this.state !== 'streaming' || this.stopped || this.fencedAgainst(this.streamEpoch)) return;
    link.send({ type: FrameType.ack, msg: { queueId: this.queueId, queue: this.name, epoch: this.streamEpoch, ackedOffset: flushedOffset, follower: this.ctx.nodeName } });
  }

  private refuse(reason: string): void {
    this.refusals += 1;
    this.ctx.log('warn', `queue ${this.name}: refused from leader ${this.leader.node}: ${reason}; the log stays at ${this.replica.nextOffset}, fetching again in ${this.backoffMs} ms`);
    this.state = 'refused';
    this.dropSnapshot();
    clearTimeout(this.refetchTimer);
    const link = this.link;
    this.refetchTimer = setTimeout(() => {
      this.refetchTimer = undefined;
      if (this.link === link && this.state === 'refused') this.sendFetch();
    }, this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, refetchBackoffMsMax);
  }

  private dropSnapshot(): void {
    const rx = this.receiving;
    if (rx === undefined) return;
    this.receiving = undefined;
    void rx.file.close().catch(() => undefined);
  }
}

function hex(value: number): string {
  return '0x' + value.toString(16).padStart(8, '0');
}
