/**
 * The commit rules (ARCHITECTURE.md §3), as pure functions of what each replica holds durably
 * (its fsynced offset; -1 = nothing). The leader counts its own flushed offset.
 *   quorum    the highest offset held by a majority of `members`
 *   mirrored  the lowest offset held across the ISR (leader included), and only while
 *             |isr| >= minInsync — otherwise no progress at all
 *   classic   the leader's own flushed offset (an unreplicated queue)
 */
import type { ReplicatedQueueType } from './types.js';

export interface CommitRule {
  type: ReplicatedQueueType;
  leader: string;
  members: readonly string[];
  isr: readonly string[];
  minInsync: number;
}

/** The offset the rule says is committed, or undefined when the rule allows no progress now. */
export function commitCandidate(rule: CommitRule, heldBy: (node: string) => number): number | undefined {
  switch (rule.type) {
    case 'classic':
      return heldBy(rule.leader);
    case 'quorum': {
      const voters = rule.members.includes(rule.leader) ? rule.members : [...rule.members, rule.leader];
      const held = voters.map(heldBy).sort((a, b) => b - a);
      const majority = Math.floor(voters.length / 2) + 1;
      return held[majority - 1];
    }
    case 'mirrored': {
      if (rule.isr.length < rule.minInsync) return undefined;
      let lowest = heldBy(rule.leader);
      for (const node of rule.isr) lowest = Math.min(lowest, heldBy(node));
      return lowest;
    }
  }
}
