/**
 * A queue this node leads: takes the shard's records (append), group-commits them to the
 * replica log, streams them to followers that fetched, counts their acks and moves the commit
 * watermark by the queue's rule, and proposes ISR changes. A fenced leader (deposed, stopped,
 * or told of a newer epoch) stops streaming and never moves the watermark again.
 *
 * Watermarks: replica.flushedOffset (own durable offset), per-follower ackedOffset, and
 * commitOffset, which moves only through maybeAdvanceCommit and never goes back. Raft's rule
 * applies: the watermark only counts once it reaches this epoch's epochStart record, so records
 * of earlier epochs are committed by the new leader's first commit, never on their own.
 */
import type { Histogram } from 'hdr-histogram-js';
import { recordUs } from '../metrics/latency.js';
import assert from 'node:assert/strict';
import { crc32c } from '@node-rs/crc32';
import { FrameType } from './wire.js';
import type { FetchMsg } from './wire.js';
import type { FramedLink } from './framed-link.js';
import type { ReplicaLog } from './replica-log.js';
import type { RecordRange } from './tail-cache.js';
import { commitCandidate } from './watermark.js';
import type { CommitRule } from './watermark.js';
import { EpochHistory } from './epoch-history.js';
import type { FollowerStatus, LeadRequest, PlacementUpdate, ReplicatorLogger, ShardSink } from './types.js';

/** Settled segments are looked for at most this often: reclamation is an fsync'ed directory change. */
const releaseIntervalMs = 1_000;
/** The same ISR proposal is not repeated sooner: the controller's compare-and-set is in flight. */
const isrProposalRetryMs = 1_000;

export interface LeaderQueueContext {
  nodeName: string;
  sink: ShardSink;
  log: ReplicatorLogger;
  batchBytesMax: number;
  isrLagMs: number;
  isrCatchUpRecords: number;
  onIsrChange: ((queueId: number, isr: string[]) => void) | undefined;
  /** A follower stream needs offsets the log released: build and send a snapshot, then stream on. */
  startSnapshot: (leader: LeaderQueue, stream: FollowerStream) => void;
  /** Batch sent → the follower's ack covering its last record. */
  replicationRtt?: Histogram;
}

/** Batches whose ack is awaited, per stream, for replication_rtt: a bounded FIFO, oldest dropped past this. */
const rttPendingMax = 1024;

/** One follower's stream of one queue over one link (leader side). */
export class FollowerStream {
  /** The next offset to send. */
  nextSend: number;
  reading = false;
  /** A snapshot is being built or sent; batches wait for it. */
  snapshotting = false;
  active = true;
  /** Batches sent and not yet acked: [last offset, sent at (performance.now() ms)] pairs, in order. */
  readonly unackedBatches: number[] = [];

  constructor(
    readonly link: FramedLink,
    readonly node: string,
    from: number,
  ) {
    this.nextSend = from;
  }
}

interface Progress {
  node: string;
  /** Highest offset the follower reported durable in this epoch (-1 = none). */
  ackedOffset: number;
  /** Last time the follower had everything the leader had then. */
  lastCaughtUpMs: number;
  /** The leader's last offset when the previous ack came: reaching it later means caught up as of then. */
  probe: { offset: number; atMs: number } | undefined;
  stream: FollowerStream | undefined;
}

export class LeaderQueue {
  role: 'leader' | 'fenced' = 'leader';
  commitOffset = -1;
  epoch: number;
  readonly epochStartOffset: number;
  private rule: CommitRule;
  private readonly progress = new Map<string, Progress>();
  private flushScheduled = false;
  /** Set once the shard has every import (sink.leadReady): commits reach the shard only after. */
  private ready = false;
  private lastReleaseMs = 0;
  private releaseTimer: NodeJS.Timeout | undefined;
  private lastProposal: { isr: string; atMs: number } | undefined;
  /** Followers proposed into the ISR and not yet granted by a placement. */
  private readonly joining = new Set<string>();

  constructor(
    readonly queueId: number,
    readonly name: string,
    readonly replica: ReplicaLog,
    request: LeadRequest,
    epochStartOffset: number,
    private readonly ctx: LeaderQueueContext,
  ) {
    this.epoch = request.epoch;
    this.epochStartOffset = epochStartOffset;
    this.rule = this.ruleFor(request.type, request.members.map((m) => m.node), request.isr, request.minInsync);
    this.syncProgress();
    replica.onFlushed = () => this.maybeAdvanceCommit();
    this.scheduleFlush();
  }

  /** The shard has all imports; from now on commits are reported to it. */
  markReady(): void {
    this.ready = true;
    if (this.role === 'leader' && this.commitOffset >= 0) this.ctx.sink.commit(this.queueId, this.commitOffset);
  }

  /** A record from the shard: the next offset (the shard counts the same way). */
  append(kind: number, payload: Uint8Array): number {
    if (this.role !== 'leader') {
      this.ctx.log('warn', `queue ${this.name}: record of kind ${kind} from the shard after this node stopped leading; dropped`);
      return -1;
    }
    const offset = this.replica.append(kind, payload);
    this.scheduleFlush();
    return offset;
  }

  scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // One group commit and one batch per follower for everything appended in this turn.
    setImmediate(() => {
      this.flushScheduled = false;
      if (this.role !== 'leader') return;
      for (const p of this.progress.values()) if (p.stream !== undefined) this.pump(p.stream);
      this.replica.commit().then(
        () => this.maybeRelease(),
        (error: unknown) => this.ctx.log('error', `queue ${this.name}: commit failed: ${describe(error)}`),
      );
    });
  }

  /**
   * A follower's Fetch: answer with the leader-epoch rule's cut point and stream from there.
   * False when node is not a member of this leader's placement (yet: a member just added may
   * fetch before the leader applies the change); the caller keeps the fetch for updatePlacement.
   */
  attach(link: FramedLink, node: string, fetch: FetchMsg): boolean {
    const p = this.progress.get(node);
    if (p === undefined) {
      this.ctx.log('info', `queue ${this.name}: fetch from ${node}, which is not a member (${[...this.progress.keys()].join(', ')}); held until a placement names it`);
      return false;
    }
    this.detach(p);
    const replica = this.replica;
    const truncateTo = replica.epochs.divergence(replica.nextOffset, new EpochHistory(fetch.epochs), fetch.logEndOffset);
    p.ackedOffset = Math.min(p.ackedOffset, truncateTo - 1);
    link.send({
      type: FrameType.fetchReply,
      msg: { queueId: this.queueId, queue: this.name, epoch: this.epoch, truncateTo, logStart: replica.logStart },
    });
    if (truncateTo < fetch.logEndOffset) this.ctx.log('info', `queue ${this.name}: follower ${node} diverges at ${truncateTo} (its log ends at ${fetch.logEndOffset}); it truncates`);
    const stream = new FollowerStream(link, node, truncateTo);
    p.stream = stream;
    if (this.role === 'leader') this.pump(stream);
    return true;
  }

  /** The link of a stream closed. True when a member's stream ran on it. */
  detachLink(link: FramedLink): boolean {
    let streamed = false;
    for (const p of this.progress.values()) {
      if (p.stream?.link !== link) continue;
      this.detach(p);
      streamed = true;
    }
    return streamed;
  }

  onAck(node: string, epoch: number, ackedOffset: number): void {
    if (this.role !== 'leader') return;
    const p = this.progress.get(node);
    if (p === undefined || epoch !== this.epoch) return;
    const last = this.replica.nextOffset - 1;
    const acked = Math.min(ackedOffset, last);
    if (acked > p.ackedOffset) p.ackedOffset = acked;
    const rtt = this.ctx.replicationRtt;
    const q = p.stream?.unackedBatches;
    if (rtt !== undefined && q !== undefined && q.length > 0) {
      const nowMs = performance.now();
      let i = 0;
      for (; i < q.length && (q[i] as number) <= acked; i += 2) recordUs(rtt, (nowMs - (q[i + 1] as number)) * 1000);
      if (i > 0) q.splice(0, i);
    }
    const nowMs = Date.now();
    if (p.ackedOffset >= last) p.lastCaughtUpMs = nowMs;
    else if (p.probe !== undefined && p.ackedOffset >= p.probe.offset) p.lastCaughtUpMs = Math.max(p.lastCaughtUpMs, p.probe.atMs);
    p.probe = { offset: last, atMs: nowMs };
    if (this.mayJoinIsr(p, last)) this.proposeIsrGrowth(p, last);
    this.maybeAdvanceCommit();
  }

  /** A stream is ready for more (its link drained, or a read or snapshot finished). */
  pump(stream: FollowerStream): void {
    while (stream.active && !stream.reading && !stream.snapshotting && this.role === 'leader' && !stream.link.congested) {
      const replica = this.replica;
      if (stream.nextSend >= replica.nextOffset) return;
      if (stream.nextSend < replica.logStart) {
        stream.snapshotting = true;
        this.ctx.startSnapshot(this, stream);
        return;
      }
      const cached = replica.readCached(stream.nextSend, this.ctx.batchBytesMax);
      if (cached !== undefined) {
        this.sendBatch(stream, cached);
        continue;
      }
      stream.reading = true;
      replica.readRange(stream.nextSend, this.ctx.batchBytesMax).then(
        (range) => {
          stream.reading = false;
          if (!stream.active || this.role !== 'leader') return;
          this.sendBatch(stream, range);
          this.pump(stream);
        },
        (error: unknown) => {
          stream.reading = false;
          this.ctx.log('error', `queue ${this.name}: reading offset ${stream.nextSend} for ${stream.node} failed: ${describe(error)}; closing its link`);
          stream.link.close(error instanceof Error ? error : undefined);
        },
      );
      return;
    }
  }

  /** Streams for a link that drained. */
  pumpLink(link: FramedLink): void {
    for (const p of this.progress.values()) if (p.stream?.link === link) this.pump(p.stream);
  }

  updatePlacement(update: PlacementUpdate, type: CommitRule['type']): void {
    if (update.epoch < this.epoch) return;
    if (update.leader.node !== this.ctx.nodeName) {
      this.fence(`placement epoch ${update.epoch} names ${update.leader.node} as leader`);
      return;
    }
    // Same leader, newer epoch: its log simply continues (no record is added behind the shard's back).
    this.epoch = update.epoch;
    this.rule = this.ruleFor(type, update.members.map((m) => m.node), update.isr, update.minInsync);
    this.lastProposal = undefined;
    this.syncProgress();
    this.maybeAdvanceCommit();
  }

  /** Stops for good: no more batches, no watermark movement. Takes effect at once. */
  fence(reason: string): void {
    if (this.role === 'fenced') return;
    this.role = 'fenced';
    this.replica.onFlushed = undefined;
    clearTimeout(this.releaseTimer);
    for (const p of this.progress.values()) this.detach(p);
    this.ctx.log('info', `queue ${this.name}: no longer leading epoch ${this.epoch} (${reason}); watermark stays at ${this.commitOffset}`);
  }

  /**
   * The leader's periodic look at follower lag: a follower behind for longer than isrLagMs leaves
   * the ISR; one out of it and caught up is proposed back (again, if a proposal was lost to a
   * concurrent placement write while the queue is idle and no ack would bring it up).
   */
  checkIsr(nowMs: number): void {
    if (this.role !== 'leader') return;
    const last = this.replica.nextOffset - 1;
    for (const p of this.progress.values()) {
      // probe: it acked in this leadership, so ackedOffset is its own word, not the starting -1.
      if (p.stream !== undefined && p.probe !== undefined && this.mayJoinIsr(p, last)) {
        this.proposeIsrGrowth(p, last);
        break;
      }
    }
    for (const node of this.rule.isr) {
      const p = this.progress.get(node);
      if (p === undefined) continue;
      const lagMs = p.ackedOffset >= last ? 0 : nowMs - p.lastCaughtUpMs;
      if (lagMs > this.ctx.isrLagMs) {
        this.proposeIsr(
          this.rule.isr.filter((n) => n !== node),
          `${node} lags ${lagMs} ms > ${this.ctx.isrLagMs} ms (acked ${p.ackedOffset} of ${last})`,
        );
      }
    }
  }

  followerStatus(nowMs: number): FollowerStatus[] {
    const last = this.replica.nextOffset - 1;
    return [...this.progress.values()].map((p) => ({
      node: p.node,
      ackedOffset: p.ackedOffset,
      inSync: this.rule.isr.includes(p.node),
      lagMs: p.ackedOffset >= last ? 0 : nowMs - p.lastCaughtUpMs,
      connected: p.stream !== undefined,
    }));
  }

  /** Stream offsets still needed by connected followers (kept from reclamation). */
  private keepFrom(): number {
    let keep = this.replica.nextOffset;
    for (const p of this.progress.values()) if (p.stream !== undefined) keep = Math.min(keep, p.stream.nextSend);
    return keep;
  }

  private maybeRelease(): void {
    if (this.role !== 'leader' || this.replica.segmentFiles.length < 2) return;
    const nowMs = Date.now();
    const waitMs = this.lastReleaseMs + releaseIntervalMs - nowMs;
    if (waitMs > 0) {
      // Settles may stop arriving: look again when the interval is over, not only on the next append.
      if (this.releaseTimer === undefined) {
        this.releaseTimer = setTimeout(() => {
          this.releaseTimer = undefined;
          this.maybeRelease();
        }, waitMs);
        this.releaseTimer.unref();
      }
      return;
    }
    this.lastReleaseMs = nowMs;
    this.replica.releaseSettled(this.commitOffset, this.keepFrom()).catch((error: unknown) => this.ctx.log('warn', `queue ${this.name}: releasing settled segments failed: ${describe(error)}`));
  }

  private sendBatch(stream: FollowerStream, range: RecordRange): void {
    assert.ok(range.count > 0, 'empty batch');
    stream.link.send({
      type: FrameType.batch,
      msg: {
        queueId: this.queueId,
        queue: this.name,
        epoch: this.epoch,
        baseOffset: stream.nextSend,
        recordCount: range.count,
        commitOffset: this.commitOffset,
        checksum: crc32c(range.records) >>> 0,
        records: range.records,
      },
    });
    stream.nextSend += range.count;
    if (this.ctx.replicationRtt !== undefined) {
      const q = stream.unackedBatches;
      if (q.length >= 2 * rttPendingMax) q.splice(0, 2);
      q.push(stream.nextSend - 1, performance.now());
    }
  }

  /**
   * A follower out of the ISR may be proposed back once it is within isrCatchUpRecords of the
   * log end and holds everything committed (Kafka's rule: its log end reaches the high
   * watermark). Otherwise a mirrored queue's ISR could name a replica that lacks committed
   * records, and a failover to it would lose them.
   */
  private mayJoinIsr(p: Progress, last: number): boolean {
    return !this.rule.isr.includes(p.node) && last - p.ackedOffset <= this.ctx.isrCatchUpRecords && p.ackedOffset >= this.commitOffset;
  }

  /**
   * From the proposal on, commits wait for the joining follower too (the "maximal ISR" of
   * Kafka's KIP-497): between the proposal and the placement that grants it, the commit must
   * not move past what the joiner holds, or the granted ISR would name a replica without it.
   * Waiting for one more ack is always safe. A joiner that then lags as an ISR member would
   * (isrLagMs) stops counting, as it would be shrunk out; a lost proposal is made again.
   */
  private proposeIsrGrowth(p: Progress, last: number): void {
    this.joining.add(p.node);
    this.proposeIsr([...this.rule.isr, p.node], `${p.node} caught up (acked ${p.ackedOffset} of ${last}, committed ${this.commitOffset})`);
  }

  /** The rule commits are counted by: the placement's, plus followers proposed into the ISR. */
  private effectiveRule(): CommitRule {
    if (this.joining.size === 0) return this.rule;
    const nowMs = Date.now();
    const last = this.replica.nextOffset - 1;
    for (const node of this.joining) {
      const p = this.progress.get(node);
      const lagging = p === undefined || (p.ackedOffset < last && nowMs - p.lastCaughtUpMs > this.ctx.isrLagMs);
      if (lagging || this.rule.isr.includes(node) || !this.rule.members.includes(node)) this.joining.delete(node);
    }
    if (this.joining.size === 0) return this.rule;
    // Joiners' acks are required, but min-insync still counts the granted ISR only: a joiner is
    // no failover candidate until the placement names it.
    return { ...this.rule, isr: [...this.rule.isr, ...this.joining], minInsync: this.rule.minInsync + this.joining.size };
  }

  private maybeAdvanceCommit(): void {
    if (this.role !== 'leader') return;
    const self = this.ctx.nodeName;
    const candidate = commitCandidate(this.effectiveRule(), (node) => (node === self ? this.replica.flushedOffset : (this.progress.get(node)?.ackedOffset ?? -1)));
    if (candidate === undefined || candidate <= this.commitOffset || candidate < this.epochStartOffset) return;
    assert.ok(candidate < this.replica.nextOffset, `commit ${candidate} past the log end ${this.replica.nextOffset}`);
    this.commitOffset = candidate;
    if (this.ready) this.ctx.sink.commit(this.queueId, candidate);
  }

  private proposeIsr(isr: string[], why: string): void {
    const onIsrChange = this.ctx.onIsrChange;
    if (onIsrChange === undefined) return;
    const key = [...isr].sort().join(',');
    const nowMs = Date.now();
    if (this.lastProposal !== undefined && this.lastProposal.isr === key && nowMs - this.lastProposal.atMs < isrProposalRetryMs) return;
    this.lastProposal = { isr: key, atMs: nowMs };
    this.ctx.log('info', `queue ${this.name}: proposing ISR [${isr.join(', ')}]: ${why}`);
    onIsrChange(this.queueId, isr);
  }

  private ruleFor(type: CommitRule['type'], members: string[], isr: string[], minInsync: number): CommitRule {
    return { type, leader: this.ctx.nodeName, members, isr, minInsync };
  }

  /** One progress entry per member other than this node; removed members lose their streams. */
  private syncProgress(): void {
    const nowMs = Date.now();
    const self = this.ctx.nodeName;
    for (const node of this.rule.members) {
      if (node === self || this.progress.has(node)) continue;
      // A new follower gets isrLagMs from now to connect before it counts as lagging.
      this.progress.set(node, { node, ackedOffset: -1, lastCaughtUpMs: nowMs, probe: undefined, stream: undefined });
    }
    for (const [node, p] of this.progress) {
      if (this.rule.members.includes(node)) continue;
      this.detach(p);
      this.progress.delete(node);
    }
  }

  private detach(p: Progress): void {
    const stream = p.stream;
    if (stream === undefined) return;
    stream.active = false;
    p.stream = undefined;
  }
}

export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
