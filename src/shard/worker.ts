/**
 * Entry point of a shard worker thread. The front hands it two rings (front→shard and
 * shard→front); everything it learns and says after that goes through them. postMessage is
 * used only for lifecycle (ready, fatal error), never for messages.
 */
import { parentPort, workerData } from 'node:worker_threads';
import assert from 'node:assert/strict';
import { RingReader } from '../ring/ring-reader.js';
import { RingWriter } from '../ring/ring-writer.js';
import { ToShard } from '../ring/shard-records.js';
import { Shard } from './shard.js';

export interface ShardWorkerData {
  index: number;
  toShard: SharedArrayBuffer;
  fromShard: SharedArrayBuffer;
}

const data = workerData as ShardWorkerData;
assert.ok(parentPort !== null, 'shard worker must run in a worker thread');
const port = parentPort;

const reader = new RingReader(data.toShard, `front→shard${data.index}`);
const writer = new RingWriter(data.fromShard, `shard${data.index}→front`);
const shard = new Shard(data.index, writer);

reader.start(
  (kind, body) => {
    if (kind === ToShard.shutdown) {
      reader.stop();
      writer.flush();
      writer.close();
      port.postMessage({ type: 'stopped' });
      return;
    }
    shard.onRecord(kind, body);
  },
  () => shard.onBatchEnd(),
);
port.postMessage({ type: 'ready' });
