/**
 * Where each replicated queue lives: its leader, members, in-sync set (ISR) and leader epoch,
 * one etcd key per queue (etcd-keys.ts). The queue's cluster-wide id is the key's
 * create_revision, so it is unique, never reused, and agreed by every node without a counter;
 * it is not stored in the value, it is attached on every read. So is `version`, the key's
 * mod_revision, which a strict compare-and-set names.
 *
 * Fencing: every change is a transaction that only succeeds if the record is still the one the
 * writer read. A deposed leader (or a second controller) holding epoch e therefore cannot move a
 * record that is already at epoch e+1 — compareAndSet answers false and changes nothing.
 */
import type { IKeyValue, Namespace } from 'etcd3';
import type { Logger } from '../node/logger.js';
import { parsePlacementKey, placementKey, placementPrefix } from './etcd-keys.js';
import { kvText, PrefixMirror } from './etcd-watch.js';
import type { Closer } from './control-plane.js';

export type QueueKind = 'quorum' | 'mirrored' | 'classic';

/** How the queue was declared, so every node can create its view of it (arguments as JSON, as in definitions). */
export interface QueueDecl {
  durable: boolean;
  exclusive: boolean;
  autoDelete: boolean;
  arguments: Record<string, unknown>;
  /** The node whose connection owns an exclusive queue. */
  owner?: string | undefined;
}

/** A placement as written (no id, no version: etcd supplies those). */
export interface PlacementSpec {
  type: QueueKind;
  leader: string;
  members: string[];
  isr: string[];
  epoch: number;
  minInsync: number;
  queue?: QueueDecl | undefined;
  /**
   * Set by a membership change (membership.ts) and cleared by the queue's leader once its
   * replicator counts acks by the new members: until then the leader may still commit by the
   * previous member set, so a second change waits (one step at a time keeps every majority of
   * the old set overlapping every majority of the new one).
   */
  membersPending?: boolean | undefined;
}

function parseDecl(v: unknown): QueueDecl | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const args = o['arguments'];
  if (typeof o['durable'] !== 'boolean' || typeof o['exclusive'] !== 'boolean' || typeof o['autoDelete'] !== 'boolean') return undefined;
  if (typeof args !== 'object' || args === null || Array.isArray(args)) return undefined;
  const owner = o['owner'];
  return { durable: o['durable'], exclusive: o['exclusive'], autoDelete: o['autoDelete'], arguments: args as Record<string, unknown>, owner: typeof owner === 'string' ? owner : undefined };
}

export interface Placement extends PlacementSpec {
  /** Cluster-wide queue id: the placement key's create_revision (fits u32; node-local ids start at 2^31). */
  id: number;
  /** The key's mod_revision: changes with every write, for a strict compareAndSet. */
  version: number;
}

export interface PlacedQueue {
  vhost: string;
  name: string;
  placement: Placement;
}

/** Node-local (non-replicated, non-durable) queues take ids from here up; placement ids stay below. */
export const localQueueIdBase = 2 ** 31;

export class PlacementError extends Error {}

const queueKinds: readonly QueueKind[] = ['quorum', 'mirrored', 'classic'];

function isStringList(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((s) => typeof s === 'string');
}

export function parsePlacement(kv: IKeyValue): Placement | undefined {
  let v: unknown;
  try {
    v = JSON.parse(kvText(kv));
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const type = queueKinds.find((k) => k === o['type']);
  const { leader, members, isr, epoch, minInsync } = o;
  if (type === undefined || typeof leader !== 'string' || !isStringList(members) || !isStringList(isr)) return undefined;
  if (typeof epoch !== 'number' || typeof minInsync !== 'number') return undefined;
  const id = Number(kv.create_revision);
  if (id >= localQueueIdBase) throw new PlacementError(`placement id ${id} reached the node-local id range (${localQueueIdBase})`);
  const queue = parseDecl(o['queue']);
  const pending = o['membersPending'] === true ? { membersPending: true } : {};
  return { id, version: Number(kv.mod_revision), type, leader, members, isr, epoch, minInsync, ...(queue === undefined ? {} : { queue }), ...pending };
}

function specText(p: PlacementSpec): string {
  const spec: PlacementSpec = { type: p.type, leader: p.leader, members: p.members, isr: p.isr, epoch: p.epoch, minInsync: p.minInsync, queue: p.queue };
  if (p.membersPending === true) spec.membersPending = true;
  return JSON.stringify(spec);
}

function checkSpec(p: PlacementSpec): void {
  if (!Number.isSafeInteger(p.epoch) || p.epoch < 0) throw new PlacementError(`epoch must be a non-negative integer, got ${p.epoch}`);
  if (p.members.length === 0 || new Set(p.members).size !== p.members.length) throw new PlacementError(`members must be distinct and at least one, got [${p.members.join(', ')}]`);
  if (!p.members.includes(p.leader)) throw new PlacementError(`leader '${p.leader}' is not among the members [${p.members.join(', ')}]`);
  for (const n of p.isr) if (!p.members.includes(n)) throw new PlacementError(`in-sync node '${n}' is not among the members [${p.members.join(', ')}]`);
}

export class PlacementStore {
  constructor(
    private readonly ns: Namespace,
    private readonly log?: Logger,
  ) {}

  /** Writes the placement unless the queue already has one; either way returns the stored one. */
  async create(vhost: string, name: string, spec: PlacementSpec): Promise<Placement> {
    checkSpec(spec);
    const key = placementKey(vhost, name);
    const res = await this.ns
      .if(key, 'Create', '==', 0)
      .then(this.ns.put(key).value(specText(spec)))
      .else(this.ns.get(key))
      .commit();
    if (!res.succeeded) {
      const kv = res.responses[0]?.response_range.kvs[0];
      if (kv !== undefined) return this.parsed(key, kv);
      // Deleted between the compare and the read: try again.
      return this.create(vhost, name, spec);
    }
    const revision = Number(res.header.revision);
    return { ...spec, id: revision, version: revision };
  }

  async get(vhost: string, name: string): Promise<Placement | undefined> {
    const key = placementKey(vhost, name);
    const res = await this.ns.get(key).exec();
    const kv = res.kvs[0];
    return kv === undefined ? undefined : this.parsed(key, kv);
  }

  async list(): Promise<PlacedQueue[]> {
    const res = await this.ns.getAll().prefix(placementPrefix).exec();
    const out: PlacedQueue[] = [];
    for (const kv of res.kvs) {
      const q = this.placed(kv);
      if (q !== undefined) out.push(q);
    }
    return out;
  }

  /**
   * Calls cb for each change, in etcd order: the new placement, or undefined when the queue's
   * placement was removed. With replay, first once for every existing placement.
   */
  async watch(cb: (vhost: string, name: string, placement: Placement | undefined) => void | Promise<void>, opts: { replay: boolean } = { replay: false }): Promise<Closer> {
    return PrefixMirror.open(
      this.ns,
      placementPrefix,
      async (changes) => {
        for (const c of changes) {
          const id = parsePlacementKey(c.key);
          if (id === undefined) continue;
          if (c.value === undefined) {
            await cb(id.vhost, id.name, undefined);
          } else {
            const q = this.placed(c.value);
            if (q !== undefined) await cb(q.vhost, q.name, q.placement);
          }
        }
      },
      { replay: opts.replay, ...(this.log === undefined ? {} : { log: this.log }) },
    );
  }

  /**
   * Replaces the placement with next only if its epoch is still expectedEpoch (and, with
   * expectedVersion, only if it was not written at all since that version was read). Answers
   * false, changing nothing, if the record moved on or is gone. The epoch never goes back.
   *
   * Without expectedVersion, a write that changed the record but kept the epoch (an ISR change)
   * does not make this fail; pass the version read with the placement when that matters.
   */
  async compareAndSet(vhost: string, name: string, expectedEpoch: number, next: PlacementSpec, opts: { expectedVersion?: number } = {}): Promise<boolean> {
    checkSpec(next);
    if (next.epoch < expectedEpoch) throw new PlacementError(`an epoch never goes back: ${expectedEpoch} → ${next.epoch}`);
    const key = placementKey(vhost, name);
    for (;;) {
      let version = opts.expectedVersion;
      if (version === undefined) {
        const cur = await this.get(vhost, name);
        if (cur === undefined || cur.epoch !== expectedEpoch) return false;
        version = cur.version;
      }
      const res = await this.ns.if(key, 'Mod', '==', version).then(this.ns.put(key).value(specText(next))).commit();
      if (res.succeeded) return true;
      // With a version named by the caller, any write in between is a refusal; with only an
      // epoch, read again: the epoch may still be the expected one.
      if (opts.expectedVersion !== undefined) return false;
    }
  }

  /** Removes the queue's placement (queue deleted). With expectedEpoch, only if still at that epoch. */
  async remove(vhost: string, name: string, expectedEpoch?: number): Promise<boolean> {
    const key = placementKey(vhost, name);
    if (expectedEpoch === undefined) {
      const res = await this.ns.delete().key(key).exec();
      return Number(res.deleted) > 0;
    }
    const cur = await this.get(vhost, name);
    if (cur === undefined || cur.epoch !== expectedEpoch) return false;
    const res = await this.ns.if(key, 'Mod', '==', cur.version).then(this.ns.delete().key(key)).commit();
    return res.succeeded;
  }

  private parsed(key: string, kv: IKeyValue): Placement {
    const p = parsePlacement(kv);
    if (p === undefined) throw new PlacementError(`malformed placement under '${key}': ${kvText(kv)}`);
    return p;
  }

  private placed(kv: IKeyValue): PlacedQueue | undefined {
    const key = kv.key.toString('utf8');
    const id = parsePlacementKey(key);
    const p = parsePlacement(kv);
    if (id === undefined || p === undefined) {
      this.log?.warn(`ignoring a malformed placement under '${key}'`);
      return undefined;
    }
    return { vhost: id.vhost, name: id.name, placement: p };
  }
}

/**
 * Picks count nodes for a new queue: the preferred node first (if it is one of them, e.g. the
 * node the client declared on), then the least loaded, ties by name so every node would pick the
 * same. The first is the leader. Never more than there are nodes.
 */
export function chooseMembers(nodes: readonly string[], load: ReadonlyMap<string, number>, count: number, preferred?: string): string[] {
  if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`a queue needs at least one member, asked for ${count}`);
  const unique = [...new Set(nodes)];
  const chosen: string[] = [];
  if (preferred !== undefined && unique.includes(preferred)) chosen.push(preferred);
  const rest = unique
    .filter((n) => n !== preferred)
    .sort((a, b) => (load.get(a) ?? 0) - (load.get(b) ?? 0) || (a < b ? -1 : a > b ? 1 : 0));
  for (const n of rest) {
    if (chosen.length >= count) break;
    chosen.push(n);
  }
  return chosen.slice(0, count);
}

/** How many replicas each node holds (a leader counts as one more: it does the most work). */
export function nodeLoad(placements: Iterable<PlacementSpec>): Map<string, number> {
  const load = new Map<string, number>();
  for (const p of placements) {
    for (const n of p.members) load.set(n, (load.get(n) ?? 0) + 1);
    load.set(p.leader, (load.get(p.leader) ?? 0) + 1);
  }
  return load;
}
