/**
 * Boots one node: shard workers and their rings, the front (broker state, AMQP listener),
 * and an orderly stop. The only place that wires the parts together.
 */
import { createServer, type Server } from 'node:net';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { mkdirSync } from 'node:fs';
import { createRingBuffer } from '../ring/ring-layout.js';
import { RingReader, warnLostWakeups } from '../ring/ring-reader.js';
import { RingWriter } from '../ring/ring-writer.js';
import { Broker } from '../front/broker.js';
import { Connection } from '../front/connection.js';
import { ShardLink } from '../front/shard-link.js';
import { socketTransport } from '../front/transport.js';
import { ReplyCode } from '../amqp/spec.generated.js';
import type { ShardLifecycle, ShardWorkerData } from '../shard/worker.js';
import { creditTableSlots } from '../shard/consumer.js';
import { parseFsyncPolicy } from '../store/fsync-policy.js';
import { join } from 'node:path';
import { DefinitionsFile } from './definitions-file.js';
import { startAdminSocket } from '../mgmt/admin-socket.js';
import { startManagement } from '../mgmt/management.js';
import type { NodeConfig } from './config.js';
import { createLogger, type Logger } from './logger.js';
import { resolveClusterSecret } from './cluster-secret.js';
import { StartError } from './start-error.js';
import { acquireDataDirLock } from './data-dir-lock.js';
import { ClusterMember } from './cluster-member.js';
import { startPeerListener } from '../front/peer-session.js';
import { loadTlsSettings, startTlsListener, type TlsVerify } from '../front/tls-listener.js';
import { startReplicatorWorker, type ShardReplicatorRings } from '../replication/worker-client.js';
import { ResourceMonitor, defaultDiskFreeLimit, defaultMemoryWatermark, parseDiskFreeLimit, parseMemoryWatermark } from '../front/resource-alarms.js';

export interface RunningNode {
  readonly broker: Broker;
  readonly host: string;
  readonly port: number;
  readonly url: string;
  /** amqps://HOST:PORT when the TLS listener is on (--tls-port). */
  readonly tlsUrl: string | undefined;
  readonly log: Logger;
  stop(): Promise<void>;
}

interface ShardThread {
  worker: Worker;
  reader: RingReader;
  link: ShardLink;
}

/** Starts a shard worker; it recovers its log before it says ready (all shards recover in parallel). */
function isUnspecifiedAddress(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]';
}

/** Segment size of each replicated queue's log (at most; --segment-bytes if smaller). */
const replicaSegmentBytesMax = 8 * 1024 * 1024;

/** One table of global-prefetch credit for the whole node (front and every shard). */
const creditTable = new SharedArrayBuffer(8 * creditTableSlots);

async function startShard(
  index: number,
  config: NodeConfig,
  log: Logger,
  replicatorRings: ShardReplicatorRings | undefined,
): Promise<{ worker: Worker; toShard: SharedArrayBuffer; fromShard: SharedArrayBuffer; flow: SharedArrayBuffer }> {
  const flow = new SharedArrayBuffer(4);
  const credit = creditTable;
  const toShard = createRingBuffer(config.ringBytes);
  const fromShard = createRingBuffer(config.ringBytes);
  const data: ShardWorkerData = {
    index,
    toShard,
    fromShard,
    logDir: join(config.dataDir, 'shards', String(index)),
    fsync: parseFsyncPolicy(config.fsync),
    segmentBytes: config.segmentBytes,
    repair: config.repair,
    queueMemoryBytes: Math.floor((config.queueMemoryMb * 1024 * 1024) / config.shards),
    flow,
    credit,
    ...(replicatorRings === undefined ? {} : { toReplicator: replicatorRings.toReplicator, fromReplicator: replicatorRings.fromReplicator }),
  };
  const worker = new Worker(new URL('../shard/worker.js', import.meta.url), { workerData: data, name: `shard-${index}` });
  return new Promise((resolve, reject) => {
    const onStartup = (m: ShardLifecycle): void => {
      if (m.type === 'log') log[m.level](m.message);
      else if (m.type === 'ready') {
        worker.off('message', onStartup);
        if (m.recoveredRecords > 0 || m.truncatedBytes > 0) {
          log.info(`shard ${index}: recovered ${m.recoveredRecords} log record(s) for ${m.recoveredQueues} queue(s)${m.truncatedBytes > 0 ? `, truncated a torn tail of ${m.truncatedBytes} bytes` : ''}`);
        }
        resolve({ worker, toShard, fromShard, flow });
      } else if (m.type === 'failed') {
        void worker.terminate();
        reject(new Error(`shard ${index} could not start: ${m.message}`));
      }
    };
    worker.on('message', onStartup);
    worker.once('error', reject);
  });
}

export async function startNode(config: NodeConfig, log: Logger = createLogger(config.logLevel)): Promise<RunningNode> {
  // Certificate files are read first: a wrong path should stop the node before it takes its data directory.
  const tls =
    config.tlsPort === 'off'
      ? undefined
      : loadTlsSettings({ certFile: config.tlsCert, keyFile: config.tlsKey, caFile: config.tlsCa, verify: config.tlsVerify as TlsVerify });
  mkdirSync(config.dataDir, { recursive: true });
  // Before anything reads or writes the directory: a second node on it would corrupt both.
  const lock = await acquireDataDirLock(config.dataDir, log);
  // Cluster mode: a replicator worker with a ring pair to each shard (ARCHITECTURE.md §1).
  const secret = config.cluster ? resolveClusterSecret(config.clusterSecret, config.dataDir) : '';
  const replicatorRings = config.cluster ? Array.from({ length: config.shards }, () => ({ toReplicator: createRingBuffer(config.ringBytes), fromReplicator: createRingBuffer(config.ringBytes) })) : undefined;
  const bindHost = config.bindHost === '' ? config.host : config.bindHost;
  const replicator =
    replicatorRings === undefined
      ? undefined
      : await startReplicatorWorker({
          nodeName: config.nodeName,
          dataDir: config.dataDir,
          secret,
          fsync: parseFsyncPolicy(config.fsync),
          // One log per replicated queue: smaller segments than a shard's, so many queues do not cost gigabytes of preallocated files.
          segmentBytes: Math.min(config.segmentBytes, replicaSegmentBytesMax),
          bindHost,
          replPort: config.replPort,
          rings: replicatorRings,
          log,
        });
  const started = await Promise.all(Array.from({ length: config.shards }, (_, i) => startShard(i, config, log, replicatorRings?.[i])));
  const links = started.map((s, i) => new ShardLink(i, new RingWriter(s.toShard, `front→shard${i}`, warnLostWakeups((m) => log.warn(m))), new Int32Array(s.flow)));
  const broker = new Broker(
    {
      channelMax: config.channelMax,
      frameMaxBytes: config.frameMaxBytes,
      heartbeatS: config.heartbeatS,
      maxMessageBytes: config.maxMessageBytes,
      loopbackUsers: config.loopbackUsers,
      clusterName: config.clusterName,
      nodeName: config.nodeName,
      consumerTimeoutMs: config.consumerTimeoutMs,
    },
    links,
    log,
    new Int32Array(creditTable),
  );
  // Durable definitions come back first (queues re-created on their shards, which hand
  // them the messages their logs recovered); a fresh node gets vhost '/' and guest. A
  // cluster member takes its definitions and queues from etcd instead (below).
  const definitions = config.cluster ? undefined : new DefinitionsFile(config.dataDir, broker, log);
  if (!((await definitions?.load()) ?? false)) {
    broker.addVhost('/');
    broker.users.add('guest', 'guest', ['administrator']);
    broker.users.setPermissions('guest', '/', { configure: '.*', write: '.*', read: '.*' });
  }
  if (definitions !== undefined) {
    for (const link of links) link.recoveryDone();
    broker.flushAll();
    broker.onDefinitionsChanged = () => definitions.save();
    await definitions.save();
  }

  const threads: ShardThread[] = started.map((s, i) => {
    const link = links[i] as ShardLink;
    const reader = new RingReader(s.fromShard, `shard${i}→front`, warnLostWakeups((m) => log.warn(m)));
    reader.start(
      (kind, body) => broker.onShardRecord(link, kind, body),
      () => broker.flushAll(),
    );
    s.worker.on('message', (m: ShardLifecycle) => {
      if (m.type === 'log') log[m.level](m.message);
    });
    s.worker.on('error', (err) => {
      log.error(`shard ${i} crashed: ${err.stack ?? err.message}`);
      process.exitCode = 70;
    });
    return { worker: s.worker, reader, link };
  });

  let member: ClusterMember | undefined;
  let peer: { port: number; close(): Promise<void> } | undefined;
  if (replicator !== undefined) {
    peer = await startPeerListener(broker, { host: bindHost, port: config.peerPort, secret, nodeName: config.nodeName, log });
  }

  const server: Server = createServer((socket) => {
    const conn = new Connection(broker, socketTransport(socket));
    broker.connections.add(conn);
  });
  server.on('error', (err) => log.error(`listener error: ${err.message}`));
  server.listen(config.port, config.host);
  await once(server, 'listening');
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : config.port;
  const hostInUrl = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `amqp://${hostInUrl}:${port}`;
  const tlsListener = tls === undefined || config.tlsPort === 'off' ? undefined : await startTlsListener(broker, tls, config.host, config.tlsPort, log);
  const tlsUrl = tlsListener === undefined ? undefined : `amqps://${hostInUrl}:${tlsListener.port}`;
  if (tlsUrl !== undefined) log.info(`AMQPS (TLS) listener at ${tlsUrl}, client certificates: ${config.tlsVerify}`);
  if (replicator !== undefined && peer !== undefined) {
    const advertise = config.advertiseHost !== '' ? config.advertiseHost : bindHost;
    if (isUnspecifiedAddress(advertise)) {
      throw new StartError(`--host/--bind-host ${bindHost} listens on every address, so other nodes cannot be told one: pass --advertise-host with the address they should dial`);
    }
    const hostPort = (p: number): string => `${advertise.includes(':') ? `[${advertise}]` : advertise}:${p}`;
    member = new ClusterMember({
      broker,
      replicator,
      log,
      etcd: config.etcd,
      clusterName: config.clusterName,
      nodeName: config.nodeName,
      leaseMs: config.leaseMs,
      advertised: { amqp: hostPort(port), peer: hostPort(peer.port), repl: hostPort(replicator.port) },
      shards: config.shards,
      secret,
    });
    broker.cluster = member;
    await member.start();
    // Every queue this node holds is placed now: what the shard logs hold for others can go.
    for (const link of links) link.recoveryDone();
    broker.flushAll();
  }
  const mgmt = await startManagement(
    broker,
    { host: config.mgmtHost, mgmtPort: config.mgmtPort, prometheusPort: config.prometheusPort, wsPort: config.wsPort, dataDir: config.dataDir, amqp: { host: config.host, port, tlsPort: tlsListener?.port }, rings: threads.map((t) => t.reader) },
    log,
  );
  log.info(`warren ${config.nodeName} started with ${config.shards} shard(s), data in ${config.dataDir}${mgmt.url === undefined ? '' : `, management at ${mgmt.url}`}`);
  const admin = await startAdminSocket(broker, config, log);
  const resources = new ResourceMonitor({
    dataDir: config.dataDir,
    nodeName: config.nodeName,
    memoryWatermark: parseMemoryWatermark(config.vmMemoryHighWatermark) ?? defaultMemoryWatermark,
    diskFreeLimit: parseDiskFreeLimit(config.diskFreeLimit) ?? defaultDiskFreeLimit,
    onAlarm: (resource, active, reason) => {
      broker.holds.onResourceAlarm(resource, active, reason);
      // RabbitMQ's alarms are cluster-wide: the other nodes hold their publishers too.
      void member?.publishAlarms(resources.activeResources());
    },
    log,
  });
  broker.resources = resources;
  await resources.start();

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      log.info('stopping: closing connections');
      resources.stop();
      // Leave the cluster first: the lease is revoked, so the others fail over at once.
      await member?.stop();
      await peer?.close();
      server.close();
      tlsListener?.close();
      mgmt.close();
      await admin.close();
      for (const c of [...broker.connections]) {
        c.close(ReplyCode.connectionForced, "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'");
      }
      broker.flushAll();
      for (const t of threads) t.link.shutdown();
      await Promise.all(
        threads.map(async (t) => {
          await new Promise<void>((resolve) => {
            t.worker.on('message', (m: ShardLifecycle) => m.type === 'stopped' && resolve());
            t.worker.once('exit', () => resolve());
          });
          t.reader.stop();
          await t.worker.terminate();
        }),
      );
      for (const c of [...broker.connections]) c.transport.destroy();
      broker.close();
      await replicator?.close();
      lock.release();
      log.info('stopped');
    })();
    return stopping;
  };

  return { broker, host: config.host, port, url, tlsUrl, log, stop };
}
