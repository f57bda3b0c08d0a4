/**
 * A local mirror of every key under one etcd prefix, kept current by a watch, with no gap
 * between the initial read and the watch: the watch starts at the revision right after the
 * read. Each watch response (one or more etcd revisions) becomes one batch of changes, handed
 * to the owner in order — the next batch is not delivered until the owner's (possibly async)
 * handler has finished with the previous one.
 *
 * When etcd cancels the watch (its revision was compacted, or the watch was refused) the
 * mirror reads the prefix again, delivers the difference as one batch, and watches on from
 * there, so the owner never misses a change, it only sees several folded into one.
 */
import type { IKeyValue, Namespace, Watcher } from 'etcd3';
import type { Logger } from '../node/logger.js';

export interface KeyChange {
  key: string;
  /** The key's new state; undefined when it was deleted. */
  value: IKeyValue | undefined;
  /** Its state before this change; undefined when it did not exist. */
  previous: IKeyValue | undefined;
}

export type BatchHandler = (changes: KeyChange[]) => void | Promise<void>;

/** After a failed re-read of the prefix (etcd unreachable), try again after this long. */
const resyncRetryMs = 250;

export function kvText(kv: IKeyValue): string {
  return kv.value.toString('utf8');
}

export class PrefixMirror {
  private readonly kvs = new Map<string, IKeyValue>();
  private watcher: Watcher | undefined;
  private delivering: Promise<void> = Promise.resolve();
  private closed = false;
  private resyncTimer: NodeJS.Timeout | undefined;
  /** The etcd revision the mirror reflects (the highest it has read or been told of). */
  revision = 0;

  private constructor(
    private readonly ns: Namespace,
    private readonly prefix: string,
    private readonly onBatch: BatchHandler,
    private readonly log: Logger | undefined,
  ) {}

  /**
   * Reads the prefix, then watches it. With `replay`, the keys already there are delivered as
   * the first batch (as if each had just been put); without it, only later changes are.
   */
  static async open(ns: Namespace, prefix: string, onBatch: BatchHandler, opts: { replay: boolean; log?: Logger }): Promise<PrefixMirror> {
    const m = new PrefixMirror(ns, prefix, onBatch, opts.log);
    const first = await m.read();
    for (const kv of first.kvs) m.kvs.set(kv.key.toString('utf8'), kv);
    m.revision = first.revision;
    if (opts.replay && first.kvs.length > 0) {
      m.deliver(first.kvs.map((kv) => ({ key: kv.key.toString('utf8'), value: kv, previous: undefined })));
    }
    await m.startWatch();
    return m;
  }

  get(key: string): IKeyValue | undefined {
    return this.kvs.get(key);
  }

  /** Keys and values in key order (as etcd sorts them). */
  entries(): [string, IKeyValue][] {
    return [...this.kvs.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  get size(): number {
    return this.kvs.size;
  }

  /** Resolves when every batch delivered so far has been handled. */
  settled(): Promise<void> {
    return this.delivering;
  }

  /** Runs fn after every batch delivered so far has been handled, and before any later one. */
  runInOrder(fn: () => void | Promise<void>): Promise<void> {
    const run = this.delivering.then(fn);
    this.delivering = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.resyncTimer);
    const w = this.watcher;
    this.watcher = undefined;
    if (w !== undefined) await w.cancel().catch(() => undefined);
    await this.delivering;
  }

  private async read(): Promise<{ kvs: IKeyValue[]; revision: number }> {
    const res = await this.ns.getAll().prefix(this.prefix).exec();
    return { kvs: res.kvs, revision: Number(res.header.revision) };
  }

  private async startWatch(): Promise<void> {
    const w = this.ns.watch().prefix(this.prefix).startRevision(String(this.revision + 1)).watcher();
    this.watcher = w;
    w.on('data', (res) => {
      if (this.watcher !== w || this.closed) return;
      const changes: KeyChange[] = [];
      for (const ev of res.events) {
        const key = ev.kv.key.toString('utf8');
        const previous = this.kvs.get(key);
        if (ev.type === 'Delete') {
          this.kvs.delete(key);
          changes.push({ key, value: undefined, previous });
        } else {
          this.kvs.set(key, ev.kv);
          changes.push({ key, value: ev.kv, previous });
        }
      }
      this.revision = Math.max(this.revision, Number(res.header.revision));
      if (changes.length > 0) this.deliver(changes);
    });
    w.on('error', (err) => {
      if (this.watcher !== w || this.closed) return;
      this.log?.warn(`etcd watch of '${this.prefix}' was cancelled (${err.message}); reading it again`);
      this.watcher = undefined;
      void w.cancel().catch(() => undefined);
      this.resync();
    });
    await new Promise<void>((resolve) => {
      // 'connected' means etcd has registered the watch: from here no change is missed.
      w.once('connected', () => resolve());
      w.once('error', () => resolve());
    });
  }

  /** Reads the prefix again, delivers what changed while the watch was down, and watches on. */
  private resync(): void {
    if (this.closed) return;
    this.read().then(
      async ({ kvs, revision }) => {
        if (this.closed) return;
        const now = new Map(kvs.map((kv) => [kv.key.toString('utf8'), kv] as const));
        const changes: KeyChange[] = [];
        for (const [key, previous] of this.kvs) if (!now.has(key)) changes.push({ key, value: undefined, previous });
        for (const [key, kv] of now) {
          const previous = this.kvs.get(key);
          if (previous === undefined || previous.mod_revision !== kv.mod_revision) changes.push({ key, value: kv, previous });
        }
        this.kvs.clear();
        for (const [key, kv] of now) this.kvs.set(key, kv);
        this.revision = revision;
        if (changes.length > 0) this.deliver(changes);
        await this.startWatch();
      },
      (err: unknown) => {
        this.log?.warn(`could not read '${this.prefix}' from etcd (${err instanceof Error ? err.message : String(err)}); retrying`);
        this.resyncTimer = setTimeout(() => this.resync(), resyncRetryMs);
      },
    );
  }

  private deliver(changes: KeyChange[]): void {
    this.delivering = this.delivering.then(async () => {
      if (this.closed) return;
      try {
        await this.onBatch(changes);
      } catch (err: unknown) {
        this.log?.error(`handler of etcd changes under '${this.prefix}' failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
      }
    });
  }
}
