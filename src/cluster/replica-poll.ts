/**
 * Asks the replicas of a queue where their logs end, through etcd, for the controller's
 * choice of a new leader (the highest epoch, then offset, wins). etcd carries the question
 * because the leader is typically the node that just died, and the controller may not hold a
 * link to every follower; a poll is a handful of small keys and lasts milliseconds.
 *
 *   P poll/<queueId>/<nonce>           the question (value: JSON { candidates })
 *   P poll/<queueId>/<nonce>/<node>    one answer per replica (value: JSON ReplicaPosition)
 *
 * The asker removes the whole question when done; a question left by an asker that died ends
 * with its lease.
 */
import { randomBytes } from 'node:crypto';
import type { Namespace } from 'etcd3';
import type { Logger } from '../node/logger.js';
import type { ReplicaPosition } from './controller.js';
import { PrefixMirror, kvText, type KeyChange } from './etcd-watch.js';

const pollPrefix = 'poll/';
/** A question outlives a dead asker by at most this long. */
const questionTtlS = 10;

export type ReplicaAnswer = (queueId: number) => Promise<{ epoch: number; offset: number } | undefined>;

function parsePosition(text: string): ReplicaPosition | undefined {
  try {
    const o = JSON.parse(text) as Record<string, unknown>;
    if (typeof o['node'] === 'string' && typeof o['epoch'] === 'number' && typeof o['offset'] === 'number') return { node: o['node'], epoch: o['epoch'], offset: o['offset'] };
  } catch {
    // not ours: ignored
  }
  return undefined;
}

export class ReplicaPoll {
  private mirror: PrefixMirror | undefined;

  constructor(
    private readonly ns: Namespace,
    private readonly nodeName: string,
    private readonly answer: ReplicaAnswer,
    private readonly log: Logger,
  ) {}

  /** Starts answering questions about the replicas this node holds. */
  async start(): Promise<void> {
    this.mirror = await PrefixMirror.open(this.ns, pollPrefix, (changes) => this.onQuestions(changes), { replay: false, log: this.log });
  }

  private async onQuestions(changes: KeyChange[]): Promise<void> {
    for (const c of changes) {
      const parts = c.key.slice(pollPrefix.length).split('/');
      if (c.value === undefined || c.previous !== undefined || parts.length !== 2) continue; // only new questions
      const queueId = Number(parts[0]);
      const position = Number.isSafeInteger(queueId) ? await this.answer(queueId).catch(() => undefined) : undefined;
      if (position === undefined) continue;
      const body: ReplicaPosition = { node: this.nodeName, ...position };
      try {
        await this.ns.put(`${c.key}/${encodeURIComponent(this.nodeName)}`).value(JSON.stringify(body)).exec();
      } catch (e) {
        this.log.warn(`could not answer a replica poll for queue ${queueId}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }

  /**
   * Asks the candidates of a queue where their logs end; resolves with the answers that came
   * before every candidate answered or the deadline passed.
   */
  async ask(queueId: number, candidates: readonly string[], deadlineMs: number): Promise<ReplicaPosition[]> {
    const question = `${pollPrefix}${queueId}/${randomBytes(8).toString('hex')}`;
    const answers = new Map<string, ReplicaPosition>();
    let done: () => void = () => {};
    const complete = new Promise<void>((resolve) => (done = resolve));
    const mirror = await PrefixMirror.open(
      this.ns,
      `${question}/`,
      (changes) => {
        for (const c of changes) {
          const p = c.value === undefined ? undefined : parsePosition(kvText(c.value));
          if (p !== undefined && candidates.includes(p.node)) answers.set(p.node, p);
        }
        if (candidates.every((n) => answers.has(n))) done();
      },
      { replay: true, log: this.log },
    );
    const lease = this.ns.lease(questionTtlS, { autoKeepAlive: false });
    const timer = setTimeout(done, deadlineMs);
    try {
      await lease.put(question).value(JSON.stringify({ candidates })).exec();
      await complete;
    } finally {
      clearTimeout(timer);
      await mirror.close();
      await this.ns.delete().prefix(question).exec().catch(() => {});
      await lease.revoke().catch(() => {});
    }
    return [...answers.values()];
  }

  async close(): Promise<void> {
    await this.mirror?.close();
  }
}
