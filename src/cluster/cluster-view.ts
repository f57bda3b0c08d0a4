/** What a cluster member tells warrenctl and the management API (plain data, no etcd types). */
import type { ReplicaStatus } from '../replication/types.js';

export interface ClusterMemberView {
  name: string;
  /** host:port for AMQP clients. */
  amqp: string;
  peer: string;
  repl: string;
  startedAtMs: number;
}

export interface ClusterQueueView {
  vhost: string;
  name: string;
  /** quorum | mirrored | classic */
  type: string;
  leader: string;
  members: string[];
  isr: string[];
  epoch: number;
}

export interface ClusterStatusView {
  cluster: string;
  node: string;
  /** The node acting as controller, if one is elected. */
  controller: string | undefined;
  members: ClusterMemberView[];
  /** Nodes removed with forget_cluster_node (they may not join until join_cluster clears that). */
  forgotten: string[];
  /** This node's replicas: role, epoch, log end, commit watermark, followers' acked offsets. */
  replicas: ReplicaStatus[];
}
