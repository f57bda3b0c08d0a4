/**
 * The node's settings, from (in rising precedence) defaults, a JSON config file,
 * WARREN_* environment variables, and command-line flags.
 */
import { availableParallelism, hostname } from 'node:os';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { isLogLevel, type LogLevel } from './logger.js';
import { parseFsyncPolicy } from '../store/fsync-policy.js';
import { parseDiskFreeLimit, parseMemoryWatermark } from '../front/resource-alarms.js';

export interface NodeConfig {
  host: string;
  port: number;
  shards: number;
  dataDir: string;
  logLevel: LogLevel;
  channelMax: number;
  frameMaxBytes: number;
  heartbeatS: number;
  maxMessageBytes: number;
  /** Bytes of each ring between the front and a shard (each direction). */
  ringBytes: number;
  loopbackUsers: string[];
  /** always | batch-ms=N | never: when a persistent message counts as on disk (see README). */
  fsync: string;
  /** Size of each shard log segment file. */
  segmentBytes: number;
  /** Start despite a corrupt log record: keep what is sound before it, move the rest aside. */
  repair: boolean;
  /** MiB of ready message payloads the node keeps in memory (split evenly among the shards); past it they page to disk. */
  queueMemoryMb: number;
  nodeName: string;
  clusterName: string;
  /** Management HTTP API and dashboard (see docs/management.md). */
  mgmtPort: ListenerPort;
  /** Address the management, Prometheus and WebSocket listeners bind to. */
  mgmtHost: string;
  prometheusPort: ListenerPort;
  /** AMQP 0-9-1 over WebSocket (path /ws). */
  wsPort: ListenerPort;
  /** Run as a cluster member (docs/cluster.md); needs etcd. */
  cluster: boolean;
  /** etcd client endpoints (the control plane). */
  etcd: string[];
  /** Shared by every node of the cluster, like RabbitMQ's Erlang cookie; '' = read <dataDir>/.cluster-secret. */
  clusterSecret: string;
  /** Inter-node forwarding link (publishes and consumes of queues led by another node). */
  peerPort: number;
  /** Replication link (followers fetch batches from leaders). */
  replPort: number;
  /** Address the peer and replication listeners bind to ('' = --host). */
  bindHost: string;
  /** Address other nodes dial for this node's AMQP, peer and replication ports ('' = the bind address). */
  advertiseHost: string;
  /** TTL of this node's membership lease in etcd: a silent node is declared gone after it. */
  leaseMs: number;
  /** AMQPS listener (AMQP over TLS, RabbitMQ's 5671), on --host; needs tlsCert and tlsKey. */
  tlsPort: ListenerPort;
  /** PEM files: the node's certificate (chain), its private key, and the CAs that client certificates must chain to. */
  tlsCert: string;
  tlsKey: string;
  tlsCa: string;
  /** Client certificates: none (not asked), peer (verified when sent: RabbitMQ's verify_peer), require (also fail_if_no_peer_cert). */
  tlsVerify: string;
  /** RabbitMQ's consumer_timeout (ms): a channel with a delivery unacked this long is closed with 406; 0 never. */
  consumerTimeoutMs: number;
  /** RabbitMQ's vm_memory_high_watermark: a fraction of the memory ("0.4") or a size ("2GB"); past it publishers are blocked. */
  vmMemoryHighWatermark: string;
  /** RabbitMQ's disk_free_limit: a size ("50MB") or "mem_relative 1.5"; under it publishers are blocked. */
  diskFreeLimit: string;
}

export const tlsVerifyModes = ['none', 'peer', 'require'] as const;

/** A listener's port: 0 picks a free one; 'off' runs the node without that listener. */
export type ListenerPort = number | 'off';

interface Option {
  flag: string;
  env: string;
  key: keyof NodeConfig;
  kind: 'int' | 'string' | 'list' | 'port';
  help: string;
}

const options: Option[] = [
  { flag: 'host', env: 'WARREN_HOST', key: 'host', kind: 'string', help: 'address to listen on for AMQP (default 127.0.0.1)' },
  { flag: 'port', env: 'WARREN_PORT', key: 'port', kind: 'int', help: 'AMQP port; 0 picks a free one (default 5672)' },
  { flag: 'shards', env: 'WARREN_SHARDS', key: 'shards', kind: 'int', help: 'shard worker threads owning the queues (default: number of cores)' },
  { flag: 'data-dir', env: 'WARREN_DATA_DIR', key: 'dataDir', kind: 'string', help: 'directory for definitions and message logs (default ./data)' },
  { flag: 'log-level', env: 'WARREN_LOG_LEVEL', key: 'logLevel', kind: 'string', help: 'debug | info | warn | error (default info)' },
  { flag: 'channel-max', env: 'WARREN_CHANNEL_MAX', key: 'channelMax', kind: 'int', help: 'highest channel id a connection may open (default 2047)' },
  { flag: 'frame-max', env: 'WARREN_FRAME_MAX', key: 'frameMaxBytes', kind: 'int', help: 'largest frame in bytes (default 131072)' },
  { flag: 'heartbeat', env: 'WARREN_HEARTBEAT', key: 'heartbeatS', kind: 'int', help: 'heartbeat seconds proposed to clients; 0 disables (default 60)' },
  { flag: 'max-message-size', env: 'WARREN_MAX_MESSAGE_SIZE', key: 'maxMessageBytes', kind: 'int', help: 'largest message body in bytes (default 16777216, as RabbitMQ 4)' },
  { flag: 'ring-bytes', env: 'WARREN_RING_BYTES', key: 'ringBytes', kind: 'int', help: 'size of each front/shard ring, a power of two (default 8388608)' },
  { flag: 'loopback-users', env: 'WARREN_LOOPBACK_USERS', key: 'loopbackUsers', kind: 'list', help: "users allowed only from localhost, comma-separated (default 'guest'; '' for none)" },
  { flag: 'fsync', env: 'WARREN_FSYNC', key: 'fsync', kind: 'string', help: 'always (confirm after fdatasync) | batch-ms=N | never (unsafe) (default always)' },
  { flag: 'queue-memory-mb', env: 'WARREN_QUEUE_MEMORY_MB', key: 'queueMemoryMb', kind: 'int', help: 'MiB of ready messages kept in memory, split among the shards; the rest wait on disk (default 512)' },
  { flag: 'segment-bytes', env: 'WARREN_SEGMENT_BYTES', key: 'segmentBytes', kind: 'int', help: 'size of each shard log segment file (default 67108864)' },
  { flag: 'node-name', env: 'WARREN_NODE_NAME', key: 'nodeName', kind: 'string', help: 'this node\'s name (default warren@HOSTNAME)' },
  { flag: 'mgmt-port', env: 'WARREN_MGMT_PORT', key: 'mgmtPort', kind: 'port', help: "management API and dashboard port; 0 picks a free one, 'off' disables (default 15672)" },
  { flag: 'mgmt-host', env: 'WARREN_MGMT_HOST', key: 'mgmtHost', kind: 'string', help: 'address of the management, Prometheus and WebSocket listeners (default 127.0.0.1)' },
  { flag: 'prometheus-port', env: 'WARREN_PROMETHEUS_PORT', key: 'prometheusPort', kind: 'port', help: "Prometheus /metrics port; 0 picks a free one, 'off' disables (default 15692)" },
  { flag: 'ws-port', env: 'WARREN_WS_PORT', key: 'wsPort', kind: 'port', help: "AMQP over WebSocket port (path /ws); 0 picks a free one, 'off' disables (default 15674)" },
  { flag: 'etcd', env: 'WARREN_ETCD', key: 'etcd', kind: 'list', help: 'etcd endpoints, comma-separated (cluster mode; default http://127.0.0.1:2379)' },
  { flag: 'cluster-name', env: 'WARREN_CLUSTER_NAME', key: 'clusterName', kind: 'string', help: "the cluster's name, also its etcd key prefix /warren/NAME/ (default warren)" },
  { flag: 'cluster-secret', env: 'WARREN_CLUSTER_SECRET', key: 'clusterSecret', kind: 'string', help: 'secret shared by the nodes of a cluster (default: the file DATA_DIR/.cluster-secret)' },
  { flag: 'peer-port', env: 'WARREN_PEER_PORT', key: 'peerPort', kind: 'int', help: 'inter-node forwarding port; 0 picks a free one (default 25672)' },
  { flag: 'repl-port', env: 'WARREN_REPL_PORT', key: 'replPort', kind: 'int', help: 'replication port; 0 picks a free one (default 25673)' },
  { flag: 'bind-host', env: 'WARREN_BIND_HOST', key: 'bindHost', kind: 'string', help: 'address of the peer and replication listeners (default: --host)' },
  { flag: 'advertise-host', env: 'WARREN_ADVERTISE_HOST', key: 'advertiseHost', kind: 'string', help: 'address other nodes use to reach this one (default: the bind address)' },
  { flag: 'lease-ms', env: 'WARREN_LEASE_MS', key: 'leaseMs', kind: 'int', help: "TTL of the node's etcd membership lease: a silent node is failed over after it (default 3000)" },
  { flag: 'consumer-timeout-ms', env: 'WARREN_CONSUMER_TIMEOUT_MS', key: 'consumerTimeoutMs', kind: 'int', help: "close a channel whose delivery stays unacked this long, as RabbitMQ's consumer_timeout; 0 never (default 1800000)" },
  { flag: 'vm-memory-high-watermark', env: 'WARREN_VM_MEMORY_HIGH_WATERMARK', key: 'vmMemoryHighWatermark', kind: 'string', help: "block publishers while the node's memory is above this: a fraction of the memory, or a size such as 2GB (default 0.4, as RabbitMQ)" },
  { flag: 'disk-free-limit', env: 'WARREN_DISK_FREE_LIMIT', key: 'diskFreeLimit', kind: 'string', help: "block publishers while the data directory's disk has less free space: a size such as 50MB or 1GiB, or 'mem_relative 1.5' (default 50MB, as RabbitMQ)" },
  { flag: 'tls-port', env: 'WARREN_TLS_PORT', key: 'tlsPort', kind: 'port', help: "AMQPS (TLS) port, RabbitMQ's is 5671; needs --tls-cert and --tls-key; 0 picks a free one (default off)" },
  { flag: 'tls-cert', env: 'WARREN_TLS_CERT', key: 'tlsCert', kind: 'string', help: "PEM file of the node's certificate, chain after it" },
  { flag: 'tls-key', env: 'WARREN_TLS_KEY', key: 'tlsKey', kind: 'string', help: "PEM file of the certificate's private key" },
  { flag: 'tls-ca', env: 'WARREN_TLS_CA', key: 'tlsCa', kind: 'string', help: 'PEM file of the CAs client certificates must chain to (for --tls-verify)' },
  { flag: 'tls-verify', env: 'WARREN_TLS_VERIFY', key: 'tlsVerify', kind: 'string', help: 'client certificates: none | peer (verified if sent) | require (default none)' },
];

export function defaultConfig(): NodeConfig {
  return {
    host: '127.0.0.1',
    port: 5672,
    shards: Math.max(1, availableParallelism()),
    dataDir: './data',
    logLevel: 'info',
    channelMax: 2047,
    frameMaxBytes: 131072,
    heartbeatS: 60,
    maxMessageBytes: 16 * 1024 * 1024,
    ringBytes: 8 * 1024 * 1024,
    loopbackUsers: ['guest'],
    fsync: 'always',
    segmentBytes: 64 * 1024 * 1024,
    repair: false,
    queueMemoryMb: 512,
    nodeName: `warren@${hostname().split('.')[0] || 'localhost'}`,
    clusterName: 'warren',
    mgmtPort: 15672,
    mgmtHost: '127.0.0.1',
    prometheusPort: 15692,
    wsPort: 15674,
    cluster: false,
    etcd: ['http://127.0.0.1:2379'],
    clusterSecret: '',
    peerPort: 25672,
    replPort: 25673,
    bindHost: '',
    advertiseHost: '',
    leaseMs: 3000,
    tlsPort: 'off',
    tlsCert: '',
    tlsKey: '',
    tlsCa: '',
    tlsVerify: 'none',
    consumerTimeoutMs: 30 * 60 * 1000,
    vmMemoryHighWatermark: '0.4',
    diskFreeLimit: '50MB',
  };
}

export class ConfigError extends Error {}

export function usage(): string {
  const lines = ['Usage: warren [options]', '', 'Options (each also as an environment variable, or a key in --config FILE):'];
  lines.push('  --config FILE              JSON file with any of the settings below (keys as in the flags, camelCase also accepted)');
  for (const o of options) lines.push(`  --${o.flag.padEnd(24)} ${o.help}  [${o.env}]`);
  lines.push('  --repair                   start despite a corrupt log record: keep the sound records before it, move the rest aside  [WARREN_REPAIR=1]');
  lines.push('  --cluster                  run as a member of a cluster (docs/cluster.md)  [WARREN_CLUSTER=1]');
  lines.push('  --help                     this text');
  return lines.join('\n');
}

function applyValue(config: NodeConfig, o: Option, raw: unknown, source: string): void {
  const rec = config as unknown as Record<string, unknown>;
  if (o.kind === 'port' && (raw === 'off' || raw === false)) {
    rec[o.key] = 'off';
  } else if (o.kind === 'int' || o.kind === 'port') {
    const n = typeof raw === 'number' ? raw : Number(raw);
    if (!Number.isSafeInteger(n) || n < 0) throw new ConfigError(`${source}: ${o.flag} must be ${o.kind === 'port' ? "a port number or 'off'" : 'a non-negative integer'}, got '${String(raw)}'`);
    rec[o.key] = n;
  } else if (o.kind === 'list') {
    rec[o.key] = Array.isArray(raw) ? raw.map(String) : String(raw).split(',').map((s) => s.trim()).filter((s) => s !== '');
  } else {
    rec[o.key] = String(raw);
  }
}

export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): NodeConfig | 'help' {
  const parseOptions: Record<string, { type: 'string' | 'boolean' }> = {
    config: { type: 'string' },
    help: { type: 'boolean' },
    repair: { type: 'boolean' },
    cluster: { type: 'boolean' },
  };
  for (const o of options) parseOptions[o.flag] = { type: 'string' };
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: parseOptions, strict: true, allowPositionals: false });
  } catch (err) {
    throw new ConfigError(err instanceof Error ? err.message : String(err));
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values['help'] === true) return 'help';
  const config = defaultConfig();
  const file = typeof values['config'] === 'string' ? values['config'] : env['WARREN_CONFIG'];
  if (file !== undefined) {
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError(`config file ${file}: ${err instanceof Error ? err.message : String(err)}`);
    }
    for (const [k, v] of Object.entries(json)) {
      const o = options.find((x) => x.flag === k || x.key === k);
      if (o === undefined) throw new ConfigError(`config file ${file}: unknown setting '${k}'`);
      applyValue(config, o, v, `config file ${file}`);
    }
  }
  for (const o of options) {
    const v = env[o.env];
    if (v !== undefined) applyValue(config, o, v, `environment ${o.env}`);
  }
  for (const o of options) {
    const v = values[o.flag];
    if (typeof v === 'string') applyValue(config, o, v, `--${o.flag}`);
  }
  if (values['repair'] === true || env['WARREN_REPAIR'] === '1') config.repair = true;
  if (values['cluster'] === true || env['WARREN_CLUSTER'] === '1') config.cluster = true;
  validate(config);
  return config;
}

function validate(c: NodeConfig): void {
  try {
    parseFsyncPolicy(c.fsync);
  } catch (err) {
    throw new ConfigError(`--fsync: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (c.segmentBytes < 1024 * 1024) throw new ConfigError(`--segment-bytes must be at least 1048576, got ${c.segmentBytes}`);
  if (!isLogLevel(c.logLevel)) throw new ConfigError(`--log-level must be debug, info, warn or error, got '${c.logLevel}'`);
  if (c.port > 65535) throw new ConfigError(`--port must be at most 65535, got ${c.port}`);
  for (const [flag, p] of [['mgmt-port', c.mgmtPort], ['prometheus-port', c.prometheusPort], ['ws-port', c.wsPort], ['tls-port', c.tlsPort]] as const) {
    if (p !== 'off' && p > 65535) throw new ConfigError(`--${flag} must be at most 65535 or 'off', got ${p}`);
  }
  for (const [flag, p] of [['peer-port', c.peerPort], ['repl-port', c.replPort]] as const) {
    if (p > 65535) throw new ConfigError(`--${flag} must be at most 65535, got ${p}`);
  }
  if (c.cluster && c.etcd.length === 0) throw new ConfigError('--cluster needs at least one --etcd endpoint');
  if (c.leaseMs < 1000 || c.leaseMs > 60_000) throw new ConfigError(`--lease-ms must be between 1000 and 60000, got ${c.leaseMs}`);
  if (c.shards < 1 || c.shards > 64) throw new ConfigError(`--shards must be between 1 and 64, got ${c.shards}`);
  if (c.frameMaxBytes < 4096) throw new ConfigError(`--frame-max must be at least 4096, got ${c.frameMaxBytes}`);
  if (c.channelMax < 1 || c.channelMax > 65535) throw new ConfigError(`--channel-max must be between 1 and 65535, got ${c.channelMax}`);
  if (c.heartbeatS > 65535) throw new ConfigError(`--heartbeat must be at most 65535, got ${c.heartbeatS}`);
  if (!(tlsVerifyModes as readonly string[]).includes(c.tlsVerify)) throw new ConfigError(`--tls-verify must be none, peer or require, got '${c.tlsVerify}'`);
  if (c.tlsPort !== 'off') {
    if (c.tlsCert === '' || c.tlsKey === '') throw new ConfigError('--tls-port needs --tls-cert and --tls-key (PEM files)');
    if (c.tlsVerify !== 'none' && c.tlsCa === '') throw new ConfigError(`--tls-verify ${c.tlsVerify} needs --tls-ca: the CAs client certificates must chain to`);
  }
  if (parseMemoryWatermark(c.vmMemoryHighWatermark) === undefined) {
    throw new ConfigError(`--vm-memory-high-watermark must be a fraction between 0.0 and 1.0 or a size such as 2GB, got '${c.vmMemoryHighWatermark}'`);
  }
  if (parseDiskFreeLimit(c.diskFreeLimit) === undefined) {
    throw new ConfigError(`--disk-free-limit must be a size such as 50MB or 1GiB, or 'mem_relative N', got '${c.diskFreeLimit}'`);
  }
  if (c.ringBytes < 65536 || (c.ringBytes & (c.ringBytes - 1)) !== 0) {
    throw new ConfigError(`--ring-bytes must be a power of two of at least 65536, got ${c.ringBytes}`);
  }
}
