/** The front's settings (the node's config narrowed to what connections and channels need). */
export interface BrokerConfig {
  /** Negotiated upper bound for channel ids (RabbitMQ's default is 2047). */
  channelMax: number;
  /** Largest frame we accept or send, header and end octet included (RabbitMQ: 128 KiB). */
  frameMaxBytes: number;
  /** Heartbeat interval proposed in connection.tune; 0 disables. */
  heartbeatS: number;
  /** Largest message body accepted (RabbitMQ's max_message_size). */
  maxMessageBytes: number;
  /** Users allowed to log in only from loopback addresses (RabbitMQ's loopback_users). */
  loopbackUsers: string[];
  clusterName: string;
  nodeName: string;
  /** RabbitMQ's consumer_timeout: a channel holding a delivery unacked this long is closed (0: never). */
  consumerTimeoutMs: number;
}
