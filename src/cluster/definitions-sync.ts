/**
 * Durable definitions shared through etcd, one key per object (etcd-keys.ts), so a change on
 * one node is a small transaction and every node applies the changes in etcd's order.
 *
 * The owner (the node) hands in its whole document after a local change — `publish(defs)` —
 * and is handed the whole cluster document after each batch of remote changes — `watch`. Pure
 * data in and out: nothing here knows the Broker.
 *
 * What publish writes is the difference between the document it is given and the document the
 * owner is known to hold (the last one delivered to it, or published by it), not the difference
 * against etcd: a queue another node declared a moment ago is in etcd but not yet in the owner's
 * document, and must not be deleted because of that. Writes that etcd has accepted but the watch
 * has not yet reported are laid over every document delivered meanwhile, so the owner is never
 * handed a document that lacks its own latest change.
 */
import { createHash } from 'node:crypto';
import type { IRequestOp, Namespace } from 'etcd3';
import type { Definitions, PolicyDef } from '../front/definitions.js';
import type { Logger } from '../node/logger.js';
import { defKey, defKindOfKey, defKinds, defsPrefix, type DefKind } from './etcd-keys.js';
import { kvText, PrefixMirror } from './etcd-watch.js';

/** etcd refuses a transaction with more operations than its --max-txn-ops (default 128). */
export const txnOpsMax = 128;
/** …and a request larger than --max-request-bytes (default 1.5 MiB); keep well under it. */
export const txnBytesMax = 1024 * 1024;

type Lists = {
  [K in DefKind]-?: NonNullable<Definitions[K]>;
};
type Item<K extends DefKind> = Lists[K][number];

/** JSON with object keys sorted, so two equal definitions always give the same text. */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(sortKeys(v));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (typeof v !== 'object' || v === null) return v;
  const o = v as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(o).sort()) if (o[k] !== undefined) out[k] = sortKeys(o[k]);
  return out;
}

type Binding = Item<'bindings'>;

/** A binding has no name: its key is a hash of everything that makes it distinct. */
export function bindingHash(b: Binding): string {
  const identity = canonicalJson([b.source, b.destination_type, b.destination, b.routing_key, b.arguments ?? {}]);
  return createHash('sha256').update(identity).digest('hex');
}

function keyOf<K extends DefKind>(kind: K, item: Item<K>): string {
  switch (kind) {
    case 'vhosts':
      return defKey(kind, (item as Item<'vhosts'>).name);
    case 'users':
      return defKey(kind, (item as Item<'users'>).name);
    case 'permissions': {
      const p = item as Item<'permissions'>;
      return defKey(kind, p.vhost, p.user);
    }
    case 'policies': {
      const p = item as PolicyDef;
      return defKey(kind, p.vhost, p.name);
    }
    case 'exchanges': {
      const e = item as Item<'exchanges'>;
      return defKey(kind, e.vhost, e.name);
    }
    case 'queues': {
      const q = item as Item<'queues'>;
      return defKey(kind, q.vhost, q.name);
    }
    case 'bindings': {
      const b = item as Binding;
      return defKey(kind, b.vhost, bindingHash(b));
    }
  }
  throw new RangeError(`unknown definition kind '${String(kind)}'`);
}

/** The document as etcd keys and canonical JSON values (only the seven stored kinds). */
export function definitionKeys(defs: Definitions): Map<string, string> {
  const out = new Map<string, string>();
  for (const kind of defKinds) {
    const list = defs[kind];
    if (list === undefined) continue;
    for (const item of list as Item<typeof kind>[]) out.set(keyOf(kind, item), canonicalJson(item));
  }
  return out;
}

/** The document held by a set of keys (each kind's list in key order; malformed values skipped). */
export function definitionsOf(entries: Iterable<[string, string]>, log?: Logger): Definitions {
  const lists: Lists = { vhosts: [], users: [], permissions: [], policies: [], exchanges: [], queues: [], bindings: [] };
  const sorted = [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [key, text] of sorted) {
    const kind = defKindOfKey(key);
    if (kind === undefined) continue;
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      log?.warn(`ignoring a malformed definition under '${key}'`);
      continue;
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      log?.warn(`ignoring a definition under '${key}' that is not an object`);
      continue;
    }
    (lists[kind] as unknown[]).push(v);
  }
  return { ...lists };
}

export interface PublishResult {
  puts: number;
  deletes: number;
  /** etcd revision of the last transaction written (0 if nothing had to be written). */
  revision: number;
}

/** A write of ours: value undefined = delete; revision Infinity until etcd has answered. */
interface PendingWrite {
  value: string | undefined;
  revision: number;
}

export class DefinitionsSync {
  private mirror: PrefixMirror | undefined;
  private opening: Promise<PrefixMirror> | undefined;
  /** The document the owner holds, as keys: the last delivered to it or published by it. */
  private held = new Map<string, string>();
  private readonly pending = new Map<string, PendingWrite>();
  private publishing: Promise<unknown> = Promise.resolve();
  private onChange: ((defs: Definitions) => void | Promise<void>) | undefined;
  private deliveredRevision = -1;

  constructor(
    private readonly ns: Namespace,
    private readonly log?: Logger,
  ) {}

  /** Reads the cluster's definitions (and starts following them); the owner now holds this document. */
  async load(): Promise<Definitions> {
    const mirror = await this.open();
    const keys = this.currentKeys(mirror);
    this.held = keys;
    this.deliveredRevision = mirror.revision;
    return definitionsOf(keys, this.log);
  }

  /**
   * Calls onChange with the whole current document after each batch of changes, in order, one
   * call at a time (an async onChange is awaited). The owner is taken to hold a document once
   * onChange returns; if it throws, it is taken to still hold the previous one. Changes made since
   * load() are delivered at once.
   */
  async watch(onChange: (defs: Definitions) => void | Promise<void>): Promise<void> {
    if (this.onChange !== undefined) throw new Error('DefinitionsSync.watch may be called once');
    this.onChange = onChange;
    const mirror = await this.open();
    await mirror.runInOrder(() => this.afterBatch());
  }

  /**
   * Writes the difference between defs and the document the owner holds: changed or new objects
   * are put, objects it no longer has are deleted, in transactions of at most txnOpsMax
   * operations. Calls are applied in call order. The difference is taken when publish is called
   * (before it awaits anything), so call it right after the local change.
   */
  publish(defs: Definitions): Promise<PublishResult> {
    const mirror = this.mirror;
    if (mirror === undefined) return Promise.reject(new Error('DefinitionsSync.publish before load()'));
    const desired = definitionKeys(defs);
    // What the cluster already has (etcd plus our writes in flight) is not written again: two
    // nodes declaring the same queue make one revision, not two.
    const cluster = this.currentKeys(mirror);
    const writes: [string, string | undefined][] = [];
    for (const [key, value] of desired) if (this.held.get(key) !== value && cluster.get(key) !== value) writes.push([key, value]);
    for (const key of this.held.keys()) if (!desired.has(key) && cluster.has(key)) writes.push([key, undefined]);
    this.held = desired;
    const mine: PendingWrite[] = [];
    for (const [key, value] of writes) {
      const w: PendingWrite = { value, revision: Infinity };
      this.pending.set(key, w);
      mine.push(w);
    }
    const run = async (): Promise<PublishResult> => {
      let revision = 0;
      try {
        for (const chunk of chunks(writes)) {
          const ops: IRequestOp[] = [];
          for (const [key, value] of chunk) {
            ops.push(value === undefined ? await this.ns.delete().key(key).op() : await this.ns.put(key).value(value).op());
          }
          const res = await this.ns.kv.txn({ compare: [], success: ops, failure: [] });
          revision = Number(res.header.revision);
          for (const [key] of chunk) {
            const w = this.pending.get(key);
            if (w !== undefined && mine.includes(w)) w.revision = revision;
          }
        }
      } catch (err: unknown) {
        for (const [key] of writes) {
          const w = this.pending.get(key);
          if (w !== undefined && mine.includes(w)) this.pending.delete(key);
        }
        throw err;
      }
      this.dropSeen(mirror.revision);
      return { puts: writes.filter(([, v]) => v !== undefined).length, deletes: writes.filter(([, v]) => v === undefined).length, revision };
    };
    const result = this.publishing.then(run, run);
    this.publishing = result.catch(() => undefined);
    return result;
  }

  /** The current cluster document as this node sees it (etcd's state plus its own writes in flight). */
  current(): Definitions {
    if (this.mirror === undefined) throw new Error('DefinitionsSync.current before load()');
    return definitionsOf(this.currentKeys(this.mirror), this.log);
  }

  /** etcd revision of the document last delivered to onChange. */
  get revision(): number {
    return this.deliveredRevision;
  }

  /** Resolves when every change received so far has been delivered. */
  settled(): Promise<void> {
    return this.mirror?.settled() ?? Promise.resolve();
  }

  async close(): Promise<void> {
    await this.publishing;
    await this.mirror?.close();
  }

  private open(): Promise<PrefixMirror> {
    this.opening ??= PrefixMirror.open(this.ns, defsPrefix, () => this.afterBatch(), { replay: false, ...(this.log === undefined ? {} : { log: this.log }) }).then((m) => {
      this.mirror = m;
      return m;
    });
    return this.opening;
  }

  private async afterBatch(): Promise<void> {
    const mirror = this.mirror;
    if (mirror === undefined || this.onChange === undefined) return;
    if (mirror.revision === this.deliveredRevision) return;
    await this.deliver(mirror);
  }

  private async deliver(mirror: PrefixMirror): Promise<void> {
    const onChange = this.onChange;
    if (onChange === undefined) return;
    this.dropSeen(mirror.revision);
    const revision = mirror.revision;
    const keys = this.currentKeys(mirror);
    this.deliveredRevision = revision;
    await onChange(definitionsOf(keys, this.log));
    this.held = keys;
  }

  private currentKeys(mirror: PrefixMirror): Map<string, string> {
    const keys = new Map<string, string>();
    for (const [key, kv] of mirror.entries()) keys.set(key, kvText(kv));
    for (const [key, w] of this.pending) {
      if (w.value === undefined) keys.delete(key);
      else keys.set(key, w.value);
    }
    return keys;
  }

  /** Forgets our writes the watch has reported (they are in the mirror now, or overwritten). */
  private dropSeen(mirrorRevision: number): void {
    for (const [key, w] of this.pending) if (w.revision <= mirrorRevision) this.pending.delete(key);
  }
}

function* chunks(writes: [string, string | undefined][]): Generator<[string, string | undefined][]> {
  let chunk: [string, string | undefined][] = [];
  let bytes = 0;
  for (const w of writes) {
    const size = w[0].length + (w[1]?.length ?? 0);
    if (chunk.length > 0 && (chunk.length === txnOpsMax || bytes + size > txnBytesMax)) {
      yield chunk;
      chunk = [];
      bytes = 0;
    }
    chunk.push(w);
    bytes += size;
  }
  if (chunk.length > 0) yield chunk;
}
