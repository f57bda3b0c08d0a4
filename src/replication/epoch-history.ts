/**
 * A replica log's leader-epoch history: for each epoch that wrote records, the offset of its
 * first record (the epochStart record its leader appended). It decides where a follower's log
 * stops agreeing with the leader's — the leader-epoch rule (Kafka KIP-101/279): truncate by
 * epoch boundaries, never by the commit watermark, which a follower may not know exactly.
 */
import assert from 'node:assert/strict';

export interface EpochEntry {
  readonly epoch: number;
  readonly startOffset: number;
}

/** Why a list of epochs from a peer cannot be a history (or undefined when it can). */
export function epochListProblem(entries: readonly EpochEntry[]): string | undefined {
  for (let i = 1; i < entries.length; i++) {
    const previous = entries[i - 1] as EpochEntry;
    const entry = entries[i] as EpochEntry;
    if (entry.epoch <= previous.epoch || entry.startOffset <= previous.startOffset) {
      return `epoch ${entry.epoch} at ${entry.startOffset} does not follow epoch ${previous.epoch} at ${previous.startOffset}`;
    }
  }
  return undefined;
}

export class EpochHistory {
  private list: EpochEntry[] = [];

  constructor(entries: readonly EpochEntry[] = []) {
    for (const entry of entries) this.add(entry.epoch, entry.startOffset);
  }

  get entries(): readonly EpochEntry[] {
    return this.list;
  }

  get latest(): EpochEntry | undefined {
    return this.list[this.list.length - 1];
  }

  /** The newest epoch that wrote to this log; 0 when none has. */
  get latestEpoch(): number {
    return this.latest?.epoch ?? 0;
  }

  /** An epoch begins at startOffset; epochs and their start offsets only grow. */
  add(epoch: number, startOffset: number): void {
    const latest = this.latest;
    assert.ok(Number.isSafeInteger(epoch) && epoch >= 0, `epoch ${epoch}`);
    assert.ok(latest === undefined || (epoch > latest.epoch && startOffset > latest.startOffset), `epoch ${epoch} at ${startOffset} after ${JSON.stringify(latest)}`);
    this.list.push({ epoch, startOffset });
  }

  /** The log was cut to end before logEnd: epochs that began there or later are gone. */
  truncate(logEnd: number): void {
    while (this.list.length > 0 && (this.latest as EpochEntry).startOffset >= logEnd) this.list.pop();
  }

  /** The newest entry whose epoch is <= epoch. */
  atMost(epoch: number): EpochEntry | undefined {
    for (let i = this.list.length - 1; i >= 0; i--) {
      const entry = this.list[i] as EpochEntry;
      if (entry.epoch <= epoch) return entry;
    }
    return undefined;
  }

  /** Where `epoch` ends in this log: the start of the first later epoch, else logEnd. */
  endOffsetOf(epoch: number, logEnd: number): number {
    for (const entry of this.list) if (entry.epoch > epoch) return entry.startOffset;
    return logEnd;
  }

  /** The newest entry that starts before `end`. */
  lastStartingBefore(end: number): EpochEntry | undefined {
    for (let i = this.list.length - 1; i >= 0; i--) {
      const entry = this.list[i] as EpochEntry;
      if (entry.startOffset < end) return entry;
    }
    return undefined;
  }

  /**
   * Leader side: the offset where a follower's log (its epochs and log end) must be cut so it is
   * a prefix of this log. Repeats KIP-279's exchange locally, having both histories: take the
   * follower's newest epoch below the current end, find the newest leader epoch not after it,
   * and cut at the earlier of where that epoch ends in either log; stop when nothing moves.
   */
  divergence(leaderLogEnd: number, follower: EpochHistory, followerLogEnd: number): number {
    let end = followerLogEnd;
    for (;;) {
      if (end === 0) return 0;
      const followerEpoch = follower.lastStartingBefore(end);
      // Records of no known epoch (or of one this leader never saw anything at or before): keep none.
      if (followerEpoch === undefined) return 0;
      const leaderEpoch = this.atMost(followerEpoch.epoch);
      if (leaderEpoch === undefined) return 0;
      const cut = Math.min(end, this.endOffsetOf(leaderEpoch.epoch, leaderLogEnd), follower.endOffsetOf(leaderEpoch.epoch, followerLogEnd));
      if (cut === end) return end;
      end = cut;
    }
  }
}
