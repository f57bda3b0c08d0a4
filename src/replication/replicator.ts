/**
 * The replicator of one node: every replicated queue's replica log, the queues it leads
 * (LeaderQueue) and follows (FollowerQueue), the replication listener that followers dial, and
 * one outbound link per leader address it follows. Usable in-process (tests) and hosted in a
 * worker thread (worker.ts). All state lives on one event loop; per-queue control operations
 * (lead, follow, stop, delete) run one after another in a per-queue chain.
 *
 * Links: the follower dials, both ends prove the cluster secret (secret-handshake.ts), then
 * frames (wire.ts) flow. Queues share the link to their leader's node: Fetch/Ack name the queue.
 */
import { LatencyRecorder, recordUs } from '../metrics/latency.js';
import assert from 'node:assert/strict';
import { createServer, connect } from 'node:net';
import type { Server, Socket } from 'node:net';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { acceptPeer, connectPeer } from '../cluster/secret-handshake.js';
import { FramedLink } from './framed-link.js';
import { FollowerQueue, type PollFence } from './follower-queue.js';
import { LeaderQueue, describe } from './leader-queue.js';
import type { FollowerStream, LeaderQueueContext } from './leader-queue.js';
import { ReplicaLog } from './replica-log.js';
import { SnapshotSender } from './snapshot-sender.js';
import { FrameType, WireError, frameBytesMaxDefault, frameTypeName } from './wire.js';
import type { FetchMsg, Frame } from './wire.js';
import type {
  FollowRequest,
  LeadRequest,
  PlacementUpdate,
  ReplicaMember,
  ReplicaStatus,
  ReplicatedQueueType,
  ReplicatorLogger,
  ReplicatorOptions,
} from './types.js';

/** A follower stalled for this long leaves the ISR; mirrored queues wait on ISR members, so not much longer. */
const isrLagMsDefault = 5_000;
/** A follower this close to the leader's log end rejoins the ISR. */
const isrCatchUpRecordsDefault = 256;
/** Records per Batch: PLATFORM.md's group-commit sweet spot, so one batch is about one follower fsync. */
const batchBytesMaxDefault = 256 * 1024;
/** First reconnect delay after a link to a leader fails; doubles up to the max. */
const reconnectMsMin = 50;
const reconnectMsMax = 2_000;

interface ReplicaEntry {
  queueId: number;
  name: string;
  replica: ReplicaLog | undefined;
  type: ReplicatedQueueType;
  leader: LeaderQueue | undefined;
  follower: FollowerQueue | undefined;
  /** Set by answerPoll: a follower of this queue, now or later, refuses leaders of epochs <= its epoch until its time. */
  pollFence: PollFence | undefined;
  /** Control operations of this queue, in call order. */
  ops: Promise<unknown>;
}

/** A follower's link to one leader node, shared by every queue it follows there. */
class OutboundLink {
  readonly queues = new Map<number, FollowerQueue>();
  link: FramedLink | undefined;
  private connecting = false;
  private timer: NodeJS.Timeout | undefined;
  private backoffMs = reconnectMsMin;
  private closed = false;

  constructor(
    readonly member: ReplicaMember,
    private readonly owner: Replicator,
  ) {}

  add(fq: FollowerQueue): void {
    this.queues.set(fq.queueId, fq);
    if (this.link !== undefined) fq.linkUp(this.link);
    else this.ensureConnecting();
  }

  /** Returns true when no queue is left (the link was closed). */
  remove(fq: FollowerQueue): boolean {
    if (this.queues.get(fq.queueId) === fq) this.queues.delete(fq.queueId);
    fq.stop();
    if (this.queues.size > 0) return false;
    this.close();
    return true;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.link?.close();
  }

  private ensureConnecting(): void {
    if (this.closed || this.connecting || this.link !== undefined || this.timer !== undefined) return;
    this.connect();
  }

  private connect(): void {
    this.connecting = true;
    const { host, port } = parseHostPort(this.member.repl);
    const socket = connect({ host, port });
    const o = this.owner.options;
    connectPeer(socket, o.secret, o.nodeName).then(
      ({ peer, rest }) => {
        this.connecting = false;
        if (this.closed) {
          socket.destroy();
          return;
        }
        if (peer !== this.member.node) {
          o.log('warn', `replication link to ${this.member.repl}: expected node ${this.member.node}, the peer is ${peer}; closing`);
          socket.destroy();
          this.retry();
          return;
        }
        this.backoffMs = reconnectMsMin;
        this.up(new FramedLink(socket, peer, rest, this.owner.frameBytesMax, o.log, 'replication frames from leader'));
      },
      (error: unknown) => {
        this.connecting = false;
        if (this.closed) return;
        o.log('warn', `replication link to ${this.member.node} at ${this.member.repl}: ${describe(error)}; retrying in ${this.backoffMs} ms`);
        this.retry();
      },
    );
  }

  private up(link: FramedLink): void {
    this.link = link;
    link.onFrame = (frame) => this.onFrame(link, frame);
    link.onClose = (error) => {
      this.link = undefined;
      for (const fq of this.queues.values()) fq.linkDown();
      if (this.closed) return;
      this.owner.options.log('info', `replication link to leader ${this.member.node} closed${error === undefined ? '' : `: ${error.message}`}`);
      this.owner.peerDown(this.member.node);
      this.retry();
    };
    link.start();
    for (const fq of this.queues.values()) fq.linkUp(link);
  }

  private onFrame(link: FramedLink, frame: Frame): void {
    if (frame.type === FrameType.fetch || frame.type === FrameType.ack) {
      throw new WireError(`a leader sent ${frameTypeName(frame.type)}, which only followers send`);
    }
    const fq = this.queues.get(frame.msg.queueId);
    // Frames for a queue no longer followed here are the tail of a stream that was stopped.
    if (fq !== undefined && link === this.link) fq.onFrame(frame);
  }

  private retry(): void {
    if (this.closed || this.queues.size === 0 || this.timer !== undefined) return;
    const delayMs = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, reconnectMsMax);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.ensureConnecting();
    }, delayMs);
  }
}

/** A follower's link into this node (leader side). */
class InboundSession {
  /** Fetches for queues this node does not lead (yet): answered when lead() comes. */
  readonly pendingFetches = new Map<number, FetchMsg>();

  constructor(
    readonly link: FramedLink,
    readonly peer: string,
  ) {}
}

export function parseHostPort(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const port = Number(address.slice(colon + 1));
  let host = address.slice(0, colon);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (colon <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) throw new RangeError(`replication address "${address}" is not host:port`);
  return { host, port };
}

export class Replicator {
  /** The leader proposes an ISR change (the controller applies it with a compare-and-set on the epoch). */
  onIsrChange: ((queueId: number, isr: string[]) => void) | undefined;
  /** A replication link to that node closed (fast crash detection). */
  onPeerDown: ((node: string) => void) | undefined;

  readonly frameBytesMax: number;
  /** fsync of the replica logs, and replication_rtt: a batch sent → the follower's ack covering it. */
  readonly latency = new LatencyRecorder();
  private readonly entries = new Map<number, ReplicaEntry>();
  private readonly sessions = new Set<InboundSession>();
  private readonly outbound = new Map<string, OutboundLink>();
  private readonly commitQueue = new Set<ReplicaLog>();
  private commitScheduled = false;
  private server: Server | undefined;
  private isrTimer: NodeJS.Timeout | undefined;
  private closing = false;
  private readonly leaderContext: LeaderQueueContext;
  private readonly isrLagMs: number;
  /** Catch-up snapshots, built by a Piscina job (snapshot-sender.ts). */
  readonly snapshots: SnapshotSender;

  constructor(readonly options: ReplicatorOptions) {
    this.frameBytesMax = options.frameBytesMax ?? frameBytesMaxDefault;
    this.isrLagMs = options.isrLagMs ?? isrLagMsDefault;
    const batchBytesMax = options.batchBytesMax ?? batchBytesMaxDefault;
    assert.ok(batchBytesMax < this.frameBytesMax, `batchBytesMax ${batchBytesMax} must be below frameBytesMax ${this.frameBytesMax}`);
    this.snapshots = new SnapshotSender(batchBytesMax, options.log);
    this.leaderContext = {
      nodeName: options.nodeName,
      sink: options.sink,
      log: options.log,
      batchBytesMax,
      isrLagMs: this.isrLagMs,
      isrCatchUpRecords: options.isrCatchUpRecords ?? isrCatchUpRecordsDefault,
      onIsrChange: (queueId, isr) => this.onIsrChange?.(queueId, isr),
      startSnapshot: (leader, stream) => this.startSnapshot(leader, stream),
      replicationRtt: this.latency.get('replication_rtt'),
    };
  }

  private get log(): ReplicatorLogger {
    return this.options.log;
  }

  /**
   * Recovers every replica log under <dataDir>/replicas (so replicaState answers for the
   * controller before any lead or follow) and starts the replication listener.
   */
  async listen(): Promise<number> {
    assert.ok(this.server === undefined, 'listen() called twice');
    const root = join(this.options.dataDir, 'replicas');
    let names: string[] = [];
    try {
      names = await readdir(root);
    } catch (error: unknown) {
      if (!(typeof error === 'object' && error !== null && 'code' in error && error.code === 'ENOENT')) throw error;
    }
    for (const name of names) {
      const queueId = Number(name);
      if (!/^\d+$/.test(name) || !Number.isSafeInteger(queueId)) continue;
      await this.entryOps(queueId, name, async (entry) => {
        await this.openReplica(entry);
      });
    }
    const server = createServer((socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.replPort, this.options.bindHost, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    assert.ok(address !== null && typeof address === 'object');
    this.isrTimer = setInterval(() => this.checkIsr(), Math.max(50, Math.floor(this.isrLagMs / 4)));
    this.isrTimer.unref();
    this.log('info', `replication listener on ${this.options.bindHost}:${address.port}`);
    return address.port;
  }

  /**
   * Becomes the queue's leader for q.epoch (which must be newer than any epoch in its replica
   * log): appends epochStart, hands every live message to the shard (sink.import, in queue order),
   * then sink.leadReady. Resolves with the offset the shard's next record gets.
   */
  lead(q: LeadRequest): Promise<{ nextOffset: number }> {
    return this.entryOps(q.queueId, q.name, async (entry) => {
      const replica = await this.openReplica(entry);
      // Checked before anything changes: a refused lead() leaves a current leader or follower as it was.
      if (q.epoch <= replica.latestEpoch) {
        throw new Error(`lead ${q.name} at epoch ${q.epoch}: its replica log already has epoch ${replica.latestEpoch}; a new leadership needs a newer epoch`);
      }
      entry.type = q.type;
      await this.dropFollower(entry);
      entry.leader?.fence('leading again');
      entry.leader = undefined;
      // A follower's last batch may still be in its group commit: the leader's records follow it.
      await replica.commit();
      const epochStartOffset = replica.appendEpochStart(q.epoch);
      const leader = new LeaderQueue(q.queueId, q.name, replica, q, epochStartOffset, this.leaderContext);
      entry.leader = leader;
      const sink = this.options.sink;
      let imported = 0;
      for await (const record of replica.liveRecords()) {
        sink.import(q.queueId, record.offset, record.delivered, record.payload);
        await sink.importRoom?.(q.queueId); // read at page-cache speed: the shard sets the pace
        imported += 1;
      }
      const nextOffset = replica.nextOffset;
      sink.leadReady(q.queueId, nextOffset);
      leader.markReady();
      this.log('info', `queue ${q.name}: leading epoch ${q.epoch} (${q.type}, members ${q.members.map((m) => m.node).join(', ')}), ${imported} live message(s) imported, log continues at ${nextOffset}`);
      for (const session of this.sessions) {
        const fetch = session.pendingFetches.get(q.queueId);
        if (fetch === undefined) continue;
        if (leader.attach(session.link, session.peer, fetch)) session.pendingFetches.delete(q.queueId);
      }
      return { nextOffset };
    });
  }

  /** A record of a queue this node leads, from its shard: it gets the next offset, in call order. */
  append(queueId: number, kind: number, payload: Uint8Array): void {
    const leader = this.entries.get(queueId)?.leader;
    if (leader === undefined) {
      this.log('warn', `record of kind ${kind} for queue ${queueId}, which this node does not lead; dropped`);
      return;
    }
    leader.append(kind, payload);
  }

  /** Follows the queue's leader: dials it (reconnecting with backoff while followed), fetches from the log end, applies, acks. */
  follow(q: FollowRequest): void {
    void this.entryOps(q.queueId, q.name, async (entry) => {
      entry.leader?.fence(`now following ${q.leader.node}`);
      entry.leader = undefined;
      const current = entry.follower;
      if (current !== undefined && current.leader.node === q.leader.node && current.leader.repl === q.leader.repl) {
        current.raiseEpoch(q.epoch);
        return;
      }
      await this.dropFollower(entry);
      const replica = await this.openReplica(entry);
      const fq = new FollowerQueue(q.queueId, q.name, replica, q.leader, q.epoch, {
        nodeName: this.options.nodeName,
        log: this.log,
        scheduleCommit: (r) => this.scheduleFollowerCommit(r),
      });
      entry.follower = fq;
      if (entry.pollFence !== undefined) fq.fenceForPoll(entry.pollFence);
      this.linkTo(q.leader).add(fq);
      this.log('info', `queue ${q.name}: following ${q.leader.node} (epoch ${q.epoch}) from offset ${replica.nextOffset}`);
    }).catch((error: unknown) => this.log('error', `follow ${q.name}: ${describe(error)}`));
  }

  /**
   * A placement change: ISR or members (leader keeps going), or a new leader (a leader here
   * fences itself; a follower re-dials). Resolves once applied: a leader counts acks by the new
   * members from then on (membership changes wait for that, cluster/membership.ts).
   */
  updatePlacement(queueId: number, p: PlacementUpdate): Promise<void> {
    const entry = this.entries.get(queueId);
    if (entry === undefined) return Promise.resolve();
    return this.entryOps(queueId, entry.name, async () => {
      const leader = entry.leader;
      if (leader !== undefined) {
        leader.updatePlacement(p, entry.type);
        if (leader.role === 'fenced') entry.leader = undefined;
        else this.attachHeldFetches(leader);
        return;
      }
      const fq = entry.follower;
      if (fq === undefined) return;
      fq.raiseEpoch(p.epoch);
      if (p.leader.node === this.options.nodeName) return; // lead() comes next
      if (fq.leader.node !== p.leader.node || fq.leader.repl !== p.leader.repl) {
        await this.dropFollower(entry);
        const replica = await this.openReplica(entry);
        const next = new FollowerQueue(queueId, entry.name, replica, p.leader, p.epoch, {
          nodeName: this.options.nodeName,
          log: this.log,
          scheduleCommit: (r) => this.scheduleFollowerCommit(r),
        });
        entry.follower = next;
        if (entry.pollFence !== undefined) next.fenceForPoll(entry.pollFence);
        this.linkTo(p.leader).add(next);
      }
    }).catch((error: unknown) => this.log('error', `update placement of queue ${queueId}: ${describe(error)}`));
  }

  /** Fetches held for a queue whose placement did not name their follower yet: attached once it does. */
  private attachHeldFetches(leader: LeaderQueue): void {
    for (const session of this.sessions) {
      const fetch = session.pendingFetches.get(leader.queueId);
      if (fetch !== undefined && leader.attach(session.link, session.peer, fetch)) session.pendingFetches.delete(leader.queueId);
    }
  }

  /** Stops leading or following the queue. A leader stops moving the watermark before this returns. */
  stop(queueId: number): Promise<void> {
    const entry = this.entries.get(queueId);
    if (entry === undefined) return Promise.resolve();
    // Fencing is synchronous, ahead of queued operations: a deposed leader must not confirm one more record.
    entry.leader?.fence('stopped');
    return this.entryOps(queueId, entry.name, async () => {
      entry.leader?.fence('stopped');
      entry.leader = undefined;
      await this.dropFollower(entry);
    });
  }

  /** Stops and removes the queue's replica log. */
  async deleteQueue(queueId: number): Promise<void> {
    const entry = this.entries.get(queueId);
    if (entry === undefined) {
      await ReplicaLog.destroy(this.replicaDir(queueId));
      return;
    }
    entry.leader?.fence('deleted');
    await this.entryOps(queueId, entry.name, async () => {
      entry.leader = undefined;
      await this.dropFollower(entry);
      await this.snapshots.stopQueue(queueId);
      await entry.replica?.close().catch(() => undefined);
      entry.replica = undefined;
      await ReplicaLog.destroy(this.replicaDir(queueId));
    });
    if (this.entries.get(queueId) === entry) this.entries.delete(queueId);
  }

  /**
   * A replica poll's question about the queue at placement epoch `epoch` (cluster/replica-poll.ts):
   * fences first — no batch or ack of a leader of that epoch or older for fenceMs, or until a
   * newer placement — then answers with the log end, which is thus final. A leader here is not
   * fenced (it may poll as a candidate itself). Undefined when this node holds no replica.
   */
  answerPoll(queueId: number, epoch: number, fenceMs: number): Promise<{ epoch: number; logEnd: number } | undefined> {
    const found = this.entries.get(queueId);
    if (found?.replica === undefined) return Promise.resolve(undefined);
    return this.entryOps(queueId, found.name, async (entry) => {
      const fence = { epoch, untilMs: Date.now() + fenceMs };
      const prior = entry.pollFence;
      entry.pollFence = prior === undefined || Date.now() >= prior.untilMs ? fence : { epoch: Math.max(prior.epoch, epoch), untilMs: Math.max(prior.untilMs, fence.untilMs) };
      const fq = entry.follower;
      if (fq !== undefined) {
        fq.fenceForPoll(entry.pollFence);
        // A frame being applied (a truncation, a batch) finishes before the log end is read.
        await fq.settled();
      }
      return this.replicaState(queueId);
    });
  }

  /** The replica's newest epoch and log end (the controller picks the highest (epoch, logEnd) in the ISR). */
  replicaState(queueId: number): { epoch: number; logEnd: number } | undefined {
    const replica = this.entries.get(queueId)?.replica;
    if (replica === undefined) return undefined;
    return { epoch: replica.latestEpoch, logEnd: replica.nextOffset };
  }

  status(): ReplicaStatus[] {
    const nowMs = Date.now();
    const out: ReplicaStatus[] = [];
    for (const entry of this.entries.values()) {
      const replica = entry.replica;
      if (replica === undefined) continue;
      const base = {
        queueId: entry.queueId,
        name: entry.name,
        logStart: replica.logStart,
        logEnd: replica.nextOffset,
        flushedOffset: replica.flushedOffset,
        liveMessages: replica.liveCount,
      };
      if (entry.leader !== undefined) {
        const l = entry.leader;
        out.push({ ...base, role: l.role, epoch: l.epoch, commitOffset: l.commitOffset, followers: l.followerStatus(nowMs) });
      } else if (entry.follower !== undefined) {
        const f = entry.follower;
        out.push({ ...base, role: 'follower', epoch: f.knownEpoch, commitOffset: f.leaderCommitOffset, followers: [], leader: f.leader.node, streaming: f.streaming });
      } else {
        out.push({ ...base, role: 'idle', epoch: replica.latestEpoch, commitOffset: -1, followers: [] });
      }
    }
    return out;
  }

  /** Waits until every frame received so far for the queue (follower) has been applied. For tests and orderly hand-over. */
  async settled(queueId: number): Promise<void> {
    await this.entries.get(queueId)?.follower?.settled();
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    clearInterval(this.isrTimer);
    for (const entry of this.entries.values()) entry.leader?.fence('replicator closing');
    for (const link of this.outbound.values()) link.close();
    this.outbound.clear();
    for (const session of this.sessions) session.link.close();
    const server = this.server;
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
    await this.snapshots.close();
    for (const entry of this.entries.values()) {
      await entry.ops.catch(() => undefined);
      entry.follower?.stop();
      await entry.follower?.settled();
      await entry.replica?.close().catch((error: unknown) => this.log('warn', `closing replica of ${entry.name}: ${describe(error)}`));
    }
    this.entries.clear();
  }

  /** Called by an outbound link whose connection closed. */
  peerDown(node: string): void {
    if (!this.closing) this.onPeerDown?.(node);
  }

  // ---- internals ----

  private replicaDir(queueId: number): string {
    return join(this.options.dataDir, 'replicas', String(queueId));
  }

  private entryOps<T>(queueId: number, name: string, op: (entry: ReplicaEntry) => Promise<T>): Promise<T> {
    if (this.closing) return Promise.reject(new Error('replicator is closed'));
    let entry = this.entries.get(queueId);
    if (entry === undefined) {
      entry = { queueId, name, replica: undefined, type: 'quorum', leader: undefined, follower: undefined, pollFence: undefined, ops: Promise.resolve() };
      this.entries.set(queueId, entry);
    }
    if (name !== String(queueId)) entry.name = name;
    const e = entry;
    const result = e.ops.then(() => op(e));
    e.ops = result.catch(() => undefined);
    return result;
  }

  private async openReplica(entry: ReplicaEntry): Promise<ReplicaLog> {
    if (entry.replica !== undefined) return entry.replica;
    const o = this.options;
    entry.replica = await ReplicaLog.open(this.replicaDir(entry.queueId), {
      segmentBytes: o.segmentBytes,
      fsync: o.fsync,
      log: (level, msg) => o.log(level, msg),
      ...(o.tailCacheBytesMax !== undefined ? { tailCacheBytesMax: o.tailCacheBytesMax } : {}),
    });
    const fsyncHist = this.latency.get('fsync');
    entry.replica.onFsync = (ms) => recordUs(fsyncHist, ms * 1000);
    return entry.replica;
  }

  /** Stops following; resolves once a frame the follower was applying (a truncation, a snapshot) is done with the log. */
  private dropFollower(entry: ReplicaEntry): Promise<void> {
    const fq = entry.follower;
    if (fq === undefined) return Promise.resolve();
    entry.follower = undefined;
    const key = fq.leader.repl;
    const link = this.outbound.get(key);
    if (link === undefined) fq.stop();
    else if (link.remove(fq)) this.outbound.delete(key);
    return fq.settled();
  }

  private linkTo(member: ReplicaMember): OutboundLink {
    let link = this.outbound.get(member.repl);
    if (link !== undefined && link.member.node !== member.node) {
      // Another node now answers at that address: the old link's queues are not ours to keep.
      link.close();
      link = undefined;
    }
    if (link === undefined) {
      link = new OutboundLink(member, this);
      this.outbound.set(member.repl, link);
    }
    return link;
  }

  private scheduleFollowerCommit(replica: ReplicaLog): void {
    this.commitQueue.add(replica);
    if (this.commitScheduled) return;
    this.commitScheduled = true;
    // One commit per replica for everything a burst of frames appended.
    setImmediate(() => {
      this.commitScheduled = false;
      const replicas = [...this.commitQueue];
      this.commitQueue.clear();
      for (const r of replicas) r.commit().catch((error: unknown) => this.log('error', `follower commit of ${r.dir} failed: ${describe(error)}`));
    });
  }

  private accept(socket: Socket): void {
    const from = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    socket.on('error', () => undefined);
    acceptPeer(socket, this.options.secret, this.options.nodeName).then(
      ({ peer, rest }) => {
        if (this.closing) {
          socket.destroy();
          return;
        }
        const link = new FramedLink(socket, peer, rest, this.frameBytesMax, this.log, 'replication frames from follower');
        const session = new InboundSession(link, peer);
        this.sessions.add(session);
        link.onFrame = (frame) => this.onFollowerFrame(session, frame);
        link.onDrain = () => {
          for (const entry of this.entries.values()) entry.leader?.pumpLink(link);
        };
        link.onClose = (error) => {
          this.sessions.delete(session);
          let streamed = session.pendingFetches.size > 0;
          for (const entry of this.entries.values()) if (entry.leader?.detachLink(link) === true) streamed = true;
          if (this.closing) return;
          this.log('info', `replication link from follower ${peer} closed${error === undefined ? '' : `: ${error.message}`}`);
          // A follower closes a link it no longer streams on when its last queue here was
          // removed from it (delete_member): no sign that the node died.
          if (streamed) this.peerDown(peer);
        };
        link.start();
      },
      (error: unknown) => this.log('warn', `refused a replication link from ${from}: ${describe(error)}`),
    );
  }

  private onFollowerFrame(session: InboundSession, frame: Frame): void {
    switch (frame.type) {
      case FrameType.fetch: {
        const leader = this.entries.get(frame.msg.queueId)?.leader;
        if (leader === undefined || leader.role !== 'leader') {
          session.pendingFetches.set(frame.msg.queueId, frame.msg);
          return;
        }
        if (leader.attach(session.link, session.peer, frame.msg)) session.pendingFetches.delete(frame.msg.queueId);
        else session.pendingFetches.set(frame.msg.queueId, frame.msg);
        return;
      }
      case FrameType.ack:
        this.entries.get(frame.msg.queueId)?.leader?.onAck(session.peer, frame.msg.epoch, frame.msg.ackedOffset);
        return;
      default:
        throw new WireError(`a follower sent ${frameTypeName(frame.type)}, which only leaders send`);
    }
  }

  private startSnapshot(leader: LeaderQueue, stream: FollowerStream): void {
    this.snapshots.start(leader, stream);
  }

  private checkIsr(): void {
    const nowMs = Date.now();
    for (const entry of this.entries.values()) entry.leader?.checkIsr(nowMs);
  }
}
