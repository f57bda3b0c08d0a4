/**
 * What holds publishers back, and why. A publishing connection is not read while any of
 * these holds it, and is read again once none does:
 *   - ring: it wrote past ringPendingPauseBytes waiting outside a full ring (or peer link);
 *     released when every ring and link has drained;
 *   - flow: a shard reports a consumed queue backing up; at most flowPauseMaxMs at a time, so
 *     flow slows publishers down and never wedges them;
 *   - alarm: it published while a resource alarm is in effect (RabbitMQ's 'blocked').
 * Apart from these, blocks are what every client is told with connection.blocked: a full ring
 * (past ringPendingBlockBytes), a shard's log that cannot be written, a resource alarm of this
 * node, or one of another node of the cluster (RabbitMQ's alarms are cluster-wide).
 */
import type { Logger } from '../node/logger.js';
import { alarmBlockReason, type AlarmResource } from './resource-alarms.js';

/** Whose input the broker stops reading for back-pressure: a client connection or a peer session. */
export interface Publisher {
  pauseReading(): void;
  resumeReading(): void;
  /** A publisher that also consumes is not paused by flow (its acks are what drains the queue). */
  hasConsumers(): boolean;
}

/** A client that hears connection.blocked and connection.unblocked. */
export interface BlockedClient {
  setBlocked(reason: string): void;
  setUnblocked(): void;
}

/**
 * What blocks publishers: a full ring or link, a shard's log that cannot be written (one source
 * per shard, so one shard's recovery does not lift another's block), a resource alarm of this
 * node, or one of another node of the cluster.
 */
export type BlockSource = 'ring' | `store:${string}` | AlarmResource | 'cluster';

/** One alarm as the listings show it: the node that has it, RabbitMQ's resource, and the reason clients are told. */
export interface NodeAlarmInfo {
  node: string;
  resource: AlarmResource;
  reason: string;
}

/** Front→shard bytes waiting outside a full ring before the publishing socket stops being read. */
const ringPendingPauseBytes = 4 * 1024 * 1024;
/** ...and before every publisher is told connection.blocked. */
const ringPendingBlockBytes = 32 * 1024 * 1024;
/** How often paused publishers are re-checked against the shards' flow signal. */
const flowCheckMs = 2;
/** Longest single flow pause: publishers make progress even if a consumer stalls. */
const flowPauseMaxMs = 50;

/** Which alarm resource each of this node's block sources counts as in the listings (RabbitMQ has only these two): a full ring is memory, an unwritable log disk. */
function blockSourceResource(source: Exclude<BlockSource, 'cluster'>): AlarmResource {
  return source === 'ring' || source === 'memory' ? 'memory' : 'disk';
}

export class PublisherHolds {
  /** Why publishers are blocked (connection.blocked sent), by source; empty when they are not. */
  private readonly blockReasons = new Map<BlockSource, string>();
  private readonly pausedByRing = new Set<Publisher>();
  /** Publishing connections not read while a resource alarm is in effect. */
  private readonly pausedByAlarm = new Set<Publisher>();
  /** Publishing connections paused by a shard's flow signal, with when they were paused. */
  private readonly pausedByFlow = new Map<Publisher, number>();
  private flowTimer: NodeJS.Timeout | undefined;
  private remoteAlarms: { node: string; resource: AlarmResource }[] = [];
  /** A resource alarm (memory or disk, here or on another node) is in effect: publishing clients are held (holdPublisher). Read once per publish. */
  alarmBlocked = false;

  constructor(
    private readonly nodeName: string,
    /** Every client connection, told connection.blocked and connection.unblocked. */
    private readonly clients: Iterable<BlockedClient>,
    /** Whether a shard still reports a consumed queue backing up. */
    private readonly anyShardCongested: () => boolean,
    private readonly log: Logger,
  ) {}

  /**
   * A record was written on conn's behalf (undefined: no client to pause) to a ring or link that
   * has pendingBytes waiting outside it: past the pause mark conn is not read until the rings
   * drain; past the block mark every client is told connection.blocked, `reason`.
   */
  noteRingBacklog(pendingBytes: number, conn: Publisher | undefined, reason: () => string): void {
    if (conn !== undefined && pendingBytes > ringPendingPauseBytes) {
      conn.pauseReading();
      this.pausedByRing.add(conn);
    }
    if (pendingBytes > ringPendingBlockBytes && !this.blockReasons.has('ring')) {
      const why = reason();
      this.log.warn(`blocking publishers: ${why}`);
      this.setBlock('ring', why);
    }
  }

  /** Every ring and link has drained: ring-paused publishers are read again. Returns whether the ring block lifted. */
  ringsDrained(): boolean {
    const paused = [...this.pausedByRing];
    this.pausedByRing.clear();
    for (const c of paused) this.maybeResume(c);
    if (!this.blockReasons.has('ring')) return false;
    this.clearBlock('ring');
    return true;
  }

  /**
   * Flow: stop reading a publisher while a shard reports a consumed queue backing up. A
   * connection that also consumes is left alone (its acks are what drains the queue), and
   * no pause outlasts flowPauseMaxMs.
   */
  pauseForFlow(conn: Publisher): void {
    if (this.pausedByFlow.has(conn) || conn.hasConsumers()) return;
    conn.pauseReading();
    this.pausedByFlow.set(conn, performance.now());
    this.flowTimer ??= setInterval(() => this.checkFlow(), flowCheckMs);
  }

  private checkFlow(): void {
    const congested = this.anyShardCongested();
    const now = performance.now();
    for (const [conn, since] of this.pausedByFlow) {
      if (congested && now - since < flowPauseMaxMs) continue;
      this.pausedByFlow.delete(conn);
      this.maybeResume(conn);
    }
    if (this.pausedByFlow.size === 0 && this.flowTimer !== undefined) {
      clearInterval(this.flowTimer);
      this.flowTimer = undefined;
    }
  }

  /** Reads a publisher again unless something else still holds it. */
  private maybeResume(conn: Publisher): void {
    if (this.pausedByRing.has(conn) || this.pausedByFlow.has(conn) || this.pausedByAlarm.has(conn)) return;
    conn.resumeReading();
  }

  /**
   * A client connection published while a resource alarm is in effect: it is not read again
   * until the alarm clears (RabbitMQ's 'blocked'; until they publish, the others are 'blocking').
   * Peer links are never held: they carry other nodes' consumers too, and a forwarded publish
   * was held, if at all, at the node its client is on.
   */
  holdPublisher(conn: Publisher): void {
    if (!this.alarmBlocked || this.pausedByAlarm.has(conn)) return;
    conn.pauseReading();
    this.pausedByAlarm.add(conn);
  }

  /**
   * RabbitMQ's connection states under a resource alarm: 'blocked' once this node stopped reading
   * a connection that published, 'blocking' for the others until they publish; undefined without an alarm.
   */
  alarmState(p: Publisher): 'blocked' | 'blocking' | undefined {
    if (this.pausedByAlarm.has(p)) return 'blocked';
    return this.alarmBlocked ? 'blocking' : undefined;
  }

  /** A publisher went away: it is no longer paused or resumed. */
  forget(p: Publisher): void {
    this.pausedByRing.delete(p);
    this.pausedByFlow.delete(p);
    this.pausedByAlarm.delete(p);
  }

  /** The reason connection.blocked gives, while anything blocks publishers. */
  get blockedReason(): string | undefined {
    for (const reason of this.blockReasons.values()) return reason;
    return undefined;
  }

  blockedBy(source: BlockSource): boolean {
    return this.blockReasons.has(source);
  }

  /** Publishers are blocked for `source` (connection.blocked to every client the first time anything blocks). */
  setBlock(source: BlockSource, reason: string): void {
    const wasBlocked = this.blockReasons.size > 0;
    this.blockReasons.set(source, reason);
    this.alarmBlocked = this.holdsPublishers();
    if (!wasBlocked) for (const c of this.clients) c.setBlocked(reason);
  }

  /** `source` no longer blocks; once nothing does, clients get connection.unblocked and alarm-held publishers are read again. */
  clearBlock(source: BlockSource): void {
    if (!this.blockReasons.delete(source)) return;
    this.alarmBlocked = this.holdsPublishers();
    if (!this.alarmBlocked && this.pausedByAlarm.size > 0) {
      const paused = [...this.pausedByAlarm];
      this.pausedByAlarm.clear();
      for (const c of paused) this.maybeResume(c);
    }
    if (this.blockReasons.size === 0) for (const c of this.clients) c.setUnblocked();
  }

  private holdsPublishers(): boolean {
    return this.blockReasons.has('memory') || this.blockReasons.has('disk') || this.blockReasons.has('cluster');
  }

  /** A resource alarm of this node, from the monitor (resource-alarms.ts). */
  onResourceAlarm(resource: AlarmResource, active: boolean, reason: string): void {
    if (active) this.setBlock(resource, reason);
    else this.clearBlock(resource);
  }

  /** The other nodes' resource alarms (cluster/alarm-sync.ts): they hold this node's publishers too. */
  setRemoteAlarms(alarms: readonly { node: string; resource: AlarmResource }[]): void {
    this.remoteAlarms = [...alarms];
    const first = alarms[0];
    if (first === undefined) this.clearBlock('cluster');
    else this.setBlock('cluster', alarmBlockReason[first.resource]);
  }

  /**
   * What blocks publishers now, as alarms in RabbitMQ's two resources (a full ring counts as
   * memory, an unwritable log as disk), this node's first, then the other nodes' of the cluster.
   */
  alarms(): NodeAlarmInfo[] {
    const own: NodeAlarmInfo[] = [];
    for (const [source, reason] of this.blockReasons) if (source !== 'cluster') own.push({ node: this.nodeName, resource: blockSourceResource(source), reason });
    return [...own, ...this.remoteAlarms.map((a) => ({ node: a.node, resource: a.resource, reason: alarmBlockReason[a.resource] }))];
  }

  /** The node stops: the flow timer ends with it. */
  close(): void {
    clearInterval(this.flowTimer);
    this.flowTimer = undefined;
  }
}
