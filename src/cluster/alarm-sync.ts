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
  /** Writes in order: a clear must not overtake the set it clears. */
  private writes: Promise<void> = Promise.resolve();

  constructor(
    private readonly ns: Namespace,
    private readonly nodeName: string,
    private readonly isMember: (node: string) => boolean,
    /** The other nodes' alarms now in effect (empty: none). */
    private readonly onChange: (alarms: NodeAlarm[]) => void,
    private readonly log: Logger,
  ) {}

  /** Writes this node's alarms (those it has at start: none left over from an earlier run), then follows the others'. */
  async start(own: readonly AlarmResource[]): Promise<void> {
    await this.publish(own);
    this.mirror = await PrefixMirror.open(this.ns, alarmsPrefix, (changes) => this.onChanges(changes), { replay: true, log: this.log });
  }

  /** This node's alarms changed. */
  publish(resources: readonly AlarmResource[]): Promise<void> {
    const key = alarmKey(this.nodeName);
    const write = async (): Promise<void> => {
      if (resources.length === 0) await this.ns.delete().key(key).exec();
      else await this.ns.put(key).value(JSON.stringify(resources)).exec();
    };
    this.writes = this.writes.then(write).catch((e: unknown) => {
      this.log.warn(`could not tell the cluster of this node's resource alarms [${resources.join(', ')}]: ${e instanceof Error ? e.message : String(e)}`);
    });
    return this.writes;
  }

  /** Membership changed: a departed node's alarms stop counting, a returning one's count again. */
  membersChanged(): void {
    if (this.mirror !== undefined) this.emit();
  }

  async close(): Promise<void> {
    await this.mirror?.close();
    await this.writes;
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
