/**
 * Entry point of the replicator worker thread: hosts one Replicator. Control (lead, follow,
 * update, stop, delete, status, replicaState, answerPoll, close) arrives by postMessage with request ids;
 * records arrive from each shard's ring (append) and go back on the shard's other ring
 * (commit, import, leadReady). Events (isrChange, peerDown, log) go to the main thread.
 */
import assert from 'node:assert/strict';
import { parentPort, workerData } from 'node:worker_threads';
import { RingReader, warnLostWakeups } from '../ring/ring-reader.js';
import { RingWriter } from '../ring/ring-writer.js';
import { Replicator } from './replicator.js';
import { RingShardSink, ToReplicator, decodeAppend } from './replication-records.js';
import type { ReplicatorMessage, ReplicatorReplyValue, ReplicatorRequest, ReplicatorWorkerData } from './worker-protocol.js';

const data = workerData as ReplicatorWorkerData;
assert.ok(parentPort !== null, 'the replicator worker must run in a worker thread');
const port = parentPort;
const say = (m: ReplicatorMessage): void => port.postMessage(m);

const ringOptions = warnLostWakeups((message) => say({ type: 'log', level: 'warn', message }));
const writers = data.shards.map((rings, i) => new RingWriter(rings.fromReplicator, `replicator→shard${i}`, ringOptions));
const readers = data.shards.map((rings, i) => new RingReader(rings.toReplicator, `shard${i}→replicator`, ringOptions));
const sink = new RingShardSink(writers);
const replicator = new Replicator({
  ...data.options,
  log: (level, message) => say({ type: 'log', level, message }),
  sink,
});
replicator.onIsrChange = (queueId, isr) => say({ type: 'isrChange', queueId, isr });
replicator.onPeerDown = (node) => say({ type: 'peerDown', node });

function onShardRecord(shard: number, kind: number, body: Buffer): void {
  if (kind !== ToReplicator.append) {
    say({ type: 'log', level: 'error', message: `ring record of unknown kind ${kind} from shard ${shard}; ignored` });
    return;
  }
  let record;
  try {
    record = decodeAppend(body);
  } catch (error: unknown) {
    say({ type: 'log', level: 'error', message: `shard ${shard}: ${error instanceof Error ? error.message : String(error)}; ignored` });
    return;
  }
  replicator.append(record.queueId, record.kind, record.payload);
}

async function handle(request: ReplicatorRequest): Promise<ReplicatorReplyValue> {
  switch (request.op) {
    case 'lead':
      sink.route(request.req.queueId, request.shard);
      return replicator.lead(request.req);
    case 'follow':
      replicator.follow(request.req);
      return undefined;
    case 'update':
      await replicator.updatePlacement(request.queueId, request.placement);
      return undefined;
    case 'stop':
      await replicator.stop(request.queueId);
      return undefined;
    case 'delete':
      await replicator.deleteQueue(request.queueId);
      sink.forget(request.queueId);
      return undefined;
    case 'status':
      return replicator.status();
    case 'latency':
      return replicator.latency.export();
    case 'replicaState':
      return replicator.replicaState(request.queueId);
    case 'answerPoll':
      return replicator.answerPoll(request.queueId, request.epoch, request.fenceMs);
    case 'close':
      for (const reader of readers) reader.stop();
      // An import waiting for a shard that no longer reads would hold close() forever.
      sink.close();
      await replicator.close();
      for (const writer of writers) writer.close();
      port.close();
      return undefined;
  }
}

port.on('message', (request: ReplicatorRequest) => {
  handle(request).then(
    (value) => {
      if (request.op !== 'close') say({ type: 'reply', id: request.id, ok: true, value });
    },
    (error: unknown) => say({ type: 'reply', id: request.id, ok: false, error: error instanceof Error ? error.message : String(error) }),
  );
});

replicator.listen().then(
  (boundPort) => {
    readers.forEach((reader, shard) => reader.start((kind, body) => onShardRecord(shard, kind, body)));
    say({ type: 'ready', port: boundPort });
  },
  (error: unknown) => say({ type: 'failed', message: error instanceof Error ? error.message : String(error) }),
);
