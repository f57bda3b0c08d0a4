/**
 * The shard's side of replicated queues (cluster mode) that this node leads: every log record
 * of such a queue goes to the replicator worker instead of the shard's own log, and a
 * published message enters the queue (becomes deliverable, gets its confirm) only once the
 * replicator reports the queue's commit watermark past it. So confirms and deliveries never
 * run ahead of the watermark, and queue order is log order.
 *
 * Offsets: the replicator gives each append the queue log's next offset in ring order; the
 * shard counts the same way from the nextOffset it was created with, so a commit(offset)
 * maps onto its pending messages without any reply per record.
 *
 * Memory: past the shard's budget (`--queue-memory-mb`, pager.ts) a committed or imported
 * message waits on the shard's own log, read back in order as consumers near it; the replica
 * log stays its durable copy, and its settle goes there as for any other. A new leader's
 * imports arrive before its queue exists (the front creates it when the lead completes,
 * after the last import), so they are held here meanwhile: in memory up to the budget, then
 * on disk as index entries.
 */
import assert from 'node:assert/strict';
import type { RingWriter } from '../ring/ring-writer.js';
import { RecordReader, RecordWriter } from '../ring/record-buffer.js';
import { FromReplicator, ToReplicator } from '../ring/replication-records.js';
import { LogKind, encodeEnqueueHeader, encodeIdList, enqueueHeaderBytes } from './log-records.js';
import type { Message } from './message.js';
import { PagedTail, newPagedEntry, type PagedEntry } from './paged-tail.js';

/** A publisher confirm that waits on several things (the shard log, queues' watermarks). */
export interface ConfirmGate {
  readonly channelKey: number;
  readonly seq: number;
  ok: boolean;
  remaining: number;
}

interface Pending {
  readonly offset: number;
  readonly m: Message;
  gate: ConfirmGate | undefined;
}

interface QueueReplication {
  nextOffset: number;
  committed: number;
  /** Not yet committed from pendingHead on; slots below it are cleared, so a payload never outlives its commit. */
  readonly pending: (Pending | undefined)[];
  pendingHead: number;
  settles: number[];
  delivered: number[];
}

/** Imports of a queue the front has not created yet, in queue order: those in memory, then those on disk. */
interface HeldImports {
  readonly records: Buffer[];
  paged: PagedTail | undefined;
}

export interface ReplicatedHost {
  /** Puts a committed message into its queue; false if the queue refused it (overflow). */
  accept(queueId: number, m: Message): boolean;
  /** A message of an imported (recovered or failed-over) log: the shard builds it from the enqueue record. */
  importMessage(queueId: number, msgId: number, expiresAtMs: number, redelivered: boolean, payload: Buffer): void;
  /**
   * An import of a queue the shard does not have yet: its index entry once written to the
   * shard's log, or undefined to keep it in memory. heldBytes: imports held in memory so far;
   * paging: earlier ones of this queue went to disk, so this one must too (queue order).
   */
  holdImport(queueId: number, msgId: number, expiresAtMs: number, redelivered: boolean, payload: Buffer, heldBytes: number, paging: boolean): PagedEntry | undefined;
  /** A held import on disk joins its queue, now created. */
  importPaged(queueId: number, e: PagedEntry): void;
  /** A held import on disk is dropped unread: this node does not lead its queue after all. */
  dropHeld(e: PagedEntry): void;
  releaseGate(gate: ConfirmGate, ok: boolean): void;
  log(level: 'info' | 'warn' | 'error', msg: string): void;
}

export class ReplicatedQueues {
  private readonly queues = new Map<number, QueueReplication>();
  /** Imports that arrived before the front created their queue (the two come on different rings). */
  private readonly early = new Map<number, HeldImports>();
  /** Bytes of the import records held in memory in `early`. */
  private earlyBytes = 0;
  private readonly head = Buffer.allocUnsafe(5 + enqueueHeaderBytes);
  private readonly w = new RecordWriter();

  constructor(
    private readonly out: RingWriter,
    private readonly host: ReplicatedHost,
  ) {}

  has(queueId: number): boolean {
    return this.queues.has(queueId);
  }

  /** The front created a replicated queue this node leads; its log continues at nextOffset. */
  open(queueId: number, nextOffset: number): void {
    assert.ok(!this.queues.has(queueId), `replicated queue ${queueId} opened twice`);
    assert.ok(Number.isSafeInteger(nextOffset) && nextOffset >= 0, `replicated queue ${queueId}: bad nextOffset ${nextOffset}`);
    this.queues.set(queueId, { nextOffset, committed: nextOffset - 1, pending: [], pendingHead: 0, settles: [], delivered: [] });
    const held = this.early.get(queueId);
    if (held === undefined) return;
    this.early.delete(queueId);
    for (const body of held.records) {
      this.earlyBytes -= body.length;
      this.applyImport(new RecordReader(body));
    }
    const e = newPagedEntry();
    while (held.paged?.shift(e) === true) this.host.importPaged(queueId, e);
  }

  /** A published message: logged through the replicator now, queued once committed. */
  enqueue(queueId: number, m: Message): Pending {
    const s = this.state(queueId);
    const h = this.head;
    h.writeUInt32LE(queueId, 0);
    h[4] = LogKind.enqueue;
    encodeEnqueueHeader(h.subarray(5), queueId, m.id, m.expiresAtMs);
    this.out.write2(ToReplicator.append, h, m.payload);
    const p: Pending = { offset: s.nextOffset++, m, gate: undefined };
    s.pending.push(p);
    return p;
  }

  settle(queueId: number, msgId: number): void {
    this.queues.get(queueId)?.settles.push(msgId);
  }

  delivered(queueId: number, msgId: number): void {
    this.queues.get(queueId)?.delivered.push(msgId);
  }

  /** The queue was deleted: followers delete their copies when this record reaches them. */
  deleteQueue(queueId: number): void {
    const s = this.queues.get(queueId);
    if (s === undefined) return;
    this.flushQueue(queueId, s);
    this.w.reset().u32(queueId).u8(LogKind.queueDelete).u32(queueId);
    this.out.write(ToReplicator.append, this.w.view());
    this.drop(queueId, s, true);
  }

  /** This node no longer leads the queue: nothing more is logged, and what waited for a commit is refused. */
  forget(queueId: number): void {
    const s = this.queues.get(queueId);
    if (s !== undefined) this.drop(queueId, s, false);
    const held = this.early.get(queueId);
    if (held === undefined) return;
    this.early.delete(queueId);
    for (const body of held.records) this.earlyBytes -= body.length;
    const e = newPagedEntry();
    while (held.paged?.shift(e) === true) this.host.dropHeld(e);
  }

  private drop(queueId: number, s: QueueReplication, ok: boolean): void {
    for (let i = s.pendingHead; i < s.pending.length; i++) {
      const g = s.pending[i]?.gate;
      if (g !== undefined) this.host.releaseGate(g, ok);
    }
    this.queues.delete(queueId);
  }

  /** At the end of each ring batch: the batched settle and delivered records, then one ring publish. */
  flush(): void {
    for (const [queueId, s] of this.queues) this.flushQueue(queueId, s);
    this.out.flush();
  }

  private flushQueue(queueId: number, s: QueueReplication): void {
    if (s.delivered.length > 0) {
      this.appendIds(queueId, LogKind.delivered, s.delivered);
      s.nextOffset++;
      s.delivered = [];
    }
    if (s.settles.length > 0) {
      this.appendIds(queueId, LogKind.settle, s.settles);
      s.nextOffset++;
      s.settles = [];
    }
  }

  private appendIds(queueId: number, kind: number, ids: number[]): void {
    this.w.reset().u32(queueId).u8(kind);
    this.out.write2(ToReplicator.append, this.w.view(), encodeIdList(queueId, ids));
  }

  /** A record from the replicator. */
  onRecord(kind: number, body: Buffer): void {
    const r = new RecordReader(body);
    if (kind === FromReplicator.commit) this.onCommit(r.u32(), r.f64());
    else if (kind === FromReplicator.import) {
      const queueId = body.readUInt32LE(0);
      if (this.queues.has(queueId)) this.applyImport(r);
      else this.holdImport(queueId, r, body);
    } else if (kind === FromReplicator.leadReady) {
      const queueId = r.u32();
      this.host.log('info', `replicated queue ${queueId}: imported, its log continues at offset ${r.f64()}`);
    } else assert.fail(`unknown record kind ${kind} from the replicator`);
  }

  /**
   * Every imported message is marked redelivered, whatever its log says: the node that led the
   * queue before may have delivered it after its last `delivered` record reached this log (it
   * delivers at commit, and replicates that record a batch later). AMQP's redelivered means
   * "may have been delivered", and a consumer must see it on every message it may have seen.
   */
  private applyImport(r: RecordReader): void {
    const queueId = r.u32();
    r.f64(); // the record's offset: informative, imports are already committed
    r.u8(); // the log's own delivered flag: a lower bound only (see above)
    const rec = r.buf.subarray(r.pos);
    this.host.importMessage(queueId, rec.readDoubleLE(4), rec.readDoubleLE(12), true, Buffer.from(rec.subarray(enqueueHeaderBytes)));
  }

  /** An import before its queue: kept in memory, or on disk past the budget (redelivered, as applyImport says). */
  private holdImport(queueId: number, r: RecordReader, body: Buffer): void {
    let held = this.early.get(queueId);
    if (held === undefined) this.early.set(queueId, (held = { records: [], paged: undefined }));
    r.u32();
    r.f64();
    r.u8();
    const rec = r.buf.subarray(r.pos);
    const payload = rec.subarray(enqueueHeaderBytes); // a view of the ring: copied to the log or below
    const e = this.host.holdImport(queueId, rec.readDoubleLE(4), rec.readDoubleLE(12), true, payload, this.earlyBytes, held.paged !== undefined);
    if (e !== undefined) (held.paged ??= new PagedTail()).append(e);
    else {
      held.records.push(Buffer.from(body));
      this.earlyBytes += body.length;
    }
  }

  private onCommit(queueId: number, offset: number): void {
    const s = this.queues.get(queueId);
    if (s === undefined || offset <= s.committed) return;
    s.committed = offset;
    let i = s.pendingHead;
    for (; i < s.pending.length; i++) {
      const p = s.pending[i] as Pending;
      if (p.offset > offset) break;
      s.pending[i] = undefined;
      const accepted = this.host.accept(queueId, p.m);
      if (!accepted) s.settles.push(p.m.id); // refused (overflow): its enqueue is logged, so is its end
      if (p.gate !== undefined) this.host.releaseGate(p.gate, accepted);
    }
    s.pendingHead = i;
    if (i > 1024 && i * 2 > s.pending.length) {
      s.pending.splice(0, i);
      s.pendingHead = 0;
    }
  }

  private state(queueId: number): QueueReplication {
    const s = this.queues.get(queueId);
    assert.ok(s !== undefined, `queue ${queueId} is not a replicated queue of this shard`);
    return s;
  }
}
