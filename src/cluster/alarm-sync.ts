/**
 * Cluster-wide resource alarms: RabbitMQ blocks every publisher of the cluster while any node
 * has a memory or disk alarm, since a publish on one node may land on another's queues. Each
 * node writes the alarms it has to `alarms/<node>` (a JSON list of resources, the key deleted
 * when there are none) and watches the prefix; another node's alarms hold this node's
 * publishers too. A key counts only while its node is a member, so a node that died with an
 * alarm set does not block the cluster once it has gone, and one that starts again rewrites
 * its key first.
 */
import type { Namespace } from 'etcd3';
import type { Logger } from '../node/logger.js';
import type { AlarmResource } from '../front/resource-alarms.js';
import { alarmKey, alarmsPrefix, nodeOfKey } from './etcd-keys.js';
import { PrefixMirror, kvText, type KeyChange } from './etcd-watch.js';

/** A failed write of this node's alarms is tried again after this, doubling up to the max. */
const retryMsFirst = 250;
const retryMsMax = 5_000;

export interface NodeAlarm {
  node: string;
  resource: AlarmResource;
}

function parseResources(text: string): AlarmResource[] | undefined {
  try {
    const v: unknown = JSON.parse(text);
    if (Array.isArray(v) && v.every((r) => r === 'memory' || r === 'disk')) return v as AlarmResource[];
  } catch {
    // reported by the caller
  }
  return undefined;
}

export class AlarmSync {
  private readonly byNode = new Map<string, AlarmResource[]>();
  private mirror: PrefixMirror | undefined;
  /** This node's alarms as they should stand in etcd; written until a write succeeds. */
  private desired: readonly AlarmResource[] = [];
  /** The write in flight; one at a time, each writing the latest desired state. */
  private writing: Promise<void> | undefined;
  private dirty = false;
  private retryMs = retryMsFirst;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly ns: Namespace,
    private readonly nodeName: string,
    private readonly isMember: (node: string) => boolean,
    /** The other nodes' alarms now in effect (empty: none). */
    private readonly onChange: (alarms: NodeAlarm[]) => void,
    private readonly log: Logger,
  ) {}

  /** Follows the other nodes' alarms (call publish([]) before joining, so no key of an earlier run counts). */
  async start(): Promise<void> {
    this.mirror = await PrefixMirror.open(this.ns, alarmsPrefix, (changes) => this.onChanges(changes), { replay: true, log: this.log });
  }

  /**
   * This node's alarms are now `resources`. Resolves after the first attempt to write them; a
   * failed write is retried with backoff until one succeeds (a later call's state replaces it),
   * so a cleared alarm cannot stay behind in etcd and hold the cluster's publishers.
   */
  publish(resources: readonly AlarmResource[]): Promise<void> {
    this.desired = [...resources];
    this.dirty = true;
    return this.flush();
  }

  /** Writes the desired state again (after the node's lease came back, say). */
  republish(): void {
    this.dirty = true;
    void this.flush();
  }

  private flush(): Promise<void> {
    if (this.writing !== undefined) return this.writing;
    if (!this.dirty || this.closed) return Promise.resolve();
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.dirty = false;
    const resources = this.desired;
    const key = alarmKey(this.nodeName);
    this.writing = (async () => {
      try {
        if (resources.length === 0) await this.ns.delete().key(key).exec();
        else await this.ns.put(key).value(JSON.stringify(resources)).exec();
        this.retryMs = retryMsFirst;
      } catch (e: unknown) {
        this.dirty = true;
        this.log.warn(`could not tell the cluster of this node's resource alarms [${resources.join(', ')}]: ${e instanceof Error ? e.message : String(e)}; trying again in ${this.retryMs} ms`);
        if (!this.closed) this.retryTimer = setTimeout(() => void this.flush(), this.retryMs);
        this.retryMs = Math.min(retryMsMax, this.retryMs * 2);
      } finally {
        this.writing = undefined;
      }
      // A publish() during the write: its state goes now.
      if (this.dirty && this.retryTimer === undefined) await this.flush();
    })();
    return this.writing;
  }

  /** Membership changed: a departed node's alarms stop counting, a returning one's count again. */
  membersChanged(): void {
    if (this.mirror !== undefined) this.emit();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    await this.mirror?.close();
    await this.writing;
  }

  private onChanges(changes: KeyChange[]): void {
    for (const c of changes) {
      const node = nodeOfKey(alarmsPrefix, c.key);
      if (node === undefined || node === this.nodeName) continue;
      if (c.value === undefined) {
        this.byNode.delete(node);
        continue;
      }
      const resources = parseResources(kvText(c.value));
      if (resources === undefined) {
        this.log.warn(`ignoring a malformed alarm record under '${c.key}': ${kvText(c.value).slice(0, 200)}`);
        continue;
      }
      if (resources.length === 0) this.byNode.delete(node);
      else this.byNode.set(node, resources);
    }
    this.emit();
  }

  private emit(): void {
    const alarms: NodeAlarm[] = [];
    for (const [node, resources] of this.byNode) {
      if (this.isMember(node)) for (const resource of resources) alarms.push({ node, resource });
    }
    this.onChange(alarms);
  }
}
