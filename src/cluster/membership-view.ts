/**
 * Membership changes of replicated queues as warrenctl and the management API see them (plain
 * data, no etcd types): the operations of rabbitmq-queues add_member, delete_member, grow and
 * shrink, their results, and the refusals with RabbitMQ's error atoms. membership.ts does them.
 */

/** Why a change was refused; the names are RabbitMQ's error atoms where it has one. */
export type MembershipRefusal =
  /** No such queue (or vhost). */
  | 'not_found'
  /** A classic queue: it has one node and no members to change. */
  | 'not_replicated'
  /** The node to add is not a running member of the cluster. */
  | 'node_not_running'
  /** Removing the node would leave the queue without members. */
  | 'last_node'
  /** The node to remove leads the queue and is running (see docs/cluster.md for why that is refused). */
  | 'leader_running'
  /** The node to remove led the queue and is down; no other member took over in time. */
  | 'leader_moving'
  /** The queue's leader has not applied the previous change yet (one change at a time). */
  | 'change_pending'
  /** The placement kept changing under the compare-and-set until the deadline. */
  | 'conflict';

export class MembershipError extends Error {
  constructor(
    readonly refusal: MembershipRefusal,
    message: string,
  ) {
    super(message);
  }
}

/** A change that was written. */
export interface MemberChange {
  vhost: string;
  name: string;
  /** The members after the change. */
  members: string[];
  /**
   * The queue's leader applied the new member set (its commit rule counts them) before the
   * wait ran out. False: the change is recorded in etcd and takes effect when a leader applies
   * it, but the next change of this queue waits until then.
   */
  applied: boolean;
  /** Nothing was written: the node to add already was a member, or the node to remove was not (rabbitmq-queues treats both as done). */
  unchanged?: boolean;
}

/** One queue in the table grow and shrink print, as rabbitmq-queues prints it. */
export interface MemberChangeRow {
  vhost: string;
  name: string;
  /** Members after the change (before it, when it failed). */
  size: number;
  /** "ok", or "error: " and why. */
  result: string;
}

export type GrowStrategy = 'all' | 'even';

export interface GrowSelection {
  strategy: GrowStrategy;
  /** Unanchored regular expressions, as RabbitMQ's --vhost-pattern and --queue-pattern. */
  vhostPattern?: RegExp | undefined;
  queuePattern?: RegExp | undefined;
}

/** What a cluster member offers for changing queue membership. */
export interface QueueMembership {
  addMember(vhost: string, name: string, node: string): Promise<MemberChange>;
  deleteMember(vhost: string, name: string, node: string): Promise<MemberChange>;
  /** Adds node to every matching replicated queue it is not a member of; node must be running. */
  grow(node: string, selection: GrowSelection): Promise<MemberChangeRow[]>;
  /** Removes node from every replicated queue it is a member of (never the last member). */
  shrink(node: string): Promise<MemberChangeRow[]>;
}
