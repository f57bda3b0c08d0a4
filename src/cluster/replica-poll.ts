/**
 * Asks the replicas of a queue where their logs end, through etcd, for the controller's
 * choice of a new leader (the highest epoch, then offset, wins). etcd carries the question
 * because the leader is typically the node that just died, and the controller may not hold a
 * link to every follower; a poll is a handful of small keys and lasts milliseconds.
 *
 *   P poll/<queueId>/<nonce>           the question (value: JSON { candidates, epoch })
 *   P poll/<queueId>/<nonce>/<node>    one answer per candidate (value: JSON ReplicaPosition)
 *
 * The question names the placement epoch e the decision is made from. A candidate fences
 * before it answers (Raft's vote, Kafka's leader-epoch fencing): from then on it neither
 * appends nor acks batches of epoch e or older for that queue, so its answer is final. The old
 * leader, perhaps alive (a slow node, a lost lease), can then commit nothing beyond what the
 * answers show: a quorum queue's commit needs a majority, which meets the majority of answers
 * the choice needs; a mirrored queue's needs every in-sync replica, and every candidate is one.
 * The fence lifts when the replica learns a newer placement, or after pollFenceMs.
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
/**
 * A decision may rest on a poll's answers for at most this long after the question was put:
 * the question's lifetime. Past it, the answering replicas' fences may have lifted.
 */
export const pollDecisionMaxMs = questionTtlS * 1000;
/**
 * How long a replica that answered refuses the polled epoch unless a newer placement comes
 * first: a few seconds more than a decision may take (pollDecisionMaxMs), so that any decision
 * made from its answer is written before the fence lifts (the margin covers the write's round
 * trip and timer skew between processes); and bounded, so that a controller that died
 * mid-failover does not stall a live queue forever.
 */
export const pollFenceMs = pollDecisionMaxMs + 5_000;

/** A candidate's answer to a question about queueId at placement epoch `epoch`: fences, then reports its log end. */
export type ReplicaAnswer = (queueId: number, epoch: number, fenceMs: number) => Promise<{ epoch: number; offset: number } | undefined>;

interface Question {
  candidates: string[];
  epoch: number;
}

function parseQuestion(text: string): Question | undefined {
  try {
    const o = JSON.parse(text) as Record<string, unknown>;
    const { candidates, epoch } = o;
    if (Array.isArray(candidates) && candidates.every((c) => typeof c === 'string') && typeof epoch === 'number' && Number.isSafeInteger(epoch)) return { candidates, epoch };
  } catch {
    // reported by the caller
  }
  return undefined;
}

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
      const question = parseQuestion(kvText(c.value));
      if (!Number.isSafeInteger(queueId) || question === undefined) {
        this.log.warn(`replica poll ${c.key}: not a question this node understands (${kvText(c.value).slice(0, 200)}); not answered`);
        continue;
      }
      // Only candidates are counted, so only they fence: another replica keeps following.
      if (!question.candidates.includes(this.nodeName)) continue;
      const position = await this.answer(queueId, question.epoch, pollFenceMs).catch((e: unknown) => {
        this.log.warn(`could not answer a replica poll for queue ${queueId}: ${e instanceof Error ? e.message : String(e)}`);
        return undefined;
      });
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
   * Asks the candidates of a queue where their logs end, for a decision made from its placement
   * at `epoch` (each candidate that answers is fenced at that epoch); resolves with the answers
   * that came before every candidate answered or the deadline passed.
   */
  async ask(queueId: number, epoch: number, candidates: readonly string[], deadlineMs: number): Promise<ReplicaPosition[]> {
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
      const body: Question = { candidates: [...candidates], epoch };
      await lease.put(question).value(JSON.stringify(body)).exec();
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
